"""Scale-out: two workers and two ingresses on one Temporal server, one worker SIGKILLed mid-run (issue 20).

The production processes as a cluster runs them, each its own OS process on loopback: one Temporal dev
server on a SQLite file (the external Temporal, reached by address), the Feishu stand-in, ``engine worker``
twice and ``engine ingress`` twice, all four on one config (relia_harness.py). The workload spans four
plugins: device_calibration rows registered by record-changed events, asset_loan items borrowed and
returned from their cards, project_delivery projects asked for by message and moved a stage, repair
tickets reported by message, accepted, done and rated, and "@bot <key> 状态" questions to each.

Every event reaches both ingresses, as Feishu's redelivery may reach either endpoint behind a load
balancer: the same event id pushed to both at once, or to one and then the other; every message is also
pushed again under a new event id (same message id). Each ingress's seen-set (engine/feishu/dedupe.py)
is its own memory, so both dispatch; what makes the effect happen once is shared: the workflow id
(signal-with-start and start with USE_EXISTING), the event ids a workflow records, Temporal's update-id
dedupe, a message's key (``message_key``) and the idempotency ``uuid`` of every send, which Feishu honours
for an hour (FEISHU_NOTES: "uuid on message create and reply (deduped for 1 h)"; the stand-in does too).

While the first pushes are under way the first worker is SIGKILLed and not restarted: the second carries
everything on. At the end the stand-in's record is compared with what each item must have caused, and a
table of expected, seen, lost and duplicated effects is printed, with the workflow tasks and activities
each worker ran (from the histories). The only tracebacks allowed in the logs are activity attempts
answered 1254291: two workers wrote to one Bitable table at once, and the attempt was retried.

Run it alone::

    .venv/bin/pytest -s tests/reliability/test_cluster.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import relia_harness as rh
import relia_plugins as rp
import relia_workload as wl

from engine.feishu.activities import message_uuid
from engine.feishu.standin import events as ev
from engine.feishu.standin.delivery import EventSender
from engine.ids import workflow_id

pytestmark = [pytest.mark.reliability]

PLUGINS = (wl.SCENARIO, wl.LOANS, rp.PROJECTS, rp.REPAIR)
WORKERS = ("worker-1", "worker-2")
INGRESSES = ("ingress-a", "ingress-b")
# devices are due far out (no notice falls in a run): registration alone, one log row each
PROFILE = wl.Profile("cluster", devices=int(os.environ.get("CLUSTER_DEVICES", "30")),
                     offsets=(wl.CARD_DUE_OFFSET,), sent_out=0, calibrated=0, decoys=0, worker_kills=1,
                     temporal_restarts=0, loans=10, projects=4, reports=4)
KILL_AFTER = 0.35  # the first worker is killed once this share of the first pushes is acknowledged
# Feishu's redelivery schedule, compressed (about 70 s in all): it outlasts the takeover of the killed
# worker's workflows (its sticky queues time out, its activities' heartbeats lapse)
REDELIVERY = [0.5, 1, 2, 3, 5, 8, 10, 10, 10, 10, 10]
STATUS_CHAT, STATUS_ASKER = "oc_cluster_status", "ou_cluster_asker"
TICKET = re.compile(r"BX-\d{6}-[A-Z2-7]{5}")


class Workload:
    """Pushes events to the two ingresses and keeps count of what it sent."""

    def __init__(self, stack: rh.Stack) -> None:
        self.stack = stack
        self.http = httpx.AsyncClient(trust_env=False, timeout=180)
        self.sender = EventSender(rh.ENCRYPT_KEY, rh.VERIFICATION_TOKEN)
        self.events: Counter[str] = Counter()
        self.unacknowledged: list[str] = []
        self.turn = 0  # alternates the way an event reaches both ingresses

    def urls(self) -> list[str]:
        return [self.stack.events_url_of(name) for name in INGRESSES]

    async def both(self, push: Callable[[str], Awaitable[None]], label: str) -> None:
        """``push`` to both ingresses: at once (two replicas racing), or to one and then the other (a
        redelivery that the load balancer sends elsewhere), in turn."""
        self.turn += 1
        first, second = self.urls()[self.turn % 2], self.urls()[(self.turn + 1) % 2]
        if self.turn % 4 < 2:
            await asyncio.gather(push(first), push(second))
            self.events[f"{label}: same event id to both ingresses at once"] += 1
        else:
            await push(first)
            await push(second)
            self.events[f"{label}: same event id to one ingress, then the other"] += 1

    async def _via_standin(self, url: str, body: dict[str, Any]) -> None:
        response = await self.http.post(f"{self.stack.standin_url}/_standin/deliver",
                                        json={"url": url, "wait": True, "retries": REDELIVERY, **body})
        result = response.json()
        if not result.get("acknowledged"):
            self.unacknowledged.append(f"{body.get('event_id')} at {url}: {result.get('status')}")
        self.events["pushes repeated after a non-2xx answer"] += len(result.get("attempts", [])) - 1

    async def record(self, device: wl.Device) -> None:
        event = ev.bitable_record_changed(wl.APP, wl.TABLE, device.record_id, operator_open_id=device.manager,
                                          action="record_added", after=device.fields)
        body = {"event_type": ev.EVENT_BITABLE_RECORD_CHANGED, "event": event, "event_id": f"ev-add-{device.device_id}"}
        await self.both(lambda url: self._via_standin(url, body), "record event")

    async def message(self, text: str, chat_id: str, sender: str, message_id: str, event_id: str) -> None:
        """A message @-mentioning the bot to both ingresses, then again under a new event id to one."""
        message = {"text": text, "chat_id": chat_id, "sender_open_id": sender, "message_id": message_id}
        await self.both(lambda url: self._via_standin(url, {"event_id": event_id, "message": message}), "message")
        await self._via_standin(self.urls()[self.turn % 2], {"event_id": f"{event_id}-again", "message": message})
        self.events["message: pushed again under a new event id"] += 1

    async def card(self, value: dict[str, Any], operator: str, message_id: str, event_id: str) -> None:
        """A card button press, to both ingresses (each push retried until answered 200)."""
        event = ev.card_action_event(value, operator, message_id, "oc_p2p", tenant_key=rh.TENANT)
        payload = ev.envelope_v2(ev.EVENT_CARD_ACTION, event, app_id=rh.APP_ID, tenant_key=rh.TENANT,
                                 token=rh.VERIFICATION_TOKEN, event_id=event_id)

        async def push(url: str) -> None:
            result = await self.sender.deliver(url, payload, event_id=event_id, retries=REDELIVERY, timeout=5.0)
            if not result.acknowledged:
                self.unacknowledged.append(f"card {value.get('op')} {event_id} at {url}: {result.status}")
            self.events["pushes repeated after a non-2xx answer"] += len(result.attempts) - 1

        await self.both(push, "card press")

    async def state(self) -> dict[str, Any]:
        return (await self.http.get(f"{self.stack.standin_url}/_standin/state")).json()  # type: ignore[no-any-return]


# Each worker serializes its own writes to a Bitable table; two workers' writes to one table at once are
# answered 1254291 (Feishu's one writer per table) and the activity is retried: its failed attempt is logged.
WRITE_CONFLICT = re.compile(r"ApplicationError: FeishuError\.1254291: .*retryable$")


async def work_by_worker(address: str, wids: list[str], pids: dict[int, str]) -> Counter[str]:
    """Workflow tasks and activities each worker process ran, read from the workflows' histories (a
    worker's identity is "<pid>@<host>")."""
    from temporalio.client import Client

    client = await Client.connect(address)
    counts: Counter[str] = Counter()
    for wid in wids:
        with contextlib.suppress(Exception):  # a workflow that never started is a loss, counted elsewhere
            async for event in client.get_workflow_handle(wid).fetch_history_events():
                for kind, attributes in (("workflow tasks", event.workflow_task_started_event_attributes),
                                         ("activities", event.activity_task_started_event_attributes)):
                    if attributes.identity:
                        pid = int(attributes.identity.split("@", 1)[0] or 0)
                        counts[f"{pids.get(pid, 'another process')}: {kind}"] += 1
    return counts


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[rh.Stack]:
    stack = rh.Stack(tmp_path / "cluster")
    try:
        yield stack
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stack.stop_all(), 90)
        stack.kill_all()


async def test_two_workers_two_ingresses_one_killed(stack: rh.Stack, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    marks: list[tuple[str, float]] = []

    def mark(phase: str) -> None:
        marks.append((phase, time.monotonic() - started))

    await stack.start_temporal()
    devices = wl.build_fleet(PROFILE, datetime.now(wl.ZONE).date())
    assets = wl.build_assets(PROFILE)
    projects = [rp.Project(i) for i in range(PROFILE.projects)]
    reports = [rp.Report(i) for i in range(PROFILE.reports)]
    stack.standin_state.write_text(json.dumps(wl.seed(devices, rh.ENCRYPT_KEY, rh.VERIFICATION_TOKEN, assets,
                                                      rp.people([], projects, reports) | {STATUS_ASKER}),
                                              ensure_ascii=False), encoding="utf-8")
    await stack.start_standin()
    # the real clock (scale 1): nothing in the workload is due within a run
    stack.config_path.write_text(wl.config_toml(stack.ports["temporal"], stack.ports["ingress"],
                                                datetime.now(UTC), 1.0, PROFILE, plugins=PLUGINS), encoding="utf-8")
    await asyncio.gather(*(stack.start_worker(name) for name in WORKERS))
    await asyncio.gather(*(stack.start_ingress(name) for name in INGRESSES))
    mark("stack up (Temporal, stand-in, 2 workers, 2 ingresses)")
    run = Workload(stack)

    # ---- the workload: every item's first pushes, with the first worker SIGKILLed part-way through
    first_pushes = len(devices) + len(assets) + len(projects) + len(reports)
    done_first: list[str] = []
    killed_at: list[float] = []  # wall-clock ms (the stand-in's create_time) and monotonic seconds

    async def device(item: wl.Device) -> None:
        await run.record(item)
        done_first.append(item.device_id)

    async def loan(item: wl.Asset) -> None:
        value = {"scenario": wl.LOANS, "asset": item.asset_id}
        await run.card({**value, "op": "borrow"}, item.borrower, f"om_asset_{item.asset_id}",
                       f"ev-loan-borrow-{item.asset_id}")
        done_first.append(item.asset_id)
        await run.card({**value, "op": "return"}, item.borrower, f"om_asset_{item.asset_id}",
                       f"ev-loan-return-{item.asset_id}")

    async def project(item: rp.Project) -> None:
        await run.message(item.text, rp.PD_REQUESTS, item.requester, item.message_id, f"ev-pd-create-{item.index:03d}")
        done_first.append(item.project_id)
        await rh.wait_until(lambda: sent(f"{item.wid}:0:created"), f"{item.project_id}'s reply", 180, every=1.0)
        await run.card({"scenario": rp.PROJECTS, "op": "stage", "project": item.project_id, "stage": rp.PD_NEXT[0]},
                       rp.PD_STAFF["项目经理"], f"om_pd_card_{item.index:03d}", f"ev-pd-stage-{item.index:03d}")

    tickets: dict[str, rp.Report] = {}

    async def ticket(item: rp.Report) -> None:
        await run.message(item.text, rp.RP_CHAT, item.reporter, item.message_id, f"ev-rp-report-{item.index:03d}")
        done_first.append(item.message_id)

        async def number() -> str:
            for message in (await run.state())["messages"]:
                if message.get("parent_id") == item.message_id and message.get("_origin") == "bot":
                    found = TICKET.search(message["body"]["content"])
                    if found:
                        return found.group(0)
            return ""

        found = await rh.wait_until(number, f"the ticket number of {item.message_id}", 180, every=1.0)
        tickets[found] = item
        for op, who, extra in (("accept", rp.RP_TECH, {}), ("done", rp.RP_TECH, {}),
                               ("rate", item.reporter, {"score": 5})):
            await run.card({"scenario": rp.REPAIR, "op": op, "ticket": found, **extra}, who,
                           f"om_rp_card_{item.index:03d}", f"ev-rp-{op}-{item.index:03d}")

    async def sent(key: str) -> bool:
        uuid = message_uuid(wl.ORG, key)
        return any(m.get("_uuid") == uuid for m in (await run.state())["messages"])

    async def kill_first_worker() -> None:
        while len(done_first) < KILL_AFTER * first_pushes:
            await asyncio.sleep(0.05)
        killed_at.extend([time.time() * 1000, time.monotonic()])
        await stack.procs[WORKERS[0]].kill()
        mark(f"{WORKERS[0]} SIGKILLed ({len(done_first)} of {first_pushes} first pushes acknowledged)")

    jobs: list[Callable[[], Awaitable[None]]] = [lambda d=d: device(d) for d in devices]  # type: ignore[misc]
    jobs += [lambda a=a: loan(a) for a in assets]  # type: ignore[misc]
    jobs += [lambda p=p: project(p) for p in projects]  # type: ignore[misc]
    jobs += [lambda r=r: ticket(r) for r in reports]  # type: ignore[misc]
    order = list(range(len(jobs)))
    # interleave the plugins deterministically: every fifth job from each kind in turn
    order.sort(key=lambda i: (i % 5, i))
    semaphore = asyncio.Semaphore(6)

    async def limited(job: Callable[[], Awaitable[None]]) -> None:
        async with semaphore:
            await job()

    await asyncio.gather(kill_first_worker(), *(limited(jobs[i]) for i in order))
    mark("every event pushed to both ingresses (presses, reports, projects done)")

    # ---- a status question to each plugin, to both ingresses and again under a new event id: the
    # ingresses send these replies themselves
    subjects = {wl.SCENARIO: devices[0].device_id, wl.LOANS: assets[0].asset_id,
                rp.PROJECTS: projects[0].project_id, rp.REPAIR: next(iter(tickets))}
    questions = {f"om_status_{plugin}": plugin for plugin in subjects}
    await asyncio.gather(*(run.message(f"{key} 状态", STATUS_CHAT, STATUS_ASKER, f"om_status_{plugin}",
                                       f"ev-status-{plugin}") for plugin, key in subjects.items()))
    mark("status questions asked")

    # ---- what each item must have caused
    loan_notices = {key: v for a in assets for key, v in wl.loan_expectation(a).notices.items()}
    effects = [rp.project_effects(p) for p in projects]
    effects += [rp.ticket_effects(report, number) for number, report in tickets.items()]
    wanted = set(loan_notices) | {key for e in effects for key in e.messages if not key.endswith("*")}

    async def settled() -> bool:
        state = await run.state()
        seen = {m.get("_uuid") for m in state["messages"]}
        logs = state["bitable"][wl.APP][wl.LOG]["records"]
        return all(message_uuid(wl.ORG, key) in seen for key in wanted) and len(logs) >= len(devices)

    with contextlib.suppress(AssertionError):  # a loss is reported by the comparison below
        await rh.wait_until(settled, "every expected effect", 180, every=1.0)
    await asyncio.sleep(3)  # anything still in flight (a duplicate would be) lands now
    mark("every expected effect seen at the stand-in")

    # ---- compare
    state = await run.state()
    (stack.dir / "standin-final.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
    delivered = [m for m in state["messages"] if m.get("_origin") == "bot"]
    tallies: dict[str, rp.Tally] = {plugin: rp.Tally() for plugin in PLUGINS}
    calls = (await run.http.get(f"{stack.standin_url}/_standin/calls", params={"limit": "0", "path": "/open-apis/"})
             ).json()
    keyed: dict[str, list[dict[str, Any]]] = {}
    for key_cell in ("项目编号", "工单号"):
        keyed.update(rp.keyed_writes(calls, key_cell))
    replies = Counter(m.get("parent_id") for m in delivered if m.get("parent_id") in questions)
    for message_id, plugin in sorted(questions.items()):
        tallies[plugin].add("status replies", message_id, 1, replies.get(message_id, 0))
    answers = [m for m in delivered if m.get("parent_id") not in questions]
    known = rp.compare(effects, {**state, "messages": answers}, tallies, keyed, [])
    by_uuid = Counter(m.get("_uuid", "") for m in answers)
    for key in sorted(loan_notices):
        tallies[wl.LOANS].add("messages", key, 1, by_uuid.get(message_uuid(wl.ORG, key), 0))
    known |= {message_uuid(wl.ORG, key) for key in loan_notices}
    for message in answers:  # devices due in 40 days get no message; every other one is known
        if message.get("_uuid", "") not in known:
            to = str((message.get("_to") or {}).get("id", ""))
            owner = wl.LOANS if to.startswith("ou_borrower_") else wl.SCENARIO
            tallies[owner].duplicated.append(f"unexpected message to {to}: "
                                             f"{message.get('body', {}).get('content', '')[:120]}")
    logs = [r["fields"] for r in state["bitable"][wl.APP][wl.LOG]["records"]]
    per_device = Counter(r.get("设备编号") for r in logs if r.get("动作") == "registered")
    for item in devices:
        tallies[wl.SCENARIO].add("log rows (registered)", item.device_id, 1, per_device.get(item.device_id, 0))
    for key, n in Counter(r.get("日志编号") for r in logs).items():
        if n > 1:
            tallies[wl.SCENARIO].duplicated.append(f"log key {key} x{n}")
    history = Counter(r["fields"].get("资产编号") for r in state["bitable"][wl.LOAN_APP][wl.LOAN_HISTORY]["records"])
    rows = {r["record_id"]: r["fields"] for r in state["bitable"][wl.LOAN_APP][wl.ASSETS]["records"]}
    for item in assets:
        tallies[wl.LOANS].add("history rows (borrow, return)", item.asset_id, 2, history.get(item.asset_id, 0))
        if rows.get(item.record_id, {}).get("状态") != "在库" or rows.get(item.record_id, {}).get("借用人"):
            tallies[wl.LOANS].lost.append(f"{item.asset_id}: row not back in stock: {rows.get(item.record_id)}")
    after_kill = sum(1 for m in delivered if killed_at and int(m.get("create_time") or 0) > killed_at[0])

    # ---- who did the work, then stop everything and read the logs
    wids = [d.wid for d in devices] + [a.wid for a in assets] + [p.wid for p in projects]
    wids += [workflow_id(rp.ORG, rp.REPAIR, number) for number in tickets]
    pids = {proc.popen.pid: name for name, proc in stack.procs.items() if proc.popen is not None}
    work = await work_by_worker(stack.temporal.address, wids, pids)
    survivor_alive = stack.procs[WORKERS[1]].alive
    await stack.stop_all()
    tracebacks: dict[str, list[str]] = {}
    conflicts: Counter[str] = Counter()
    for name, proc in stack.procs.items():
        for chain, last in rh.exception_chains(proc.log_path.read_text(errors="replace")):
            if name.startswith("worker") and WRITE_CONFLICT.search(last):
                conflicts[name] += 1
            else:
                tracebacks.setdefault(name, []).append(chain)
    elapsed = time.monotonic() - started

    lines = [f"cluster run: {len(WORKERS)} workers, {len(INGRESSES)} ingresses, one Temporal server; "
             f"{len(devices)} devices, {len(assets)} loans, {len(projects)} projects, {len(tickets)} tickets; "
             f"wall time {elapsed:.0f} s", "", f"{'events sent':<72}{'count':>7}"]
    lines += [f"  {name:<70}{count:>7}" for name, count in sorted(run.events.items())]
    lines += ["", "phases (real seconds since the start):"] + [f"  {at:6.1f}  {phase}" for phase, at in marks]
    lines += ["", f"{'work done, from the workflow histories':<72}{'count':>7}"]
    lines += [f"  {name:<70}{count:>7}" for name, count in sorted(work.items())]
    lines += ["", f"{'plugin':<20}{'effects':>9}{'seen':>8}{'lost':>6}{'dup':>6}   effects by kind (expected)"]
    for plugin, tally in sorted(tallies.items()):
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(tally.expected.items()) if n)
        lines.append(f"  {plugin:<18}{sum(tally.expected.values()):>9}{sum(tally.seen.values()):>8}"
                     f"{len(tally.lost):>6}{len(tally.duplicated):>6}   {kinds}")
    lost = sum(len(t.lost) for t in tallies.values())
    duplicated = sum(len(t.duplicated) for t in tallies.values())
    lines += [f"  {'all':<18}{sum(sum(t.expected.values()) for t in tallies.values()):>9}"
              f"{sum(sum(t.seen.values()) for t in tallies.values()):>8}{lost:>6}{duplicated:>6}",
              f"  messages delivered after the SIGKILL (by {WORKERS[1]} and the ingresses): {after_kill}",
              f"  activity attempts retried after a Bitable write conflict between the workers (1254291): "
              f"{sum(conflicts.values())}"]
    table = "\n".join(lines)
    (stack.dir / "result.txt").write_text(table, encoding="utf-8")
    with capsys.disabled():
        print("\n" + table)

    problems = [f"{plugin} lost: {item}" for plugin, t in sorted(tallies.items()) for item in t.lost[:10]]
    problems += [f"{plugin} duplicated: {item}" for plugin, t in sorted(tallies.items()) for item in t.duplicated[:10]]
    problems += [f"never acknowledged: {item}" for item in run.unacknowledged]
    problems += [f"{name} log, traceback:\n{chain[-2000:]}" for name, chains in tracebacks.items()
                 for chain in chains[:3]]
    if not survivor_alive:
        problems.append(f"{WORKERS[1]} did not survive the run")
    if not after_kill:
        problems.append(f"nothing was delivered after {WORKERS[0]} was killed")
    if not work.get(f"{WORKERS[0]}: workflow tasks"):
        problems.append(f"{WORKERS[0]} ran no workflow task before it was killed: the kill proved nothing")
    assert not problems, "\n".join(problems)
    assert lost == 0 and duplicated == 0
