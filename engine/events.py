"""Typed, normalized Feishu events: what the ingress hands to the router and plugins.

Webhook and long-connection deliveries both end up as one of these models. ``raw`` keeps the decrypted
event body for the rare field a scenario needs and the model does not carry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class FeishuEvent(BaseModel):
    """Fields every event has. ``event_id`` is Feishu's dedupe key (``uuid`` for v1 events)."""

    event_id: str
    event_type: str
    app_id: str = ""
    tenant_key: str = ""
    create_time: datetime
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class Mention(BaseModel):
    key: str = ""
    open_id: str = ""
    user_id: str | None = None
    name: str = ""
    is_bot: bool = False


class MessageReceived(FeishuEvent):
    """``im.message.receive_v1``: ``text`` is what the person typed (text or ``post``), without any mention."""

    message_id: str
    chat_id: str
    chat_type: Literal["p2p", "group"] | str = "p2p"
    message_type: str = "text"
    text: str = ""
    sender_open_id: str = ""
    sender_user_id: str | None = None
    mentions: list[Mention] = Field(default_factory=list)
    mentions_bot: bool = False
    root_id: str | None = None
    parent_id: str | None = None


class CardAction(FeishuEvent):
    """``card.action.trigger``: a button press or form submission on an interactive card."""

    operator_open_id: str = ""
    operator_user_id: str | None = None
    action_tag: str = ""
    action_value: dict[str, Any] = Field(default_factory=dict)
    form_value: dict[str, Any] | None = None
    open_message_id: str = ""
    open_chat_id: str = ""
    token: str = ""


class BitableRecordChanged(FeishuEvent):
    """``drive.file.bitable_record_changed_v1`` (one event per record action).

    ``before``/``after`` are field name → value as Feishu sent them; re-read the record before acting.
    """

    app_token: str
    table_id: str
    record_id: str
    action: Literal["record_added", "record_edited", "record_deleted"] | str
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    operator_open_id: str = ""


class BotAddedToChat(FeishuEvent):
    """``im.chat.member.bot.added_v1``."""

    chat_id: str
    chat_name: str = ""
    operator_open_id: str = ""


class ApprovalStatusChanged(FeishuEvent):
    """A v1 ``approval_instance`` event, or ``approval_task`` (``task_id`` set, ``status`` the task's):
    re-fetch the instance before acting on it."""

    approval_code: str
    instance_code: str
    status: str
    task_id: str = ""


class UserCreated(FeishuEvent):
    """``contact.user.created_v3``: a new account in the organization's directory."""

    open_id: str
    user_id: str | None = None
    name: str = ""
    email: str | None = None
    mobile: str | None = None
    employee_no: str | None = None
    department_ids: list[str] = Field(default_factory=list)


class UserDeleted(FeishuEvent):
    """``contact.user.deleted_v3``: an account removed from the directory (someone who left).

    ``department_ids`` are the departments the person was in (the event's ``old_object``, else its
    ``object``); the user can no longer be looked up afterwards."""

    open_id: str
    user_id: str | None = None
    name: str = ""
    department_ids: list[str] = Field(default_factory=list)


class EngineEvent(FeishuEvent):
    """An event the engine itself raises (e.g. from the command line or a test), not from Feishu."""

    payload: dict[str, Any] = Field(default_factory=dict)


KNOWN_EVENT_TYPES: dict[str, type[FeishuEvent]] = {
    "im.message.receive_v1": MessageReceived,
    "card.action.trigger": CardAction,
    "drive.file.bitable_record_changed_v1": BitableRecordChanged,
    "im.chat.member.bot.added_v1": BotAddedToChat,
    "approval_instance": ApprovalStatusChanged,
    "approval_task": ApprovalStatusChanged,
    "contact.user.created_v3": UserCreated,
    "contact.user.deleted_v3": UserDeleted,
}
