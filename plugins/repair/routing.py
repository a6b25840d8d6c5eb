"""Events to actions for repair: pure and fast (Feishu waits for the answer), no I/O here."""

from __future__ import annotations

from typing import Any

from engine.sdk import Action, FeishuEvent, OrgContext

from . import SCENARIO


def _card_action(event: Any) -> list[Any] | None:
    from engine.sdk import actions as act

    from .models import ActRequest
    from .rules import REPORTER_OPS, TECHNICIAN_OPS

    value = event.action_value or {}
    op, ticket = value.get("op"), str(value.get("ticket") or "")
    if value.get("scenario") != SCENARIO or op not in (*TECHNICIAN_OPS, *REPORTER_OPS) or not ticket:
        return None
    form = event.form_value or {}
    score = value.get("score")
    request = ActRequest(op=op, actor_open_id=event.operator_open_id, event_id=event.event_id,
                         score=int(score) if str(score or "").isdigit() else None,
                         comment=str(form.get("comment") or "")[:500])
    return [act.UpdateWorkflow(scenario=SCENARIO, key=ticket, update="act", arg=request, update_id=event.event_id)]


def _report_text(text: str, words: list[str]) -> str | None:
    """The fault described after a report word ("报修 3楼护士站打印机卡纸"), or None when it is no report."""
    for word in sorted(words, key=len, reverse=True):
        if text.lower().startswith(word.lower()):
            return text[len(word):].strip(" :：,，")
    return None


def _photos(event: Any) -> list[str]:
    """Image keys of an image message or of a rich-text (post) message's images."""
    import json

    message = event.raw.get("message") or {}  # ``raw`` is the event object: {"sender", "message"}
    try:
        content = json.loads(message.get("content") or "{}")
    except (TypeError, ValueError):
        return []
    if isinstance(content, dict) and content.get("image_key"):
        return [str(content["image_key"])]
    found: list[str] = []
    for paragraph in content.get("content") or [] if isinstance(content, dict) else []:
        for element in paragraph if isinstance(paragraph, list) else []:
            if isinstance(element, dict) and element.get("tag") == "img" and element.get("image_key"):
                found.append(str(element["image_key"]))
    return found


def _report(event: Any, org: Any, text: str) -> list[Any]:
    from engine.sdk import actions as act
    from engine.sdk import message_key, question_locale

    from .models import TicketInput
    from .rules import asset_in_text, ticket_number

    # the same message pushed again under a new event id gets the same number, and starts nothing twice
    number = ticket_number(org.id, "message", message_key("report", event), event.create_time.astimezone(org.zone))
    ticket = TicketInput(ticket_id=number, source="message", text=text, reporter_open_id=event.sender_open_id,
                         reporter_locale=question_locale(event.text), message_id=event.message_id,
                         chat_id=event.chat_id, photos=_photos(event), reported_at=event.create_time,
                         asset_id=asset_in_text(text, org.settings(SCENARIO).asset_id_pattern))
    return [act.StartWorkflow(scenario=SCENARIO, key=number, workflow="repair.Ticket", args=[ticket], once=True)]


DAMAGE_REPORTED = ".asset.damaged"
"""The end of an engine event type by which another scenario reports an asset damaged (``asset_loan``)."""


def _damage_reported(event: Any, org: Any) -> list[Any] | None:
    """A ticket for an asset another scenario found damaged (a keeper marked a loaned item 损坏)."""
    from engine.sdk import actions as act

    from .models import TicketInput
    from .rules import ticket_number

    payload = event.payload
    asset_id = str(payload.get("asset_id") or "").strip()
    if not asset_id:
        return None
    described = " ".join(str(payload.get(k) or "").strip() for k in ("name", "text")).strip()
    number = ticket_number(org.id, "event", event.event_id, event.create_time.astimezone(org.zone))
    ticket = TicketInput(ticket_id=number, source="event", text=described or asset_id, asset_id=asset_id,
                         reporter_open_id=str(payload.get("reporter_open_id") or ""),
                         site=str(payload.get("site") or ""), location=str(payload.get("location") or ""),
                         reported_at=event.create_time)
    return [act.StartWorkflow(scenario=SCENARIO, key=number, workflow="repair.Ticket", args=[ticket], once=True)]


def route(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    """The actions for one event: reports by message, table row or another scenario's event, card presses,
    status questions."""
    from engine.sdk import BitableRecordChanged, CardAction, EngineEvent, MessageReceived, status_question, status_reply
    from engine.sdk import actions as act

    if isinstance(event, CardAction):
        return _card_action(event)
    if isinstance(event, EngineEvent):
        return _damage_reported(event, org) if event.event_type.endswith(DAMAGE_REPORTED) else None
    settings = org.settings(SCENARIO)
    if isinstance(event, BitableRecordChanged):
        if (event.app_token, event.table_id) != (settings.app_token, settings.tickets_table_id) \
                or event.action != "record_added" or event.after.get(settings.fields.ticket):
            return None  # only a row added by hand opens a ticket (the workflow re-reads it)
        from .models import TicketInput
        from .rules import ticket_number

        number = ticket_number(org.id, "table", event.record_id, event.create_time.astimezone(org.zone))
        ticket = TicketInput(ticket_id=number, source="table", record_id=event.record_id,
                             reported_at=event.create_time)
        return [act.StartWorkflow(scenario=SCENARIO, key=number, workflow="repair.Ticket", args=[ticket], once=True)]
    if not isinstance(event, MessageReceived) or not (event.chat_type == "p2p" or event.mentions_bot):
        return None
    from .config import TICKET_PATTERN

    text = " ".join(event.text.split())
    question = status_question(text, TICKET_PATTERN)
    if question is not None and question.locale is not None:
        key = question.key.upper()
        return [status_reply(event, scenario=SCENARIO, key=key, template=f"{SCENARIO}:status",
                             missing_template=f"{SCENARIO}:unknown_ticket", locale=question.locale,
                             context={"now": event.create_time.isoformat()})]
    described = _report_text(text, settings.report_words)
    if described is not None:
        return _report(event, org, described)
    if event.chat_type == "p2p" and event.message_type == "image":
        return _report(event, org, "")  # a photo sent to the bot is a report too
    return None


