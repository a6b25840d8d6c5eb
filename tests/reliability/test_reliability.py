"""Crashes, restarts, Feishu outages and bad input lose nothing and duplicate nothing (issue 9).

The real processes, each its own OS process on loopback: the Temporal dev server on a SQLite file,
``engine worker``, ``engine ingress`` and the Feishu stand-in (``engine standin``). The workload is the
device_calibration scenario on a compressed business clock (a business day per 30 real seconds): a
fleet of devices, registered by Bitable record-changed events, with short reminder ladders, and card
presses ("sent for calibration", "calibrated" with a passing result) on some of them; asset_loan
items borrowed and returned from their cards (on the real clock: no reminder falls in a run); and, on the
same business clock, handover shifts (written and confirmed by card presses, or left missing to run their
ladder), project_delivery projects (asked for by message, moved a stage by a press), recruiting
requisitions and applications (Bitable rows, approval and stage presses), requisitions of a hospital
approving them in Feishu's approval app (decided at the stand-in, its approval_instance events pushed twice
and out of order), repair tickets (reported by message, accepted, done and rated by presses) and a
documents round to the hospitals (answered by card presses and a file, one hospital late through its
reminders and its head's escalation): see relia_plugins.py. While it runs,
the suite SIGKILLs the worker, restarts the Temporal server and the ingress, makes the stand-in
answer rate limits, 5xx (HTML and JSON) and slow responses, expires the access tokens, delivers every
event at least twice (some out of order, some after an ingress restart), and sends forged, malformed
and oversized requests; after the presses every plugin is asked "<key> 状态" (each question pushed twice)
until the Feishu faults left over are used up. At the end it compares what the pure rules (or a plugin's
documented flow) say must have happened with what the stand-in recorded, prints a table, one row per
plugin with its lost and duplicated effects and its card presses answered late, and checks every
process's log for unhandled exceptions.

Fault moments are random, with one constraint that comes from the compressed clock, not from the
engine: worker kills and Temporal restarts land in the business afternoon (see ``off_peak``), because
their recovery (some 20 real seconds) is 16 business hours here, more than a reminder's 12-hour
tolerance; each Feishu fault answers the next N API calls, whenever they come, so that none falls
between two bursts of traffic unused. The table also gives how late the notices were.

Run it alone::

    .venv/bin/pytest -m reliability -s tests/reliability                       # short profile (default)
    RELIABILITY_PROFILE=full .venv/bin/pytest -m reliability -s tests/reliability   # 300 devices

``RELIABILITY_SEED=N`` replays the random fault moments of an earlier run (each run prints its seed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import relia_harness as rh
import relia_plugins as rp
import relia_workload as wl

from engine.feishu.standin import crypto
from engine.feishu.standin import events as ev
from engine.feishu.standin.delivery import EventSender
from engine.rules import WorkCalendar

pytestmark = [pytest.mark.reliability]

PROFILE = wl.PROFILES[os.environ.get("RELIABILITY_PROFILE", "short")]
REDELIVERY = [0.5, 1, 2, 3, 5, 8, 10, 10]  # Feishu's schedule, compressed: about 40 s in all
# A card press whose update waits on a Bitable write under a fault stretch (with a worker crash on top)
# can run past the ingress's 2.5 s budget for longer than that: the user presses again, later.
CARD_REDELIVERY = [*REDELIVERY, 10, 10, 10, 10, 10]
STATUS_CHAT, STATUS_ASKER = "oc_relia_status", "ou_status_asker"  # where status questions are asked, by whom
STARTUP_SECONDS = 40.0  # business midnight comes this long after the config is written (six plugins: the
# worker and the ingress render every template at start-up, some 40 s on a loaded machine)
# A card press is excused from the answer budget while a process it needs is down: from the moment the
# worker is SIGKILLed or the ingress is stopped until CRASH_GRACE after the restarted process is ready (the
# worker replays the workflows it had cached), or Temporal is stopped until TEMPORAL_GRACE after it answers
# again (the worker's pollers come back with a backoff, the history service reloads its shards).
CRASH_GRACE, TEMPORAL_GRACE = 10.0, 20.0
# The plugins whose presses are answered before any I/O: a late answer of theirs outside a crash fails
# the run. asset_loan's borrow still reads the asset's row and its guard (activities) before it answers,
# and device_calibration's presses were answered late outside a crash on a loaded machine: their late
# answers are counted and printed, not asserted.
ANSWERS_FIRST = {"documents", "handover", "project_delivery", "recruiting", "repair"}
ENGINE_TOASTS = {"这张卡片已失效，请以最新消息为准。", "This card is no longer active; please use the latest message."}


class Run:
    """Everything the run did, for the table and the assertions."""

    def __init__(self, stack: rh.Stack, seed: int) -> None:
        self.stack = stack
        self.random = random.Random(seed)
        self.seed = seed
        self.faults: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.bad_answers: list[str] = []  # a forged/malformed request not answered 4xx
        self.refused: Counter[int] = Counter()
        self.unacknowledged: list[str] = []  # a genuine event never acknowledged
        self.toasts: dict[str, str] = {}
        # card presses per plugin, and those not answered with the plugin's own toast at the first attempt
        # (repeated after a non-2xx answer, never answered, or answered without a toast or with the
        # engine's): late outside a process crash, excused inside one (see CRASH_GRACE)
        self.presses: Counter[str] = Counter()
        self.late: dict[str, list[str]] = {}
        self.excused: Counter[str] = Counter()
        self.crashes: list[tuple[float, float]] = []  # (down, ready + CRASH_GRACE), monotonic seconds
        self.started = time.monotonic()
        self.marks: list[tuple[str, float]] = []  # (phase, real seconds since the start) for the table
        self.http = httpx.AsyncClient(trust_env=False, timeout=120)
        self.sender = EventSender(rh.ENCRYPT_KEY, rh.VERIFICATION_TOKEN)

    def mark(self, phase: str) -> None:
        self.marks.append((phase, time.monotonic() - self.started))

    # -- genuine events

    async def deliver_record(self, device: wl.Device, action: str, event_id: str, label: str) -> None:
        """A Bitable record-changed event, pushed by the stand-in like Feishu (retried until acknowledged)."""
        event = ev.bitable_record_changed(wl.APP, wl.TABLE, device.record_id, operator_open_id=device.manager,
                                          action=action, after=device.fields)
        response = await self.http.post(f"{self.stack.standin_url}/_standin/deliver", json={
            "url": self.stack.events_url, "event_type": ev.EVENT_BITABLE_RECORD_CHANGED, "event": event,
            "event_id": event_id, "wait": True, "retries": REDELIVERY})
        result = response.json()
        self.events[label] += 1
        if not result.get("acknowledged"):
            self.unacknowledged.append(f"{event_id}: {result.get('status')} {result.get('attempts', [])[-1:]}")
        self.events["redelivered after a non-2xx answer"] += len(result.get("attempts", [])) - 1

    async def deliver_row(self, app: str, table: str, record_id: str, action: str, event_id: str,
                          label: str) -> None:
        """A record-changed event for a row of the stand-in's Bitable (its fields from the stand-in's state)."""
        response = await self.http.post(f"{self.stack.standin_url}/_standin/deliver", json={
            "url": self.stack.events_url, "event_id": event_id, "wait": True, "retries": REDELIVERY,
            "record_changed": {"app_token": app, "table_id": table, "record_id": record_id, "action": action,
                               "operator_open_id": rp.RC_ROLES["recruiter"]}})
        result = response.json()
        self.events[label] += 1
        if not result.get("acknowledged"):
            self.unacknowledged.append(f"{event_id}: {result.get('status')} {result.get('attempts', [])[-1:]}")
        self.events["redelivered after a non-2xx answer"] += len(result.get("attempts", [])) - 1

    async def deliver_message(self, text: str, chat_id: str, sender: str, message_id: str, event_id: str,
                              label: str, retries: list[float] = REDELIVERY) -> None:
        """A user's message @-mentioning the bot, stored by the stand-in (so replies work) and pushed."""
        response = await self.http.post(f"{self.stack.standin_url}/_standin/deliver", json={
            "url": self.stack.events_url, "event_id": event_id, "wait": True, "retries": retries,
            "message": {"text": text, "chat_id": chat_id, "sender_open_id": sender, "message_id": message_id}})
        result = response.json()
        self.events[label] += 1
        if not result.get("acknowledged"):
            self.unacknowledged.append(f"{event_id}: {result.get('status')} {result.get('attempts', [])[-1:]}")
        self.events["redelivered after a non-2xx answer"] += len(result.get("attempts", [])) - 1

    async def push(self, payload: dict[str, Any], event_id: str, label: str) -> None:
        """A ready payload (an approval_instance v1 callback, a message event) pushed like Feishu, retried."""
        result = await self.sender.deliver(self.stack.events_url, payload, event_id=event_id, retries=REDELIVERY)
        self.events[label] += 1
        if not result.acknowledged:
            self.unacknowledged.append(f"{event_id}: {result.status}")
        self.events["redelivered after a non-2xx answer"] += len(result.attempts) - 1

    async def press(self, device: wl.Device, op: str, event_id: str, form: dict[str, Any] | None,
                    label: str) -> str:
        """A button on a device's reminder card, pressed by its manager."""
        value = {"scenario": wl.SCENARIO, "org": wl.ORG, "device": device.device_id, "kind": "calibration",
                 "cycle": wl.FIRST_CYCLE, "op": op}
        plugin = wl.SCENARIO if "again" not in label else None
        return await self.card(value, device.manager, f"om_card_{device.device_id}", event_id, form, label, plugin)

    async def press_loan(self, asset: wl.Asset, op: str, event_id: str, label: str) -> str:
        """A button on an asset's card (borrow, return), pressed by its borrower."""
        value = {"scenario": wl.LOANS, "op": op, "asset": asset.asset_id}
        plugin = wl.LOANS if "again" not in label else None
        return await self.card(value, asset.borrower, f"om_asset_{asset.asset_id}", event_id, None, label, plugin)

    async def card(self, value: dict[str, Any], operator: str, message_id: str, event_id: str,
                   form: dict[str, Any] | None, label: str, plugin: str | None = None) -> str:
        """A card button press through the ingress; redelivered (same event id) until answered 200.

        ``plugin``: whose first press this is, counted for the answer budget (None: a press repeated on
        purpose, answered from the ingress's seen-set rather than by the plugin).
        """
        event = ev.card_action_event(value, operator, message_id, "oc_p2p", form_value=form, tenant_key=rh.TENANT)
        payload = ev.envelope_v2(ev.EVENT_CARD_ACTION, event, app_id=rh.APP_ID, tenant_key=rh.TENANT,
                                 token=rh.VERIFICATION_TOKEN, event_id=event_id)
        pressed = time.monotonic()
        result = await self.sender.deliver(self.stack.events_url, payload, event_id=event_id,
                                           retries=CARD_REDELIVERY, timeout=5.0)
        answered = time.monotonic()
        self.events[label] += 1
        self.events["card press repeated after a non-2xx answer (over the 2.5 s budget)"] += len(result.attempts) - 1
        answer = (result.response_json or {}) if result.acknowledged else {}
        toast = str((answer.get("toast") or {}).get("content", ""))
        if plugin is not None:
            self.presses[plugin] += 1
            if len(result.attempts) > 1 or not result.acknowledged or not toast or toast in ENGINE_TOASTS:
                if any(down <= answered and pressed <= up for down, up in self.crashes):
                    self.excused[plugin] += 1
                else:
                    self.late.setdefault(plugin, []).append(
                        f"{event_id} ({value.get('op')}): {len(result.attempts)} attempt(s), "
                        f"statuses {[a.status for a in result.attempts][-3:]}, toast {toast!r}")
        if not result.acknowledged:
            self.unacknowledged.append(f"card {value.get('op')} {event_id}: {result.status}")
            return ""
        self.toasts[event_id] = toast
        return toast

    # -- forged and malformed requests

    async def post_raw(self, label: str, body: bytes, headers: dict[str, str]) -> None:
        for _ in range(60):  # the ingress may be restarting: a forger tries again too
            try:
                response = await self.http.post(self.stack.events_url, content=body, headers=headers, timeout=10)
                status = response.status_code
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.5)
            except httpx.HTTPError as error:  # the ingress may cut an oversized upload short
                status = 413 if "oversized" in label else -1
                if status == -1:
                    self.bad_answers.append(f"{label}: {type(error).__name__}")
                    return
                break
        else:
            self.bad_answers.append(f"{label}: the ingress never answered")
            return
        self.events[f"forged/malformed: {label}"] += 1
        self.refused[status] += 1
        if not 400 <= status < 500:
            self.bad_answers.append(f"{label}: answered {status}")

    def _signed(self, body: bytes, *, key: str = rh.ENCRYPT_KEY) -> dict[str, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        return {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts,
                "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": crypto.signature(ts, nonce, key, body)}

    async def forge(self, decoys: list[wl.Device], pressed: list[wl.Device]) -> None:
        """Forged events (each a real event with one thing wrong), malformed and oversized bodies."""
        target = self.random.choice(decoys)
        record = ev.envelope_v2(ev.EVENT_BITABLE_RECORD_CHANGED, ev.bitable_record_changed(
            wl.APP, wl.TABLE, target.record_id, operator_open_id=target.manager, action="record_added",
            after=target.fields), app_id=rh.APP_ID, tenant_key=rh.TENANT, token=rh.VERIFICATION_TOKEN)
        victim = self.random.choice(pressed)
        card = ev.envelope_v2(ev.EVENT_CARD_ACTION, ev.card_action_event(
            {"scenario": wl.SCENARIO, "org": wl.ORG, "device": victim.device_id, "cycle": wl.FIRST_CYCLE,
             "op": "result"},
            victim.manager, "om_forged", "oc_forged", tenant_key=rh.TENANT,
            form_value={"performed_on": "2020-01-01", "performed_by": "x", "certificate": "FORGED",
                        "as_found": "pass", "as_left": "pass"}), app_id=rh.APP_ID, tenant_key=rh.TENANT,
            token=rh.VERIFICATION_TOKEN)
        for payload in (record, card):
            kind = "record event" if payload is record else "card press"
            for tamper in ("bad_signature", "no_signature", "wrong_token", "stale_timestamp", "wrong_key"):
                payload["header"]["event_id"] = secrets.token_hex(16)
                body, headers = self.sender.build(payload, tamper=tamper)
                label = "replayed timestamp" if tamper == "stale_timestamp" else tamper.replace("_", " ")
                await self.post_raw(f"{label} ({kind})", body, headers)
            for field_name, value, label in (("tenant_key", "t_forged", "unknown tenant"),
                                             ("app_id", "cli_forged", "unknown app")):
                forged = json.loads(json.dumps(payload))
                forged["header"][field_name] = value
                forged["header"]["event_id"] = secrets.token_hex(16)
                body, headers = self.sender.build(forged)
                await self.post_raw(f"{label} ({kind})", body, headers)
        garbage = json.dumps({"encrypt": "bm90IHJlYWxseSBlbmNyeXB0ZWQ="}).encode()
        malformed_event = json.loads(json.dumps(record))
        malformed_event["header"]["event_id"] = secrets.token_hex(16)
        malformed_event["event"]["action_list"] = "not a list"
        body, headers = self.sender.build(malformed_event)
        await self.post_raw("malformed event (authentic)", body, headers)
        for label, raw in (("not JSON", b"{not json"), ("JSON array", b"[1, 2]"), ("not an event", b'{"a": 1}'),
                           ("empty body", b""), ("undecryptable", garbage)):
            await self.post_raw(label, raw, self._signed(raw))
        big = json.dumps({"encrypt": "A" * (1_100_000)}).encode()
        await self.post_raw("oversized (Content-Length)", big, self._signed(big))

        async def stream() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"A" * 65536

        try:
            response = await self.http.post(self.stack.events_url, content=stream(),
                                             headers={"Content-Type": "application/json"}, timeout=10)
            status = response.status_code
        except httpx.HTTPError:
            status = 413
        self.events["forged/malformed: oversized (chunked, no length)"] += 1
        self.refused[status] += 1
        if not 400 <= status < 500:
            self.bad_answers.append(f"oversized chunked: answered {status}")

    # -- faults

    async def inject(self, fault: dict[str, Any], label: str) -> None:
        response = await self.http.post(f"{self.stack.standin_url}/_standin/faults", json=fault)
        assert response.status_code == 200, response.text
        self.faults[label] += 1

    async def expire_tokens(self) -> None:
        response = await self.http.post(f"{self.stack.standin_url}/_standin/expire_tokens")
        assert response.status_code == 200
        self.faults["access token expired (all tokens revoked)"] += 1

    async def kill_worker(self) -> None:
        down = time.monotonic()
        await self.stack.procs["worker"].kill()
        self.faults["worker SIGKILL + restart"] += 1
        await self.stack.start_worker()
        self.crashes.append((down, time.monotonic() + CRASH_GRACE))

    async def restart_temporal(self, hard: bool) -> None:
        proc = self.stack.procs["temporal"]
        down = time.monotonic()
        if hard:
            await proc.kill()
        else:
            await proc.stop()
        await asyncio.sleep(self.random.uniform(1.0, 3.0))  # down for a while: the others must cope
        await self.stack.start_temporal()
        self.crashes.append((down, time.monotonic() + TEMPORAL_GRACE))
        self.faults[f"Temporal server {'SIGKILL' if hard else 'stop'} + restart on its state file"] += 1

    async def restart_ingress(self) -> None:
        down = time.monotonic()
        await self.stack.procs["ingress"].stop()
        await self.stack.start_ingress()
        self.crashes.append((down, time.monotonic() + CRASH_GRACE))
        self.faults["ingress stop + restart"] += 1

    async def state(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.stack.standin_url}/_standin/state")
        return response.json()  # type: ignore[no-any-return]

    async def calls(self, prefix: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.stack.standin_url}/_standin/calls",
                                       params={"limit": "0", "path": prefix})
        return response.json()  # type: ignore[no-any-return]


async def pause_rota_schedules(stack: rh.Stack, depts: list[rp.Department]) -> None:
    """Pause handover's rota schedules: they fire on the real clock (each day at its form time, e.g. 10:00
    UTC), which a run may span; the run starts each shift's driver itself (:func:`start_shift`). A pause
    survives the worker's restarts (schedule sync keeps an operator's pause)."""
    from temporalio.service import RPCError

    from engine.runtime.worker import connect

    client = await connect(stack.temporal.address, "default")
    for schedule_id in sorted({f"{rp.ORG}:{rp.HANDOVER}:schedule:rota-{d.department}-{rp.CHANGE.replace(':', '')}"
                               for d in depts}):
        for _ in range(50):  # the worker creates them as it starts
            try:
                await client.get_schedule_handle(schedule_id).pause(note="reliability run: the run starts shifts")
                break
            except RPCError:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"handover schedule {schedule_id} never appeared")


async def start_shift(run: Run, dept: rp.Department) -> str:
    """Run the department's rota driver as its schedule would (retried while Temporal restarts); the id of
    the shift workflow it started."""
    from temporalio.common import WorkflowIDReusePolicy

    from engine.runtime.worker import connect
    from plugins.handover.models import RotaRequest

    request = RotaRequest(org=rp.ORG, department=dept.department, change=rp.CHANGE, site=dept.site)
    driver = f"{rp.ORG}:{rp.HANDOVER}:schedule:rota-{dept.department}-{rp.CHANGE.replace(':', '')}:reliability"
    for _ in range(60):
        try:
            client = await connect(run.stack.temporal.address, "default")
            outcome = await client.execute_workflow(
                "handover.RotaDriver", args=[request, "zh_CN"], id=driver, task_queue="engine",
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
            break
        except Exception as error:  # Temporal restarting, or the driver already ran: its result is kept
            if "already" in str(error).lower():
                client = await connect(run.stack.temporal.address, "default")
                outcome = await client.get_workflow_handle(driver).result()
                break
            await asyncio.sleep(1.0)
    else:
        raise AssertionError(f"the rota driver of {dept.department} never ran")
    run.events["rota driver run (as its schedule would)"] += 1
    assert outcome.get("started"), outcome
    return str(outcome["started"])


async def wait_for_cell(run: Run, app: str, table: str, record_id: str, cell: str) -> None:
    async def written() -> bool:
        records = (await run.state())["bitable"][app][table]["records"]
        return any(r["record_id"] == record_id and r["fields"].get(cell) for r in records)

    await rh.wait_until(written, f"{record_id}'s {cell}", 180, every=1.0)


async def wait_for_message(run: Run, key: str, what: str, timeout: float = 180) -> None:
    uuid = wl.message_uuid(wl.ORG, key)

    async def sent() -> bool:
        return any(m.get("_uuid") == uuid for m in (await run.state())["messages"])

    await rh.wait_until(sent, what, timeout, every=1.0)


async def gather_limited(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[rh.Stack]:
    stack = rh.Stack(tmp_path / "run")
    try:
        yield stack
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stack.stop_all(), 60)
        stack.kill_all()


async def send_file(run: Run, hospital: rp.DocHospital) -> str:
    """The hospital's material sent to the bot as a file naming the round, then the same message pushed again
    under a new event id; returns its message id."""
    sender, name = hospital.responsible[0], f"{rp.DOC_ROUND} {hospital.name}质量月报.xlsx"
    response = await run.http.post(f"{run.stack.standin_url}/_standin/deliver", json={
        "url": run.stack.events_url, "event_id": f"ev-doc-file-{hospital.site}", "wait": True, "retries": REDELIVERY,
        "file_message": {"file_name": name, "sender_open_id": sender}})
    result = response.json()
    run.events["message (a file naming the round)"] += 1
    if not result.get("acknowledged"):
        run.unacknowledged.append(f"file of {hospital.site}: {result.get('status')}")
    stored = next(m for m in (await run.state())["messages"]
                  if m.get("msg_type") == "file" and (m.get("sender") or {}).get("id") == sender)
    event = ev.message_event("", stored["chat_id"], sender, mentions_bot=False, chat_type="p2p", tenant_key=rh.TENANT,
                             message_id=stored["message_id"])
    event["message"].update(message_type="file", content=stored["body"]["content"])
    again = f"ev-doc-file-{hospital.site}-again"
    await run.push(ev.envelope_v2(ev.EVENT_MESSAGE, event, app_id=rh.APP_ID, tenant_key=rh.TENANT,
                                  token=rh.VERIFICATION_TOKEN, event_id=again), again,
                   "message pushed again under a new event id")
    return str(stored["message_id"])


async def check_approvals(stack: rh.Stack, openings: list[rp.FeishuOpening], tallies: dict[str, rp.Tally]) -> None:
    """Each Feishu decision reached its requisition's workflow exactly once (its history records it once)."""
    from engine.runtime.worker import connect

    if not openings:
        return
    client = await connect(stack.temporal.address, "default")
    tally = tallies.setdefault(rp.APPROVALS, rp.Tally())
    for item in openings:
        state = await client.get_workflow_handle(item.req_wid).query("state")
        decided = [t for t in state.get("history", []) if str(t.get("action", "")).startswith("feishu_")]
        tally.add("decisions reaching the workflow", item.req_record, 1, len(decided))


def check_documents(hospitals: list[rp.DocHospital], state: dict[str, Any], calls: list[dict[str, Any]],
                    tallies: dict[str, rp.Tally]) -> None:
    """Headquarters' status card updated in place, and each answers row's final values: the hospitals that
    answered did so in time; the late one's reminders (one per notice to its responsible people) and its
    head's escalation are counted."""
    tally = tallies.setdefault(rp.DOCUMENTS, rp.Tally())
    uuid = wl.message_uuid(wl.ORG, f"{rp.round_wid()}:status:{rp.DOC_HQ}")
    card = next((m["message_id"] for m in state["messages"] if m.get("_uuid") == uuid), "")
    updates = [c for c in calls if card and c["method"] == "PATCH" and c["path"].endswith(f"/{card}")
               and c["status"] == 200 and c["code"] == 0]
    tally.add("status card updated", "headquarters", 1, min(1, len(updates)))
    rows = {r["fields"].get("编号"): r["fields"] for r in state["bitable"][rp.DOC_APP][rp.DOC_ANSWERS]["records"]}
    for h in hospitals:
        row = rows.get(f"{rp.DOC_ROUND}/{h.site}") or {}
        want = {"逾期": False, "已上报院长": h.late, "提醒次数": 2 if h.late else 0}
        got = {k: row.get(k) for k in want}
        material = str(row.get("材料", ""))
        wanted_material = rp.DOC_ROUND if h.uploads_file else "" if h.late else f"/drive/file/{h.site}"
        if got != want or wanted_material not in material:
            tally.lost.append(f"answers row {h.site}: {got}, material {material!r}; expected {want}, {wanted_material}")
        tally.expected["answers row final values"] += 1
        tally.seen["answers row final values"] += 1 if got == want and wanted_material in material else 0


def row_writes(calls: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The fields of every successful update (single or batch) the stand-in applied, per record id."""
    writes: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        if call["method"] in ("PUT", "POST") and call["status"] == 200 and call["code"] == 0:
            if call["path"].endswith("/batch_update"):
                for item in call["body"]["records"]:
                    writes.setdefault(item["record_id"], []).append(item["fields"])
            elif call["method"] == "PUT":
                writes.setdefault(call["path"].rsplit("/", 1)[1], []).append(call["body"]["fields"])
    return writes


def log_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    tables = state["bitable"].get(wl.APP, {})
    return [r["fields"] for r in tables.get(wl.LOG, {}).get("records", [])]


async def test_nothing_lost_nothing_duplicated(stack: rh.Stack, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    seed = int(os.environ.get("RELIABILITY_SEED", secrets.randbelow(10**6)))
    run = Run(stack, seed)
    settings = wl.settings()
    calendar = WorkCalendar(wl.ZONE)

    # ---- the stack: Temporal and the stand-in first, then the config with the clock, then the engine
    await stack.start_temporal()
    real_midnight = datetime.now(wl.ZONE) + timedelta(seconds=STARTUP_SECONDS)
    clock, today = wl.Clock.starting_at_midnight(PROFILE.scale, real_midnight)
    devices = wl.build_fleet(PROFILE, today)
    assets = wl.build_assets(PROFILE)
    depts = rp.departments(PROFILE.shifts, PROFILE.missing_shifts)
    projects = [rp.Project(i) for i in range(PROFILE.projects)]
    openings = [rp.Opening(i) for i in range(PROFILE.openings)]
    reports = [rp.Report(i) for i in range(PROFILE.reports)]
    fa_openings = rp.feishu_openings(PROFILE.fa_openings)
    hospitals = rp.doc_hospitals(PROFILE.doc_hospitals)
    stack.standin_state.write_text(json.dumps(wl.seed(devices, rh.ENCRYPT_KEY, rh.VERIFICATION_TOKEN, assets,
                                                      rp.people(depts, projects, reports, hospitals) | {STATUS_ASKER},
                                                      openings, fa_openings),
                                              ensure_ascii=False), encoding="utf-8")
    await stack.start_standin()
    stack.config_path.write_text(wl.config_toml(stack.ports["temporal"], stack.ports["ingress"], clock.origin,
                                                clock.scale, PROFILE), encoding="utf-8")
    await stack.start_worker()
    await pause_rota_schedules(stack, depts)
    await stack.start_ingress()
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=wl.ZONE)
    while clock.business() < midnight:  # deliveries start at business T 00:00, not before
        await asyncio.sleep(0.05)
    window_start = clock.business()
    run.mark("stack up (Temporal, stand-in, worker, ingress)")

    by_group: dict[str, list[wl.Device]] = {}
    for device in devices:
        by_group.setdefault(device.group, []).append(device)
    registered = [d for d in devices if d.group != "decoy"]
    pressed = by_group["sent_out"] + by_group["calibrated"]

    # ---- registration: every event twice, a third of the devices edited before they were added (out of
    # order), half of the first deliveries and most duplicates after an ingress restart
    deliveries: list[tuple[wl.Device, str, str, str]] = []
    for device in registered:
        deliveries.append((device, "record_added", f"ev-add-{device.device_id}", "record event (first push)"))
        if device.index % 3 == 0:
            deliveries.insert(len(deliveries) - 1, (device, "record_edited", f"ev-edit-{device.device_id}",
                                                    "record event out of order (edit before add)"))
    run.random.shuffle(deliveries)
    half = len(deliveries) // 2

    def job(item: tuple[wl.Device, str, str, str], label: str | None = None) -> Callable[[], Awaitable[None]]:
        device, action, event_id, first_label = item
        return lambda: run.deliver_record(device, action, event_id, label or first_label)

    await gather_limited([job(item) for item in deliveries[:half]], 8)
    run.mark("first half of the record events delivered")
    await run.restart_ingress()
    run.mark("ingress restarted")
    rest = [job(item, "record event (first push, after an ingress restart)") for item in deliveries[half:]]
    await asyncio.gather(gather_limited(rest, 8), run.forge(by_group["decoy"], pressed))
    run.mark("the other record events delivered, forgeries sent")

    async def all_registered() -> bool:
        rows = log_rows(await run.state())
        return sum(1 for r in rows if r.get("动作") == "registered") >= len(registered)

    await rh.wait_until(all_registered, "every device to be registered", 120, every=1.0)
    window = (window_start, clock.business())
    run.mark("every device registered")

    # ---- what must happen, from the pure rules
    expected: dict[str, wl.Expected] = {}
    for device in by_group["plain"]:
        expected[device.device_id] = wl.ladder_expectation(device, window, calendar, settings)
    plans = {d.device_id: wl.card_plan(d, today) for d in pressed}
    for device in by_group["decoy"]:
        expected[device.device_id] = wl.decoy_expectation(device)

    # ---- the card presses, while faults come and go
    async def presses(device: wl.Device) -> None:
        plan = plans[device.device_id]
        form_id = f"ev-card-form-{device.device_id}" if plan.form_requested and plan.performed_on else None
        expected[device.device_id] = wl.card_expectation(device, plan, form_id, settings)
        await run.press(device, "sent_out", f"ev-card-sent-{device.device_id}",
                        {"vendor": plan.vendor, "sent_on": f"{plan.sent_on.isoformat()} +0800"},
                        "card press (sent for calibration)")
        if plan.performed_on is None:
            return
        if form_id is not None:
            await run.press(device, "result_form", form_id, None, "card press (calibrated: ask for the form)")
        await run.press(device, "result", f"ev-card-result-{device.device_id}",
                        {"performed_on": f"{plan.performed_on.isoformat()} +0800", "performed_by": plan.vendor,
                         "certificate": plan.certificate, "as_found": "pass", "as_left": "pass"},
                        "card press (calibrated: passing result)")

    async def off_peak() -> None:
        """Wait for a business time between 12:00 and 19:00 (notices go out at 09:00).

        The compressed clock magnifies recovery: the worker's heartbeat timeout (15 s) and a restart's replay
        take some 20 real seconds, 16 business hours on this clock, while a reminder is obsolete 12 hours
        before the next one (engine/rules/ladder.py). A crash in the seconds around a 09:00 would then
        drop a reminder that, in real time, is 20 seconds late. So process faults land while no notice is
        being sent and the next day's are far enough off; Feishu faults land at any moment.
        """
        while not 12 <= clock.business().astimezone(wl.ZONE).hour < 19:
            await asyncio.sleep(0.1)

    async def chaos() -> None:
        """Faults at random moments, spaced so that each one is over before the next begins."""
        rnd = run.random
        process: list[Callable[[], Awaitable[None]]] = [run.kill_worker] * PROFILE.worker_kills
        process += [lambda: run.restart_temporal(hard=False)] * PROFILE.temporal_restarts
        if PROFILE.temporal_restarts > 1:
            process[-1] = lambda: run.restart_temporal(hard=True)
        # Feishu faults answer the next N calls, whenever they come: a stretch of seconds could fall
        # between bursts and hit nothing.
        feishu: list[Callable[[], Awaitable[None]]] = [
            lambda: run.inject({"kind": "rate_limit", "times": 12, "reset": 1},
                               "rate limit 429/99991400, the next 12 API calls"),
            lambda: run.inject({"kind": "server_error", "status": 502, "times": 15},
                               "5xx (502 HTML page / JSON, alternating), the next 15 API calls"),
            lambda: run.inject({"kind": "server_error", "status": 500, "html": False, "times": 10},
                               "5xx (500 JSON), the next 10 API calls"),
            lambda: run.inject({"kind": "slow", "delay": 1.5, "times": 10},
                               "slow responses (1.5 s), the next 10 API calls"),
            lambda: run.inject({"kind": "expired_token", "times": 6}, "answers 99991663 (token expired) x6"),
            run.expire_tokens,
            run.expire_tokens,
        ]
        actions = process + feishu
        rnd.shuffle(actions)
        for action in actions:
            await asyncio.sleep(rnd.uniform(2.0, 4.5))
            if action in process:
                await off_peak()
                await asyncio.sleep(rnd.uniform(0.0, 2.0))
            await action()

    async def redeliver_after_restart() -> None:
        """Every event once more, and every card press again, after another ingress restart."""
        await asyncio.sleep(run.random.uniform(20, 30))
        await run.restart_ingress()
        again = [job(item, "record event again (after an ingress restart)") for item in deliveries]
        run.random.shuffle(again)
        await gather_limited(again, 6)
        await run.forge(by_group["decoy"], pressed)

    async def loan(asset: wl.Asset) -> None:
        """Borrowed from its card, kept a few seconds, returned."""
        expected[asset.asset_id] = wl.loan_expectation(asset)
        await run.press_loan(asset, "borrow", f"ev-loan-borrow-{asset.asset_id}", "card press (borrow an asset)")
        await asyncio.sleep(run.random.uniform(0.5, 5.0))
        await run.press_loan(asset, "return", f"ev-loan-return-{asset.asset_id}", "card press (return it)")

    plugin_effects: list[rp.Effects] = []
    shift_keys: dict[str, str] = {}  # department -> its shift's key

    async def shift(dept: rp.Department) -> None:
        """A shift started by its rota driver (as the schedule would); a pressed one written and confirmed."""
        wid = await start_shift(run, dept)
        plugin_effects.append(rp.shift_effects(dept, wid))
        key = shift_keys[dept.department] = wid.split(":", 2)[2]
        if not dept.pressed:
            return
        await wait_for_message(run, f"{wid}:form", f"{key}'s form")
        giver, receiver = dept.person("giver"), dept.person("receiver")
        for op, who, form, extra in (("handover.entry", giver, rp.PATIENT, {}), ("handover.submit", giver, {}, {}),
                                     ("handover.ack_patient", receiver, None, {"bed": rp.PATIENT["bed"]}),
                                     ("handover.ack", receiver, {"synthesis": "已了解"}, {})):
            await run.card({"op": op, "key": key, **extra}, who, f"om_hd_{dept.department}",
                           f"ev-hd-{op.split('.')[1]}-{dept.department}", form, f"card press ({op})", rp.HANDOVER)

    async def project(item: rp.Project) -> None:
        """Asked for by message (pushed again under a new event id), then moved one stage by a press."""
        plugin_effects.append(rp.project_effects(item))
        for suffix in ("", "-again"):
            await run.deliver_message(item.text, rp.PD_REQUESTS, item.requester, item.message_id,
                                      f"ev-pd-create-{item.index:03d}{suffix}",
                                      "message (create a delivery project)" if not suffix else
                                      "message pushed again under a new event id")
        await wait_for_message(run, f"{item.wid}:0:created", f"{item.project_id}'s reply")
        await run.card({"scenario": rp.PROJECTS, "op": "stage", "project": item.project_id, "stage": rp.PD_NEXT[0]},
                       rp.PD_STAFF["项目经理"], f"om_pd_card_{item.index:03d}", f"ev-pd-stage-{item.index:03d}", None,
                       "card press (project stage done)", rp.PROJECTS)

    async def opening(item: rp.Opening) -> None:
        """A requisition row added, approved by its head, closed by the recruiter once open; an application
        row for it added, screened and rejected by the recruiter. Each row event is pushed twice."""
        plugin_effects.extend(rp.opening_effects(item))
        for table, record, what in ((rp.RC_REQS, item.req_record, "requisition"),
                                    (rp.RC_APPS, item.app_record, "application")):
            for label in (f"record event (recruiting {what} added)", "record event again (duplicate)"):
                await run.deliver_row(rp.RC_APP, table, record, "record_added", f"ev-rc-{record}", label)
        roles, base = rp.RC_ROLES, {"scenario": rp.RECRUITING}
        # the recruiter's card comes once the application is read: its first write (the 投递编号 cell)
        await wait_for_cell(run, rp.RC_APP, rp.RC_APPS, item.app_record, "投递编号")
        await wait_for_message(run, f"{item.req_wid}:approval:1", f"{item.req_record}'s approval card")
        await run.card({**base, "op": "approve", "req": item.req_record}, roles["hospital_head"],
                       f"om_rc_{item.req_record}", f"ev-rc-approve-{item.index:03d}", None,
                       "card press (approve a requisition)", rp.RECRUITING)
        for to in ("screened", "rejected"):
            await run.card({**base, "op": "move", "app": item.app_record, "to": to}, roles["recruiter"],
                           f"om_rc_{item.app_record}", f"ev-rc-{to}-{item.index:03d}", None,
                           f"card press (application {to})", rp.RECRUITING)
        await wait_for_message(run, f"{item.req_wid}:approved", f"{item.req_record}'s approval notice")
        await run.card({**base, "op": "close_req", "req": item.req_record}, roles["recruiter"],
                       f"om_rc_{item.req_record}", f"ev-rc-close-{item.index:03d}", None,
                       "card press (close a requisition)", rp.RECRUITING)

    async def fa_opening(item: rp.FeishuOpening) -> None:
        """A requisition row (pushed twice) of the hospital approving in Feishu: its instance decided at the
        stand-in, the approval_instance events pushed as Feishu may: the decision, the stale PENDING news
        after it, the decision again."""
        plugin_effects.append(rp.feishu_opening_effects(item))
        for label in ("record event (recruiting requisition, Feishu approval)", "record event again (duplicate)"):
            await run.deliver_row(rp.RC_APP, rp.RC_REQS, item.req_record, "record_added", f"ev-rc-{item.req_record}",
                                  label)

        async def instance() -> str:
            for found in (await run.state()).get("approval_instances", []):
                if item.position in str(found.get("form")):
                    return str(found["instance_code"])
            return ""

        code = await rh.wait_until(instance, f"{item.req_record}'s approval instance", 180, every=1.0)
        await asyncio.sleep(run.random.uniform(0.0, 3.0))
        response = await run.http.post(f"{stack.standin_url}/_standin/approval/decide", json={
            "instance_code": code, "action": item.outcome,
            "open_id": "" if item.outcome == "cancel" else rp.RC_ROLES["hospital_head"]})
        assert response.status_code == 200, response.text
        decided = response.json()["event"]
        stale = ev.approval_v1(rp.RC_APPROVAL_CODE, code, "PENDING", app_id=rh.APP_ID, tenant_key=rh.TENANT,
                               token=rh.VERIFICATION_TOKEN)
        for payload, label in ((decided, "approval_instance event (the decision)"),
                               (stale, "approval_instance event out of order (PENDING after the decision)"),
                               (decided, "approval_instance event again (duplicate)")):
            await run.push(payload, str(payload["uuid"]), label)

    async def documents_round() -> None:
        """The round's row added (pushed twice) with a deadline two working days out; every hospital but the
        late one answers once its card is out (one by a file, pushed again under a new event id); the late
        one never does: its ladder and the deadline's summary run while the rest of the run goes on."""
        if not hospitals:
            return
        deadline = calendar.add_workdays(clock.business().date(), 2)
        deadline_ms = int(datetime.combine(deadline, datetime.min.time(), tzinfo=wl.ZONE).timestamp() * 1000)
        merged = await run.http.post(f"{stack.standin_url}/_standin/state", json={"bitable": {rp.DOC_APP: {
            rp.DOC_ROUNDS: {"records": [{"record_id": rp.DOC_RECORD, "fields": rp.round_fields(deadline_ms)}]}}}})
        assert merged.status_code == 200, merged.text
        effects = rp.document_effects(hospitals, deadline, calendar)
        plugin_effects.extend(effects)
        for label in ("record event (documents round added)", "record event again (duplicate)"):
            await run.deliver_row(rp.DOC_APP, rp.DOC_ROUNDS, rp.DOC_RECORD, "record_added", "ev-doc-round", label)
        wid = rp.round_wid()
        base = {"scenario": rp.DOCUMENTS, "op": "submit", "round": rp.DOC_ROUND}
        for h, effect in zip(hospitals, effects[1:], strict=True):
            await wait_for_message(run, f"{wid}:{h.site}:new:{h.responsible[0]}", f"{h.site}'s round card")
            if h.late:
                continue
            if h.uploads_file:
                effect.messages.add(f"{wid}:reply:{await send_file(run, h)}")
                continue
            await run.card({**base, "site": h.site}, h.responsible[0], f"om_doc_{h.site}", f"ev-doc-submit-{h.site}",
                           {"link": f"https://example.feishu.cn/drive/file/{h.site}"},
                           "card press (documents: material's link)", rp.DOCUMENTS)

    tickets: list[str] = []

    async def ticket(item: rp.Report) -> None:
        """A fault reported (the message pushed again under a new event id), accepted, done and rated."""
        for suffix in ("", "-again"):
            await run.deliver_message(item.text, rp.RP_CHAT, item.reporter, item.message_id,
                                      f"ev-rp-report-{item.index:03d}{suffix}",
                                      "message pushed again under a new event id" if suffix else
                                      "message (report a fault)")

        async def number() -> str:
            for message in (await run.state())["messages"]:
                if message.get("parent_id") == item.message_id and message.get("_origin") == "bot":
                    found = re.search(r"BX-\d{6}-[A-Z2-7]{5}", message["body"]["content"])
                    if found:
                        return found.group(0)
            return ""

        number_ = await rh.wait_until(number, f"the ticket number of {item.message_id}", 180, every=1.0)
        tickets.append(number_)
        plugin_effects.append(rp.ticket_effects(item, number_))
        for op, who, extra in (("accept", rp.RP_TECH, {}), ("done", rp.RP_TECH, {}),
                               ("rate", item.reporter, {"score": 5})):
            await run.card({"scenario": rp.REPAIR, "op": op, "ticket": number_, **extra}, who,
                           f"om_rp_card_{item.index:03d}", f"ev-rp-{op}-{item.index:03d}", None,
                           f"card press (repair {op})", rp.REPAIR)

    card_jobs = [lambda d=d: presses(d) for d in pressed]  # type: ignore[misc]
    card_jobs += [lambda a=a: loan(a) for a in assets]  # type: ignore[misc]
    card_jobs += [lambda d=d: shift(d) for d in depts]  # type: ignore[misc]
    card_jobs += [lambda p=p: project(p) for p in projects]  # type: ignore[misc]
    card_jobs += [lambda o=o: opening(o) for o in openings]  # type: ignore[misc]
    card_jobs += [lambda r=r: ticket(r) for r in reports]  # type: ignore[misc]
    card_jobs += [lambda o=o: fa_opening(o) for o in fa_openings]  # type: ignore[misc]
    run.random.shuffle(card_jobs)
    duplicates = [job(item, "record event again (duplicate)") for item in deliveries[: half // 2]]
    await asyncio.gather(gather_limited(card_jobs + duplicates, 4), chaos(), redeliver_after_restart(),
                         documents_round())
    # the presses again, same event ids (Feishu would not, a network would): each must change nothing
    again_jobs = []
    for device in pressed:
        again_jobs.append(lambda d=device: run.press(d, "sent_out", f"ev-card-sent-{d.device_id}", {
            "vendor": "someone else", "sent_on": "2000-01-01 +0800"}, "card press again (duplicate)"))
    for asset in assets:  # after the return: a stale borrow must not lend the asset again
        again_jobs.append(lambda a=asset: run.press_loan(a, "borrow", f"ev-loan-borrow-{a.asset_id}",
                                                         "card press again (duplicate)"))
    for dept in depts:  # a stale submit after the confirmation must change nothing
        if dept.pressed and dept.department in shift_keys:
            again_jobs.append(lambda d=dept: run.card(
                {"op": "handover.submit", "key": shift_keys[d.department]}, d.person("giver"),
                f"om_hd_{d.department}", f"ev-hd-submit-{d.department}", {}, "card press again (duplicate)"))
    for item in projects:
        again_jobs.append(lambda p=item: run.card(
            {"scenario": rp.PROJECTS, "op": "stage", "project": p.project_id, "stage": rp.PD_NEXT[0]},
            rp.PD_STAFF["项目经理"], f"om_pd_card_{p.index:03d}", f"ev-pd-stage-{p.index:03d}", None,
            "card press again (duplicate)"))
    await gather_limited(again_jobs, 4)
    run.mark("card presses, faults and redeliveries done")

    # ---- "@bot <key> 状态" to every plugin at once, each pushed twice (a new event id, the same message id),
    # in rounds until the Feishu faults left over are used up: each question is answered exactly once. The
    # router sends these replies itself (a failed one answers the push 500, and Feishu pushes again), so
    # they get the longer schedule: one question may meet every fault left over.
    questions: dict[str, str] = {}  # the question's message id -> the plugin asked
    subjects = [(wl.SCENARIO, [d.device_id for d in registered]), (wl.LOANS, [a.asset_id for a in assets]),
                (rp.HANDOVER, [d.department for d in depts]), (rp.PROJECTS, [p.project_id for p in projects]),
                (rp.RECRUITING, [o.req_record for o in openings]), (rp.REPAIR, tickets),
                (rp.DOCUMENTS, [rp.DOC_ROUND] if hospitals else [])]

    async def ask(turn: int, plugin: str, key: str) -> None:
        message_id = f"om_status_{turn}_{plugin}"
        questions[message_id] = plugin
        for again in (False, True):
            await run.deliver_message(f"{key} 状态", STATUS_CHAT, STATUS_ASKER, message_id,
                                      f"ev-status-{turn}-{plugin}{'-again' if again else ''}",
                                      "message pushed again under a new event id" if again else
                                      "message (a status question)", CARD_REDELIVERY)

    for turn in range(8):
        await asyncio.gather(*(ask(turn, plugin, keys[turn % len(keys)]) for plugin, keys in subjects if keys))
        if turn >= 1 and not (await run.http.get(f"{stack.standin_url}/_standin/faults")).json():
            break
    run.mark("status questions answered")

    # ---- wait for the end of every ladder, then for the stand-in to go quiet
    last = max(e.last_notice_at for e in expected.values() if e.last_notice_at is not None)
    last = max([last, *(e.done_by for e in plugin_effects if e.done_by is not None)])
    end_real = clock.real(last + timedelta(hours=6))
    wanted = {key for e in expected.values() for key in e.notices}
    wanted |= {key for e in plugin_effects for key in e.messages}

    async def done() -> bool:
        if datetime.now(wl.ZONE) < end_real:
            return False
        state = await run.state()
        seen = {m.get("_uuid") for m in state["messages"]}
        return all(wl.message_uuid(wl.ORG, key) in seen for key in wanted)

    with contextlib.suppress(AssertionError):  # a loss is reported by the comparison below
        await rh.wait_until(done, "every expected notice", (end_real - datetime.now(wl.ZONE)).total_seconds() + 60,
                            every=1.0)
    await asyncio.sleep(3)  # anything still in flight (a duplicate would be) lands now
    run.mark("every ladder over")

    # ---- compare with what the stand-in recorded
    state = await run.state()
    (stack.dir / "standin-final.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    rows = {r["record_id"]: r["fields"] for r in state["bitable"][wl.APP][wl.TABLE]["records"]}
    writes = row_writes(await run.calls(f"/open-apis/bitable/v1/apps/{wl.APP}/tables/{wl.TABLE}/records"))
    loan_writes = row_writes(await run.calls(f"/open-apis/bitable/v1/apps/{wl.LOAN_APP}/tables/{wl.ASSETS}/records"))
    loan_rows = {r["record_id"]: r["fields"] for r in state["bitable"][wl.LOAN_APP][wl.ASSETS]["records"]}
    all_calls = await run.calls("/open-apis/")

    # handover and project_delivery first: their messages are set apart before the others are compared
    tallies: dict[str, rp.Tally] = {wl.SCENARIO: rp.Tally(), wl.LOANS: rp.Tally()}
    handovers = f"/open-apis/bitable/v1/apps/{rp.HD_APP}/tables/{rp.HD_TABLE}/"
    keyed = rp.keyed_writes(await run.calls(handovers), "交班编号")
    keyed.update(rp.keyed_writes(await run.calls(f"/open-apis/bitable/v1/apps/{rp.PD_APP}/tables/{rp.PD_PROJECTS}/"),
                                 "项目编号"))
    for app, table, key_cell in ((rp.RC_APP, rp.RC_REQS, "职位编号"), (rp.RC_APP, rp.RC_APPS, "投递编号"),
                                 (rp.RP_APP, rp.RP_TICKETS, "工单号"), (rp.DOC_APP, rp.DOC_ANSWERS, "编号")):
        keyed.update(rp.keyed_writes(await run.calls(f"/open-apis/bitable/v1/apps/{app}/tables/{table}/"),
                                     key_cell))
    replies = Counter(m.get("parent_id") for m in state["messages"]
                      if m.get("_origin") == "bot" and m.get("parent_id") in questions)
    for message_id, plugin in sorted(questions.items()):
        tallies.setdefault(plugin, rp.Tally()).add("status replies", message_id, 1, replies.get(message_id, 0))
    answers = [m for m in state["messages"] if m.get("parent_id") not in questions]
    theirs = rp.compare(plugin_effects, {**state, "messages": answers}, tallies, keyed, depts)
    await check_approvals(stack, fa_openings, tallies)
    if hospitals:
        check_documents(hospitals, state, all_calls, tallies)
    others = [m for m in answers if m.get("_uuid") not in theirs]
    notices = {key: v for e in expected.values() for key, v in e.notices.items()}
    messages = wl.compare_messages(notices, others)
    for plugin, prefix in ((wl.SCENARIO, "RL-"), (wl.LOANS, "RA-")):
        own = {key: v for key, v in notices.items() if v[0].startswith(prefix)}
        mine = [m for m in others if ((m.get("_to") or {}).get("id", "").startswith("ou_borrower_")) ==
                (plugin == wl.LOANS)]
        split = wl.compare_messages(own, mine)
        tallies[plugin].expected["messages"] += split.expected
        tallies[plugin].seen["messages"] += split.seen
        tallies[plugin].lost += split.lost
        tallies[plugin].duplicated += split.duplicated
    row_result = wl.Comparison()
    write_result = wl.Comparison()
    log_result = wl.Comparison()
    logs = log_rows(state)
    log_keys = Counter(r.get("日志编号") for r in logs)
    log_per_item = Counter(r.get("设备编号") for r in logs)
    log_per_item.update(r["fields"].get("资产编号") for r in state["bitable"][wl.LOAN_APP][wl.LOAN_HISTORY]["records"])
    raw_writes = 0

    def check(name: str, label: str, want: wl.Expected, got_row: dict[str, Any],
              applied: list[dict[str, Any]]) -> None:
        """One row's final values, its updates (in order, a re-application collapsed) and its log rows."""
        tally = tallies[wl.LOANS if name.startswith("RA-") else wl.SCENARIO]
        before = (len(row_result.lost), len(write_result.lost), len(write_result.duplicated), len(log_result.lost),
                  len(log_result.duplicated))
        check_one(name, label, want, got_row, applied)
        after = (len(row_result.lost), len(write_result.lost), len(write_result.duplicated), len(log_result.lost),
                 len(log_result.duplicated))
        tally.lost += [f"{label}: see the effect table"] * (after[0] - before[0] + after[1] - before[1] +
                                                            after[3] - before[3])
        tally.duplicated += [f"{label}: see the effect table"] * (after[2] - before[2] + after[4] - before[4])
        tally.expected["Bitable rows"] += 1
        tally.seen["Bitable rows"] += 1 if after[0] == before[0] else 0
        tally.expected["Bitable row writes"] += len(want.writes)
        tally.seen["Bitable row writes"] += len(want.writes) if after[1] == before[1] else 0
        tally.expected["log rows"] += want.log_entries
        tally.seen["log rows"] += want.log_entries if after[3] == before[3] else 0

    def check_one(name: str, label: str, want: wl.Expected, got_row: dict[str, Any],
                  applied: list[dict[str, Any]]) -> None:
        nonlocal raw_writes
        row_result.expected += 1
        wrong = {k: (v, got_row.get(k)) for k, v in want.final.items() if got_row.get(k) != v}
        if wrong:
            row_result.lost.append(f"{label} row: {wrong}")
        else:
            row_result.seen += 1
        raw_writes += len(applied)
        logical = wl.collapse(applied)
        write_result.expected += len(want.writes)
        write_result.seen += min(len(logical), len(want.writes))
        if logical != want.writes:
            missing = [w for w in want.writes if w not in logical]
            extra = len(logical) - (len(want.writes) - len(missing))
            if missing:
                write_result.lost.append(f"{label}: writes {logical} instead of {want.writes}")
            if extra > 0:
                write_result.duplicated.append(f"{label}: writes {logical} instead of {want.writes}")
        log_result.expected += want.log_entries
        got = log_per_item.get(name, 0)
        log_result.seen += min(got, want.log_entries)
        if got < want.log_entries:
            log_result.lost.append(f"{label}: {got} log rows, {want.log_entries} expected")
        elif got > want.log_entries:
            log_result.duplicated.append(f"{label}: {got} log rows, {want.log_entries} expected")

    for device in devices:
        check(device.device_id, f"{device.device_id} ({device.group})", expected[device.device_id],
              rows.get(device.record_id, {}), writes.get(device.record_id, []))
    for asset in assets:
        row = loan_rows.get(asset.record_id, {})
        statuses = [{"状态": w["状态"]} for w in loan_writes.get(asset.record_id, []) if "状态" in w]
        check(asset.asset_id, f"{asset.asset_id} (loan)", expected[asset.asset_id], row, statuses)
        if row.get("借用人"):
            row_result.lost.append(f"{asset.asset_id} (loan) row: returned but still lent to {row['借用人']}")
    log_result.duplicated += [f"log key {k} x{n}" for k, n in log_keys.items() if n > 1]

    # ---- stop everything cleanly, then read the logs
    await stack.stop_all()
    unexpected_tracebacks: dict[str, list[str]] = {}
    classified: Counter[str] = Counter()
    for name, proc in stack.procs.items():
        for chain, last in rh.exception_chains(proc.log_path.read_text(encoding="utf-8", errors="replace")):
            kind = classify(name, last)
            if kind is None:
                unexpected_tracebacks.setdefault(name, []).append(chain)
            else:
                classified[f"{name}: {kind}"] += 1

    planned = {key: at for e in expected.values() for key, at in e.planned.items()}
    late = wl.lateness(planned, state["messages"], clock)
    faulted_calls = Counter(c["fault"] for c in all_calls if c.get("fault"))
    elapsed = time.monotonic() - started
    table = render_table(run, messages, row_result, write_result, log_result, faulted_calls, classified, raw_writes,
                         elapsed, window, clock, late)
    table += "\n\n" + render_plugins(run, tallies)
    (stack.dir / "result.txt").write_text(table, encoding="utf-8")
    with capsys.disabled():
        print("\n" + table)

    problems = []
    for label, comparison in (("messages", messages), ("row values", row_result), ("row writes", write_result),
                              ("log rows", log_result)):
        problems += [f"{label} lost: {item}" for item in comparison.lost[:10]]
        problems += [f"{label} duplicated: {item}" for item in comparison.duplicated[:10]]
    for plugin, tally in sorted(tallies.items()):
        problems += [f"{plugin} lost: {item}" for item in tally.lost[:10]]
        problems += [f"{plugin} duplicated: {item}" for item in tally.duplicated[:10]]
        if plugin in ANSWERS_FIRST:
            problems += [f"{plugin} card press answered late (outside a process crash): {item}"
                         for item in run.late.get(plugin, [])[:10]]
    problems += [f"not answered 4xx: {item}" for item in run.bad_answers]
    problems += [f"never acknowledged: {item}" for item in run.unacknowledged]
    for name, blocks in unexpected_tracebacks.items():
        problems += [f"{name} log, unexpected traceback:\n{block[-2000:]}" for block in blocks[:3]]
    missed = {"rate_limit", "server_error", "slow", "expired_token"} - set(faulted_calls)
    problems += [f"no API call was answered by the {kind} fault" for kind in sorted(missed)]
    assert not problems, "\n".join(problems)
    assert all(count > 0 for count in run.faults.values()) and len(run.faults) >= 8


# Tracebacks a run may log on purpose: the worker reports each failed activity attempt (temporalio logs
# "Completing activity as failed" with the chain), and the ingress logs a push it answered 500 because a reply
# it sends itself failed (Feishu pushes it again). Only retryable Feishu errors the injected faults cause
# are expected; their codes: 1 (5xx with a JSON body), -3 (a gateway's HTML page), 99991400 (rate limit),
# 99991663 (expired token), -1 (no answer in time: a slow response).
FAULT_CODES = {"1": "5xx", "-3": "5xx HTML page", "99991400": "rate limit", "99991663": "expired token",
               "-1": "timeout"}
# The engine's Feishu activities raise ApplicationError("FeishuError.<code>: ..."); a plugin's own activity
# may let the client's FeishuError ("... failed: code <code>: ...") through, which Temporal retries alike.
_FEISHU_FAILURE = re.compile(r"(?:ApplicationError: FeishuError\.(-?\d+): |FeishuError: .* failed: code (-?\d+)\b)"
                             r".*retryable$")


def classify(process: str, last: str) -> str | None:
    """Why a traceback is expected, or None when it is not."""
    match = _FEISHU_FAILURE.search(last)
    code = (match.group(1) or match.group(2)) if match else None
    if process == "worker" and code in FAULT_CODES:
        return f"activity attempt failed: retryable Feishu error ({FAULT_CODES[code]}), retried"
    if process == "ingress" and code in FAULT_CODES:
        # a reply the router sends itself (a status answer): the push is answered 500, Feishu pushes again
        return f"dispatch failed: retryable Feishu error ({FAULT_CODES[code]}), answered 500, pushed again"
    return None


def render_plugins(run: Run, tallies: dict[str, rp.Tally]) -> str:
    """One row per plugin: its effects (messages, Bitable rows and writes, log rows, chats) expected, seen,
    lost and duplicated, and its card presses with those answered late (outside / inside a process crash)."""
    lines = [f"{'plugin':<30}{'effects':>9}{'seen':>8}{'lost':>6}{'dup':>6}{'presses':>9}{'late':>6}{'excused':>9}"
             "   effects by kind (expected)"]
    for plugin, tally in sorted(tallies.items()):
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(tally.expected.items()) if n)
        lines.append(f"  {plugin:<28}{sum(tally.expected.values()):>9}{sum(tally.seen.values()):>8}"
                     f"{len(tally.lost):>6}{len(tally.duplicated):>6}{run.presses[plugin]:>9}"
                     f"{len(run.late.get(plugin, [])):>6}{run.excused[plugin]:>9}   {kinds}")
    lines.append(f"  (late: a first press not answered with the plugin's own toast at once, i.e. repeated after a "
                 f"non-2xx answer, unanswered, or answered by the engine; excused: it overlapped a worker SIGKILL "
                 f"or an ingress restart until {CRASH_GRACE:g} s after the process was back, a Temporal restart "
                 f"until {TEMPORAL_GRACE:g} s after; asserted 0 for {', '.join(sorted(ANSWERS_FIRST))})")
    return "\n".join(lines)


def render_table(run: Run, messages: wl.Comparison, rows: wl.Comparison, writes: wl.Comparison,
                 logs: wl.Comparison, faulted_calls: Counter[str], classified: Counter[str], raw_writes: int,
                 elapsed: float, window: tuple[datetime, datetime], clock: wl.Clock,
                 late: list[tuple[float, str]]) -> str:
    lines = [f"reliability run: profile {PROFILE.name}, seed {run.seed}, {PROFILE.devices} devices "
             f"+ {PROFILE.decoys} decoys, {PROFILE.loans} loans, business clock x{clock.scale:g}, registered between "
             f"{window[0]:%m-%d %H:%M} and {window[1]:%m-%d %H:%M} (business), wall time {elapsed:.0f} s", "",
             f"{'fault injected':<72}{'count':>7}"]
    lines += [f"  {name:<70}{count:>7}" for name, count in sorted(run.faults.items())]
    lines += [f"  {'API calls answered by a fault: ' + kind:<70}{count:>7}"
              for kind, count in sorted(faulted_calls.items())]
    lines += ["", f"{'events sent':<72}{'count':>7}"]
    lines += [f"  {name:<70}{count:>7}" for name, count in sorted(run.events.items())]
    lines += [f"  {'forged/malformed answered ' + str(status):<70}{count:>7}"
              for status, count in sorted(run.refused.items())]
    lines += ["", "phases (real seconds since the start):"]
    lines += [f"  {at:6.1f}  {phase}" for phase, at in run.marks]
    lines += ["", f"{'effect':<40}{'expected':>10}{'seen':>10}{'lost':>10}{'duplicated':>12}"]
    for label, comparison in (("messages (by idempotency key)", messages), ("Bitable row final values", rows),
                              ("Bitable row updates", writes), ("log rows (calibration, loan history)", logs)):
        lines.append(f"  {label:<38}{comparison.expected:>10}{comparison.seen:>10}{len(comparison.lost):>10}"
                     f"{len(comparison.duplicated):>12}")
    lines.append(f"  (row updates the stand-in applied, identical re-applications after a crash included: "
                 f"{raw_writes})")
    if late:
        def point(q: float) -> str:
            hours = late[min(len(late) - 1, int(q * len(late)))][0]
            return f"{hours:.1f} h ({hours * 3600 / clock.scale:.1f} s real)"

        lines += ["", f"lateness of the {len(late)} notices due after registration (business time): "
                      f"median {point(0.5)}, p95 {point(0.95)}, max {point(1.0)}; the latest:"]
        lines += [f"  {hours:5.1f} h  {key}" for hours, key in late[-3:]]
    if classified:
        lines += ["", "tracebacks in the logs, all classified as expected:"]
        lines += [f"  {name:<70}{count:>7}" for name, count in sorted(classified.items())]
    return "\n".join(lines)
