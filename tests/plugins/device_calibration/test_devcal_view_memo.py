"""A cycle keeps its CycleView in its memo; reconciliation trusts a listed view and asks no cycle it agrees with."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import devcal_helpers as h
from temporalio.client import Client, Interceptor, OutboundInterceptor, QueryWorkflowInput

import plugins.device_calibration as device_calibration
from engine.rules import add_months
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.activities import _DeviceCheck, expected, read_devices
from plugins.device_calibration.models import (
    SCENARIO,
    VIEW_CHANGED_AT,
    VIEW_MEMO,
    CycleState,
    CycleView,
    ReconcileReport,
)


class CountQueries(Interceptor):
    """Counts the queries a client sends (each one is a round trip to a cycle)."""

    def __init__(self) -> None:
        self.queries = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Outbound(OutboundInterceptor):
            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                counter.queries += 1
                return await super().query_workflow(input)

        return Outbound(next)


async def memo_view(env: Any, key: str) -> CycleView:
    description = await env.handle(SCENARIO, key).describe()
    return CycleView.model_validate(await description.memo_value(VIEW_MEMO))


async def stamp(env: Any, key: str) -> datetime:
    """When the cycle's view last changed, as its search attribute holds it."""
    at = (await env.handle(SCENARIO, key).describe()).typed_search_attributes.get(VIEW_CHANGED_AT)
    assert at is not None, f"{key} keeps no stamp"
    return at


async def test_the_memo_view_follows_the_cycle_and_spares_reconciliation_a_query(scenario_harness: Any) -> None:
    config = org_config(plugins=[SCENARIO], settings={SCENARIO: h.SETTINGS}, extra=h.ORG_EXTRA)
    async with scenario_harness({SCENARIO: device_calibration}, config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {
            "recA": h.device_row("CT-0001", last=add_months(today, -3)),
            "recB": h.device_row("CT-0002", last=add_months(today, -4)),
        })
        for record_id, device_id in (("recA", "CT-0001"), ("recB", "CT-0002")):
            await env.deliver(h.record_event(record_id, device_id))
        await env.settle()
        for key in ("CT-0001", "CT-0002"):
            state = CycleState.model_validate(await env.query(SCENARIO, key))
            assert await memo_view(env, key) == CycleView.of(state)
        registered = {key: await stamp(env, key) for key in ("CT-0001", "CT-0002")}

        # an edit the cycle hears of: its memo follows
        new_due = today + timedelta(days=300)  # later than last + 12 months: the extension wins
        h.row(env.standin, "recB")["有效期至"] = h.ms(new_due)
        await env.deliver(h.record_event("recB", "CT-0002"))
        await env.settle()
        edited = CycleState.model_validate(await env.query(SCENARIO, "CT-0002"))
        assert edited.due == new_due and await memo_view(env, "CT-0002") == CycleView.of(edited)
        # ... and the cycle stamps when its view changed: a listing of changes finds it by that
        assert registered["CT-0002"] < await stamp(env, "CT-0002") <= await env.now()
        assert await stamp(env, "CT-0001") == registered["CT-0001"]  # its view did not change

        # the listing's views: one current, one stale (as a lagging listing may be)
        org = env.config.org("acme")
        settings = org.settings(SCENARIO)
        devices = {d.device_id: d for d in await read_devices(env.app.feishu, org, settings)}
        stale = (await memo_view(env, "CT-0002")).model_copy(update={"due": today})
        running: dict[str, CycleView | None] = {env.workflow_id(SCENARIO, "CT-0001"): await memo_view(env, "CT-0001"),
                                                env.workflow_id(SCENARIO, "CT-0002"): stale}
        counter = CountQueries()
        client = Client(**{**env.client.config(), "interceptors": [counter]})
        report = ReconcileReport(org="acme", rows=2)
        rows = {key: expected("acme", device, settings, today) for key, device in devices.items()}
        check = _DeviceCheck(client, "acme", "unused", "run", running, set(), report)
        await check.device(devices["CT-0001"], rows["CT-0001"])
        assert counter.queries == 0  # its view agrees with its row: nothing asked
        await check.device(devices["CT-0002"], rows["CT-0002"])
        assert counter.queries == 0  # the stale view disagreed: the cycle was described (its memo), and agrees
        assert [(c.key, c.action) for c in report.changes] == [("CT-0001", "unchanged"), ("CT-0002", "unchanged")]

        # the reconciliation's fast path: a row the listing shows in step is settled without a coroutine or a
        # round trip; one whose view disagrees is left, with nothing recorded, to the full check
        fast = ReconcileReport(org="acme", rows=2)
        wanted: set[str] = set()
        check = _DeviceCheck(client, "acme", "unused", "run", running, wanted, fast)
        assert check.settled(rows["CT-0001"]) and not check.settled(rows["CT-0002"])
        assert counter.queries == 0
        assert [(c.key, c.action) for c in fast.changes] == [("CT-0001", "unchanged")]
        assert wanted == {env.workflow_id(SCENARIO, "CT-0001")}
        assert not _DeviceCheck(client, "acme", "unused", "run", None, set(), fast).settled(
            rows["CT-0001"])  # no listing (the time-skipping server): every row takes the full check
