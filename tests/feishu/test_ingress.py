"""The webhook ingress end to end: real HTTP (uvicorn), pushes encrypted, signed and retried like Feishu's.

The dispatcher here is a tiny recorder implementing the engine's own ``Dispatcher`` interface; lark-oapi
runs for real, and pushes come from the Feishu stand-in's delivery code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from engine.config import EngineConfig, OrgContext, parse_config
from engine.events import BitableRecordChanged, CardAction, FeishuEvent, MessageReceived
from engine.feishu.ingress import build_ingress
from engine.feishu.standin import FeishuStandIn, crypto
from engine.feishu.standin import events as ev
from engine.feishu.standin.delivery import EventSender
from engine.runtime.dispatch import DispatchResult
from engine.runtime.errors import TemporalUnavailable

APP_ID = "cli_ingress_test"
TENANT = "t_hospital"
TOKEN = "v-token-ingress"
KEY = "encrypt-key-ingress"
BOT = "ou_bot_ingress"


class RecordingDispatcher:
    """The engine's Dispatcher interface, recording what reached it; can fail or be slow on demand."""

    def __init__(self) -> None:
        self.events: list[tuple[FeishuEvent, OrgContext]] = []
        self.calls = 0
        self.fail_times = 0
        self.error: Exception = TemporalUnavailable("temporal down")
        self.delay = 0.0
        self.result = DispatchResult(effects=1)
        self.is_healthy: bool | None = None

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise self.error
        self.events.append((event, org))
        return self.result


class HealthyDispatcher(RecordingDispatcher):
    async def healthy(self) -> bool:
        return bool(self.is_healthy)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY",
                 "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INGRESS_TEST_SECRET", "app-secret")
    monkeypatch.setenv("INGRESS_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("INGRESS_TEST_KEY", KEY)


def make_config(tmp_path: Path, *, encrypt: bool = True, max_body: int = 65_536) -> EngineConfig:
    feishu: dict[str, Any] = {"app_id": APP_ID, "app_secret": {"env": "INGRESS_TEST_SECRET"},
                              "verification_token": {"env": "INGRESS_TEST_TOKEN"}, "bot_open_id": BOT}
    if encrypt:
        feishu["encrypt_key"] = {"env": "INGRESS_TEST_KEY"}
    data = {"feishu": feishu, "ingress": {"max_body_bytes": max_body, "timestamp_tolerance_seconds": 300},
            "organizations": {"hosp": {"name": "Hospital", "tenant_key": TENANT}}}
    return parse_config(data, tmp_path / "engine.toml", {})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave pytest's signal handling alone
        yield


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, on the running loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY, as in runner.bind
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def v2(event_type: str, event: dict[str, Any], *, tenant: str = TENANT, app_id: str = APP_ID,
       event_id: str | None = None, create_time_ms: int | None = None) -> dict[str, Any]:
    return ev.envelope_v2(event_type, event, app_id=app_id, tenant_key=tenant, token=TOKEN,
                          event_id=event_id or uuid.uuid4().hex, create_time_ms=create_time_ms)


def message(text: str = "status A-12", **kwargs: Any) -> dict[str, Any]:
    return v2(ev.EVENT_MESSAGE, ev.message_event(text, "oc_ward", "ou_nurse", bot_open_id=BOT, tenant_key=TENANT),
              **kwargs)


def make_standin(encrypt: bool = True) -> FeishuStandIn:
    """The Feishu stand-in holding this test app's keys (it is not started: only its delivery is used)."""
    return FeishuStandIn(app_id=APP_ID, tenant_key=TENANT, bot_open_id=BOT, encrypt_key=KEY if encrypt else None,
                         verification_token=TOKEN)


def sender(encrypt: bool = True) -> EventSender:
    """The stand-in's signer, for pushes sent in-process through ``httpx.ASGITransport``."""
    return make_standin(encrypt).sender()


def message_event(text: str = "status A-12") -> dict[str, Any]:
    return ev.message_event(text, "oc_ward", "ou_nurse", bot_open_id=BOT, tenant_key=TENANT)


async def post(app: Any, body: bytes, headers: dict[str, str], path: str = "/feishu/events") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingress") as client:
        return await client.post(path, content=body, headers=headers)


# ------------------------------------------------------------------------------ url verification


@pytest.mark.parametrize("encrypt", [False, True])
async def test_url_verification(tmp_path: Path, encrypt: bool) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path, encrypt=encrypt), dispatcher)
    body, _ = sender(encrypt).build({"challenge": "c", "token": TOKEN, "type": "url_verification"})
    assert (b"encrypt" in body) is encrypt
    async with serve(app) as url:
        result = await make_standin(encrypt).url_verification(f"{url}/feishu/events", "ajls384kdjx98XX")
    assert result.status == 200
    assert result.response_json == {"challenge": "ajls384kdjx98XX"}
    assert result.attempts[0].elapsed < 1.0
    assert dispatcher.calls == 0


async def test_url_verification_with_wrong_token_is_refused(tmp_path: Path) -> None:
    app = build_ingress(make_config(tmp_path), RecordingDispatcher())
    body, headers = sender().build({"challenge": "c", "token": "forged", "type": "url_verification"})
    assert (await post(app, body, headers)).status_code == 401


# ------------------------------------------------------------------------------ the happy path


async def test_signed_encrypted_event_reaches_dispatcher_normalized(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    async with serve(app) as url:
        result = await make_standin().deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE,
                                                    message_event("@ok status A-12"), event_id="evt-1", retries=())
    assert result.status == 200
    ((event, org),) = dispatcher.events
    assert isinstance(event, MessageReceived)
    assert event.event_id == "evt-1"
    assert event.text == "@ok status A-12"
    assert event.mentions_bot and event.chat_id == "oc_ward" and event.sender_open_id == "ou_nurse"
    assert org.id == "hosp"


async def test_a_command_sent_with_at_all_reaches_the_scenario_as_typed(tmp_path: Path) -> None:
    """Issue 15: "@所有人" puts @_all into the text but not into mentions; it was left in the command."""
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    event = message_event("@_all 建群 协和医院 CT128 华北")
    assert json.loads(event["message"]["content"]) == {"text": "@_user_1 @_all 建群 协和医院 CT128 华北"}
    assert [m["key"] for m in event["message"]["mentions"]] == ["@_user_1"]
    async with serve(app) as url:
        result = await make_standin().deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, event, retries=())
    assert result.status == 200
    ((received, _),) = dispatcher.events
    assert isinstance(received, MessageReceived)
    assert (received.text, received.mentions_bot) == ("建群 协和医院 CT128 华北", True)


async def test_plaintext_event_without_encrypt_key(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path, encrypt=False), dispatcher)
    body, headers = sender(encrypt=False).build(message())
    assert (await post(app, body, headers)).status_code == 200
    assert len(dispatcher.events) == 1
    body, headers = sender(encrypt=False).build(message(), tamper="wrong_token")
    assert (await post(app, body, headers)).status_code == 401
    assert len(dispatcher.events) == 1


async def test_v1_approval_event(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = ev.approval_v1("AP", "INST", "APPROVED", app_id=APP_ID, tenant_key=TENANT, token=TOKEN,
                             event_id="uuid-approval-1")
    body, headers = sender().build(payload)
    assert (await post(app, body, headers)).status_code == 200
    body, headers = sender().build(payload)  # a redelivery: answered, not dispatched again
    assert (await post(app, body, headers)).status_code == 200
    assert [e.event_id for e, _ in dispatcher.events] == ["uuid-approval-1"]


# ------------------------------------------------------------------------------ rejections


@pytest.mark.parametrize("tamper", ["bad_signature", "no_signature", "wrong_token", "stale_timestamp", "wrong_key"])
async def test_forged_pushes_never_reach_the_dispatcher(tmp_path: Path, tamper: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    caplog.set_level(logging.WARNING, logger="engine.feishu.ingress")
    async with serve(app) as url:
        result = await make_standin().deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, message_event(),
                                                    retries=(), tamper=tamper)
    assert result.status == 401
    assert dispatcher.calls == 0
    refusals = [r for r in caplog.records if r.name == "engine.feishu.ingress" and "refused" in r.getMessage()]
    assert len(refusals) == 1


@pytest.mark.parametrize("tamper", ["bad_signature", "wrong_token", "wrong_key"])
async def test_a_forged_push_is_one_log_line_without_a_traceback(tmp_path: Path, tamper: str,
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """lark-oapi reports every push it refuses with ``logger.exception``; the ingress keeps that out of the
    log (regression, issue 9: each forged request wrote an ERROR traceback, twice, into the ingress log)."""
    app = build_ingress(make_config(tmp_path), RecordingDispatcher())
    caplog.set_level(logging.WARNING)
    body, headers = sender().build(message(), tamper=tamper)
    assert (await post(app, body, headers)).status_code == 401
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["engine.feishu.ingress"]
    assert records[0].exc_info is None and "not authentic" in records[0].getMessage()
    assert "Traceback" not in capsys.readouterr().out  # lark's own stdout handler stays quiet too


async def test_future_request_timestamp_is_refused(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    body, headers = sender().build(message(), timestamp=str(int(time.time()) + 3600))
    assert (await post(app, body, headers)).status_code == 401
    assert dispatcher.calls == 0


async def test_event_create_time_window(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    now_ms = int(time.time() * 1000)
    # Two days old: no redelivery is that late (a replay with a fresh, validly signed request).
    body, headers = sender().build(message(create_time_ms=now_ms - 2 * 86_400_000))
    assert (await post(app, body, headers)).status_code == 401
    body, headers = sender().build(message(create_time_ms=now_ms + 3_600_000))
    assert (await post(app, body, headers)).status_code == 401
    assert dispatcher.calls == 0
    # Feishu's 1 h redelivery keeps the original create_time: still accepted.
    body, headers = sender().build(message(create_time_ms=now_ms - 3_600_000))
    assert (await post(app, body, headers)).status_code == 200
    assert dispatcher.calls == 1


async def test_replayed_event_id_is_answered_without_a_second_dispatch(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    standin, event = make_standin(), message_event()
    async with serve(app) as url:
        for _ in range(3):  # each push freshly signed, as Feishu's redeliveries are
            result = await standin.deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, event,
                                                 event_id="evt-replayed", retries=())
            assert result.status == 200
    assert dispatcher.calls == 1


@pytest.mark.parametrize(("body", "status"), [
    (b"this is not json", 400),
    (b"\xff\xfe\x00", 400),
    (b"[1, 2, 3]", 400),
    (b'{"hello": "world"}', 400),
    (b'{"schema": "2.0"}', 400),
])
async def test_bodies_that_are_not_events(tmp_path: Path, body: bytes, status: int) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    response = await post(app, body, {"Content-Type": "application/json"})
    assert response.status_code == status
    assert dispatcher.calls == 0


async def test_unknown_tenant_and_unknown_app(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    standin = make_standin()
    standin.add_app("cli_other_app", "other-secret", TENANT)
    async with serve(app) as url:
        result = await standin.deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, message_event(),
                                             tenant_key="t_somebody_else", retries=())
        assert result.status == 403
        result = await standin.deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, message_event(),
                                             app_id="cli_other_app", retries=())
        assert result.status == 403
    assert dispatcher.calls == 0


async def test_malformed_known_event(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = message()
    payload["event"]["message"]["content"] = "{broken"
    body, headers = sender().build(payload)
    response = await post(app, body, headers)
    assert response.status_code == 400
    assert "event.message.content" in response.json()["msg"]
    assert dispatcher.calls == 0


async def test_oversized_body_with_content_length(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path, max_body=2048), dispatcher)
    body, headers = sender().build(message("x" * 4096))
    assert (await post(app, body, headers)).status_code == 413
    assert dispatcher.calls == 0


async def test_oversized_body_without_content_length(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path, max_body=2048), dispatcher)
    body, headers = sender().build(message("x" * 4096))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start:start + 512]

    async with serve(app) as url, httpx.AsyncClient(trust_env=False) as client:
        request = client.build_request("POST", f"{url}/feishu/events", content=chunks(), headers=headers)
        assert "content-length" not in request.headers  # chunked transfer encoding
        response = await client.send(request)
    assert response.status_code == 413
    assert dispatcher.calls == 0


# ------------------------------------------------------------------------- acknowledgement rules


async def test_temporal_unavailable_then_redelivery_succeeds_once(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.fail_times = 2
    app = build_ingress(make_config(tmp_path), dispatcher)
    async with serve(app) as url:
        result = await make_standin().deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, message_event(),
                                                    retries=(0.05, 0.05, 0.05, 0.05))
    assert [a.status for a in result.attempts] == [503, 503, 200]
    assert len(dispatcher.events) == 1  # exactly one successful dispatch


async def test_slow_dispatch_answers_503_within_3s_and_its_success_still_counts(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.delay = 3.2
    app = build_ingress(make_config(tmp_path), dispatcher)
    standin, event = make_standin(), message_event()
    async with serve(app) as url:
        result = await standin.deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, event, event_id="evt-slow",
                                             retries=())
        assert result.status == 503
        assert result.attempts[0].elapsed < 3.0
        await asyncio.sleep(1.0)  # the dispatch that ran over finishes
        assert len(dispatcher.events) == 1
        result = await standin.deliver_event(f"{url}/feishu/events", ev.EVENT_MESSAGE, event, event_id="evt-slow",
                                             retries=())
    assert result.status == 200
    assert dispatcher.calls == 1


async def test_redelivery_during_a_dispatch_joins_it(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.delay = 0.3
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = message()
    pushes = [sender().build(payload) for _ in range(2)]
    responses = await asyncio.gather(*(post(app, body, headers) for body, headers in pushes))
    assert [r.status_code for r in responses] == [200, 200]
    assert dispatcher.calls == 1


async def test_dispatcher_error_is_500_and_logged_with_event_id(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.fail_times = 1
    dispatcher.error = RuntimeError("router bug")
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = message()
    body, headers = sender().build(payload)
    with caplog.at_level(logging.ERROR, logger="engine.feishu.ingress"):
        assert (await post(app, body, headers)).status_code == 500
    assert any(payload["header"]["event_id"] in r.getMessage() and r.exc_info for r in caplog.records)
    body, headers = sender().build(payload)  # not remembered: the redelivery is dispatched
    assert (await post(app, body, headers)).status_code == 200
    assert len(dispatcher.events) == 1


async def test_unknown_event_type_is_acknowledged_not_dispatched(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = v2("im.message.reaction.created_v1", {"message_id": "om_1", "reaction_type": {"emoji_type": "OK"}})
    body, headers = sender().build(payload)
    assert (await post(app, body, headers)).status_code == 200
    # ... but still authenticated: a forged one is refused.
    body, headers = sender().build(payload, tamper="bad_signature")
    assert (await post(app, body, headers)).status_code == 401
    v1_payload = ev.envelope_v1("leave_approvalV2", {"instance_code": "i"}, app_id=APP_ID, tenant_key=TENANT,
                                token=TOKEN)
    body, headers = sender().build(v1_payload)
    assert (await post(app, body, headers)).status_code == 200
    assert dispatcher.calls == 0


async def test_bitable_records_dispatched_one_by_one_and_resumed(tmp_path: Path) -> None:
    event = ev.bitable_record_changed("bas1", "tbl1", "rec1", operator_open_id="ou_1", after={"状态": "待校准"})
    event["action_list"].append({**event["action_list"][0], "record_id": "rec2"})
    payload = v2(ev.EVENT_BITABLE_RECORD_CHANGED, event)

    class FailSecond(RecordingDispatcher):
        async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
            if isinstance(event, BitableRecordChanged) and event.record_id == "rec2" and self.fail_times:
                self.fail_times -= 1
                raise TemporalUnavailable("down")
            return await super().dispatch(event, org)

    dispatcher = FailSecond()
    dispatcher.fail_times = 1
    app = build_ingress(make_config(tmp_path), dispatcher)
    body, headers = sender().build(payload)
    assert (await post(app, body, headers)).status_code == 503
    body, headers = sender().build(payload)
    assert (await post(app, body, headers)).status_code == 200
    event_id = payload["header"]["event_id"]
    assert [e.event_id for e, _ in dispatcher.events] == [f"{event_id}:0", f"{event_id}:1"]


# ---------------------------------------------------------------------------------- card callbacks


async def test_card_callback_answered_with_toast_and_card(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    card = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "已确认"}]}}
    dispatcher.result = DispatchResult(toast="已确认校准", card=card, effects=1)
    app = build_ingress(make_config(tmp_path), dispatcher)
    async with serve(app) as url:
        answer = await make_standin().card_action(f"{url}/feishu/card", {"op": "confirm", "device": "A-12"},
                                                  "ou_nurse", "om_card", chat_id="oc_ward", form_value={"note": "ok"})
    assert answer == {"toast": {"type": "info", "content": "已确认校准"},
                                    "card": {"type": "raw", "data": card}}
    ((event, _),) = dispatcher.events
    assert isinstance(event, CardAction)
    assert event.action_value == {"op": "confirm", "device": "A-12"}
    assert event.form_value == {"note": "ok"}
    assert (event.open_message_id, event.open_chat_id, event.operator_open_id) == ("om_card", "oc_ward", "ou_nurse")


async def test_card_callback_without_result_leaves_the_card(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.result = DispatchResult()
    app = build_ingress(make_config(tmp_path), dispatcher)
    payload = v2(ev.EVENT_CARD_ACTION, ev.card_action_event({"op": "x"}, "ou_1", "om_1", "oc_1", tenant_key=TENANT))
    body, headers = sender().build(payload)
    response = await post(app, body, headers, path="/feishu/card")
    assert (response.status_code, response.json()) == (200, {})


# ------------------------------------------------------------------------------------ the rest


async def test_healthz(tmp_path: Path) -> None:
    app = build_ingress(make_config(tmp_path), RecordingDispatcher())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as client:
        assert (await client.get("/healthz")).json() == {"ok": True}
    dispatcher = HealthyDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as client:
        assert (await client.get("/healthz")).json() == {"ok": True, "temporal": False}
        dispatcher.is_healthy = True
        assert (await client.get("/healthz")).json() == {"ok": True, "temporal": True}


async def test_extra_routes_are_mounted(tmp_path: Path) -> None:
    async def qr(request: Any) -> PlainTextResponse:
        return PlainTextResponse("qr page")

    app = build_ingress(make_config(tmp_path), RecordingDispatcher(), extra_routes=[Route("/plugins/qr", qr)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i") as client:
        response = await client.get("/plugins/qr")
    assert (response.status_code, response.text) == (200, "qr page")


async def test_lowercase_headers_are_canonicalized(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path), dispatcher)
    body, headers = sender().build(message())
    response = await post(app, body, {name.lower(): value for name, value in headers.items()})
    assert response.status_code == 200
    assert json.loads(response.text) == {}
    assert len(dispatcher.events) == 1


class CancelledAsItsOwnError(RecordingDispatcher):
    """Like the Temporal client: a cancelled update RPC ends in an error of its own, not CancelledError."""

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        self.calls += 1
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            raise RuntimeError("Timeout or cancellation waiting for update") from None
        self.events.append((event, org))
        return self.result


@pytest.mark.parametrize("delay, finished", [(0.3, True), (30.0, False)])
async def test_a_stopping_ingress_drains_dispatches_answered_503(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                 delay: float, finished: bool) -> None:
    """Regression (issue 9): an ingress stopped while a dispatch that ran over its budget was still under way
    logged an ERROR traceback per dispatch. It now lets them finish for a grace period, then cancels the rest
    with one line each (Feishu pushes them again: they were answered 503)."""
    dispatcher = CancelledAsItsOwnError()
    dispatcher.delay = delay
    app = build_ingress(make_config(tmp_path), dispatcher, dispatch_timeout=0.1)
    body, headers = sender().build(message())
    assert (await post(app, body, headers)).status_code == 503
    caplog.set_level(logging.INFO, logger="engine.feishu.ingress")
    await app.state.pipeline.drain(grace=1.0)
    assert len(dispatcher.events) == (1 if finished else 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    cancelled = [r for r in caplog.records if "cancelled" in r.getMessage()]
    assert len(cancelled) == (0 if finished else 1) and all(r.exc_info is None for r in cancelled)


# ------------------------------------------------------------ refusals are written for the sender


def signed(body: bytes, **headers: str) -> dict[str, str]:
    """Headers signing ``body`` with the test app's encrypt key, as Feishu does; ``headers`` override."""
    ts, nonce = str(int(time.time())), "nonce-1"
    base = {"Content-Type": "application/json", "X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": crypto.signature(ts, nonce, KEY, body)}
    return {**base, **headers}


def encrypted(plain: str | bytes) -> bytes:
    return json.dumps({"encrypt": crypto.encrypt(KEY, plain)}).encode()


def _valid_push() -> tuple[bytes, dict[str, str]]:
    return sender().build(message())


REFUSALS: dict[str, tuple[Callable[[], tuple[bytes, dict[str, str]]], int, str]] = {
    # issue 15: answered "401 not authentic: unsupported operand type(s) for +: 'NoneType' and 'NoneType'"
    "no signature headers at all": (
        lambda: (_valid_push()[0], {"Content-Type": "application/json"}), 401,
        "not authentic: missing X-Lark-Request-Timestamp, X-Lark-Request-Nonce, X-Lark-Signature"),
    "no signature header": (
        lambda: sender().build(message(), tamper="no_signature"), 401, "not authentic: missing X-Lark-Signature"),
    "empty signature header": (
        lambda: (_valid_push()[0], {**_valid_push()[1], "X-Lark-Signature": ""}), 401,
        "not authentic: missing X-Lark-Signature"),
    # issue 15: answered 500, with a 50-line traceback in the log
    "100k [": (lambda: (b"[" * 100_000, {"Content-Type": "application/json"}), 400,
               "body nests too deeply to be a Feishu event"),
    "100k nested objects": (lambda: (b'{"a":' * 100_000, {"Content-Type": "application/json"}), 400,
                            "body nests too deeply to be a Feishu event"),
    "deeply nested plaintext, encrypted and signed": (
        lambda: (encrypted("[" * 100_000), signed(encrypted("[" * 100_000))), 401,
        "not authentic: body cannot be decrypted or read as an event"),
    "JSON string": (lambda: (b'"event"', {}), 400, "body is not a Feishu event"),
    "JSON number": (lambda: (b"12", {}), 400, "body is not a Feishu event"),
    "JSON null": (lambda: (b"null", {}), 400, "body is not a Feishu event"),
    "JSON list": (lambda: (b"[{}]", {}), 400, "body is not a Feishu event"),
    "empty body": (lambda: (b"", {}), 400, "body is not JSON"),
    "form-encoded body": (lambda: (b"encrypt=abc&token=x", {"Content-Type": "application/x-www-form-urlencoded"}),
                          400, "body is not JSON"),
    "not UTF-8": (lambda: (b'{"encrypt": "\xff\xfe"}', {}), 400, "body is not JSON"),
    "encrypt is not a string": (lambda: (b'{"encrypt": 123}', {}), 400, "body is not a Feishu event"),
    "encrypt is not base64": (lambda: (b'{"encrypt": "%%%"}', signed(b'{"encrypt": "%%%"}')), 401,
                              "not authentic: body cannot be decrypted or read as an event"),
    "encrypted text that is not JSON": (lambda: (encrypted("not json"), signed(encrypted("not json"))), 401,
                                        "not authentic: body cannot be decrypted or read as an event"),
    "timestamp nan": (lambda: sender().build(message(), timestamp="nan"), 401,
                      "X-Lark-Request-Timestamp 'nan' is not a timestamp"),
    "wrong signature": (lambda: sender().build(message(), tamper="bad_signature"), 401,
                        "not authentic: signature does not match"),
    "wrong verification token": (lambda: sender().build(message(), tamper="wrong_token"), 401,
                                 "not authentic: verification token does not match"),
    "malformed create_time": (
        lambda: sender().build({**message(), "header": {**message()["header"], "create_time": "x" * 5000}}), 400,
        "malformed event: header.create_time: expected an epoch timestamp, found '" + "x" * 59),
}


@pytest.mark.parametrize("path", ["/feishu/events", "/feishu/card"])
@pytest.mark.parametrize("case", list(REFUSALS))
async def test_a_refusal_is_a_short_reason_and_one_log_line(tmp_path: Path, case: str, path: str,
                                                            caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 15: every refusal is a 4xx whose reason is written for the sender (no Python internals), logged
    as one line without a traceback, over real HTTP."""
    build, status, reason = REFUSALS[case]
    body, headers = build()
    dispatcher = RecordingDispatcher()
    app = build_ingress(make_config(tmp_path, max_body=1_048_576), dispatcher)
    caplog.set_level(logging.DEBUG)
    async with serve(app) as url, httpx.AsyncClient() as client:
        response = await client.post(f"{url}{path}", content=body, headers=headers)
    assert (response.status_code, response.json()) == (status, {"msg": reason})
    assert dispatcher.calls == 0
    lines = [r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith(("httpx", "httpcore"))]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == "engine.feishu.ingress" and lines[0].exc_info is None
    assert f"refused with {status}: {reason}" in lines[0].getMessage()
    assert "Traceback" not in capsys.readouterr().out + caplog.text


async def test_a_refusal_quoting_what_was_sent_is_cut_short(tmp_path: Path) -> None:
    app = build_ingress(make_config(tmp_path), RecordingDispatcher())
    standin = make_standin()
    huge_app_id = "cli_" + "x" * 10_000
    standin.add_app(huge_app_id, "secret", TENANT)
    body, headers = sender().build(message(app_id=huge_app_id))
    response = await post(app, body, headers)
    assert response.status_code == 403
    assert response.json()["msg"] == f"unknown app_id {huge_app_id!r}"[:199] + "…"
