"""Temporal workflows of the recruiting scenario.

* ``recruiting.Requisition`` (``{org}:recruiting:req:{req_id}``): the approval chain by card (or one
  Feishu approval instance, when the site's settings name a definition), then open for candidates (pool
  matches offered to the recruiter), until filled or closed.
* ``recruiting.Application`` (``{org}:recruiting:app:{application_id}``): one application through the
  stages, every move recorded (who, when, how), the SLA of each stage nudged and escalated on working
  days; an accepted offer starts the onboarding, a rejection keeps the candidate in the pool.
* ``recruiting.Onboarding`` (``{org}:recruiting:onb:{application_id}``): the checklist with owners and due
  dates, the Feishu account matched by a contact event, probation and contract warnings, offboarding.
* ``recruiting.MatchAccount`` (``{org}:recruiting:account:{open_id}``): a new Feishu account → onboarding.
* ``recruiting.MonthlyReport`` (schedule, daily at 09:00): on the first working day, last month's report.

Every send carries the idempotency key ``{workflow_id}:{step}``; steps are unique within a workflow
(numbered stage visits, item ids, lead times), and these workflows end with their business object, so
no key repeats across runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from engine.sdk import (
        ApprovalDecision,
        ApprovalRequest,
        BusinessClock,
        Deferred,
        Refusal,
        SeenEvents,
        SiteContext,
        WorkCalendar,
        activity_options,
        feishu_call,
        load_site_context,
        request_approval,
        workflow_id,
        workflow_org,
    )
    from engine.sdk import feishu as fr

    from . import hr_report, hr_rules, rules, texts
    from .config import RecruitingSettings
    from .models import (
        SCENARIO,
        AccountMatched,
        ApplicationFacts,
        ApplicationInput,
        ApplicationState,
        ApprovalStep,
        ChecklistEntry,
        CloseRequest,
        CompleteItem,
        Context,
        ContextRequest,
        Decide,
        FindOnboarding,
        Hired,
        LeaveRequest,
        LeaverInput,
        LoadApplication,
        MatchAccountInput,
        MoveRequest,
        OnboardingInput,
        OnboardingState,
        PoolMatch,
        PoolQuery,
        ReadStage,
        RecordChanged,
        ReportInput,
        ReportRequest,
        RequisitionFacts,
        RequisitionInput,
        RequisitionState,
        SnapshotRequest,
        StageRead,
        StatusAnswer,
        StatusInput,
        StatusLookup,
        Transition,
        app_key,
        onboarding_key,
        req_key,
    )

OWN_ACTIVITY = activity_options(timedelta(seconds=60))
# The site's context from the engine's activity (settings, zone, locale, calendar and business clock per
# site); runs recorded before load it with the scenario's own "recruiting.context".
SITE_CONTEXT = "recruiting.site_context"
# Card presses (moves, checklist items, leaving) answered before their writes and messages (Deferred).
DEFERRED_PRESSES = "recruiting.deferred_presses"
# An application whose row is first seen at "accepted" starts its onboarding (as a move there does).
ACCEPTED_AT_START = "recruiting.accepted_at_start"
# A Bitable edit the rules refuse is written back (the row shows the stage again) and its editor told.
EDIT_REFUSED = "recruiting.edit_refused"
# A row read that a press overtook is dropped, not taken for someone's edit (it told the recruiter off).
STALE_ROW_READ = "recruiting.stale_row_read"
# A checklist item is ticked only by its owner (at the hire's site) or the site's HR.
ITEM_OWNERS = "recruiting.item_owners"
# A requisition whose site names a Feishu approval definition is approved there instead of by cards.
FEISHU_APPROVAL = "recruiting.feishu_approval"
# The monthly report also records the directory's snapshot and sends the HR monthly report (people,
# operations, talent development, risk warnings) to headquarters and each hospital.
HR_REPORT = "recruiting.hr_report"


class Refused(Refusal):
    """An update the rules refuse; its message is what the person is told (the card's toast, their language);
    ``reason`` is the rules' own, for the history."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, code="RecruitingRefused")
        self.reason = reason or message


def _org() -> str:
    return workflow_org()


class _Base:
    """Context loading, the business clock, sends and row writes shared by the workflows."""

    ctx: SiteContext
    settings: RecruitingSettings
    calendar: WorkCalendar
    clock: BusinessClock
    history: list[Transition]
    writes: int
    deferred: Deferred

    async def _load(self, site: str) -> None:
        if workflow.patched(SITE_CONTEXT):
            self.ctx = await load_site_context(SCENARIO, site or None)
        else:
            old = await workflow.execute_activity(
                "recruiting.context", ContextRequest(org=_org(), site=site), result_type=Context, **OWN_ACTIVITY)
            self.ctx = SiteContext(org=old.org, scenario=SCENARIO, site=old.site or None, timezone=old.timezone,
                                   locale=old.locale, settings=old.settings, holidays=old.holidays,
                                   workdays=old.workdays)
        self.settings = self.ctx.settings_as(RecruitingSettings)
        self.calendar = rules.calendar_for(self.ctx.timezone, self.ctx.holidays, self.ctx.workdays,
                                           self.settings.use_china_calendar)
        self.clock = self.ctx.clock

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    async def _sleep_until(self, wake: Any, due: datetime | None) -> None:
        """Wait for ``wake()`` or the business moment ``due``, whichever comes first."""
        timeout = self.clock.real_delay(due - self._now()) if due else None
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(wake, timeout=timeout)

    def _say(self, key: str, **values: Any) -> str:
        return texts.say(self.ctx.locale, key, **values)

    def _site_name(self, site: str) -> str:
        """The hospital as people call it (its configured name), the id when it has none."""
        return self.ctx.site_name if site and site == self.ctx.site and self.ctx.site_name else site

    def _role_text(self, role: str) -> str:
        return texts.role(self.ctx.locale, role)

    def _record(self, action: str, actor: str = "", via: str = "system", detail: str = "") -> None:
        self.history.append(Transition(at=self._now(), actor=actor, action=action, via=via, detail=detail))

    def _who(self, role_or_id: str) -> str:
        """An open id for a role name (or the open id itself)."""
        return role_or_id if role_or_id.startswith("ou_") else self.settings.roles.get(role_or_id)

    async def _send(self, to: str, template: str, context: dict[str, Any], step: str) -> str | None:
        """Send a template to a role or open id; returns the message id (None when nobody holds the role)."""
        open_id = self._who(to)
        if not open_id:
            self._record("not_sent", detail=f"{step}: nobody holds role {to!r}")
            return None
        sent = await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=_org(), to=fr.Recipient(id=open_id), template=f"{SCENARIO}:{template}",
            context={"timezone": self.ctx.timezone, **context}, locale=self.ctx.locale,
            idempotency_key=f"{workflow.info().workflow_id}:{step}"), result_type=fr.SentMessage)
        return sent.message_id

    async def _upsert(self, table: str, key_field: str, row: dict[str, Any], record_id: str | None = None
                      ) -> str | None:
        """Write a row: by its record id when known (a row people entered), else matched on ``key_field``.

        Returns the record id, so later writes go straight to the row.
        """
        self.writes += 1
        if record_id:
            await feishu_call(fr.BITABLE_UPDATE, fr.BitableUpdate(
                org=_org(), app_token=self.settings.app_token, table_id=table, record_id=record_id, fields=row))
            return record_id
        result = await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=_org(), app_token=self.settings.app_token, table_id=table, key_field=key_field, records=[row],
            client_token=f"{workflow.info().workflow_id}:w{self.writes}"), result_type=fr.UpsertResult)
        return result.record_ids.get(str(row[key_field]))

    def _history_text(self) -> str:
        lines = (f"{self.calendar.local(t.at):%Y-%m-%d %H:%M} {t.action} {t.actor} ({t.via}) {t.detail}"
                 for t in self.history)
        return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------------------------------- requisition


@workflow.defn(name="recruiting.Requisition")
class RequisitionWorkflow(_Base):
    """A position from opening to filled/closed: approval chain by cards, then pool matches."""

    @workflow.init
    def __init__(self, params: RequisitionInput) -> None:
        self.req_id = params.req_id
        self.facts: RequisitionFacts | None = params.facts
        self.status = "opening"
        self.chain: list[ApprovalStep] = []
        self.chain_reason = ""
        self.hired: list[str] = []
        self.matches: list[PoolMatch] = []
        self.history: list[Transition] = []
        self.closed: CloseRequest | None = None
        self.seen = SeenEvents()
        self.writes = 0
        self.clock = BusinessClock()
        self.approval_instance = ""
        self.approval_outcome = ""
        self.in_feishu = False  # the approval runs in Feishu's approval app, not on cards

    @workflow.run
    async def run(self, params: RequisitionInput) -> str:
        if self.facts is None:
            self.facts = await workflow.execute_activity(
                "recruiting.load_requisition",
                LoadApplication(org=_org(), application_id="", record_id=params.record_id, req_id=params.req_id),
                result_type=RequisitionFacts, **OWN_ACTIVITY)
        facts = self.facts
        assert facts is not None
        await self._load(facts.site)
        self._record("opened", params.opened_by, params.via, f"{facts.department} {facts.title} x{facts.headcount}")
        self.chain, decision = rules.approval_chain(facts, self.settings)
        self.chain_reason = decision.reason
        if decision.action == "refuse":
            self.status = "blocked"
            self._record("blocked", detail=decision.reason)
            await self._write_row()
            await workflow.wait_condition(lambda: self.closed is not None)
            return await self._close()
        self.status = "pending_approval"
        await self._write_row()
        if self.settings.approval.feishu.enabled and workflow.patched(FEISHU_APPROVAL):
            return await self._approve_in_feishu(params)
        for level, step in enumerate(self.chain, start=1):
            step.message_id = await self._send(step.approver, "approval.card", self._card(level), f"approval:{level}")
            await workflow.wait_condition(lambda step=step: step.status != "pending" or self.closed is not None)
            if self.closed is not None:
                return await self._close()
            if step.message_id:
                await feishu_call(fr.UPDATE_CARD, fr.UpdateCard(
                    org=_org(), message_id=step.message_id, template=f"{SCENARIO}:decided.card",
                    context={**self._card(level), "timezone": self.ctx.timezone}, locale=self.ctx.locale))
            if step.status == "rejected":
                self.status = "rejected"
                await self._write_row()
                await self._send(self._recruiter(), "notice", self._notice("req_rejected", comment=step.comment),
                                 "rejected")
                return self.status
            await self._write_row()
        return await self._approved()

    async def _approved(self) -> str:
        self.status = "open"
        self._record("approved", detail=self.chain_reason)
        await self._write_row(approved=True)
        await self._send(self._recruiter(), "notice", self._notice("req_approved"), "approved")
        await self._offer_pool_matches()
        await workflow.wait_condition(lambda: self.closed is not None)
        return await self._close()

    async def _approve_in_feishu(self, params: RequisitionInput) -> str:
        """One instance of the site's Feishu approval definition; its decision leads where the cards' do.

        A close while it is pending (or the workflow's cancellation) withdraws the instance.
        """
        assert self.facts is not None
        self.in_feishu = True
        applicant = self._who(params.opened_by) or self._who(self._recruiter())
        if not applicant:
            self.status = "blocked"
            self._record("blocked", detail="no applicant for the Feishu approval: neither the opener nor a recruiter")
            await self._write_row()
            await workflow.wait_condition(lambda: self.closed is not None)
            return await self._close()
        request = ApprovalRequest(
            key="requisition", settings=rules.feishu_approval(self.chain, self.settings), applicant_open_id=applicant,
            form=rules.approval_form(self.facts, self._site_name(self.facts.site), self.settings),
            title=f"{self.req_id} {self.facts.department} {self.facts.title}".strip(), site=self.ctx)
        asking = asyncio.create_task(request_approval(request))
        try:
            await workflow.wait_condition(lambda: asking.done() or self.closed is not None)
        except asyncio.CancelledError:
            asking.cancel()  # the workflow is cancelled: withdraw the instance first
            try:
                await asking
            except (asyncio.CancelledError, Exception) as error:
                if not is_cancelled_exception(error):
                    workflow.logger.warning("%s: the Feishu approval was not withdrawn: %s", self.req_id,
                                            getattr(error, "cause", None) or error)
            raise
        if not asking.done():
            asking.cancel()
        try:
            decision = await asking
        except (asyncio.CancelledError, Exception) as error:
            if is_cancelled_exception(error):
                self._record("approval_withdrawn", detail="closed before the Feishu approval was decided")
                return await self._close()
            # Feishu refused the instance (a wrong code, a node without approvers) or its withdrawal
            cause = f"{getattr(error, 'cause', None) or error}"
            workflow.logger.warning("%s: the Feishu approval failed: %s", self.req_id, cause)
            if self.closed is not None:
                self._record("approval_not_withdrawn", detail=cause)
                return await self._close()
            self.status = "blocked"
            self._record("blocked", detail=f"Feishu approval refused: {cause}")
            await self._write_row()
            await workflow.wait_condition(lambda: self.closed is not None)
            return await self._close()
        return await self._decided_in_feishu(decision)

    async def _decided_in_feishu(self, decision: ApprovalDecision) -> str:
        self.approval_instance, self.approval_outcome = decision.instance_code, decision.outcome
        detail = f"feishu approval {decision.instance_code}: {decision.status}"
        if decision.outcome == "approved":
            for step in self.chain:
                step.status, step.decided_at = "approved", decision.decided_at
            if self.chain:
                self.chain[-1].decided_by = decision.decided_by
            self._record("feishu_approved", decision.decided_by, "feishu_approval", detail)
            return await self._approved()
        if decision.outcome == "rejected":
            step = next((s for s in self.chain if s.approver == decision.decided_by), None) or (
                self.chain[0] if self.chain else None)
            if step is not None:
                step.status, step.decided_by, step.decided_at = "rejected", decision.decided_by, decision.decided_at
            self._record("feishu_rejected", decision.decided_by, "feishu_approval", detail)
            self.status = "rejected"
            await self._write_row()
            await self._send(self._recruiter(), "notice", self._notice("req_rejected", comment=decision.comment),
                             "rejected")
            return self.status
        # withdrawn (or deleted) by its applicant in Feishu: the requisition is closed, as by the card
        self._record(f"feishu_{decision.outcome}", detail=detail)
        if self.closed is None:
            self.closed = CloseRequest(reason="closed", via="feishu_approval")
        return await self._close()

    def _recruiter(self) -> str:
        return (self.facts.recruiter if self.facts and self.facts.recruiter else "") or "recruiter"

    def _req(self) -> dict[str, Any]:
        """The requisition as cards show it: the hospital by its name."""
        assert self.facts is not None
        return {**self.facts.model_dump(mode="json"), "site": self._site_name(self.facts.site)}

    def _card(self, level: int) -> dict[str, Any]:
        # the approvers by their roles' names; the rules' reason for the chain stays in the history
        return {"req": self._req(), "level": level, "levels": len(self.chain),
                "chain": [{**s.model_dump(mode="json"), "role_label": self._role_text(s.role)} for s in self.chain]}

    def _notice(self, kind: str, **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "req": self._req(), "status": self.status, **extra}

    async def _offer_pool_matches(self) -> None:
        assert self.facts is not None
        if not self.settings.pool.enabled:
            return
        self.matches = await workflow.execute_activity(
            "recruiting.pool_matches", PoolQuery(org=_org(), site=self.facts.site, department=self.facts.department,
                                                 title=self.facts.title, tags=self.facts.tags,
                                                 as_of=self.calendar.local(self._now()).date()),
            result_type=list[PoolMatch], **OWN_ACTIVITY)
        self._record("pool_matches", detail=", ".join(f"{m.candidate_id}({m.score})" for m in self.matches) or "none")
        if self.matches:
            await self._send(self._recruiter(), "pool.card", {
                "req": self._req(),
                "matches": [m.model_dump(mode="json") for m in self.matches]}, "pool")

    async def _close(self) -> str:
        assert self.closed is not None
        self.status = self.closed.reason
        self._record(self.closed.reason, self.closed.actor, self.closed.via)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._write_row(closed=True)
        return self.status

    async def _write_row(self, approved: bool = False, closed: bool = False) -> None:
        assert self.facts is not None
        f = self.settings.fields.requisitions
        now = rules.ms(self._now())
        row: dict[str, Any] = {
            f.req_id: self.req_id, f.status: self.status, f.site: self.facts.site, f.department: self.facts.department,
            f.title: self.facts.title, f.headcount: self.facts.headcount, f.hired: len(self.hired),
            f.approvals: "\n".join(f"{s.role}: {s.status} {s.decided_by} {s.comment}".rstrip() for s in self.chain)}
        if self.approval_instance:
            row[f.approvals] += f"\nfeishu: {self.approval_instance} {self.approval_outcome}"
        if self.facts.grade:
            row[f.grade] = self.facts.grade
        if self.facts.tags:
            row[f.tags] = ", ".join(self.facts.tags)
        if not self.facts.record_id:
            row[f.opened_at] = rules.ms(self.history[0].at) if self.history else now
        if approved:
            row[f.approved_at] = now
        if closed:
            row[f.closed_at] = now
        self.facts.record_id = await self._upsert(self.settings.tables.requisitions, f.req_id, row,
                                                  self.facts.record_id)

    @workflow.update(name="decide")
    async def decide(self, request: Decide) -> dict[str, Any]:
        """Approve or reject at the current level (only its approver)."""
        step = self._pending_step(request.actor)
        if not self.seen.first_time(request.event_id):
            return {"toast": self._say("ok")}
        step.status = "approved" if request.approve else "rejected"
        step.decided_by, step.decided_at, step.comment = request.actor, self._now(), request.comment
        self._record(f"{step.role}_{step.status}", request.actor, request.via, request.comment)
        return {"toast": self._say(step.status, req=self.req_id), "status": step.status}

    @decide.validator
    def _validate_decide(self, request: Decide) -> None:
        self._pending_step(request.actor)

    def _pending_step(self, actor: str) -> ApprovalStep:
        if self.in_feishu:
            workflow.logger.info("%s: card decision refused, the approval runs in Feishu", self.req_id)
            raise Refused(self._say("in_feishu", req=self.req_id))
        step = next((s for s in self.chain if s.status == "pending"), None)
        if self.status != "pending_approval" or step is None:
            workflow.logger.info("%s: decision refused, status %s", self.req_id, self.status)
            raise Refused(self._say("not_waiting", req=self.req_id))
        if actor != step.approver:
            raise Refused(self._say("not_your_turn", req=self.req_id, role=texts.role(self.ctx.locale, step.role)))
        return step

    @workflow.update(name="close")
    async def close(self, request: CloseRequest) -> dict[str, Any]:
        if self.closed is None and self.status not in ("rejected",):
            self.closed = request
            return {"toast": self._say(request.reason, req=self.req_id)}
        return {"toast": self._say("already_closed", req=self.req_id)}

    @workflow.signal(name="hired")
    async def on_hired(self, hired: Hired) -> None:
        if hired.application_id in self.hired:
            return
        self.hired.append(hired.application_id)
        self._record("hired", detail=hired.application_id)
        if self.facts is not None and len(self.hired) >= self.facts.headcount and self.closed is None:
            self.closed = CloseRequest(reason="filled", via="system")

    @workflow.query(name="state")
    def state(self) -> RequisitionState:
        return RequisitionState(req_id=self.req_id, status=self.status, facts=self.facts, chain=self.chain,
                                chain_reason=self.chain_reason, hired=self.hired, matches=self.matches,
                                history=self.history, approval_instance=self.approval_instance,
                                approval_outcome=self.approval_outcome)


# ---------------------------------------------------------------------------------------- application


@workflow.defn(name="recruiting.Application")
class ApplicationWorkflow(_Base):
    """One application through the stages, with SLAs on working days; ends onboarded or on an exit."""

    @workflow.init
    def __init__(self, params: ApplicationInput) -> None:
        self.params = params
        self.facts: ApplicationFacts | None = None
        self.stage = params.stage or ""
        self.stage_at = workflow.now()
        self.visit = 0
        self.fired: list[str] = []
        self.history: list[Transition] = []
        self.seen = SeenEvents()
        self.changes: list[RecordChanged] = []
        self.version = 0
        self.loaded = False
        self.writes = 0
        self.sla_due: datetime | None = None
        self.start_date: date | None = None
        self.deferred = Deferred()
        self.clock = BusinessClock()

    @workflow.run
    async def run(self, params: ApplicationInput) -> str:
        self.facts = await workflow.execute_activity(
            "recruiting.load_application", LoadApplication(
                org=_org(), application_id=params.application_id, record_id=params.record_id,
                candidate_id=params.candidate_id, req_id=params.req_id),
            result_type=ApplicationFacts, **OWN_ACTIVITY)
        facts = self.facts
        facts.name = facts.name or params.name
        facts.site = facts.site or params.site
        await self._load(facts.site)
        if not params.stage and facts.stage and rules.is_terminal(facts.stage, self.settings):
            # an edit to a row that already ended (its workflow is gone): nothing to run, nothing to rewrite
            self.stage, self.loaded = facts.stage, True
            self._record("already_ended", params.actor, params.via, facts.stage)
            return self.stage
        self.stage = self.stage or facts.stage or self.settings.stage_names[0]
        self.start_date = facts.start_date
        self._enter(self.stage)
        self._record("applied", params.actor, params.via, self.stage)
        self.loaded = True
        await self._write(applied=True)
        if facts.linked:
            self._record("duplicate_linked", detail=", ".join(link.application_id for link in facts.linked))
            linked = [{**link.model_dump(), "site": link.site_name or link.site,
                       "stage": self._stage_text(link.stage) if link.stage else ""} for link in facts.linked]
            await self._send("recruiter", "notice", {"kind": "duplicate", "app": self._summary(), "linked": linked},
                             "duplicate")
        if self.stage == "accepted" and workflow.patched(ACCEPTED_AT_START):
            await self._start_onboarding()
        while not rules.is_terminal(self.stage, self.settings):
            await self._sla_step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.deferred.run()  # the writes of the press that ended it
        return self.stage

    def _enter(self, stage: str) -> None:
        self.stage, self.stage_at = stage, self._now()
        self.visit += 1
        self.sla_due = rules.sla_due(self.stage_at, self.settings.sla_workdays.get(stage), self.settings,
                                     self.calendar)
        self.version += 1

    def _summary(self) -> dict[str, Any]:
        assert self.facts is not None
        return {"id": self.params.application_id, "name": self.facts.name, "site": self._site_name(self.facts.site),
                "req_id": self.facts.req_id, "title": self.facts.title, "department": self.facts.department,
                "stage": self.stage, "stage_label": self.settings.stage_label(self.stage),
                "candidate_id": self.facts.candidate_id}

    async def _sla_step(self) -> None:
        if self.deferred.pending:
            await self.deferred.run()
            return
        if self.changes:
            await self._apply_record_change(self.changes.pop(0))
            return
        now = self._now()
        plan = rules.sla_notices(self.params.application_id, self.stage, self.stage_at, self.visit, self.settings,
                                 self.calendar)
        send, skipped, next_at = rules.pick_due(plan, self.fired, now)
        self.fired.extend(skipped)
        for notice in send:
            self.fired.append(notice.step)
            self.notices_sent(notice)
            await self._send(notice.to, "stage.card", {
                "kind": notice.kind, "app": self._summary(), "due": notice.data.get("due"),
                "days": notice.data.get("days"), "reason": notice.reason, "next": self._next_stage()}, notice.step)
        if send:
            return
        version = self.version
        await self._sleep_until(lambda: self.version != version or bool(self.changes) or self.deferred.pending,
                                next_at)

    def notices_sent(self, notice: rules.Notice) -> None:
        self._record(notice.kind, detail=notice.reason)

    def _next_stage(self) -> str | None:
        names = self.settings.stage_names
        if self.stage in names and names.index(self.stage) + 1 < len(names):
            return names[names.index(self.stage) + 1]
        return None

    async def _apply_record_change(self, change: RecordChanged) -> None:
        version = self.version
        read = await workflow.execute_activity(
            "recruiting.read_stage", ReadStage(org=_org(), record_id=change.record_id,
                                               site=self.facts.site if self.facts else ""), result_type=StageRead,
            **OWN_ACTIVITY)
        if self.version != version and workflow.patched(STALE_ROW_READ):
            # a press moved the application while the row was read: the row shows the stage before it, and
            # the press's own write is on its way (an edit made meanwhile comes with an event of its own)
            self._record("stale_read", change.actor, "bitable", f"row read at {read.stage!r} during a move")
            return
        if read.start_date:
            self.start_date = read.start_date
        if read.stage and read.stage != self.stage:
            try:
                await self._move(MoveRequest(to=read.stage, actor=change.actor, via="bitable", event_id=change.event_id,
                                             start_date=read.start_date))
            except Refused as refused:
                self._record("ignored_edit", change.actor, "bitable", refused.reason)
                if workflow.patched(EDIT_REFUSED):
                    await self._edit_refused(change, refused)

    async def _edit_refused(self, change: RecordChanged, refused: Refused) -> None:
        """The row goes back to the stage it is at, and whoever edited it (the stage's owner when the event
        names nobody) is told why in the hospital's language."""
        await self._write()
        spec = self.settings.stage(self.stage)
        await self._send(change.actor or (spec.owner if spec else "recruiter"), "notice", {
            "kind": "edit_refused", "app": self._summary(), "refusal": refused.message},
            f"edit_refused:{change.event_id}")

    def _name(self) -> str:
        return (self.facts.name if self.facts else "") or self.params.name or self.params.application_id

    def _stage_text(self, stage: str) -> str:
        return texts.stage(self.ctx.locale, self.settings, stage)

    def _refusal(self, to: str) -> str:
        """The person's words for a move the rules refuse."""
        if to not in self.settings.stage_names and to not in self.settings.exits:
            return self._say("unknown_stage", stage=to)
        if rules.is_terminal(self.stage, self.settings):
            return self._say("ended", name=self._name())
        return self._say("went_back", name=self._name(), stage=self._stage_text(to))

    async def _move(self, request: MoveRequest, defer: bool = False) -> dict[str, Any]:
        """Decide a move; its writes and messages run now, or (``defer``) from the main loop after the answer."""
        decision = rules.check_move(self.stage, request.to, self.settings)
        if decision.action == "refuse":
            raise Refused(self._refusal(request.to), reason=decision.reason)
        if decision.is_nothing:
            return {"toast": self._say("already_at", name=self._name(), stage=self._stage_text(self.stage)),
                    "stage": self.stage}
        previous = self.stage
        if request.start_date:
            self.start_date = request.start_date
        self._enter(request.to)
        self._record(f"moved:{request.to}", request.actor, request.via, decision.reason
                     + (f"; {request.reason}" if request.reason else ""))
        if defer:
            self.deferred.add(self._after_move, request.to, previous)
        else:
            await self._after_move(request.to, previous)
        return {"toast": self._say("moved", name=self._name(), stage=self._stage_text(request.to)),
                "stage": self.stage}

    async def _after_move(self, to: str, previous: str) -> None:
        await self._write(previous=previous)
        if to == "accepted":
            await self._start_onboarding()
        if to in self.settings.exits:
            await self._to_pool(previous)

    async def _start_onboarding(self) -> None:
        assert self.facts is not None
        today = self.calendar.local(self._now()).date()
        start = self.start_date or self.calendar.add_workdays(today, self.settings.default_start_after_workdays)
        onboarding = OnboardingInput(
            application_id=self.params.application_id, site=self.facts.site, name=self.facts.name,
            department=self.facts.department, title=self.facts.title, contact_hash=self.facts.contact_hash,
            candidate_id=self.facts.candidate_id, start_date=start)
        # a retried acceptance finds the onboarding already running: that is the one we want
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await workflow.start_child_workflow(
                "recruiting.Onboarding", onboarding, id=workflow_id(_org(), SCENARIO, onboarding_key(
                    self.params.application_id)), parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        self._record("onboarding_started", detail=f"start {start.isoformat()}")
        if self.facts.req_id:
            handle = workflow.get_external_workflow_handle(workflow_id(_org(), SCENARIO, req_key(self.facts.req_id)))
            try:
                await handle.signal("hired", Hired(application_id=self.params.application_id))
            except Exception as error:  # no such requisition workflow: nothing to fill
                self._record("requisition_not_running", detail=f"{self.facts.req_id}: {type(error).__name__}")

    async def _to_pool(self, exit_from: str) -> None:
        assert self.facts is not None
        today = self.calendar.local(self._now()).date()
        decision = rules.pool_admission(self.facts.consent, self.stage, today, self.settings)
        self._record("pool" if decision.action == "keep" else "not_pooled", detail=decision.reason)
        if decision.action != "keep" or not self.facts.candidate_id:
            return
        f = self.settings.fields.pool
        until = date.fromisoformat(decision.data["retain_until"])
        await self._upsert(self.settings.tables.pool, f.candidate_id, {
            f.candidate_id: self.facts.candidate_id, f.contact_hash: self.facts.contact_hash, f.name: self.facts.name,
            f.site: self.facts.site, f.department: self.facts.department, f.title: self.facts.title,
            f.tags: ", ".join(self.facts.tags), f.last_stage: exit_from,
            f.last_application: self.params.application_id, f.added_at: rules.ms(self._now()),
            f.retain_until: rules.day_ms(until, self.calendar)})

    async def _write(self, applied: bool = False, previous: str | None = None) -> None:
        assert self.facts is not None
        f = self.settings.fields.applications
        now = rules.ms(self._now())
        row: dict[str, Any] = {
            f.app_id: self.params.application_id, f.stage: self.settings.stage_label(self.stage),
            f.stage_at: now, f.sla_due: rules.ms(self.sla_due) if self.sla_due else "",
            f.candidate_id: self.facts.candidate_id, f.contact_hash: self.facts.contact_hash,
            f.history: self._history_text()}
        if applied:
            row.update({f.applied_at: now, f.from_pool: self.facts.in_pool or self.params.via == "pool",
                        f.linked: ", ".join(link.application_id for link in self.facts.linked),
                        f.site: self.facts.site, f.req_id: self.facts.req_id, f.name: self.facts.name,
                        f.department: self.facts.department, f.title: self.facts.title})
        if self.stage == "offer":
            row[f.offer_at] = now
        if self.stage == "accepted":
            row[f.accepted_at] = now
        if self.stage == "onboarded":
            row[f.onboarded_at] = now
        if self.stage in self.settings.exits:
            row[f.ended_at] = now
            row[f.exited_from] = self.settings.stage_label(previous or "")
        self.facts.record_id = await self._upsert(self.settings.tables.applications, f.app_id, row,
                                                  self.facts.record_id)

    @workflow.update(name="move")
    async def move(self, request: MoveRequest) -> dict[str, Any]:
        """Move to a stage (card button, Hire event); refused moves answer with the reason."""
        await workflow.wait_condition(lambda: self.loaded)
        if not self.seen.first_time(request.event_id):
            return {"toast": self._say("ok"), "stage": self.stage}
        try:
            return await self._move(request, defer=workflow.patched(DEFERRED_PRESSES))
        except Refused as refused:
            workflow.logger.info("%s: move refused: %s", self.params.application_id, refused.reason)
            raise

    @workflow.signal(name="advance")
    async def advance(self, request: MoveRequest) -> None:
        """A move from another workflow or an event (refusals are recorded, not raised)."""
        await workflow.wait_condition(lambda: self.loaded)
        if not self.seen.first_time(request.event_id):
            return
        try:
            await self._move(request)
        except Refused as refused:
            self._record("ignored_move", request.actor, request.via, refused.reason)

    @workflow.signal(name="record_changed")
    def record_changed(self, change: RecordChanged) -> None:
        """The application's Bitable row was edited: re-read it (the stage may have moved)."""
        if self.seen.first_time(change.event_id):
            self.changes.append(change)

    @workflow.query(name="state")
    def state(self) -> ApplicationState:
        facts = self.facts
        return ApplicationState(
            application_id=self.params.application_id, candidate_id=facts.candidate_id if facts else "",
            name=facts.name if facts else self.params.name, site=facts.site if facts else self.params.site,
            req_id=facts.req_id if facts else self.params.req_id, stage=self.stage, stage_at=self.stage_at,
            sla_due=self.sla_due, linked=facts.linked if facts else [],
            from_pool=bool(facts and (facts.in_pool or self.params.via == "pool")), notices=self.fired,
            history=self.history,
            done=bool(self.stage) and self.loaded and rules.is_terminal(self.stage, self.settings))


# ----------------------------------------------------------------------------------------- onboarding


@workflow.defn(name="recruiting.Onboarding")
class OnboardingWorkflow(_Base):
    """A new hire from the accepted offer: checklist, account match, risk warnings, offboarding."""

    @workflow.init
    def __init__(self, params: OnboardingInput) -> None:
        self.params = params
        self.status = "onboarding"
        self.checklist: list[ChecklistEntry] = []
        self.offboarding: list[ChecklistEntry] = []
        self.open_id = ""
        self.last_day: date | None = None
        self.probation_end: date | None = None
        self.contract_end: date | None = None
        self.fired: list[str] = []
        self.history: list[Transition] = []
        self.seen = SeenEvents()
        self.version = 0
        self.loaded = False
        self.writes = 0
        self.deferred = Deferred()
        self.clock = BusinessClock()

    @workflow.run
    async def run(self, params: OnboardingInput) -> str:
        await self._load(params.site)
        self.probation_end = rules.probation_end(params.start_date, self.settings.risk.probation_months)
        self.contract_end = rules.contract_end(params.start_date, self.settings.risk.contract_months)
        self.checklist = rules.checklist(self.settings.onboarding_checklist, params.start_date, self.settings,
                                         self.calendar)
        self._record("onboarding", detail=f"start {params.start_date.isoformat()}")
        self.loaded = True
        await self._write()
        await self._send("hr", "checklist.card", self._card("onboarding"), "checklist:onboarding")
        while self.status != "left":
            await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.deferred.run()
        await self._write()
        return self.status

    def _card(self, phase: str) -> dict[str, Any]:
        entries = self.checklist if phase == "onboarding" else self.offboarding
        return {"phase": phase, "app_id": self.params.application_id, "name": self.params.name,
                "site": self._site_name(self.params.site), "title": self.params.title,
                "start_date": self.params.start_date.isoformat(),
                "last_day": self.last_day.isoformat() if self.last_day else None,
                "items": [{**e.model_dump(mode="json"), "owner_label": self._role_text(e.owner)} for e in entries]}

    def _plan(self) -> list[rules.Notice]:
        plan = rules.checklist_notices("onb", self.checklist, self.settings, self.calendar)
        if self.status in ("onboarding", "employed"):
            plan += rules.risk_notices(self.probation_end, self.contract_end, self.settings, self.calendar)
        if self.status == "offboarding":
            plan += rules.checklist_notices("off", self.offboarding, self.settings, self.calendar)
        return plan

    async def _step(self) -> None:
        if self.deferred.pending:
            await self.deferred.run()
            return
        now = self._now()
        send, skipped, next_at = rules.pick_due(self._plan(), self.fired, now)
        self.fired.extend(skipped)
        for notice in send:
            self.fired.append(notice.step)
            self._record(notice.kind, detail=notice.reason)
            data = dict(notice.data)
            if "owner" in data:
                data["owner"] = self._role_text(str(data["owner"]))
            await self._send(notice.to, "notice", {
                "kind": notice.kind, "name": self.params.name, "site": self._site_name(self.params.site),
                "title": self.params.title, "reason": notice.reason, **data,
                "item_label": self._label(str(notice.data.get("item", "")))}, notice.step)
        if send:
            await self._write()
            return
        version = self.version
        await self._sleep_until(lambda: self.version != version or self.deferred.pending, next_at)

    def _label(self, item: str) -> str:
        entry = next((e for e in self.checklist + self.offboarding if e.id == item), None)
        return entry.label if entry else item

    def _risk_text(self) -> str:
        today = self.calendar.local(self._now()).date()
        lines = [f"{e.label} overdue since {e.due.isoformat()}"
                 for e in rules.overdue_items(self.checklist + self.offboarding, today)]
        for label, end, leads in (("probation ends", self.probation_end, self.settings.risk.probation_lead_days),
                                  ("contract ends", self.contract_end, self.settings.risk.contract_lead_days)):
            if end is not None and self.status != "left" and 0 <= (end - today).days <= max(leads, default=0):
                lines.append(f"{label} {end.isoformat()}")
        return "; ".join(lines)

    async def _write(self) -> None:
        f = self.settings.fields.onboarding
        today = self.calendar.local(self._now()).date()
        entries = self.checklist + self.offboarding
        row: dict[str, Any] = {
            f.key: onboarding_key(self.params.application_id), f.app_id: self.params.application_id,
            f.name: self.params.name, f.site: self.params.site, f.department: self.params.department,
            f.title: self.params.title, f.contact_hash: self.params.contact_hash, f.open_id: self.open_id,
            f.status: self.status, f.start_date: rules.day_ms(self.params.start_date, self.calendar),
            f.probation_end: rules.day_ms(self.probation_end, self.calendar) or "",
            f.contract_end: rules.day_ms(self.contract_end, self.calendar) or "",
            f.checklist: "\n".join(f"[{'x' if e.done_at else ' '}] {e.label} ({e.owner}, {e.due.isoformat()})"
                                   for e in entries),
            f.overdue_items: len(rules.overdue_items(entries, today)), f.risk: self._risk_text()}
        if self.last_day:
            row[f.left_at] = rules.day_ms(self.last_day, self.calendar)
        await self._upsert(self.settings.tables.onboarding, f.key, row)

    def _complete(self, item: str, actor: str, via: str) -> bool:
        for entry in self.checklist + self.offboarding:
            if entry.id == item and entry.done_at is None:
                entry.done_at, entry.done_by = self._now(), actor
                self._record(f"done:{item}", actor, via)
                self._advance_status()
                self.version += 1
                return True
        return False

    def _advance_status(self) -> None:
        if self.status == "onboarding" and all(e.done_at for e in self.checklist):
            self.status = "employed"
            self._record("employed")
        if self.status == "offboarding" and all(e.done_at for e in self.offboarding):
            self.status = "left"
            self._record("left")

    @workflow.update(name="complete_item")
    async def complete_item(self, request: CompleteItem) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.loaded)
        entry = next((e for e in self.checklist + self.offboarding if e.id == request.item), None)
        if entry is not None and request.via == "card" and workflow.patched(ITEM_OWNERS):
            self._check_owner(entry, request.actor)
        if not self.seen.first_time(request.event_id):
            return {"toast": self._say("ok")}
        if not self._complete(request.item, request.actor, request.via):
            workflow.logger.info("%s: no open checklist item %r", self.params.application_id, request.item)
            raise Refused(self._say("no_item", name=self.params.name, item=self._label(request.item)))
        if workflow.patched(DEFERRED_PRESSES):
            self.deferred.add(self._write)
        else:
            await self._write()
        return {"toast": self._say("item_done", name=self.params.name, item=self._label(request.item)),
                "status": self.status}

    def _check_owner(self, entry: ChecklistEntry, actor: str) -> None:
        """Refuse anyone but the item's owner and the site's HR (roles as the hire's site sets them)."""
        allowed = {self._who(entry.owner), self._who("hr")} - {""}
        if actor in allowed:
            return
        workflow.logger.info("%s: %s may not tick %s (owner role %s)", self.params.application_id, actor, entry.id,
                             entry.owner)
        if entry.owner == "hr":
            raise Refused(self._say("hr_ticks", name=self.params.name, item=entry.label),
                          reason=f"{actor} is not the site's hr")
        raise Refused(self._say("owner_ticks", name=self.params.name, item=entry.label,
                                role=self._role_text(entry.owner)), reason=f"{actor} is neither {entry.owner} nor hr")

    @workflow.signal(name="account_matched")
    async def account_matched(self, match: AccountMatched) -> None:
        """The new hire's Feishu account appeared (matched by contact hash)."""
        await workflow.wait_condition(lambda: self.loaded)
        if not self.seen.first_time(match.event_id) or self.open_id:
            return
        self.open_id = match.open_id
        self._record("account_matched", match.open_id, "contact", match.name)
        self._complete("account", "system", "contact")
        self.version += 1
        await self._write()
        await self._send("hr", "notice", {"kind": "account_matched", "name": self.params.name,
                                          "site": self._site_name(self.params.site), "title": self.params.title,
                                          "open_id": match.open_id, "reason": ""}, "account_matched")
        app = workflow.get_external_workflow_handle(workflow_id(_org(), SCENARIO, app_key(self.params.application_id)))
        try:
            await app.signal("advance", MoveRequest(to="onboarded", actor=match.open_id, via="contact",
                                                    event_id=f"account:{match.open_id}"))
        except Exception as error:  # the application already ended: the match stands
            self._record("application_not_running", detail=type(error).__name__)

    @workflow.update(name="leave")
    async def leave(self, request: LeaveRequest) -> dict[str, Any]:
        """Start the offboarding checklist (last day from the request, else ten working days on)."""
        await workflow.wait_condition(lambda: self.loaded)
        if self.status in ("offboarding", "left"):
            raise Refused(self._say("already_leaving", name=self.params.name), reason=f"already {self.status}")
        today = self.calendar.local(self._now()).date()
        self.last_day = request.last_day or self.calendar.add_workdays(today, 10)
        self.offboarding = rules.checklist(self.settings.offboarding_checklist, self.last_day, self.settings,
                                           self.calendar)
        self.status = "offboarding"
        self._record("leaving", request.actor, request.via, f"last day {self.last_day.isoformat()}")
        self.version += 1
        if workflow.patched(DEFERRED_PRESSES):
            self.deferred.add(self._write)
            self.deferred.add(self._send, "hr", "checklist.card", self._card("offboarding"), "checklist:offboarding")
        else:
            await self._write()
            await self._send("hr", "checklist.card", self._card("offboarding"), "checklist:offboarding")
        return {"toast": self._say("leaving", name=self.params.name), "status": self.status}

    @workflow.query(name="state")
    def state(self) -> OnboardingState:
        return OnboardingState(
            application_id=self.params.application_id, name=self.params.name, site=self.params.site,
            status=self.status, start_date=self.params.start_date, probation_end=self.probation_end,
            contract_end=self.contract_end, open_id=self.open_id, last_day=self.last_day, checklist=self.checklist,
            offboarding=self.offboarding, notices=self.fired, history=self.history)


# --------------------------------------------------------------------------------------- account match


@workflow.defn(name="recruiting.MatchAccount")
class MatchAccountWorkflow:
    """A new Feishu account: find onboarding records with the same contact hash and tell them."""

    @workflow.run
    async def run(self, params: MatchAccountInput) -> list[str]:
        found = await workflow.execute_activity(
            "recruiting.find_onboarding", FindOnboarding(org=_org(), hashes=params.hashes), result_type=list[str],
            **OWN_ACTIVITY)
        for application_id in found:
            wid = workflow_id(_org(), SCENARIO, onboarding_key(application_id))
            handle = workflow.get_external_workflow_handle(wid)
            with contextlib.suppress(Exception):  # an onboarding that already ended keeps its row as it is
                await handle.signal("account_matched", AccountMatched(open_id=params.open_id, name=params.name,
                                                                      event_id=params.event_id))
        return found


@workflow.defn(name="recruiting.RecordLeaver")
class RecordLeaverWorkflow:
    """An account removed from the directory (``contact.user.deleted_v3``): recorded in the leavers table,
    so the HR report counts someone who joined and left within one month."""

    @workflow.run
    async def run(self, params: LeaverInput) -> str:
        if params.left_at is None:
            ctx = await load_site_context(SCENARIO, None)
            params = params.model_copy(update={"left_at": ctx.clock.now(workflow.now())})
        return await workflow.execute_activity("recruiting.record_leaver", params, result_type=str, **OWN_ACTIVITY)


# --------------------------------------------------------------------------------------------- report


@workflow.defn(name="recruiting.MonthlyReport")
class MonthlyReportWorkflow(_Base):
    """Started daily by the schedule; reports last month on the first working day (or a given month)."""

    def __init__(self) -> None:
        self.history: list[Transition] = []
        self.writes = 0
        self.clock = BusinessClock()

    @workflow.run
    async def run(self, params: ReportInput) -> dict[str, Any]:
        await self._load("")
        now = self._now()
        month = params.month
        if month is None:
            decision = rules.report_due(now, self.calendar)
            if decision.is_nothing and not params.force:
                return {"skipped": decision.reason}
            month = decision.data.get("month") or rules.previous_month(self.calendar.local(now).date())
        report = await workflow.execute_activity(
            "recruiting.build_report", ReportRequest(org=_org(), month=month, as_of=now), result_type=rules.Report,
            **OWN_ACTIVITY)
        rows = [r.model_dump(mode="json") for r in report.rows]
        await self._send(self.settings.report.to, "report.card", {"month": month, "rows": rows}, f"report:{month}")
        f = self.settings.fields.report
        await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=_org(), app_token=self.settings.app_token, table_id=self.settings.tables.report, key_field=f.key,
            records=rules.report_bitable_rows(report, self.settings),
            client_token=f"{workflow.info().workflow_id}:report:{month}"), result_type=fr.UpsertResult)
        result: dict[str, Any] = {"month": month, "rows": rows}
        if workflow.patched(HR_REPORT):
            # the directory now is the reported month's end only on the scheduled run (no month given)
            result["hr"] = await self._hr_report(month, now, record=params.month is None)
        return result

    async def _hr_report(self, month: str, now: datetime, record: bool) -> dict[str, Any]:
        """Record the staff snapshot, compute the HR report, send it (headquarters' card in the group's
        language, each hospital's in its own) and write its rows."""
        wid = workflow.info().workflow_id
        snapshot = None
        if record:
            snapshot = await workflow.execute_activity(
                "recruiting.record_staff_snapshot", SnapshotRequest(org=_org(), month=month,
                                                                    client_token=f"{wid}:snapshot:{month}"),
                result_type=hr_report.SnapshotResult, **OWN_ACTIVITY)
        report = await workflow.execute_activity(
            "recruiting.build_hr_report", ReportRequest(org=_org(), month=month, as_of=now),
            result_type=hr_rules.HrReport, **OWN_ACTIVITY)
        await self._send(self.settings.report.to, "hr_report.card", hr_rules.card_context(report),
                         f"hr:{month}:group")
        sent = []
        for hospital in report.hospitals:
            if not hospital.configured:
                continue  # a hospital a row names but the config does not: headquarters' card shows it
            site = await load_site_context(SCENARIO, hospital.site)
            to = site.settings_as(RecruitingSettings).roles.get(self.settings.report.hospital_to)
            if not to:
                self._record("not_sent", detail=f"hr report {hospital.site}: nobody holds role "
                                                f"{self.settings.report.hospital_to!r}")
                continue
            await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                org=_org(), to=fr.Recipient(id=to), template=f"{SCENARIO}:hr_report.card",
                context={"timezone": site.timezone, **hr_rules.card_context(report, hospital.site)},
                locale=site.locale, idempotency_key=f"{wid}:hr:{month}:{hospital.site}"), result_type=fr.SentMessage)
            sent.append(hospital.site)
        await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=_org(), app_token=self.settings.app_token, table_id=self.settings.tables.hr_monthly,
            key_field=self.settings.fields.hr_monthly.key, records=hr_rules.hr_bitable_rows(report, self.settings),
            client_token=f"{wid}:hr:{month}"), result_type=fr.UpsertResult)
        return {"snapshot": snapshot.people if snapshot else None, "hospitals_sent": sent,
                "group": report.group.model_dump(mode="json"),
                "hospitals": [h.model_dump(mode="json") for h in report.hospitals]}


# ---------------------------------------------------------------------------------------------- status


@workflow.defn(name="recruiting.Status")
class StatusWorkflow:
    """Answers "@bot <key> 状态" / "<key> status" once per message, in the asker's language.

    The key is a requisition's or an application's id; the reply shows the state (stage, dates, whose
    approval it waits for) and never a contact: it may be read in a group chat.
    """

    @workflow.run
    async def run(self, params: StatusInput) -> str:
        answer = await workflow.execute_activity(
            "recruiting.status", StatusLookup(org=params.org, key=params.key), result_type=StatusAnswer,
            **OWN_ACTIVITY)
        ctx = await load_site_context(SCENARIO, answer.site or None, org=params.org)
        settings = ctx.settings_as(RecruitingSettings)
        locale = params.locale or ctx.locale
        result = answer.model_dump(mode="json")
        result["site"] = ctx.site_name or answer.site  # the hospital by its name
        if answer.kind == "application":
            result["stage_label"] = texts.stage(locale, settings, answer.status)
        if answer.waiting_for:
            result["waiting_for_label"] = texts.role(locale, answer.waiting_for)
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=params.org, reply_to=params.message_id,
            template=f"{SCENARIO}:{'status' if answer.kind else 'status_unknown'}",
            context={"key": params.key, "result": result, "timezone": ctx.timezone}, locale=locale,
            idempotency_key=f"{workflow.info().workflow_id}:reply"), result_type=fr.SentMessage)
        return answer.kind


WORKFLOWS = [RequisitionWorkflow, ApplicationWorkflow, OnboardingWorkflow, MatchAccountWorkflow,
             MonthlyReportWorkflow, StatusWorkflow, RecordLeaverWorkflow]
