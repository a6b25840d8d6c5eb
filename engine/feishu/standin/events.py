"""Builders for the event bodies Feishu pushes, shaped like the real ones.

Each ``*_event`` function returns the ``event`` object of a v2 event (pass it to
``FeishuStandIn.deliver_event`` with the matching ``event_type``); :func:`envelope_v2` and
:func:`envelope_v1` wrap an event the way Feishu does. The ``EVENT_*`` constants name the event types.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from .state import field_id, new_id, now_ms, stable_id

EVENT_MESSAGE = "im.message.receive_v1"
EVENT_BOT_ADDED = "im.chat.member.bot.added_v1"
EVENT_USER_CREATED = "contact.user.created_v3"
EVENT_USER_DELETED = "contact.user.deleted_v3"
EVENT_BITABLE_RECORD_CHANGED = "drive.file.bitable_record_changed_v1"
EVENT_CARD_ACTION = "card.action.trigger"
EVENT_APPROVAL = "approval_instance"  # a v1 event
EVENT_APPROVAL_TASK = "approval_task"  # a v1 event: one task's status (a transfer sends only these)


def user_ids(open_id: str, user_id: str | None = None) -> dict[str, str]:
    """The ``{"open_id", "union_id", "user_id"}`` triple Feishu puts wherever it names a user."""
    return {"open_id": open_id, "union_id": stable_id("on_", open_id),
            "user_id": user_id if user_id is not None else stable_id("", open_id, length=8)}


def envelope_v2(event_type: str, event: dict[str, Any], *, app_id: str, tenant_key: str,
                token: str | None, event_id: str | None = None, create_time_ms: int | None = None
                ) -> dict[str, Any]:
    """``{"schema": "2.0", "header": {...}, "event": {...}}``: the v2 event envelope."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id or uuid.uuid4().hex,
            "token": token or "",
            "create_time": str(create_time_ms if create_time_ms is not None else now_ms()),
            "event_type": event_type,
            "tenant_key": tenant_key,
            "app_id": app_id,
        },
        "event": event,
    }


def envelope_v1(event_type: str, event: dict[str, Any], *, app_id: str, tenant_key: str,
                token: str | None, event_id: str | None = None, ts: float | None = None) -> dict[str, Any]:
    """The older v1 callback shape (approvals still use it): ``uuid``/``token``/``ts``/``event.type``."""
    return {
        "uuid": event_id or uuid.uuid4().hex,
        "token": token or "",
        "ts": f"{ts if ts is not None else time.time():.7f}",
        "type": "event_callback",
        "event": {"app_id": app_id, "tenant_key": tenant_key, **event, "type": event_type},
    }


def message_event(text: str, chat_id: str, sender_open_id: str, *, mentions_bot: bool = True,
                  chat_type: str = "group", bot_open_id: str = "ou_bot_standin", bot_name: str = "Stand-in Bot",
                  tenant_key: str = "t_standin", message_id: str | None = None, root_id: str = "",
                  parent_id: str = "", sender_user_id: str | None = None) -> dict[str, Any]:
    """An ``im.message.receive_v1`` event: a user's text message, @-mentioning the bot when asked.

    Feishu writes a mention into the text as a placeholder key (``@_user_1``) and lists who it is in
    ``message.mentions``; the ``content`` field is itself a JSON string.
    """
    mentions: list[dict[str, Any]] = []
    body = text
    if mentions_bot:
        body = f"@_user_1 {text}"
        mentions.append({"key": "@_user_1", "id": user_ids(bot_open_id, ""), "name": bot_name,
                         "tenant_key": tenant_key})
    created = str(now_ms())
    return {
        "sender": {"sender_id": user_ids(sender_open_id, sender_user_id), "sender_type": "user",
                   "tenant_key": tenant_key},
        "message": {
            "message_id": message_id or new_id("om_"),
            "root_id": root_id,
            "parent_id": parent_id,
            "create_time": created,
            "update_time": created,
            "chat_id": chat_id,
            "thread_id": "",
            "chat_type": chat_type,
            "message_type": "text",
            "content": json.dumps({"text": body}, ensure_ascii=False),
            "mentions": mentions,
            "user_agent": "Mozilla/5.0 (Macintosh) Lark/7.30.0 (stand-in)",
        },
    }


def file_message_event(file_key: str, file_name: str, chat_id: str, sender_open_id: str, *,
                       chat_type: str = "p2p", **kwargs: Any) -> dict[str, Any]:
    """An ``im.message.receive_v1`` event of a file a user sent: ``message_type`` "file", content
    ``{"file_key", "file_name"}`` (a file message has no text and mentions no one)."""
    event = message_event("", chat_id, sender_open_id, mentions_bot=False, chat_type=chat_type, **kwargs)
    event["message"]["message_type"] = "file"
    event["message"]["content"] = json.dumps({"file_key": file_key, "file_name": file_name}, ensure_ascii=False)
    return event


def bitable_record_changed(app_token: str, table_id: str, record_id: str, *, operator_open_id: str,
                           action: str = "record_edited", before: dict[str, Any] | None = None,
                           after: dict[str, Any] | None = None, revision: int = 1,
                           subscriber_open_ids: list[str] | None = None) -> dict[str, Any]:
    """A ``drive.file.bitable_record_changed_v1`` event.

    ``action`` is ``record_added``, ``record_edited`` or ``record_deleted``. Feishu identifies fields by id
    and encodes each ``field_value`` as a JSON string, so consumers should re-read the record; field ids
    here come from :func:`~engine.feishu.standin.state.field_id`.
    """

    def values(fields: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [{"field_id": field_id(name), "field_value": json.dumps(value, ensure_ascii=False)}
                for name, value in (fields or {}).items()]

    return {
        "file_type": "bitable",
        "file_token": app_token,
        "table_id": table_id,
        "revision": revision,
        "operator_id": user_ids(operator_open_id),
        "action_list": [{"record_id": record_id, "action": action,
                         "before_value": values(before), "after_value": values(after)}],
        "subscriber_id_list": [user_ids(o) for o in (subscriber_open_ids or [])],
        "update_time": int(time.time()),
    }


def bot_added(chat_id: str, operator_open_id: str, *, name: str = "", tenant_key: str = "t_standin",
              external: bool = False) -> dict[str, Any]:
    """An ``im.chat.member.bot.added_v1`` event: someone added the bot to a group."""
    return {"chat_id": chat_id, "operator_id": user_ids(operator_open_id), "external": external,
            "operator_tenant_key": tenant_key, "name": name, "i18n_names": {"zh_cn": name, "en_us": name}}


def user_created(open_id: str, name: str, *, email: str = "", mobile: str = "", user_id: str | None = None,
                 department_ids: list[str] | None = None) -> dict[str, Any]:
    """A ``contact.user.created_v3`` event for a new employee."""
    ids = user_ids(open_id, user_id)
    return {"object": {**ids, "name": name, "en_name": name, "email": email, "mobile": mobile,
                       "department_ids": department_ids or [], "status": {"is_activated": True,
                                                                          "is_frozen": False,
                                                                          "is_resigned": False}}}


def user_deleted(open_id: str, name: str, *, user_id: str | None = None,
                 department_ids: list[str] | None = None) -> dict[str, Any]:
    """A ``contact.user.deleted_v3`` event: the account as it was, and its departments before removal."""
    ids = user_ids(open_id, user_id)
    departments = list(department_ids or [])
    return {"object": {**ids, "name": name, "en_name": name, "department_ids": departments,
                       "status": {"is_activated": False, "is_frozen": False, "is_resigned": True}},
            "old_object": {"open_id": open_id, "department_ids": departments}}


def card_action_event(value: dict[str, Any], operator_open_id: str, message_id: str, chat_id: str, *,
                      form_value: dict[str, Any] | None = None, tag: str = "button", name: str | None = None,
                      tenant_key: str = "t_standin", input_value: str | None = None,
                      option: str | None = None) -> dict[str, Any]:
    """The ``event`` of a ``card.action.trigger`` callback: who pressed what on which card."""
    action: dict[str, Any] = {"value": value, "tag": tag}
    if form_value is not None:
        action["form_value"] = form_value
    if name is not None:
        action["name"] = name
    if input_value is not None:
        action["input_value"] = input_value
    if option is not None:
        action["option"] = option
    return {
        "operator": {"tenant_key": tenant_key, **user_ids(operator_open_id)},
        "token": new_id("c-", 32),  # the card's update token (valid 30 min for delayed updates)
        "action": action,
        "host": "im_message",
        "delivery_type": "",
        "context": {"open_message_id": message_id, "open_chat_id": chat_id},
    }


def approval_instance_event(approval_code: str, instance_code: str, status: str, *,
                            operate_time_ms: int | None = None) -> dict[str, Any]:
    """The inner ``event`` of a v1 ``approval_instance`` callback (``status``: PENDING/APPROVED/REJECTED/…)."""
    return {"approval_code": approval_code, "instance_code": instance_code, "status": status,
            "operate_time": str(operate_time_ms if operate_time_ms is not None else now_ms())}


def approval_task_event(approval_code: str, instance_code: str, task: dict[str, Any]) -> dict[str, Any]:
    """The inner ``event`` of a v1 ``approval_task`` callback for one task of ``task_list``
    (``status``: PENDING/APPROVED/REJECTED/TRANSFERRED/DONE…)."""
    return {"approval_code": approval_code, "instance_code": instance_code, "task_id": task.get("id", ""),
            "open_id": task.get("open_id", ""), "user_id": task.get("user_id", ""), "status": task.get("status", ""),
            "operate_time": str(now_ms())}


def approval_v1(approval_code: str, instance_code: str, status: str, *, app_id: str, tenant_key: str,
                token: str | None, event_id: str | None = None) -> dict[str, Any]:
    """A complete v1 approval callback body (``{"uuid", "token", "ts", "type": "event_callback", ...}``)."""
    return envelope_v1(EVENT_APPROVAL, approval_instance_event(approval_code, instance_code, status),
                       app_id=app_id, tenant_key=tenant_key, token=token, event_id=event_id)
