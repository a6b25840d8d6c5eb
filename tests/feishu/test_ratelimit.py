"""The rate limiter, driven by a fake clock: exact grant times, no real sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter, deque

import pytest

from engine.feishu.ratelimit import MESSAGE_SEND, ApiLimit, Rate, RateLimiter


class FakeClock:
    """A clock that only moves when the test says so; sleepers wake in deadline order."""

    def __init__(self) -> None:
        self.t = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.t + max(0.0, seconds), next(self._seq), future))
        await future

    @staticmethod
    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own deadline."""
        target = self.t + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self.t = max(self.t, deadline)
            future.set_result(None)
            await self.settle()
        self.t = target
        await self.settle()

    async def run_until(self, done: asyncio.Future[object] | asyncio.Task[object], limit: float = 10_000) -> None:
        """Advance from deadline to deadline until ``done`` finishes (guarded by ``limit`` seconds)."""
        start = self.t
        await self.settle()
        while not done.done():
            pending = [d for d, _, f in self._sleepers if not f.done()]
            if not pending:
                # the dispatcher may still be granting (it yields between grants): let it run
                for _ in range(1000):
                    await asyncio.sleep(0)
                    if done.done() or any(not f.done() for _, _, f in self._sleepers):
                        break
                else:
                    raise AssertionError("nothing is sleeping but the work is not done: a lost wake-up")
                continue
            assert self.t - start <= limit, "the limiter did not finish in time"
            await self.advance(max(0.0, min(pending) - self.t))


def max_in_window(times: list[float], window: float) -> int:
    """The largest number of grants in any half-open window of ``window`` seconds."""
    best = 0
    q: deque[float] = deque()
    for t in sorted(times):
        q.append(t)
        while q and t - q[0] >= window - 1e-9:
            q.popleft()
        best = max(best, len(q))
    return best


async def acquire_all(limiter: RateLimiter, clock: FakeClock, calls: list[tuple[str, str | None]]) -> list[float]:
    """Start every acquire at once; return each one's grant time (in call order)."""
    granted: list[float] = [-1.0] * len(calls)

    async def one(index: int, api: str, key: str | None) -> None:
        await limiter.acquire(api, key)
        granted[index] = clock.now()

    work = asyncio.gather(*(one(i, api, key) for i, (api, key) in enumerate(calls)))
    await clock.run_until(work)
    await work
    return granted


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_rate_per_second_turns_floats_into_windows() -> None:
    assert Rate.per_second(40.0) == Rate(40, 1.0)
    assert Rate.per_second(0.5) == Rate(1, 2.0)
    with pytest.raises(ValueError):
        Rate(0, 1.0)


async def test_grants_within_the_limit_are_immediate(clock: FakeClock) -> None:
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(5, 1.0),))}, clock=clock)
    for _ in range(5):
        await limiter.acquire("api")
    assert clock.now() == 0.0
    assert limiter.granted("api") == 5


async def test_per_receiver_window_spaces_sends_to_one_chat(clock: FakeClock) -> None:
    limiter = RateLimiter.for_feishu(messages_per_second=50, messages_per_second_per_chat=5, clock=clock)
    times = await acquire_all(limiter, clock, [(MESSAGE_SEND, "chat_id:oc_1")] * 12)
    # Feishu's 5/s into one chat, in full: 5 at once, the next 5 when the second has passed, then 2
    assert times == [0.0] * 5 + [1.0] * 5 + [2.0] * 2


async def test_a_busy_chat_does_not_hold_up_other_chats(clock: FakeClock) -> None:
    """No head-of-line blocking: a later send to another chat goes before the busy chat's backlog."""
    limiter = RateLimiter.for_feishu(messages_per_second=50, messages_per_second_per_chat=5, clock=clock)
    calls: list[tuple[str, str | None]] = [(MESSAGE_SEND, "chat_id:busy")] * 20 + [(MESSAGE_SEND, "chat_id:quiet")]
    times = await acquire_all(limiter, clock, calls)
    assert times[-1] == 0.0
    assert max(times[:20]) == 3.0


async def test_app_window_and_fifo_order(clock: FakeClock) -> None:
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(3, 1.0),))}, clock=clock)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire("api")
        order.append(i)

    work = asyncio.gather(*(one(i) for i in range(9)))
    await clock.run_until(work)
    assert order == list(range(9))
    assert clock.now() == 2.0


async def test_apis_are_limited_separately(clock: FakeClock) -> None:
    limiter = RateLimiter(default=ApiLimit(app=(Rate(2, 1.0),)), clock=clock)
    times = await acquire_all(limiter, clock, [("a", None)] * 4 + [("b", None)] * 2)
    assert times == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


async def test_burst_of_2000_sends_stays_under_every_feishu_limit(clock: FakeClock) -> None:
    """2,000 reminders due at 09:00 to 400 people: all delivered, never over 50/s, 1,000/min, 5/s each."""
    limiter = RateLimiter.for_feishu(messages_per_second=50, messages_per_second_per_chat=5,
                                     messages_per_minute=1000, clock=clock)
    calls: list[tuple[str, str | None]] = [(MESSAGE_SEND, f"open_id:ou_{i % 400}") for i in range(2000)]
    times = await acquire_all(limiter, clock, calls)
    assert all(t >= 0 for t in times)
    assert max_in_window(times, 1.0) <= 50
    assert max_in_window(times, 60.0) <= 1000
    per_user: dict[str, list[float]] = {}
    for (_, key), t in zip(calls, times, strict=True):
        per_user.setdefault(key or "", []).append(t)
    assert max(max_in_window(ts, 1.0) for ts in per_user.values()) <= 5
    # Work-conserving: the first 1,000 go in the first 20 s, the rest right after the minute window opens.
    assert Counter(t < 20.0 for t in times)[True] == 1000
    assert max(times) < 80.0


async def test_penalty_pauses_the_api_for_the_reset_feishu_asked(clock: FakeClock) -> None:
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(100, 1.0),))}, clock=clock)
    limiter.penalize("api", 2.5)
    times = await acquire_all(limiter, clock, [("api", None)] * 3)
    assert times == [2.5, 2.5, 2.5]


async def test_penalty_for_one_receiver_leaves_others_alone(clock: FakeClock) -> None:
    limiter = RateLimiter.for_feishu(messages_per_second=50, messages_per_second_per_chat=5, clock=clock)
    limiter.penalize(MESSAGE_SEND, 4.0, key="chat_id:hot")
    times = await acquire_all(limiter, clock, [(MESSAGE_SEND, "chat_id:hot"), (MESSAGE_SEND, "chat_id:cold")])
    assert times == [4.0, 0.0]


async def test_a_cancelled_waiter_gives_up_its_place(clock: FakeClock) -> None:
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(1, 1.0),))}, clock=clock)
    await limiter.acquire("api")
    first = asyncio.ensure_future(limiter.acquire("api"))
    second = asyncio.ensure_future(limiter.acquire("api"))
    await clock.settle()
    first.cancel()
    await clock.run_until(second)
    assert clock.now() == 1.0
    assert limiter.granted("api") == 2
    assert limiter.waiting("api") == 0


async def test_new_waiter_wakes_a_dispatcher_sleeping_on_another_chat(clock: FakeClock) -> None:
    limiter = RateLimiter.for_feishu(messages_per_second=50, messages_per_second_per_chat=1, clock=clock)
    await limiter.acquire(MESSAGE_SEND, "chat_id:a")
    blocked = asyncio.ensure_future(limiter.acquire(MESSAGE_SEND, "chat_id:a"))
    await clock.advance(0.25)  # the dispatcher now sleeps until t=1.0 for chat a
    fresh = asyncio.ensure_future(limiter.acquire(MESSAGE_SEND, "chat_id:b"))
    await clock.settle()
    assert fresh.done() and clock.now() == 0.25
    await clock.run_until(blocked)
    assert clock.now() == 1.0


async def test_idle_receivers_are_forgotten(clock: FakeClock) -> None:
    limiter = RateLimiter.for_feishu(messages_per_second=1000, messages_per_second_per_chat=1,
                                     messages_per_minute=100_000, clock=clock)
    await acquire_all(limiter, clock, [(MESSAGE_SEND, f"chat_id:{i % 50}") for i in range(100)])
    await clock.advance(5.0)
    await acquire_all(limiter, clock, [(MESSAGE_SEND, "chat_id:x")] * 2)
    # the dispatcher sweeps when it drains: only the lane it just used (and the keyless one) may remain
    assert limiter.waiting(MESSAGE_SEND) == 0
    assert len(limiter._states[MESSAGE_SEND].lanes) <= 2


async def test_real_clock_burst_is_fast_and_spread() -> None:
    """The monotonic clock: 60 grants at 200/s take ~0.1 s after the first 20 (tiny real sleeps only)."""
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(20, 0.1),))})
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(limiter.acquire("api") for _ in range(60)))
    elapsed = loop.time() - start
    assert 0.18 <= elapsed < 1.0


async def test_a_call_in_flight_holds_its_place_until_answered(clock: FakeClock) -> None:
    """Through slot(), a call counts from its grant until its answer: the next one waits answer + window."""
    limiter = RateLimiter({"api": ApiLimit(app=(Rate(2, 1.0),))}, clock=clock)
    answered = asyncio.Event()

    async def call() -> float:
        async with limiter.slot("api"):
            granted = clock.now()
            await answered.wait()
        return granted

    first, second = asyncio.ensure_future(call()), asyncio.ensure_future(call())
    await clock.settle()
    third = asyncio.ensure_future(limiter.acquire("api"))
    await clock.advance(5.0)  # both still in flight: the window stays full however long they take
    assert limiter.in_flight("api") == 2 and not third.done()
    answered.set()
    assert await asyncio.gather(first, second) == [0.0, 0.0]
    await clock.advance(0.99)
    assert not third.done()
    await clock.run_until(third)
    assert clock.now() == 6.0 and limiter.in_flight("api") == 0
