"""The limiter against the stand-in with its rate limits enforced: a 09:00 burst goes out with no refusals.

Scaled up for speed (the stand-in allows 250/s per app and 5/s per receiver; the limiter runs at 200/s
and 4/s): the shape of the problem is Feishu's, the figures fit a test run. The real-scale figure
(50/s, 1,000/min, 2,000 messages) is a benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from engine.feishu.client import FeishuClient
from engine.feishu.errors import RATE_LIMIT_CODES, FeishuError
from engine.feishu.ratelimit import MESSAGE_SEND, ApiLimit, Clock, Rate, RateLimiter
from engine.feishu.standin import FeishuStandIn, RateRule
from engine.feishu.standin.faults import Fault

RULES = (
    RateRule("im.message.send", 250, 1.0),
    RateRule("im.message.send", 20_000, 60.0),
    RateRule("im.message.send", 5, 1.0, per="receiver", code=230020, status=400),
)


async def test_burst_of_2000_sends_has_zero_rate_limit_failures() -> None:
    standin = FeishuStandIn(app_id="cli_burst", app_secret="burst-secret", enforce_rate_limits=True,
                            rate_rules=RULES)
    await standin.start()
    limiter = RateLimiter.for_feishu(messages_per_second=200, messages_per_second_per_chat=4,
                                     messages_per_minute=16_000)
    client = FeishuClient(standin.base_url, "cli_burst", "burst-secret", timeout=10.0, limiter=limiter)
    receivers = [f"ou_burst_{i:03d}" for i in range(400)]
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(
            client.send_message("open_id", receivers[i % len(receivers)], "text",
                                json.dumps({"text": f"reminder {i}"}), f"burst-{i}")
            for i in range(2000)), return_exceptions=True)
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
        await standin.stop()

    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    refused = [c for c in standin.calls if c.code in RATE_LIMIT_CODES]
    assert refused == []
    assert len(standin.messages()) == 2000
    # 2,000 at 200/s cannot take less than ~10 s; it should not take much more either
    print(f"2000 sends in {elapsed:.1f}s ({2000 / elapsed:.0f}/s)")
    assert 9.0 <= elapsed < 30.0


# Feishu's shape at a test's scale: a short "minute" window, so a burst crosses it within seconds.
AT_LIMIT_RULES = (
    RateRule(MESSAGE_SEND, 60, 1.0),
    RateRule(MESSAGE_SEND, 120, 4.0),
    RateRule(MESSAGE_SEND, 5, 1.0, per="receiver", code=230020, status=400),
)


def limiter_at(rules: tuple[RateRule, ...], clock: Clock | None = None) -> RateLimiter:
    """A limiter whose windows are exactly the stand-in's rules: no margin of any kind."""
    app = tuple(Rate(r.limit, r.window) for r in rules if r.per == "app")
    per_key = tuple(Rate(r.limit, r.window) for r in rules if r.per == "receiver")
    return RateLimiter({MESSAGE_SEND: ApiLimit(app=app, per_key=per_key)}, clock=clock)


async def send(client: FeishuClient, receiver: str, i: int) -> None:
    await client.send_message("open_id", receiver, "text", json.dumps({"text": f"reminder {i}"}), f"at-limit-{i}")


async def test_a_burst_at_feishus_own_limits_fills_every_window_and_is_never_refused() -> None:
    """The limiter runs at the stand-in's exact limits: windows filled to the limit, not one refusal."""
    standin = FeishuStandIn(app_id="cli_at_limit", app_secret="s", enforce_rate_limits=True,
                            rate_rules=AT_LIMIT_RULES)
    await standin.start()
    client = FeishuClient(standin.base_url, "cli_at_limit", "s", timeout=10.0, limiter=limiter_at(AT_LIMIT_RULES))
    receivers = [f"ou_at_limit_{i:02d}" for i in range(48)]
    try:
        results = await asyncio.gather(*(send(client, receivers[i % 48], i) for i in range(240)),
                                       return_exceptions=True)
    finally:
        await client.aclose()
        await standin.stop()

    assert [r for r in results if isinstance(r, BaseException)] == []
    assert [c for c in standin.calls if c.code in RATE_LIMIT_CODES] == []
    assert len(standin.messages()) == 240
    per_second, per_window, per_receiver = AT_LIMIT_RULES
    assert standin.rate_limiter.peak(per_second, "cli_at_limit") <= 60
    assert standin.rate_limiter.peak(per_receiver, "cli_at_limit") <= 5
    # 240 sends cannot fit one 4 s window of 120: the window was filled to Feishu's figure, not under it
    assert standin.rate_limiter.peak(per_window, "cli_at_limit") == 120


class StepClock:
    """The limiter's clock, moved only by the test (the HTTP calls themselves run in real time)."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for deadline, future in self._sleepers:
            if deadline <= self.t and not future.done():
                future.set_result(None)
        self._sleepers = [(d, f) for d, f in self._sleepers if not f.done()]


def sends(standin: FeishuStandIn) -> list[int]:
    return [c.code for c in standin.calls if c.method == "POST" and c.path == "/open-apis/im/v1/messages"]


async def test_a_429_with_reset_pauses_that_api_until_the_reset_and_no_other() -> None:
    """Feishu answers 429 + x-ogw-ratelimit-reset: 7: sends wait 7 s on the limiter's clock; other APIs go on."""
    standin = FeishuStandIn(app_id="cli_reset", app_secret="s")
    await standin.start()
    clock = StepClock()
    client = FeishuClient(standin.base_url, "cli_reset", "s", timeout=10.0,
                          limiter=RateLimiter.for_feishu(clock=clock))
    try:
        standin.inject(Fault(kind="rate_limit", path_prefix="/open-apis/im/v1/messages", times=1, reset=7))
        with pytest.raises(FeishuError) as refused:
            await send(client, "ou_reset", 1)
        assert refused.value.is_rate_limit and refused.value.retry_after == 7
        waiting = asyncio.ensure_future(send(client, "ou_reset", 2))
        await client.bot_info()  # another API's bucket answers at once, a full round trip later
        clock.advance(6.9)
        await client.bot_info()
        assert not waiting.done() and sends(standin) == [99991400]  # nothing sent into the pause
        clock.advance(0.1)
        await waiting
        assert sends(standin) == [99991400, 0]
    finally:
        await client.aclose()
        await standin.stop()


async def test_a_lower_limit_in_feishus_answer_becomes_the_limiters() -> None:
    """x-ogw-ratelimit-limit: 20 on a refusal: the app's per-second window drops from 50 to 20, for good."""
    standin = FeishuStandIn(app_id="cli_lower", app_secret="s")
    await standin.start()
    clock = StepClock()
    client = FeishuClient(standin.base_url, "cli_lower", "s", timeout=10.0,
                          limiter=RateLimiter.for_feishu(clock=clock))
    try:
        standin.inject(Fault(kind="rate_limit", path_prefix="/open-apis/im/v1/messages", times=1, reset=1,
                             limit=20))
        with pytest.raises(FeishuError):
            await send(client, "ou_lower", 1)
    finally:
        await client.aclose()
        await standin.stop()
    assert client.limiter.limits(MESSAGE_SEND) == (Rate(20, 1.0), Rate(1000, 60.0))
