"""The device_calibration scenario's own activities: reading the device table and reaching other workflows.

The worker builds :class:`DeviceCalibrationActivities` with the engine's services (``engine.sdk.Services``):
its config (settings, calendar), its Feishu client (the device table) and its Temporal client
(signal-with-start of cycles) are passed in. Time comes
from the activity's scheduled time, never the wall clock, so frozen-time tests see the skipped date.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from engine.sdk import (
    BusinessClock,
    Decision,
    FeishuError,
    Services,
    WorkCalendar,
    query_running,
    signal_running,
    workflow_id,
)
from plugins.device_calibration import outcome, rules
from plugins.device_calibration.config import DeviceCalibrationSettings
from plugins.device_calibration.listing import Listed, RunningCycles
from plugins.device_calibration.models import (
    CYCLE_WORKFLOW,
    SCENARIO,
    VIEW_MEMO,
    CalendarFacts,
    CycleContext,
    CycleInput,
    CycleSeed,
    CycleState,
    CycleView,
    DepartmentDigest,
    DeviceMeta,
    DeviceRecord,
    DigestInput,
    DigestItem,
    LoadContext,
    OutcomeData,
    OutcomeRequest,
    ReconcileChange,
    ReconcileInput,
    ReconcileReport,
    RecordChanged,
    Retire,
    WriteStatus,
    cycle_key,
    info_fingerprint,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

RECORD_NOT_FOUND = 1254043
# Devices a reconciliation checks at once (each is a few round trips to the Temporal server).
RECONCILE_IN_FLIGHT = 16
# Rows checked between two turns of the event loop (heartbeats and the listing run meanwhile); the table is
# decoded a page (500 rows) at a time, which yields between pages.
YIELD_EVERY = 1000
# Cycles a reconciliation starts per batch: Feishu's batch_create takes up to 500 records (one audit row each).
START_BATCH = 500
# A cycle whose first act (a reminder, a status change) is further away than DORMANT_FROM starts dormant
# (engine.dormant): Temporal dispatches its first workflow task WAKE_EARLY before that act, and until then it
# costs no workflow task and no worker memory. Waking early is harmless: the cycle sleeps the rest.
WAKE_EARLY = timedelta(hours=1)
DORMANT_FROM = timedelta(hours=2)


def _settings(org: Any) -> DeviceCalibrationSettings:
    return org.settings(SCENARIO)  # type: ignore[no-any-return]


def _as_of(org: Any) -> date:
    """Today in the organization's zone at the activity's scheduled time (the skipped clock in tests)."""
    return org.config.clock.now(activity.info().current_attempt_scheduled_time).astimezone(org.zone).date()


async def read_devices(feishu: Any, org: Any, settings: DeviceCalibrationSettings,
                       record_ids: list[str] | None = None) -> list[DeviceRecord]:
    """Every device row of the table (or the rows ``record_ids``), decoded; rows without an id are left out."""
    bitable = settings.bitable
    devices: list[DeviceRecord] = []

    def parse(records: list[Any]) -> None:
        for record in records:
            device = rules.parse_device(record.record_id, record.fields, settings, org.zone)
            if device is not None:
                devices.append(device)

    if record_ids is None:
        # each page is decoded while the next is fetched; a page (500 rows) is short enough between two
        # turns of the event loop for the heartbeat and the listing that runs meanwhile
        async for page in feishu.bitable_pages(bitable.app_token, bitable.table_id):
            parse(page)
        return devices
    raw = []
    for record_id in record_ids:
        try:
            raw.append(await feishu.bitable_get(bitable.app_token, bitable.table_id, record_id))
        except FeishuError as error:
            if error.code != RECORD_NOT_FOUND:
                raise
    parse(raw)
    return devices


async def load_context(services: Services, request: LoadContext) -> CycleContext:
    """The organization's settings and calendar, and the device's row (by record id, else by device id)."""
    org = services.org(request.org)
    settings = _settings(org)
    device: DeviceRecord | None = None
    if request.record_id:
        found = await read_devices(services.feishu, org, settings, [request.record_id])
        device = found[0] if found and found[0].device_id == request.device_id.upper() else None
    if device is None:
        bitable = settings.bitable
        condition = {"field_name": settings.fields.device_id, "operator": "is", "value": [request.device_id]}
        raw = await services.feishu.bitable_search(
            bitable.app_token, bitable.table_id, filter={"conjunction": "and", "conditions": [condition]})
        for record in raw:
            parsed = rules.parse_device(record.record_id, record.fields, settings, org.zone)
            if parsed is not None and parsed.device_id == request.device_id.upper():
                device = parsed
                break
    return cycle_context(services, org.id, device)


def cycle_context(services: Services, org_id: str, device: DeviceRecord | None) -> CycleContext:
    """The context a cycle runs in: the device's hospital's own settings (those site_overridable lets it
    set, e.g. its reminder ladder), zone, locale and working days; the group's for a device without a site."""
    site = services.context(org_id, SCENARIO, device.info.site if device is not None else None)
    calendar = CalendarFacts(timezone=site.timezone, holidays=site.holidays, workdays=site.workdays, clock=site.clock)
    return CycleContext(settings=site.settings, calendar=calendar, locale=site.locale, device=device)


async def write_status(services: Services, request: WriteStatus) -> None:
    """Write a device's row; its usage status becomes the most restrictive of all the device's kinds."""
    org = services.org(request.org)
    settings = _settings(org)
    feishu = services.feishu
    bitable = settings.bitable
    fields = dict(request.fields)
    status_field = settings.fields.status
    try:
        if status_field in fields:
            row = await feishu.bitable_get(bitable.app_token, bitable.table_id, request.record_id)
            fields[status_field] = rules.combined_status(str(fields[status_field]), request.kind, row.fields, settings)
        await feishu.bitable_update(bitable.app_token, bitable.table_id, request.record_id, fields)
    except FeishuError as error:
        # mapped as the engine's Bitable activity maps it: the cycle handles FeishuError.1254043 (row deleted)
        raise error.to_application_error() from error


async def load_settings(services: Services, org_id: str) -> dict[str, Any]:
    """The organization's current settings of this scenario, as JSON."""
    return _settings(services.org(org_id)).model_dump(mode="json")


# ------------------------------------------------------------------------------------- reconciliation


async def _running(client: Client, wid: str) -> WorkflowExecutionDescription | None:
    """The description of the cycle ``wid`` while it runs; None when none runs under that id."""
    try:
        description = await client.get_workflow_handle(wid).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description if description.status == WorkflowExecutionStatus.RUNNING else None


async def cycle_state(client: Client, wid: str) -> CycleState | None:
    """The state of the running cycle ``wid``; None when no cycle runs under that id."""
    if await _running(client, wid) is None:
        return None
    raw = await query_running(client, wid, "state")  # a dormant cycle is woken to answer
    return CycleState.model_validate(raw) if raw is not None else None


class Expected(NamedTuple):
    """What a row asks of one of its cycles, worked out from the row alone (so while the listing runs)."""

    kind: str  # the schedule kind's name
    key: str
    wid: str
    stop: bool  # no cycle should run: the kind does not apply, or the row's status retires the device
    why_stop: str
    intent: Decision  # the row's status: track, pause or retire
    info: str  # info_fingerprint of the row's details
    plan: Decision | None  # the due date the row plans (None when stop)


def expected(org_id: str, device: DeviceRecord, settings: DeviceCalibrationSettings,
             today: date) -> list[Expected]:
    """What ``device``'s row asks of each of its cycles, one per schedule kind in ``settings``."""
    intent = rules.table_intent(device, settings)
    info = info_fingerprint(device.info)
    wanted: list[Expected] = []
    for kind_name, kind in settings.schedules.items():
        key = cycle_key(device.device_id, kind_name)
        applies = rules.applies(kind_name, kind, device.kinds.get(kind_name))
        stop = applies.is_nothing or intent.action == "retire"
        wanted.append(Expected(
            kind=kind_name, key=key, wid=workflow_id(org_id, SCENARIO, key), stop=stop,
            why_stop=applies.reason if applies.is_nothing else intent.reason, intent=intent, info=info,
            plan=None if stop else rules.plan_due(device.kinds[kind_name], kind, today)))
    return wanted


def drift(state: CycleView, wanted: Expected) -> str:
    """Why the running cycle (its :class:`CycleView`) disagrees with its row ("" when it agrees)."""
    intent = wanted.intent
    if intent.action == "pause" and state.phase != "paused":
        return f"{intent.reason}, cycle is {state.phase}"
    if intent.action == "track" and state.phase == "paused" and state.paused_by_table:
        return "status back in use, cycle is paused"
    if state.info != wanted.info:
        return "device details changed (people, department, name)"
    if state.phase in ("active", "overdue") and wanted.plan is not None:
        plan = wanted.plan
        if plan.data.get("undated") and state.due is not None:
            return ""  # a row with no dates: the cycle keeps the due date it was registered with
        if plan.data["due"] != (state.due.isoformat() if state.due else None):
            return f"cycle due {state.due}, row says {plan.data['due']} ({plan.reason})"
    return ""


async def reconcile(services: Services, request: ReconcileInput, listings: RunningCycles) -> ReconcileReport:
    """Start, update or retire cycles so they match the device table; say what changed and why.
    ``listings`` is the worker's last listing of the running cycles."""
    began = time.monotonic()  # with the attempt's start time on the server, the server's time at a start
    org = services.org(request.org)
    settings = _settings(org)
    client: Client = services.temporal
    today = _as_of(org)
    # One listing of the running cycles, with the view each keeps in its memo: a cycle whose view agrees
    # with its row costs no round trip; the others (and cycles without a view yet) are described and asked.
    # The listing (the server's work) runs while the table is read (Feishu's and this worker's), and while
    # what each row asks of its cycles, which needs no cycle, is worked out.
    errors: list[str] = []
    phases: dict[str, float] = {}
    server_now = activity.info().current_attempt_scheduled_time
    listing = asyncio.ensure_future(_timed(listings.of(client, org.id, server_now, errors), phases, "listing")) \
        if request.record_ids is None else None
    try:
        devices = await _timed(read_devices(services.feishu, org, settings, request.record_ids), phases, "read")
        checking = time.monotonic()
        rows: list[list[Expected]] = []
        for n, device in enumerate(devices, 1):
            rows.append(expected(org.id, device, settings, today))
            if n % YIELD_EVERY == 0:
                activity.heartbeat(n)
                await asyncio.sleep(0)
    except BaseException:
        if listing is not None:
            listing.cancel()
        raise
    waiting = time.monotonic()
    running = await listing if listing is not None else None
    checking += time.monotonic() - waiting  # the check's own time, not the wait for the listing
    report = ReconcileReport(org=org.id, rows=len(devices), locale=org.locale)
    if listing is not None and running is None:
        report.errors.append(f"{errors[-1]}; deleted rows not checked")
    wanted: set[str] = set()
    checker = _DeviceCheck(client, org.id, services.task_queue, request.run_key, running, wanted, report)
    # Several devices at a time: each costs round trips to the server (describe, query, start), not CPU.
    limit = asyncio.Semaphore(RECONCILE_IN_FLIGHT)

    async def check(device: DeviceRecord, cycles: list[Expected]) -> None:
        async with limit:
            await checker.device(device, cycles)
            checker.done += 1
            if checker.done % 200 == 0:
                activity.heartbeat(checker.done)

    # a row whose cycles the listing shows in step is settled here, without a coroutine of its own
    pending: list[tuple[DeviceRecord, list[Expected]]] = []
    for n, (device, cycles) in enumerate(zip(devices, rows, strict=True), 1):
        if not checker.settled(cycles):
            pending.append((device, cycles))
        if n % YIELD_EVERY == 0:
            activity.heartbeat(n)
            await asyncio.sleep(0)
    await asyncio.gather(*(check(device, cycles) for device, cycles in pending))
    phases["check"] = time.monotonic() - checking
    await _timed(_start_cycles(services, org, checker.new, request.run_key, report, began), phases, "start")
    if running is not None:
        await _timed(_retire_vanished(client, org.id, running, wanted, request.run_key, report), phases, "retire")
    report.changes.sort(key=lambda change: change.key)
    report.phases = phases
    log.info("reconciliation of %s: %d rows, %s; %s", org.id, len(devices), dict(sorted(report.counts.items())),
             ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()))
    return report


async def _timed(step: Awaitable[T], phases: dict[str, float], name: str) -> T:
    """``await step``, noting in ``phases[name]`` the seconds it took."""
    began = time.monotonic()
    try:
        return await step
    finally:
        phases[name] = time.monotonic() - began


class _DeviceCheck:
    """Brings one device's cycles in line with its row (the body of a reconciliation)."""

    def __init__(self, client: Client, org_id: str, task_queue: str, run_key: str,
                 running: Mapping[str, CycleView | None] | None, wanted: set[str], report: ReconcileReport) -> None:
        self.client, self.org_id, self.task_queue, self.run_key = client, org_id, task_queue, run_key
        self.running, self.wanted, self.report = running, wanted, report
        self.confirm_absent = isinstance(running, Listed) and running.of_changes
        self.done = 0
        self.new: list[tuple[DeviceRecord, str]] = []  # (device, kind) of cycles to start, in batches

    async def _view(self, wid: str) -> CycleView | None:
        """The cycle's view: from the listing's memo when it has one, else described and asked."""
        if self.running is not None:
            if wid not in self.running:
                return None  # not running at the listing; a start that finds it running is harmless
            listed = self.running[wid]
            if listed is not None:
                return listed
        return await self._described(wid)

    async def _described(self, wid: str) -> CycleView | None:
        """The cycle's current view: from its memo as the server holds it now (a describe reads the running
        execution, not the lagging listing), else asked by query; None when no cycle runs under ``wid``.

        The memo spares a dormant cycle the wake a query costs (engine.dormant): its memo is the view it was
        started with, and nothing can have changed it before its first workflow task."""
        description = await _running(self.client, wid)
        if description is None:
            return None
        raw = await description.memo_value(VIEW_MEMO, None)
        if raw is not None:
            return CycleView.model_validate(raw)
        state = await query_running(self.client, wid, "state")  # a cycle that keeps no view (started before views)
        return CycleView.of(CycleState.model_validate(state)) if state is not None else None

    def settled(self, cycles: list[Expected]) -> bool:
        """True when the listing alone shows each of a row's ``cycles`` in step with it: each is then
        recorded "unchanged". False (nothing recorded) leaves the row to :meth:`device`."""
        if self.running is None:
            return False
        for cycle in cycles:
            if cycle.stop:
                if cycle.wid in self.running:
                    return False  # a cycle to retire
                continue
            view = self.running.get(cycle.wid)
            if view is None or drift(view, cycle):
                return False  # a cycle to start, to ask, or to update
        for cycle in cycles:
            if not cycle.stop:
                self.wanted.add(cycle.wid)
                self.report.add(ReconcileChange(key=cycle.key, action="unchanged"))
        return True

    async def device(self, device: DeviceRecord, cycles: list[Expected]) -> None:
        """Start, signal or retire each of ``device``'s cycles (``cycles``: what its row asks of them)."""
        client, report = self.client, self.report
        for cycle in cycles:
            kind_name, key, wid, stop = cycle.kind, cycle.key, cycle.wid, cycle.stop
            if stop and self.running is not None and wid not in self.running:
                continue  # nothing runs that would have to end
            if not stop:
                self.wanted.add(wid)
            state = await self._view(wid)
            if stop:
                if state is None:
                    continue
                reason = cycle.why_stop
                # a dormant cycle too (engine.dormant): a plain signal would wait for its first task
                await signal_running(client, wid, "retire",
                                     Retire(event_id=f"{self.run_key}:{key}", reason=reason, by="reconciliation"))
                report.add(ReconcileChange(key=key, action="retired", reason=reason))
                continue
            if state is None and self.running is not None and (self.confirm_absent or activity.info().attempt > 1):
                # a retried run: a cycle its first attempt started may not be in the listing yet; a listing of
                # changes: a cycle visibility showed too late for it stays out of it until a full listing
                state = await self._described(wid)
            if state is None:
                self.new.append((device, kind_name))
                continue
            start = CycleInput(org=self.org_id, device_id=device.device_id, kind=kind_name,
                               record_id=device.record_id)
            why = drift(state, cycle)
            if why and self.running is not None and self.running.get(wid) is not None:
                # the listing lags behind the cycle a little: confirm the drift with the cycle itself
                state = await self._described(wid)
                if state is None:
                    self.report.add(ReconcileChange(key=key, action="unchanged"))
                    continue
                why = drift(state, cycle)
            if not why:
                report.add(ReconcileChange(key=key, action="unchanged"))
                continue
            # signal-with-start: if the cycle ended in the meantime, it starts again with the row's facts
            await client.start_workflow(
                CYCLE_WORKFLOW, start, id=wid, task_queue=self.task_queue, start_signal="record_changed",
                start_signal_args=[RecordChanged(event_id=f"{self.run_key}:{key}", record_id=device.record_id,
                                                 operator="reconciliation")],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            report.add(ReconcileChange(key=key, action="updated", reason=why))


class _Start(NamedTuple):
    """One cycle the reconciliation starts: its input, and the audit row and memo that go with it."""

    key: str
    wid: str
    start: CycleInput
    row: dict[str, Any] | None  # its "registered" audit row, written before it starts
    table: tuple[str, str] | None  # (app token, table id) of the log table
    memo: dict[str, Any] | None  # the view it starts with
    first_act: datetime | None  # business time of its first act when it may start dormant until then
    clock: BusinessClock | None  # its site's clock (with first_act)


async def _start_cycles(services: Services, org: Any, new: list[tuple[DeviceRecord, str]], run_key: str,
                        report: ReconcileReport, began: float) -> None:
    """Start the cycles ``new`` lacks, each seeded with its row and site context, ``START_BATCH`` at a time.

    Each batch's "registered" audit rows are written first, in one batch call whose client token comes from
    the run and the batch's keys (a retried run writes the same batch once), then its cycles start: a seeded
    cycle reads and logs nothing more to register, so its start is one workflow task. A cycle whose first act
    is more than DORMANT_FROM away starts dormant (``start_delay``) instead, and costs no workflow task until
    WAKE_EARLY before that act. ``began`` is ``time.monotonic()`` when the attempt started.
    """
    client: Client = services.temporal
    scheduled = activity.info().current_attempt_scheduled_time
    contexts: dict[str | None, tuple[CycleContext, DeviceCalibrationSettings, date, Any, WorkCalendar]] = {}

    def prepare(device: DeviceRecord, kind_name: str) -> _Start:
        site = device.info.site
        if site not in contexts:
            ctx = cycle_context(services, org.id, device)
            settings = DeviceCalibrationSettings.model_validate(ctx.settings)
            now = ctx.calendar.clock.now(scheduled)
            contexts[site] = (ctx, settings, now.astimezone(ZoneInfo(ctx.calendar.timezone)).date(), now,
                              rules.build_calendar(ctx.calendar))
        ctx, settings, today, now, calendar = contexts[site]
        key = cycle_key(device.device_id, kind_name)
        wid = workflow_id(org.id, SCENARIO, key)
        start = CycleInput(org=org.id, device_id=device.device_id, kind=kind_name, record_id=device.record_id)
        kind, facts = settings.schedules.get(kind_name), device.kinds.get(kind_name)
        row: dict[str, Any] | None = None
        table: tuple[str, str] | None = None
        memo: dict[str, Any] | None = None
        first_act: datetime | None = None
        if kind is not None and facts is not None and not rules.applies(kind_name, kind, facts).is_nothing:
            # the site's own settings agree that it applies: the cycle will register, as planned here
            start.seed = CycleSeed(context=ctx.model_copy(update={"device": device}), planned_on=today,
                                   registered_at=now)
            state = rules.registered_state(org.id, device.device_id, kind_name, device.record_id, facts, kind,
                                           today, now)
            entry = state.history[-1]
            # the view the cycle will keep if the row needs nothing else (pause, a status): a memo at the start
            # spares the cycle a memo write of its own
            memo = {VIEW_MEMO: CycleView(phase="active", due=state.due,
                                         info=info_fingerprint(device.info)).model_dump(mode="json")}
            if settings.bitable.log_table_id:
                table = (settings.bitable.app_token, settings.bitable.log_table_id)
                row = rules.log_row(settings.log_fields, rules.log_key(wid, entry), device.device_id, kind_name, entry)
            first_act = rules.first_act(state, device, settings, calendar, now)
        return _Start(key, wid, start, row, table, memo, first_act, ctx.calendar.clock)

    limit = asyncio.Semaphore(RECONCILE_IN_FLIGHT)

    attempt_started = activity.info().started_time

    async def start_one(one: _Start) -> None:
        async with limit:
            delay = _dormant_delay(one, attempt_started + timedelta(seconds=time.monotonic() - began))
            # eager: this worker takes the cycle's first workflow task in the start's answer, no poll (a server
            # that does not offer it queues the task as usual); a dormant cycle has no task to take yet
            await client.start_workflow(CYCLE_WORKFLOW, one.start, id=one.wid, task_queue=services.task_queue,
                                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                                        memo=one.memo, start_delay=delay, request_eager_start=delay is None)

    ordered = sorted(new, key=lambda item: (item[0].device_id, item[1]))
    for first in range(0, len(ordered), START_BATCH):
        # prepared batch by batch: 100,000 at once would hold the event loop past the heartbeat timeout
        batch = [prepare(device, kind_name) for device, kind_name in ordered[first:first + START_BATCH]]
        tables: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for one in batch:
            if one.row is not None and one.table is not None:
                tables.setdefault(one.table, []).append(one.row)
        token = f"{run_key}:registered:{batch[0].key}:{batch[-1].key}:{len(batch)}"
        for (app_token, table_id), rows in tables.items():
            await services.feishu.bitable_create(app_token, table_id, rows, client_token=token)
        await asyncio.gather(*(start_one(one) for one in batch))
        for one in batch:
            report.add(ReconcileChange(key=one.key, action="started", reason="no cycle was running"))
        activity.heartbeat(first + len(batch))


def _dormant_delay(one: _Start, server_now: datetime) -> timedelta | None:
    """The start delay of ``one`` started at ``server_now``: until WAKE_EARLY before its first act, on its site's
    clock; None (start at once) when that is less than DORMANT_FROM away."""
    if one.first_act is None or one.clock is None:
        return None
    delay = one.clock.real_delay(one.first_act - one.clock.now(server_now))
    return delay - WAKE_EARLY if delay >= DORMANT_FROM else None


async def _retire_vanished(client: Client, org_id: str, running: Mapping[str, CycleView | None], wanted: set[str],
                           run_key: str, report: ReconcileReport) -> None:
    """Cycles still running for devices no longer in the table (rows deleted while no event came)."""
    prefix = f"{org_id}:{SCENARIO}:"
    for wid in sorted(running.keys() - wanted):
        key = wid[len(prefix):]
        if not await signal_running(client, wid, "retire", Retire(
                event_id=f"{run_key}:{key}", reason="no longer in the device table", by="reconciliation")):
            continue  # it ended since the listing (the listing lags a little behind)
        report.add(ReconcileChange(key=key, action="retired", reason="no longer in the device table"))


# -------------------------------------------------------------------------------------------- digest


async def collect_digest(services: Services, request: DigestInput,
                         listings: RunningCycles) -> list[DepartmentDigest]:
    """Per department: devices due within the window, overdue (or quarantined), and out for calibration."""
    org = services.org(request.org)
    settings = _settings(org)
    window = request.window_days or settings.digest_window_days
    client: Client = services.temporal
    today = _as_of(org)
    digests: dict[str, DepartmentDigest] = {}
    # the phase and due date of each cycle from its memo, in one listing: a dormant cycle is not woken and a
    # large table costs no query per device (only cycles out for calibration are asked, for their vendor)
    unlisted: list[str] = []
    running = await listings.of(client, org.id, activity.info().current_attempt_scheduled_time, unlisted)
    if running is None:
        log.info("digest of %s: %s; each cycle is asked instead", org.id, unlisted[0])
    for device in await read_devices(services.feishu, org, settings):
        department = device.info.department or "-"
        digest = digests.setdefault(department, DepartmentDigest(department=department))
        if digest.head is None and device.info.department_head:
            digest.head = device.info.department_head.open_id
        for kind_name in settings.schedules:
            key = cycle_key(device.device_id, kind_name)
            wid = workflow_id(org.id, SCENARIO, key)
            if running is not None and wid not in running:
                continue
            view = running.get(wid) if running is not None else None
            state: CycleView | CycleState | None = view
            if view is None or view.phase == "sent_out":
                state = await cycle_state(client, wid)
            if state is None:
                continue
            sent_out = state.sent_out if isinstance(state, CycleState) else None
            left = (state.due - today).days if state.due else None
            item = DigestItem(key=key, device_id=device.device_id, name=device.info.name, kind=kind_name,
                              due=state.due, days_left=left, phase=state.phase,
                              vendor=sent_out.vendor if sent_out else "")
            if state.phase == "sent_out":
                digest.sent_out.append(item)
            elif state.phase in ("overdue", "quarantined") or (left is not None and left < 0):
                digest.overdue.append(item)
            elif state.phase == "active" and left is not None and left <= window:
                digest.due_soon.append(item)
    return [digests[name] for name in sorted(digests)]


# ------------------------------------------------------------------------------------ monthly outcome


async def outcome_data(services: Services, request: OutcomeRequest) -> OutcomeData:
    """The calibration-log rows recorded before ``request.until`` (every page of the table), and each
    device's name and site from the device table (the card names devices, not ids)."""
    org = services.org(request.org)
    settings = _settings(org)
    bitable = settings.bitable
    if not bitable.log_table_id:
        return OutcomeData()
    try:
        records = await services.feishu.bitable_search(bitable.app_token, bitable.log_table_id)
        devices = await read_devices(services.feishu, org, settings)
    except FeishuError as error:
        raise error.to_application_error() from error
    rows = [row for record in records
            if (row := outcome.log_row(record.fields, settings.log_fields)) is not None and row.at < request.until]
    return OutcomeData(rows=rows, devices={d.device_id: DeviceMeta(name=d.info.name, site=d.info.site)
                                           for d in devices})


class DeviceCalibrationActivities:
    """The scenario's activities, bound by the worker to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.listings = RunningCycles()

    @activity.defn(name="device_calibration.load_context")
    async def load_context(self, request: LoadContext) -> CycleContext:
        return await load_context(self.services, request)

    @activity.defn(name="device_calibration.settings")
    async def load_settings(self, org_id: str) -> dict[str, Any]:
        return await load_settings(self.services, org_id)

    @activity.defn(name="device_calibration.write_status")
    async def write_status(self, request: WriteStatus) -> None:
        await write_status(self.services, request)

    @activity.defn(name="device_calibration.reconcile")
    async def reconcile(self, request: ReconcileInput) -> ReconcileReport:
        return await reconcile(self.services, request, self.listings)

    @activity.defn(name="device_calibration.collect_digest")
    async def collect_digest(self, request: DigestInput) -> list[DepartmentDigest]:
        return await collect_digest(self.services, request, self.listings)

    @activity.defn(name="device_calibration.outcome_data")
    async def outcome_data(self, request: OutcomeRequest) -> OutcomeData:
        return await outcome_data(self.services, request)


ACTIVITIES = [DeviceCalibrationActivities]
