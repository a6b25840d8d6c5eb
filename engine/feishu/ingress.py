"""The webhook ingress: Feishu's event and card-callback pushes in, typed events out to the router.

``build_ingress(config, dispatcher)`` returns a Starlette app:

* ``GET /healthz``: ``{"ok": true}``, plus ``"temporal": bool`` when the dispatcher has ``healthy()``.
* ``POST /feishu/events`` and ``POST /feishu/card``: one handling for both. A card callback is answered
  with ``{}`` (leave the card) or ``{"toast": {"type": "info", "content": ...}, "card": {"type": "raw",
  "data": card}}``; everything else with ``{}``.

What happens to a push, in order (each refusal is one log line and never reaches the dispatcher):

1. size: over ``ingress.max_body_bytes`` → 413, counted while reading (a missing or lying
   Content-Length does not help);
2. shape: not JSON (or nested deeper than Python's parser goes) → 400; JSON but neither an encrypted
   body nor an event envelope → 400;
3. with an encrypt key, a push other than the URL verification must carry ``X-Lark-Request-Timestamp``,
   ``X-Lark-Request-Nonce`` and ``X-Lark-Signature`` → 401 naming the missing ones;
   ``X-Lark-Request-Timestamp`` (signed, fresh on every push) outside ``±timestamp_tolerance_seconds``
   → 401;
4. lark-oapi's ``EventDispatcherHandler.do`` decrypts, checks the verification token and the signature
   and answers ``url_verification``; it runs in a worker thread (it is synchronous) and its processors
   only capture the decrypted payload. It answers 500 with its exception's text for every failure:
   mapped to 401 with a reason of our own (lark's text names Python internals). Event types we
   do not handle get a throw-away handler with a processor for just that type, so they are still
   authenticated, then acknowledged with 200 and logged (lark would 500 them and Feishu would retry);
5. the event's own ``create_time``: more than the tolerance in the future, or older than the tolerance
   plus Feishu's redelivery window (its last retry comes ~6 h 20 min after the first push, with the
   original ``create_time``) → 401;
6. the shared :class:`EventPipeline` (also used by the long connection): unknown ``app_id`` → 403, no
   organization with the ``tenant_key`` → 403, malformed known event → 400, event id already
   dispatched → 200 without dispatching, then dispatch with a 2.5 s budget (Feishu wants an answer in
   3 s): success → 200; ``DispatchBusy`` (the event's chat or sender has a full queue,
   :mod:`engine.runtime.fairness`) → 503 at once; ``TemporalUnavailable`` or over budget → 503 (Feishu pushes again; the
   dispatch that ran over keeps going, and if it succeeds the redelivery is answered from the seen-set);
   any other exception → 500, logged with the event id.

Every refusal is answered ``{"msg": reason}`` with a reason written for the sender (at most
:data:`MAX_REASON_CHARS` characters, no Python internals) and logged as one line without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from engine.config import EngineConfig, OrgContext
from engine.events import CardAction, FeishuEvent
from engine.feishu.dedupe import SeenEvents
from engine.feishu.normalize import (
    V1_EVENT_TYPES,
    V2_EVENT_TYPES,
    MalformedEvent,
    envelope_create_time,
    envelope_event_id,
    envelope_event_type,
    normalize_all,
)
from engine.runtime.dispatch import Dispatcher, DispatchResult
from engine.runtime.errors import DispatchBusy, TemporalUnavailable
from engine.runtime.fairness import KeyedGate

if TYPE_CHECKING:
    from lark_oapi import EventDispatcherHandler
    from lark_oapi.event.dispatcher_handler import EventDispatcherHandlerBuilder

__all__ = [
    "DEFAULT_DISPATCH_TIMEOUT",
    "EventPipeline",
    "Outcome",
    "build_ingress",
    "card_response",
    "register_processors",
]

log = logging.getLogger(__name__)

DEFAULT_DISPATCH_TIMEOUT = 2.5
DRAIN_GRACE = 10.0
"""Seconds a stopping ingress gives dispatches still under way (already answered 503) to finish."""
"""Seconds a dispatch may take before the push is answered 503 (Feishu gives up waiting at 3 s)."""
REDELIVERY_WINDOW_SECONDS = 7 * 3600.0
"""How old an event's ``create_time`` may legitimately be: Feishu redelivers up to ~6 h 20 min later."""
MAX_REASON_CHARS = 200
"""A refusal's reason is cut to this many characters: it quotes what the sender sent, which may be huge."""
CARD_CALLBACK_TYPE = "card.action.trigger"
URL_VERIFICATION = "url_verification"


# ----------------------------------------------------------------------------------- lark glue


def lark_object_to_dict(data: Any) -> dict[str, Any]:
    """The payload lark-oapi parsed for a processor, back as plain JSON data.

    lark's own encoder walks the object; it leaves out keys whose value was null.
    """
    import lark_oapi as lark

    return json.loads(lark.JSON.marshal(data) or "{}")


def register_processors(
    builder: EventDispatcherHandlerBuilder,
    on_event: Callable[[dict[str, Any]], None],
    on_card: Callable[[dict[str, Any]], Any],
) -> EventDispatcherHandlerBuilder:
    """Register a processor for every event type :mod:`engine.feishu.normalize` handles.

    ``on_event`` gets each decrypted event as a dict; ``on_card`` gets ``card.action.trigger`` callbacks
    and returns the callback's answer (lark marshals it as the response body, which is what the long
    connection sends back to Feishu). Both run on lark's thread: keep them tiny.
    """
    for event_type in V2_EVENT_TYPES:
        if event_type == CARD_CALLBACK_TYPE:
            # A callback processor, not an event one: only those can answer with a toast or a card.
            builder.register_p2_card_action_trigger(lambda data: on_card(lark_object_to_dict(data)))
        else:
            builder.register_p2_customized_event(event_type, lambda data: on_event(lark_object_to_dict(data)))
    for event_type in V1_EVENT_TYPES:
        builder.register_p1_customized_event(event_type, lambda data: on_event(lark_object_to_dict(data)))
    return builder


def card_response(result: DispatchResult | None) -> dict[str, Any]:
    """The body answering a card callback: ``{}`` leaves the card as it is."""
    body: dict[str, Any] = {}
    if result is None:
        return body
    if result.toast:
        body["toast"] = {"type": "info", "content": result.toast}
    if result.card:
        body["card"] = {"type": "raw", "data": result.card}
    return body


def clip(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters (marked with "…"), for reasons that quote what a sender sent."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------- the pipeline


@dataclass
class Outcome:
    """How one authenticated delivery ended: the HTTP status and body to answer, and why."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    events: list[FeishuEvent] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


class EventPipeline:
    """Authorize, normalize, deduplicate and dispatch one decrypted, authenticated delivery.

    Shared by the webhook and the long connection, and bound to the event loop it first runs on.
    Every outcome other than a plain success is logged here, once.
    """

    def __init__(
        self,
        config: EngineConfig,
        dispatcher: Dispatcher,
        *,
        bot_open_id: str | None = None,
        dispatch_timeout: float = DEFAULT_DISPATCH_TIMEOUT,
        seen: SeenEvents | None = None,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.app_id = config.secret("app_id")
        if bot_open_id is None and config.feishu is not None:
            bot_open_id = config.feishu.bot_open_id
        self.bot_open_id = bot_open_id
        self.dispatch_timeout = dispatch_timeout
        self.seen = seen if seen is not None else SeenEvents()
        # event id -> the dispatch under way, so a redelivery that arrives meanwhile joins it instead of
        # dispatching a second time; and how many requests are waiting on each.
        self._inflight: dict[str, asyncio.Task[DispatchResult]] = {}
        self._waiters: dict[str, int] = {}
        self._draining = False

    # -- authorization

    @staticmethod
    def _app_and_tenant(payload: Mapping[str, Any]) -> tuple[str, str]:
        header = payload.get("header")
        source = header if isinstance(header, Mapping) else payload.get("event")  # v2 header, v1 event
        if not isinstance(source, Mapping):
            return "", ""
        app_id, tenant = source.get("app_id"), source.get("tenant_key")
        return (app_id if isinstance(app_id, str) else "", tenant if isinstance(tenant, str) else "")

    async def handle(self, payload: Mapping[str, Any]) -> Outcome:
        """Handle one decrypted delivery; never raises for a problem with the delivery itself."""
        event_type = envelope_event_type(payload) or "(none)"
        event_id = envelope_event_id(payload) or "(none)"
        app_id, tenant_key = self._app_and_tenant(payload)

        if self.app_id and app_id != self.app_id:
            return self._refuse(403, f"unknown app_id {app_id!r}", event_type, event_id)
        try:
            events = normalize_all(payload, bot_open_id=self.bot_open_id)
        except MalformedEvent as error:
            return self._refuse(400, f"malformed event: {error}", event_type, event_id)
        if not events:
            log.info("feishu event %s (%s) ignored: not an event type the engine handles", event_id, event_type)
            return Outcome(200, {}, "ignored")
        org = self.config.org_by_tenant(tenant_key) if tenant_key else None
        if org is None:
            return self._refuse(403, f"no organization has tenant_key {tenant_key!r}", event_type, event_id)
        return await self.dispatch_events(events, org)

    def _refuse(self, status: int, reason: str, event_type: str, event_id: str) -> Outcome:
        reason, event_type, event_id = clip(reason), clip(event_type, 80), clip(event_id, 80)
        log.warning("feishu event %s (%s) refused with %d: %s", event_id, event_type, status, reason)
        return Outcome(status, {"msg": reason}, reason)

    # -- dispatch

    async def dispatch_events(self, events: list[FeishuEvent], org: OrgContext) -> Outcome:
        """Dispatch the events of one delivery in order, within one shared time budget."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.dispatch_timeout
        card_result: DispatchResult | None = None
        dispatched = 0
        for event in events:
            try:
                result = await self._dispatch_once(event, org, deadline - loop.time())
            except TemporalUnavailable as error:
                log.warning("feishu event %s (%s) answered 503: Temporal unavailable (%s)",
                            event.event_id, event.event_type, error)
                return Outcome(503, {"msg": "temporal unavailable"}, "temporal unavailable", events)
            except DispatchBusy as error:
                log.info("feishu event %s (%s) answered 503: %s", event.event_id, event.event_type, error)
                return Outcome(503, {"msg": "busy, try again"}, "busy", events)
            except TimeoutError:
                log.warning("feishu event %s (%s) answered 503: dispatch not done within %.1f s",
                            event.event_id, event.event_type, self.dispatch_timeout)
                return Outcome(503, {"msg": "dispatch timed out"}, "dispatch timed out", events)
            except Exception as error:
                log.error("feishu event %s (%s) answered 500: dispatch failed: %r",
                          event.event_id, event.event_type, error, exc_info=error)
                return Outcome(500, {"msg": "dispatch failed"}, f"dispatch failed: {error!r}", events)
            if result is None:
                log.info("feishu event %s (%s) already dispatched: acknowledged again", event.event_id,
                         event.event_type)
            else:
                dispatched += 1
            if isinstance(event, CardAction):
                card_result = result
        body = card_response(card_result) if any(isinstance(e, CardAction) for e in events) else {}
        return Outcome(200, body, "dispatched" if dispatched else "duplicate", events)

    async def _dispatch_once(self, event: FeishuEvent, org: OrgContext, budget: float) -> DispatchResult | None:
        """The dispatch result, or ``None`` when the event id was already dispatched."""
        event_id = event.event_id
        if self.seen.seen(event_id):
            return None
        task = self._inflight.get(event_id)
        if task is None:
            task = asyncio.ensure_future(self.dispatcher.dispatch(event, org))
            self._inflight[event_id] = task
            task.add_done_callback(functools.partial(self._settled, event_id, event.event_type))
        self._waiters[event_id] = self._waiters.get(event_id, 0) + 1
        try:
            # shield: running over the budget answers 503 but lets the dispatch finish; cancelling a
            # half-sent signal-with-start would gain nothing, and its success still counts (seen-set).
            return await asyncio.wait_for(asyncio.shield(task), timeout=max(budget, 0.0))
        except asyncio.CancelledError:
            if task.cancelled():  # the dispatch itself was cancelled (shutdown): Feishu must push again
                raise TemporalUnavailable("the dispatch was cancelled") from None
            raise  # this request was cancelled: let it go
        finally:
            left = self._waiters[event_id] - 1
            if left:
                self._waiters[event_id] = left
            else:
                del self._waiters[event_id]

    async def drain(self, grace: float = DRAIN_GRACE) -> None:
        """At shutdown: let the dispatches still under way finish for up to ``grace`` seconds, then cancel them.

        Each was answered 503 when it ran over its budget, so Feishu pushes a cancelled one again; without
        this, the process's exit cancelled them and each logged a traceback.
        """
        self._draining = True
        pending = dict(self._inflight)
        if not pending:
            return
        log.info("feishu ingress stopping: waiting up to %.0f s for %d dispatch(es) under way", grace, len(pending))
        _, late = await asyncio.wait(pending.values(), timeout=grace)
        for event_id, task in pending.items():
            if task in late:
                log.warning("feishu event %s: dispatch still under way at shutdown, cancelled; it was answered "
                            "503, so Feishu pushes it again", event_id)
                task.cancel()
        if late:
            await asyncio.wait(late)

    def _settled(self, event_id: str, event_type: str, task: asyncio.Task[DispatchResult]) -> None:
        """A dispatch task ended: remember a success; report a failure nobody is waiting for any more."""
        self._inflight.pop(event_id, None)
        if task.cancelled():
            return
        error = task.exception()  # always retrieved, so asyncio never warns about it
        if error is None:
            self.seen.remember(event_id)
        elif self._draining:
            # cancelled by drain(): temporalio reports a cancelled RPC as its own error, already logged there
            log.info("feishu event %s (%s): dispatch ended by shutdown: %r", event_id, event_type, error)
        elif not self._waiters.get(event_id):
            # The request that started it already answered 503 (over budget); this is the only report.
            log.error("feishu event %s (%s): dispatch failed after its answer: %r", event_id, event_type, error,
                      exc_info=error if not isinstance(error, TemporalUnavailable) else None)


# -------------------------------------------------------------------------------- the webhook

# The payloads lark's processors captured for the request being handled. asyncio.to_thread copies the
# context into the worker thread, so the processor finds its own request's list even under concurrency.
_captured: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "feishu_ingress_captured", default=None)


def _capture(payload: dict[str, Any]) -> None:
    holder = _captured.get()
    if holder is not None:
        holder.append(payload)


def _capture_card(payload: dict[str, Any]) -> dict[str, Any]:
    _capture(payload)
    return {}  # lark marshals this; the real answer is built after dispatch


class _LarkRefusalFilter(logging.Filter):
    """Drops lark-oapi's own report of a push it refused (``logger.exception``: a traceback at ERROR).

    The ingress answers that push 401 and logs the reason in one line; without this filter anyone who can
    reach the endpoint could write a traceback into the log with every forged request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("handle event failed")


_LARK_REFUSALS = _LarkRefusalFilter()


class _Rejected(Exception):
    """A refusal: ``reason`` is written for the sender (it is also the log line's)."""

    def __init__(self, status: int, reason: str) -> None:
        reason = clip(reason)
        super().__init__(reason)
        self.status = status
        self.reason = reason


SIGNATURE_HEADERS = ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")

# lark-oapi's exception texts (EventDispatcherHandler.do answers {"msg": str(exception)}) → our reasons.
_LARK_REASONS = (
    ("invalid verification_token", "verification token does not match"),
    ("signature verification failed", "signature does not match"),
    ("encrypt_key not found", "encrypted push, but no encrypt key is configured"),
)


def _lark_refusal(lark_message: str) -> str:
    """The sender's reason for a push lark-oapi refused; anything else it raised is a body we cannot read."""
    for known, reason in _LARK_REASONS:
        if known in lark_message:
            return f"not authentic: {reason}"
    return "not authentic: body cannot be decrypted or read as an event"


def _canonical_header(name: str) -> str:
    """``x-lark-request-timestamp`` → ``X-Lark-Request-Timestamp``: lark looks headers up by that case."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def _fairness_key(peeked: Mapping[str, Any] | None) -> str | None:
    """The chat a push comes from (else its sender), from the envelope; ``None`` if it names neither."""
    event = peeked.get("event") if peeked is not None else None
    if not isinstance(event, Mapping):
        return None
    message, context = event.get("message"), event.get("context")
    for holder, name in ((message, "chat_id"), (context, "open_chat_id"), (event, "open_chat_id")):
        if isinstance(holder, Mapping) and isinstance(holder.get(name), str) and holder[name]:
            return f"chat:{holder[name]}"
    for who in (event.get("sender"), event.get("operator")):
        ids = who.get("sender_id", who) if isinstance(who, Mapping) else None
        if isinstance(ids, Mapping) and isinstance(ids.get("open_id"), str) and ids["open_id"]:
            return f"user:{ids['open_id']}"
    return None


def _looks_like_event(body: Any) -> bool:
    """An encrypted push, a v2 or v1 envelope, or a URL verification: nothing else is an event."""
    if not isinstance(body, dict):
        return False
    if isinstance(body.get("encrypt"), str):
        return True
    if body.get("schema") is not None and isinstance(body.get("header"), dict):
        return True
    if body.get("uuid") is not None and isinstance(body.get("event"), dict):
        return True
    return body.get("type") == URL_VERIFICATION


class _Webhook:
    """One instance per app: the lark handler, the limits, and the pipeline."""

    def __init__(self, config: EngineConfig, pipeline: EventPipeline, *, clock: Callable[[], float]) -> None:
        import lark_oapi as lark

        self.pipeline = pipeline
        self.max_body_bytes = config.ingress.max_body_bytes
        self.tolerance = float(config.ingress.timestamp_tolerance_seconds)
        self.encrypt_key = config.secret("encrypt_key") or ""
        self.verification_token = config.secret("verification_token") or ""
        self.clock = clock
        self.fair_gate = KeyedGate(config.ingress.dispatches_per_chat, config.ingress.dispatch_queue)
        # addFilter ignores a filter already present, so many webhooks in one process add it once
        logging.getLogger("Lark").addFilter(_LARK_REFUSALS)
        if not self.encrypt_key and not self.verification_token:
            log.warning("feishu ingress: neither an encrypt key nor a verification token is configured; "
                        "pushes cannot be authenticated")
        elif not self.encrypt_key:
            log.warning("feishu ingress: no encrypt key configured; pushes are neither signed nor encrypted")
        self.handler: EventDispatcherHandler = register_processors(
            lark.EventDispatcherHandler.builder(self.encrypt_key, self.verification_token),
            _capture, _capture_card,
        ).build()

    async def handle(self, request: Request) -> Response:
        """The endpoint of ``/feishu/events`` and ``/feishu/card``."""
        try:
            return await self._handle(request)
        except _Rejected as rejected:
            log.warning("feishu push to %s refused with %d: %s", request.url.path, rejected.status, rejected.reason)
            return JSONResponse({"msg": rejected.reason}, status_code=rejected.status)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise _Rejected(413, f"body of {declared} bytes is over the {limit}-byte limit")
            except ValueError:
                raise _Rejected(400, "invalid Content-Length") from None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # stop reading at once: the sender may be streaming without end
                raise _Rejected(413, f"body over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_signature_headers(self, headers: Mapping[str, str], peeked: Mapping[str, Any] | None) -> None:
        """With an encrypt key Feishu signs every push but the URL verification (lark answers it unsigned)."""
        if not self.encrypt_key:
            return
        if peeked is not None and envelope_event_type(peeked) == URL_VERIFICATION:
            return
        missing = [name for name in SIGNATURE_HEADERS if not headers.get(name)]
        if missing:
            raise _Rejected(401, f"not authentic: missing {', '.join(missing)}")

    def _check_request_timestamp(self, headers: Mapping[str, str]) -> None:
        value = headers.get("X-Lark-Request-Timestamp")
        if value is None:
            return
        try:
            stamp = float(value)
        except ValueError:
            stamp = math.nan
        if not math.isfinite(stamp):  # "nan" would pass every comparison below
            raise _Rejected(401, f"X-Lark-Request-Timestamp {value[:20]!r} is not a timestamp")
        skew = self.clock() - stamp
        if abs(skew) > self.tolerance:
            raise _Rejected(401, f"X-Lark-Request-Timestamp is {skew:+.0f} s off (tolerance {self.tolerance:.0f} s)")

    def _check_create_time(self, payload: Mapping[str, Any]) -> None:
        try:
            created = envelope_create_time(payload)
        except MalformedEvent as error:
            raise _Rejected(400, f"malformed event: {error}") from None
        if created is None:
            return
        age = self.clock() - created.timestamp()
        if age < -self.tolerance:
            raise _Rejected(401, f"event create_time is {-age:.0f} s in the future")
        if age > self.tolerance + REDELIVERY_WINDOW_SECONDS:
            raise _Rejected(401, f"event create_time is {age:.0f} s old, beyond Feishu's redelivery window")

    def _peek(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The decrypted envelope, read only to learn its event type; ``None`` if unreadable.

        Nothing read here is trusted: lark authenticates the push afterwards.
        """
        encrypted = body.get("encrypt")
        if not isinstance(encrypted, str):
            return body
        if not self.encrypt_key:
            return None
        from lark_oapi.core.utils import AESCipher

        try:
            plain = json.loads(AESCipher(self.encrypt_key).decrypt_str(encrypted))
        except Exception:
            return None
        return plain if isinstance(plain, dict) else None

    def _handler_for(self, peeked: dict[str, Any] | None) -> tuple[EventDispatcherHandler, str | None]:
        """The shared handler, or a one-off one for an event type we do not process (its name returned)."""
        if peeked is None:
            return self.handler, None
        event_type = envelope_event_type(peeked)
        if event_type is None or event_type == URL_VERIFICATION:
            return self.handler, None
        is_v2 = peeked.get("schema") is not None
        if event_type in (V2_EVENT_TYPES if is_v2 else V1_EVENT_TYPES):
            return self.handler, None
        import lark_oapi as lark

        # A handler per request (building one is a few dict writes): cached ones would let anyone who can
        # reach the endpoint grow the cache with made-up types before authentication.
        builder = lark.EventDispatcherHandler.builder(self.encrypt_key, self.verification_token)
        def capture(data: Any) -> None:
            _capture(lark_object_to_dict(data))

        if is_v2:
            builder.register_p2_customized_event(event_type, capture)
        else:
            builder.register_p1_customized_event(event_type, capture)
        return builder.build(), event_type

    @contextlib.asynccontextmanager
    async def _fair_turn(self, peeked: Mapping[str, Any] | None) -> AsyncIterator[None]:
        """A turn at lark's check under the push's chat (or sender) key, read from the unverified envelope.

        The key only orders work; nothing is trusted before lark's check. (Without an encrypt key anyone
        could send pushes naming a chat and fill its queue; with one, only Feishu can.)
        """
        key = _fairness_key(peeked)
        if key is None:
            yield
            return
        try:
            async with self.fair_gate.hold(key):
                yield
        except DispatchBusy:
            raise _Rejected(503, "busy, try again") from None

    async def _handle(self, request: Request) -> Response:
        from lark_oapi.core.model import RawRequest

        raw_body = await self._read_body(request)
        try:
            body = json.loads(raw_body)
        except (UnicodeDecodeError, ValueError):
            raise _Rejected(400, "body is not JSON") from None
        except RecursionError:  # e.g. 100k "[": Python's parser gives up; no event nests like that
            raise _Rejected(400, "body nests too deeply to be a Feishu event") from None
        if not _looks_like_event(body):
            raise _Rejected(400, "body is not a Feishu event")
        headers = {_canonical_header(name): value for name, value in request.headers.items()}
        peeked = self._peek(body)
        self._check_signature_headers(headers, peeked)
        self._check_request_timestamp(headers)

        handler, unhandled_type = self._handler_for(peeked)
        lark_request = RawRequest()
        lark_request.uri = request.url.path
        lark_request.headers = headers
        lark_request.body = raw_body
        holder: list[dict[str, Any]] = []
        token = _captured.set(holder)
        try:
            # lark's check is the costly step and runs first come, first served: a chat's flood takes at
            # most its share of it, and the rest of the flood is answered 503 at once (engine.runtime.fairness)
            async with self._fair_turn(peeked):
                lark_response = await asyncio.to_thread(handler.do, lark_request)
        finally:
            _captured.reset(token)

        if lark_response.status_code != 200:
            # lark writes '{"msg":"%s"}' % exception text: not always JSON, so match the text itself
            raise _Rejected(401, _lark_refusal((lark_response.content or b"").decode("utf-8", "replace")))
        if not holder:
            # Authenticated and answered by lark without a processor: the URL verification challenge.
            return Response(lark_response.content or b"{}", status_code=200, media_type="application/json")
        payload = holder[0]
        self._check_create_time(payload)
        if unhandled_type is not None:
            log.info("feishu event %s (%s) acknowledged and ignored: not an event type the engine handles",
                     envelope_event_id(payload) or "(none)", unhandled_type)
            return JSONResponse({})
        outcome = await self.pipeline.handle(payload)
        return JSONResponse(outcome.body, status_code=outcome.status)


# --------------------------------------------------------------------------------- the app


def build_ingress(
    config: EngineConfig,
    dispatcher: Dispatcher,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    bot_open_id: str | None = None,
    dispatch_timeout: float = DEFAULT_DISPATCH_TIMEOUT,
    seen: SeenEvents | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The ingress ASGI app for ``config``'s Feishu app, handing events to ``dispatcher``.

    ``bot_open_id`` defaults to ``[feishu] bot_open_id``; ``extra_routes`` (plugins' ``ingress_routes``)
    are mounted as given after the engine's own. ``dispatch_timeout``, ``seen`` and ``clock`` (wall-clock
    seconds, for the timestamp checks) exist for tests and tuning. The pipeline is ``app.state.pipeline``.
    """
    pipeline = EventPipeline(config, dispatcher, bot_open_id=bot_open_id, dispatch_timeout=dispatch_timeout,
                             seen=seen)
    webhook = _Webhook(config, pipeline, clock=clock)

    async def healthz(request: Request) -> Response:
        body: dict[str, Any] = {"ok": True}
        healthy = getattr(dispatcher, "healthy", None)
        if callable(healthy):
            try:
                body["temporal"] = bool(await asyncio.wait_for(healthy(), timeout=1.0))
            except Exception:  # a health probe reports, it does not fail
                body["temporal"] = False
        return JSONResponse(body)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/feishu/events", webhook.handle, methods=["POST"]),
        Route("/feishu/card", webhook.handle, methods=["POST"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes)
    app.state.pipeline = pipeline
    app.state.webhook = webhook
    return app
