"""Events → actions on the recruiting workflows. Pure and fast (the router runs it while Feishu waits).

* card buttons (``action_value.scenario == "recruiting"``): approve/reject/close a requisition, open one
  from a form, invite a pool candidate, move an application, tick a checklist item, start offboarding;
* Bitable: a row added to the requisitions table opens a requisition; a row added to or edited in the
  applications table starts (or re-reads) its application;
* ``contact.user.created_v3``: contacts hashed here, a ``MatchAccount`` finds the onboarding record;
* Feishu Hire (``hire.application.stage_changed_v1``, ``hire.offer.status_changed_v1``): when the
  engine hands them over as generic events with their ``raw`` payload (see README);
* a message "@bot <key> 状态" / "<key> status" (or in a private chat): one ``recruiting.Status`` run per
  message (keyed on its message id, so a redelivery is answered once), replying in the question's language.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import (
    BitableRecordChanged,
    CardAction,
    FeishuEvent,
    MessageReceived,
    OrgContext,
    UserCreated,
    UserDeleted,
    message_key,
    resolve_site_context,
    status_question,
)
from engine.sdk import actions as act

from . import reading, rules
from .config import RecruitingSettings
from .models import (
    SCENARIO,
    ApplicationInput,
    CloseRequest,
    CompleteItem,
    Decide,
    LeaveRequest,
    LeaverInput,
    MatchAccountInput,
    MoveRequest,
    RecordChanged,
    RequisitionFacts,
    RequisitionInput,
    StatusInput,
    app_key,
    onboarding_key,
    req_key,
)

HIRE_EVENTS = ("hire.application.stage_changed_v1", "hire.offer.status_changed_v1")


def route(event: FeishuEvent, org: OrgContext) -> list[Any] | None:
    settings = resolve_site_context(org, SCENARIO).settings_as(RecruitingSettings)
    if isinstance(event, MessageReceived):
        return _status(event, org, settings)
    if isinstance(event, CardAction):
        return _card(event, settings)
    if isinstance(event, BitableRecordChanged):
        return _bitable(event, settings)
    if isinstance(event, UserCreated):
        return _user_created(event, org)
    if isinstance(event, UserDeleted):
        return [act.StartWorkflow(scenario=SCENARIO, key=f"leaver:{event.open_id}", workflow="recruiting.RecordLeaver",
                                  args=[LeaverInput(org=org.id, open_id=event.open_id, name=event.name,
                                                    department_ids=event.department_ids)])]
    if event.event_type in HIRE_EVENTS:
        return _hire(event, settings)
    return None


def _card(event: CardAction, settings: Any) -> list[Any] | None:
    value = event.action_value or {}
    if value.get("scenario") != SCENARIO:
        return None
    op, actor, eid = value.get("op"), event.operator_open_id, event.event_id
    form = event.form_value or {}
    req, app = str(value.get("req") or ""), str(value.get("app") or "")
    if op in ("approve", "reject") and req:
        return [act.UpdateWorkflow(scenario=SCENARIO, key=req_key(req), update="decide", update_id=eid,
                                   arg=Decide(approve=op == "approve", actor=actor, event_id=eid,
                                              comment=str(form.get("comment") or "")))]
    if op == "close_req" and req:
        return [act.UpdateWorkflow(scenario=SCENARIO, key=req_key(req), update="close", update_id=eid,
                                   arg=CloseRequest(actor=actor, event_id=eid,
                                                    reason="filled" if value.get("filled") else "closed"))]
    if op == "open_req":
        req_id = str(form.get("req_id") or value.get("req_id") or f"R{eid[-10:]}")
        facts = RequisitionFacts(
            req_id=req_id, site=str(form.get("site") or value.get("site") or ""),
            department=str(form.get("department") or ""), title=str(form.get("title") or ""),
            headcount=max(reading.value_count(form.get("headcount"), 1), 1), grade=str(form.get("grade") or ""),
            tags=reading.value_tags(form.get("tags")), recruiter=actor, reason=str(form.get("reason") or ""))
        return [act.StartWorkflow(scenario=SCENARIO, key=req_key(req_id), workflow="recruiting.Requisition",
                                  args=[RequisitionInput(req_id=req_id, facts=facts, opened_by=actor, via="form")])]
    if op == "invite" and req and value.get("candidate"):
        candidate = str(value["candidate"])
        application_id = f"pool_{candidate}_{req}"
        return [act.StartWorkflow(scenario=SCENARIO, key=app_key(application_id), workflow="recruiting.Application",
                                  args=[ApplicationInput(application_id=application_id, via="pool",
                                                         candidate_id=candidate, req_id=req, actor=actor)])]
    if op == "move" and app and value.get("to"):
        return [act.UpdateWorkflow(scenario=SCENARIO, key=app_key(app), update="move", update_id=eid,
                                   arg=MoveRequest(to=str(value["to"]), actor=actor, via="card", event_id=eid,
                                                   reason=str(form.get("reason") or "")))]
    if op == "item_done" and app and value.get("item"):
        return [act.UpdateWorkflow(scenario=SCENARIO, key=onboarding_key(app), update="complete_item", update_id=eid,
                                   arg=CompleteItem(item=str(value["item"]), actor=actor, event_id=eid))]
    if op == "leave" and app:
        last_day = str(form.get("last_day") or "")[:10] or None
        return [act.UpdateWorkflow(scenario=SCENARIO, key=onboarding_key(app), update="leave", update_id=eid,
                                   arg=LeaveRequest(last_day=last_day, actor=actor, event_id=eid))]
    return None


def _status(event: MessageReceived, org: OrgContext, settings: RecruitingSettings) -> list[Any] | None:
    if not (event.chat_type == "p2p" or event.mentions_bot):
        return None
    question = status_question(" ".join(event.text.split()), settings.status_key_pattern)
    if question is None or question.locale is None:  # a bare id in a chat is no question to us
        return None
    return [act.StartWorkflow(scenario=SCENARIO, key=message_key("status", event), workflow="recruiting.Status",
                              args=[StatusInput(org=org.id, key=question.key, message_id=event.message_id,
                                                locale=question.locale)], once=True)]


def _bitable(event: BitableRecordChanged, settings: Any) -> list[Any] | None:
    if event.app_token != settings.app_token or event.action == "record_deleted":
        return None
    tables = settings.tables
    if event.table_id == tables.requisitions and event.action == "record_added":
        # the row's id becomes the requisition's 职位编号 (the workflow writes it back)
        return [act.StartWorkflow(scenario=SCENARIO, key=req_key(event.record_id), workflow="recruiting.Requisition",
                                  args=[RequisitionInput(req_id=event.record_id, record_id=event.record_id,
                                                         opened_by=event.operator_open_id, via="bitable")])]
    if event.table_id == tables.applications:
        # field values in the event are keyed by field id: the workflow re-reads the row by its id
        return [act.SignalWithStart(
            scenario=SCENARIO, key=app_key(event.record_id), workflow="recruiting.Application",
            signal="record_changed", arg=RecordChanged(record_id=event.record_id, actor=event.operator_open_id,
                                                       event_id=event.event_id),
            start_args=[ApplicationInput(application_id=event.record_id, record_id=event.record_id, via="bitable",
                                         actor=event.operator_open_id)])]
    return None


def _user_created(event: UserCreated, org: Any) -> list[Any] | None:
    from .config import CONTACT_HASH

    # previous keys' hashes too, so an onboarding record written before a key rotation still matches
    hashes = rules.matching_hashes(event.mobile, event.email, org.keyring(SCENARIO).keys(CONTACT_HASH))
    if not hashes:
        return None
    return [act.StartWorkflow(scenario=SCENARIO, key=f"account:{event.open_id}", workflow="recruiting.MatchAccount",
                              args=[MatchAccountInput(open_id=event.open_id, name=event.name, hashes=hashes,
                                                      event_id=event.event_id)])]


def hire_move(event_type: str, payload: dict[str, Any], settings: Any) -> tuple[str, str] | None:
    """``(hire application id, our stage)`` for a Feishu Hire event payload, None when it maps to nothing."""
    body = payload.get("event", payload) if isinstance(payload.get("event"), dict) else payload
    application = str(body.get("application_id") or "")
    if not application:
        return None
    if event_type == HIRE_EVENTS[0]:
        target = str(body.get("target_stage_id") or body.get("stage_id") or "")
        stage = settings.hire.stage_map.get(target)
        return (application, stage) if stage else None
    status = str(body.get("offer_status") or body.get("status") or "").lower()
    if status in settings.hire.offer_accepted_statuses:
        return application, "accepted"
    if status in settings.hire.offer_declined_statuses:
        return application, "withdrawn"
    return None


def _hire(event: FeishuEvent, settings: Any) -> list[Any] | None:
    moved = hire_move(event.event_type, event.raw, settings)
    if moved is None:
        return None
    application, stage = moved
    application_id = f"hire_{application}"
    return [act.SignalWithStart(
        scenario=SCENARIO, key=app_key(application_id), workflow="recruiting.Application", signal="advance",
        arg=MoveRequest(to=stage, via="hire", event_id=event.event_id),
        start_args=[ApplicationInput(application_id=application_id, via="hire")])]
