"""Turn a decrypted Feishu event envelope into the engine's typed events (:mod:`engine.events`).

Webhook and long-connection deliveries both come through here, after lark-oapi has decrypted and
authenticated them. The functions are pure: no I/O, no clock, no lark-oapi import.

Decisions worth knowing:

* ``drive.file.bitable_record_changed_v1`` carries an ``action_list`` that may touch several records
  in one delivery. It becomes one :class:`~engine.events.BitableRecordChanged` per record action, so a
  workflow per record gets exactly its own change. When there is more than one action, each event id
  is the delivery's ``event_id`` suffixed with ``:<index>``; the order of ``action_list`` is part of
  the (re)delivered payload, so the suffixed ids are stable across Feishu's redeliveries and each
  record's dispatch is deduplicated on its own. ``before``/``after`` are keyed by ``field_id`` (the
  payload has no field names) and each ``field_value`` JSON string is decoded when it parses, else
  kept as the string Feishu sent. Re-read the record before acting on it.
* A message's ``text`` is what the person typed, whatever carried it (a text message, or a rich-text
  ``post``: its title and one line per paragraph), with every mention taken out: each
  ``mentions[].key`` (``@_user_1``), ``@_all`` ("@所有人", which has no ``mentions`` entry) and every
  ``at`` element, each with the one space after it. Other message types have no text (``""``).
* v1 events (``approval_instance``, ``approval_task``) are deduplicated on their envelope ``uuid``.
* ``raw`` holds the decrypted ``event`` object, never the envelope: the envelope's header carries the
  verification token, which must not end up in workflow histories or logs.
* An event type this module does not know yields no event (``normalize`` returns ``None``); a known
  type with missing or ill-typed fields raises :class:`MalformedEvent` saying what is wrong.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from engine.events import (
    ApprovalStatusChanged,
    BitableRecordChanged,
    BotAddedToChat,
    CardAction,
    FeishuEvent,
    Mention,
    MessageReceived,
    UserCreated,
    UserDeleted,
)

__all__ = [
    "MalformedEvent",
    "envelope_create_time",
    "envelope_event_id",
    "envelope_event_type",
    "normalize",
    "normalize_all",
]


class MalformedEvent(ValueError):
    """A known event type whose payload lacks a required field or has one of the wrong type."""


# ------------------------------------------------------------------------------------------ helpers


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{where}: expected an object, found {type(value).__name__}")
    return dict(value)


def _optional_mapping(value: Any, where: str) -> dict[str, Any]:
    return {} if value is None else _mapping(value, where)


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A required, non-empty string field."""
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        found = "nothing" if value is None else repr(value)[:60]
        raise MalformedEvent(f"{where}.{key}: expected a non-empty string, found {found}")
    return value


def _opt_string(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"{where}.{key}: expected a string, found {type(value).__name__}")
    return value


def _epoch(value: Any, where: str) -> datetime:
    """Feishu timestamps are strings of seconds, milliseconds or microseconds since the epoch.

    v2 headers use milliseconds, some callbacks microseconds, v1 envelopes fractional seconds; the
    unit is inferred from the magnitude (any of them is within a few centuries of now).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MalformedEvent(f"{where}: expected an epoch timestamp, found {repr(value)[:60]}") from None
    if number != number or number < 0:  # NaN or negative
        raise MalformedEvent(f"{where}: expected an epoch timestamp, found {repr(value)[:60]}")
    for divisor in (1e9, 1e6, 1e3):  # ns, µs, ms
        if number >= divisor * 1e8:
            number /= divisor
            break
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedEvent(f"{where}: timestamp {repr(value)[:60]} is out of range") from None


def _user_ids(value: Any, where: str) -> tuple[str, str | None]:
    """(open_id, user_id) of a Feishu ``user_id`` object (``{open_id, user_id, union_id}``)."""
    ids = _optional_mapping(value, where)
    return (_opt_string(ids, "open_id", where) or "", _opt_string(ids, "user_id", where))


# ------------------------------------------------------------------------------- envelope access


def envelope_event_type(body: Mapping[str, Any]) -> str | None:
    """The event type of a decrypted envelope: v2 ``header.event_type``, v1 ``event.type``."""
    header = body.get("header")
    if body.get("schema") is not None and isinstance(header, Mapping):
        value = header.get("event_type")
        return value if isinstance(value, str) and value else None
    event = body.get("event")
    if body.get("uuid") is not None and isinstance(event, Mapping):
        value = event.get("type")
        return value if isinstance(value, str) and value else None
    value = body.get("type")
    return value if isinstance(value, str) and value else None


def envelope_event_id(body: Mapping[str, Any]) -> str | None:
    """Feishu's dedupe key of a delivery: v2 ``header.event_id``, v1 ``uuid``."""
    header = body.get("header")
    if isinstance(header, Mapping) and isinstance(header.get("event_id"), str):
        return header["event_id"] or None
    value = body.get("uuid")
    return value if isinstance(value, str) and value else None


def envelope_create_time(body: Mapping[str, Any]) -> datetime | None:
    """When Feishu created the event (v2 ``header.create_time``, v1 ``ts``); ``None`` if absent.

    Raises :class:`MalformedEvent` if it is present but not a timestamp.
    """
    header = body.get("header")
    if isinstance(header, Mapping) and header.get("create_time") not in (None, ""):
        return _epoch(header["create_time"], "header.create_time")
    if body.get("ts") not in (None, ""):
        return _epoch(body["ts"], "ts")
    return None


def _v2_base(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Common fields of a v2 envelope, and its ``event`` object."""
    header = _mapping(body.get("header"), "header")
    event = _mapping(body.get("event"), "event")
    if header.get("create_time") in (None, ""):
        raise MalformedEvent("header.create_time: expected an epoch timestamp, found nothing")
    base = {
        "event_id": _string(header, "event_id", "header"),
        "event_type": _string(header, "event_type", "header"),
        "app_id": _opt_string(header, "app_id", "header") or "",
        "tenant_key": _opt_string(header, "tenant_key", "header") or "",
        "create_time": _epoch(header["create_time"], "header.create_time"),
        "raw": event,
    }
    return base, event


# ------------------------------------------------------------------------------------ per type


# What stands for a mention in a message's text: each ``mentions[].key`` (``@_user_1``) and ``@_all``,
# which "@所有人" writes into the text without a ``mentions`` entry (FEISHU_NOTES.md).
ALL_KEY = "@_all"


class _Mention:
    """Where a mention was: it is dropped, with one space after it (the one Feishu's editor puts there)."""


_MENTION = _Mention()
Piece = str | _Mention


def _mention_pattern(keys: list[str]) -> re.Pattern[str]:
    # Longest first and with a digit look-ahead, so "@_user_1" never eats the start of "@_user_10".
    alternatives = sorted({k for k in [*keys, ALL_KEY] if k}, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(k) for k in alternatives) + r")(?!\d)")


def _split_mentions(text: str, pattern: re.Pattern[str]) -> list[Piece]:
    """``"a @_user_1 b"`` → ``["a ", _MENTION, " b"]``."""
    pieces: list[Piece] = []
    for index, part in enumerate(pattern.split(text)):
        if index % 2:  # the split's captured group: a mention key
            pieces.append(_MENTION)
        elif part:
            pieces.append(part)
    return pieces


def _join(pieces: list[Piece]) -> str:
    """The text without its mentions, each taking one following space with it."""
    out: list[str] = []
    after_mention = False
    for piece in pieces:
        if isinstance(piece, _Mention):
            after_mention = True
            continue
        if after_mention and piece.startswith(" "):
            piece = piece[1:]
        after_mention = False
        out.append(piece)
    return "".join(out)


def _post_element(element: Any, pattern: re.Pattern[str]) -> list[Piece]:
    """One rich-text element's share of the text.

    ``at`` is a mention; ``a`` is its text (its address if it has none); every other element holding a
    ``text`` string (``text``, ``md``, ``code_block``, and any tag Feishu adds) is user input, kept as
    typed; ``img``, ``media``, ``emotion`` and ``hr`` hold no text.
    """
    if not isinstance(element, Mapping):
        return []
    tag = element.get("tag")
    if tag == "at":
        return [_MENTION]
    text = element.get("text")
    if tag == "a" and not (isinstance(text, str) and text):
        text = element.get("href")
    return _split_mentions(text, pattern) if isinstance(text, str) else []


def _message_text(message_type: str, content: Mapping[str, Any], mention_keys: list[str]) -> str:
    """What the person typed in a text or rich-text (``post``) message, without any mention.

    A post's title is the first line and each paragraph one line. Other message types (image, file,
    sticker, ...) have no text: ``""``.
    """
    pattern = _mention_pattern(mention_keys)
    if message_type == "text":
        text = content.get("text", "")
        return _join(_split_mentions(text, pattern)).strip() if isinstance(text, str) else ""
    if message_type != "post":
        return ""
    # Received posts are {"title", "content": [[element, ...], ...]}; sent ones may be wrapped in a
    # locale key ({"zh_cn": {...}}).
    post: Any = content
    if "content" not in post and len(post) == 1:
        post = next(iter(post.values()))
    if not isinstance(post, Mapping):
        return ""
    lines = []
    title = post.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(_join(_split_mentions(title.strip(), pattern)))
    paragraphs = post.get("content")
    for paragraph in paragraphs if isinstance(paragraphs, list) else []:
        if isinstance(paragraph, list):
            lines.append(_join([piece for element in paragraph for piece in _post_element(element, pattern)]))
    return "\n".join(lines).strip()


def _message_received(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    base, event = _v2_base(body)
    message = _mapping(event.get("message"), "event.message")
    sender = _optional_mapping(event.get("sender"), "event.sender")
    sender_open_id, sender_user_id = _user_ids(sender.get("sender_id"), "event.sender.sender_id")
    message_type = _opt_string(message, "message_type", "event.message") or "text"

    raw_content = message.get("content")
    if raw_content in (None, ""):
        content: Any = {}
    elif isinstance(raw_content, str):
        try:
            content = json.loads(raw_content)
        except json.JSONDecodeError:
            raise MalformedEvent("event.message.content: expected a JSON string, found unparsable text") from None
    else:
        raise MalformedEvent(f"event.message.content: expected a JSON string, found {type(raw_content).__name__}")
    if not isinstance(content, Mapping):
        raise MalformedEvent(f"event.message.content: expected a JSON object, found {type(content).__name__}")

    mentions = []
    for index, item in enumerate(message.get("mentions") or []):
        where = f"event.message.mentions[{index}]"
        item = _mapping(item, where)
        open_id, user_id = _user_ids(item.get("id"), f"{where}.id")
        is_bot = item.get("mentioned_type") == "bot" or (bool(bot_open_id) and open_id == bot_open_id)
        mentions.append(Mention(key=_opt_string(item, "key", where) or "", open_id=open_id, user_id=user_id,
                                name=_opt_string(item, "name", where) or "", is_bot=is_bot))
    # With our own open_id known, only a mention of *this* bot counts: another bot mentioned in the same
    # group is also "mentioned_type: bot". Without it, any bot mention is the best evidence there is.
    mentions_bot = any(m.open_id == bot_open_id if bot_open_id else m.is_bot for m in mentions)

    text = _message_text(message_type, content, [m.key for m in mentions])
    return [MessageReceived(
        **base,
        message_id=_string(message, "message_id", "event.message"),
        chat_id=_string(message, "chat_id", "event.message"),
        chat_type=_opt_string(message, "chat_type", "event.message") or "p2p",
        message_type=message_type,
        text=text,
        sender_open_id=sender_open_id,
        sender_user_id=sender_user_id,
        mentions=mentions,
        mentions_bot=mentions_bot,
        root_id=_opt_string(message, "root_id", "event.message"),
        parent_id=_opt_string(message, "parent_id", "event.message"),
    )]


def _card_action(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    base, event = _v2_base(body)
    operator = _optional_mapping(event.get("operator"), "event.operator")
    action = _mapping(event.get("action"), "event.action")
    context = _optional_mapping(event.get("context"), "event.context")

    value = action.get("value")
    if isinstance(value, str):
        # Old-style (JSON 1.0) buttons could carry a string value; keep it reachable as an object.
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            decoded = None
        value = decoded if isinstance(decoded, Mapping) else {"value": value}
    elif value is None:
        value = {}
    elif not isinstance(value, Mapping):
        raise MalformedEvent(f"event.action.value: expected an object, found {type(value).__name__}")
    form_value = action.get("form_value")
    if form_value is not None and not isinstance(form_value, Mapping):
        raise MalformedEvent(f"event.action.form_value: expected an object, found {type(form_value).__name__}")

    return [CardAction(
        **base,
        operator_open_id=_opt_string(operator, "open_id", "event.operator") or "",
        operator_user_id=_opt_string(operator, "user_id", "event.operator"),
        action_tag=_opt_string(action, "tag", "event.action") or "",
        action_value=dict(value),
        form_value=dict(form_value) if form_value is not None else None,
        open_message_id=_opt_string(context, "open_message_id", "event.context") or "",
        open_chat_id=_opt_string(context, "open_chat_id", "event.context") or "",
        token=_opt_string(event, "token", "event") or "",
    )]


def _field_values(items: Any, where: str) -> dict[str, Any]:
    """``[{field_id, field_value: "<json>"}]`` → ``{field_id: decoded value}``."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise MalformedEvent(f"{where}: expected a list, found {type(items).__name__}")
    values: dict[str, Any] = {}
    for index, item in enumerate(items):
        item = _mapping(item, f"{where}[{index}]")
        field_id = _string(item, "field_id", f"{where}[{index}]")
        value = item.get("field_value")
        if isinstance(value, str):
            # Some field kinds arrive as bare text: then keep exactly what Feishu sent.
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        values[field_id] = value
    return values


def _bitable_record_changed(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    base, event = _v2_base(body)
    app_token = _string(event, "file_token", "event")
    table_id = _string(event, "table_id", "event")
    operator_open_id, _ = _user_ids(event.get("operator_id"), "event.operator_id")
    actions = event.get("action_list")
    if not isinstance(actions, list):
        raise MalformedEvent(f"event.action_list: expected a list, found {type(actions).__name__}")

    events: list[FeishuEvent] = []
    for index, item in enumerate(actions):
        where = f"event.action_list[{index}]"
        item = _mapping(item, where)
        fields = dict(base)
        if len(actions) > 1:
            fields["event_id"] = f"{base['event_id']}:{index}"
        events.append(BitableRecordChanged(
            **fields,
            app_token=app_token,
            table_id=table_id,
            record_id=_string(item, "record_id", where),
            action=_string(item, "action", where),
            before=_field_values(item.get("before_value"), f"{where}.before_value"),
            after=_field_values(item.get("after_value"), f"{where}.after_value"),
            operator_open_id=operator_open_id,
        ))
    return events


def _bot_added(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    base, event = _v2_base(body)
    operator_open_id, _ = _user_ids(event.get("operator_id"), "event.operator_id")
    return [BotAddedToChat(
        **base,
        chat_id=_string(event, "chat_id", "event"),
        chat_name=_opt_string(event, "name", "event") or "",
        operator_open_id=operator_open_id,
    )]


def _user_created(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    base, event = _v2_base(body)
    user = _mapping(event.get("object"), "event.object")
    departments = user.get("department_ids") or []
    if not isinstance(departments, list) or not all(isinstance(d, str) for d in departments):
        raise MalformedEvent("event.object.department_ids: expected a list of strings")
    return [UserCreated(
        **base,
        open_id=_string(user, "open_id", "event.object"),
        user_id=_opt_string(user, "user_id", "event.object"),
        name=_opt_string(user, "name", "event.object") or "",
        email=_opt_string(user, "email", "event.object"),
        mobile=_opt_string(user, "mobile", "event.object"),
        employee_no=_opt_string(user, "employee_no", "event.object"),
        department_ids=list(departments),
    )]


def _user_deleted(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    """``contact.user.deleted_v3``: ``event.object`` is the user as it was, ``event.old_object`` holds its
    ``department_ids`` (and ``open_id``) before the removal."""
    base, event = _v2_base(body)
    user = _mapping(event.get("object"), "event.object")
    old = event.get("old_object")
    old = _mapping(old, "event.old_object") if old is not None else {}
    departments = old.get("department_ids") or user.get("department_ids") or []
    if not isinstance(departments, list) or not all(isinstance(d, str) for d in departments):
        raise MalformedEvent("event.old_object.department_ids: expected a list of strings")
    return [UserDeleted(
        **base,
        open_id=_string(user, "open_id", "event.object"),
        user_id=_opt_string(user, "user_id", "event.object"),
        name=_opt_string(user, "name", "event.object") or "",
        department_ids=list(departments),
    )]


def _approval_instance(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    """A v1 envelope: ``{uuid, ts, token, type: "event_callback", event: {type: "approval_instance"}}``.

    ``approval_task`` (a task approved, rejected, transferred, rolled back...) arrives in the same envelope
    with ``task_id`` and the task's status: it becomes the same event, so the instance's follower re-reads
    it. A transfer sends only task events (the instance stays PENDING), and the follower learns of the new
    approver at once instead of at its next periodic read.
    """
    event = _mapping(body.get("event"), "event")
    event_type = _string(event, "type", "event")
    if body.get("ts") not in (None, ""):
        created = _epoch(body["ts"], "ts")
    elif event.get("operate_time") not in (None, ""):
        created = _epoch(event["operate_time"], "event.operate_time")
    else:
        raise MalformedEvent("ts: expected an epoch timestamp, found nothing")
    return [ApprovalStatusChanged(
        event_id=_string(body, "uuid", "(envelope)"),
        event_type=event_type,
        task_id=_opt_string(event, "task_id", "event") or "",
        app_id=_opt_string(event, "app_id", "event") or "",
        tenant_key=_opt_string(event, "tenant_key", "event") or "",
        create_time=created,
        raw=event,
        approval_code=_string(event, "approval_code", "event"),
        instance_code=_string(event, "instance_code", "event"),
        status=_string(event, "status", "event"),
    )]


def _hire_event(body: Mapping[str, Any], bot_open_id: str | None) -> list[FeishuEvent]:
    """Feishu Hire events: the generic model, with the event object in ``raw`` for the scenario.

    Hire payloads carry only ids and a target status; the recruiting scenario reads what it needs
    (application id, stage or offer status) from ``raw`` and re-reads the rest.
    """
    base, event = _v2_base(body)
    if not event:
        raise MalformedEvent("event: expected a Hire event object, found nothing")
    return [FeishuEvent(**base)]


_NORMALIZERS: dict[str, Callable[[Mapping[str, Any], str | None], list[FeishuEvent]]] = {
    "im.message.receive_v1": _message_received,
    "card.action.trigger": _card_action,
    "drive.file.bitable_record_changed_v1": _bitable_record_changed,
    "im.chat.member.bot.added_v1": _bot_added,
    "contact.user.created_v3": _user_created,
    "contact.user.deleted_v3": _user_deleted,
    "approval_instance": _approval_instance,
    "approval_task": _approval_instance,
    "hire.application.stage_changed_v1": _hire_event,
    "hire.offer.status_changed_v1": _hire_event,
}

V1_EVENT_TYPES: tuple[str, ...] = ("approval_instance", "approval_task")
"""The v1 event types this module normalizes."""
V2_EVENT_TYPES: tuple[str, ...] = tuple(t for t in _NORMALIZERS if t not in V1_EVENT_TYPES)
"""The v2 event types this module normalizes (``card.action.trigger`` is a callback, among them)."""


# --------------------------------------------------------------------------------------- public


def normalize_all(body: Mapping[str, Any], *, bot_open_id: str | None) -> list[FeishuEvent]:
    """Every typed event in one decrypted delivery (several for a multi-record Bitable change).

    Returns ``[]`` for an event type the engine does not handle (and for a Bitable change with an
    empty ``action_list``). Raises :class:`MalformedEvent` for a known type with a broken payload.
    """
    if not isinstance(body, Mapping):
        raise MalformedEvent(f"(envelope): expected an object, found {type(body).__name__}")
    event_type = envelope_event_type(body)
    is_v1 = body.get("schema") is None
    if event_type is None:
        return []
    # A v2 type in a v1 envelope (or the reverse) is not something we subscribed to: ignore it.
    if (event_type in V1_EVENT_TYPES) != is_v1:
        return []
    handler = _NORMALIZERS.get(event_type)
    if handler is None:
        return []
    return handler(body, bot_open_id)


def normalize(body: Mapping[str, Any], *, bot_open_id: str | None) -> FeishuEvent | None:
    """The typed event of one decrypted delivery, ``None`` for an event type the engine ignores.

    A Bitable change touching several records holds several events: this raises ``ValueError`` for
    it rather than silently dropping records, so use :func:`normalize_all` wherever that can arrive.
    """
    events = normalize_all(body, bot_open_id=bot_open_id)
    if not events:
        return None
    if len(events) > 1:
        raise ValueError(f"the delivery holds {len(events)} events; use normalize_all()")
    return events[0]
