"""Client-side rate limiting for one Feishu app: per API, and per receiving chat/user for message sends.

Feishu limits each API per app (message send: 50/s and 1,000/min) and message sends per receiver
(5/s into one chat or to one user). A burst such as 2,000 reminders due at 09:00 must go out under all of
those limits at once, without a single rate-limit answer and without one busy chat holding up the rest.

How it works
------------
* Each limit is a **sliding window**: "at most ``count`` grants in any ``per`` seconds", enforced from a
  log of the last ``count`` grant times. Unlike a token bucket (whose refill lets ``capacity + rate*W``
  through in a window of ``W``), a window log never exceeds the published figure in any window, which is
  what "1,000 per minute" has to mean if we want zero rejections.
* Waiters queue per key (a "lane"); a single dispatcher task per API hands out app-wide slots, each to the
  oldest waiter whose lane is ready. A lane that must wait for its per-chat window steps aside, so the
  dispatcher never blocks the whole app behind one busy chat (no head-of-line blocking), and no waiter is
  woken just to go back to sleep (2,000 waiters cost 2,000 wake-ups, not 2,000²).
* Time comes from an injected :class:`Clock`, so tests drive it with a fake clock and no real sleeps.
* :meth:`RateLimiter.penalize` applies Feishu's own ``x-ogw-ratelimit-reset`` when it still answers
  "rate limited" (another process on the same app, a limit lower than configured): the API, or one
  receiver, pauses for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Limiter API groups used by the client. Message create and reply draw on one "send" budget.
MESSAGE_SEND = "im.message.send"
DEFAULT_API = "*"
# Forget idle receivers once this many are tracked (the dispatcher also sweeps whenever it drains).
_SWEEP_AT = 4_096

# Feishu's published message-send limits (FEISHU_NOTES.md).
FEISHU_MESSAGES_PER_SECOND = 50
FEISHU_MESSAGES_PER_MINUTE = 1_000
FEISHU_MESSAGES_PER_RECEIVER_PER_SECOND = 5


class Clock(Protocol):
    """Where the limiter reads time and sleeps; a fake one makes tests deterministic."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` on this clock."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True)
class Rate:
    """At most ``count`` grants in any window of ``per`` seconds."""

    count: int
    per: float = 1.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.per <= 0:
            raise ValueError(f"a rate needs count >= 1 and per > 0, got {self.count}/{self.per}s")

    @classmethod
    def per_second(cls, rate: float) -> Rate:
        """A float rate as a window: 40.0 -> 40 per 1 s; 0.5 -> 1 per 2 s."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        count = max(1, math.floor(rate))
        return cls(count, count / rate)


def smoothed(rate: float, slices: int = 10) -> tuple[Rate, ...]:
    """``rate`` per second, and at most ``1/slices`` of it in any ``1/slices`` of a second."""
    whole = Rate.per_second(rate)
    part = max(1, math.ceil(whole.count / slices))
    return (whole, Rate(part, part / rate)) if part < whole.count else (whole,)


@dataclass(frozen=True)
class ApiLimit:
    """The limits of one API group: app-wide windows, and windows per receiving key."""

    app: tuple[Rate, ...] = ()
    per_key: tuple[Rate, ...] = ()


class _Window:
    """A sliding-window log: the times of the last ``count`` grants."""

    __slots__ = ("rate", "times")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.times: deque[float] = deque(maxlen=rate.count)

    def available_at(self) -> float:
        if len(self.times) < self.rate.count:
            return -math.inf
        return self.times[0] + self.rate.per

    def record(self, at: float) -> None:
        self.times.append(at)

    def idle_since(self, now: float) -> bool:
        return not self.times or self.times[-1] + self.rate.per <= now


@dataclass
class _Lane:
    """The waiters for one receiving key (or the shared lane for calls without a key)."""

    key: str | None
    windows: list[_Window]
    waiters: deque[tuple[int, asyncio.Future[None]]] = field(default_factory=deque)
    blocked_until: float = -math.inf
    queued: bool = False  # in the dispatcher's ready or pending heap

    def available_at(self) -> float:
        return max([self.blocked_until, *(w.available_at() for w in self.windows)])

    def record(self, at: float) -> None:
        for window in self.windows:
            window.record(at)

    def idle(self, now: float) -> bool:
        return (not self.waiters and self.blocked_until <= now
                and all(w.idle_since(now) for w in self.windows))


class _ApiState:
    """Everything the dispatcher of one API group keeps."""

    def __init__(self, limit: ApiLimit) -> None:
        self.limit = limit
        self.windows = [_Window(rate) for rate in limit.app]
        self.blocked_until = -math.inf
        self.lanes: dict[str | None, _Lane] = {}
        self.ready: list[tuple[int, str]] = []  # (head seq, lane id): lanes that may send now
        self.pending: list[tuple[float, int, str]] = []  # (ready at, head seq, lane id)
        self.lane_ids: dict[str, str | None] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.granted = 0

    def app_available_at(self) -> float:
        return max([self.blocked_until, *(w.available_at() for w in self.windows)])

    def lane(self, key: str | None) -> _Lane:
        lane = self.lanes.get(key)
        if lane is None:
            windows = [_Window(rate) for rate in self.limit.per_key] if key is not None else []
            lane = _Lane(key, windows)
            self.lanes[key] = lane
            self.lane_ids[_lane_id(key)] = key
        return lane

    def idle(self) -> bool:
        return not self.ready and not self.pending


def _lane_id(key: str | None) -> str:
    # Heaps compare tuples; a str id keeps None (the keyless lane) comparable with real keys.
    return "\x00" if key is None else "k:" + key


class RateLimiter:
    """Per-app limiter: ``await limiter.acquire(api, key)`` before each call.

    ``limits`` maps API group names to their :class:`ApiLimit`; names not in it use ``default``. One
    instance belongs to one Feishu app (one :class:`~engine.feishu.client.FeishuClient`).
    """

    def __init__(
        self,
        limits: Mapping[str, ApiLimit] | None = None,
        *,
        default: ApiLimit | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._limits = dict(limits or {})
        self._default = default if default is not None else ApiLimit(app=(Rate(40),))
        self._clock: Clock = clock or MonotonicClock()
        self._states: dict[str, _ApiState] = {}
        self._seq = itertools.count()

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def for_feishu(
        cls,
        *,
        messages_per_second: float = 40.0,
        messages_per_second_per_chat: float = 4.0,
        calls_per_second: float = 40.0,
        messages_per_minute: int | None = None,
        clock: Clock | None = None,
    ) -> RateLimiter:
        """Limits shaped like Feishu's: message sends per app (per second and per minute) and per receiver.

        ``messages_per_minute`` defaults to Feishu's 1,000/min scaled by the same margin as the
        per-second figure (40/s of Feishu's 50/s -> 800/min), so every limit keeps the same headroom.

        Per-second limits are also *smoothed*: at most a tenth of the app's rate in any tenth of a
        second, and one send per ``1/rate`` seconds to a receiver. Feishu counts arrivals, not our
        grant times; a full window granted at one instant and the next one a second later can arrive
        less than a second apart after network jitter and be refused. Spreading grants leaves that
        jitter room without lowering the rate.
        """
        if messages_per_minute is None:
            margin = min(1.0, messages_per_second / FEISHU_MESSAGES_PER_SECOND)
            messages_per_minute = max(1, round(FEISHU_MESSAGES_PER_MINUTE * margin))
        send = ApiLimit(
            app=(*smoothed(messages_per_second), Rate(messages_per_minute, 60.0)),
            per_key=(Rate(1, 1.0 / messages_per_second_per_chat),),
        )
        return cls({MESSAGE_SEND: send}, default=ApiLimit(app=smoothed(calls_per_second)), clock=clock)

    @property
    def clock(self) -> Clock:
        return self._clock

    def limit_for(self, api: str) -> ApiLimit:
        return self._limits.get(api, self._default)

    def _state(self, api: str) -> _ApiState:
        state = self._states.get(api)
        if state is None:
            state = _ApiState(self.limit_for(api))
            self._states[api] = state
        return state

    # ------------------------------------------------------------------------------------ public
    async def acquire(self, api: str, key: str | None = None) -> None:
        """Wait until one call of ``api`` (to receiver ``key``, if any) is within every limit.

        Grants are first come, first served among waiters that are ready; a waiter whose receiver is
        at its own limit lets later waiters for other receivers go first. Cancelling the waiting task
        gives its place up.
        """
        state = self._state(api)
        lane = state.lane(key)
        now = self._clock.now()
        # Fast path: nobody queued and every window open -> grant without a dispatcher round trip.
        if state.idle() and not lane.waiters and max(state.app_available_at(), lane.available_at()) <= now:
            self._grant(state, lane, now)
            if len(state.lanes) > _SWEEP_AT:
                self._sweep(state, now)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seq = next(self._seq)
        lane.waiters.append((seq, future))
        if not lane.queued:
            heapq.heappush(state.pending, (lane.available_at(), seq, _lane_id(key)))
            lane.queued = True
        state.wake.set()
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(self._dispatch(state))
        await future

    def penalize(self, api: str, seconds: float, key: str | None = None) -> None:
        """Feishu said "rate limited, wait ``seconds``": pause one receiver (``key``) or the whole API."""
        state = self._state(api)
        until = self._clock.now() + max(0.0, seconds)
        if key is not None:
            lane = state.lane(key)
            lane.blocked_until = max(lane.blocked_until, until)
        else:
            state.blocked_until = max(state.blocked_until, until)
        state.wake.set()

    def waiting(self, api: str) -> int:
        """How many callers are queued for ``api`` (for logs and tests)."""
        state = self._states.get(api)
        if state is None:
            return 0
        return sum(1 for lane in state.lanes.values() for _, fut in lane.waiters if not fut.done())

    def granted(self, api: str) -> int:
        """How many calls of ``api`` have been let through."""
        state = self._states.get(api)
        return state.granted if state else 0

    async def aclose(self) -> None:
        """Stop the dispatchers; callers still waiting are cancelled."""
        for state in self._states.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await state.task
            for lane in state.lanes.values():
                for _, fut in lane.waiters:
                    fut.cancel()
                lane.waiters.clear()

    # ------------------------------------------------------------------------------ dispatching
    def _grant(self, state: _ApiState, lane: _Lane, now: float) -> None:
        for window in state.windows:
            window.record(now)
        lane.record(now)
        state.granted += 1

    def _promote(self, state: _ApiState, now: float) -> None:
        """Move lanes whose own windows have opened from pending to ready."""
        while state.pending and state.pending[0][0] <= now:
            _, _, lane_id = heapq.heappop(state.pending)
            lane = state.lanes[state.lane_ids[lane_id]]
            ready_at = lane.available_at()  # a penalty may have arrived since it was queued
            if ready_at > now:
                heapq.heappush(state.pending, (ready_at, lane.waiters[0][0] if lane.waiters else 0, lane_id))
                continue
            if not lane.waiters:
                lane.queued = False
                continue
            heapq.heappush(state.ready, (lane.waiters[0][0], lane_id))

    async def _dispatch(self, state: _ApiState) -> None:
        """Hand out slots while anyone waits; exits when the queue is empty (restarted on demand)."""
        clock = self._clock
        while not state.idle():
            state.wake.clear()
            now = clock.now()
            self._promote(state, now)
            if not state.ready:
                await self._idle(state, state.pending[0][0] - now)
                continue
            app_at = state.app_available_at()
            if app_at > now:
                await self._idle(state, app_at - now)
                continue
            _, lane_id = heapq.heappop(state.ready)
            lane = state.lanes[state.lane_ids[lane_id]]
            lane.queued = False
            while lane.waiters and lane.waiters[0][1].done():  # cancelled while waiting
                lane.waiters.popleft()
            if lane.waiters:
                _, future = lane.waiters.popleft()
                self._grant(state, lane, now)
                future.set_result(None)
            if lane.waiters:
                heapq.heappush(state.pending, (lane.available_at(), lane.waiters[0][0], lane_id))
                lane.queued = True
            # Let the granted caller run before the next grant: keeps grants and sends in step.
            await asyncio.sleep(0)
        self._sweep(state, clock.now())

    async def _idle(self, state: _ApiState, delay: float) -> None:
        """Sleep ``delay`` on the clock, or less if a new waiter or penalty arrives."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        waker = asyncio.ensure_future(state.wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                if not task.done():
                    task.cancel()

    @staticmethod
    def _sweep(state: _ApiState, now: float) -> None:
        """Forget receivers whose windows have emptied, so lanes do not accumulate for ever."""
        for key in [k for k, lane in state.lanes.items() if not lane.queued and lane.idle(now)]:
            del state.lanes[key]
            state.lane_ids.pop(_lane_id(key), None)
