"""One noisy chat delays only itself: a flood of mentions from one chat, and another chat's reply.

Issue 16: 300 messages from one chat got replies at up to 35/s (Feishu allows 5/s per chat) while another
chat's reply took 29.2 s instead of 0.3 s: every reply waited in one app-wide lane of the send limiter
(a reply carried no chat), first come first served. Here, over real sockets on loopback, the engine's
ingress (behind its guard), router and reply sender answer mentions through the Feishu stand-in, which
enforces Feishu's 5/s per chat. The flood is smaller than the issue's (the 300-message figure is
``bench.abuse``) but already held the other chat's reply for about two seconds before the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine.config import OrgContext, parse_config
from engine.events import MessageReceived
from engine.feishu.errors import RATE_LIMIT_CODES
from engine.feishu.guard import GuardLimits, GuardStats, uvicorn_config
from engine.feishu.ingress import build_ingress
from engine.feishu.standin import FeishuStandIn
from engine.feishu.standin import events as ev
from engine.plugins import load_plugins
from engine.runtime.app import EngineApp
from engine.runtime.dispatch import DispatchResult
from engine.runtime.errors import DispatchBusy
from engine.runtime.fairness import FairDispatcher, KeyedGate
from engine.runtime.router import Router, feishu_reply_sender

APP_ID = "cli_fair_test"
SECRET = "fair-app-secret"
TENANT = "t_fair"
TOKEN = "v-token-fair"
KEY = "encrypt-key-fair"
BOT = "ou_bot_fair"
FLOOD = 100


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY",
                 "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAIR_TEST_SECRET", SECRET)
    monkeypatch.setenv("FAIR_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("FAIR_TEST_KEY", KEY)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave pytest's signal handling alone
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, limits: GuardLimits) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn_config(app, limits, stats=GuardStats()))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/feishu/events"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_a_flood_from_one_chat_leaves_another_chats_reply_fast(tmp_path: Path) -> None:
    standin = FeishuStandIn(app_id=APP_ID, app_secret=SECRET, tenant_key=TENANT, bot_open_id=BOT,
                            encrypt_key=KEY, verification_token=TOKEN, enforce_rate_limits=True)
    await standin.start()
    feishu = {"app_id": APP_ID, "app_secret": {"env": "FAIR_TEST_SECRET"},
              "verification_token": {"env": "FAIR_TEST_TOKEN"}, "encrypt_key": {"env": "FAIR_TEST_KEY"},
              "bot_open_id": BOT, "base_url": standin.base_url,
              # 3/s, not the default 4/s: on a loaded test machine a send can reach the stand-in over
              # 0.25 s late, and four on time behind it would make five in one second of arrivals
              "messages_per_second_per_chat": 3.0}
    config = parse_config({"feishu": feishu,
                           "organizations": {"hosp": {"name": "Hospital", "tenant_key": TENANT, "locale": "en_US"}}},
                          tmp_path / "engine.toml", {})
    app = EngineApp(config=config, plugins=load_plugins(entry_points=False))
    # no scenario enabled: every mention of the bot is answered with the help reply
    router = FairDispatcher(Router(None, app.plugins, task_queue="fairness",  # type: ignore[arg-type]
                                   send_reply=feishu_reply_sender(app)), per_chat=4, per_user=4)
    ingress = build_ingress(config, router)
    sender = standin.sender()

    def push(chat: str, user: str) -> tuple[bytes, dict[str, str]]:
        return sender.build(standin.envelope(ev.EVENT_MESSAGE, standin.message_event("hello", chat, user)))

    try:
        async with serve(ingress, GuardLimits.from_settings(config.ingress)) as url, \
                httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=FLOOD + 10)) as client:
            flood = [push("oc_noisy", f"ou_noisy_{i % 10}") for i in range(FLOOD)]
            flooding = [asyncio.create_task(client.post(url, content=body, headers=headers))
                        for body, headers in flood]
            await asyncio.sleep(0.5)  # the flood is in: its replies are queued
            body, headers = push("oc_quiet", "ou_quiet")
            started = time.perf_counter()
            quiet = await client.post(url, content=body, headers=headers)
            took = time.perf_counter() - started
            flood_answers = await asyncio.gather(*flooding)
            noisy = standin.messages(chat_id="oc_noisy")
            replied = standin.messages(chat_id="oc_quiet")
    finally:
        await ingress.state.pipeline.drain(grace=0.1)  # the flood's replies still queued: not needed here
        await app.feishu.aclose()
        await standin.stop()

    # the quiet chat's push is answered once its reply is sent: well under a second
    assert quiet.status_code == 200, quiet.text
    assert took < 1.0, f"the quiet chat's reply took {took:.2f} s"
    assert len(replied) == 1 and replied[0].reply_to is not None
    # the flood waits for itself: 4 dispatched at a time, 16 more queued, the rest answered 503 at once
    # (Feishu pushes those again later)
    statuses = [a.status_code for a in flood_answers]
    assert set(statuses) <= {200, 503}
    assert sum(1 for a in flood_answers if a.json() == {"msg": "busy, try again"}) >= FLOOD - 4 - 16 - 10
    # ...at the chat's own limit (3/s configured, Feishu's 5/s), never refused by Feishu for the rate
    assert 3 <= len(noisy) < FLOOD
    times = sorted(m.create_time for m in noisy)
    assert max(sum(1 for t in times if start <= t < start + 1000) for start in times) <= 5
    assert not [c for c in standin.calls if c.code in RATE_LIMIT_CODES]


async def test_a_chat_holds_at_most_its_share_of_dispatches(tmp_path: Path) -> None:
    gate_release = asyncio.Event()
    running: list[str] = []

    class Slow:
        async def dispatch(self, event: Any, org: OrgContext) -> DispatchResult:
            running.append(event.chat_id)
            await gate_release.wait()
            return DispatchResult()

    config = parse_config({"organizations": {"hosp": {"tenant_key": TENANT}}}, tmp_path / "engine.toml", {})
    org = config.org("hosp")
    fair = FairDispatcher(Slow(), per_chat=2, per_user=3)

    def message(chat: str, user: str, n: int) -> MessageReceived:
        return MessageReceived(event_id=f"{chat}-{user}-{n}", event_type="im.message.receive_v1",
                               tenant_key=TENANT, message_id=f"om_{chat}_{n}", chat_id=chat, chat_type="group",
                               text="x", sender_open_id=user, create_time=datetime(2027, 3, 1, tzinfo=UTC))

    tasks = [asyncio.create_task(fair.dispatch(message("oc_noisy", f"ou_{n}", n), org)) for n in range(10)]
    tasks.append(asyncio.create_task(fair.dispatch(message("oc_other", "ou_0", 99), org)))
    await asyncio.sleep(0.05)
    assert running.count("oc_noisy") == 2  # the rest of the flood waits in its own queue
    assert "oc_other" in running  # another chat does not wait for it
    assert fair.chats.waiting("hosp/oc_noisy") == 8
    gate_release.set()
    await asyncio.gather(*tasks)
    assert running.count("oc_noisy") == 10
    assert fair.chats.holding("hosp/oc_noisy") == 0 and fair.chats.waiting("hosp/oc_noisy") == 0


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    gate = KeyedGate(1)
    async with gate.hold("k"):
        waiter = asyncio.create_task(gate.hold("k").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        assert gate.waiting("k") == 0
    assert gate.holding("k") == 0
    async with gate.hold("k"):
        assert gate.holding("k") == 1


async def test_a_full_queue_refuses_at_once() -> None:
    gate = KeyedGate(1, max_waiting=2)
    async with gate.hold("k"):
        waiting = [asyncio.create_task(gate.hold("k").__aenter__()) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(DispatchBusy):
            await gate.hold("k").__aenter__()
        async with gate.hold("other"):  # another key is not refused
            assert gate.holding("other") == 1
        for task in waiting:
            task.cancel()


def test_a_push_is_queued_under_its_chat_or_else_its_sender() -> None:
    from engine.feishu.ingress import _fairness_key

    message = ev.message_event("hi", "oc_ward", "ou_nurse", bot_open_id=BOT, tenant_key=TENANT)
    assert _fairness_key({"schema": "2.0", "event": message}) == "chat:oc_ward"
    card = {"operator": {"open_id": "ou_nurse"}, "context": {"open_chat_id": "oc_ward", "open_message_id": "om"}}
    assert _fairness_key({"schema": "2.0", "event": card}) == "chat:oc_ward"
    assert _fairness_key({"schema": "2.0", "event": {"operator": {"open_id": "ou_nurse"}}}) == "user:ou_nurse"
    assert _fairness_key({"schema": "2.0", "event": {"app_id": "cli"}}) is None
    assert _fairness_key(None) is None
