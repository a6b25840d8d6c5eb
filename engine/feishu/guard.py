"""The ingress under abuse: connection and concurrency caps, header and body read timeouts, quiet refusals.

uvicorn (0.54) has no timeout for a request that arrives slowly: ``timeout_keep_alive`` covers only the
idle time *between* requests and is reset by every byte received, and request-start / request-complete
timeouts are still an open wish (uvicorn issue #157). Its ``limit_concurrency`` counts open connections
*and* running requests, so idle connections alone would make it refuse a genuine push. This module
supplies what is missing, in two layers:

* :func:`guarded_protocol`: uvicorn's h11 protocol with

  - a **connection cap**: over ``max_connections`` a new connection is answered ``503`` with a short
    body and closed at once, before anything is parsed;
  - a **header timeout**: a connection whose request line and headers are not complete within
    ``header_timeout`` seconds (from its opening, or from the end of its previous response) is answered
    ``408`` and closed.

* :class:`RequestGuard`, an ASGI middleware, once the headers are in:

  - a **body timeout**: the whole body must arrive within ``body_timeout`` seconds of the headers, or
    the request is answered ``408`` with ``Connection: close`` (its body is never read);
  - a **concurrency cap**: at most ``max_concurrent_requests`` requests are handled at once, counted only
    once their body is in (a connection that is still sending holds no slot); over the cap the request is
    answered ``503`` with ``Retry-After: 1`` (Feishu pushes a refused event again);
  - a client that goes away mid-request is counted, not logged with a traceback.

Every refusal is counted in :class:`GuardStats`, which writes at most one summary line per
``interval`` seconds (60), so a flood cannot grow the log; uvicorn's own "Invalid HTTP request received."
warning is counted there too instead of logged once per request. The protocol is always h11, also
where httptools is installed. :func:`raise_file_limit` lifts the process's
``RLIMIT_NOFILE`` soft limit to its hard limit, and :func:`effective_max_connections` keeps the cap under
what the limit allows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from engine.config import IngressSettings

__all__ = ["FD_RESERVE", "GuardLimits", "GuardStats", "RequestGuard", "effective_max_connections",
           "guarded_protocol", "raise_file_limit", "uvicorn_config"]

log = logging.getLogger(__name__)

FD_RESERVE = 256
"""File descriptors kept out of the connection cap: Temporal, Feishu calls, logs, the listening socket."""

# uvicorn's own one-line-per-request warnings, counted instead of logged (a flood of garbage would
# otherwise write one line per request).
_UVICORN_NOISE = {"Invalid HTTP request received.": "invalid_requests"}


@dataclass(frozen=True)
class GuardLimits:
    """The limits of one ingress server; seconds and counts (see ``[ingress]`` in the README)."""

    header_timeout: float = 10.0
    body_timeout: float = 15.0
    keep_alive: int = 5
    max_connections: int = 10_000
    max_concurrent_requests: int = 512
    buffer_bytes: int = 1_048_576  # bodies up to this size are read before the app runs

    @classmethod
    def from_settings(cls, settings: IngressSettings, *, file_limit: int | None = None) -> GuardLimits:
        """The limits of ``[ingress]``; ``max_connections`` kept under ``file_limit`` when given."""
        connections = settings.max_connections
        if file_limit is not None:
            connections = effective_max_connections(connections, file_limit)
        return cls(header_timeout=settings.header_timeout_seconds, body_timeout=settings.body_timeout_seconds,
                   keep_alive=settings.keep_alive_seconds, max_connections=connections,
                   max_concurrent_requests=settings.max_concurrent_requests, buffer_bytes=settings.max_body_bytes)


class GuardStats:
    """Counts of what the guard refused or closed, logged as one summary line per ``interval`` at most."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.total: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._last_log = -math.inf

    def note(self, kind: str) -> None:
        self.total[kind] = self.total.get(kind, 0) + 1
        self._unlogged[kind] = self._unlogged.get(kind, 0) + 1
        now = self.clock()
        if now - self._last_log >= self.interval:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(self._unlogged.items()))
            log.warning("feishu ingress refused or closed requests (since the last such line): %s", counts)
            self._unlogged.clear()
            self._last_log = now


class _UvicornNoise(logging.Filter):
    """One per process (a logger keeps its filters): counts into the stats of the latest guarded server."""

    stats: GuardStats | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _UVICORN_NOISE.get(record.getMessage())
        if kind is None:
            return True
        if self.stats is not None:
            self.stats.note(kind)
        return False


_NOISE = _UvicornNoise()


def _raw_response(status: int, reason: str, msg: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 response closing the connection, for refusals made below the ASGI app."""
    body = json.dumps({"msg": msg}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")
    return head.encode("latin-1") + body


def guarded_protocol(limits: GuardLimits, stats: GuardStats) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection cap and the header timeout (pass as ``Config(http=...)``)."""
    busy = _raw_response(503, "Service Unavailable", "too many connections", "retry-after: 1\r\n")
    slow = _raw_response(408, "Request Timeout", f"headers not received within {limits.header_timeout:g} s")

    class GuardedH11Protocol(H11Protocol):
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= limits.max_connections:
                self._refused = True
                self.transport = transport  # connection_lost closes it again, harmlessly
                stats.note("connections_refused")
                transport.write(busy)
                transport.close()
                return
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            if self._refused:
                return
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self._header_timer is not None and self.cycle is not None and not self.cycle.response_complete:
                self._disarm_header_timer()  # a request's headers are in: the body timeout takes over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm_header_timer()  # the next request on this keep-alive connection

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._header_timeout)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
                return
            stats.note("header_timeouts")
            self.transport.write(slow)
            self.transport.close()

    return GuardedH11Protocol


_CLOSE = ((b"connection", b"close"),)  # uvicorn closes after the answer: the rest of the body is never read


async def _answer(send: Send, status: int, msg: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"msg": msg}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: the body timeout, the concurrency cap, and quiet client disconnects.

    A body up to ``buffer_bytes`` (and no larger declared ``Content-Length``) is read before the app
    runs and replayed to it; a larger one is handed over as it arrives, under the same deadline (the
    app's own size check then refuses it). ``active`` is the number of requests being handled.
    """

    def __init__(self, app: ASGIApp, limits: GuardLimits, stats: GuardStats) -> None:
        self.app = app
        self.limits = limits
        self.stats = stats
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        buffered: list[Message] = []
        complete = False
        if _declared_length(scope) <= self.limits.buffer_bytes:
            size = 0
            try:
                async with asyncio.timeout_at(deadline):
                    while size <= self.limits.buffer_bytes:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            self.stats.note("disconnects")
                            return
                        buffered.append(message)
                        size += len(message.get("body", b""))
                        if not message.get("more_body", False):
                            complete = True
                            break
            except TimeoutError:
                self.stats.note("body_timeouts")
                await _answer(send, 408, f"body not received within {self.limits.body_timeout:g} s", _CLOSE)
                return
        if self.active >= self.limits.max_concurrent_requests:
            self.stats.note("busy")
            await _answer(send, 503, "busy, try again", ((b"retry-after", b"1"),))
            return

        timed_out = False
        started = False

        async def replay() -> Message:
            nonlocal timed_out
            if buffered:
                return buffered.pop(0)
            if complete or timed_out:
                return await receive()  # after the body: only a disconnect is left to hear
            try:
                async with asyncio.timeout_at(deadline):
                    return await receive()
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}  # the app stops reading; the 408 is sent below

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the app's answer to the pretended disconnect; the 408 goes instead
            started = True
            await send(message)

        self.active += 1
        try:
            await self.app(scope, replay, guarded_send)
        except ClientDisconnect:
            if not timed_out:
                self.stats.note("disconnects")
        finally:
            self.active -= 1
        if timed_out and not started:
            self.stats.note("body_timeouts")
            await _answer(send, 408, f"body not received within {self.limits.body_timeout:g} s", _CLOSE)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # the app answers the malformed header
    return 0


def raise_file_limit() -> int:
    """Raise ``RLIMIT_NOFILE``'s soft limit to the hard limit; return the soft limit now in force.

    Each connection holds a file descriptor; the common default soft limit (1,024) is what ran out.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:  # e.g. a container that forbids it
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, error)
    return soft


def effective_max_connections(configured: int, file_limit: int) -> int:
    """``configured``, lowered to what ``file_limit`` leaves after :data:`FD_RESERVE` (at least 1)."""
    allowed = max(1, file_limit - FD_RESERVE)
    if configured > allowed:
        log.warning("ingress max_connections %d lowered to %d: the open-file limit is %d (raise the hard "
                    "limit, e.g. LimitNOFILE= in a systemd unit, to allow more)", configured, allowed, file_limit)
        return allowed
    return configured


def uvicorn_config(app: ASGIApp, limits: GuardLimits, *, stats: GuardStats | None = None,
                   backlog: int = 2048, **options: Any) -> Any:
    """A ``uvicorn.Config`` serving ``app`` behind the guard (``options`` go to ``uvicorn.Config``).

    The app is wrapped in :class:`RequestGuard`, the protocol is :func:`guarded_protocol`'s, and
    uvicorn's own ``limit_concurrency`` stays off (it would count idle connections against requests).
    """
    import uvicorn

    stats = stats if stats is not None else GuardStats()
    _NOISE.stats = stats
    logging.getLogger("uvicorn.error").addFilter(_NOISE)
    guarded = RequestGuard(app, limits, stats)
    options.setdefault("log_level", "warning")
    options.setdefault("lifespan", "off")
    options.setdefault("access_log", False)
    return uvicorn.Config(guarded, http=guarded_protocol(limits, stats), timeout_keep_alive=limits.keep_alive,
                          backlog=backlog, **options)
