"""Temporal workflows of asset_loan: one Loan per asset, the "what do I have" reply, the keeper summary.

``asset_loan.Loan`` (ID ``{org}:asset_loan:{asset_id}``) lives as long as the asset: it waits while the
asset is available, takes a borrow as an *update* (Temporal runs one workflow's handlers on one thread,
and the handler claims the asset before its first await, so of two people scanning at once exactly one
borrows and the other gets a clear refusal), writes the asset row and a history row, reminds before and
on the due date, climbs the overdue ladder, and ends the loan on return, continuing as new so the history
of a loan-after-loan asset stays small.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.sdk import (
        Decision,
        Refusal,
        SeenEvents,
        WorkCalendar,
        activity_options,
        as_zone,
        feishu_call,
        workflow_org,
    )
    from engine.sdk import feishu as fr

from . import rules
from .bitable import history_fields, loan_fields
from .config import AssetLoanSettings
from .models import (
    ActorRequest,
    AssetInfo,
    AssetRef,
    AssetRow,
    BorrowRequest,
    CardRequest,
    ExtendRequest,
    GuardResult,
    HistoryEntry,
    Loan,
    LoanContext,
    LoanInput,
    LoanState,
    MarkRequest,
    MyLoansInput,
    SummaryInput,
    UserProfile,
)

SCENARIO = "asset_loan"
HISTORY_KEPT = 50  # entries carried over continue-as-new (the full record is in the history table)
OWN_ACTIVITY = activity_options(timedelta(seconds=30))
# Reminders and escalations on the site's working days (they ran on calendar days before).
WORKDAY_LADDER = "asset_loan.workday_ladder"


class Refused(Refusal):
    """An update the asset's state or rules refuse; its message is what the person is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="AssetLoanRefused")


@workflow.defn(name="asset_loan.Loan")
class LoanWorkflow:
    """The lifecycle of one asset: available → (requested →) on loan → returned, lost or damaged."""

    @workflow.init
    def __init__(self, params: LoanInput) -> None:
        self.asset_id = params.asset_id
        self.cycle = params.cycle
        self.status = params.status
        self.asset: AssetInfo | None = params.asset
        self.seen = SeenEvents(params.seen)
        self.history: list[HistoryEntry] = list(params.history)
        self.condition_note = params.condition_note
        self.loan: Loan | None = None
        self.claim: str | None = None
        self.context: LoanContext | None = None
        self.settings = AssetLoanSettings()
        self.zone = as_zone("Asia/Shanghai")
        self.calendar = WorkCalendar(self.zone)
        self.locale = "zh_CN"
        self.loaded = False
        self.version = 0  # bumped on every change the reminder loop must re-plan for
        self.cycle_done = False
        self.writes = 0  # numbers history writes, for their idempotency keys
        self._names: dict[str, str] = {}  # names given by borrowers while they hold the claim

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, params: LoanInput) -> None:
        await self._load()
        while not self.cycle_done:
            await workflow.wait_condition(lambda: self.cycle_done or self.status == "on_loan")
            if self.status == "on_loan":
                await self._remind_until_changed()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(LoanInput(
            asset_id=self.asset_id, cycle=self.cycle + 1, status=self.status, asset=self.asset,
            seen=self.seen.ids(), history=self.history[-HISTORY_KEPT:], condition_note=self.condition_note))

    async def _load(self) -> None:
        """Settings and the asset row, fresh for each run (an organization may have changed them)."""
        self.context = await workflow.execute_activity(
            "asset_loan.load_context", AssetRef(org=workflow_org(), asset_id=self.asset_id),
            result_type=LoanContext, **OWN_ACTIVITY)
        self.settings = AssetLoanSettings.model_validate(self.context.settings)
        self.zone = as_zone(self.context.timezone)
        site = self.context.site
        self.calendar = site.calendar() if site is not None else WorkCalendar(self.zone)
        self.locale = self.context.locale
        if self.context.asset is not None:
            self.asset = self.context.asset
        self.loaded = True

    async def _remind_until_changed(self) -> None:
        version = self.version
        while self.status == "on_loan" and self.loan is not None and self.version == version:
            loan = self.loan
            now = workflow.now()
            calendar = self.calendar if workflow.patched(WORKDAY_LADDER) else None
            plan = rules.reminder_plan(loan.due, self.settings.reminders, self.zone, calendar)
            decision = rules.next_reminder(plan, loan.notices, now, loan.plan_since)
            if decision.action == "wait" and decision.at is not None:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.version != version, timeout=decision.at - now)
                continue
            if decision.is_nothing:
                await workflow.wait_condition(lambda: self.version != version)
                return
            await self._send_notice(loan, decision)

    # ------------------------------------------------------------------------------------- updates

    def _check_available(self, borrower: str) -> None:
        label = self._label()
        if self.claim is not None:
            raise Refused(rules.text("in_progress", self.locale, asset=label, borrower=self._name(self.claim)))
        if self.status == "on_loan" and self.loan is not None:
            raise Refused(rules.text("on_loan_to", self.locale, asset=label,
                                     borrower=self.loan.borrower_name or self.loan.borrower_open_id,
                                     since=self._local(self.loan.borrowed_at or self.loan.requested_at)))
        if self.status == "requested" and self.loan is not None:
            raise Refused(rules.text("in_progress", self.locale, asset=label,
                                     borrower=self.loan.borrower_name or self.loan.borrower_open_id))
        if self.status != "available":
            raise Refused(rules.text("not_available", self.locale, asset=label, status=self._status_label()))

    @workflow.update(name="borrow")
    async def borrow(self, request: BorrowRequest) -> dict[str, Any]:
        """Borrow the asset (or ask the keeper, when the category needs approval)."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        # claim before the first await: a second borrower arriving meanwhile is refused by name
        self._check_available(request.borrower_open_id)
        self.claim = request.borrower_open_id
        self._names[request.borrower_open_id] = request.borrower_name
        try:
            await workflow.wait_condition(lambda: self.loaded)
            rule = self.settings.category_rule(self.asset.category if self.asset else None)
            profile = UserProfile(open_id=request.borrower_open_id, name=request.borrower_name)
            if not profile.name or rule.allowed_departments:
                fetched = await workflow.execute_activity(
                    "asset_loan.user_profile", AssetRef(org=workflow_org(), open_id=request.borrower_open_id),
                    result_type=UserProfile, **OWN_ACTIVITY)
                profile = fetched.model_copy(update={"name": request.borrower_name or fetched.name})
            guard = GuardResult()
            if self.context is not None and self.context.calibration_enabled:
                guard = await workflow.execute_activity(
                    "asset_loan.check_guard", AssetRef(org=workflow_org(), asset_id=self.asset_id),
                    result_type=GuardResult, **OWN_ACTIVITY)
            now = workflow.now()
            decision = rules.check_borrow(
                asset=self.asset, asset_id=self.asset_id, profile=profile, settings=self.settings,
                requested_due=request.due, today=rules.local_day(now, self.zone), guard=guard, locale=self.locale)
            if decision.action == "refuse":
                self._remember(HistoryEntry(at=now, action="borrow_refused", actor_open_id=profile.open_id,
                                            detail=decision.reason))
                raise Refused(decision.data["message"])
            loan = Loan(borrower_open_id=profile.open_id, borrower_name=profile.name, requested_at=now,
                        plan_since=now, due=date.fromisoformat(decision.data["due"]), via=request.via)
            if decision.action == "request_approval":
                await self._request_approval(loan, decision)
                return {"ok": True, "status": self.status, "due": loan.due.isoformat(),
                        "toast": decision.data["message"]}
            await self._start_loan(loan, decision.reason, actor=profile.open_id)
            return {"ok": True, "status": self.status, "due": loan.due.isoformat(), "toast": decision.data["message"]}
        finally:
            self.claim = None

    @borrow.validator
    def _validate_borrow(self, request: BorrowRequest) -> None:
        # refused before it is written to history: the loser of a race gets the answer at once
        self._refuse_seen(request)
        self._check_available(request.borrower_open_id)

    def _refuse_seen(self, request: ActorRequest | BorrowRequest) -> None:
        """Refuse an event applied before. Temporal dedupes an update id within a run only; after a return
        (continue-as-new) a redelivered borrow press would lend the asset again (tests/reliability)."""
        if request.event_id and request.event_id in self.seen:
            raise Refused(rules.text("already_done", self.locale))

    @workflow.update(name="approve")
    async def approve(self, request: ActorRequest) -> dict[str, Any]:
        """The keeper approves a pending borrow request."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._pending(request)
        loan.approved_by = request.actor_open_id
        loan.plan_since = workflow.now()
        await self._start_loan(loan, f"approved by {request.actor_open_id}", actor=request.actor_open_id)
        return {"ok": True, "status": self.status, "toast": rules.text(
            "approved", self.locale, borrower=loan.borrower_name or loan.borrower_open_id, asset=self._label())}

    @workflow.update(name="reject")
    async def reject(self, request: ActorRequest) -> dict[str, Any]:
        """The keeper rejects a pending borrow request."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._pending(request)
        self.status, self.loan = "available", None
        self.version += 1
        await self._record("reject", request.actor_open_id, loan.borrower_open_id, request.note or "rejected")
        await self._write_asset(None)
        await self._send(loan.borrower_open_id, "asset_loan:decision", {**self._context(loan), "approved": False},
                         f"decision:{len(self.history)}")
        return {"ok": True, "status": self.status,
                "toast": rules.text("rejected", self.locale, borrower=loan.borrower_name or loan.borrower_open_id)}

    @approve.validator
    def _validate_approve(self, request: ActorRequest) -> None:
        self._refuse_seen(request)

    @reject.validator
    def _validate_reject(self, request: ActorRequest) -> None:
        self._refuse_seen(request)

    def _pending(self, request: ActorRequest) -> Loan:
        if self.status != "requested" or self.loan is None:
            raise Refused(rules.text("not_requested", self.locale, asset=self._label()))
        if not rules.roles_of(request.actor_open_id, asset=self.asset, loan=None,
                              manager=self._manager()) & {"keeper", "manager"}:
            raise Refused(rules.text("keeper_only", self.locale))
        return self.loan

    @workflow.update(name="return_asset")
    async def return_asset(self, request: ActorRequest) -> dict[str, Any]:
        """Return by the borrower's scan or the keeper's confirmation; the keeper also restores a lost or
        damaged asset this way."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        now = workflow.now()
        roles = rules.roles_of(request.actor_open_id, asset=self.asset, loan=self.loan, manager=self._manager())
        if self.status in ("lost", "damaged"):
            if not roles & {"keeper", "manager"}:
                raise Refused(rules.text("keeper_only", self.locale))
            previous = self.status
            self.status, self.condition_note = "available", ""
            self.version += 1
            await self._record("restore", request.actor_open_id, "", f"{previous} -> available {request.note}".strip())
            await self._write_asset(None)
            self.cycle_done = True
            return {"ok": True, "status": self.status, "toast": rules.text("restored", self.locale,
                                                                             asset=self._label())}
        if self.status != "on_loan" or self.loan is None:
            raise Refused(rules.text("not_on_loan", self.locale, asset=self._label()))
        if not roles:
            raise Refused(rules.text("not_yours", self.locale))
        loan = self.loan
        late = rules.days_overdue(loan.due, now, self.zone)
        self.status, self.loan = "available", None
        self.version += 1
        detail = f"returned via {request.via}" + (f", {late} day(s) late" if late else "")
        if request.note:
            detail += f": {request.note}"
        await self._record("return", request.actor_open_id, loan.borrower_open_id, detail, due=loan.due)
        await self._write_asset(None, returned_at=now)
        await self._send(loan.borrower_open_id, "asset_loan:returned",
                         {**self._context(loan), "returned_by_keeper": "borrower" not in roles,
                          "days_late": late}, "returned")
        self.cycle_done = True
        return {"ok": True, "status": self.status, "toast": rules.text("returned", self.locale, asset=self._label())}

    @workflow.update(name="extend")
    async def extend(self, request: ExtendRequest) -> dict[str, Any]:
        """Push the due date back, within the category's limits."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._active(request, allowed={"borrower", "keeper", "manager"})
        category = (self.asset.category if self.asset else "") or self.settings.default_category
        decision = rules.check_extend(loan=loan, rule=self.settings.category_rule(category), category=category,
                                      days=request.days, zone=self.zone, locale=self.locale)
        if decision.action == "refuse":
            self._remember(HistoryEntry(at=workflow.now(), action="extend_refused",
                                        actor_open_id=request.actor_open_id, detail=decision.reason))
            raise Refused(decision.data["message"])
        loan.due = date.fromisoformat(decision.data["due"])
        loan.extensions += 1
        loan.plan_since = workflow.now()
        loan.overdue_written = False
        self.version += 1
        await self._record("extend", request.actor_open_id, loan.borrower_open_id, decision.reason, due=loan.due)
        await self._write_asset(loan)
        return {"ok": True, "status": self.status, "due": loan.due.isoformat(), "toast": decision.data["message"]}

    @workflow.update(name="mark")
    async def mark(self, request: MarkRequest) -> dict[str, Any]:
        """The keeper marks the asset lost or damaged: reminders stop, the loan (if any) ends."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        roles = rules.roles_of(request.actor_open_id, asset=self.asset, loan=None, manager=self._manager())
        if not roles & {"keeper", "manager"}:
            raise Refused(rules.text("keeper_only", self.locale))
        loan = self.loan
        self.status, self.loan, self.condition_note = request.condition, None, request.note
        self.version += 1
        borrower = loan.borrower_open_id if loan else ""
        detail = request.condition + (f" while on loan to {borrower}" if borrower else "")
        if request.note:
            detail += f": {request.note}"
        await self._record(request.condition, request.actor_open_id, borrower, detail, due=loan.due if loan else None)
        await self._write_asset(None)
        if loan is not None:
            await self._send(loan.borrower_open_id, "asset_loan:marked",
                             {**self._context(loan), "condition": request.condition, "note": request.note},
                             f"marked:{len(self.history)}")
        condition = rules.CONDITIONS.get(self.locale, rules.CONDITIONS["zh_CN"])[request.condition]
        return {"ok": True, "status": self.status,
                "toast": rules.text("marked", self.locale, asset=self._label(), condition=condition)}

    @workflow.update(name="remind_now")
    async def remind_now(self, request: ActorRequest) -> dict[str, Any]:
        """A manual reminder to the borrower by the keeper (or a manager), logged with who asked."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._active(request, allowed={"keeper", "manager"})
        loan.manual_reminders += 1
        number = loan.manual_reminders
        await self._record("remind_now", request.actor_open_id, loan.borrower_open_id,
                           f"manual reminder #{number}", due=loan.due)
        await self._send(loan.borrower_open_id, "asset_loan:reminder.card",
                         {**self._context(loan), "kind": "manual",
                          "days": rules.days_overdue(loan.due, workflow.now(), self.zone)}, f"manual:{number}")
        return {"ok": True, "status": self.status,
                "toast": rules.text("reminded", self.locale, borrower=loan.borrower_name or loan.borrower_open_id)}

    @return_asset.validator
    def _validate_return(self, request: ActorRequest) -> None:
        self._refuse_seen(request)

    @extend.validator
    def _validate_extend(self, request: ExtendRequest) -> None:
        self._refuse_seen(request)

    @mark.validator
    def _validate_mark(self, request: MarkRequest) -> None:
        self._refuse_seen(request)

    @remind_now.validator
    def _validate_remind_now(self, request: ActorRequest) -> None:
        self._refuse_seen(request)

    def _active(self, request: ActorRequest, *, allowed: set[str]) -> Loan:
        if self.status != "on_loan" or self.loan is None:
            raise Refused(rules.text("not_on_loan", self.locale, asset=self._label()))
        roles = rules.roles_of(request.actor_open_id, asset=self.asset, loan=self.loan, manager=self._manager())
        if not roles & allowed:
            raise Refused(rules.text("keeper_only" if "borrower" not in allowed else "not_yours", self.locale))
        return self.loan

    # ------------------------------------------------------------------------------------- signals

    @workflow.signal(name="send_card")
    async def send_card(self, request: CardRequest) -> None:
        """Send the asset's action card to a user who asked the bot about it."""
        if not self.seen.first_time(request.event_id):
            return
        await workflow.wait_condition(lambda: self.loaded)
        await self._send(request.open_id, "asset_loan:asset.card", self._view(request.open_id),
                         f"card:{request.event_id or len(self.history)}")

    # --------------------------------------------------------------------------------------- query

    @workflow.query(name="state")
    def state(self) -> LoanState:
        overdue = False
        default, latest = None, None
        if self.loaded:
            today = rules.local_day(workflow.now(), self.zone)
            rule = self.settings.category_rule(self.asset.category if self.asset else None)
            default, latest = rules.default_due(today, rule), rules.latest_due(today, rule)
            if self.loan is not None and self.status == "on_loan":
                overdue = rules.is_overdue(self.loan.due, workflow.now(), self.zone)
        return LoanState(asset_id=self.asset_id, loaded=self.loaded, cycle=self.cycle, status=self.status,
                         overdue=overdue, asset=self.asset, loan=self.loan, borrowing_in_progress=self.claim,
                         default_due=default, max_due=latest, condition_note=self.condition_note,
                         history=self.history[-20:])

    # ------------------------------------------------------------------------------------- helpers

    async def _start_loan(self, loan: Loan, reason: str, *, actor: str) -> None:
        loan.borrowed_at = workflow.now()
        self.status, self.loan = "on_loan", loan
        self.version += 1
        await self._record("borrow", actor, loan.borrower_open_id, f"{reason}; due {loan.due}", due=loan.due)
        await self._write_asset(loan)
        await self._send(loan.borrower_open_id, "asset_loan:asset.card", self._view(loan.borrower_open_id),
                         "borrowed")

    async def _request_approval(self, loan: Loan, decision: Decision) -> None:
        self.status, self.loan = "requested", loan
        self.version += 1
        await self._record("request", loan.borrower_open_id, loan.borrower_open_id, decision.reason, due=loan.due)
        await self._write_asset(loan)
        if self.asset is not None and self.asset.keeper_open_id:
            await self._send(self.asset.keeper_open_id, "asset_loan:approval.card", self._context(loan),
                             f"approval:{len(self.history)}")

    async def _send_notice(self, loan: Loan, decision: Decision) -> None:
        """Send one reminder or escalation of the plan, and record it (and those it skipped)."""
        loan.notices.extend(decision.data.get("skipped", []))
        assert decision.step is not None
        loan.notices.append(decision.step)
        kind = decision.data["kind"]
        if kind == "overdue" and not loan.overdue_written:
            loan.overdue_written = True
            await self._write_asset(loan, status=self.settings.status_labels.overdue)
        to = rules.recipients(decision.data["to"], loan=loan, asset=self.asset, manager=self._manager())
        context = {**self._context(loan), "kind": kind, "days": decision.data["days"],
                   "rung": decision.data.get("rung", 0)}
        for open_id in to:
            template = "asset_loan:reminder.card" if open_id == loan.borrower_open_id else "asset_loan:escalation.card"
            await self._send(open_id, template, context, f"{decision.step}:{open_id}")
        await self._record("reminder" if decision.action == "remind" else "escalation", "", loan.borrower_open_id,
                           f"{decision.reason} -> {', '.join(to) or 'nobody'}", due=loan.due)

    def _remember(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_KEPT * 2]

    async def _record(self, action: str, actor: str, borrower: str, detail: str, *, due: date | None = None) -> None:
        """Keep the entry in the workflow's state and write it to the history table."""
        entry = HistoryEntry(at=workflow.now(), action=action, actor_open_id=actor, borrower_open_id=borrower,
                             detail=detail)
        self._remember(entry)
        self.writes += 1
        request = fr.BitableCreate(
            org=workflow_org(), app_token=self.settings.app_token, table_id=self.settings.history_table_id,
            records=[history_fields(self.settings, self.asset or self.asset_id, entry, due, self.zone)],
            client_token=f"{workflow.info().workflow_id}:{self.cycle}:h{self.writes}")
        try:
            await feishu_call(fr.BITABLE_CREATE, request, result_type=list[fr.BitableRecord])
        except ActivityError as error:
            # the loan must go on even when the table is unreachable for a day: the state keeps the entry
            workflow.logger.warning("history row for %s not written: %s", action, error)

    async def _write_asset(self, loan: Loan | None, *, status: str | None = None,
                           returned_at: datetime | None = None) -> None:
        if self.asset is None or self.asset.record_id is None:
            return
        label = status or self._status_label()
        request = fr.BitableUpdate(org=workflow_org(), app_token=self.settings.app_token,
                                   table_id=self.settings.asset_table_id, record_id=self.asset.record_id,
                                   fields=loan_fields(self.settings, label, loan, self.zone, returned_at))
        try:
            await feishu_call(fr.BITABLE_UPDATE, request, result_type=fr.BitableRecord)
        except ActivityError as error:
            workflow.logger.warning("asset row of %s not written: %s", self.asset_id, error)

    async def _send(self, open_id: str, template: str, context: dict[str, Any], step: str) -> None:
        if not open_id:
            return
        request = fr.SendMessage(org=workflow_org(), to=fr.Recipient(id=open_id), template=template, context=context,
                                 idempotency_key=f"{workflow.info().workflow_id}:{self.cycle}:{step}")
        try:
            await feishu_call(fr.SEND_MESSAGE, request, result_type=fr.SentMessage)
        except ActivityError as error:
            workflow.logger.warning("message %s to %s not sent: %s", template, open_id, error)
            self._remember(HistoryEntry(at=workflow.now(), action="send_failed", borrower_open_id=open_id,
                                        detail=f"{template}: {error}"))

    def _context(self, loan: Loan | None) -> dict[str, Any]:
        """What every template of the scenario gets (JSON values only: it travels to the activity)."""
        asset = self.asset or AssetInfo(asset_id=self.asset_id)
        now = workflow.now()
        context: dict[str, Any] = {
            "asset_id": asset.asset_id, "asset_name": asset.name or asset.asset_id, "category": asset.category,
            "location": asset.location, "keeper_name": asset.keeper_name or asset.keeper_open_id,
            "now": now.isoformat(), "status": self.status, "status_label": self._status_label(),
        }
        if loan is not None:
            rule = self.settings.category_rule(asset.category)
            context.update({
                "borrower_name": loan.borrower_name or loan.borrower_open_id,
                "borrower_open_id": loan.borrower_open_id, "due": loan.due.isoformat(),
                "borrowed_at": (loan.borrowed_at or loan.requested_at).isoformat(),
                "days_overdue": rules.days_overdue(loan.due, now, self.zone),
                "extensions_left": max(0, rule.max_extensions - loan.extensions),
            })
        return context

    def _view(self, viewer: str) -> dict[str, Any]:
        """The action card's context for one viewer: which buttons they get."""
        roles = rules.roles_of(viewer, asset=self.asset, loan=self.loan, manager=self._manager())
        context = self._context(self.loan)
        context.setdefault("borrower_name", "")
        context.setdefault("due", "")
        context.setdefault("borrowed_at", "")
        context.setdefault("days_overdue", 0)
        context.setdefault("extensions_left", 0)
        on_loan = self.status == "on_loan"
        context["actions"] = [op for op, allowed in (
            ("borrow", self.status == "available"),
            ("return", on_loan and bool(roles)),
            ("extend", on_loan and bool(roles) and context["extensions_left"] > 0),
            ("remind_now", on_loan and bool(roles & {"keeper", "manager"})),
            ("mark_lost", self.status != "lost" and bool(roles & {"keeper", "manager"})),
        ) if allowed]
        return context

    def _manager(self) -> str | None:
        rule = self.settings.category_rule(self.asset.category if self.asset else None)
        return rule.manager_open_id or self.settings.manager_open_id

    def _name(self, open_id: str) -> str:
        return self._names.get(open_id) or open_id

    def _label(self) -> str:
        return (self.asset.name if self.asset and self.asset.name else None) or self.asset_id

    def _status_label(self) -> str:
        labels = self.settings.status_labels
        return str(getattr(labels, self.status))

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


# ------------------------------------------------------------------------------------------- views


@workflow.defn(name="asset_loan.MyLoans")
class MyLoansWorkflow:
    """Answers "我借了什么" / "what do I have": the person's open loans, read from the asset table."""

    @workflow.run
    async def run(self, params: MyLoansInput) -> int:
        rows = await workflow.execute_activity("asset_loan.list_assets", AssetRef(org=params.org),
                                               result_type=list[AssetRow], **OWN_ACTIVITY)
        context = await workflow.execute_activity("asset_loan.load_context", AssetRef(org=params.org),
                                                  result_type=LoanContext, **OWN_ACTIVITY)
        zone = as_zone(context.timezone)
        loans = rules.open_loans_of(rows, params.open_id, workflow.now(), zone)
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=params.org, reply_to=params.message_id, template="asset_loan:my_loans",
            context={"loans": loans, "now": workflow.now().isoformat()},
            idempotency_key=f"{workflow.info().workflow_id}:reply", locale=params.locale), result_type=fr.SentMessage)
        return len(loans)


@workflow.defn(name="asset_loan.WeeklySummary")
class WeeklySummaryWorkflow:
    """Sends each keeper the items out, the overdue ones and the longest-held (started by a schedule)."""

    @workflow.run
    async def run(self, params: SummaryInput) -> int:
        context = await workflow.execute_activity("asset_loan.load_context", AssetRef(org=params.org),
                                                  result_type=LoanContext, **OWN_ACTIVITY)
        settings = AssetLoanSettings.model_validate(context.settings)
        rows = await workflow.execute_activity("asset_loan.list_assets", AssetRef(org=params.org),
                                               result_type=list[AssetRow], **OWN_ACTIVITY)
        labels = settings.status_labels
        now = workflow.now()
        summary = rules.summarize_for_keepers(rows, now, as_zone(context.timezone), [labels.on_loan, labels.overdue])
        week = rules.local_day(now, as_zone(context.timezone)).isoformat()
        for keeper, entry in sorted(summary.items()):
            await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                org=params.org, to=fr.Recipient(id=keeper), template="asset_loan:summary",
                context={**entry, "now": now.isoformat(), "week": week},
                idempotency_key=f"{workflow.info().workflow_id}:{week}:{keeper}"), result_type=fr.SentMessage)
        return len(summary)


WORKFLOWS = [LoanWorkflow, MyLoansWorkflow, WeeklySummaryWorkflow]
