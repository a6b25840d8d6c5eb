"""Temporal workflows of project_delivery.

* ``project_delivery.Project`` (``{org}:project_delivery:{project_id}``): one delivery from the request
  to closing. It names the group by the rule, gets the name from the registry (refused when the same
  customer and product already have an open project), creates the group idempotently, posts and pins the
  project card, records the row, then runs the stages: announcements, reminders before each milestone,
  the slip ladder after it, the weekly group digest, warranty tracking, and the close. It continues as
  new after every stage change (one cycle per stage). It runs in its region's site context (settings, zone,
  locale, working days, business clock); card presses are decided and answered at once, and carried out
  after (``Deferred``).
* ``project_delivery.Registry`` (``{org}:project_delivery:registry``): the organization's open projects.
  It hands out names through the ``reserve`` update (handlers run one at a time, so duplicates cannot
  race) and forwards Bitable edits of a project's row to that project.
* ``project_delivery.PortfolioDigest`` (scheduled): per region, open projects by stage and late ones,
  sent to the region's managers.
* ``project_delivery.MonthlyOutcome`` (scheduled): last month's milestones per project (due, on time,
  slip days), to ``report_recipients`` on the month's first working day.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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
        Texts,
        WorkCalendar,
        activity_options,
        feishu_call,
        load_site_context,
        report_month,
        send_to_each,
        workflow_org,
    )
    from engine.sdk import feishu as fr

from . import rules
from .config import ProjectDeliverySettings
from .models import (
    Acknowledge,
    CloseRequest,
    ContextRef,
    CreateRequest,
    FormGaps,
    OpenProject,
    OutcomeInput,
    PortfolioInput,
    ProjectContext,
    ProjectInput,
    ProjectState,
    RecordChanged,
    Registered,
    RegistryState,
    Reservation,
    ReserveResult,
    StageChange,
    StageEvent,
)

SCENARIO = "project_delivery"
REGISTRY_KEY = "registry"
NOTICES_KEPT = 100
# Feishu keeps a sent card updatable for 14 days; a day of margin for clocks and retries.
CARD_UPDATABLE = timedelta(days=13)
OWN_ACTIVITY = activity_options(timedelta(seconds=30))
# Runs from this patch on load their region's site context through the engine's activity (settings, zone,
# locale, calendar, business clock); runs recorded before load the organization's through our own.
SITE_CONTEXT = "project_delivery.site_context"

_TOASTS = Texts({
    "zh_CN": {"moved": "已更新为：{stage}", "closing": "正在结项", "cancelling": "正在取消项目",
              "duplicate": "已处理过这次操作", "creating": "正在创建项目群，稍后在群里见"},
    "en_US": {"moved": "Moved to: {stage}", "closing": "Closing the project", "cancelling": "Cancelling the project",
              "duplicate": "Already handled", "creating": "Creating the project group; see you there shortly"},
})
_REFUSALS = {
    "not_open": ("项目已结束", "The project is closed"),
    "unknown": ("没有这个阶段", "No such stage"),
    "already": ("项目已处于该阶段", "The project is already at this stage"),
}
_CANNOT = ("现在无法执行此操作", "This cannot be done now")


class Refused(Refusal):
    """An update the project's state refuses; its message becomes the card's toast."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="ProjectDeliveryRefused")


def _org() -> str:
    return workflow_org()


def _registry_id() -> str:
    return f"{_org()}:{SCENARIO}:{REGISTRY_KEY}"


@dataclass(frozen=True)
class Site:
    """What a run decides with: the site's effective settings, calendar, business clock and locale."""

    settings: ProjectDeliverySettings
    calendar: WorkCalendar
    clock: BusinessClock
    locale: str
    site: str = ""


async def _load(org: str, region: str | None) -> Site:
    """The context of the site ``region`` names (the organization's standard when none does)."""
    if workflow.patched(SITE_CONTEXT):
        ctx = await load_site_context(SCENARIO, region or None, org=org)
        return Site(settings=ctx.settings_as(ProjectDeliverySettings), calendar=ctx.calendar(), clock=ctx.clock,
                    locale=ctx.locale, site=ctx.site or "")
    old: ProjectContext = await workflow.execute_activity(
        "project_delivery.load_context", ContextRef(org=org), result_type=ProjectContext, **OWN_ACTIVITY)
    return Site(settings=ProjectDeliverySettings.model_validate(old.settings),
                calendar=WorkCalendar(old.timezone, holidays=old.holidays, workdays=old.workdays),
                clock=BusinessClock(), locale=old.locale)


def _text(texts: tuple[str, str], locale: str) -> str:
    return texts[1] if locale == "en_US" else texts[0]


@workflow.defn(name="project_delivery.Project")
class ProjectWorkflow:
    """One delivery project: create → stages with reminders and slips → warranty → closed."""

    @workflow.init
    def __init__(self, params: ProjectInput) -> None:
        self.request: CreateRequest = params.request
        self.state = params.state or ProjectState(project_id=params.project_id)
        self.seen = SeenEvents(params.seen)
        # Presses and edits decided by a handler, carried out by the main loop in arrival order: the press
        # is answered before the Feishu calls it decided on (the order of calls is the same as before).
        self.deferred = Deferred()
        self.pending: list[tuple[str, Any]] = []  # what the deferred work will carry out, to judge the next press
        self.moved = False
        self.settings: ProjectDeliverySettings | None = None
        self.calendar: WorkCalendar | None = None
        self.clock = BusinessClock()
        self.locale = "zh_CN"
        self.writes = 0

    # ----------------------------------------------------------------------------------------- run
    @workflow.run
    async def run(self, params: ProjectInput) -> ProjectState:
        site = await _load(_org(), self.request.region)
        self.settings, self.calendar, self.clock, self.locale = site.settings, site.calendar, site.clock, site.locale
        self.state.site = site.site
        if self.state.status == "new":
            await self._create()
        while self.state.status == "open":
            if self.deferred.pending:
                await self.deferred.run()
                if self.moved and self.state.status == "open":
                    await self._continue_as_new()
                continue
            now = self._now()
            decision = rules.next_timer(self.state, now, self.settings, self.calendar)
            if decision.is_nothing:
                await workflow.wait_condition(lambda: self.deferred.pending)
                continue
            if decision.is_due(now):
                workflow.logger.info("project %s: %s", self.state.project_id, decision.reason)
                await self._fire(decision)
                continue
            assert decision.at is not None
            with contextlib.suppress(TimeoutError):  # the timer came due: decide again
                await workflow.wait_condition(lambda: self.deferred.pending,
                                              timeout=self.clock.real_delay(decision.at - now))
        await self.deferred.run()  # presses answered before the close: each finds the project closed
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    def _now(self) -> datetime:
        """The business time (the real one unless the organization's clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    def _defer(self, kind: str, item: Any) -> None:
        self.pending.append((kind, item))
        self.deferred.add(self._carry_out)

    async def _carry_out(self) -> None:
        kind, item = self.pending.pop(0)
        if self.state.status != "open":  # closed by what came before: nothing left to do (and no call made)
            workflow.logger.info("%s after the project closed: ignored", kind)
            self.moved = False
            return
        self.moved = await self._handle(kind, item)

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.deferred.pending:
            return  # something arrived meanwhile: handle it in this run first
        workflow.continue_as_new(ProjectInput(project_id=self.state.project_id, request=self.request,
                                              state=self.state, seen=self.seen.ids()))

    # ------------------------------------------------------------------------------------ handlers
    async def _ready(self) -> None:
        await workflow.wait_condition(lambda: self.settings is not None and self.state.status != "new")

    def _toast(self, key: str, locale: str = "", **kw: str) -> str:
        return _TOASTS(key, locale or self.locale, **kw)

    @workflow.update(name="acknowledge")
    def acknowledge(self, ack: Acknowledge) -> dict[str, Any]:
        """Answer a submitted creation form at once (the group is created by the run, after)."""
        return {"toast": self._toast("creating", ack.locale)}

    @workflow.update(name="set_stage")
    async def set_stage(self, change: StageChange) -> dict[str, Any]:
        """Move to ``change.stage`` (a card button); refused with a toast when the state forbids it."""
        await self._ready()
        assert self.settings is not None
        if not self.seen.first_time(change.event_id):
            return {"toast": self._toast("duplicate")}
        decision = rules.check_stage_change(self._projected(), change, self.settings)
        if decision.action == "refuse":
            workflow.logger.info("press %s refused: %s", change.event_id, decision.reason)
            raise Refused(self._refusal(decision))
        self._defer("stage", change)
        if decision.action == "close":
            return {"toast": self._toast("closing")}
        spec = self.settings.stage(change.stage)
        name = (spec.name_en if self.locale == "en_US" else spec.name_zh) if spec else change.stage
        return {"toast": self._toast("moved", stage=name)}

    @workflow.update(name="close")
    async def close(self, request: CloseRequest) -> dict[str, Any]:
        """Close (acceptance done) or cancel the project from a card button."""
        await self._ready()
        if not self.seen.first_time(request.event_id):
            return {"toast": self._toast("duplicate")}
        if self.state.status != "open" or any(kind == "close" for kind, _ in self.pending):
            raise Refused(self._refusal(Decision(action="refuse", reason="closed", data={"code": "not_open"})))
        self._defer("close", request)
        return {"toast": self._toast("cancelling" if request.cancelled else "closing")}

    @workflow.signal(name="bitable_edited")
    async def bitable_edited(self, change: RecordChanged) -> None:
        """The project's row was edited in Bitable (forwarded by the registry): re-read it and act."""
        if self.seen.first_time(change.event_id):
            self._defer("bitable", change)

    @workflow.query(name="state")
    def query_state(self) -> ProjectState:
        return self.state

    @workflow.query(name="status")
    def query_status(self) -> dict[str, Any]:
        """The answer to "<project id> 状态": stage, next milestone and slips (``rules.status_view``)."""
        if self.settings is None or self.calendar is None:
            return {"project_id": self.state.project_id, "status": self.state.status, "name": self.state.name}
        return rules.status_view(self.state, self.settings, self._today())

    def _projected(self) -> ProjectState:
        """The state as it will be once queued stage changes are applied (to judge a new request)."""
        state = self.state
        assert self.settings is not None
        for kind, item in self.pending:
            if kind == "stage":
                state = state.model_copy(update={"stage": item.stage})
        return state

    def _refusal(self, decision: Decision) -> str:
        """The refusal in the project's language; the rule's reason stays in the log."""
        return _text(_REFUSALS.get(str(decision.data.get("code")), _CANNOT), self.locale)

    # ------------------------------------------------------------------------------------- helpers
    @property
    def _wid(self) -> str:
        return workflow.info().workflow_id

    def _today(self) -> date:
        assert self.calendar is not None
        return self.calendar.local(self._now()).date()

    def _context(self, **extra: Any) -> dict[str, Any]:
        assert self.settings is not None
        return {**rules.project_context(self.state, self.settings, self._today()), "now": self._now().isoformat(),
                **extra}

    async def _send(self, template: str, key: str, *, chat_id: str | None = None, open_id: str | None = None,
                    reply_to: str | None = None, **extra: Any) -> fr.SentMessage:
        to = None
        if chat_id:
            to = fr.Recipient(id_type="chat_id", id=chat_id)
        elif open_id:
            to = fr.Recipient(id_type="open_id", id=open_id)
        return await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=_org(), to=to, reply_to=reply_to, template=f"{SCENARIO}:{template}", context=self._context(**extra),
            idempotency_key=key, locale=self.locale), result_type=fr.SentMessage)

    async def _write_row(self) -> None:
        assert self.settings is not None and self.calendar is not None
        table = self.settings.projects
        fields = rules.project_fields(self.state, self.settings, self._today(), self.calendar.zone)
        self.writes += 1
        result: fr.UpsertResult = await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=_org(), app_token=table.app_token, table_id=table.table_id, key_field=table.fields.project_id,
            records=[fields], client_token=f"{self._wid}:row:{workflow.info().run_id}:{self.writes}"),
            result_type=fr.UpsertResult)
        record_id = result.record_ids.get(self.state.project_id, "")
        if record_id and record_id != self.state.record_id:
            self.state.record_id = record_id
            await workflow.get_external_workflow_handle(_registry_id()).signal(
                "registered", Registered(project_id=self.state.project_id, record_id=record_id,
                                         chat_id=self.state.chat_id))

    async def _refresh_card(self) -> None:
        """Update the pinned project card; Feishu keeps a card updatable for 14 days, so an older one is
        replaced by a freshly posted and pinned card."""
        state = self.state
        fresh = state.card_sent_at is not None and workflow.now() - state.card_sent_at < CARD_UPDATABLE
        if state.card_message_id and fresh:
            try:
                await feishu_call(fr.UPDATE_CARD, fr.UpdateCard(
                    org=_org(), message_id=state.card_message_id, template=f"{SCENARIO}:project.card",
                    context=self._context(), locale=self.locale))
                return
            except ActivityError as error:
                workflow.logger.warning("project card not updatable, posting a new one: %s", error)
        await self._post_card(f"{self._wid}:{state.cycle}:card:{len(state.notices)}:{state.status}")

    async def _post_card(self, key: str) -> None:
        card = await self._send("project.card", key, chat_id=self.state.chat_id)
        self.state.card_message_id, self.state.card_sent_at = card.message_id, workflow.now()
        await feishu_call(fr.PIN_MESSAGE, fr.PinMessage(org=_org(), message_id=card.message_id))

    def _note(self, decision: Decision, to: list[str]) -> None:
        self.state.notices.append({"at": self._now().isoformat(), "action": decision.action,
                                   "step": decision.step, "reason": decision.reason, "to": to})
        del self.state.notices[:-NOTICES_KEPT]

    # -------------------------------------------------------------------------------------- create
    async def _create(self) -> None:
        assert self.settings is not None and self.calendar is not None
        settings, request, state = self.settings, self.request, self.state
        # one moment for the name's date and the recorded creation: activities in between take time, and a
        # request at 23:59:59 on the last of a month must not name the group after the other month
        created_at = self._now()
        today = self.calendar.local(created_at).date()
        state.customer, state.product, state.region = request.customer, request.product, request.region
        state.requester_open_id = request.requester_open_id
        naming = rules.build_group_name(settings.naming, customer=request.customer, product=request.product,
                                        region=request.region, today=today, project_id=state.project_id)
        if naming.action != "name":
            state.status, state.reason = "refused", naming.reason
            if request.message_id:
                await self._send("missing", f"{self._wid}:refused", reply_to=request.message_id,
                                 missing=naming.data.get("missing", []))
            return
        reserved: ReserveResult = await workflow.execute_activity(
            "project_delivery.reserve_name",
            Reservation(org=_org(), project_id=state.project_id, customer=request.customer, product=request.product,
                        region=request.region, name=naming.data["name"], max_length=settings.naming.max_length),
            result_type=ReserveResult, **OWN_ACTIVITY)
        if not reserved.ok:
            state.status, state.reason = "refused", reserved.reason
            if request.message_id:
                await self._send("duplicate", f"{self._wid}:refused", reply_to=request.message_id,
                                 existing_project_id=reserved.existing_project_id,
                                 existing_name=reserved.existing_name)
            return
        state.name = reserved.name
        state.staff = await self._staff(request.region)
        state.members = rules.members_for(state.staff, settings.staffing, [request.requester_open_id],
                                          request.extra_member_open_ids)
        state.start_date, state.created_at = today, created_at
        state.planned = rules.plan(today, settings)
        first = settings.stages[0].key
        state.stage = first
        state.history.append(StageEvent(stage=first, at=created_at, by=request.requester_open_id, via="create",
                                        planned=state.planned[first]))
        created: fr.ChatCreated = await feishu_call(fr.CREATE_CHAT, fr.CreateChat(
            org=_org(), name=state.name, description=f"{state.project_id} {request.customer} {request.product}",
            member_open_ids=state.members, idempotency_key=f"{self._wid}:create_chat"),
            result_type=fr.ChatCreated)
        state.chat_id = created.chat_id
        state.status = "open"
        await self._post_card(f"{self._wid}:0:card")
        await self._write_row()
        if request.message_id:
            await self._send("created", f"{self._wid}:0:created", reply_to=request.message_id,
                             invalid_members=created.invalid_member_ids,
                             no_manager=not state.staff.get("project_manager"))

    async def _staff(self, region: str) -> dict[str, list[str]]:
        """Role -> open ids from the staffing table (a missing or unreadable table staffs no one)."""
        assert self.settings is not None
        staffing = self.settings.staffing
        try:
            records: list[fr.BitableRecord] = await feishu_call(fr.BITABLE_SEARCH, fr.BitableSearch(
                org=_org(), app_token=staffing.app_token, table_id=staffing.table_id,
                filter={"conjunction": "and", "conditions": [
                    {"field_name": staffing.region_field, "operator": "is", "value": [region]}]}),
                result_type=list[fr.BitableRecord])
        except ActivityError as error:
            workflow.logger.warning("staffing table unreadable, staffing from the request only: %s", error)
            records = []
        return rules.staff_for_region([r.fields for r in records], region, staffing)

    # -------------------------------------------------------------------------------------- events
    async def _handle(self, kind: str, item: Any) -> bool:
        """Carry out one queued change; True when the stage moved (a new cycle)."""
        assert self.settings is not None
        if kind == "close":
            await self._close(cancelled=item.cancelled, by=item.operator_open_id, reason=item.reason or "card")
            return False
        if kind == "bitable":
            change = await self._stage_from_row(item)
            if change is None:
                return False
        else:
            change = item
        decision = rules.check_stage_change(self.state, change, self.settings)
        if decision.action == "refuse":
            workflow.logger.info("stage change ignored: %s", decision.reason)
            return False
        if decision.action == "close":
            await self._close(cancelled=False, by=change.operator_open_id, reason=change.via)
            return False
        previous = self.state.stage
        self.state = rules.apply_stage(self.state, change, self._now(), self._today(), self.settings)
        event = self.state.history[-1]
        await self._send("stage_changed", f"{self._wid}:{self.state.cycle}:announce", chat_id=self.state.chat_id,
                         previous=previous, by=change.operator_open_id, via=change.via,
                         slipped_days=event.slipped_days, skipped=decision.data.get("skipped", []),
                         backwards=decision.data.get("backwards", False))
        await self._refresh_card()
        await self._write_row()
        return True

    async def _stage_from_row(self, change: RecordChanged) -> StageChange | None:
        assert self.settings is not None
        table = self.settings.projects
        record: fr.BitableRecord = await feishu_call(fr.BITABLE_GET, fr.BitableGet(
            org=_org(), app_token=table.app_token, table_id=table.table_id, record_id=change.record_id),
            result_type=fr.BitableRecord)
        stage = rules.stage_from_fields(record.fields, self.settings)
        if stage is None or stage == self.state.stage:
            return None  # our own write coming back, or a value that names no stage
        return StageChange(stage=stage, operator_open_id=change.operator_open_id, event_id=change.event_id,
                           via="bitable")

    # --------------------------------------------------------------------------------------- timers
    async def _fire(self, decision: Decision) -> None:
        assert self.settings is not None
        if decision.action == "digest":
            self.state.last_digest_at = self._now()
            self.state.digests_sent += 1
            await self._send("digest", f"{self._wid}:{decision.step}", chat_id=self.state.chat_id)
            self._note(decision, [self.state.chat_id])
            return
        if decision.action == "warranty_end":
            await self._close(cancelled=False, by="", reason="warranty_ended")
            return
        role = str(decision.data.get("role", ""))
        people = list(self.state.staff.get(role, []))
        if decision.action == "warranty":
            for open_id in people:
                await self._send("warranty", f"{self._wid}:{self.state.cycle}:w:{decision.step}:{open_id}",
                                 open_id=open_id, lead_days=decision.data.get("lead_days", 0))
            self.state.warranty_fired.append(str(decision.step))
        else:
            template = "slip" if decision.action == "escalate" else "reminder"
            for open_id in people:
                await self._send(template, f"{self._wid}:{self.state.cycle}:{decision.step}:{open_id}",
                                 open_id=open_id, role=role, step=decision.step,
                                 lead_days=decision.data.get("lead_days", 0),
                                 escalation=decision.data.get("escalation", 0))
            self.state.fired.append(str(decision.step))
            if decision.action == "escalate":
                await self._write_row()  # the row's slipped days feed the portfolio digest
        self._note(decision, people)

    # ---------------------------------------------------------------------------------------- close
    async def _close(self, *, cancelled: bool, by: str, reason: str) -> None:
        assert self.settings is not None
        settings, state = self.settings, self.state
        state.status = "cancelled" if cancelled else "closed"
        state.reason = reason
        state.closed_at = self._now()
        if not cancelled and state.stage != settings.closing_stage:
            closing = settings.closing_stage
            planned = state.planned.get(closing)
            state.history.append(StageEvent(
                stage=closing, at=self._now(), by=by, via="warranty" if reason == "warranty_ended" else "card",
                planned=planned, slipped_days=max(0, (self._today() - planned).days) if planned else 0,
                note=reason))
            state.stage = closing
        await self._send("summary", f"{self._wid}:close:summary", chat_id=state.chat_id, by=by,
                         cancelled=cancelled, reason=reason,
                         dissolve=settings.close_action == "dissolve")
        await self._refresh_card()
        await self._write_row()
        if settings.close_action == "dissolve":
            await workflow.execute_activity("project_delivery.dissolve_chat", {"chat_id": state.chat_id},
                                            **OWN_ACTIVITY)
        else:
            await feishu_call(fr.UPDATE_CHAT, fr.UpdateChat(
                org=_org(), chat_id=state.chat_id, name=rules.closed_name(state.name, settings.naming, cancelled)))
        await workflow.get_external_workflow_handle(_registry_id()).signal("release", state.project_id)


@workflow.defn(name="project_delivery.Registry")
class RegistryWorkflow:
    """The organization's open projects: hands out unique names, refuses duplicates, routes row edits."""

    @workflow.init
    def __init__(self, state: RegistryState) -> None:
        self.state = state
        self.seen = SeenEvents(state.seen)

    @workflow.run
    async def run(self, state: RegistryState) -> None:
        await workflow.wait_condition(
            lambda: workflow.info().is_continue_as_new_suggested() or len(self.state.decisions) > 2000)
        await workflow.wait_condition(workflow.all_handlers_finished)
        # keep the decisions of open projects and the latest others (a late retry still gets its answer)
        keep = list(self.state.decisions)[-500:]
        decisions = {k: v for k, v in self.state.decisions.items() if k in self.state.open or k in keep}
        workflow.continue_as_new(RegistryState(open=self.state.open, decisions=decisions,
                                               records=self.state.records, seen=self.seen.ids()))

    @workflow.update(name="reserve")
    def reserve(self, request: Reservation) -> ReserveResult:
        """A name for a new project, or a refusal when its customer and product already have an open one."""
        decided = self.state.decisions.get(request.project_id)
        if decided is not None:
            return decided
        key = rules.same_project_key(request.customer, request.product)
        for other in self.state.open.values():
            if rules.same_project_key(other.customer, other.product) == key:
                result = ReserveResult(ok=False, reason=f"duplicate of open project {other.project_id}",
                                       existing_project_id=other.project_id, existing_name=other.name)
                break
        else:
            name = rules.unique_name(request.name, (p.name for p in self.state.open.values()), request.max_length)
            self.state.open[request.project_id] = OpenProject(
                project_id=request.project_id, customer=request.customer, product=request.product,
                region=request.region, name=name)
            result = ReserveResult(ok=True, name=name, reason="name reserved")
        self.state.decisions[request.project_id] = result
        return result

    @workflow.update(name="form_gaps")
    def form_gaps(self, gaps: FormGaps) -> dict[str, Any]:
        """Answer a creation form submitted with parts missing: a toast naming them (no Feishu call, so the
        press is answered at once)."""
        return {"toast": rules.missing_text(gaps.missing, gaps.locale)}

    @workflow.signal(name="registered")
    def registered(self, info: Registered) -> None:
        project = self.state.open.get(info.project_id)
        if project is not None:
            project.record_id, project.chat_id = info.record_id, info.chat_id or project.chat_id
        if info.record_id:
            self.state.records[info.record_id] = info.project_id

    @workflow.signal(name="release")
    def release(self, project_id: str) -> None:
        project = self.state.open.pop(project_id, None)
        if project is not None and project.record_id:
            self.state.records.pop(project.record_id, None)

    @workflow.signal(name="record_changed")
    async def record_changed(self, change: RecordChanged) -> None:
        """A row of the projects table changed: tell its project (rows of closed projects are ignored)."""
        if not self.seen.first_time(change.event_id):
            return
        project_id = self.state.records.get(change.record_id)
        if project_id is None or project_id not in self.state.open:
            return
        org = workflow.info().workflow_id.split(":", 1)[0]
        try:
            await workflow.get_external_workflow_handle(f"{org}:{SCENARIO}:{project_id}").signal(
                "bitable_edited", change)
        except Exception as error:  # the project ended meanwhile: nothing to tell
            workflow.logger.info("row edit of %s not forwarded: %s", project_id, error)

    @workflow.query(name="state")
    def query_state(self) -> RegistryState:
        return self.state


@workflow.defn(name="project_delivery.PortfolioDigest")
class PortfolioDigestWorkflow:
    """One scheduled run: per region, open projects by stage and the late ones, to the region's managers."""

    @workflow.run
    async def run(self, params: PortfolioInput) -> dict[str, Any]:
        site = await _load(params.org, None)
        settings, calendar = site.settings, site.calendar
        zone = calendar.zone
        today = calendar.local(site.clock.now(workflow.now())).date()
        per_site = workflow.patched(SITE_CONTEXT)
        projects: list[fr.BitableRecord] = await feishu_call(fr.BITABLE_SEARCH, fr.BitableSearch(
            org=params.org, app_token=settings.projects.app_token, table_id=settings.projects.table_id),
            result_type=list[fr.BitableRecord])
        staffing: list[fr.BitableRecord] = await feishu_call(fr.BITABLE_SEARCH, fr.BitableSearch(
            org=params.org, app_token=settings.staffing.app_token, table_id=settings.staffing.table_id),
            result_type=list[fr.BitableRecord])
        rows = [rules.project_row(r.fields, settings, today, zone) for r in projects]
        summary = rules.portfolio(rows, settings)
        wid = workflow.info().workflow_id
        sent: dict[str, list[str]] = {}
        for region, entry in summary.items():
            managers = rules.staff_for_region([r.fields for r in staffing], region, settings.staffing)
            sent[region] = managers["regional_manager"]
            if not managers["regional_manager"]:
                continue
            # each region's managers read it in their site's language
            locale = (await load_site_context(SCENARIO, region, org=params.org)).locale \
                if per_site and region else site.locale
            context = {**rules.localized_portfolio(entry, settings, locale), "today": today.isoformat()}
            for open_id in managers["regional_manager"]:
                await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                    org=params.org, to=fr.Recipient(id=open_id), template=f"{SCENARIO}:portfolio",
                    context=context, idempotency_key=f"{wid}:{region}:{open_id}", locale=locale))
        return {"regions": summary, "sent": sent, "as_of": datetime.combine(today, datetime.min.time()).isoformat()}


@workflow.defn(name="project_delivery.MonthlyOutcome")
class MonthlyOutcomeWorkflow:
    """Last month's milestones per project, sent on the first working day of the month.

    Started every morning of the month's first twelve days by a schedule; a run that is not on the first
    working day ends without sending (the calendar knows the holidays a cron cannot). Result: cards sent.
    """

    @workflow.run
    async def run(self, params: OutcomeInput) -> int:
        context = await load_site_context(SCENARIO, org=params.org)
        settings, calendar = context.settings_as(ProjectDeliverySettings), context.calendar()
        report = report_month(context.clock.now(workflow.now()), calendar)
        if report is None:
            return 0
        last = report.last
        projects: list[fr.BitableRecord] = await feishu_call(fr.BITABLE_SEARCH, fr.BitableSearch(
            org=params.org, app_token=settings.projects.app_token, table_id=settings.projects.table_id),
            result_type=list[fr.BitableRecord])
        rows = rules.milestone_outcomes([r.fields for r in projects], settings, last.replace(day=1), last,
                                        calendar.zone)
        sent = 0
        for region, recipients in sorted(settings.report_recipients.items()):
            mine = [r for r in rows if not region or r.region == region]
            if not mine:
                continue
            card = {"month": f"{last:%Y-%m}", "region": region, "projects": [r.model_dump() for r in mine]}
            sent += await send_to_each(params.org, recipients, f"{SCENARIO}:outcome.card", card,
                                       locale=context.locale,
                                       key=f"{workflow.info().workflow_id}:{last:%Y-%m}:{region}")
        return sent


WORKFLOWS = [ProjectWorkflow, RegistryWorkflow, PortfolioDigestWorkflow, MonthlyOutcomeWorkflow]
