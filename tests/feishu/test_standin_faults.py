"""Injected faults and enforced rate limits, as lark-oapi's client sees them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import lark_oapi as lark
import pytest
import requests
from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

from engine.feishu.standin import Fault, FeishuStandIn


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}")
    await s.start()
    yield s
    await s.stop()


def client_for(s: FeishuStandIn, timeout: float | None = None) -> lark.Client:
    builder = lark.Client.builder().app_id(s.app_id).app_secret(s.app_secret).domain(s.base_url) \
        .log_level(lark.LogLevel.ERROR)
    if timeout is not None:
        builder = builder.timeout(timeout)
    return builder.build()


def send(receive_id: str, text: str = "hi", id_type: str = "open_id") -> CreateMessageRequest:
    return CreateMessageRequest.builder().receive_id_type(id_type).request_body(
        CreateMessageRequestBody.builder().receive_id(receive_id).msg_type("text")
        .content(json.dumps({"text": text})).build()).build()


async def call(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_rate_limit_fault(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    standin.inject(Fault("rate_limit", path_prefix="/open-apis/im/v1/messages", times=2, reset=3))
    first = await call(client.im.v1.message.create, send("ou_a"))
    assert (first.code, first.raw.status_code) == (99991400, 429)
    assert first.raw.headers["x-ogw-ratelimit-reset"] == "3" and "x-ogw-ratelimit-limit" in first.raw.headers
    assert (await call(client.im.v1.message.create, send("ou_a"))).code == 99991400
    assert (await call(client.im.v1.message.create, send("ou_a"))).code == 0  # the fault is used up
    assert len(standin.messages(to="ou_a")) == 1
    assert [c.fault for c in standin.calls_to("/open-apis/im")] == ["rate_limit", "rate_limit", None]


async def test_server_error_html_then_json(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    await call(client.im.v1.message.create, send("ou_warm"))  # token fetched before the gateway breaks
    standin.inject(Fault("server_error", status=502, times=2))
    with pytest.raises(json.JSONDecodeError):  # lark-oapi cannot parse a gateway's HTML page
        await call(client.im.v1.message.create, send("ou_b"))
    second = await call(client.im.v1.message.create, send("ou_b"))
    assert second.raw.status_code == 502 and second.code != 0
    assert (await call(client.im.v1.message.create, send("ou_b"))).code == 0
    assert len(standin.messages(to="ou_b")) == 1


async def test_server_error_scoped_by_path_and_window(standin: FeishuStandIn) -> None:
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        token = (await http.post("/open-apis/auth/v3/tenant_access_token/internal", json={
            "app_id": standin.app_id, "app_secret": standin.app_secret})).json()["tenant_access_token"]
        standin.inject(Fault("server_error", path_prefix="/open-apis/bitable/", status=500, html=False,
                             times=None, duration=0.3))
        im = await http.post("/open-apis/im/v1/messages", params={"receive_id_type": "open_id"},
                             json={"receive_id": "ou_c", "msg_type": "text", "content": '{"text":"x"}'},
                             headers={"Authorization": f"Bearer {token}"})
        assert im.json()["code"] == 0  # other paths are unaffected
        url = "/open-apis/bitable/v1/apps/bascn1/tables/tbl1/records"
        auth = {"Authorization": f"Bearer {token}"}
        during = [(await http.get(url, headers=auth)).status_code for _ in range(3)]
        await asyncio.sleep(0.35)
        after = await http.get(url, headers=auth)
    assert during == [500, 500, 500]  # for the whole window, however many calls
    assert after.status_code == 200 and after.json()["code"] == 0


async def test_slow_fault_trips_client_timeout(standin: FeishuStandIn) -> None:
    client = client_for(standin, timeout=0.3)
    await call(client.im.v1.message.create, send("ou_warm"))
    standin.inject(Fault("slow", delay=1.0))
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        await call(client.im.v1.message.create, send("ou_d"))
    assert time.monotonic() - started < 0.9
    await asyncio.sleep(0.8)  # the slow call still completes server-side (a timeout is not a failure)
    assert [m.to for m in standin.messages()].count("ou_d") == 1
    # recorded as answered by the fault (regression, issue 9: a slowed call was recorded as a plain one)
    assert [c.fault for c in standin.calls_to("/open-apis/im/v1/messages")] == [None, "slow"]


async def test_expired_token_fault(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    standin.inject(Fault("expired_token", path_prefix="/open-apis/im/"))
    resp = await call(client.im.v1.message.create, send("ou_e"))
    assert (resp.code, resp.raw.status_code) == (99991663, 400)
    assert (await call(client.im.v1.message.create, send("ou_e"))).code == 0


async def test_faults_skip_token_endpoints_unless_named(standin: FeishuStandIn) -> None:
    standin.inject(Fault("rate_limit", times=1))
    client = client_for(standin)
    resp = await call(client.im.v1.message.create, send("ou_f"))  # token fetch passes, the API call fails
    assert resp.code == 99991400
    standin.inject(Fault("server_error", path_prefix="/open-apis/auth/", html=False, times=1))
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        r = await http.post("/open-apis/auth/v3/tenant_access_token/internal",
                            json={"app_id": standin.app_id, "app_secret": standin.app_secret})
    assert r.status_code == 502


async def test_fault_scoped_to_one_app(standin: FeishuStandIn) -> None:
    other = f"cli_{uuid.uuid4().hex[:16]}"
    standin.add_app(other, "s2", "t2")
    standin.inject(Fault("rate_limit", times=None, duration=5, app_id=other))
    mine = await call(client_for(standin).im.v1.message.create, send("ou_g"))
    theirs_client = lark.Client.builder().app_id(other).app_secret("s2").domain(standin.base_url).build()
    theirs = await call(theirs_client.im.v1.message.create, send("ou_g"))
    assert (mine.code, theirs.code) == (0, 99991400)
    standin.clear_faults()
    assert (await call(theirs_client.im.v1.message.create, send("ou_g"))).code == 0


async def test_enforced_rate_limit_per_chat_and_client_side_limiter() -> None:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", enforce_rate_limits=True)
    await s.start()
    try:
        client = client_for(s)
        burst = [await call(client.im.v1.message.create, send("oc_busy", str(i), "chat_id")) for i in range(7)]
        codes = [r.code for r in burst]
        assert codes[:5] == [0] * 5 and set(codes[5:]) == {230020}  # 5/s into one chat
        assert burst[5].raw.headers["x-ogw-ratelimit-reset"] == "1"
        other_chat = await call(client.im.v1.message.create, send("oc_quiet", "x", "chat_id"))
        assert other_chat.code == 0

        # a client that spaces its sends at 4/s stays under the limit
        await asyncio.sleep(1.05)
        spaced = []
        for i in range(8):
            spaced.append((await call(client.im.v1.message.create, send("oc_paced", str(i), "chat_id"))).code)
            await asyncio.sleep(0.25)
        assert spaced == [0] * 8
    finally:
        await s.stop()


async def test_enforced_app_wide_limit() -> None:
    from engine.feishu.standin import RateRule

    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", enforce_rate_limits=True,
                      rate_rules=(RateRule("im.message.send", 3, 1.0),))
    await s.start()
    try:
        client = client_for(s)
        codes = [(await call(client.im.v1.message.create, send(f"ou_{i}"))).code for i in range(4)]
        assert codes == [0, 0, 0, 99991400]
    finally:
        await s.stop()
