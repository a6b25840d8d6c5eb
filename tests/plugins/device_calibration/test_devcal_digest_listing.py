"""The weekly digest reads each cycle's phase and due date from one listing, and wakes no dormant cycle; nor
does a reconciliation that confirms a drift the listing shows. The listing reads every page it is given.

On a real dev server (the time-skipping server has no visibility listing): the cycles are started dormant,
as a reconciliation starts them, with the view in their memo, and no worker polls their queue, so a digest
that asked any of them would not get an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import date, timedelta
from typing import Any

import devcal_helpers as h
from temporalio.testing import ActivityEnvironment

import plugins.device_calibration as device_calibration
from engine.rules import add_months
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect
from engine.sdk import Services
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration import listing, rules
from plugins.device_calibration.activities import _DeviceCheck, collect_digest, expected, read_devices
from plugins.device_calibration.listing import Listed, RunningCycles
from plugins.device_calibration.models import (
    CYCLE_WORKFLOW,
    SCENARIO,
    VIEW_MEMO,
    CycleInput,
    CycleView,
    DigestInput,
    DigestItem,
    ReconcileReport,
    info_fingerprint,
)


async def test_the_digest_lists_cycles_from_their_memo_and_wakes_none(scenario_harness: Any,
                                                                       dev_server: EmbeddedTemporal) -> None:
    org = f"digest{uuid.uuid4().hex[:6]}"  # the dev server outlives the test: a fresh organization id
    config = org_config(plugins=[SCENARIO], settings={SCENARIO: h.SETTINGS}, extra=h.ORG_EXTRA, org_id=org)
    async with scenario_harness({SCENARIO: device_calibration}, config=config) as env:
        moment = await env.begin_at(moments.ordinary_workday(), org=org)  # the digest's "today" comes from it
        today = moment.astimezone(env.config.org(org).zone).date()
        due = {"CT-0001": today + timedelta(days=10), "CT-0002": today + timedelta(days=100),
               "CT-0003": today - timedelta(days=3)}
        h.seed(env.standin, {f"rec{device_id}": h.device_row(device_id, last=add_months(day, -12))
                             for device_id, day in due.items()})
        client = await connect(dev_server.address, "default")
        queue = f"digest-nobody-{uuid.uuid4().hex[:6]}"
        handles = {}
        for device_id, day in due.items():
            view = CycleView(phase="overdue" if day < today else "active", due=day, info="-")
            handles[device_id] = await client.start_workflow(
                CYCLE_WORKFLOW, CycleInput(org=org, device_id=device_id), id=f"{org}:{SCENARIO}:{device_id}",
                task_queue=queue, start_delay=timedelta(days=30), memo={VIEW_MEMO: view.model_dump(mode="json")})

        services = Services(config=env.config, feishu=env.app.feishu, temporal=client, task_queue=queue)
        activity_env = ActivityEnvironment()
        activity_env.info = dataclasses.replace(activity_env.info, current_attempt_scheduled_time=moment)
        digests = await activity_env.run(collect_digest, services, DigestInput(org=org), RunningCycles())

        [radiology] = digests
        assert [item.device_id for item in radiology.due_soon] == ["CT-0001"]
        assert radiology.due_soon[0] == DigestItem(key="CT-0001", device_id="CT-0001", name="CT-0001 设备",
                                                   kind="calibration", due=due["CT-0001"], days_left=10,
                                                   phase="active")
        assert [(item.device_id, item.days_left) for item in radiology.overdue] == [("CT-0003", -3)]
        assert radiology.sent_out == []
        for handle in handles.values():  # none asked, none woken: still the one start event
            assert (await handle.describe()).history_length == 1
            await handle.terminate("test over")


async def test_a_drift_the_listing_shows_is_confirmed_from_the_memo_without_waking(
        scenario_harness: Any, dev_server: EmbeddedTemporal) -> None:
    org = f"drift{uuid.uuid4().hex[:6]}"
    config = org_config(plugins=[SCENARIO], settings={SCENARIO: h.SETTINGS}, extra=h.ORG_EXTRA, org_id=org)
    async with scenario_harness({SCENARIO: device_calibration}, config=config) as env:
        moment = await env.begin_at(moments.ordinary_workday(), org=org)
        today = moment.astimezone(env.config.org(org).zone).date()
        h.seed(env.standin, {"recCT-0001": h.device_row("CT-0001", last=today - timedelta(days=30))})
        settings = env.config.org(org).settings(SCENARIO)
        [device] = await read_devices(env.app.feishu, env.config.org(org), settings)
        due = rules.plan_due(device.kinds["calibration"], settings.schedules["calibration"], today).data["due"]
        current = CycleView(phase="active", due=date.fromisoformat(due), info=info_fingerprint(device.info))
        client = await connect(dev_server.address, "default")
        wid = f"{org}:{SCENARIO}:CT-0001"
        # dormant, on a queue no worker polls: a query would wake it and wait for an answer that never comes
        handle = await client.start_workflow(
            CYCLE_WORKFLOW, CycleInput(org=org, device_id="CT-0001"), id=wid,
            task_queue=f"drift-nobody-{uuid.uuid4().hex[:6]}", start_delay=timedelta(days=30),
            memo={VIEW_MEMO: current.model_dump(mode="json")})
        stale = current.model_copy(update={"due": today})  # as a listing that lags behind the cycle shows it

        report = ReconcileReport(org=org, rows=1)
        check = _DeviceCheck(client, org, "unused", "run", {wid: stale}, set(), report)
        await check.device(device, expected(org, device, settings, today))

        assert [(c.key, c.action) for c in report.changes] == [("CT-0001", "unchanged")]
        assert (await handle.describe()).history_length == 1  # described, not asked: still dormant

        # a listing of changes that missed the cycle (visibility showed its start too late): it is described
        # before anything starts it again (a start would write a second "registered" row)
        missed = Listed()
        missed.of_changes = True
        report = ReconcileReport(org=org, rows=1)
        check = _DeviceCheck(client, org, "unused", "run", missed, set(), report)
        await check.device(device, expected(org, device, settings, today))

        assert check.new == [] and [(c.key, c.action) for c in report.changes] == [("CT-0001", "unchanged")]
        await handle.terminate("test over")


async def test_the_listing_reads_every_page_with_each_cycles_view(dev_server: EmbeddedTemporal,
                                                                 monkeypatch: Any) -> None:
    """Pages of two: five cycles of the organization (one keeps no view) come back over three pages, each
    with its own view, and another organization's cycle is left out."""
    monkeypatch.setattr(listing, "LISTING_PAGE_SIZE", 2)
    org, other = f"pages{uuid.uuid4().hex[:6]}", f"other{uuid.uuid4().hex[:6]}"
    client = await connect(dev_server.address, "default")
    queue = f"pages-nobody-{uuid.uuid4().hex[:6]}"
    views = {f"{org}:{SCENARIO}:CT-000{n}": CycleView(phase="active", due=date(2030, 1, n), info=f"info{n}")
             for n in range(1, 5)}
    memos: dict[str, dict[str, Any] | None] = {wid: {VIEW_MEMO: view.model_dump(mode="json")}
                                               for wid, view in views.items()}
    memos[f"{org}:{SCENARIO}:CT-0005"] = None  # a cycle started before cycles kept a view
    memos[f"{other}:{SCENARIO}:CT-0001"] = {VIEW_MEMO: views[f"{org}:{SCENARIO}:CT-0001"].model_dump(mode="json")}
    handles = [await client.start_workflow(CYCLE_WORKFLOW, CycleInput(org=org, device_id=wid.rsplit(":", 1)[1]),
                                           id=wid, task_queue=queue, start_delay=timedelta(days=30), memo=memo)
               for wid, memo in memos.items()]
    query = f"WorkflowType = '{CYCLE_WORKFLOW}' AND ExecutionStatus = 'Running'"
    for _ in range(600):  # visibility counts a start a little after it: up to a minute on a loaded machine
        listed = [execution.id async for execution in client.list_workflows(query)]
        if all(handle.id in listed for handle in handles):
            break
        await asyncio.sleep(0.1)

    errors: list[str] = []
    server_now = (await handles[0].describe()).start_time  # the server's clock: hard-moment runs move this one's
    running = await RunningCycles().of(client, org, server_now, errors)

    assert errors == []
    assert running == {**views, f"{org}:{SCENARIO}:CT-0005": None}
    for handle in handles:
        await handle.terminate("test over")
