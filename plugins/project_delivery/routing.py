"""Events to actions for project_delivery: pure and fast (Feishu waits for the answer), no I/O here."""

from __future__ import annotations

from typing import Any

from . import PROJECT_KEY, REGISTRY_KEY, SCENARIO


def _locale(org: Any, region: str) -> str:
    """The language of the site the region names (the organization's when none does): a project's site is
    its region (README.md "Sites")."""
    from engine.sdk import resolve_site_context

    return resolve_site_context(org, SCENARIO, region or None).locale


def _create(parsed: Any, reply_to: str, org: Any, request_key: str, *, event_id: str = "") -> list[Any]:
    """Actions for a parsed request: a reply naming what is missing, the form, or the project's start.

    ``request_key`` is the request's message id (the card event's id for a form), so the same message
    pushed again under a new event id maps to the same project; ``once`` keeps a finished one (closed,
    refused) from being started again. A form (``event_id``) is answered with a toast at once.
    """
    from engine.sdk import actions as act

    from .models import Acknowledge, FormGaps, ProjectInput
    from .rules import project_id_for

    if parsed.request is None:
        locale = _locale(org, "")
        if event_id:  # a form with gaps: a toast names them at once (the form stays to be completed)
            return [_registry(), act.UpdateWorkflow(
                scenario=SCENARIO, key=REGISTRY_KEY, update="form_gaps", update_id=f"gaps:{event_id}",
                arg=FormGaps(missing=parsed.missing, locale=locale))]
        if parsed.empty and reply_to:
            return [act.Reply(template=f"{SCENARIO}:form.card", message_id=reply_to, locale=locale)]
        if not reply_to:
            return []
        return [act.Reply(template=f"{SCENARIO}:missing", context={"missing": parsed.missing},
                          message_id=reply_to, locale=locale)]
    project_id = project_id_for(request_key)
    # the registry first, so it runs (a no-op when it does) before the project asks it for a name
    actions: list[Any] = [
        _registry(),
        act.StartWorkflow(scenario=SCENARIO, key=project_id, workflow="project_delivery.Project",
                          args=[ProjectInput(project_id=project_id, request=parsed.request)], once=True)]
    if event_id:
        actions.append(act.UpdateWorkflow(
            scenario=SCENARIO, key=project_id, update="acknowledge", update_id=f"ack:{event_id}",
            arg=Acknowledge(event_id=event_id, locale=_locale(org, parsed.request.region))))
    return actions


def _registry() -> Any:
    """Start the organization's registry unless it runs (a no-op when it does)."""
    from engine.sdk import actions as act

    from .models import RegistryState

    return act.StartWorkflow(scenario=SCENARIO, key=REGISTRY_KEY, workflow="project_delivery.Registry",
                             args=[RegistryState()])


def _status(event: Any, org: Any) -> list[Any] | None:
    """"@bot <project id> 状态" / "status": the project's stage, next milestone and slips, in the asker's
    language (the question's; a bare id: the organization's)."""
    from engine.sdk import status_question, status_reply

    question = status_question(event.text, PROJECT_KEY)
    if question is None:
        return None
    key = question.key.upper()
    return [status_reply(event, scenario=SCENARIO, key=key, template=f"{SCENARIO}:status",
                         missing_template=f"{SCENARIO}:unknown_project", query="status",
                         locale=question.locale or _locale(org, ""))]


def _message(event: Any, org: Any) -> list[Any] | None:
    from .rules import match_trigger, parse_request

    if not event.mentions_bot and event.chat_type != "p2p":
        return None
    status = _status(event, org)
    if status is not None:
        return status
    if not event.mentions_bot:
        return None
    settings = org.settings(SCENARIO)
    rest = match_trigger(event.text, settings.trigger_words)
    if rest is None:
        return None
    extra = [m.open_id for m in event.mentions if not m.is_bot and m.open_id]
    parsed = parse_request(rest, settings, requester_open_id=event.sender_open_id, chat_id=event.chat_id,
                           message_id=event.message_id, event_id=event.event_id, extra_member_open_ids=extra,
                           via="message")
    return _create(parsed, event.message_id, org, event.message_id)


def _card(event: Any, org: Any) -> list[Any] | None:
    from engine.sdk import actions as act

    from .models import CloseRequest, StageChange

    value = event.action_value or {}
    if value.get("scenario") != SCENARIO:
        return None
    op = value.get("op")
    if op == "create":
        from .rules import request_from_parts

        form = event.form_value or {}
        parsed = request_from_parts(str(form.get("customer") or ""), str(form.get("product") or ""),
                                    str(form.get("region") or ""), org.settings(SCENARIO),
                                    requester_open_id=event.operator_open_id, chat_id=event.open_chat_id,
                                    message_id=event.open_message_id, event_id=event.event_id, via="card")
        if parsed.request is None:
            parsed.empty = False  # a submitted form with gaps names them
        return _create(parsed, event.open_message_id, org, f"card:{event.event_id}", event_id=event.event_id)
    project = str(value.get("project") or "")
    if not project:
        return None
    if op == "stage" and value.get("stage"):
        change = StageChange(stage=str(value["stage"]), operator_open_id=event.operator_open_id,
                             event_id=event.event_id, via="card")
        return [act.UpdateWorkflow(scenario=SCENARIO, key=project, update="set_stage", arg=change,
                                   update_id=event.event_id)]
    if op in ("close", "cancel"):
        request = CloseRequest(cancelled=op == "cancel", operator_open_id=event.operator_open_id,
                               event_id=event.event_id, reason=str(value.get("reason") or op))
        return [act.UpdateWorkflow(scenario=SCENARIO, key=project, update="close", arg=request,
                                   update_id=event.event_id)]
    return None


def route(event: Any, org: Any) -> list[Any] | None:
    """The actions for one event: create requests, status questions, card presses, table edits."""
    from engine.sdk import BitableRecordChanged, CardAction, MessageReceived
    from engine.sdk import actions as act

    if isinstance(event, MessageReceived):
        return _message(event, org)
    if isinstance(event, CardAction):
        return _card(event, org)
    if isinstance(event, BitableRecordChanged):
        table = org.settings(SCENARIO).projects
        if (event.app_token, event.table_id) != (table.app_token, table.table_id):
            return None
        if event.action != "record_edited":
            return None
        from .models import RecordChanged

        # the registry knows which project owns the row (events carry field ids, not our columns)
        return [act.SignalWorkflow(scenario=SCENARIO, key=REGISTRY_KEY, signal="record_changed",
                                   arg=RecordChanged(record_id=event.record_id, event_id=event.event_id,
                                                     operator_open_id=event.operator_open_id))]
    return None


