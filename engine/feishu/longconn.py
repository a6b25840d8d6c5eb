"""The long-connection ingress: Feishu pushes events over a websocket the app opens (no public address).

``LongConnection(config, dispatcher, loop).start()`` runs ``lark.ws.Client`` in its own daemon thread,
because in lark-oapi 1.7.5 ``start()`` blocks forever on a module-level event loop, has no ``stop()``,
and runs handlers one after another on that loop. Each event is handed to the engine's own loop
(``asyncio.run_coroutine_threadsafe``) through the same :class:`~engine.feishu.ingress.EventPipeline` as
the webhook (normalize, authorize, dedupe, dispatch), and lark's handler returns at once.

What differs from the webhook, and why:

* No decryption, token or signature: the connection itself is authenticated with the app secret, so
  the handler is built with ``EventDispatcherHandler.builder("", "")``.
* lark acknowledges a frame as soon as the handler returns, so Feishu will not push a failed event
  again. A dispatch that fails (Temporal unavailable, over budget, an error) is therefore retried here,
  in memory, with backoff for up to ``max_retry_seconds``; the seen-set and the workflows' own event-id
  dedupe keep a retry from acting twice. A process that dies meanwhile loses the event: use the webhook
  where that matters.
* Card callbacks need their answer (toast, new card) in the frame's response, so the card processor is
  the one exception to "return at once": it waits up to the dispatch budget for the result, holding
  lark's loop for at most that long.
* lark's module-level loop is whatever ``asyncio.get_event_loop()`` returned when ``lark_oapi`` was
  first imported; imported from a running engine loop, that is the engine's loop, and ``start()`` would
  fail on it. The thread gives lark a fresh loop of its own before starting. That loop is a module
  global, so one ``LongConnection`` per process (Feishu allows 50 connections per app anyway).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.config import EngineConfig
from engine.feishu.dedupe import SeenEvents
from engine.feishu.ingress import DEFAULT_DISPATCH_TIMEOUT, EventPipeline, Outcome, register_processors
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
        # Deliveries under way on the engine loop (tests and shutdown code can wait on them).
        self.pending: set[concurrent.futures.Future[Outcome]] = set()
        self._pending_lock = threading.Lock()

    # -- lifecycle

    def start(self) -> threading.Thread:
        """Connect in a daemon thread and return it (it runs until the process ends; lark has no stop)."""
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
        client = lark.ws.Client(app_id, app_secret, event_handler=self.event_handler, domain=self.domain,
                                log_level=lark.LogLevel.WARNING)
        try:
            client.start()
        except Exception:
            log.exception("feishu long connection stopped")

    # -- lark's side (its thread): hand over and return

    def _submit(self, payload: dict[str, Any], *, retry: bool) -> concurrent.futures.Future[Outcome]:
        future = asyncio.run_coroutine_threadsafe(self._deliver(payload, retry=retry), self.loop)
        with self._pending_lock:
            self.pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Outcome]) -> None:
        with self._pending_lock:
            self.pending.discard(future)

    def _on_event(self, payload: dict[str, Any]) -> None:
        """lark's processor for events: schedule on the engine loop, return at once."""
        self._submit(payload, retry=True)

    def _on_card(self, payload: dict[str, Any]) -> dict[str, Any]:
        """lark's processor for card callbacks: wait (bounded) for the answer Feishu shows the user."""
        # No in-process retry for a card: the user saw it fail and can press again.
        future = self._submit(payload, retry=False)
        try:
            outcome = future.result(timeout=self.pipeline.dispatch_timeout + 0.25)
        except concurrent.futures.TimeoutError:
            return {}  # leave the card as it is; the delivery goes on (and retries) on the engine loop
        if not outcome.acknowledged:
            # lark turns this into a 500 frame, as the webhook would answer: Feishu shows an error toast.
            raise RuntimeError(f"card callback not handled: {outcome.reason}")
        return outcome.body

    # -- the engine's side (its loop)

    async def _deliver(self, payload: dict[str, Any], *, retry: bool = True) -> Outcome:
        """Run the pipeline, retrying failed dispatches: nobody else will redeliver this event."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.max_retry_seconds
        attempt = 0
        while True:
            try:
                outcome = await self.pipeline.handle(payload)
            except Exception:  # the pipeline reports delivery problems as outcomes; this is a bug
                log.exception("feishu long connection: event handling crashed")
                return Outcome(500, {}, "crashed")
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
