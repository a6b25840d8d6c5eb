"""Feishu approvals for any scenario: a workflow asks for one and gets the decision back exactly once.

A scenario's workflow calls :func:`request_approval` (through ``engine.sdk``). It creates a native Feishu
approval instance (Approval API v4) of the definition its settings name, then runs the engine's
``engine.ApprovalFollow`` workflow as a child and returns that child's result, an
:class:`ApprovalDecision`. The child:

* has the id ``{org}:engine:approval:{instance_code}``, derivable from the event alone, so the router
  needs no table from instance codes to workflows (and none to keep in step, nor Temporal visibility,
  which the test server lacks, nor room in Feishu's ``uuid``, which holds the idempotency key instead);
* treats every ``approval_instance`` event (signal :data:`CHANGED_SIGNAL`, sent by the router) as news only:
  it re-reads the instance from Feishu before deciding anything, so a forged, stale, repeated or
  out-of-order event changes nothing by itself; it also re-reads it when it starts, before each reminder
  and every ``recheck_hours``, so an event that never came (or came before the child started) costs only
  time, and a reminder goes to whoever holds the task then;
* ends at the first terminal status it reads (APPROVED, REJECTED, CANCELED = withdrawn, DELETED); a
  transfer leaves the instance PENDING, so the child keeps waiting. Its result reaches the parent once;
  before it ends it records the instance for the monthly approval-time report (:mod:`engine.approval_report`);
* meanwhile reminds the pending approvers and escalates to ``escalate_to`` on the site's working days
  with the engine's ladder (:func:`engine.rules.next_notice`), the due day ``decide_within_days`` working
  days after the request.

Organizations without the approval app leave ``approval_code`` empty and keep their scenario's card
buttons: :attr:`ApprovalSettings.enabled` tells a workflow which way to go.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

from engine.approval_report import RECORD_PATCH, record_decision
from engine.context import SiteContext
from engine.feishu import requests as rq
from engine.ids import workflow_id
from engine.rules.ladder import EscalationStep, LadderSettings, next_notice
from engine.workflow_support import SeenEvents, feishu_call

FOLLOW_WORKFLOW = "engine.ApprovalFollow"
"""The Temporal type name of the workflow that follows one approval instance (permanent)."""
CHANGED_SIGNAL = "engine.approval_changed"
"""The signal the router sends the follower for each ``approval_instance`` event (permanent)."""
ENGINE_SCENARIO = "engine"
# withdrawing the instance when the asking workflow gives up waiting (runs recorded before replay without it)
WITHDRAW_PATCH = "engine.approval_withdraw"
# A follower pending for months starts over (continue-as-new) before its history grows long.
CONTINUE_PATCH = "engine.approval_follow_continue"
FOLLOW_HISTORY_LIMIT = 2_000  # events; Temporal suggests continuing as new long before its 50k limit
REMINDER_TEMPLATE = "engine:approval_reminder"
ESCALATION_TEMPLATE = "engine:approval_escalation"
TERMINAL = {"APPROVED": "approved", "REJECTED": "rejected", "CANCELED": "withdrawn", "DELETED": "deleted"}

Outcome = Literal["approved", "rejected", "withdrawn", "deleted"]


def _default_ladder() -> LadderSettings:
    # a reminder the working day before the due day and on it, then three daily escalations
    return LadderSettings(before_days=[1], on_due=True, after=[EscalationStep(every_days=1, times=3, to="head")])


class ApprovalSettings(BaseModel):
    """A scenario's approval by Feishu (put it in the scenario's settings model, e.g. ``approval: ...``).

    Headquarters sets ``approval_code`` and the approver chain; a site overrides what the scenario's
    ``site_overridable`` allows (``"approval.approvers"``: its own approvers, ``"approval.escalate_to"``).

    * ``approval_code``: the approval definition's code; empty: no Feishu approval, use card buttons.
    * ``approvers``: a node's ``custom_node_id`` (or ``node_id``) → the open ids that approve at it,
      replacing the definition's (nodes left out keep the definition's approvers).
    * ``escalate_to``: open ids that hear when an approval is overdue (a hospital's head).
    * ``decide_within_days``: working days from the request to the due day of the ladder.
    * ``ladder``: reminders to the pending approvers (``before_days``, ``on_due``) and escalations
      (``after``, each rung to ``escalate_to`` whatever its role name), on working days.
    * ``recheck_hours``: how often a pending instance is read again even without an event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    approval_code: str = ""
    approvers: dict[str, list[str]] = Field(default_factory=dict)
    escalate_to: list[str] = Field(default_factory=list)
    decide_within_days: int = Field(default=2, ge=0)
    ladder: LadderSettings = Field(default_factory=_default_ladder)
    recheck_hours: int = Field(default=12, ge=1)

    @property
    def enabled(self) -> bool:
        """Whether approvals go through Feishu (an ``approval_code`` is set) rather than card buttons."""
        return bool(self.approval_code)


class ApprovalRequest(BaseModel):
    """What :func:`request_approval` needs.

    ``key`` names this request within the asking workflow (e.g. ``"requisition"``): the same key gives the
    same Feishu instance, also when the create call is retried. ``form`` is the definition's widget values
    (``[{"id": ..., "type": ..., "value": ...}]``). ``site`` (from ``load_site_context``) gives the zone,
    locale and working days of the reminders. ``title`` names the request in reminders (users' text).
    """

    key: str
    settings: ApprovalSettings
    applicant_open_id: str
    form: list[dict[str, Any]] = Field(default_factory=list)
    title: str = ""
    site: SiteContext


class ApprovalDecision(BaseModel):
    """How an approval ended: ``outcome`` (``status`` is Feishu's), who decided (the open id of the task
    that approved or rejected; empty when withdrawn or deleted), the comment that approver wrote (the
    approver's own words, empty when none), and when the engine read it."""

    instance_code: str
    outcome: Outcome
    status: str
    decided_by: str = ""
    comment: str = ""
    decided_at: datetime

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"


class ApprovalChanged(BaseModel):
    """The router's signal to a follower: an event said the instance changed (it is re-read, not trusted)."""

    event_id: str
    instance_code: str
    status: str = ""


class FollowInput(BaseModel):
    org: str
    approval_code: str
    instance_code: str
    title: str = ""
    settings: ApprovalSettings
    site: SiteContext
    requested_at: datetime
    # carried over when the follower continues as new: the notices already sent, the events already seen
    fired: list[str] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    history_limit: int = FOLLOW_HISTORY_LIMIT


def approval_workflow_id(org: str, instance_code: str) -> str:
    """The id of the workflow following ``instance_code``: ``{org}:engine:approval:{instance_code}``."""
    return workflow_id(org, ENGINE_SCENARIO, f"approval:{instance_code}")


async def request_approval(request: ApprovalRequest) -> ApprovalDecision:
    """Ask Feishu for an approval and wait for its decision (in workflow code only).

    Creates the instance (``engine.feishu.create_approval``, idempotent on the asking workflow's id and
    ``request.key``), then follows it in a child workflow until it is approved, rejected, withdrawn or
    deleted, reminding and escalating meanwhile. Run it as a task (``asyncio.create_task``) to do other
    work while it waits; do not continue-as-new before it returns. Raises ``ValueError`` when the
    settings have no ``approval_code`` (use card buttons then), and Temporal's ``ActivityError`` when
    Feishu refuses the instance (a wrong code, a node without approvers).

    Cancelling it (``task.cancel()`` when the business object closed, or the asking workflow's own
    cancellation) withdraws the Feishu instance for its applicant, so nobody is left a task to decide,
    then re-raises the cancellation; a decision that arrived first is returned instead. Do not let the
    asking workflow end while it waits (its follower would be terminated and the instance stay pending).
    A cancellation during the create call itself (its code is not known yet) withdraws nothing.
    """
    settings = request.settings
    if not settings.enabled:
        raise ValueError("these approval settings have no approval_code: ask with card buttons instead")
    org = request.site.org
    instance_code = await feishu_call(rq.CREATE_APPROVAL, rq.CreateApproval(
        org=org, approval_code=settings.approval_code, applicant_open_id=request.applicant_open_id,
        form=request.form, node_approvers=dict(settings.approvers),
        idempotency_key=f"{workflow.info().workflow_id}|{request.key}"), result_type=str)
    follow = FollowInput(org=org, approval_code=settings.approval_code, instance_code=instance_code,
                         title=request.title, settings=settings, site=request.site, requested_at=workflow.now())
    try:
        return await workflow.execute_child_workflow(
            FOLLOW_WORKFLOW, follow, id=approval_workflow_id(org, instance_code), result_type=ApprovalDecision)
    except (asyncio.CancelledError, ChildWorkflowError) as error:
        if is_cancelled_exception(error) and workflow.patched(WITHDRAW_PATCH):
            await _withdraw(org, settings.approval_code, instance_code, request.applicant_open_id)
        raise


async def _withdraw(org: str, approval_code: str, instance_code: str, applicant_open_id: str) -> None:
    """Withdraw a pending instance whose asker stopped waiting; one decided meanwhile stays as it is."""
    try:
        await feishu_call(rq.CANCEL_APPROVAL, rq.CancelApproval(
            org=org, approval_code=approval_code, instance_code=instance_code, applicant_open_id=applicant_open_id))
    except ActivityError:
        instance = await feishu_call(rq.GET_APPROVAL, rq.GetApproval(org=org, instance_code=instance_code),
                                     result_type=rq.ApprovalInstance)
        if instance.status == "PENDING":
            raise  # Feishu refused to withdraw a pending one: the asker's failure says why
        workflow.logger.info("approval %s was %s before it could be withdrawn", instance_code, instance.status)
        return
    workflow.logger.info("approval %s withdrawn: its asker stopped waiting", instance_code)


def decision_of(instance: rq.ApprovalInstance, now: datetime) -> ApprovalDecision | None:
    """The decision an instance read from Feishu holds, ``None`` while it is pending (pure)."""
    outcome = TERMINAL.get(instance.status)
    if outcome is None:
        return None
    deciding = {"approved": "APPROVED", "rejected": "REJECTED"}.get(outcome)
    by = [task for task in instance.tasks if deciding and task.status == deciding]
    return ApprovalDecision(instance_code=instance.instance_code, outcome=outcome,  # type: ignore[arg-type]
                            status=instance.status, decided_by=by[-1].open_id if by else "",
                            comment=by[-1].comment if by else "", decided_at=now)


@workflow.defn(name=FOLLOW_WORKFLOW)
class ApprovalFollow:
    """Follows one approval instance to its decision (see the module docstring)."""

    def __init__(self) -> None:
        self._seen = SeenEvents()
        self._news = 0
        self.status = "PENDING"
        self.pending: list[str] = []
        self.fired: list[str] = []

    @workflow.signal(name=CHANGED_SIGNAL)
    def changed(self, note: ApprovalChanged) -> None:
        if self._seen.first_time(note.event_id):
            self._news += 1

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {"status": self.status, "pending_approvers": list(self.pending), "notices": list(self.fired)}

    @workflow.run
    async def run(self, follow: FollowInput) -> ApprovalDecision:
        settings, site = follow.settings, follow.site
        self.fired = [*follow.fired, *self.fired]
        for event_id in follow.seen:  # a signal handled before this line keeps its place
            self._seen.first_time(event_id)
        calendar = site.calendar()
        due = calendar.add_workdays(calendar.local(follow.requested_at).date(), settings.decide_within_days)
        recheck = timedelta(hours=settings.recheck_hours)
        read = -1  # the news count the last read answered; -1: read now
        while True:
            if read != self._news:
                read = self._news
                instance = await feishu_call(rq.GET_APPROVAL, rq.GetApproval(
                    org=follow.org, instance_code=follow.instance_code), result_type=rq.ApprovalInstance)
                self.status = instance.status
                decision = decision_of(instance, workflow.now())
                if decision is not None:
                    workflow.logger.info("approval %s: %s", follow.instance_code, instance.status)
                    if workflow.patched(RECORD_PATCH):  # followers started before the report record nothing
                        await record_decision(follow.site, follow.title, instance)
                    return decision
                self.pending = [task.open_id for task in instance.tasks if task.status == "PENDING"]
            if read == self._news and self._history_full(follow) and workflow.patched(CONTINUE_PATCH):
                # nothing unread: the next run reads the instance again at its start anyway
                workflow.continue_as_new(follow.model_copy(update={"fired": self.fired,
                                                                   "seen": self._seen.ids()}))
            now = workflow.now()
            notice = next_notice(due, self.fired, now, settings.ladder, calendar)
            if notice.is_due(now):
                await self._send(follow, notice.step, notice.action, due.isoformat())
                self.fired.append(notice.step)
                continue
            wait = recheck if notice.is_nothing or notice.at is None else min(recheck, notice.at - now)
            try:
                await workflow.wait_condition(lambda seen=read: self._news != seen, timeout=wait)
            except TimeoutError:
                # read again before a notice (it goes to whoever holds the task now, and not at all once
                # decided) and after a quiet while (an event may have been lost)
                read = -1

    @staticmethod
    def _history_full(follow: FollowInput) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > follow.history_limit

    async def _send(self, follow: FollowInput, step: str, action: str, due: str) -> None:
        escalate = action == "escalate"
        recipients = follow.settings.escalate_to if escalate else self.pending
        context = {"title": follow.title, "due": due, "pending": len(self.pending)}
        for open_id in recipients:
            await feishu_call(rq.SEND_MESSAGE, rq.SendMessage(
                org=follow.org, to=rq.Recipient(id=open_id),
                template=ESCALATION_TEMPLATE if escalate else REMINDER_TEMPLATE, context=context,
                idempotency_key=f"approval:{follow.instance_code}:{step}:{open_id}",
                locale=follow.site.locale, timezone=follow.site.timezone), result_type=rq.SentMessage)


WORKFLOWS: list[type] = [ApprovalFollow]
