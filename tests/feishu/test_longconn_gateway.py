"""The long connection end to end: lark-oapi's ws client against the stand-in's gateway, over real sockets.

The engine's :class:`LongConnection` discovers the endpoint over HTTP, opens the websocket, takes protobuf
data frames, hands each event to the router (time-skipping Temporal behind it) and acknowledges the frame.
The gateway's ClientConfig makes the client reconnect after 1 s without jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from longconn_probe import LEDGER_KEY, ProbePlugin

from engine.config import OrgContext
from engine.events import FeishuEvent
from engine.feishu.longconn import LongConnection
from engine.feishu.standin import EVENT_BITABLE_RECORD_CHANGED, EVENT_MESSAGE
from engine.runtime.dispatch import Dispatcher, DispatchResult
from engine.runtime.errors import TemporalUnavailable


class HandOffs:
    """The router, noting when each event's hand-off began and ended; can be slow or fail on demand."""

    def __init__(self, router: Dispatcher) -> None:
        self.router = router
        self.begun: list[str] = []
        self.done: list[str] = []
        self.delay = 0.0
        self.fail_times = 0

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        self.begun.append(event.event_id)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise TemporalUnavailable("temporal down")
        result = await self.router.dispatch(event, org)
        self.done.append(event.event_id)
        return result


@pytest.fixture
async def env(scenario_harness: Any) -> AsyncIterator[Any]:
    async with scenario_harness({"probe": ProbePlugin()}) as harness:
        yield harness


@contextlib.asynccontextmanager
async def connected(env: Any, dispatcher: Dispatcher, **kwargs: Any) -> AsyncIterator[LongConnection]:
    conn = LongConnection(env.config, dispatcher, asyncio.get_running_loop(),
                          bot_open_id=env.standin.bot_open_id, **kwargs)
    conn.start()
    try:
        await env.standin.gateway.wait_connected()
        yield conn
    finally:
        await asyncio.to_thread(conn.stop)
        while conn.pending:
            await asyncio.sleep(0.01)
        assert conn.thread is not None and not conn.thread.is_alive()


async def ledger(env: Any) -> list[str]:
    return await env.handle("probe", LEDGER_KEY).query("entries")


async def test_events_and_a_card_callback_are_acknowledged_after_the_hand_off(env: Any) -> None:
    standin = env.standin
    hand_offs = HandOffs(env.router)
    hand_offs.delay = 0.3
    async with connected(env, hand_offs):
        message = standin.message_event("hello", "oc_ward", "ou_nurse")
        # in three frames (sum=3, seq 0..2): the client puts the payload together before handling it
        pushed = await standin.deliver_long(EVENT_MESSAGE, message, event_id="lc-msg-1", retries=(), parts=3)
        assert pushed.acknowledged and pushed.answer is None
        assert hand_offs.done == ["lc-msg-1"]  # handed to Temporal before the ack frame came back
        assert pushed.attempts[0].elapsed >= 0.3

        record = standin.bitable_record_changed("bascnLedger", "tblDevices", "recA12", operator_open_id="ou_nurse",
                                                action="record_added", after={"Device": "A-12"})
        pushed = await standin.deliver_long(EVENT_BITABLE_RECORD_CHANGED, record, event_id="lc-rec-1", retries=())
        assert pushed.acknowledged
        assert hand_offs.done == ["lc-msg-1", "lc-rec-1"]
        entries = await ledger(env)
        assert len(entries) == 2 and entries[0].startswith("message ") and entries[0].endswith("hello")
        assert entries[1] == "record recA12 record_added"

        answer = await standin.card_action(None, {"op": "close"}, "ou_nurse", "om_card", chat_id="oc_ward")
        assert answer == {"toast": {"type": "info", "content": "closed after 2"}}
        assert await env.handle("probe", LEDGER_KEY).result() == entries
    [discovery] = standin.calls_to("/callback/ws/endpoint")
    assert discovery.body["AppSecret"] == "***"  # the app secret is kept out of the stand-in's call log


async def test_the_same_event_delivered_twice_starts_one_effect(env: Any) -> None:
    standin = env.standin
    hand_offs = HandOffs(env.router)
    hand_offs.delay = 0.2
    async with connected(env, hand_offs):
        payload = standin.envelope(EVENT_MESSAGE, standin.message_event("once", "oc_ward", "ou_nurse"),
                                   event_id="lc-dup")
        # the second push arrives while the first is being handed off, the third after
        first, second = await asyncio.gather(standin.gateway.deliver(payload, retries=()),
                                             standin.gateway.deliver(payload, retries=()))
        third = await standin.gateway.deliver(payload, retries=())
        assert [p.acknowledged for p in (first, second, third)] == [True, True, True]
        assert hand_offs.begun == ["lc-dup"]
        assert len(await ledger(env)) == 1


async def test_a_failed_hand_off_is_not_acknowledged_and_the_redelivery_has_one_effect(env: Any) -> None:
    standin = env.standin
    hand_offs = HandOffs(env.router)
    hand_offs.fail_times = 1
    async with connected(env, hand_offs, retry_delays=(0.1,)):
        message = standin.message_event("retry me", "oc_ward", "ou_nurse")
        pushed = await standin.deliver_long(EVENT_MESSAGE, message, event_id="lc-fail", retries=(0.5,))
        assert [a.code for a in pushed.attempts] == [503, 200]
        # the in-process retry handed it off; the gateway's redelivery found it done
        assert hand_offs.done == ["lc-fail"]
        assert len(await ledger(env)) == 1


async def test_the_connection_survives_the_gateway_dropping_it_and_an_outage(env: Any) -> None:
    standin = env.standin
    gateway = standin.gateway
    async with connected(env, HandOffs(env.router)):
        # the client pings at once on start (the pong carries the ClientConfig), then every PingInterval
        for _ in range(200):
            if gateway.pings:
                break
            await asyncio.sleep(0.01)
        assert gateway.pings == 1
        started = time.monotonic()
        assert await gateway.drop() == 1
        await gateway.wait_connected(opened=2, timeout=5)
        assert time.monotonic() - started < 3  # ReconnectInterval 1 s, no jitter
        pushed = await standin.deliver_long(EVENT_MESSAGE, standin.message_event("after drop", "oc_ward", "ou_1"),
                                            event_id="lc-after-drop", retries=())
        assert pushed.acknowledged

        # An outage: discovery answers "system busy", so the client keeps trying; an event pushed meanwhile
        # is pushed again until a connection takes it.
        gateway.accepting = False
        await gateway.drop()
        during = asyncio.create_task(standin.deliver_long(
            EVENT_MESSAGE, standin.message_event("during outage", "oc_ward", "ou_1"), event_id="lc-outage",
            retries=(0.5,) * 10))
        await asyncio.sleep(1.5)
        assert not gateway.open_connections()
        gateway.accepting = True
        pushed = await during
        assert pushed.acknowledged and pushed.attempts[0].error == "no open long connection"
        assert gateway.opened == 3
        assert len(await ledger(env)) == 2


async def test_a_wrong_app_secret_stops_the_connection(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEISHU_APP_SECRET", "not-the-secret")
    conn = LongConnection(env.config, HandOffs(env.router), asyncio.get_running_loop())
    thread = conn.start()
    await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()  # lark raises a ClientException for the refusal and does not retry
    assert env.standin.gateway.opened == 0


async def test_stop_right_after_start_ends_the_thread(env: Any) -> None:
    conn = LongConnection(env.config, HandOffs(env.router), asyncio.get_running_loop())
    thread = conn.start()
    await asyncio.to_thread(conn.stop)
    assert not thread.is_alive()
