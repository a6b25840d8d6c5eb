"""The stand-in's file upload (``POST /open-apis/im/v1/files``) through lark-oapi's real client, and a file
message a user sends the bot, as the ingress receives it."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator

import lark_oapi as lark
import pytest
from lark_oapi.api.im.v1 import CreateFileRequest, CreateFileRequestBody

from engine.feishu.normalize import normalize
from engine.feishu.standin import FeishuStandIn


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}")
    await s.start()
    yield s
    await s.stop()


def upload(file_type: str, name: str, content: bytes) -> CreateFileRequest:
    return CreateFileRequest.builder().request_body(
        CreateFileRequestBody.builder().file_type(file_type).file_name(name).file(io.BytesIO(content)).build()).build()


async def test_a_file_uploads_and_bad_uploads_are_refused(standin: FeishuStandIn) -> None:
    client = (lark.Client.builder().app_id(standin.app_id).app_secret(standin.app_secret).domain(standin.base_url)
              .log_level(lark.LogLevel.ERROR).build())
    sheet = b"PK\x03\x04" + bytes(range(200))
    resp = await asyncio.to_thread(client.im.v1.file.create, upload("xls", "质量月报.xls", sheet))
    assert resp.code == 0 and resp.data.file_key.startswith("file_v3_")
    kept = standin.state.files[resp.data.file_key]
    assert (kept["file_name"], kept["file_type"], kept["size"]) == ("质量月报.xls", "xls", len(sheet))
    empty = await asyncio.to_thread(client.im.v1.file.create, upload("pdf", "a.pdf", b""))
    assert empty.code == 234001
    odd = await asyncio.to_thread(client.im.v1.file.create, upload("xlsx", "a.xlsx", b"x"))
    assert odd.code == 234001 and "file_type" in odd.msg


def test_a_file_message_event_normalizes_to_a_file_message(standin: FeishuStandIn) -> None:
    event = standin.file_message_event("DOC-1 报表.pdf", "ou_sender", size=10)
    message = event["message"]
    content = json.loads(message["content"])
    assert message["message_type"] == "file" and content["file_name"] == "DOC-1 报表.pdf"
    assert standin.state.files[content["file_key"]]["sender_open_id"] == "ou_sender"
    payload = {"schema": "2.0", "header": {"event_id": "ev-file", "event_type": "im.message.receive_v1",
                                           "create_time": "1764500000000", "tenant_key": "t_standin"},
               "event": event}
    received = normalize(payload, bot_open_id=standin.bot_open_id)
    assert received.message_type == "file" and received.text == "" and received.sender_open_id == "ou_sender"
    assert received.chat_type == "p2p" and not received.mentions_bot
