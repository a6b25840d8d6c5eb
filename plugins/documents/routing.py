"""Events to actions for documents: pure and fast (Feishu waits for the answer), no I/O here."""

from __future__ import annotations

import json
from typing import Any

from engine.sdk import Action, FeishuEvent, OrgContext

from . import SCENARIO

OPS = ("acknowledge", "submit")


def _card_action(event: Any) -> list[Any] | None:
    from engine.sdk import actions as act

    from .models import AnswerRequest

    value = event.action_value or {}
    op, key, site = value.get("op"), str(value.get("round") or ""), str(value.get("site") or "")
    if value.get("scenario") != SCENARIO or op not in OPS or not key or not site:
        return None
    form = event.form_value or {}
    request = AnswerRequest(op=op, site=site, actor_open_id=event.operator_open_id, event_id=event.event_id,
                            link=str(form.get("link") or "")[:2000])
    return [act.UpdateWorkflow(scenario=SCENARIO, key=key.upper(), update="answer", arg=request,
                               update_id=event.event_id)]


def file_of(event: Any) -> tuple[str, str] | None:
    """``(file_key, file_name)`` of a file message (Feishu: ``{"file_key": ..., "file_name": ...}``)."""
    message = event.raw.get("message") or {}  # ``raw`` is the event body: {"sender", "message"}
    try:
        content = json.loads(message.get("content") or "{}")
    except (TypeError, ValueError):
        return None
    if not isinstance(content, dict) or not content.get("file_key"):
        return None
    return str(content["file_key"]), str(content.get("file_name") or "")


def _file_message(event: Any) -> list[Any] | None:
    from engine.sdk import actions as act

    from .config import ROUND_PATTERN
    from .models import FileNote

    found = file_of(event)
    if found is None:
        return None
    file_key, file_name = found
    named = ROUND_PATTERN.search(file_name)
    if named is None:
        # nothing names the round: say how to (once per message, in the organization's language)
        return [act.Reply(template=f"{SCENARIO}:name_the_round", context={"file_name": file_name},
                          message_id=event.message_id)] if event.chat_type == "p2p" else None
    note = FileNote(sender_open_id=event.sender_open_id, message_id=event.message_id,
                    file_key=file_key, file_name=file_name, sent_at=event.create_time)
    return [act.SignalWorkflow(scenario=SCENARIO, key=named.group(0).rstrip("-").upper(), signal="upload", arg=note)]


def _table_row(event: Any, settings: Any) -> list[Any] | None:
    from engine.sdk import actions as act
    from engine.sdk import cells

    from .config import ROUND_PATTERN
    from .models import RoundInput

    if (event.app_token, event.table_id) != (settings.app_token, settings.rounds_table_id) \
            or event.action != "record_added":
        return None
    after = event.after or {}
    given = cells.text(after.get(settings.fields.round_id) or after.get(settings.field_ids.get("round_id", "")))
    round_id = given.upper() if ROUND_PATTERN.fullmatch(given) else f"DOC-{event.record_id.upper()}"
    start = RoundInput(round_id=round_id, record_id=event.record_id)
    return [act.StartWorkflow(scenario=SCENARIO, key=round_id, workflow="documents.Round", args=[start],
                              once=True)]


def route(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    """The actions for one event: card presses, files naming a round, status questions, rounds-table rows."""
    from engine.sdk import BitableRecordChanged, CardAction, MessageReceived, status_question, status_reply

    if isinstance(event, CardAction):
        return _card_action(event)
    if isinstance(event, BitableRecordChanged):
        return _table_row(event, org.settings(SCENARIO))
    if not isinstance(event, MessageReceived) or not (event.chat_type == "p2p" or event.mentions_bot):
        return None
    if event.message_type == "file":
        return _file_message(event)
    from .config import ROUND_PATTERN

    question = status_question(" ".join(event.text.split()), ROUND_PATTERN)
    if question is None or question.locale is None:
        return None
    return [status_reply(event, scenario=SCENARIO, key=question.key.upper(), template=f"{SCENARIO}:status",
                         missing_template=f"{SCENARIO}:unknown_round", locale=question.locale,
                         context={"now": event.create_time.isoformat()})]
