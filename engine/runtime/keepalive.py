"""Heartbeats for every activity that asks for them, so a crashed worker's activities are retried soon.

Temporal only learns that a worker died from a timeout. Without a heartbeat timeout that is the activity's
start-to-close timeout (a minute for a Feishu call, which must also cover waits on the rate limiter), so
every call in flight at a crash waited that long before its retry. With ``heartbeat_timeout`` set on the
activity, this interceptor heartbeats on the worker's event loop while the activity runs; when the process
dies the heartbeats stop, and the server retries the activity after ``heartbeat_timeout``.

It proves the process is alive, not that the activity makes progress: a call stuck inside a live worker is
still ended by its start-to-close timeout. A keep-alive beat repeats the details of the activity's own last
heartbeat, so progress an activity records is not overwritten. Activities without a heartbeat timeout are
left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

BEATS_PER_TIMEOUT = 4  # a lost beat or a busy event loop must not look like a dead worker


def beat_interval(heartbeat_timeout: timedelta) -> float:
    """Seconds between two beats for ``heartbeat_timeout`` (the SDK throttles what it sends anyway)."""
    return max(heartbeat_timeout.total_seconds() / BEATS_PER_TIMEOUT, 0.05)


class KeepAlive(Interceptor):
    """Worker interceptor: heartbeat every activity that has a heartbeat timeout while it runs."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _KeepAliveInbound(next)


class _LastDetails(ActivityOutboundInterceptor):
    """Remembers the details of the activity's own last heartbeat."""

    def __init__(self, next: ActivityOutboundInterceptor) -> None:
        super().__init__(next)
        self.details: tuple[Any, ...] = ()

    def heartbeat(self, *details: Any) -> None:
        self.details = details
        super().heartbeat(*details)


class _KeepAliveInbound(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        self._outbound = _LastDetails(outbound)
        # this outbound heartbeat runs on the event loop, for async and thread-pool activities alike
        self._heartbeat: Callable[..., None] = outbound.heartbeat
        super().init(self._outbound)

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        timeout = activity.info().heartbeat_timeout
        if not timeout:
            return await super().execute_activity(input)
        beating = asyncio.create_task(self._beat(beat_interval(timeout)))
        try:
            return await super().execute_activity(input)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self, interval: float) -> None:
        while True:
            self._heartbeat(*self._outbound.details)
            await asyncio.sleep(interval)
