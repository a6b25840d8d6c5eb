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
import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.sdk import (
        BusinessClock,
        Decision,
        Deferred,
        Refusal,
        SeenEvents,
        WorkCalendar,
        activity_options,
        as_zone,
        feishu_call,
        load_site_context,
        raise_event,
        report_month,
        send_to_each,
        workflow_org,
    )
    from engine.sdk import feishu as fr

from . import outcome, rules
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
    OutcomeData,
    OutcomeInput,
    OutcomeRequest,
    SummaryInput,
    UserProfile,
)

SCENARIO = "asset_loan"
HISTORY_KEPT = 50  # entries carried over continue-as-new (the full record is in the history table)
OWN_ACTIVITY = activity_options(timedelta(seconds=30))
# Reminders and escalations on the site's working days (they ran on calendar days before).
WORKDAY_LADDER = "asset_loan.workday_ladder"
# Card presses answered before the Bitable writes and messages they decided (engine.sdk.Deferred).
DEFERRED_IO = "asset_loan.deferred_io"
# An asset marked damaged is reported to the other scenarios: repair opens a ticket for it.
DAMAGE_EVENT = "asset_loan.damage_event"

Effect = Callable[[], Awaitable[None]]


class Refused(Refusal):
    """An update the asset's state or rules refuse; its message is what the person is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="AssetLoanRefused")


@workflow.defn(name="asset_loan.Loan")
class LoanWorkflow:
    """The lifecycle of one asset: available → (requested →) on loan → returned, lost or damaged.

    An update decides from the workflow's state, changes it at once (so a second press that arrives
    meanwhile sees the decision) and answers; the Bitable writes and messages it decided run in the main
    loop afterwards (:class:`engine.sdk.Deferred`), each with the idempotency key reserved when it was
    decided. Runs recorded before ``DEFERRED_IO`` did that I/O inside the update, and still replay so.
    """

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
        self.clock = BusinessClock()
        self.locale = "zh_CN"
        self.loaded = False
        self.version = 0  # bumped on every change the reminder loop must re-plan for
        self.cycle_done = False
        self.writes = 0  # numbers history writes, for their idempotency keys
        self._names: dict[str, str] = {}  # names given by borrowers while they hold the claim
        self.deferred = Deferred()
        self._defer: bool | None = None

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, params: LoanInput) -> None:
        await self._load()
        while not self.cycle_done:
            await workflow.wait_condition(
                lambda: self.cycle_done or self.status == "on_loan" or self.deferred.pending)
            await self.deferred.run()
            if self.status == "on_loan":
                await self._remind_until_changed()
        # drain: what the last presses decided is written before the next loan's run begins
        await self.deferred.run()
        await workflow.wait_condition(workflow.all_handlers_finished)
        while self.deferred.pending:
            await self.deferred.run()
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
        # the organization's business clock: real, or compressed for drills (the real one in runs before)
        self.clock = site.clock if site is not None else BusinessClock()
        self.locale = self.context.locale
        if self.context.asset is not None:
            self.asset = self.context.asset
        self.loaded = True

    async def _remind_until_changed(self) -> None:
        version = self.version
        while self.status == "on_loan" and self.loan is not None and self.version == version:
            await self.deferred.run()
            loan = self.loan
            now = self._now()
            calendar = self.calendar if workflow.patched(WORKDAY_LADDER) else None
            plan = rules.reminder_plan(loan.due, self.settings.reminders, self.zone, calendar)
            decision = rules.next_reminder(plan, loan.notices, now, loan.plan_since)
            if decision.action == "wait" and decision.at is not None:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self.version != version or self.deferred.pending,
                                                  timeout=self.clock.real_delay(decision.at - now))
                continue
            if decision.is_nothing:
                await workflow.wait_condition(lambda: self.version != version or self.deferred.pending)
                if self.version != version:
                    return
                continue
            await self._send_notice(loan, decision)

    # ------------------------------------------------------------------------------------- updates

    def _check_available(self, borrower: str) -> None:
        label = self._label()
        if self.claim is not None:
            raise Refused(rules.text("in_progress", self.locale, asset=label,
                                     borrower=self._who(self.claim, self._names.get(self.claim, ""))))
        if self.status == "on_loan" and self.loan is not None:
            raise Refused(rules.text("on_loan_to", self.locale, asset=label,
                                     borrower=self._who(self.loan.borrower_open_id, self.loan.borrower_name),
                                     since=self._local(self.loan.borrowed_at or self.loan.requested_at)))
        if self.status == "requested" and self.loan is not None:
            raise Refused(rules.text("in_progress", self.locale, asset=label,
                                     borrower=self._who(self.loan.borrower_open_id, self.loan.borrower_name)))
        if self.status != "available":
            raise Refused(rules.text("not_available", self.locale, asset=label,
                                     status=rules.status_name(self.status, self.locale)))

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
            # the decision needs the profile only for a category limited to departments; a missing name is
            # looked up after the answer (a slow contact API must not hold the press)
            deferring = self._deferring()
            if rule.allowed_departments or (not profile.name and not deferring):
                fetched = await workflow.execute_activity(
                    "asset_loan.user_profile", AssetRef(org=workflow_org(), open_id=request.borrower_open_id),
                    result_type=UserProfile, **OWN_ACTIVITY)
                profile = fetched.model_copy(update={"name": request.borrower_name or fetched.name})
            guard = GuardResult()
            if self.context is not None and self.context.calibration_enabled:
                guard = await workflow.execute_activity(
                    "asset_loan.check_guard", AssetRef(org=workflow_org(), asset_id=self.asset_id),
                    result_type=GuardResult, **OWN_ACTIVITY)
            now = self._now()
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
            await self._start_loan(loan, decision.reason, actor=profile.open_id, scanned_at=request.scanned_at)
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
        loan.plan_since = self._now()
        await self._start_loan(loan, f"approved by {request.actor_open_id}", actor=request.actor_open_id)
        return {"ok": True, "status": self.status, "toast": rules.text(
            "approved", self.locale, borrower=self._who(loan.borrower_open_id, loan.borrower_name),
            asset=self._label())}

    @workflow.update(name="reject")
    async def reject(self, request: ActorRequest) -> dict[str, Any]:
        """The keeper rejects a pending borrow request."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._pending(request)
        self.status, self.loan = "available", None
        self.version += 1
        history = self._history_row("reject", request.actor_open_id, loan.borrower_open_id,
                                    request.note or "rejected")
        await self._effects(
            history, self._asset_row(None),
            self._message(loan.borrower_open_id, "asset_loan:decision", {**self._context(loan), "approved": False},
                          f"decision:{len(self.history)}"))
        return {"ok": True, "status": self.status,
                "toast": rules.text("rejected", self.locale,
                                    borrower=self._who(loan.borrower_open_id, loan.borrower_name))}

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
        now = self._now()
        roles = rules.roles_of(request.actor_open_id, asset=self.asset, loan=self.loan, manager=self._manager())
        if self.status in ("lost", "damaged"):
            if not roles & {"keeper", "manager"}:
                raise Refused(rules.text("keeper_only", self.locale))
            previous = self.status
            self.status, self.condition_note = "available", ""
            self.version += 1
            history = self._history_row("restore", request.actor_open_id, "",
                                        f"{previous} -> available {request.note}".strip())
            await self._effects(history, self._asset_row(None))
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
        history = self._history_row("return", request.actor_open_id, loan.borrower_open_id, detail, due=loan.due,
                                    scanned_at=request.scanned_at)
        await self._effects(
            history, self._asset_row(None, returned_at=now),
            self._message(loan.borrower_open_id, "asset_loan:returned",
                          {**self._context(loan), "returned_by_keeper": "borrower" not in roles, "days_late": late},
                          "returned"))
        self.cycle_done = True
        return {"ok": True, "status": self.status, "toast": rules.text("returned", self.locale, asset=self._label())}

    @workflow.update(name="extend")
    async def extend(self, request: ExtendRequest) -> dict[str, Any]:
        """Push the due date back, within the category's limits."""
        self.seen.first_time(request.event_id)  # a redelivery in a later run is refused (validator)
        await workflow.wait_condition(lambda: self.loaded)
        loan = self._active(request, allowed={"borrower", "keeper", "manager"})
        category = (self.asset.category if self.asset else "") or self.settings.default_category
        decision = rules.check_extend(loan=loan, rule=self.settings.category_rule(category),
                                      category=self.settings.category_label(category, self.locale),
                                      days=request.days, zone=self.zone, locale=self.locale)
        if decision.action == "refuse":
            self._remember(HistoryEntry(at=self._now(), action="extend_refused",
                                        actor_open_id=request.actor_open_id, detail=decision.reason))
            raise Refused(decision.data["message"])
        loan.due = date.fromisoformat(decision.data["due"])
        loan.extensions += 1
        loan.plan_since = self._now()
        loan.overdue_written = False
        self.version += 1
        history = self._history_row("extend", request.actor_open_id, loan.borrower_open_id, decision.reason,
                                    due=loan.due)
        await self._effects(history, self._asset_row(loan))
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
        history = self._history_row(request.condition, request.actor_open_id, borrower, detail,
                                    due=loan.due if loan else None)
        notice = None
        if loan is not None:
            notice = self._message(loan.borrower_open_id, "asset_loan:marked",
                                   {**self._context(loan), "condition": request.condition, "note": request.note},
                                   f"marked:{len(self.history)}")
        condition = rules.CONDITIONS.get(self.locale, rules.CONDITIONS["zh_CN"])[request.condition]
        damage = None
        if request.condition == "damaged" and workflow.patched(DAMAGE_EVENT):
            damage = functools.partial(self._report_damage, request, condition, len(self.history))
        await self._effects(history, self._asset_row(None), notice, damage)
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
        history = self._history_row("remind_now", request.actor_open_id, loan.borrower_open_id,
                                    f"manual reminder #{number}", due=loan.due)
        await self._effects(history, self._message(
            loan.borrower_open_id, "asset_loan:reminder.card",
            {**self._context(loan), "kind": "manual", "days": rules.days_overdue(loan.due, self._now(), self.zone)},
            f"manual:{number}"))
        return {"ok": True, "status": self.status,
                "toast": rules.text("reminded", self.locale,
                                    borrower=self._who(loan.borrower_open_id, loan.borrower_name))}

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
        send = self._message(request.open_id, "asset_loan:asset.card", self._view(request.open_id),
                             f"card:{request.event_id or len(self.history)}")
        if send is not None:
            await send()

    # --------------------------------------------------------------------------------------- query

    @workflow.query(name="state")
    def state(self) -> LoanState:
        overdue = False
        default, latest = None, None
        if self.loaded:
            today = rules.local_day(self._now(), self.zone)
            rule = self.settings.category_rule(self.asset.category if self.asset else None)
            default, latest = rules.default_due(today, rule), rules.latest_due(today, rule)
            if self.loan is not None and self.status == "on_loan":
                overdue = rules.is_overdue(self.loan.due, self._now(), self.zone)
        return LoanState(asset_id=self.asset_id, loaded=self.loaded, cycle=self.cycle, status=self.status,
                         overdue=overdue, asset=self.asset, loan=self.loan, borrowing_in_progress=self.claim,
                         default_due=default, max_due=latest, condition_note=self.condition_note,
                         history=self.history[-20:])

    # ------------------------------------------------------------------------------------- helpers

    async def _start_loan(self, loan: Loan, reason: str, *, actor: str, scanned_at: datetime | None = None) -> None:
        loan.borrowed_at = self._now()
        self.status, self.loan = "on_loan", loan
        self.version += 1
        history = self._history_row("borrow", actor, loan.borrower_open_id, f"{reason}; due {loan.due}",
                                    due=loan.due, scanned_at=scanned_at)
        card = self._view(loan.borrower_open_id)
        await self._effects(self._name_lookup(loan, card), history, self._asset_row(loan),
                            self._message(loan.borrower_open_id, "asset_loan:asset.card", card, "borrowed"))

    async def _request_approval(self, loan: Loan, decision: Decision) -> None:
        self.status, self.loan = "requested", loan
        self.version += 1
        history = self._history_row("request", loan.borrower_open_id, loan.borrower_open_id, decision.reason,
                                    due=loan.due)
        context = self._context(loan)
        approval = None
        if self.asset is not None and self.asset.keeper_open_id:
            approval = self._message(self.asset.keeper_open_id, "asset_loan:approval.card", context,
                                     f"approval:{len(self.history)}")
        await self._effects(self._name_lookup(loan, context), history, self._asset_row(loan), approval)

    async def _send_notice(self, loan: Loan, decision: Decision) -> None:
        """Send one reminder or escalation of the plan, and record it (and those it skipped)."""
        loan.notices.extend(decision.data.get("skipped", []))
        assert decision.step is not None
        loan.notices.append(decision.step)
        kind = decision.data["kind"]
        if kind == "overdue" and not loan.overdue_written:
            loan.overdue_written = True
            write = self._asset_row(loan, status=self.settings.status_labels.overdue)
            if write is not None:
                await write()
        to = rules.recipients(decision.data["to"], loan=loan, asset=self.asset, manager=self._manager())
        context = {**self._context(loan), "kind": kind, "days": decision.data["days"],
                   "rung": decision.data.get("rung", 0)}
        for open_id in to:
            template = "asset_loan:reminder.card" if open_id == loan.borrower_open_id else "asset_loan:escalation.card"
            send = self._message(open_id, template, context, f"{decision.step}:{open_id}")
            if send is not None:
                await send()
        await self._history_row("reminder" if decision.action == "remind" else "escalation", "",
                                loan.borrower_open_id, f"{decision.reason} -> {', '.join(to) or 'nobody'}",
                                due=loan.due)()

    def _remember(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        del self.history[:-HISTORY_KEPT * 2]

    # --------------------------------------------------------------------------- decided I/O (effects)

    def _deferring(self) -> bool:
        """Whether updates leave their I/O to the main loop (runs since ``DEFERRED_IO``)."""
        if self._defer is None:
            self._defer = workflow.patched(DEFERRED_IO)
        return self._defer

    async def _effects(self, *works: Effect | None) -> None:
        """Carry out a decision's I/O, in order: queued for the main loop, or at once in runs recorded before."""
        deferring = self._deferring()
        for work in works:
            if work is None:
                continue
            if deferring:
                self.deferred.add(work)
            else:
                await work()

    async def _report_damage(self, request: MarkRequest, condition: str, step: int) -> None:
        """Tell the other scenarios the asset is damaged (repair opens a ticket; the keeper is its reporter)."""
        asset = self.asset or AssetInfo(asset_id=self.asset_id)
        payload = {"asset_id": asset.asset_id, "name": asset.name, "location": asset.location, "site": asset.site,
                   "reporter_open_id": request.actor_open_id,
                   "text": f"{condition}: {request.note}" if request.note else condition}
        try:
            await raise_event(SCENARIO, "asset.damaged", payload, key=f"{self.cycle}:damaged:{step}")
        except ActivityError as error:  # the mark stands; the keeper can still report it by hand
            workflow.logger.warning("damage of %s not reported to other scenarios: %s", self.asset_id, error)

    def _history_row(self, action: str, actor: str, borrower: str, detail: str, *,
                     due: date | None = None, scanned_at: datetime | None = None) -> Effect:
        """Keep the entry in the workflow's state now; the effect writes it to the history table."""
        entry = HistoryEntry(at=self._now(), action=action, actor_open_id=actor, borrower_open_id=borrower,
                             detail=detail, scanned_at=scanned_at)
        self._remember(entry)
        self.writes += 1
        request = fr.BitableCreate(
            org=workflow_org(), app_token=self.settings.app_token, table_id=self.settings.history_table_id,
            records=[history_fields(self.settings, self.asset or self.asset_id, entry, due, self.zone)],
            client_token=f"{workflow.info().workflow_id}:{self.cycle}:h{self.writes}")
        return functools.partial(self._create_history, request, action)

    async def _create_history(self, request: fr.BitableCreate, action: str) -> None:
        try:
            await feishu_call(fr.BITABLE_CREATE, request, result_type=list[fr.BitableRecord])
        except ActivityError as error:
            # the loan must go on even when the table is unreachable for a day: the state keeps the entry
            workflow.logger.warning("history row for %s not written: %s", action, error)

    def _asset_row(self, loan: Loan | None, *, status: str | None = None,
                   returned_at: datetime | None = None) -> Effect | None:
        """The asset row as decided now (``None`` when the asset has no row)."""
        if self.asset is None or self.asset.record_id is None:
            return None
        label = status or self._status_label()
        request = fr.BitableUpdate(org=workflow_org(), app_token=self.settings.app_token,
                                   table_id=self.settings.asset_table_id, record_id=self.asset.record_id,
                                   fields=loan_fields(self.settings, label, loan, self.zone, returned_at))
        return functools.partial(self._update_asset, request)

    async def _update_asset(self, request: fr.BitableUpdate) -> None:
        try:
            await feishu_call(fr.BITABLE_UPDATE, request, result_type=fr.BitableRecord)
        except ActivityError as error:
            workflow.logger.warning("asset row of %s not written: %s", self.asset_id, error)

    def _message(self, open_id: str, template: str, context: dict[str, Any], step: str) -> Effect | None:
        """A message with its idempotency key reserved now (``None`` without a recipient)."""
        if not open_id:
            return None
        request = fr.SendMessage(org=workflow_org(), to=fr.Recipient(id=open_id), template=template, context=context,
                                 idempotency_key=f"{workflow.info().workflow_id}:{self.cycle}:{step}",
                                 locale=self.locale)  # the asset's site's language
        return functools.partial(self._deliver, request)

    async def _deliver(self, request: fr.SendMessage) -> None:
        try:
            await feishu_call(fr.SEND_MESSAGE, request, result_type=fr.SentMessage)
        except ActivityError as error:
            open_id = request.to.id if request.to else ""
            workflow.logger.warning("message %s to %s not sent: %s", request.template, open_id, error)
            self._remember(HistoryEntry(at=self._now(), action="send_failed", borrower_open_id=open_id,
                                        detail=f"{request.template}: {error}"))

    def _name_lookup(self, loan: Loan, context: dict[str, Any]) -> Effect | None:
        """The borrower's name from the contact API, for a loan decided without it (a card press)."""
        if loan.borrower_name or not self._deferring():
            return None
        return functools.partial(self._look_up_name, loan, context)

    async def _look_up_name(self, loan: Loan, context: dict[str, Any]) -> None:
        try:
            profile = await workflow.execute_activity(
                "asset_loan.user_profile", AssetRef(org=workflow_org(), open_id=loan.borrower_open_id),
                result_type=UserProfile, **OWN_ACTIVITY)
        except ActivityError as error:
            workflow.logger.warning("no name for the borrower of %s: %s", self.asset_id, error)
            return
        if profile.name:
            loan.borrower_name = profile.name  # the live loan: the state, refusals and later cards show it
            context["borrower_name"] = profile.name  # the message decided with the loan, not sent yet

    def _context(self, loan: Loan | None) -> dict[str, Any]:
        """What every template of the scenario gets (JSON values only: it travels to the activity)."""
        asset = self.asset or AssetInfo(asset_id=self.asset_id)
        now = self._now()
        context: dict[str, Any] = {
            "asset_id": asset.asset_id, "asset_name": asset.name or asset.asset_id, "category": asset.category,
            "location": asset.location, "keeper_name": asset.keeper_name,  # never an open_id
            # the status in the reader's language (the table's cells hold the organization's labels)
            "now": now.isoformat(), "status": self.status, "status_label": rules.status_name(self.status, self.locale),
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

    def _who(self, open_id: str, name: str) -> str:
        """A person as a refusal or toast names them: their name, never their open_id."""
        return name or self._names.get(open_id) or rules.text("someone", self.locale)

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    def _label(self) -> str:
        return (self.asset.name if self.asset and self.asset.name else None) or self.asset_id

    def _status_label(self) -> str:
        labels = self.settings.status_labels
        return str(getattr(labels, self.status))

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


# ------------------------------------------------------------------------------------------- views


def _business_now(context: LoanContext) -> datetime:
    """The organization's business time, by the clock of the loaded context (the real one without a site)."""
    return context.site.clock.now(workflow.now()) if context.site is not None else workflow.now()


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
        now = _business_now(context)
        loans = rules.open_loans_of(rows, params.open_id, now, zone)
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=params.org, reply_to=params.message_id, template="asset_loan:my_loans",
            context={"loans": loans, "now": now.isoformat()},
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
        now = _business_now(context)
        summary = rules.summarize_for_keepers(rows, now, as_zone(context.timezone), [labels.on_loan, labels.overdue])
        week = rules.local_day(now, as_zone(context.timezone)).isoformat()
        for keeper, entry in sorted(summary.items()):
            await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                org=params.org, to=fr.Recipient(id=keeper), template="asset_loan:summary",
                context={**entry, "now": now.isoformat(), "week": week},
                idempotency_key=f"{workflow.info().workflow_id}:{week}:{keeper}"), result_type=fr.SentMessage)
        return len(summary)


@workflow.defn(name="asset_loan.MonthlyOutcome")
class MonthlyOutcomeWorkflow:
    """Last month's loans, one card per configured site, sent on the first working day of the month.

    Started every morning of days 1-12 by a schedule; a run that is not on the first working day ends
    without sending (the calendar knows the holidays a cron cannot). Figures come from the history table
    only (``outcome.loan_figures``).
    """

    @workflow.run
    async def run(self, params: OutcomeInput) -> int:
        context = await load_site_context(SCENARIO, org=params.org)
        settings = context.settings_as(AssetLoanSettings)
        calendar = context.calendar()
        now = context.clock.now(workflow.now())
        report = report_month(now, calendar)
        if report is None or not settings.report_recipients:
            return 0
        month, until = report.first, report.until
        data = await workflow.execute_activity("asset_loan.outcome_data", OutcomeRequest(org=params.org, until=until),
                                               result_type=OutcomeData, **OWN_ACTIVITY)
        sent = 0
        for site, recipients in sorted(settings.report_recipients.items()):
            figures = outcome.loan_figures(data.rows, data.assets, month=month, zone=calendar.zone, site=site)
            # a site's card in its language, under its name
            where = await load_site_context(SCENARIO, site, org=params.org) if site else context
            card = {**figures, "month": f"{month:%Y-%m}", "site": where.site_name if site else "",
                    "recorded": bool(settings.history_fields.scanned_at), "now": now.isoformat()}
            sent += await send_to_each(params.org, recipients, "asset_loan:outcome.card", card, locale=where.locale,
                                       key=f"{workflow.info().workflow_id}:{month:%Y-%m}:{site}")
        return sent


WORKFLOWS = [LoanWorkflow, MyLoansWorkflow, WeeklySummaryWorkflow, MonthlyOutcomeWorkflow]
