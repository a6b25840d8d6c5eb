"""Client-side rate limiting for one Feishu app: per API, and per receiving chat/user for message sends.

Feishu limits each API per app (message send: 50/s and 1,000/min) and message sends per receiver
(5/s into one chat or to one user). A burst such as 2,000 reminders due at 09:00 must go out under all of
those limits at once, as fast as they allow, without a single rate-limit answer and without one busy chat
holding up the rest.

How it works
------------
* Each limit is a **sliding window**: "at most ``count`` grants in any ``per`` seconds", enforced from a
  log of the last ``count`` grant times. Unlike a token bucket (whose refill lets ``capacity + rate*W``
  through in a window of ``W``), a window log never exceeds the published figure in any window, which is
  what "1,000 per minute" has to mean if we want zero rejections.
* A call made through :meth:`RateLimiter.slot` holds its place in every window while it is in flight and
  is logged at the moment its answer came back, not when it was granted. Feishu counts a call when it
  *arrives*, which is somewhere between the two; logging the later instant means no window of Feishu's
  can ever hold more than ours did, whatever the network's jitter. So the limiter runs at Feishu's own
  figures, with no safety margin: the only cost is one round trip per window (1,000 per 60 s + RTT).
* Waiters queue per key (a "lane"); a single dispatcher task per API hands out app-wide slots, each to the
  oldest waiter whose lane is ready. A lane that must wait for its per-chat window steps aside, so the
  dispatcher never blocks the whole app behind one busy chat (no head-of-line blocking), and no waiter is
  woken just to go back to sleep (2,000 waiters cost 2,000 wake-ups, not 2,000²).
* Time comes from an injected :class:`Clock`, so tests drive it with a fake clock and no real sleeps.
* :meth:`RateLimiter.penalize` applies Feishu's own ``x-ogw-ratelimit-reset`` when it still answers
  "rate limited" (another process on the same app, a limit lower than configured): the API, or one
  receiver, pauses for that long; its ``x-ogw-ratelimit-limit``, when lower than ours, becomes our limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
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


@dataclass(frozen=True)
class ApiLimit:
    """The limits of one API group: app-wide windows, and windows per receiving key."""

    app: tuple[Rate, ...] = ()
    per_key: tuple[Rate, ...] = ()


class _Window:
    """A sliding-window log: calls in flight, and when the last ones were granted or answered."""

    __slots__ = ("done", "inflight", "rate")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.done: deque[float] = deque()  # ascending: always appended at the clock's "now"
        self.inflight = 0

    def _forget(self, now: float) -> None:
        cutoff = now - self.rate.per
        while self.done and self.done[0] <= cutoff:
            self.done.popleft()

    def available_at(self, now: float) -> float:
        """When one more call fits: ``-inf`` now, ``inf`` only after a call in flight is answered."""
        self._forget(now)
        excess = self.inflight + len(self.done) - self.rate.count + 1
        if excess <= 0:
            return -math.inf
        if excess > len(self.done):
            return math.inf
        return self.done[excess - 1] + self.rate.per

    def record(self, at: float) -> None:
        self.done.append(at)

    def start(self) -> None:
        self.inflight += 1

    def finish(self, at: float) -> None:
        self.inflight -= 1
        self.done.append(at)

    def shrink(self, count: int) -> None:
        self.rate = Rate(count, self.rate.per)

    def idle_since(self, now: float) -> bool:
        self._forget(now)
        return not self.inflight and not self.done


@dataclass
class _Lane:
    """The waiters for one receiving key (or the shared lane for calls without a key)."""

    key: str | None
    windows: list[_Window]
    waiters: deque[tuple[int, asyncio.Future[None], bool]] = field(default_factory=deque)  # seq, fut, hold
    blocked_until: float = -math.inf
    queued: bool = False  # in the dispatcher's ready or pending heap
    entry: int = 0  # the id of its one live heap entry; older entries for it are skipped

    def available_at(self, now: float) -> float:
        return max([self.blocked_until, *(w.available_at(now) for w in self.windows)])

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
        self.ready: list[tuple[int, str, int]] = []  # (head seq, lane id, entry): lanes that may send now
        self.pending: list[tuple[float, int, str, int]] = []  # (ready at, head seq, lane id, entry)
        self.lane_ids: dict[str, str | None] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.granted = 0
        self.in_flight = 0

    def lane_by_id(self, lane_id: str) -> _Lane | None:
        return self.lanes.get(self.lane_ids[lane_id]) if lane_id in self.lane_ids else None

    def app_available_at(self, now: float) -> float:
        return max([self.blocked_until, *(w.available_at(now) for w in self.windows)])

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
        self._entries = itertools.count(1)  # heap entry ids, unique for the limiter's life

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def for_feishu(
        cls,
        *,
        messages_per_second: float = FEISHU_MESSAGES_PER_SECOND,
        messages_per_second_per_chat: float = FEISHU_MESSAGES_PER_RECEIVER_PER_SECOND,
        calls_per_second: float = 40.0,
        messages_per_minute: int = FEISHU_MESSAGES_PER_MINUTE,
        clock: Clock | None = None,
    ) -> RateLimiter:
        """Limits shaped like Feishu's: message sends per app (per second and per minute) and per receiver.

        The defaults are Feishu's own figures (FEISHU_NOTES: 50/s and 1,000/min per app, 5/s per chat
        or user), not figures under them: callers that go through :meth:`slot` are counted until their
        answer arrives, which covers the network's jitter without a margin. Other APIs share
        ``calls_per_second`` each.
        """
        send = ApiLimit(
            app=(Rate.per_second(messages_per_second), Rate(messages_per_minute, 60.0)),
            per_key=(Rate.per_second(messages_per_second_per_chat),),
        )
        return cls({MESSAGE_SEND: send}, default=ApiLimit(app=(Rate.per_second(calls_per_second),)), clock=clock)

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

        The call is logged at the moment of the grant; prefer :meth:`slot`, which logs it when its answer
        comes back. Grants are first come, first served among waiters that are ready; a waiter whose
        receiver is at its own limit lets later waiters for other receivers go first. Cancelling the
        waiting task gives its place up.
        """
        await self._acquire(api, key, hold=False)

    @contextlib.asynccontextmanager
    async def slot(self, api: str, key: str | None = None) -> AsyncIterator[None]:
        """``async with limiter.slot(api, key):`` make one call; it counts until the block exits.

        While the block runs, the call holds a place in every window of ``api`` (and of ``key``); on exit
        it is logged at that instant, the latest its request can have reached Feishu.
        """
        state, lane = await self._acquire(api, key, hold=True)
        try:
            yield
        finally:
            self._finish(state, lane)

    def penalize(self, api: str, seconds: float, key: str | None = None, limit: int | None = None) -> None:
        """Feishu said "rate limited, wait ``seconds``": pause one receiver (``key``) or the whole API.

        ``limit`` is Feishu's ``x-ogw-ratelimit-limit`` for the rule that refused the call. When no
        window of ours (the receiver's, or the app's) already has that count, Feishu's limit is lower
        than we thought: the shortest window with a larger count is lowered to it, for good.
        """
        state = self._state(api)
        now = self._clock.now()
        until = now + max(0.0, seconds)
        lane = state.lane(key) if key is not None else None
        if lane is not None:
            lane.blocked_until = max(lane.blocked_until, until)
        else:
            state.blocked_until = max(state.blocked_until, until)
        if limit is not None and limit >= 1:
            windows = lane.windows if lane is not None else state.windows
            if all(w.rate.count != limit for w in windows):
                larger = sorted((w for w in windows if w.rate.count > limit), key=lambda w: w.rate.per)
                if larger:
                    larger[0].shrink(limit)
        if lane is not None:
            self._requeue(state, lane, now)
        state.wake.set()

    def waiting(self, api: str) -> int:
        """How many callers are queued for ``api`` (for logs and tests)."""
        state = self._states.get(api)
        if state is None:
            return 0
        return sum(1 for lane in state.lanes.values() for _, fut, _ in lane.waiters if not fut.done())

    def granted(self, api: str) -> int:
        """How many calls of ``api`` have been let through."""
        state = self._states.get(api)
        return state.granted if state else 0

    def in_flight(self, api: str) -> int:
        """How many calls of ``api`` granted through :meth:`slot` have not been answered yet."""
        state = self._states.get(api)
        return state.in_flight if state else 0

    def limits(self, api: str, key: str | None = None) -> tuple[Rate, ...]:
        """The windows now in force for ``api`` (or for its receiver ``key``), after Feishu's corrections."""
        state = self._state(api)
        windows = state.lane(key).windows if key is not None else state.windows
        return tuple(w.rate for w in windows)

    async def aclose(self) -> None:
        """Stop the dispatchers; callers still waiting are cancelled."""
        for state in self._states.values():
            if state.task is not None and not state.task.done():
                state.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await state.task
            for lane in state.lanes.values():
                for _, fut, _ in lane.waiters:
                    fut.cancel()
                lane.waiters.clear()

    # ------------------------------------------------------------------------------ dispatching
    async def _acquire(self, api: str, key: str | None, *, hold: bool) -> tuple[_ApiState, _Lane]:
        state = self._state(api)
        lane = state.lane(key)
        now = self._clock.now()
        # Fast path: nobody queued and every window open -> grant without a dispatcher round trip.
        if (state.idle() and not lane.waiters
                and max(state.app_available_at(now), lane.available_at(now)) <= now):
            self._grant(state, lane, now, hold)
            if len(state.lanes) > _SWEEP_AT:
                self._sweep(state, now)
            return state, lane
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seq = next(self._seq)
        lane.waiters.append((seq, future, hold))
        if not lane.queued:
            self._push_pending(state, lane, lane.available_at(now))
        state.wake.set()
        if state.task is None or state.task.done():
            state.task = asyncio.get_running_loop().create_task(self._dispatch(state))
        try:
            await future
        except asyncio.CancelledError:
            if hold and future.done() and not future.cancelled():
                self._finish(state, lane)  # granted, then cancelled before the call began: free its place
            raise
        return state, lane

    def _finish(self, state: _ApiState, lane: _Lane) -> None:
        """A held call is over (answered, failed or abandoned): log it now in every window it held."""
        now = self._clock.now()
        for window in (*state.windows, *lane.windows):
            window.finish(now)
        state.in_flight -= 1
        self._requeue(state, lane, now)
        state.wake.set()

    def _grant(self, state: _ApiState, lane: _Lane, now: float, hold: bool) -> None:
        for window in (*state.windows, *lane.windows):
            if hold:
                window.start()
            else:
                window.record(now)
        if hold:
            state.in_flight += 1
        state.granted += 1

    def _push_pending(self, state: _ApiState, lane: _Lane, at: float) -> None:
        lane.entry = next(self._entries)
        lane.queued = True
        heapq.heappush(state.pending, (at, lane.waiters[0][0], _lane_id(lane.key), lane.entry))

    def _requeue(self, state: _ApiState, lane: _Lane, now: float) -> None:
        """A lane's windows changed (an answer, a penalty): give its waiters a fresh place in the heap."""
        if lane.waiters and lane.queued:
            self._push_pending(state, lane, lane.available_at(now))

    @staticmethod
    def _drop_superseded(state: _ApiState) -> None:
        """Pop heap tops whose lane has a newer entry (an infinite one would otherwise never leave)."""
        for heap, at in ((state.pending, 3), (state.ready, 2)):
            while heap:
                lane = state.lane_by_id(heap[0][at - 1])  # type: ignore[arg-type]
                if lane is not None and lane.entry == heap[0][at]:
                    break
                heapq.heappop(heap)  # type: ignore[arg-type]

    def _promote(self, state: _ApiState, now: float) -> None:
        """Move lanes whose own windows have opened from pending to ready."""
        while state.pending and state.pending[0][0] <= now:
            _, _, lane_id, entry = heapq.heappop(state.pending)
            lane = state.lane_by_id(lane_id)
            if lane is None or lane.entry != entry:
                continue  # superseded by a newer entry for the same lane
            if not lane.waiters:
                lane.queued = False
                continue
            ready_at = lane.available_at(now)  # a penalty or a call in flight may have moved it
            if ready_at > now:
                self._push_pending(state, lane, ready_at)
                continue
            lane.entry = next(self._entries)
            heapq.heappush(state.ready, (lane.waiters[0][0], lane_id, lane.entry))

    async def _dispatch(self, state: _ApiState) -> None:
        """Hand out slots while anyone waits; exits when the queue is empty (restarted on demand)."""
        clock = self._clock
        while True:
            self._drop_superseded(state)
            if state.idle():
                break
            state.wake.clear()
            now = clock.now()
            self._promote(state, now)
            if not state.ready:
                await self._idle(state, state.pending[0][0] - now)
                continue
            app_at = state.app_available_at(now)
            if app_at > now:
                await self._idle(state, app_at - now)
                continue
            _, lane_id, entry = heapq.heappop(state.ready)
            lane = state.lane_by_id(lane_id)
            if lane is None or lane.entry != entry:
                continue
            if lane.available_at(now) > now:  # a penalty arrived since it was promoted
                self._push_pending(state, lane, lane.available_at(now))
                continue
            lane.queued = False
            while lane.waiters and lane.waiters[0][1].done():  # cancelled while waiting
                lane.waiters.popleft()
            if lane.waiters:
                _, future, hold = lane.waiters.popleft()
                self._grant(state, lane, now, hold)
                future.set_result(None)
            if lane.waiters:
                self._push_pending(state, lane, lane.available_at(now))
            # Let the granted caller run before the next grant: keeps grants and sends in step.
            await asyncio.sleep(0)
        self._sweep(state, clock.now())

    async def _idle(self, state: _ApiState, delay: float) -> None:
        """Sleep ``delay`` on the clock, or less if a new waiter, an answer or a penalty arrives."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        waker = asyncio.ensure_future(state.wake.wait())
        # An infinite delay waits for a call in flight to be answered: only the wake-up ends it.
        sleeper = asyncio.ensure_future(self._clock.sleep(delay)) if math.isfinite(delay) else None
        try:
            await asyncio.wait({t for t in (sleeper, waker) if t is not None}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                if task is not None and not task.done():
                    task.cancel()

    @staticmethod
    def _sweep(state: _ApiState, now: float) -> None:
        """Forget receivers whose windows have emptied, so lanes do not accumulate for ever."""
        for key in [k for k, lane in state.lanes.items() if not lane.queued and lane.idle(now)]:
            del state.lanes[key]
            state.lane_ids.pop(_lane_id(key), None)
