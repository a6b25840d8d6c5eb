"""IM: send/reply/update/get messages, chats and members, pins, image upload."""

from __future__ import annotations

import hashlib
import json
import uuid as uuidlib
from typing import Any

from .base import Ctx, Endpoint, Reply, fail, ok
from .state import new_id, now_ms, stable_id

MESSAGE_UUID_TTL = 3600  # Feishu dedupes message create/reply by uuid for 1 h
CHAT_UUID_TTL = 10 * 3600  # and chat create by uuid for 10 h
MSG_TYPES = {"text", "post", "image", "file", "audio", "media", "sticker", "interactive", "share_chat",
             "share_user", "system"}
TEXT_LIMIT = 150 * 1024
CARD_LIMIT = 30 * 1024
CHAT_MAX_USERS = 50
CHAT_MAX_BOTS = 5
IMAGE_MAX_BYTES = 10 * 1024 * 1024
FILE_MAX_BYTES = 30 * 1024 * 1024  # "文件大小不得超过 30 MB，且不允许上传空文件"
FILE_TYPES = {"opus", "mp4", "pdf", "doc", "xls", "ppt", "stream"}

# error codes
INVALID_PARAM = 230001
BOT_NOT_IN_CHAT = 230002
NO_AVAILABILITY = 230013
CONTENT_TOO_LONG = 230025
FIELD_VALIDATION = 99992402
CHAT_INVALID_PARAM = 232001  # also what a >50-user chat create or member add gets
CHAT_NOT_FOUND = 232006
IMAGE_INVALID = 234001
IMAGE_TOO_LARGE = 234006


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop the stand-in's private ``_…`` bookkeeping keys before answering."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _check_content(msg_type: str, content: Any) -> Reply | None:
    if msg_type not in MSG_TYPES:
        return fail(400, INVALID_PARAM, f"invalid msg_type {msg_type!r}")
    if not isinstance(content, str):
        return fail(400, INVALID_PARAM, "content must be a JSON string")
    try:
        decoded = json.loads(content)
    except ValueError:
        return fail(400, INVALID_PARAM, "invalid message content: not JSON")
    if msg_type == "text" and not (isinstance(decoded, dict) and isinstance(decoded.get("text"), str)):
        return fail(400, INVALID_PARAM, 'invalid message content: text needs {"text": "..."}')
    limit = TEXT_LIMIT if msg_type == "text" else CARD_LIMIT
    if len(content.encode("utf-8")) > limit:
        return fail(400, CONTENT_TOO_LONG, f"the message content exceeds {limit // 1024} KB")
    return None


def _new_message(ctx: Ctx, *, chat_id: str, msg_type: str, content: str, to: dict[str, str] | None,
                 parent: dict[str, Any] | None = None, thread: bool = False) -> dict[str, Any]:
    assert ctx.app is not None
    ts = str(now_ms())
    message = {
        "message_id": new_id("om_"),
        "root_id": (parent.get("root_id") or parent["message_id"]) if parent else "",
        "parent_id": parent["message_id"] if parent else "",
        "thread_id": (parent.get("thread_id") or new_id("omt_", 16)) if parent and thread else "",
        "msg_type": msg_type,
        "create_time": ts,
        "update_time": ts,
        "deleted": False,
        "updated": False,
        "chat_id": chat_id,
        "sender": {"id": ctx.app.app_id, "id_type": "app_id", "sender_type": "app",
                   "tenant_key": ctx.app.tenant_key},
        "body": {"content": content},
        "mentions": [],
        "upper_message_id": "",
        "_to": to,
        "_app_id": ctx.app.app_id,
        "_origin": "bot",
        "_history": [],
        # the sender's idempotency uuid, so tests can tell a resend from a second message
        "_uuid": str(ctx.json.get("uuid") or ""),
    }
    ctx.state.messages[message["message_id"]] = message
    return message


def _resolve_receiver(ctx: Ctx, id_type: str, receive_id: str) -> tuple[str, dict[str, str]] | Reply:
    """(chat_id, recipient) for a receive id; a user gets the bot's p2p chat with them."""
    assert ctx.app is not None
    strict = ctx.standin.strict_ids
    if id_type == "chat_id":
        if receive_id not in ctx.state.chats and strict:
            return fail(400, BOT_NOT_IN_CHAT, "Bot/User can NOT be out of the chat.")
        return receive_id, {"id_type": "chat_id", "id": receive_id}
    user = ctx.state.find_user(receive_id, id_type)
    if user is None and strict:
        return fail(400, NO_AVAILABILITY, "Bot has NO availability to this user.")
    open_id = user["open_id"] if user else receive_id
    chat_id = stable_id("oc_", ctx.app.app_id, open_id)
    if chat_id not in ctx.state.chats:
        ctx.state.chats[chat_id] = {"chat_id": chat_id, "name": "", "chat_mode": "p2p", "chat_type": "p2p",
                                    "tenant_key": ctx.app.tenant_key, "_members": [open_id],
                                    "_bots": [ctx.app.app_id]}
    return chat_id, {"id_type": id_type, "id": receive_id, **({"open_id": open_id} if user else {})}


async def send_message(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    id_type = ctx.query.get("receive_id_type")
    if id_type not in ("open_id", "user_id", "union_id", "email", "chat_id"):
        return fail(400, FIELD_VALIDATION, "field validation failed: receive_id_type is required "
                                           "(open_id/user_id/union_id/email/chat_id)")
    body = ctx.json
    dedupe_key = f"msg:{ctx.app.app_id}:{body['uuid']}" if body.get("uuid") else None
    if dedupe_key and (hit := ctx.state.remembered(dedupe_key)) and hit in ctx.state.messages:
        return ok(public(ctx.state.messages[hit]))
    msg_type, content, receive_id = body.get("msg_type", ""), body.get("content"), body.get("receive_id")
    if not receive_id:
        return fail(400, FIELD_VALIDATION, "field validation failed: receive_id is required")
    if (bad := _check_content(msg_type, content)) is not None:
        return bad
    target = _resolve_receiver(ctx, id_type, str(receive_id))
    if isinstance(target, Reply):
        return target
    chat_id, to = target
    message = _new_message(ctx, chat_id=chat_id, msg_type=msg_type, content=content, to=to)
    if dedupe_key:
        ctx.state.remember(dedupe_key, message["message_id"], MESSAGE_UUID_TTL)
    return ok(public(message))


async def reply_message(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    body = ctx.json
    dedupe_key = f"msg:{ctx.app.app_id}:{body['uuid']}" if body.get("uuid") else None
    if dedupe_key and (hit := ctx.state.remembered(dedupe_key)) and hit in ctx.state.messages:
        return ok(public(ctx.state.messages[hit]))
    msg_type, content = body.get("msg_type", ""), body.get("content")
    if (bad := _check_content(msg_type, content)) is not None:
        return bad
    parent_id = ctx.params["message_id"]
    parent = ctx.state.messages.get(parent_id)
    if parent is None:
        if ctx.standin.strict_ids:
            return fail(400, INVALID_PARAM, f"invalid message_id {parent_id!r}")
        # lenient: a test may reply to a hand-built event's message the stand-in never saw
        parent = {"message_id": parent_id, "root_id": "", "thread_id": "", "chat_id": ""}
    message = _new_message(ctx, chat_id=parent.get("chat_id", ""), msg_type=msg_type, content=content,
                           to={"id_type": "message_id", "id": parent_id}, parent=parent,
                           thread=bool(body.get("reply_in_thread")))
    if dedupe_key:
        ctx.state.remember(dedupe_key, message["message_id"], MESSAGE_UUID_TTL)
    return ok(public(message))


async def patch_message(ctx: Ctx) -> Reply:
    """Update a sent card (only interactive messages can be patched, for 14 days)."""
    message = ctx.state.messages.get(ctx.params["message_id"])
    if message is None or message.get("deleted"):
        return fail(400, INVALID_PARAM, "invalid message_id: the message does not exist or was recalled")
    if message["msg_type"] != "interactive":
        return fail(400, INVALID_PARAM, "only interactive (card) messages can be updated with PATCH")
    if now_ms() - int(message["create_time"]) > 14 * 86400 * 1000:
        return fail(400, INVALID_PARAM, "the card can no longer be updated (older than 14 days)")
    content = ctx.json.get("content")
    if (bad := _check_content("interactive", content)) is not None:
        return bad
    message["_history"].append(message["body"]["content"])
    message["body"] = {"content": content}
    message["updated"] = True
    message["update_time"] = str(now_ms())
    return ok({})


async def get_message(ctx: Ctx) -> Reply:
    message = ctx.state.messages.get(ctx.params["message_id"])
    if message is None:
        return fail(400, INVALID_PARAM, "invalid message_id")
    return ok({"items": [public(message)]})


async def delete_message(ctx: Ctx) -> Reply:
    message = ctx.state.messages.get(ctx.params["message_id"])
    if message is None:
        return fail(400, INVALID_PARAM, "invalid message_id")
    message["deleted"] = True
    return ok({})


# ---- chats -------------------------------------------------------------------------------------------

def _chat_view(chat: dict[str, Any]) -> dict[str, Any]:
    return {"avatar": "", "description": "", "i18n_names": {}, "add_member_permission": "all_members",
            "share_card_permission": "allowed", "at_all_permission": "all_members",
            "edit_permission": "all_members", "group_message_type": "chat", "chat_tag": "inner",
            "external": False, "join_message_visibility": "all_members",
            "leave_message_visibility": "all_members", "membership_approval": "no_approval_required",
            "moderation_permission": "all_members", "labels": [], "toolkit_ids": [], **public(chat)}


def _resolve_members(ctx: Ctx, ids: list[str], id_type: str) -> tuple[list[str], list[str]]:
    """(open ids to add, invalid ids). Unknown users are only invalid in strict mode."""
    members, invalid = [], []
    for raw in ids:
        user = ctx.state.find_user(raw, id_type)
        if user is not None:
            members.append(user["open_id"])
        elif ctx.standin.strict_ids:
            invalid.append(raw)
        else:
            members.append(raw)
    return members, invalid


async def create_chat(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    dedupe_key = f"chat:{ctx.app.app_id}:{ctx.query['uuid']}" if ctx.query.get("uuid") else None
    if dedupe_key and (hit := ctx.state.remembered(dedupe_key)) and hit in ctx.state.chats:
        return ok(_chat_view(ctx.state.chats[hit]))
    body = ctx.json
    users, bots = list(body.get("user_id_list") or []), list(body.get("bot_id_list") or [])
    if len(users) > CHAT_MAX_USERS:
        return fail(400, CHAT_INVALID_PARAM, f"invalid request parameter: user_id_list takes at most "
                                             f"{CHAT_MAX_USERS} users per request ({len(users)} given)")
    if len(bots) > CHAT_MAX_BOTS:
        return fail(400, CHAT_INVALID_PARAM, f"invalid request parameter: bot_id_list takes at most "
                                             f"{CHAT_MAX_BOTS} bots per request")
    id_type = ctx.query.get("user_id_type", "open_id")
    members, _ = _resolve_members(ctx, users, id_type)
    owner = body.get("owner_id")
    chat = {
        "chat_id": new_id("oc_"),
        "name": body.get("name", ""),
        "description": body.get("description", ""),
        "i18n_names": body.get("i18n_names") or {},
        "avatar": body.get("avatar", ""),
        "owner_id": owner or ctx.app.app_id,
        "owner_id_type": id_type if owner else "app_id",
        "chat_mode": body.get("chat_mode", "group"),
        "chat_type": body.get("chat_type", "private"),
        "tenant_key": ctx.app.tenant_key,
        "_members": members,
        "_bots": [ctx.app.app_id, *[b for b in bots if b != ctx.app.app_id]],
        "_created_by": ctx.app.app_id,
    }
    ctx.state.chats[chat["chat_id"]] = chat
    if dedupe_key:
        ctx.state.remember(dedupe_key, chat["chat_id"], CHAT_UUID_TTL)
    return ok(_chat_view(chat))


def _chat_or_fail(ctx: Ctx) -> dict[str, Any] | Reply:
    chat = ctx.state.chats.get(ctx.params["chat_id"])
    if chat is None:
        return fail(400, CHAT_NOT_FOUND, "Your request specifies a chat_id which is invalid.")
    return chat


async def get_chat(ctx: Ctx) -> Reply:
    chat = _chat_or_fail(ctx)
    if isinstance(chat, Reply):
        return chat
    view = _chat_view(chat)
    view.pop("chat_id", None)
    view.update({"user_count": str(len(chat.get("_members", []))), "bot_count": str(len(chat.get("_bots", []))),
                 "chat_status": "normal", "user_manager_id_list": [], "bot_manager_id_list": []})
    return ok(view)


async def update_chat(ctx: Ctx) -> Reply:
    chat = _chat_or_fail(ctx)
    if isinstance(chat, Reply):
        return chat
    editable = {"name", "description", "i18n_names", "avatar", "owner_id", "add_member_permission",
                "share_card_permission", "at_all_permission", "edit_permission", "membership_approval",
                "join_message_visibility", "leave_message_visibility", "chat_type", "group_message_type"}
    chat.update({k: v for k, v in ctx.json.items() if k in editable})
    return ok({})


async def delete_chat(ctx: Ctx) -> Reply:
    """Dissolve a group: it disappears, and a second delete answers chat-not-found like Feishu."""
    chat = _chat_or_fail(ctx)
    if isinstance(chat, Reply):
        return chat
    del ctx.state.chats[ctx.params["chat_id"]]
    return ok({})


async def add_members(ctx: Ctx) -> Reply:
    chat = _chat_or_fail(ctx)
    if isinstance(chat, Reply):
        return chat
    ids = list(ctx.json.get("id_list") or [])
    if not ids or len(ids) > CHAT_MAX_USERS:
        return fail(400, CHAT_INVALID_PARAM, f"invalid request parameter: id_list takes 1 to "
                                             f"{CHAT_MAX_USERS} ids per request ({len(ids)} given)")
    id_type = ctx.query.get("member_id_type", "open_id")
    if id_type == "app_id":
        chat["_bots"].extend(i for i in ids if i not in chat["_bots"])
        return ok({"invalid_id_list": [], "not_existed_id_list": [], "pending_approval_id_list": []})
    members, invalid = _resolve_members(ctx, ids, id_type)
    chat.setdefault("_members", []).extend(m for m in members if m not in chat["_members"])
    return ok({"invalid_id_list": invalid, "not_existed_id_list": [], "pending_approval_id_list": []})


async def list_members(ctx: Ctx) -> Reply:
    chat = _chat_or_fail(ctx)
    if isinstance(chat, Reply):
        return chat
    items = []
    for open_id in chat.get("_members", []):
        user = ctx.state.users.get(open_id, {})
        items.append({"member_id_type": "open_id", "member_id": open_id, "name": user.get("name", ""),
                      "tenant_key": chat.get("tenant_key", "")})
    return ok({"items": items, "page_token": "", "has_more": False, "member_total": len(items)})


async def pin_message(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    message = ctx.state.messages.get(str(ctx.json.get("message_id", "")))
    if message is None:
        return fail(400, INVALID_PARAM, "invalid message_id")
    pin = {"message_id": message["message_id"], "chat_id": message["chat_id"], "operator_id": ctx.app.app_id,
           "operator_id_type": "app_id", "create_time": str(now_ms())}
    ctx.state.pins.append(pin)
    return ok({"pin": pin})


async def upload_image(ctx: Ctx) -> Reply:
    form = ctx.form or {}
    image = form.get("image")
    image_type = form.get("image_type", (None, b""))[1].decode("utf-8", "replace")
    if image is None or not image[1]:
        return fail(400, IMAGE_INVALID, "invalid request param: image is required")
    if image_type not in ("message", "avatar"):
        return fail(400, IMAGE_INVALID, "invalid request param: image_type must be message or avatar")
    data = image[1]
    if len(data) > IMAGE_MAX_BYTES:
        return fail(400, IMAGE_TOO_LARGE, "The file size exceed the max value.")
    key = f"img_v3_{uuidlib.uuid4()}"
    ctx.state.images[key] = {"image_key": key, "image_type": image_type, "filename": image[0],
                             "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                             "app_id": ctx.app_id}
    return ok({"image_key": key})


async def upload_file(ctx: Ctx) -> Reply:
    """``POST /open-apis/im/v1/files`` (上传文件): multipart ``file_type``, ``file_name``, ``file``, optional
    ``duration``; answers ``{"file_key": ...}``. Failures use the image upload's codes."""
    form = ctx.form or {}
    upload = form.get("file")
    file_type = form.get("file_type", (None, b""))[1].decode("utf-8", "replace")
    file_name = form.get("file_name", (None, b""))[1].decode("utf-8", "replace")
    if upload is None or not upload[1]:
        return fail(400, IMAGE_INVALID, "invalid request param: file is required and may not be empty")
    if file_type not in FILE_TYPES or not file_name:
        return fail(400, IMAGE_INVALID, f"invalid request param: file_type is one of {sorted(FILE_TYPES)}, "
                                        "file_name is required")
    if len(upload[1]) > FILE_MAX_BYTES:
        return fail(400, IMAGE_TOO_LARGE, "The file size exceed the max value.")
    key = ctx.state.add_file(file_name, upload[1], file_type=file_type, app_id=ctx.app_id)
    return ok({"file_key": key})


def _send_receiver(ctx: Ctx) -> str | None:
    return ctx.json.get("receive_id")


def _reply_receiver(ctx: Ctx) -> str | None:
    parent = ctx.state.messages.get(ctx.params.get("message_id", ""))
    return parent["chat_id"] if parent else None


ENDPOINTS = [
    Endpoint("POST", "/open-apis/im/v1/messages", send_message, api="im.message.send", receiver=_send_receiver),
    Endpoint("GET", "/open-apis/im/v1/messages/{message_id}", get_message),
    Endpoint("PATCH", "/open-apis/im/v1/messages/{message_id}", patch_message, api="im.message.patch"),
    Endpoint("DELETE", "/open-apis/im/v1/messages/{message_id}", delete_message),
    Endpoint("POST", "/open-apis/im/v1/messages/{message_id}/reply", reply_message, api="im.message.send",
             receiver=_reply_receiver),
    Endpoint("POST", "/open-apis/im/v1/chats", create_chat, api="im.chat.create"),
    Endpoint("GET", "/open-apis/im/v1/chats/{chat_id}", get_chat),
    Endpoint("PUT", "/open-apis/im/v1/chats/{chat_id}", update_chat),
    Endpoint("DELETE", "/open-apis/im/v1/chats/{chat_id}", delete_chat),
    Endpoint("POST", "/open-apis/im/v1/chats/{chat_id}/members", add_members),
    Endpoint("GET", "/open-apis/im/v1/chats/{chat_id}/members", list_members),
    Endpoint("POST", "/open-apis/im/v1/pins", pin_message),
    Endpoint("POST", "/open-apis/im/v1/images", upload_image),
    Endpoint("POST", "/open-apis/im/v1/files", upload_file),
]
