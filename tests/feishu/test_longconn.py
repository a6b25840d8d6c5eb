"""The long-connection ingress: what acknowledges a data frame, fed the way the ws client feeds it.

The engine's ws client calls ``LongConnection.acknowledge(payload_bytes)`` on lark's own loop, in its own
thread, for every data frame and sends back the ``(code, answer)`` it returns. These tests do exactly that
from a worker thread, with the engine's loop running here. The whole client against the stand-in's
gateway, over real sockets, is in ``test_longconn_gateway.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from engine.config import EngineConfig, OrgContext, parse_config
from engine.events import CardAction, FeishuEvent, MessageReceived
from engine.feishu.longconn import LongConnection
from engine.feishu.standin import events as ev
from engine.runtime.dispatch import DispatchResult
from engine.runtime.errors import TemporalUnavailable

APP_ID = "cli_longconn_test"
TENANT = "t_hospital"
BOT = "ou_bot_longconn"


class RecordingDispatcher:
    """The engine's Dispatcher interface, recording what reached it; can fail or be slow on demand."""

    def __init__(self) -> None:
        self.events: list[tuple[FeishuEvent, OrgContext]] = []
        self.calls = 0
        self.fail_times = 0
        self.delay = 0.0
        self.result = DispatchResult(effects=1)

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise TemporalUnavailable("temporal down")
        self.events.append((event, org))
        return self.result


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY",
                 "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LONGCONN_TEST_SECRET", "app-secret")


def make_config(tmp_path: Path) -> EngineConfig:
    data = {"feishu": {"app_id": APP_ID, "app_secret": {"env": "LONGCONN_TEST_SECRET"}, "bot_open_id": BOT},
            "ingress": {"mode": "long_connection"},
            "organizations": {"hosp": {"tenant_key": TENANT}}}
    return parse_config(data, tmp_path / "engine.toml", {})


def payload(event_type: str, event: dict[str, Any], *, tenant: str = TENANT, event_id: str | None = None) -> bytes:
    body = ev.envelope_v2(event_type, event, app_id=APP_ID, tenant_key=tenant, token="",
                          event_id=event_id or uuid.uuid4().hex)
    return json.dumps(body, ensure_ascii=False).encode()


def message(text: str = "status A-12", **kwargs: Any) -> bytes:
    return payload(ev.EVENT_MESSAGE, ev.message_event(text, "oc_ward", "ou_nurse", bot_open_id=BOT,
                                                      tenant_key=TENANT), **kwargs)


def connection(tmp_path: Path, dispatcher: RecordingDispatcher, **kwargs: Any) -> LongConnection:
    return LongConnection(make_config(tmp_path), dispatcher, asyncio.get_running_loop(), **kwargs)


async def lark_acks(conn: LongConnection, frame_payload: bytes) -> tuple[int, Any]:
    """What the ws client does with a data frame: on a loop and thread that are not the engine's."""
    return await asyncio.to_thread(asyncio.run, conn.acknowledge(frame_payload))


async def settle(conn: LongConnection) -> None:
    while conn.pending:
        await asyncio.sleep(0.01)


async def test_event_goes_through_normalize_and_dispatch(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    conn = connection(tmp_path, dispatcher)
    assert await lark_acks(conn, message("@_x 校准 A-12", event_id="evt-ws-1")) == (200, None)
    ((event, org),) = dispatcher.events  # dispatched before the acknowledgement
    assert isinstance(event, MessageReceived)
    assert (event.event_id, event.text, event.mentions_bot, org.id) == ("evt-ws-1", "@_x 校准 A-12", True, "hosp")


async def test_ack_waits_for_the_hand_off_and_duplicates_dispatch_once(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.delay = 0.3
    conn = connection(tmp_path, dispatcher)
    frame = message(event_id="evt-ws-dup")
    started = time.monotonic()
    # Feishu may push the same event again while the first push is still being handled
    acks = await asyncio.gather(lark_acks(conn, frame), lark_acks(conn, frame))
    assert time.monotonic() - started >= 0.3  # no acknowledgement before the dispatch returned
    assert acks == [(200, None), (200, None)]
    assert await lark_acks(conn, frame) == (200, None)  # and once more, after it was dispatched
    await settle(conn)
    assert dispatcher.calls == 1


async def test_failed_dispatch_is_retried_in_process(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.fail_times = 2  # TemporalUnavailable twice
    conn = connection(tmp_path, dispatcher, retry_delays=(0.02,))
    assert await lark_acks(conn, message(event_id="evt-ws-retry")) == (503, None)  # Feishu pushes it again
    await settle(conn)
    assert dispatcher.calls == 3
    assert [e.event_id for e, _ in dispatcher.events] == ["evt-ws-retry"]


async def test_retry_gives_up_after_max_retry_seconds(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.fail_times = 100
    conn = connection(tmp_path, dispatcher, retry_delays=(0.05,), max_retry_seconds=0.2)
    await lark_acks(conn, message())
    await settle(conn)
    assert 2 <= dispatcher.calls <= 6
    assert dispatcher.events == []


async def test_unknown_tenant_and_unknown_type_are_not_dispatched(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    conn = connection(tmp_path, dispatcher, retry_delays=(0.01,))
    assert await lark_acks(conn, message(tenant="t_other")) == (403, None)
    # lark's dispatcher has no processor for this type: answered 500, as lark's own client does
    assert await lark_acks(conn, payload("im.message.reaction.created_v1", {"message_id": "om"})) == (500, None)
    await settle(conn)
    assert dispatcher.calls == 0


async def test_card_callback_is_answered_in_the_frame(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    card = {"schema": "2.0", "body": {"elements": []}}
    dispatcher.result = DispatchResult(toast="done", card=card)
    conn = connection(tmp_path, dispatcher)
    frame = payload(ev.EVENT_CARD_ACTION, ev.card_action_event({"op": "ok"}, "ou_nurse", "om_card", "oc_ward",
                                                               tenant_key=TENANT))
    code, answer = await lark_acks(conn, frame)
    assert code == 200
    assert answer == {"toast": {"type": "info", "content": "done"}, "card": {"type": "raw", "data": card}}
    ((event, _),) = dispatcher.events
    assert isinstance(event, CardAction) and event.action_value == {"op": "ok"}


async def test_failed_card_callback_is_an_error_frame(tmp_path: Path) -> None:
    dispatcher = RecordingDispatcher()
    dispatcher.fail_times = 1
    conn = connection(tmp_path, dispatcher)
    frame = payload(ev.EVENT_CARD_ACTION, ev.card_action_event({"op": "ok"}, "ou_1", "om_1", "oc_1",
                                                               tenant_key=TENANT))
    assert await lark_acks(conn, frame) == (503, None)  # Feishu shows the user an error toast
    await settle(conn)
    assert dispatcher.calls == 1  # a card is not retried: the user saw the error and can press again


async def test_start_needs_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEISHU_APP_SECRET", "")
    conn = connection(tmp_path, RecordingDispatcher())
    with pytest.raises(RuntimeError, match="app_secret"):
        conn.start()


async def test_a_refused_event_is_one_short_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15: the long connection shares the pipeline's refusals: one line, the sender's data cut short."""
    dispatcher = RecordingDispatcher()
    conn = connection(tmp_path, dispatcher, retry_delays=(0.01,))
    body = json.loads(message())
    body["header"]["create_time"] = "x" * 100_000
    caplog.set_level(logging.DEBUG)
    assert await lark_acks(conn, json.dumps(body).encode()) == (400, None)
    await settle(conn)
    assert dispatcher.calls == 0
    [line] = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert line.name == "engine.feishu.ingress" and line.exc_info is None
    assert "refused with 400: malformed event: header.create_time" in line.getMessage()
    assert len(line.getMessage()) < 400
