"""Temporal workflows of repair: one Ticket per report, and the monthly report card.

``repair.Ticket`` (ID ``{org}:repair:{ticket number}``) runs from the report to the rating: triage by the
site's rules, dispatch to the technician on duty, the accept SLA with its escalation ladder (team lead,
then head of department), the technician's steps (accepted, on the way, working, waiting for parts, done;
waiting for parts pauses the fix SLA), the reporter's confirmation or reopening, auto-close, and the
rating. Card presses are updates that decide and answer at once; the writes and messages they decided
run afterwards in the main loop (``engine.sdk.Deferred``). Timers run on the organization's business
clock (``BusinessClock``) and on the site's working hours for non-urgent tickets.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.sdk import (
        BusinessClock,
        Deferred,
        Refusal,
        SeenEvents,
        WorkCalendar,
        activity_options,
        feishu_call,
        load_site_context,
        raise_event,
        report_month,
        send_to_each,
        workflow_org,
    )
    from engine.sdk import feishu as fr

from . import rules
from .bitable import history_fields, ticket_fields
from .config import RepairSettings
from .models import (
    ActRequest,
    AlertNote,
    HistoryEntry,
    Intake,
    IntakeRequest,
    OnDutyRequest,
    ReportInput,
    ReportRequest,
    Technician,
    Ticket,
    TicketInput,
    TicketRow,
)

SCENARIO = "repair"
HISTORY_KEPT = 100
OWN_ACTIVITY = activity_options(timedelta(seconds=30))
# A closed ticket's workflow stays a week to answer late presses on its cards, "the ticket is closed" in the
# person's language (a finished workflow gets only the engine's "this card is no longer active", in the
# organization's language).
ANSWER_CLOSED = timedelta(days=7)
# Tickets on an asset tell the other scenarios when it goes into repair and when it is back in service.
PATCH_ASSET_EVENTS = "asset-events"
# A site's monthly card: its rows by id or name, its name in the title, its language.
PATCH_SITE_CARDS = "monthly-site-cards"


class Refused(Refusal):
    """A press the ticket's state refuses; its message is what the person is told, in their language."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="RepairRefused")


@workflow.defn(name="repair.Ticket")
class TicketWorkflow:
    """One repair ticket, from the report to the rating (or to the alert's resolution)."""

    @workflow.init
    def __init__(self, params: TicketInput) -> None:
        self.t = Ticket(ticket_id=params.ticket_id, source=params.source, text=params.text,
                        reporter_open_id=params.reporter_open_id, photos=list(params.photos),
                        location=params.location, asset_id=params.asset_id, record_id=params.record_id,
                        reporter_locale=params.reporter_locale or "zh_CN")
        self.seen = SeenEvents([])
        self.deferred = Deferred()
        self.settings = RepairSettings()
        self.calendar = WorkCalendar("Asia/Shanghai")
        self.clock = BusinessClock()
        self.locale = "zh_CN"
        self.loaded = False
        self.version = 0  # bumped on every change the timers must re-plan for
        self.writes = 0
        self.unwritten: list[HistoryEntry] = []  # history entries not in the history table yet
        self.asset_held = False  # "asset.in_repair" was raised; "asset.repaired" is owed when the fix is confirmed

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, params: TicketInput) -> str:
        intake = await workflow.execute_activity(
            "repair.intake", IntakeRequest(org=workflow_org(), ticket=params), result_type=Intake, **OWN_ACTIVITY)
        if intake.ignore or intake.context is None:
            self.t.status = "closed"
            self.loaded = True
            return "ignored"
        self._take(params, intake)
        await self._dispatch("dispatch")
        await self._acknowledge(params)
        await self._write_row()
        if self.t.asset_id and workflow.patched(PATCH_ASSET_EVENTS):
            await self._asset_event("asset.in_repair")
        while self.t.status != "closed":
            await self._wait_and_act()
            await self._asset_back()
        await self.deferred.run()
        await self._asset_back()
        if self.t.source != "alert":  # an alert firing again after its resolution is a new ticket: end now
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.deferred.pending,
                                              timeout=self.clock.real_delay(ANSWER_CLOSED))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.deferred.run()
        return self.t.status

    def _take(self, params: TicketInput, intake: Intake) -> None:
        """The site's context and the triage: everything decided before the first message."""
        context = intake.context
        assert context is not None
        self.settings = context.settings_as(RepairSettings)
        self.calendar = context.calendar()
        self.clock = context.clock
        self.locale = context.locale
        t = self.t
        t.text, t.location, t.asset_id = intake.text, intake.location, intake.asset_id
        t.reporter_open_id, t.reporter_name = intake.reporter_open_id, intake.reporter_name
        t.site, t.site_name, t.record_id = intake.site, intake.site_name, intake.record_id or t.record_id
        t.reporter_locale = params.reporter_locale or context.locale
        # when Feishu took the report (or the alert began), on the business clock like every other moment
        t.reported_at = min(self.clock.now(params.reported_at), self._now()) if params.reported_at else self._now()
        category = params.category or (self.settings.alert_category if t.source == "alert" else "")
        decision = rules.triage(t.text, t.location, self.settings, category)
        t.category, t.priority = decision.data["category"], decision.data["priority"]
        self._remember("reported", t.reporter_open_id, f"{t.source}; {decision.reason}")
        self.loaded = True

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    def _deadline(self, start: datetime, minutes: float) -> datetime:
        return rules.sla_deadline(start, minutes, urgent=self.t.priority == "urgent", calendar=self.calendar,
                                  sla=self.settings.sla)

    def _next_timer(self) -> tuple[datetime, str] | None:
        t, sla = self.t, self.settings.sla
        if t.status == "dispatched" and t.accept_due is not None and t.escalations < 2:
            if t.escalations == 0:
                return t.accept_due, "escalate"
            head_after = sla.head_after_minutes or sla.accept_minutes(t.priority)
            return self._deadline(t.accept_due, head_after), "escalate"
        if t.status in ("accepted", "on_the_way", "working") and t.fix_due is not None and not t.fix_escalated:
            return t.fix_due, "fix_late"
        if t.status == "done" and t.done_at is not None:
            return t.done_at + timedelta(hours=self.settings.auto_close_hours), "auto_close"
        if t.status == "confirmed" and t.confirmed_at is not None:
            return t.confirmed_at + timedelta(hours=self.settings.rating_hours), "rating_over"
        return None

    async def _wait_and_act(self) -> None:
        version = self.version
        timer = self._next_timer()
        woken = False
        if timer is None:
            await workflow.wait_condition(lambda: self.deferred.pending or self.version != version)
            woken = True
        else:
            delay = timer[0] - self._now()
            if delay > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.deferred.pending or self.version != version,
                                                  timeout=self.clock.real_delay(delay))
                    woken = True
        if self.deferred.pending:
            await self.deferred.run()
        if woken or timer is None or self.version != version:
            return
        await self._on_timer(timer[1])

    async def _on_timer(self, kind: str) -> None:
        t, now = self.t, self._now()
        self.version += 1
        if kind == "escalate":
            t.escalations += 1
            t.accept_late = True
            team = self.settings.team(t.category)
            to = team.lead_open_id if t.escalations == 1 else team.head_open_id
            self._remember("escalated", "", f"not accepted by {t.accept_due}: rung {t.escalations} -> {to or 'nobody'}")
            await self._card(to, "escalation", f"escalate:{t.reopened}:{t.escalations}")
            await self._write_history()
        elif kind == "fix_late":
            t.fix_escalated = t.fix_late = True
            to = self.settings.team(t.category).lead_open_id
            self._remember("fix_late", "", f"not fixed by {t.fix_due} -> {to or 'nobody'}")
            await self._card(to, "fix_late", f"fix_late:{t.reopened}")
            await self._write_history()
        else:
            t.status, t.closed_at = "closed", now
            self._remember("closed", "", "auto-close: not confirmed in time" if kind == "auto_close"
                           else "rating window over")
            await self._tell_reporter("repair:progress", {"auto": kind == "auto_close"}, f"closed:{t.reopened}")
            await self._write_row()
            await self._write_history()

    # ---------------------------------------------------------------------------------- dispatching

    async def _dispatch(self, kind: str) -> None:
        """Find the technician on duty and send them the ticket card; the accept SLA starts now."""
        t = self.t
        now = self._now()
        technician = await workflow.execute_activity(
            "repair.on_duty", OnDutyRequest(org=workflow_org(), site=t.site, category=t.category, at=now),
            result_type=Technician, **OWN_ACTIVITY)
        t.technician = technician
        t.status = "dispatched"
        t.accept_due = self._deadline(now, self.settings.sla.accept_minutes(t.priority))
        t.escalations = 0
        self._remember(kind, "", f"to {technician.open_id or 'nobody on duty'}; accept by {t.accept_due.isoformat()}")
        sent = await self._card(technician.open_id, kind, f"{kind}:{t.reopened}")
        if t.notified_at is None and sent:
            t.notified_at = self._now()

    async def _acknowledge(self, params: TicketInput) -> None:
        """The reporter's answer, carrying the ticket number: a reply to the report, or a direct message."""
        t = self.t
        context = self._context()
        if params.message_id:
            await self._send(None, "repair:received", context, "received", reply_to=params.message_id,
                             locale=t.reporter_locale)
        elif t.reporter_open_id:
            await self._send(t.reporter_open_id, "repair:received", context, "received", locale=t.reporter_locale)

    # -------------------------------------------------------------------------------------- presses

    def _crew(self) -> set[str]:
        team = self.settings.team(self.t.category)
        return {x for x in (self.t.technician.open_id, team.lead_open_id, team.head_open_id) if x}

    def _locale_of(self, open_id: str) -> str:
        return self.t.reporter_locale if open_id == self.t.reporter_open_id else self.locale

    @workflow.update(name="act")
    async def act(self, request: ActRequest) -> dict[str, Any]:
        """A technician's step (accept ... done) or the reporter's confirm, reopen or rating.

        Decided and answered at once; the row, the history and the messages follow in the main loop.
        """
        self.seen.first_time(request.event_id)
        await workflow.wait_condition(lambda: self.loaded)
        locale = self._locale_of(request.actor_open_id)
        problem = self._problem(request)
        if problem:
            raise Refused(problem)
        t, now, op = self.t, self._now(), request.op
        self.version += 1
        if t.paused_at is not None and op in ("working", "done") and t.fix_due is not None:
            # back from waiting for parts: the fix SLA resumes with the time it had left
            left = rules.sla_between(t.paused_at, t.fix_due, urgent=t.priority == "urgent", calendar=self.calendar,
                                     sla=self.settings.sla)
            t.fix_due = self._deadline(now, left.total_seconds() / 60)
            t.paused_at = None
        if op == "accept":
            t.accepted_at = t.accepted_at or now
            if request.actor_open_id != t.technician.open_id:  # the lead or head took it themselves
                t.technician = Technician(open_id=request.actor_open_id)
            t.fix_due = self._deadline(now, self.settings.sla.fix_minutes(t.priority))
        elif op == "waiting_parts":
            t.paused_at = now
        elif op == "done":
            t.done_at = now
            t.fix_late = t.fix_late or (t.fix_due is not None and now > t.fix_due)
        elif op == "confirm":
            t.confirmed_at = now
        elif op == "rate":
            t.rating, t.comment = request.score, request.comment[:500]
            t.confirmed_at = t.confirmed_at or now
            t.status, t.closed_at = "closed", now
        if op in rules.NEXT_STATUS:
            t.status = rules.NEXT_STATUS[op]  # type: ignore[assignment]
        self._remember(op, request.actor_open_id, f"{op} via card" + (f"; score {request.score}" if op == "rate"
                                                                       else ""))
        self.deferred.add(self._after_press, op, len(t.history))
        return {"ok": True, "status": t.status, "toast": rules.text(op, locale, ticket=t.ticket_id)}

    def _problem(self, request: ActRequest) -> str | None:
        locale = self._locale_of(request.actor_open_id)
        if self.t.status == "closed":
            return rules.text("closed", locale)
        if request.op == "rate" and request.score not in (1, 2, 3, 4, 5):
            return rules.text("bad_score", locale)
        return rules.check_press(self.t, request.op, request.actor_open_id, self._crew(), locale)

    @act.validator
    def _validate_act(self, request: ActRequest) -> None:
        # refused before it is written to history: the answer is at once and nothing changes
        if request.event_id and request.event_id in self.seen:
            raise Refused(rules.text("already_done", self._locale_of(request.actor_open_id)))
        if self.loaded:
            problem = self._problem(request)
            if problem:
                raise Refused(problem)

    async def _after_press(self, op: str, step: int) -> None:
        """What a press decided, done after it was answered: messages, the row, the history."""
        t = self.t
        if op == "reopen":
            t.reopened += 1
            t.done_at = None
            await self._dispatch("reopened")
            await self._tell_reporter("repair:progress", {}, f"reopen:{t.reopened}")
        elif op == "done":
            await self._tell_reporter("repair:confirm.card", {}, f"done:{t.reopened}")
        elif op in ("accept", "on_the_way", "working", "waiting_parts"):
            await self._tell_reporter("repair:progress", {}, f"{op}:{step}")
        elif op == "rate" and t.technician.open_id:
            await self._send(t.technician.open_id, "repair:progress", self._context(), f"rated:{step}")
        await self._write_row()
        await self._write_history()

    # --------------------------------------------------------------------------------------- alerts

    @workflow.signal(name="alert")
    async def alert(self, note: AlertNote) -> None:
        """Alertmanager's word on this ticket's alert: still firing (noted), or resolved (the ticket closes)."""
        if not self.seen.first_time(note.event_id):
            return
        await workflow.wait_condition(lambda: self.loaded)
        t = self.t
        if t.status == "closed":
            return
        self.version += 1
        if note.status == "firing":
            t.alert_count += 1
            self._remember("alert_firing", "", f"{note.alertname} firing (#{t.alert_count}) since "
                                               f"{note.starts_at.isoformat() if note.starts_at else '?'}")
            self.deferred.add(self._write_history)
            return
        now = self._now()
        t.done_at = t.done_at or now
        t.status, t.closed_at = "closed", now
        self._remember("alert_resolved", "", f"{note.alertname} resolved at "
                                             f"{note.ends_at.isoformat() if note.ends_at else '?'}")
        self.deferred.add(self._send, t.technician.open_id, "repair:progress", self._context(),
                          f"resolved:{len(t.history)}")
        self.deferred.add(self._write_row)
        self.deferred.add(self._write_history)

    # ------------------------------------------------------------------------------ other scenarios

    async def _asset_event(self, what: str) -> None:
        """Tell the other scenarios about the ticket's asset (device_calibration pauses a device's cycle)."""
        t = self.t
        payload = {"asset_id": t.asset_id, "ticket": t.ticket_id, "site": t.site, "status": t.status}
        try:
            effects = await raise_event(SCENARIO, what, payload, key=what)
        except ActivityError as error:
            workflow.logger.warning("%s of %s not raised: %s", what, t.ticket_id, error)
            self._remember("event_failed", "", f"{what}: {error}")
            return
        self.asset_held = what == "asset.in_repair"
        self._remember(what, "", f"{t.asset_id}: {effects} action(s) in other scenarios")

    async def _asset_back(self) -> None:
        """Once the reporter confirmed the fix (or the ticket closed), the asset is back in service."""
        if self.asset_held and self.t.status in ("confirmed", "closed"):
            await self._asset_event("asset.repaired")

    # ---------------------------------------------------------------------------------------- query

    @workflow.query(name="state")
    def state(self) -> Ticket:
        return self.t.model_copy(update={"history": self.t.history[-20:]})

    # -------------------------------------------------------------------------------------- helpers

    def _remember(self, action: str, actor: str, note: str) -> None:
        self.t.history.append(HistoryEntry(at=self._now(), action=action, actor_open_id=actor, note=note))
        del self.t.history[:-HISTORY_KEPT]
        self.unwritten.append(self.t.history[-1])

    def _context(self) -> dict[str, Any]:
        """What every template of the scenario gets (JSON values only: it travels to the activity)."""
        t = self.t
        return {
            "ticket": t.ticket_id, "text": t.text, "location": t.location, "site": t.site_name or t.site,
            "asset_id": t.asset_id, "category": t.category, "priority": t.priority, "status": t.status,
            "reporter_name": t.reporter_name or t.reporter_open_id, "technician_name":
                t.technician.name or t.technician.open_id, "reported_at": t.reported_at.isoformat()
            if t.reported_at else "", "accept_due": t.accept_due.isoformat() if t.accept_due else "",
            "photos": len(t.photos), "rating": t.rating, "comment": t.comment, "source": t.source,
            "alert_count": t.alert_count, "reopened": t.reopened, "now": self._now().isoformat(),
        }

    async def _card(self, open_id: str, kind: str, step: str) -> bool:
        return await self._send(open_id, "repair:dispatch.card", {**self._context(), "kind": kind,
                                                                  "escalation": self.t.escalations}, step)

    async def _tell_reporter(self, template: str, extra: dict[str, Any], step: str) -> None:
        if self.t.reporter_open_id and self.t.source != "alert":
            await self._send(self.t.reporter_open_id, template, {**self._context(), **extra}, step,
                             locale=self.t.reporter_locale)

    async def _send(self, open_id: str | None, template: str, context: dict[str, Any], step: str, *,
                    reply_to: str | None = None, locale: str | None = None) -> bool:
        if not open_id and not reply_to:
            return False
        request = fr.SendMessage(org=workflow_org(), to=fr.Recipient(id=open_id) if open_id else None,
                                 reply_to=reply_to, template=template, context=context,
                                 idempotency_key=f"{workflow.info().workflow_id}:{step}", locale=locale or self.locale)
        try:
            await feishu_call(fr.SEND_MESSAGE, request, result_type=fr.SentMessage)
        except ActivityError as error:
            # the ticket goes on; the failure is in the history the status query and the audit rows show
            workflow.logger.warning("message %s for %s not sent: %s", template, self.t.ticket_id, error)
            self._remember("send_failed", open_id or "", f"{template}: {error}")
            return False
        return True

    async def _write_row(self) -> None:
        t, settings = self.t, self.settings
        fields = ticket_fields(t, settings)
        try:
            if t.record_id:
                await feishu_call(fr.BITABLE_UPDATE, fr.BitableUpdate(
                    org=workflow_org(), app_token=settings.app_token, table_id=settings.tickets_table_id,
                    record_id=t.record_id, fields=fields), result_type=fr.BitableRecord)
            else:
                created = await feishu_call(fr.BITABLE_CREATE, fr.BitableCreate(
                    org=workflow_org(), app_token=settings.app_token, table_id=settings.tickets_table_id,
                    records=[fields], client_token=f"{workflow.info().workflow_id}:row"),
                    result_type=list[fr.BitableRecord])
                t.record_id = created[0].record_id if created else ""
        except ActivityError as error:
            workflow.logger.warning("ticket row of %s not written: %s", t.ticket_id, error)

    async def _write_history(self) -> None:
        """The history rows not written yet (one create per batch, keyed so a retry writes none twice)."""
        entries, self.unwritten = self.unwritten, []
        if not entries:
            return
        self.writes += 1
        try:
            await feishu_call(fr.BITABLE_CREATE, fr.BitableCreate(
                org=workflow_org(), app_token=self.settings.app_token, table_id=self.settings.history_table_id,
                records=[history_fields(self.t.ticket_id, e, self.settings) for e in entries],
                client_token=f"{workflow.info().workflow_id}:h{self.writes}"), result_type=list[fr.BitableRecord])
        except ActivityError as error:
            workflow.logger.warning("history of %s not written: %s", self.t.ticket_id, error)


# ----------------------------------------------------------------------------------- monthly report


@workflow.defn(name="repair.MonthlyReport")
class MonthlyReportWorkflow:
    """Last month's figures per site and category, sent on the first working day of the month.

    Started every morning of the month's first week by a schedule; a run that is not on the first working
    day ends without sending (the calendar knows the holidays a cron cannot).
    """

    @workflow.run
    async def run(self, params: ReportInput) -> int:
        context = await load_site_context(SCENARIO, org=params.org)
        settings = context.settings_as(RepairSettings)
        calendar = context.calendar()
        now = context.clock.now(workflow.now())
        report = report_month(now, calendar)
        if report is None:
            return 0
        month_start, last, since = report.until, report.first, report.since
        rows = await workflow.execute_activity(
            "repair.list_tickets", ReportRequest(org=params.org, since=since, until=month_start),
            result_type=list[TicketRow], **OWN_ACTIVITY)
        figures = rules.monthly_figures(rows, settings.patrol_baseline_seconds)
        sent = 0
        for site, recipients in sorted(settings.report_recipients.items()):
            # recipients are keyed by site id, the rows name the site as it was written (its name): a site's
            # card takes the rows of either, is titled with its name and written in its language
            where = await load_site_context(SCENARIO, site, org=params.org) \
                if site and workflow.patched(PATCH_SITE_CARDS) else None
            own = {site, where.site_name if where else ""} - {""}
            mine = [f for f in figures if not site or f["site"] in own]
            if not mine:
                continue
            sent += await send_to_each(
                params.org, recipients, "repair:monthly.card",
                {"month": f"{last:%Y-%m}", "site": (where.site_name if where else "") or site, "groups": mine,
                 "now": now.isoformat()},
                key=f"{workflow.info().workflow_id}:{last:%Y-%m}:{site}", locale=where.locale if where else None)
        return sent


WORKFLOWS = [TicketWorkflow, MonthlyReportWorkflow]
