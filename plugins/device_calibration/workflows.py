"""Temporal workflows of the device_calibration scenario.

* ``device_calibration.CalibrationCycle``: one per device and schedule kind, ID
  ``{org}:device_calibration:{device_id}`` (calibration) or ``...:{device_id}:{kind}`` (other kinds). It
  sleeps on timers until the next notice of its ladder, records every decision and confirmation, and
  continues as new with the next due date after a passing calibration.
* ``device_calibration.Reconcile``: reads the device table and starts, updates or retires cycles.
* ``device_calibration.WeeklyDigest``: one card per department: due soon, overdue, out for calibration.
* ``device_calibration.MonthlyOutcome``: last month's outcome card per site, on the first working day.

Workflow code is deterministic: time comes from ``workflow.now()`` (through the organization's
:class:`~engine.clock.BusinessClock`), decisions from :mod:`.rules`, and all
I/O from activities (the engine's Feishu activities, and this plugin's in :mod:`.activities`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # by their full names: "from <package> import <module>" would load them again for every run, past the
    # sandbox's pass-through (its fresh copy of the package lacks them)
    import plugins.device_calibration.outcome as outcome
    import plugins.device_calibration.rules as rules
    from engine.sdk import (
        BusinessClock,
        Decision,
        Deferred,
        SeenEvents,
        WorkCalendar,
        activity_options,
        feishu_call,
        load_site_context,
        report_month,
        send_to_each,
    )
    from engine.sdk import feishu as fr
    from plugins.device_calibration.config import DeviceCalibrationSettings
    from plugins.device_calibration.models import (
        CYCLE_WORKFLOW,
        DIGEST_WORKFLOW,
        OUTCOME_WORKFLOW,
        RECONCILE_WORKFLOW,
        SCENARIO,
        VIEW_CHANGED_AT,
        VIEW_MEMO,
        Assessment,
        CalendarFacts,
        CalibrationResult,
        CardInput,
        CycleContext,
        CycleInput,
        CycleOutcome,
        CycleState,
        CycleView,
        DepartmentDigest,
        DigestInput,
        HistoryEntry,
        LoadContext,
        OutcomeData,
        OutcomeInput,
        OutcomeRequest,
        PauseRequest,
        ReconcileInput,
        ReconcileReport,
        RecordChanged,
        Retire,
        SentOut,
        WriteStatus,
        cycle_key,
        date_cell,
    )

ROW_MISSING = "FeishuError.1254043"  # Bitable: record not found

# Changes to running cycles' logic, each behind its patch marker (histories recorded before replay as before).
PATCH_UNDATED_KEEPS_DUE = "undated-row-keeps-due"
PATCH_QUARANTINE_AS_LEFT = "quarantine-ends-on-usable-as-left"
PATCH_ASSESSMENT_RETIRE_STATUS = "assessment-retire-marks-row"
PATCH_RESUME_RESTORES_STATUS = "resume-restores-restricted-status"
PATCH_COMBINED_STATUS = "status-combines-every-kind"
# card presses answered before the row writes, audit rows and messages they decided (engine.sdk.Deferred)
PATCH_DEFERRED_IO = "card-press-answers-first"
# the cycle keeps its CycleView in its memo, so reconciliation reads all of them in one listing
PATCH_VIEW_MEMO = "cycle-view-in-memo"
# ... and stamps when it changed, so a reconciliation lists only the cycles changed since its last listing
PATCH_VIEW_STAMP = "cycle-view-change-stamped"
# Changes a reconciliation's message to the managers names one by one (a message has room for a few hundred).
REPORTED_CHANGES = 100

Effect = Callable[[], Awaitable[None]]

CLOSED_PHASES = ("paused", "retired", "not_found")  # a result or its form does not apply to these

# this plugin's activities back off up to 10 minutes (the engine's PLUGIN_RETRY stops at 5)
OWN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                        maximum_interval=timedelta(minutes=10))


async def _plugin_activity(name: str, arg: Any, result_type: type, *, minutes: int = 5) -> Any:
    """One of this plugin's activities, bounded and heartbeated (``engine.workflow_support.activity_options``)."""
    return await workflow.execute_activity(name, arg, result_type=result_type,
                                           **activity_options(timedelta(minutes=minutes), retry=OWN_RETRY))


@workflow.defn(name=CYCLE_WORKFLOW)
class CalibrationCycle:
    """The life of one device's schedule kind: remind, escalate, record, quarantine, start over."""

    def __init__(self) -> None:
        self.s: CycleState | None = None
        self.settings = DeviceCalibrationSettings()
        self.calendar: WorkCalendar = rules.build_calendar(CalendarFacts())
        self.clock = BusinessClock()
        self.locale = "zh_CN"
        self.seen = SeenEvents()
        self.wid = ""
        self._wake = False
        self._changes: list[RecordChanged] = []
        self._controls: list[tuple[str, Any]] = []  # ("pause"|"resume"|"retire", payload) in arrival order
        self._complete: CalibrationResult | None = None
        self._ended = False
        self.deferred = Deferred()
        self._defer: bool | None = None
        self._view: CycleView | None = None  # the view last written to the memo

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: CycleInput) -> CycleOutcome:
        self.wid = workflow.info().workflow_id
        started_with = workflow.memo_value(VIEW_MEMO, None, type_hint=dict)
        if inp.seed is not None and inp.carry is None and started_with is not None:
            # a reconciliation's start set the view it planned: no memo write unless the cycle decides otherwise
            # (only a seeded start, which no history recorded before seeds has, so replays are unchanged)
            self._view = CycleView.model_validate(started_with)
        record_id = inp.record_id or (inp.carry.record_id if inp.carry else None)
        # a reconciliation's start brings the row and settings it just read (only new runs have a seed)
        ctx = self._use(inp.seed.context) if inp.seed is not None and inp.carry is None \
            else await self._load(inp, record_id)
        self._changes.clear()  # edits that came with the start signal: the row was just read
        if inp.carry is not None:
            self.s = inp.carry
            self.seen = SeenEvents(inp.carry.seen)
            await self._apply_context(ctx, actor="system", initial=False)
        else:
            await self._start_fresh(inp, ctx)
        while True:
            await self._drain()
            await self.deferred.run()  # what card presses decided, in the order they were answered
            assert self.s is not None
            if self._ended:
                await self._handlers_done()
                return CycleOutcome(phase=self.s.phase, cycles=self.s.cycle, reason=self.s.history[-1].reason
                                    if self.s.history else "")
            if self._complete is not None:
                await self._finish_cycle(self._complete)
                await self._handlers_done()
                assert self.s is not None
                self.s.seen = self.seen.ids()
                workflow.continue_as_new(CycleInput(org=self.s.org, device_id=self.s.device_id, kind=self.s.kind,
                                                    record_id=self.s.record_id, carry=self.s))
            self._publish_view()
            decision = rules.next_action(self.s, self._now(), self.settings, self.calendar)
            self.s.next_notice_at = decision.at
            self.s.next_notice = decision.reason
            if decision.is_nothing:
                await workflow.wait_condition(lambda: self._wake or self.deferred.pending)
                self._wake = False
                continue
            assert decision.at is not None
            delay = decision.at - self._now()
            if delay > timedelta(0):
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self._wake or self.deferred.pending,
                                                  timeout=self.clock.real_delay(delay))
                if self._wake or self.deferred.pending:
                    self._wake = False
                    continue  # facts changed, or a press left work: decide again
            await self._act(decision)

    def _publish_view(self) -> None:
        """Keep the memo's CycleView in step with the state (only when it changed: a memo write is a command)."""
        assert self.s is not None
        view = CycleView.of(self.s)
        if view != self._view and workflow.patched(PATCH_VIEW_MEMO):
            workflow.upsert_memo({VIEW_MEMO: view.model_dump(mode="json")})
            if workflow.patched(PATCH_VIEW_STAMP):
                workflow.upsert_search_attributes([VIEW_CHANGED_AT.value_set(workflow.now())])
            self._view = view

    async def _handlers_done(self) -> None:
        """Wait for running handlers, and run what they left queued (drained before the run ends)."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        while self.deferred.pending:
            await self.deferred.run()
            await workflow.wait_condition(workflow.all_handlers_finished)

    async def _start_fresh(self, inp: CycleInput, ctx: CycleContext) -> None:
        today = self._today()
        self.s = CycleState(org=inp.org, device_id=inp.device_id, kind=inp.kind, record_id=inp.record_id,
                            info={"device_id": inp.device_id}, phase="active")
        if ctx.device is None:
            self.s.phase = "not_found"
            self._history("not_found", reason=f"{inp.device_id} is not in the device table")
            self._ended = True
            return
        kind = self.settings.schedules.get(inp.kind)
        facts = ctx.device.kinds.get(inp.kind)
        applies = rules.applies(inp.kind, kind, facts) if kind else Decision.nothing(f"unknown kind {inp.kind}")
        if applies.is_nothing:
            self.s.phase = "not_found"
            self._history("not_applicable", reason=applies.reason)
            self._ended = True
            return
        assert kind is not None and facts is not None
        # a seeded start plans on the reconciliation's day, which wrote this same entry to the log table (and
        # may have started the cycle dormant: its first task then runs long after that moment)
        seed = inp.seed
        planned_on = seed.planned_on if seed is not None else today
        at = seed.registered_at if seed is not None and seed.registered_at is not None else self._now()
        self.s = rules.registered_state(inp.org, inp.device_id, inp.kind, inp.record_id, facts, kind, planned_on, at)
        entry = self.s.history[-1]
        if inp.seed is None:
            await self._log(entry)
        await self._apply_context(ctx, actor="system", initial=True)

    # ----------------------------------------------------------------------------------- context

    async def _load(self, inp: CycleInput | None, record_id: str | None) -> CycleContext:
        device_id = inp.device_id if inp is not None else (self.s.device_id if self.s else "")
        org = inp.org if inp is not None else (self.s.org if self.s else "")
        ctx: CycleContext = await _plugin_activity(
            "device_calibration.load_context", LoadContext(org=org, device_id=device_id, record_id=record_id),
            CycleContext)
        return self._use(ctx)

    def _use(self, ctx: CycleContext) -> CycleContext:
        """Take the settings, calendar and language of a context read by an activity (or brought by a seed)."""
        self.settings = DeviceCalibrationSettings.model_validate(ctx.settings)
        self.calendar = rules.build_calendar(ctx.calendar)
        self.clock = ctx.calendar.clock
        self.locale = ctx.locale
        return ctx

    async def _apply_context(self, ctx: CycleContext, *, actor: str, initial: bool) -> None:
        """Bring the cycle in line with the row: retire, pause/resume, new people, a due date edited by hand."""
        s = self.s
        assert s is not None
        if ctx.device is None:
            await self._retire(Retire(event_id="", reason="removed from the device table", by=actor))
            return
        device = ctx.device
        s.record_id = device.record_id
        s.info = device.info
        kind = self.settings.schedules.get(s.kind)
        facts = device.kinds.get(s.kind)
        applies = rules.applies(s.kind, kind, facts) if kind else Decision.nothing(f"unknown kind {s.kind}")
        if applies.is_nothing:
            await self._retire(Retire(event_id="", reason=applies.reason, by=actor))
            return
        intent = rules.table_intent(device, self.settings)
        if intent.action == "retire":
            await self._retire(Retire(event_id="", reason=intent.reason, by=actor))
            return
        if intent.action == "pause" and s.phase != "paused":
            await self._pause(PauseRequest(event_id="", reason=intent.reason, by=actor), by_table=True)
        elif intent.action == "track" and s.phase == "paused" and s.paused_by_table:
            await self._resume(PauseRequest(event_id="", reason="status back in use", by=actor))
        if initial or s.phase not in ("active", "overdue", "paused") or kind is None or facts is None:
            return
        plan = rules.plan_due(facts, kind, self._today())
        new_due = date.fromisoformat(plan.data["due"])
        if plan.data.get("undated") and s.due is not None and workflow.patched(PATCH_UNDATED_KEEPS_DUE):
            new_due = s.due  # "due today" of a row with no dates is the day it was registered, not every day
        if new_due != s.due:
            old = s.due
            s.due, s.interval_months = new_due, plan.data["interval"]
            s.last_calibrated = facts.last or s.last_calibrated
            s.last_certificate = facts.certificate or s.last_certificate
            s.fired = []  # a new due date: its own ladder
            self._history("due_changed", actor=actor, reason=plan.reason,
                          detail={"from": old.isoformat() if old else None, "to": new_due.isoformat()})
            await self._log(s.history[-1])
            if s.phase == "overdue" and new_due > self._today():
                s.phase, s.overdue_stage = "active", ""
                await self._write_row(self._labels())

    async def _drain(self) -> None:
        """Apply queued row changes and pause/resume/retire requests, in order."""
        while self._changes or self._controls:
            if self._controls:
                op, payload = self._controls.pop(0)
                if op == "retire":
                    await self._retire(payload)
                elif op == "pause":
                    await self._pause(payload, by_table=False)
                elif op == "resume":
                    await self._resume(payload)
                continue
            change = self._changes.pop(0)
            if self._ended:
                continue
            # several queued edits of one row: one read of its latest version is enough
            self._changes.clear()
            ctx = await self._load(None, change.record_id or (self.s.record_id if self.s else None))
            if change.action == "record_deleted" and ctx.device is None:
                await self._retire(Retire(event_id=change.event_id, reason="deleted from the device table",
                                          by=change.operator or "system"))
                continue
            await self._apply_context(ctx, actor=change.operator or "system", initial=False)

    # ------------------------------------------------------------------------------------- acting

    async def _act(self, decision: Decision) -> None:
        s = self.s
        assert s is not None and decision.step is not None
        if decision.action == "status":
            stage = decision.data["stage"]
            s.overdue_stage = stage
            if s.phase == "active":
                s.phase = "overdue"
            s.fired.append(decision.step)
            self._history(f"status_{stage}", reason=decision.reason, detail={"step": decision.step})
            if s.phase == "overdue":
                await self._write_row(self._labels())
            await self._log(s.history[-1])
            return
        if decision.action in ("remind", "escalate"):
            role = decision.data.get("to", "owner")
            audience = "owner+manager" if decision.step == "due" else role
            template = "device_calibration:reminder.card"
        elif decision.action == "away_reminder":
            audience, template = "owner+manager", "device_calibration:away.card"
        else:  # assessment_reminder
            audience, template = "manager", "device_calibration:assessment.card"
        to = rules.recipients(audience, s.info, self.settings)
        # the card says which notice it is; why it went out (lead times, a catch-up) is in the audit row
        context = {**self._card_context(), "step": decision.step, "stage": decision.action, "audience": audience,
                   "reason": rules.notice_note(decision, self.locale, self.settings)}
        for open_id in to:
            await self._send(open_id, template, context, decision.step)
        s.fired.append(decision.step)
        self._history(decision.action, reason=decision.reason,
                      detail={"step": decision.step, "to": to, "catch_up": bool(decision.data.get("catch_up"))})
        await self._log(s.history[-1])

    async def _finish_cycle(self, result: CalibrationResult) -> None:
        """A passing calibration: write the row back, tell the custodian and manager, set the next due date."""
        s = self.s
        assert s is not None
        next_due = rules.next_cycle_due(result, s.interval_months)
        kind = self.settings.schedules[s.kind]
        previous_cycle = s.cycle
        s.last_calibrated, s.due, s.last_certificate = result.performed_on, next_due, result.certificate
        s.last_result, s.phase, s.overdue_stage = result, "active", ""
        s.sent_out, s.assessment, s.fired = None, None, []
        fields = self._labels()
        zone = self.calendar.zone
        fields[kind.last_field] = date_cell(result.performed_on, zone)
        if kind.due_field:
            fields[kind.due_field] = date_cell(next_due, zone)
        if kind.certificate_field:
            fields[kind.certificate_field] = result.certificate
        # 送检单位 / 送检日期 stay: they now say where and when the last calibration was sent
        await self._write_row(fields)
        self._history("cycle_completed", actor=result.recorded_by,
                      reason=f"calibrated {result.performed_on.isoformat()} by {result.performed_by}, certificate "
                             f"{result.certificate}; next due {next_due.isoformat()} (+{s.interval_months} months)",
                      detail={"certificate": result.certificate, "next_due": next_due.isoformat()})
        await self._log(s.history[-1])
        context = {**self._card_context(), "cycle": previous_cycle, "performed_on": result.performed_on.isoformat(),
                   "performed_by": result.performed_by, "certificate": result.certificate,
                   "next_due": next_due.isoformat()}
        for open_id in rules.recipients("owner+manager", s.info, self.settings):
            await self._send(open_id, "device_calibration:calibrated", context, "calibrated")
        s.cycle = previous_cycle + 1
        s.history = s.history[-self.settings.history_limit:]
        self._complete = None

    async def _retire(self, request: Retire) -> None:
        s = self.s
        if s is None or self._ended:
            return
        s.phase = "retired"
        self._history("retired", actor=request.by, reason=request.reason or "retired")
        fields = self._labels()
        if request.mark_retired and self.settings.retired_values:
            # retired by the engine (the assessment's outcome): the usage status says so
            fields[self.settings.fields.status] = self.settings.retired_values[0]
            await self._write_row(fields)
        else:
            # only this kind's state cell: the usage status stays as people set it (报废 ...)
            await self._write_row(fields, status=False)
        await self._log(s.history[-1])
        self._ended = True

    async def _pause(self, request: PauseRequest, *, by_table: bool) -> None:
        s = self.s
        if s is None or self._ended or s.phase in ("paused", "retired"):
            return
        s.phase_before_pause, s.phase = s.phase, "paused"
        s.paused_reason, s.paused_by_table = request.reason, by_table
        self._history("paused", actor=request.by, reason=request.reason or "paused")
        await self._write_row(self._labels(), status=False)
        await self._log(s.history[-1])

    async def _resume(self, request: PauseRequest) -> None:
        s = self.s
        if s is None or self._ended or s.phase != "paused":
            return
        s.phase = s.phase_before_pause or "active"
        s.phase_before_pause, s.paused_reason, s.paused_by_table = None, "", False
        self._history("resumed", actor=request.by, reason=request.reason or "resumed")
        # back to overdue or quarantine: the usage status must say 停用 again, whatever people typed
        restricted = s.phase in ("overdue", "quarantined") and workflow.patched(PATCH_RESUME_RESTORES_STATUS)
        await self._write_row(self._labels(), status=restricted)
        await self._log(s.history[-1])

    # ------------------------------------------------------------------------------------ signals

    @workflow.signal(name="record_changed")
    async def record_changed(self, change: RecordChanged) -> None:
        """The device's row changed (Bitable event or reconciliation): re-read it and re-plan."""
        if not self.seen.first_time(change.event_id):
            return
        self._changes.append(change)
        self._wake = True

    @workflow.signal(name="retire")
    async def retire(self, request: Retire) -> None:
        """End the cycle cleanly (device retired or removed)."""
        if self.seen.first_time(request.event_id):
            self._controls.append(("retire", request))
            self._wake = True

    @workflow.signal(name="pause")
    async def pause(self, request: PauseRequest) -> None:
        """Hold reminders and status changes (e.g. the device is in repair)."""
        if self.seen.first_time(request.event_id):
            self._controls.append(("pause", request))
            self._wake = True

    @workflow.signal(name="resume")
    async def resume(self, request: PauseRequest) -> None:
        if self.seen.first_time(request.event_id):
            self._controls.append(("resume", request))
            self._wake = True

    # ------------------------------------------------------------------------------------ updates

    async def _ready(self, inp: CardInput,
                     phase_ok: Callable[[str], bool] | None = None) -> dict[str, str] | None:
        """Wait for the run to initialize; a toast if the card is stale, the cycle has ended, or the
        press does not apply to the cycle's phase (``phase_ok``)."""
        await workflow.wait_condition(lambda: self.s is not None)
        s = self.s
        assert s is not None
        if inp.cycle is not None and inp.cycle != s.cycle:
            return rules.toast(self.locale, "stale", cycle=inp.cycle)
        if self._ended or self._complete is not None or (phase_ok is not None and not phase_ok(s.phase)):
            return rules.toast(self.locale, "wrong_phase", phase=rules.phase_name(s.phase, self.locale))
        return None

    @workflow.update(name="sent_out")
    async def sent_out(self, inp: CardInput) -> dict[str, str]:
        """"Sent for calibration" (vendor, date): the ladder stops; an away-too-long reminder takes over."""
        refused = await self._ready(inp, lambda phase: phase in ("active", "overdue"))
        if refused:
            return refused
        s = self.s
        assert s is not None
        parsed = rules.parse_sent_out(inp.values, self._today())
        if isinstance(parsed, Decision):
            return self._refuse_form(inp, parsed)
        vendor, sent_on = parsed
        s.sent_out = SentOut(vendor=vendor, sent_on=sent_on, by=inp.operator, at=self._now())
        s.phase = "sent_out"
        self._history("sent_out", actor=inp.operator, reason=f"sent to {vendor} on {sent_on.isoformat()}",
                      detail={"vendor": vendor, "sent_on": sent_on.isoformat(), "event_id": inp.event_id})
        self._wake = True
        fields = self._labels()
        fields[self.settings.fields.vendor] = vendor
        fields[self.settings.fields.sent_on] = date_cell(sent_on, self.calendar.zone)
        await self._effects(functools.partial(self._write_row, fields), functools.partial(self._log, s.history[-1]))
        return rules.toast(self.locale, "sent_out", vendor=vendor, sent_on=sent_on.isoformat())

    @workflow.update(name="result_form")
    async def result_form(self, inp: CardInput) -> dict[str, str]:
        """"Calibrated": send the result form (date, performed by, certificate, as-found/as-left) to the presser."""
        refused = await self._ready(inp, lambda phase: phase not in CLOSED_PHASES)
        if refused:
            return refused
        s = self.s
        assert s is not None
        self._history("result_form_requested", actor=inp.operator, reason="calibrated pressed",
                      detail={"event_id": inp.event_id})
        await self._effects(self._message(inp.operator, "device_calibration:result_form.card",
                                          {**self._card_context(), "today": self._today().isoformat()},
                                          f"result_form:{inp.event_id}"))
        return rules.toast(self.locale, "form_sent")

    @workflow.update(name="result")
    async def result(self, inp: CardInput) -> dict[str, str]:
        """The calibration result: pass starts the next cycle; out of tolerance quarantines and opens an assessment."""
        refused = await self._ready(inp, lambda phase: phase not in CLOSED_PHASES)
        if refused:
            return refused
        s = self.s
        assert s is not None
        parsed = rules.parse_result(inp.values, self._today())
        if isinstance(parsed, Decision):
            return self._refuse_form(inp, parsed)
        result = CalibrationResult(**parsed, recorded_by=inp.operator, recorded_at=self._now())
        verdict = rules.assess_result(result.as_found, result.as_left)
        self._history("result", actor=inp.operator, reason=verdict.reason,
                      detail={**result.model_dump(mode="json"), "verdict": verdict.action, "event_id": inp.event_id})
        await self._effects(functools.partial(self._log, s.history[-1]))
        self._wake = True
        if s.phase == "quarantined" and s.assessment is not None:
            # Quarantined already, the assessment covers the earlier results: what matters is whether the
            # device is usable now (as-left), not how it was found after its repair.
            usable = result.as_left in rules.USABLE if workflow.patched(PATCH_QUARANTINE_AS_LEFT) \
                else verdict.action == "pass"
            if not usable:
                s.last_result = result
                return rules.toast(self.locale, "quarantined")
            s.last_result = result
            if s.assessment.closed_at is None:
                return rules.toast(self.locale, "recorded_wait")
            self._complete = result
            return rules.toast(self.locale, "passed", certificate=result.certificate,
                               due=rules.next_cycle_due(result, s.interval_months).isoformat())
        if verdict.action == "pass":
            self._complete = result
            return rules.toast(self.locale, "passed", certificate=result.certificate,
                               due=rules.next_cycle_due(result, s.interval_months).isoformat())
        # out of tolerance: protect from use first, then ask for the assessment
        s.phase, s.sent_out, s.last_result = "quarantined", None, result
        managers = rules.recipients("manager", s.info, self.settings)
        s.assessment = Assessment(opened_at=self._now(), result=result, owner=managers[0] if managers else "")
        self._history("quarantined", reason=verdict.reason, detail={"certificate": result.certificate})
        fields = self._labels()
        kind = self.settings.schedules[s.kind]
        if kind.certificate_field:
            fields[kind.certificate_field] = result.certificate
        # people read the results and the verdict in their language; the verdict's reason is in the audit row
        context = {**self._card_context(), "performed_on": result.performed_on.isoformat(),
                   "as_found": rules.result_name(result.as_found, self.locale),
                   "as_left": rules.result_name(result.as_left, self.locale), "certificate": result.certificate,
                   "reason": rules.words(self.locale, f"note.{verdict.action}"), "step": "assessment:open"}
        await self._effects(
            functools.partial(self._write_row, fields), functools.partial(self._log, s.history[-1]),
            *(self._message(open_id, "device_calibration:assessment.card", context, "assessment:open")
              for open_id in managers),
            self._message(s.info.custodian.open_id, "device_calibration:quarantined", context, "quarantined")
            if s.info.custodian else None)
        return rules.toast(self.locale, "quarantined" if verdict.action == "quarantine" else "assess")

    @workflow.update(name="close_assessment")
    async def close_assessment(self, inp: CardInput) -> dict[str, str]:
        """The manager closes the out-of-tolerance assessment: return to service, or retire the device."""
        refused = await self._ready(inp)
        if refused:
            return refused
        s = self.s
        assert s is not None
        if s.phase != "quarantined" or s.assessment is None or s.assessment.closed_at is not None:
            return rules.toast(self.locale, "wrong_phase", phase=rules.phase_name(s.phase, self.locale))
        if inp.operator not in rules.recipients("manager", s.info, self.settings):
            self._history("assessment_close_refused", actor=inp.operator, reason="not the equipment manager")
            return rules.toast(self.locale, "not_manager")
        conclusion = rules.cell_text(inp.values.get("conclusion"))
        outcome = rules.cell_text(inp.values.get("outcome")) or "return_to_service"
        if not conclusion:
            return self._refuse_form(inp, Decision(action="refuse", reason="conclusion is required",
                                                   data={"code": "conclusion_required"}))
        if outcome not in ("return_to_service", "retire"):
            return self._refuse_form(inp, Decision(action="refuse", reason=f"outcome {outcome!r} is not "
                                                   "return_to_service or retire", data={"code": "outcome_values"}))
        s.assessment.closed_at, s.assessment.closed_by = self._now(), inp.operator
        s.assessment.conclusion = conclusion
        s.assessment.affected = rules.cell_text(inp.values.get("affected"))
        s.assessment.outcome = outcome  # type: ignore[assignment]
        self._history("assessment_closed", actor=inp.operator, reason=conclusion,
                      detail={"outcome": outcome, "affected": s.assessment.affected, "event_id": inp.event_id})
        await self._effects(functools.partial(self._log, s.history[-1]))
        self._wake = True
        if outcome == "retire":
            # the row's usage status must say so, or the next reconciliation would start a new cycle
            mark = workflow.patched(PATCH_ASSESSMENT_RETIRE_STATUS)
            self._controls.append(("retire", Retire(event_id="", reason=f"assessment: {conclusion}",
                                                    by=inp.operator, mark_retired=mark)))
            return rules.toast(self.locale, "closed_retire")
        if s.last_result is not None and s.last_result.as_left in rules.USABLE:
            self._complete = s.last_result
            return rules.toast(self.locale, "closed_return")
        return rules.toast(self.locale, "closed_wait")

    # -------------------------------------------------------------------------------------- query

    @workflow.query(name="state")
    def state(self) -> CycleState | None:
        """Status, due date, days left, last certificate, and the history of decisions and confirmations."""
        if self.s is None:
            return None
        status, _ = rules.bitable_labels(self.s.phase, self.s.overdue_stage, self.settings)
        return self.s.model_copy(update={
            "days_left": rules.days_left(self.s.due, self._now(), self.calendar.zone),
            "status_label": status, "seen": []})

    # ------------------------------------------------------------------------------------ helpers

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    def _today(self) -> date:
        return self._now().astimezone(self.calendar.zone).date()

    def _history(self, action: str, *, actor: str = "system", reason: str = "",
                 detail: dict[str, Any] | None = None) -> None:
        assert self.s is not None
        self.s.next_seq += 1
        self.s.history.append(HistoryEntry(at=self._now(), cycle=self.s.cycle, seq=self.s.next_seq,
                                           action=action, actor=actor, reason=reason, detail=detail or {}))

    def _labels(self) -> dict[str, Any]:
        """The row's usage status and this kind's cycle-state cell for the current phase."""
        s = self.s
        assert s is not None
        status, state = rules.bitable_labels(s.phase, s.overdue_stage, self.settings)
        fields: dict[str, Any] = {self.settings.fields.status: status}
        kind = self.settings.schedules.get(s.kind)
        if kind and kind.state_field:
            fields[kind.state_field] = state
        return fields

    def _card_context(self) -> dict[str, Any]:
        s = self.s
        assert s is not None
        info = s.info
        return {
            "org": s.org, "device_id": s.device_id, "kind": s.kind, "key": cycle_key(s.device_id, s.kind),
            "cycle": s.cycle, "name": info.name, "model": info.model, "department": info.department,
            "location": info.location, "custodian": info.custodian.name if info.custodian else "",
            "manager": info.manager.name if info.manager else "",
            "due": s.due.isoformat() if s.due else "", "now": self._now().isoformat(),
            "days_left": rules.days_left(s.due, self._now(), self.calendar.zone),
            "last_certificate": s.last_certificate, "phase": s.phase,
            "vendor": s.sent_out.vendor if s.sent_out else "",
            "sent_on": s.sent_out.sent_on.isoformat() if s.sent_out else "",
        }

    async def _send(self, open_id: str, template: str, context: dict[str, Any], step: str) -> None:
        await self._message(open_id, template, context, step)()

    def _message(self, open_id: str, template: str, context: dict[str, Any], step: str) -> Effect:
        """A message whose idempotency key (cycle, step, recipient) is taken now, when it is decided."""
        assert self.s is not None
        request = fr.SendMessage(
            org=self.s.org, to=fr.Recipient(id=open_id), template=template, context=context,
            idempotency_key=f"{self.wid}:{self.s.cycle}:{step}:{open_id}", locale=self.locale)
        return functools.partial(feishu_call, fr.SEND_MESSAGE, request, result_type=fr.SentMessage)

    def _deferring(self) -> bool:
        """Whether updates leave their I/O to the main loop (runs since ``PATCH_DEFERRED_IO``)."""
        if self._defer is None:
            self._defer = workflow.patched(PATCH_DEFERRED_IO)
        return self._defer

    async def _effects(self, *works: Effect | None) -> None:
        """A decision's I/O, in order: queued for the main loop (the press is answered first), or at once in
        runs recorded before."""
        deferring = self._deferring()
        for work in works:
            if work is None:
                continue
            if deferring:
                self.deferred.add(work)
            else:
                await work()

    def _refuse_form(self, inp: CardInput, problem: Decision) -> dict[str, str]:
        """A form with a mistake: the person is told what to fix in their language; the reason is logged."""
        workflow.logger.info("%s: form of %s refused: %s", self.wid, inp.event_id, problem.reason)
        return rules.toast(self.locale, "invalid", problem=rules.problem_text(problem, self.locale))

    async def _write_row(self, fields: dict[str, Any], *, status: bool = True) -> None:
        """Write cells of the device's row (``status=False`` leaves the usage status as people set it)."""
        s = self.s
        assert s is not None
        if not status:
            fields = {k: v for k, v in fields.items() if k != self.settings.fields.status}
        if not s.record_id or not fields:
            return
        bitable = self.settings.bitable
        status_label = fields.get(self.settings.fields.status)
        try:
            if status_label not in (None, self.settings.status_labels.out_of_service) and \
                    workflow.patched(PATCH_COMBINED_STATUS):
                # the status column is shared by the device's kinds: the plugin's activity reads the row and
                # keeps the most restrictive status
                await _plugin_activity("device_calibration.write_status", WriteStatus(
                    org=s.org, record_id=s.record_id, kind=s.kind, fields=fields), type(None))
            else:
                await feishu_call(fr.BITABLE_UPDATE, fr.BitableUpdate(
                    org=s.org, app_token=bitable.app_token, table_id=bitable.table_id, record_id=s.record_id,
                    fields=fields))
        except ActivityError as error:
            cause = error.cause
            if not (isinstance(cause, ApplicationError) and cause.type == ROW_MISSING):
                raise
            # the row was deleted (e.g. the retire that follows a deletion): nothing left to write to
            self._history("row_missing", reason=f"record {s.record_id} is no longer in the device table")
            s.record_id = None

    async def _log(self, entry: HistoryEntry) -> None:
        """Append a decision or confirmation to the calibration log table (the audit trail in Bitable)."""
        s = self.s
        assert s is not None
        bitable, names = self.settings.bitable, self.settings.log_fields
        if not bitable.log_table_id:
            return
        key = rules.log_key(self.wid, entry)
        row = rules.log_row(names, key, s.device_id, s.kind, entry)
        await feishu_call(fr.BITABLE_CREATE, fr.BitableCreate(
            org=s.org, app_token=bitable.app_token, table_id=bitable.log_table_id, records=[row],
            client_token=key), result_type=list[fr.BitableRecord])


# ------------------------------------------------------------------------------------- reconciliation


@workflow.defn(name=RECONCILE_WORKFLOW)
class Reconcile:
    """Reads the device table and fixes drift between it and the running cycles; reports what changed."""

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileReport:
        info = workflow.info()
        run = inp.model_copy(update={"run_key": f"{info.workflow_id}:{info.run_id}"})
        report: ReconcileReport = await _plugin_activity("device_calibration.reconcile", run, ReconcileReport,
                                                         minutes=120)  # 100,000 new rows took 17 min (bench/devices.py)
        changed = [c for c in report.changes if c.action in ("started", "updated", "retired")]
        if inp.report and (report.fixes() or report.errors):
            settings: dict[str, Any] = await _plugin_activity(
                "device_calibration.settings", inp.org, dict)
            parsed = DeviceCalibrationSettings.model_validate(settings)
            if parsed.report_reconciliation:
                # why each change was made stays in the returned report and the cycles' audit rows: the
                # managers read what changed, in their language
                if report.errors:
                    workflow.logger.warning("reconciliation of %s: %s", inp.org, "; ".join(report.errors))
                # a message lists the first REPORTED_CHANGES; the count is of them all
                context = {"rows": report.rows, "unchanged": report.count("unchanged"), "fixes": report.fixes(),
                           "changes": [{"key": c.key, "action": c.action, "reason": ""}
                                       for c in changed[:REPORTED_CHANGES]],
                           "errors": [rules.report_problem(report.locale)] if report.errors else []}
                for open_id in parsed.default_managers:
                    await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                        org=inp.org, to=fr.Recipient(id=open_id), template="device_calibration:reconcile_report",
                        context=context, idempotency_key=f"{info.workflow_id}:{info.run_id}:report:{open_id}"),
                        result_type=fr.SentMessage)
        return report


@workflow.defn(name=DIGEST_WORKFLOW)
class WeeklyDigest:
    """One card per department head: devices due soon, overdue, and out for calibration."""

    @workflow.run
    async def run(self, inp: DigestInput) -> list[DepartmentDigest]:
        info = workflow.info()
        digests: list[DepartmentDigest] = await _plugin_activity(
            "device_calibration.collect_digest", inp, list[DepartmentDigest], minutes=30)
        settings = DeviceCalibrationSettings.model_validate(
            await _plugin_activity("device_calibration.settings", inp.org, dict))
        for digest in digests:
            if not (digest.due_soon or digest.overdue or digest.sent_out):
                continue
            recipients = [digest.head] if digest.head else list(settings.default_managers)
            context = {"department": digest.department, "now": workflow.now().isoformat(),
                       "window_days": inp.window_days or settings.digest_window_days,
                       "due_soon": [item.model_dump(mode="json") for item in digest.due_soon],
                       "overdue": [item.model_dump(mode="json") for item in digest.overdue],
                       "sent_out": [item.model_dump(mode="json") for item in digest.sent_out]}
            for open_id in recipients:
                await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                    org=inp.org, to=fr.Recipient(id=open_id), template="device_calibration:digest.card",
                    context=context,
                    idempotency_key=f"{info.workflow_id}:{info.run_id}:digest:{digest.department}:{open_id}"),
                    result_type=fr.SentMessage)
        return digests


# ------------------------------------------------------------------------------------ monthly outcome


@workflow.defn(name=OUTCOME_WORKFLOW)
class MonthlyOutcome:
    """Last month's outcome, one card per configured site, sent on the first working day of the month.

    Started every morning of days 1-12 by a schedule; a run that is not on the first working day ends
    without sending (the calendar knows the holidays a cron cannot). Figures come from the calibration
    log only (``outcome.outcome_figures``).
    """

    @workflow.run
    async def run(self, inp: OutcomeInput) -> int:
        context = await load_site_context(SCENARIO, org=inp.org)
        settings = context.settings_as(DeviceCalibrationSettings)
        calendar = context.calendar()
        now = context.clock.now(workflow.now())
        report = report_month(now, calendar)
        if report is None or not settings.report_recipients:
            return 0
        month, until = report.first, report.until
        data: OutcomeData = await _plugin_activity(
            "device_calibration.outcome_data", OutcomeRequest(org=inp.org, until=until), OutcomeData, minutes=10)
        sent = 0
        for site, recipients in sorted(settings.report_recipients.items()):
            figures = outcome.outcome_figures(data.rows, data.devices, month=month, zone=calendar.zone,
                                              assumptions=settings.outcome, site=site)
            # a site's card in its language, under its name
            where = await load_site_context(SCENARIO, site, org=inp.org) if site else context
            card = {**figures, "month": f"{month:%Y-%m}", "site": where.site_name if site else "",
                    "now": now.isoformat()}
            sent += await send_to_each(inp.org, recipients, "device_calibration:outcome.card", card,
                                       locale=where.locale, key=f"{workflow.info().workflow_id}:{month:%Y-%m}:{site}")
        return sent


WORKFLOWS = [CalibrationCycle, Reconcile, WeeklyDigest, MonthlyOutcome]
__all__ = ["SCENARIO", "WORKFLOWS", "CalibrationCycle", "MonthlyOutcome", "Reconcile", "WeeklyDigest"]
