"""The stand-in's HTTP API, driven through lark-oapi's real client over loopback.

lark-oapi's calls are synchronous (and its token cache is process-global, keyed by app_id), so every test
uses a fresh app id and calls lark from a worker thread while the stand-in serves on the test's loop.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import lark_oapi as lark
import pytest
from lark_oapi.api.contact.v3 import BatchGetIdUserRequest, BatchGetIdUserRequestBody
from lark_oapi.api.im.v1 import (
    CreateChatMembersRequest,
    CreateChatMembersRequestBody,
    CreateChatRequest,
    CreateChatRequestBody,
    CreateImageRequest,
    CreateImageRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    CreatePinRequest,
    CreatePinRequestBody,
    GetChatRequest,
    GetMessageRequest,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
    UpdateChatRequest,
    UpdateChatRequestBody,
)

from engine.feishu.standin import FeishuStandIn, sample_state


def new_app_id() -> str:
    return f"cli_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=new_app_id())
    await s.start()
    yield s
    await s.stop()


def lark_client(s: FeishuStandIn, app_id: str | None = None, secret: str | None = None) -> lark.Client:
    return (lark.Client.builder().app_id(app_id or s.app_id).app_secret(secret or s.app_secret)
            .domain(s.base_url).log_level(lark.LogLevel.ERROR).build())


async def call(fn: Any, *args: Any) -> Any:
    """Run a blocking lark call off the loop that serves the stand-in."""
    return await asyncio.to_thread(fn, *args)


def text_message(receive_id: str, text: str, *, id_type: str = "open_id", uuid_: str | None = None
                 ) -> CreateMessageRequest:
    body = CreateMessageRequestBody.builder().receive_id(receive_id).msg_type("text") \
        .content(json.dumps({"text": text}))
    if uuid_:
        body = body.uuid(uuid_)
    return CreateMessageRequest.builder().receive_id_type(id_type).request_body(body.build()).build()


CARD = {"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": "校准提醒"}},
        "body": {"elements": [{"tag": "markdown", "content": "输液泵 DEV-001 7 天后到期"},
                              {"tag": "button", "text": {"tag": "plain_text", "content": "已安排"},
                               "behaviors": [{"type": "callback", "value": {"action": "ack"}}]}]}}


def card_message(receive_id: str, card: dict[str, Any], *, id_type: str = "chat_id", uuid_: str | None = None
                 ) -> CreateMessageRequest:
    body = CreateMessageRequestBody.builder().receive_id(receive_id).msg_type("interactive") \
        .content(json.dumps(card, ensure_ascii=False))
    if uuid_:
        body = body.uuid(uuid_)
    return CreateMessageRequest.builder().receive_id_type(id_type).request_body(body.build()).build()


# ---- tokens ------------------------------------------------------------------------------------------

async def test_tenant_token_issued_and_reused(standin: FeishuStandIn) -> None:
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        body = {"app_id": standin.app_id, "app_secret": standin.app_secret}
        first = (await http.post("/open-apis/auth/v3/tenant_access_token/internal", json=body)).json()
        again = (await http.post("/open-apis/auth/v3/tenant_access_token/internal", json=body)).json()
        app_tok = (await http.post("/open-apis/auth/v3/app_access_token/internal", json=body)).json()
        bad = await http.post("/open-apis/auth/v3/tenant_access_token/internal",
                              json={"app_id": standin.app_id, "app_secret": "nope"})
    assert first["code"] == 0 and first["tenant_access_token"].startswith("t-")
    assert 7100 < first["expire"] <= 7200
    assert again["tenant_access_token"] == first["tenant_access_token"]  # Feishu reuses a fresh token
    assert app_tok["code"] == 0 and app_tok["app_access_token"].startswith("a-")
    assert bad.json()["code"] == 10014
    assert standin.calls[0].body["app_secret"] == "***"  # secrets stay out of the call log


async def test_missing_and_invalid_token(standin: FeishuStandIn) -> None:
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        missing = await http.get("/open-apis/bot/v3/info")
        invalid = await http.get("/open-apis/bot/v3/info", headers={"Authorization": "Bearer t-forged"})
    assert (missing.status_code, missing.json()["code"]) == (400, 99991661)
    assert (invalid.status_code, invalid.json()["code"]) == (400, 99991663)
    assert invalid.json()["error"]["log_id"]


async def test_expire_tokens_forces_a_new_token(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    assert (await call(client.im.v1.message.create, text_message("ou_a", "one"))).code == 0
    assert standin.expire_tokens() >= 1
    # lark's cache still holds the revoked token: the call fails the way Feishu fails it
    stale = await call(client.im.v1.message.create, text_message("ou_a", "two"))
    assert stale.code == 99991663 and stale.raw.status_code == 400
    assert len(standin.messages(to="ou_a")) == 1


async def test_bot_info_and_multiple_apps(standin: FeishuStandIn) -> None:
    other = new_app_id()
    standin.add_app(other, "other-secret", "t_other", bot_open_id="ou_bot_other")
    for app_id, secret, bot in ((standin.app_id, standin.app_secret, standin.bot_open_id),
                                (other, "other-secret", "ou_bot_other")):
        client = lark_client(standin, app_id, secret)
        req = lark.BaseRequest.builder().http_method(lark.HttpMethod.GET).uri("/open-apis/bot/v3/info") \
            .token_types({lark.AccessTokenType.TENANT}).build()
        resp = await call(client.request, req)
        body = json.loads(resp.raw.content)  # the bot at the top level, not under "data"
        assert (body["code"], body["bot"]["open_id"], body["bot"]["app_name"]) == (0, bot, "Stand-in Bot")
    sent = await call(lark_client(standin, other, "other-secret").im.v1.message.create, text_message("ou_b", "x"))
    assert sent.code == 0 and sent.data.sender.tenant_key == "t_other"
    assert [m.app_id for m in standin.messages(to="ou_b")] == [other]


# ---- messages ----------------------------------------------------------------------------------------

async def test_send_text_and_uuid_dedupe(standin: FeishuStandIn) -> None:
    standin.add_user("ou_zhang", name="张伟", email="zhang@example.org")
    client = lark_client(standin)
    first = await call(client.im.v1.message.create, text_message("ou_zhang", "你好", uuid_="k-1"))
    again = await call(client.im.v1.message.create, text_message("ou_zhang", "你好", uuid_="k-1"))
    other = await call(client.im.v1.message.create,
                       text_message("zhang@example.org", "second", id_type="email", uuid_="k-2"))
    assert first.code == 0 and first.data.message_id.startswith("om_")
    assert again.data.message_id == first.data.message_id
    assert first.data.sender.sender_type == "app" and first.data.msg_type == "text"
    sent = standin.messages(to="ou_zhang")  # the email recipient resolves to the same user
    assert [m.content for m in sent] == ["你好", "second"]
    assert sent[0].chat_id == sent[1].chat_id == first.data.chat_id
    assert other.data.message_id != first.data.message_id
    # the uuid is kept, so a run can count messages per idempotency key (tests/reliability)
    assert [m.uuid for m in sent] == ["k-1", "k-2"]
    assert [item["uuid"] for item in standin.outbox()] == ["k-1", "k-2"]


async def test_send_validation(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    no_type = CreateMessageRequest.builder().request_body(
        CreateMessageRequestBody.builder().receive_id("ou_a").msg_type("text").content('{"text":"x"}').build()
    ).build()
    assert (await call(client.im.v1.message.create, no_type)).code == 99992402
    bad = CreateMessageRequest.builder().receive_id_type("open_id").request_body(
        CreateMessageRequestBody.builder().receive_id("ou_a").msg_type("text").content("not json").build()).build()
    assert (await call(client.im.v1.message.create, bad)).code == 230001
    too_big = card_message("oc_x", {"body": {"elements": [{"tag": "markdown", "content": "x" * 31000}]}})
    assert (await call(client.im.v1.message.create, too_big)).code == 230025
    assert standin.messages() == []


async def test_strict_ids_refuses_unknown_chat() -> None:
    s = FeishuStandIn(app_id=new_app_id(), strict_ids=True)
    await s.start()
    try:
        resp = await call(lark_client(s).im.v1.message.create, text_message("oc_nowhere", "x", id_type="chat_id"))
        assert (resp.code, resp.raw.status_code) == (230002, 400)
    finally:
        await s.stop()


async def test_card_send_patch_get_and_reply(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    sent = await call(client.im.v1.message.create, card_message("oc_ward", CARD, uuid_="card-1"))
    dup = await call(client.im.v1.message.create, card_message("oc_ward", CARD, uuid_="card-1"))
    assert sent.code == 0 and dup.data.message_id == sent.data.message_id
    [msg] = standin.messages(chat_id="oc_ward")
    assert msg.card == CARD and "输液泵 DEV-001 7 天后到期" in msg.text

    done = {**CARD, "body": {"elements": [{"tag": "markdown", "content": "已安排 ✅"}]}}
    patch = PatchMessageRequest.builder().message_id(sent.data.message_id).request_body(
        PatchMessageRequestBody.builder().content(json.dumps(done, ensure_ascii=False)).build()).build()
    assert (await call(client.im.v1.message.patch, patch)).code == 0
    [msg] = standin.messages(chat_id="oc_ward")
    assert msg.updated and msg.card == done and len(msg.history) == 1

    got = await call(client.im.v1.message.get, GetMessageRequest.builder().message_id(msg.message_id).build())
    assert got.code == 0 and json.loads(got.data.items[0].body.content) == done and got.data.items[0].updated

    reply = ReplyMessageRequest.builder().message_id(msg.message_id).request_body(
        ReplyMessageRequestBody.builder().msg_type("text").content('{"text":"收到"}').uuid("r-1").build()).build()
    r1 = await call(client.im.v1.message.reply, reply)
    r2 = await call(client.im.v1.message.reply, reply)
    assert r1.code == 0 and r1.data.message_id == r2.data.message_id
    assert r1.data.parent_id == msg.message_id and r1.data.chat_id == "oc_ward"
    assert [m.reply_to for m in standin.messages(chat_id="oc_ward")] == [None, msg.message_id]

    text = await call(client.im.v1.message.create, text_message("ou_a", "plain"))
    patch_text = PatchMessageRequest.builder().message_id(text.data.message_id).request_body(
        PatchMessageRequestBody.builder().content(json.dumps(done)).build()).build()
    assert (await call(client.im.v1.message.patch, patch_text)).code == 230001


async def test_reply_to_a_user_message_from_an_event(standin: FeishuStandIn) -> None:
    event = standin.message_event("借输液泵", "oc_group", "ou_li")
    client = lark_client(standin)
    reply = ReplyMessageRequest.builder().message_id(event["message"]["message_id"]).request_body(
        ReplyMessageRequestBody.builder().msg_type("text").content('{"text":"好的"}').build()).build()
    resp = await call(client.im.v1.message.reply, reply)
    assert resp.code == 0
    assert [m.text for m in standin.messages(chat_id="oc_group")] == ["好的"]  # only the bot's messages


# ---- chats, pins, images -----------------------------------------------------------------------------

async def test_create_chat_uuid_dedupe_and_member_limits(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    users = [f"ou_u{i}" for i in range(3)]

    def create(uuid_: str, members: list[str]) -> CreateChatRequest:
        return CreateChatRequest.builder().uuid(uuid_).user_id_type("open_id").request_body(
            CreateChatRequestBody.builder().name("DEV-001 交接").description("设备交接群").user_id_list(members)
            .owner_id(members[0]).build()).build()

    first = await call(client.im.v1.chat.create, create("c-1", users))
    again = await call(client.im.v1.chat.create, create("c-1", users))
    assert first.code == 0 and first.data.chat_id.startswith("oc_") and first.data.chat_id == again.data.chat_id
    assert first.data.name == "DEV-001 交接" and first.data.owner_id == "ou_u0"

    too_many = await call(client.im.v1.chat.create, create("c-2", [f"ou_{i}" for i in range(51)]))
    assert (too_many.code, too_many.raw.status_code) == (232001, 400)

    chat_id = first.data.chat_id
    add = CreateChatMembersRequest.builder().chat_id(chat_id).member_id_type("open_id").request_body(
        CreateChatMembersRequestBody.builder().id_list(["ou_new1", "ou_new2"]).build()).build()
    added = await call(client.im.v1.chat_members.create, add)
    assert added.code == 0 and added.data.invalid_id_list == []
    add_many = CreateChatMembersRequest.builder().chat_id(chat_id).member_id_type("open_id").request_body(
        CreateChatMembersRequestBody.builder().id_list([f"ou_{i}" for i in range(51)]).build()).build()
    assert (await call(client.im.v1.chat_members.create, add_many)).code == 232001

    rename = UpdateChatRequest.builder().chat_id(chat_id).request_body(
        UpdateChatRequestBody.builder().name("DEV-001 交接（已完成）").description("done").build()).build()
    assert (await call(client.im.v1.chat.update, rename)).code == 0
    got = await call(client.im.v1.chat.get, GetChatRequest.builder().chat_id(chat_id).build())
    assert got.code == 0 and got.data.name == "DEV-001 交接（已完成）" and got.data.user_count == "5"
    missing = await call(client.im.v1.chat.get, GetChatRequest.builder().chat_id("oc_missing").build())
    assert missing.code == 232006


async def test_pin_and_image_upload(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    sent = await call(client.im.v1.message.create, text_message("oc_pins", "置顶", id_type="chat_id"))
    pin = await call(client.im.v1.pin.create, CreatePinRequest.builder().request_body(
        CreatePinRequestBody.builder().message_id(sent.data.message_id).build()).build())
    assert pin.code == 0 and pin.data.pin.chat_id == "oc_pins"

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    upload = CreateImageRequest.builder().request_body(
        CreateImageRequestBody.builder().image_type("message").image(io.BytesIO(png)).build()).build()
    resp = await call(client.im.v1.image.create, upload)
    assert resp.code == 0 and resp.data.image_key.startswith("img_v3_")
    assert standin.state.images[resp.data.image_key]["size"] == len(png)


# ---- contact and OAuth -------------------------------------------------------------------------------

async def test_user_lookup_by_email_and_mobile(standin: FeishuStandIn) -> None:
    standin.state.merge_json(sample_state())
    client = lark_client(standin)
    req = BatchGetIdUserRequest.builder().user_id_type("open_id").request_body(
        BatchGetIdUserRequestBody.builder().emails(["li.na@example.org", "ghost@example.org"])
        .mobiles(["+8613800000001"]).build()).build()
    resp = await call(client.contact.v3.user.batch_get_id, req)
    assert resp.code == 0
    found = {(u.email or u.mobile): u.user_id for u in resp.data.user_list}
    assert found == {"li.na@example.org": "ou_standin_li", "ghost@example.org": None,
                     "+8613800000001": "ou_standin_zhang"}
    by_user_id = BatchGetIdUserRequest.builder().user_id_type("user_id").request_body(
        BatchGetIdUserRequestBody.builder().emails(["li.na@example.org"]).build()).build()
    assert (await call(client.contact.v3.user.batch_get_id, by_user_id)).data.user_list[0].user_id == "lina"


async def test_oauth_code_flow(standin: FeishuStandIn) -> None:
    standin.add_user("ou_doctor", name="王医生", email="wang@example.org")
    standin.add_user("ou_nurse", name="李护士", email="li@example.org")
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        page = await http.get("/open-apis/authen/v1/authorize", params={
            "app_id": standin.app_id, "redirect_uri": "http://app.local/cb?x=1", "state": "s-42",
            "user": "li@example.org"})
        assert page.status_code == 302
        location = httpx.URL(page.headers["location"])
        assert location.host == "app.local" and location.params["state"] == "s-42" and location.params["x"] == "1"
        code = location.params["code"]

        app_token = (await http.post("/open-apis/auth/v3/app_access_token/internal", json={
            "app_id": standin.app_id, "app_secret": standin.app_secret})).json()["app_access_token"]
        auth = {"Authorization": f"Bearer {app_token}"}
        body = {"grant_type": "authorization_code", "code": code}
        tokens = (await http.post("/open-apis/authen/v1/oidc/access_token", json=body, headers=auth)).json()
        assert tokens["code"] == 0 and tokens["data"]["token_type"] == "Bearer"
        reused = (await http.post("/open-apis/authen/v1/oidc/access_token", json=body, headers=auth)).json()
        assert reused["code"] == 20003  # codes are single-use

        user_token = tokens["data"]["access_token"]
        info = (await http.get("/open-apis/authen/v1/user_info",
                               headers={"Authorization": f"Bearer {user_token}"})).json()
        assert info["code"] == 0
        assert (info["data"]["open_id"], info["data"]["name"], info["data"]["email"]) == \
            ("ou_nurse", "李护士", "li@example.org")
        # a tenant token is not a user token
        wrong = await http.get("/open-apis/authen/v1/user_info", headers=auth)
        assert wrong.json()["code"] == 99991668

        # the OAuth 2.0 v2 endpoint, with the configured default user
        standin.oauth_default_user = "ou_doctor"
        page = await http.get("/open-apis/authen/v1/authorize", params={
            "client_id": standin.app_id, "redirect_uri": "http://app.local/cb"})
        code = httpx.URL(page.headers["location"]).params["code"]
        v2 = (await http.post("/open-apis/authen/v2/oauth/token", json={
            "grant_type": "authorization_code", "client_id": standin.app_id,
            "client_secret": standin.app_secret, "code": code})).json()
        assert v2["code"] == 0 and v2["access_token"].startswith("u-")
        info = (await http.get("/open-apis/authen/v1/user_info",
                               headers={"Authorization": f"Bearer {v2['access_token']}"})).json()
        assert info["data"]["open_id"] == "ou_doctor"


async def test_oauth_through_lark_client(standin: FeishuStandIn) -> None:
    from lark_oapi.api.authen.v1 import (
        CreateOidcAccessTokenRequest,
        CreateOidcAccessTokenRequestBody,
        GetUserInfoRequest,
    )

    standin.add_user("ou_eng", name="Engineer")
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        page = await http.get("/open-apis/authen/v1/authorize", params={
            "app_id": standin.app_id, "redirect_uri": "https://h5.example/cb", "user": "ou_eng"})
    code = httpx.URL(page.headers["location"]).params["code"]
    client = lark_client(standin)
    resp = await call(client.authen.v1.oidc_access_token.create, CreateOidcAccessTokenRequest.builder()
                      .request_body(CreateOidcAccessTokenRequestBody.builder().grant_type("authorization_code")
                                    .code(code).build()).build())
    assert resp.code == 0
    # lark only sends a caller-supplied user token when the client is built with enable_set_token
    as_user = lark.Client.builder().app_id(standin.app_id).app_secret(standin.app_secret) \
        .domain(standin.base_url).enable_set_token(True).build()
    option = lark.RequestOption.builder().user_access_token(resp.data.access_token).build()
    info = await call(as_user.authen.v1.user_info.get, GetUserInfoRequest.builder().build(), option)
    assert info.code == 0 and info.data.open_id == "ou_eng"


# ---- state and admin ---------------------------------------------------------------------------------

async def test_state_save_load_round_trip(tmp_path: Path) -> None:
    state_file = tmp_path / "standin.json"
    first = FeishuStandIn(state_file=state_file, app_id=new_app_id())
    first.state.merge_json(sample_state())
    await first.start()
    client = lark_client(first)
    await call(client.im.v1.message.create, text_message("ou_standin_li", "持久化"))
    chat = await call(client.im.v1.chat.create, CreateChatRequest.builder().request_body(
        CreateChatRequestBody.builder().name("persist").build()).build())
    await first.stop()  # saves
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    assert saved["bitable"]["bascnStandinDevices"]["tblDevices"]["records"][0]["record_id"] == "recStandin001"

    second = FeishuStandIn(state_file=state_file, app_id=new_app_id())  # loads
    assert [m.text for m in second.messages(to="ou_standin_li")] == ["持久化"]
    assert chat.data.chat_id in second.state.chats
    assert second.state.find_user("li.na@example.org")["open_id"] == "ou_standin_li"
    assert second.state.table("bascnStandinDevices", "tblDevices")["records"]["recStandin002"]["fields"]["名称"] \
        == "心电监护仪"
    assert second.state.to_json()["users"] == first.state.to_json()["users"]


async def test_admin_pages(standin: FeishuStandIn) -> None:
    client = lark_client(standin)
    await call(client.im.v1.message.create, text_message("ou_page", "<b>提醒</b>"))
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        page = await http.get("/_standin/")
        outbox = (await http.get("/_standin/outbox")).json()
        calls = (await http.get("/_standin/calls", params={"path": "/open-apis/im"})).json()
        fault = await http.post("/_standin/faults", json={"kind": "rate_limit", "times": 1})
        listed = (await http.get("/_standin/faults")).json()
        cleared = await http.delete("/_standin/faults")
        bad_fault = await http.post("/_standin/faults", json={"kind": "meteor"})
        merged = await http.post("/_standin/state", json={"users": [{"open_id": "ou_admin", "name": "Admin"}]})
        expired = (await http.post("/_standin/expire_tokens")).json()
        unknown = await http.get("/open-apis/nope/v1/thing")
    assert page.status_code == 200 and "&lt;b&gt;提醒&lt;/b&gt;" in page.text
    assert outbox[0]["text"] == "<b>提醒</b>" and outbox[0]["to"] == "ou_page"
    assert [c["path"] for c in calls] == ["/open-apis/im/v1/messages"]
    assert fault.status_code == 200 and listed[0]["kind"] == "rate_limit"
    assert cleared.status_code == 200 and standin.faults.active() == []
    assert bad_fault.status_code == 400
    assert merged.status_code == 200 and standin.state.users["ou_admin"]["name"] == "Admin"
    assert expired["expired"] >= 1
    assert unknown.status_code == 404


async def test_in_thread_mode_serves_blocking_callers() -> None:
    s = FeishuStandIn(app_id=new_app_id())
    await s.start(in_thread=True)
    try:
        # blocking on the loop is fine now: the stand-in has its own loop
        resp = lark_client(s).im.v1.message.create(text_message("ou_t", "threaded"))
        assert resp.code == 0 and s.messages(to="ou_t")[0].text == "threaded"
    finally:
        await s.stop()


async def test_a_caller_that_leaves_mid_body_leaves_no_traceback(standin: FeishuStandIn,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    port = int(standin.base_url.rsplit(":", 1)[1])
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /open-apis/im/v1/messages?receive_id_type=open_id HTTP/1.1\r\nhost: x\r\n"
                 b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"receive")
    await writer.drain()
    writer.close()  # gone before the body is complete, as a caller whose timeout ran out
    await writer.wait_closed()
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient() as http:  # the stand-in serves on
        assert (await http.get(f"{standin.base_url}/_standin/outbox")).status_code == 200
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
