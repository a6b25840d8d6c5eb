"""Feishu for plugin workflows and activities: the engine's Feishu activities' names, requests and results,
and the error a failed call raises. Use it as ``from engine.sdk import feishu as fr``.

A workflow never calls Feishu itself: it runs an activity by name with :func:`engine.sdk.feishu_call`,
e.g. ``await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(...), result_type=fr.SentMessage)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.feishu.errors import FeishuError
from engine.feishu.requests import (
    ADD_CHAT_MEMBERS,
    BITABLE_CREATE,
    BITABLE_GET,
    BITABLE_SEARCH,
    BITABLE_UPDATE,
    BITABLE_UPSERT,
    CANCEL_APPROVAL,
    CREATE_APPROVAL,
    CREATE_CHAT,
    GET_APPROVAL,
    LOOKUP_USERS,
    PIN_MESSAGE,
    SEND_MESSAGE,
    UPDATE_CARD,
    UPDATE_CHAT,
    UPLOAD_IMAGE,
    AddChatMembers,
    ApprovalInstance,
    ApprovalTask,
    BitableCreate,
    BitableGet,
    BitableRecord,
    BitableRef,
    BitableSearch,
    BitableUpdate,
    BitableUpsert,
    CancelApproval,
    ChatCreated,
    CreateApproval,
    CreateChat,
    GetApproval,
    LookupUsers,
    PinMessage,
    ReceiveIdType,
    Recipient,
    SendMessage,
    SentMessage,
    UpdateCard,
    UpdateChat,
    UploadImage,
    UpsertResult,
    UserRef,
)

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.feishu.client import FeishuClient

__all__ = [
    "ADD_CHAT_MEMBERS",
    "BITABLE_CREATE",
    "BITABLE_GET",
    "BITABLE_SEARCH",
    "BITABLE_UPDATE",
    "BITABLE_UPSERT",
    "CANCEL_APPROVAL",
    "CREATE_APPROVAL",
    "CREATE_CHAT",
    "GET_APPROVAL",
    "LOOKUP_USERS",
    "PIN_MESSAGE",
    "SEND_MESSAGE",
    "UPDATE_CARD",
    "UPDATE_CHAT",
    "UPLOAD_IMAGE",
    "AddChatMembers",
    "ApprovalInstance",
    "ApprovalTask",
    "BitableCreate",
    "BitableGet",
    "BitableRecord",
    "BitableRef",
    "BitableSearch",
    "BitableUpdate",
    "BitableUpsert",
    "CancelApproval",
    "ChatCreated",
    "CreateApproval",
    "CreateChat",
    "FeishuError",
    "GetApproval",
    "LookupUsers",
    "PinMessage",
    "ReceiveIdType",
    "Recipient",
    "SendMessage",
    "SentMessage",
    "UpdateCard",
    "UpdateChat",
    "UploadImage",
    "UpsertResult",
    "UserRef",
    "open_client",
]


def open_client(config: EngineConfig) -> FeishuClient:
    """A Feishu client for ``config``'s app, for a plugin's command (``async with open_client(config) as c``).

    Activities get theirs from :class:`engine.sdk.Services`; lark-oapi is imported only here, on use.
    """
    from engine.feishu.client import FeishuClient

    return FeishuClient.from_config(config)
