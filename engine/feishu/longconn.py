"""The long-connection ingress: Feishu pushes events over a websocket the app opens (no public address).

``LongConnection(config, dispatcher, loop).start()`` runs ``lark.ws.Client`` in its own daemon thread,
because in lark-oapi 1.7.5 ``start()`` blocks forever on a module-level event loop, has no ``stop()``,
and runs handlers one after another on that loop. Each event is handed to the engine's own loop
(``asyncio.run_coroutine_threadsafe``) through the same :class:`~engine.feishu.ingress.EventPipeline` as
the webhook (normalize, authorize, dedupe, dispatch); lark's processor returns at once, and the frame's
acknowledgement waits for the hand-off (below).

What differs from the webhook, and why:

* No decryption, token or signature: the connection itself is authenticated with the app secret, so
  the handler is built with ``EventDispatcherHandler.builder("", "")``.
* The acknowledgement frame goes back only after the hand-off. lark's own client answers a frame with
  ``{"code": 200}`` as soon as the handler returns; the client from :func:`_hand_off_client_class`
  instead awaits the delivery's first attempt (without holding lark's loop, so pings and other frames go
  on) and answers with its status: 200 once the router has handed the event to Temporal (or it was a
  duplicate, or ignored), the pipeline's 4xx for a refused event, its 5xx when the hand-off failed within
  the dispatch budget. Feishu treats a frame not acknowledged with 200 as not delivered and may push it
  again (the stand-in does, on the webhook's schedule).
* A failed dispatch is also retried here, in memory, with backoff for up to ``max_retry_seconds``; the
  seen-set, the in-flight join and the workflows' own event-id dedupe keep the retry and a redelivery
  from acting twice. A process that dies meanwhile loses only this retry, not Feishu's redelivery.
* Card callbacks need their answer (toast, new card) in the acknowledgement's ``data``: it is the
  callback's answer, base64-encoded JSON, as lark's client would send it. A card is not retried.
* lark's module-level loop is whatever ``asyncio.get_event_loop()`` returned when ``lark_oapi`` was
  first imported; imported from a running engine loop, that is the engine's loop, and ``start()`` would
  fail on it. The thread gives lark a fresh loop of its own before starting. That loop is a module
  global, so one ``LongConnection`` at a time per process (Feishu allows 50 connections per app anyway).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.config import EngineConfig
from engine.events import CardAction
from engine.feishu.dedupe import SeenEvents
from engine.feishu.ingress import DEFAULT_DISPATCH_TIMEOUT, EventPipeline, Outcome, clip, register_processors
from engine.runtime.dispatch import Dispatcher

if TYPE_CHECKING:
    from lark_oapi import EventDispatcherHandler

__all__ = ["LongConnection"]

log = logging.getLogger(__name__)

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
"""Backoff between in-process retries of a failed dispatch; the last delay repeats."""


class LongConnection:
    """Receives events over Feishu's long connection and dispatches them on the engine's loop ``loop``."""

    def __init__(
        self,
        config: EngineConfig,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        *,
        bot_open_id: str | None = None,
        dispatch_timeout: float = DEFAULT_DISPATCH_TIMEOUT,
        seen: SeenEvents | None = None,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        max_retry_seconds: float = 3600.0,
        domain: str | None = None,
    ) -> None:
        import lark_oapi as lark

        if not retry_delays:
            raise ValueError("retry_delays must not be empty")
        self.config = config
        self.loop = loop
        self.pipeline = EventPipeline(config, dispatcher, bot_open_id=bot_open_id,
                                      dispatch_timeout=dispatch_timeout, seen=seen)
        self.retry_delays = tuple(retry_delays)
        self.max_retry_seconds = max_retry_seconds
        self.domain = (domain or config.secret("base_url") or lark.FEISHU_DOMAIN).rstrip("/")
        self.event_handler: EventDispatcherHandler = register_processors(
            lark.EventDispatcherHandler.builder("", ""), self._on_event, self._on_card).build()
        self.thread: threading.Thread | None = None
        self._handed: concurrent.futures.Future[Outcome] | None = None
        self._client: Any = None  # lark's ws client and its loop, once the thread runs
        self._lark_loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        # Deliveries under way on the engine loop (tests and shutdown code can wait on them).
        self.pending: set[concurrent.futures.Future[Outcome]] = set()
        self._pending_lock = threading.Lock()

    # -- lifecycle

    def start(self) -> threading.Thread:
        """Connect in a daemon thread and return it; it runs until :meth:`stop` or the process ends."""
        if self.thread is not None:
            raise RuntimeError("this long connection was already started")
        app_id = self.config.secret("app_id")
        app_secret = self.config.secret("app_secret")
        if not app_id or not app_secret:
            raise RuntimeError("the long connection needs [feishu] app_id and app_secret")
        self.thread = threading.Thread(target=self._run, args=(app_id, app_secret),
                                       name="feishu-long-connection", daemon=True)
        self.thread.start()
        return self.thread

    def _run(self, app_id: str, app_secret: str) -> None:
        import lark_oapi as lark
        import lark_oapi.ws.client as ws_client

        lark_loop = asyncio.new_event_loop()
        asyncio.set_event_loop(lark_loop)
        ws_client.loop = lark_loop  # see the module docstring: never let lark drive the engine's loop
        client = _hand_off_client_class()(self, app_id, app_secret, event_handler=self.event_handler,
                                          domain=self.domain, log_level=lark.LogLevel.WARNING)
        self._client = client
        self._lark_loop = lark_loop  # set last: stop() waits for it, then reads both
        try:
            client.start()
        except asyncio.CancelledError:
            if not self._stopping:
                log.error("feishu long connection stopped: its loop was cancelled")
        except Exception:
            if not self._stopping:
                log.exception("feishu long connection stopped")
        finally:
            left = asyncio.all_tasks(lark_loop)
            for task in left:
                task.cancel()
            lark_loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            lark_loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and end lark's thread (waits up to ``timeout`` seconds).

        lark-oapi 1.7.5 has no stop: this turns its reconnecting off, closes its websocket and cancels
        the tasks on its loop, which ends ``start()``. Events already handed over finish on the engine
        loop (see :attr:`pending`). Blocks the calling thread: from a coroutine, use ``asyncio.to_thread``.
        """
        thread = self.thread
        if thread is None or self._stopping:
            return
        give_up = time.monotonic() + timeout
        while self._lark_loop is None and thread.is_alive() and time.monotonic() < give_up:
            time.sleep(0.01)  # stopped just after start(): the thread has not built lark's client yet
        client, lark_loop = self._client, self._lark_loop
        if client is None or lark_loop is None:
            return
        self._stopping = True
        client._auto_reconnect = False

        async def shut() -> None:
            # Its receive and ping loops first (cancelled, they neither reconnect nor touch lark's lock),
            # then the socket, then the task start() waits on, which ends start().
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            waiting = [t for t in others if getattr(t.get_coro(), "__name__", "") == "_select"]
            loops = [t for t in others if t not in waiting]
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            conn, client._conn = client._conn, None
            if conn is not None:
                with contextlib.suppress(Exception):  # already closed by the other side
                    await conn.close()
            for task in waiting:
                task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop already ended
            asyncio.run_coroutine_threadsafe(shut(), lark_loop)
        thread.join(timeout)

    # -- lark's side (its thread and loop): hand over, then acknowledge

    async def acknowledge(self, frame_payload: bytes) -> tuple[int, dict[str, Any] | None]:
        """The acknowledgement of one data frame: ``(code, answer)``, once the hand-off was tried.

        Runs on lark's loop and awaits the engine's loop without blocking it. ``answer`` is a card
        callback's JSON answer (None for events). A payload lark cannot parse, or of a type no
        processor takes, is answered 500, as lark's own client does.
        """
        try:
            first = self.hand_off(frame_payload)
        except Exception as error:
            log.warning("feishu long connection: frame refused by lark's dispatcher: %s", clip(str(error)))
            return 500, None
        if first is None:  # not a frame the processors hand over (lark returned without calling one)
            return 200, None
        try:
            # shield: a late answer must not cancel the delivery on the engine's loop
            outcome = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(first)),
                                             self.pipeline.dispatch_timeout + 0.5)
        except TimeoutError:
            return 503, None  # the delivery goes on (and retries) on the engine's loop
        card = any(isinstance(e, CardAction) for e in outcome.events)
        return outcome.status, (outcome.body if card and outcome.acknowledged else None)

    def hand_off(self, frame_payload: bytes) -> concurrent.futures.Future[Outcome] | None:
        """Run lark's dispatcher on a frame's payload; the future of the delivery's first attempt.

        lark's event processors return nothing to their caller, so the processor leaves its future in
        ``self._handed`` (this runs on lark's one thread: nothing else runs in between).
        """
        self._handed = None
        self.event_handler._do_without_validation(frame_payload)
        handed, self._handed = self._handed, None
        return handed

    def _submit(self, payload: dict[str, Any], *, retry: bool) -> concurrent.futures.Future[Outcome]:
        first: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
        whole = asyncio.run_coroutine_threadsafe(self._deliver(payload, retry=retry, first=first), self.loop)
        with self._pending_lock:
            self.pending.add(whole)
        whole.add_done_callback(functools.partial(self._forget, first))
        self._handed = first
        return first

    def _forget(self, first: concurrent.futures.Future[Outcome], whole: concurrent.futures.Future[Outcome]) -> None:
        with self._pending_lock:
            self.pending.discard(whole)
        if not first.done():  # cancelled (the engine loop stopped) before a first attempt ended
            first.set_result(Outcome(503, {}, "not dispatched"))

    def _on_event(self, payload: dict[str, Any]) -> None:
        """lark's processor for events: schedule on the engine loop, return at once."""
        self._submit(payload, retry=True)

    def _on_card(self, payload: dict[str, Any]) -> dict[str, Any]:
        """lark's processor for card callbacks: schedule, return at once; the answer goes in the ack."""
        # No in-process retry for a card: the user saw it fail and can press again.
        self._submit(payload, retry=False)
        return {}

    # -- the engine's side (its loop)

    async def _deliver(self, payload: dict[str, Any], *, retry: bool = True,
                       first: concurrent.futures.Future[Outcome] | None = None) -> Outcome:
        """Run the pipeline, retrying failed dispatches; ``first`` gets the first attempt's outcome."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.max_retry_seconds
        attempt = 0
        while True:
            try:
                outcome = await self.pipeline.handle(payload)
            except Exception:  # the pipeline reports delivery problems as outcomes; this is a bug
                log.exception("feishu long connection: event handling crashed")
                outcome = Outcome(500, {}, "crashed")
                if first is not None and not first.done():
                    first.set_result(outcome)
                return outcome
            if first is not None and not first.done():
                first.set_result(outcome)
            # 4xx are final (malformed, another app's or an unknown tenant's event): retrying changes nothing.
            if outcome.status < 500 or not retry:
                return outcome
            delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
            if loop.time() + delay > give_up_at:
                log.error("feishu long connection: giving up on event %s after %d attempts: %s",
                          payload.get("header", {}).get("event_id") or payload.get("uuid"), attempt + 1,
                          outcome.reason)
                return outcome
            attempt += 1
            await asyncio.sleep(delay)


def _hand_off_client_class() -> type[Any]:
    """lark's ws client, acknowledging each data frame only once :meth:`LongConnection.acknowledge` says how.

    Only ``_handle_data_frame`` differs from lark-oapi 1.7.5's own (read its source alongside): the
    frame is parsed and reassembled the same way, but the handler's result is awaited instead of being
    computed synchronously on lark's loop, and the ack's ``code`` is the hand-off's status.
    """
    import base64

    import lark_oapi as lark
    from lark_oapi.ws.client import _get_by_key
    from lark_oapi.ws.const import HEADER_BIZ_RT, HEADER_MESSAGE_ID, HEADER_SEQ, HEADER_SUM, HEADER_TYPE
    from lark_oapi.ws.enum import MessageType
    from lark_oapi.ws.model import Response

    class HandOffClient(lark.ws.Client):  # type: ignore[misc]
        def __init__(self, owner: LongConnection, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._owner = owner

        async def _handle_data_frame(self, frame: Any) -> None:
            headers = frame.headers
            msg_id = _get_by_key(headers, HEADER_MESSAGE_ID)
            parts, seq = int(_get_by_key(headers, HEADER_SUM)), int(_get_by_key(headers, HEADER_SEQ))
            payload = frame.payload
            if parts > 1:
                payload = self._combine(msg_id, parts, seq, payload)
                if payload is None:
                    return  # wait for the other parts
            if MessageType(_get_by_key(headers, HEADER_TYPE)) != MessageType.EVENT:
                return  # as lark: "card"-type frames are not answered (callbacks arrive as events)
            started = time.monotonic()
            code, answer = await self._owner.acknowledge(payload)
            header = headers.add()
            header.key, header.value = HEADER_BIZ_RT, str(round((time.monotonic() - started) * 1000))
            response = Response(code=code)
            if answer is not None:
                response.data = base64.b64encode(lark.JSON.marshal(answer).encode("utf-8"))
            frame.payload = lark.JSON.marshal(response).encode("utf-8")
            await self._write_message(frame.SerializeToString())

    return HandOffClient
