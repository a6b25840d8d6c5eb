"""Event delivery from the stand-in, checked by lark-oapi's own ``EventDispatcherHandler``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import lark_oapi as lark
import pytest
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils import AESCipher
from lark_oapi.event.callback.model.p2_card_action_trigger import P2CardActionTriggerResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.feishu.standin import (
    EVENT_BITABLE_RECORD_CHANGED,
    EVENT_BOT_ADDED,
    EVENT_MESSAGE,
    EVENT_USER_CREATED,
    EVENT_USER_DELETED,
    DeliveryError,
    FeishuStandIn,
)
from engine.feishu.standin.runner import ServerRunner

ENCRYPT_KEY = "standin-encrypt-key"
TOKEN = "standin-verification"


@dataclass
class Ingress:
    """A minimal webhook endpoint in front of lark's dispatcher, recording what it accepted."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def build_handler(ingress: Ingress, encrypt_key: str, token: str) -> lark.EventDispatcherHandler:
    def keep(kind: str) -> Any:
        def handler(data: Any) -> None:
            ingress.received.append({"kind": kind, "data": json.loads(lark.JSON.marshal(data))})
        return handler

    def on_card(data: Any) -> P2CardActionTriggerResponse:
        keep("card")(data)
        return P2CardActionTriggerResponse({
            "toast": {"type": "success", "content": "已处理"},
            "card": {"type": "raw", "data": {"schema": "2.0", "body": {"elements": [
                {"tag": "markdown", "content": f"{data.event.operator.open_id} 已确认"}]}}}})

    return (lark.EventDispatcherHandler.builder(encrypt_key, token, lark.LogLevel.CRITICAL)
            .register_p2_im_message_receive_v1(keep("message"))
            .register_p2_customized_event(EVENT_BITABLE_RECORD_CHANGED, keep("bitable"))
            .register_p2_customized_event(EVENT_BOT_ADDED, keep("bot_added"))
            .register_p2_customized_event(EVENT_USER_CREATED, keep("user_created"))
            .register_p2_customized_event(EVENT_USER_DELETED, keep("user_deleted"))
            .register_p1_customized_event("approval_instance", keep("approval"))
            .register_p2_card_action_trigger(on_card)
            .build())


async def serve_ingress(encrypt_key: str, token: str) -> tuple[Ingress, ServerRunner]:
    ingress = Ingress(url="")
    handler = build_handler(ingress, encrypt_key, token)

    async def events(request: Request) -> Response:
        raw = RawRequest()
        raw.uri = request.url.path
        raw.body = await request.body()
        # ASGI lower-cases header names; lark looks them up as "X-Lark-Signature" etc.
        raw.headers = {k.title(): v for k, v in request.headers.items()}
        ingress.headers.append(dict(raw.headers))
        resp = await asyncio.to_thread(handler.do, raw)
        ingress.statuses.append(resp.status_code)
        return Response(resp.content, status_code=resp.status_code, media_type="application/json")

    runner = ServerRunner(Starlette(routes=[Route("/events", events, methods=["POST"])]))
    port = await runner.start("127.0.0.1", 0)
    ingress.url = f"http://127.0.0.1:{port}/events"
    return ingress, runner


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", encrypt_key=ENCRYPT_KEY, verification_token=TOKEN)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def ingress() -> AsyncIterator[Ingress]:
    ing, runner = await serve_ingress(ENCRYPT_KEY, TOKEN)
    yield ing
    await runner.stop()


async def test_encrypted_signed_message_event_is_accepted_by_lark(standin: FeishuStandIn,
                                                                   ingress: Ingress) -> None:
    event = standin.message_event("借一台输液泵", "oc_ward", "ou_li")
    result = await standin.deliver_event(ingress.url, EVENT_MESSAGE, event, event_id="ev-1", retries=())
    assert result.acknowledged and len(result.attempts) == 1
    [got] = ingress.received
    data = got["data"]
    assert data["header"]["event_id"] == "ev-1" and data["header"]["token"] == TOKEN
    assert data["header"]["app_id"] == standin.app_id and data["header"]["tenant_key"] == standin.tenant_key
    message = data["event"]["message"]
    assert json.loads(message["content"]) == {"text": "@_user_1 借一台输液泵"}
    assert message["mentions"][0]["id"]["open_id"] == standin.bot_open_id
    assert data["event"]["sender"]["sender_id"]["open_id"] == "ou_li"
    # on the wire it was encrypted: lark's own cipher opens what the stand-in built
    body = standin.sender().build(result.payload)[0]
    assert json.loads(AESCipher(ENCRYPT_KEY).decrypt_str(json.loads(body)["encrypt"]))["header"]["event_id"] == "ev-1"
    assert ingress.headers[0]["X-Lark-Signature"] and ingress.headers[0]["X-Lark-Request-Nonce"]


@pytest.mark.parametrize("tamper", ["bad_signature", "no_signature", "wrong_token", "wrong_key"])
async def test_forged_requests_are_rejected(standin: FeishuStandIn, ingress: Ingress, tamper: str) -> None:
    event = standin.message_event("x", "oc_a", "ou_a")
    result = await standin.deliver_event(ingress.url, EVENT_MESSAGE, event, retries=(), tamper=tamper)
    assert not result.acknowledged and result.status == 500  # lark answers every failure with 500
    assert ingress.received == []


async def test_stale_timestamp_passes_lark_so_the_ingress_must_check_it(standin: FeishuStandIn,
                                                                       ingress: Ingress) -> None:
    event = standin.message_event("x", "oc_a", "ou_a")
    result = await standin.deliver_event(ingress.url, EVENT_MESSAGE, event, retries=(), tamper="stale_timestamp")
    assert result.acknowledged  # lark-oapi 1.7.5 has no freshness check
    assert time.time() - int(ingress.headers[0]["X-Lark-Request-Timestamp"]) > 3000


async def test_plain_events_without_encrypt_key() -> None:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", encrypt_key=None, verification_token=TOKEN)
    ing, runner = await serve_ingress("", TOKEN)
    try:
        ok = await s.deliver_event(ing.url, EVENT_BOT_ADDED, s.bot_added("oc_new", "ou_admin", "设备群"),
                                   retries=())
        forged = await s.deliver_event(ing.url, EVENT_BOT_ADDED, s.bot_added("oc_new", "ou_admin"), retries=(),
                                       tamper="wrong_token")
        assert ok.acknowledged and not forged.acknowledged
        assert ing.received[0]["data"]["event"]["chat_id"] == "oc_new"
    finally:
        await runner.stop()


async def test_retries_until_acknowledged_with_the_same_event_id(standin: FeishuStandIn) -> None:
    seen: list[tuple[str, str]] = []

    async def flaky(request: Request) -> Response:
        body = json.loads(await request.body())
        payload = json.loads(AESCipher(ENCRYPT_KEY).decrypt_str(body["encrypt"]))
        seen.append((payload["header"]["event_id"], request.headers["x-lark-request-nonce"]))
        if len(seen) <= 2:
            return JSONResponse({"msg": "not yet"}, status_code=503)
        return JSONResponse({"msg": "success"})

    runner = ServerRunner(Starlette(routes=[Route("/hook", flaky, methods=["POST"])]))
    port = await runner.start("127.0.0.1", 0)
    try:
        started = time.monotonic()
        result = await standin.deliver_event(f"http://127.0.0.1:{port}/hook", EVENT_MESSAGE,
                                             standin.message_event("hi", "oc_r", "ou_r"), event_id="ev-retry",
                                             retries=(0.05, 0.1, 0.1, 0.1))
        assert result.acknowledged and [a.status for a in result.attempts] == [503, 503, 200]
        assert {event_id for event_id, _ in seen} == {"ev-retry"}
        assert len({nonce for _, nonce in seen}) == 3  # each push is signed afresh
        assert time.monotonic() - started >= 0.15
        assert standin.deliveries[-1] is result
    finally:
        await runner.stop()


async def test_timeouts_and_refused_connections_are_retried(standin: FeishuStandIn) -> None:
    calls = 0

    async def slow_once(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.5)
        return JSONResponse({})

    runner = ServerRunner(Starlette(routes=[Route("/hook", slow_once, methods=["POST"])]))
    port = await runner.start("127.0.0.1", 0)
    try:
        result = await standin.deliver_event(f"http://127.0.0.1:{port}/hook", EVENT_MESSAGE,
                                             standin.message_event("hi", "oc_t", "ou_t"), retries=(0.01,),
                                             timeout=0.2)
        assert result.acknowledged and result.attempts[0].status is None and "Timeout" in result.attempts[0].error
    finally:
        await runner.stop()
    gone = await standin.deliver_event(f"http://127.0.0.1:{port}/hook", EVENT_MESSAGE,
                                       standin.message_event("hi", "oc_t", "ou_t"), retries=(0.01, 0.01))
    assert not gone.acknowledged and len(gone.attempts) == 3 and gone.attempts[-1].error


async def test_card_action_returns_the_answer_and_updates_the_card(standin: FeishuStandIn,
                                                                  ingress: Ingress) -> None:
    client = (lark.Client.builder().app_id(standin.app_id).app_secret(standin.app_secret)
              .domain(standin.base_url).log_level(lark.LogLevel.ERROR).build())
    from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

    card = {"schema": "2.0", "body": {"elements": [{"tag": "button", "text": {"tag": "plain_text",
                                                                              "content": "确认"}}]}}
    sent = await asyncio.to_thread(client.im.v1.message.create, CreateMessageRequest.builder()
                                   .receive_id_type("chat_id").request_body(
                                       CreateMessageRequestBody.builder().receive_id("oc_card")
                                       .msg_type("interactive").content(json.dumps(card)).build()).build())
    answer = await standin.card_action(ingress.url, {"action": "confirm", "loan": "L-1"}, "ou_nurse",
                                       sent.data.message_id, form_value={"备注": "已检查"})
    assert answer["toast"] == {"type": "success", "content": "已处理"}
    data = ingress.received[0]["data"]
    assert data["header"]["event_type"] == "card.action.trigger"
    assert data["event"]["action"]["value"] == {"action": "confirm", "loan": "L-1"}
    assert data["event"]["action"]["form_value"] == {"备注": "已检查"}
    assert data["event"]["context"] == {"open_message_id": sent.data.message_id, "open_chat_id": "oc_card"}
    assert data["event"]["operator"]["open_id"] == "ou_nurse" and data["event"]["token"].startswith("c-")
    [msg] = standin.messages(chat_id="oc_card")
    assert msg.updated and "ou_nurse 已确认" in msg.text

    with pytest.raises(DeliveryError):
        await standin.card_action(ingress.url, {"a": 1}, "ou_x", sent.data.message_id, tamper="bad_signature")


async def test_v1_approval_and_other_builders(standin: FeishuStandIn, ingress: Ingress) -> None:
    approval = standin.approval_event("APPROVAL-LOAN", "INST-1", "APPROVED", event_id="uuid-approval-1")
    assert (await standin.deliver_payload(ingress.url, approval, retries=())).acknowledged
    standin.state.merge_json({"bitable": {"bascnX": {"tblY": {"records": [
        {"record_id": "recA", "fields": {"状态": "维修"}}]}}}})
    changed = standin.bitable_record_changed("bascnX", "tblY", "recA", operator_open_id="ou_li",
                                             before={"状态": "在用"})
    assert (await standin.deliver_event(ingress.url, EVENT_BITABLE_RECORD_CHANGED, changed, retries=())).acknowledged
    created = standin.user_created("ou_newbie", "新同事", email="new@example.org")
    assert (await standin.deliver_event(ingress.url, EVENT_USER_CREATED, created, retries=())).acknowledged
    deleted = standin.user_deleted("ou_newbie")
    assert (await standin.deliver_event(ingress.url, EVENT_USER_DELETED, deleted, retries=())).acknowledged
    v1_generic = await standin.deliver_event(ingress.url, "approval_instance",
                                             {"approval_code": "A", "instance_code": "I2", "status": "REJECTED"},
                                             schema="1.0", event_id="uuid-2", retries=())
    assert v1_generic.acknowledged

    kinds = [r["kind"] for r in ingress.received]
    assert kinds == ["approval", "bitable", "user_created", "user_deleted", "approval"]
    v1 = ingress.received[0]["data"]
    assert v1["uuid"] == "uuid-approval-1" and v1["event"]["instance_code"] == "INST-1"
    action = ingress.received[1]["data"]["event"]["action_list"][0]
    assert action["record_id"] == "recA" and json.loads(action["after_value"][0]["field_value"]) == "维修"
    assert ingress.received[2]["data"]["event"]["object"]["email"] == "new@example.org"
    assert ingress.received[3]["data"]["event"]["old_object"]["open_id"] == "ou_newbie"
    assert standin.state.find_user("new@example.org") is None  # gone from the directory
    assert ingress.received[4]["data"]["event"]["status"] == "REJECTED"


async def test_url_verification_and_admin_delivery(standin: FeishuStandIn, ingress: Ingress) -> None:
    check = await standin.url_verification(ingress.url, "chal-123")
    assert check.acknowledged and check.response_json == {"challenge": "chal-123"}

    standin.event_url = ingress.url
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        waited = (await http.post("/_standin/deliver", json={
            "message": {"text": "报修", "chat_id": "oc_admin", "sender_open_id": "ou_w"}, "wait": True,
            "retries": []})).json()
        scheduled = (await http.post("/_standin/deliver", json={
            "event_type": EVENT_BOT_ADDED, "event": standin.bot_added("oc_b", "ou_w"), "retries": [0.01]})).json()
        standin.event_url = None
        no_url = await http.post("/_standin/deliver", json={"event_type": EVENT_BOT_ADDED, "event": {}})
    assert no_url.status_code == 400 and "event_url" in no_url.json()["error"]
    assert waited["acknowledged"] and scheduled["scheduled"]
    for _ in range(100):
        if len(ingress.received) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [r["kind"] for r in ingress.received] == ["message", "bot_added"]


async def test_admin_delivery_as_another_organizations_user(standin: FeishuStandIn, ingress: Ingress) -> None:
    """One app serves several tenants: `tenant_key` pushes a message or a card press as that tenant's."""
    standin.event_url = ingress.url
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        message = (await http.post("/_standin/deliver", json={
            "tenant_key": "t_rennuo", "wait": True, "retries": [],
            "message": {"text": "交班 状态", "chat_id": "oc_ward", "sender_open_id": "ou_doc"}})).json()
        press = (await http.post("/_standin/deliver", json={
            "tenant_key": "t_rennuo", "card_action": {"value": {"op": "ack"}, "operator_open_id": "ou_doc",
                                                      "message_id": "om_card"}})).json()
        refused = await http.post("/_standin/deliver", json={"tenant_key": 7, "message": {
            "text": "x", "chat_id": "oc_ward", "sender_open_id": "ou_doc"}})
    assert message["acknowledged"] and "answer" in press
    assert refused.status_code == 400 and "tenant_key" in refused.json()["error"]
    pushed = [r["data"] for r in ingress.received]
    assert [p["header"]["tenant_key"] for p in pushed] == ["t_rennuo", "t_rennuo"]
    assert pushed[0]["event"]["sender"]["tenant_key"] == "t_rennuo"
    assert pushed[1]["event"]["operator"]["tenant_key"] == "t_rennuo"


def test_runs_as_its_own_process(tmp_path: Path) -> None:
    state = tmp_path / "standin.json"
    proc = subprocess.Popen([sys.executable, "-m", "engine.feishu.standin", "--port", "0", "--state", str(state),
                             "--seed-sample"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Feishu stand-in on http://127.0.0.1:" in line, line
        base = line.split()[3]
        token = httpx.post(f"{base}/open-apis/auth/v3/tenant_access_token/internal",
                           json={"app_id": "cli_standin", "app_secret": "standin-secret"}).json()
        auth = {"Authorization": f"Bearer {token['tenant_access_token']}"}
        sent = httpx.post(f"{base}/open-apis/im/v1/messages", params={"receive_id_type": "email"}, headers=auth,
                          json={"receive_id": "li.na@example.org", "msg_type": "text",
                                "content": '{"text":"来自子进程"}'}).json()
        assert sent["code"] == 0
        found = httpx.post(f"{base}/open-apis/bitable/v1/apps/bascnStandinDevices/tables/tblDevices/records/search",
                           headers=auth, json={}).json()
        assert found["data"]["total"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert any(json.loads(m["body"]["content"])["text"] == "来自子进程" for m in saved["messages"])
