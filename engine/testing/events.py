"""Event builders for plugin tests: the normalized events the ingress hands the router, with fresh ids.

Each builder fills what a test rarely cares about (unique ``event_id`` and ``message_id``, the event type,
``create_time``) and takes what it does as keywords::

    await env.deliver(message("我借了什么", sender="ou_li"))
    await env.deliver(message("CT-0012 状态", chat_type="group", mentions_bot=True))
    await env.deliver(card_press({"scenario": "asset_loan", "op": "borrow", "asset": "RD-1"}, "ou_li"))
    await env.deliver(record_changed("bascnX", "tblDevices", "rec1", after={"设备编号": "CT-0012"}))

To test a redelivery, pass the same ``message_id`` (or build once and deliver the event twice).
``create_time`` is a timestamp only: the engine decides with the workflow clock, never with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from engine.events import BitableRecordChanged, CardAction, Mention, MessageReceived, UserCreated

__all__ = ["card_press", "message", "record_changed", "user_created"]

_ids = itertools.count(1)


def _next(prefix: str) -> str:
    return f"{prefix}-test-{next(_ids)}"


def message(text: str, *, sender: str = "ou_tester", chat_id: str = "oc_test", chat_type: str = "p2p",
            mentions_bot: bool | None = None, mentions: Sequence[str] = (), message_id: str | None = None,
            event_id: str | None = None, create_time: datetime | None = None) -> MessageReceived:
    """``im.message.receive_v1``: ``text`` (mentions already removed) from ``sender``.

    A group message mentions the bot unless ``mentions_bot=False``; a p2p one does not need to.
    ``mentions``: the open ids of the other people @-mentioned in it, in order.
    """
    asks_bot = (chat_type == "group") if mentions_bot is None else mentions_bot
    people = [Mention(key=f"@_user_{i + 2}", open_id=open_id, name=open_id) for i, open_id in enumerate(mentions)]
    bot = [Mention(key="@_user_1", open_id="ou_bot", name="bot", is_bot=True)] if asks_bot else []
    return MessageReceived(
        event_id=event_id or _next("ev"), event_type="im.message.receive_v1",
        create_time=create_time or datetime.now(UTC), message_id=message_id or _next("om"), chat_id=chat_id,
        chat_type=chat_type, text=text, sender_open_id=sender, mentions_bot=asks_bot, mentions=[*bot, *people])


def card_press(value: dict[str, Any], operator: str, *, form: dict[str, Any] | None = None,
               message_id: str = "", chat_id: str = "", event_id: str | None = None,
               create_time: datetime | None = None) -> CardAction:
    """``card.action.trigger``: ``operator`` pressed a button whose value is ``value`` (with ``form``'s fields)."""
    return CardAction(event_id=event_id or _next("ev"), event_type="card.action.trigger",
                      create_time=create_time or datetime.now(UTC), operator_open_id=operator,
                      action_value=dict(value), form_value=form, open_message_id=message_id, open_chat_id=chat_id)


def record_changed(app_token: str, table_id: str, record_id: str, *, action: str = "record_edited",
                   after: dict[str, Any] | None = None, before: dict[str, Any] | None = None,
                   operator: str = "", event_id: str | None = None,
                   create_time: datetime | None = None) -> BitableRecordChanged:
    """``drive.file.bitable_record_changed_v1`` for one record (``record_added``, ``_edited``, ``_deleted``)."""
    return BitableRecordChanged(event_id=event_id or _next("ev"), event_type="drive.file.bitable_record_changed_v1",
                                create_time=create_time or datetime.now(UTC), app_token=app_token,
                                table_id=table_id, record_id=record_id, action=action, after=dict(after or {}),
                                before=dict(before or {}), operator_open_id=operator)


def user_created(open_id: str, *, name: str = "", email: str | None = None, mobile: str | None = None,
                 department_ids: list[str] | None = None, event_id: str | None = None,
                 create_time: datetime | None = None) -> UserCreated:
    """``contact.user.created_v3``: a new account in the organization's directory."""
    return UserCreated(event_id=event_id or _next("ev"), event_type="contact.user.created_v3",
                       create_time=create_time or datetime.now(UTC), open_id=open_id, name=name, email=email,
                       mobile=mobile, department_ids=list(department_ids or []))
