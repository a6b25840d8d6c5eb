"""Feishu's long-connection gateway: endpoint discovery, then protobuf frames over a websocket.

What lark-oapi's ws client (``lark_oapi.ws.client``, 1.7.5) expects, and so what this serves:

* ``POST /callback/ws/endpoint`` with ``{"AppID", "AppSecret"}`` answers ``{"code": 0, "data": {"URL":
  "ws://…?device_id=…&service_id=…", "ClientConfig": {"ReconnectCount", "ReconnectInterval",
  "ReconnectNonce", "PingInterval"}}}`` (intervals in seconds; ``ReconnectCount`` -1 = forever). A wrong
  secret is a non-zero ``code``, which the client raises as a ``ClientException`` and does not retry.
* The websocket carries ``pbbp2.Frame`` messages. ``method`` 0 is a control frame: the client sends
  ``type: ping`` every ``PingInterval`` seconds and the gateway answers ``type: pong``, whose payload may
  carry a new ClientConfig. ``method`` 1 is a data frame: headers ``type`` (``event``), ``message_id``,
  ``trace_id``, ``sum`` and ``seq`` (a payload split in ``sum`` parts, numbered by ``seq`` from 0), and
  the payload is the event's JSON, exactly as a webhook would receive it decrypted. Card callbacks
  (``card.action.trigger``) come the same way, as ``type: event``.
* The client acknowledges a data frame by sending the same frame back with the payload replaced by
  ``{"code": 200, "headers": …, "data": <base64 of the handler's JSON answer>}`` and a ``biz_rt`` header
  (handler time in ms). A frame not acknowledged with 200 within 3 s is pushed again (same event id), as a
  webhook push would be.

Each event goes to one of an app's open connections. :meth:`Gateway.drop` closes them (the client
reconnects after ``ReconnectInterval``); :attr:`Gateway.accepting` set to False makes discovery answer
"system busy" and the websocket refuse, as during an outage.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lark_oapi.ws.pb.pbbp2_pb2 import Frame
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .base import Ctx, Endpoint, Reply

if TYPE_CHECKING:
    from .core import FeishuStandIn

ENDPOINT_PATH = "/callback/ws/endpoint"
SOCKET_PATH = "/callback/ws/v2"
CONTROL, DATA = 0, 1
SYSTEM_BUSY = 1  # the codes lark_oapi.ws.const names; lark retries on these two
APP_INVALID = 10014  # the stand-in's own refusal of a wrong app secret (lark does not retry non-busy codes)
ACK_TIMEOUT = 3.0
"""Seconds Feishu waits for a frame's acknowledgement before it counts the push as failed."""
REDELIVERY_DELAYS: tuple[float, ...] = (15.0, 300.0, 3600.0, 21600.0)
"""As for the webhook: the same event again after these delays while it is not acknowledged."""


@dataclass
class Ack:
    """One push of a data frame and what came back."""

    message_id: str
    code: int | None  # the acknowledgement's ``code``; None when none came within the timeout
    answer: Any = None  # the handler's JSON answer (a card callback's toast/card), decoded
    elapsed: float = 0.0  # seconds from sending the frame to receiving its acknowledgement
    error: str | None = None
    biz_rt_ms: int | None = None

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass
class LongConnDelivery:
    """Every push of one event over the long connection."""

    event_id: str
    payload: dict[str, Any]
    attempts: list[Ack] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def answer(self) -> Any:
        return self.attempts[-1].answer if self.attempts else None


@dataclass(eq=False)
class _Connection:
    app_id: str
    device_id: str
    socket: WebSocket
    opened_at: float


def _header(frame: Frame, key: str) -> str | None:
    for header in frame.headers:
        if header.key == key:
            return str(header.value)
    return None


def _frame(method: int, service_id: int, headers: dict[str, str], payload: bytes = b"",
           seq_id: int = 0) -> Frame:
    frame = Frame()
    frame.SeqID, frame.LogID, frame.service, frame.method = seq_id, 0, service_id, method
    for key, value in headers.items():
        header = frame.headers.add()
        header.key, header.value = key, value
    frame.payload = payload
    return frame


class Gateway:
    """The long-connection side of one :class:`~engine.feishu.standin.FeishuStandIn` (its event loop)."""

    SERVICE_ID = 1

    def __init__(self, standin: FeishuStandIn) -> None:
        self.standin = standin
        # Small on purpose: a test sees a reconnect within about a second (Feishu's own are minutes).
        self.client_config: dict[str, int] = {"ReconnectCount": -1, "ReconnectInterval": 1,
                                              "ReconnectNonce": 0, "PingInterval": 30}
        self.accepting = True
        self.connections: list[_Connection] = []
        self.opened = 0  # connections accepted so far (a reconnect adds one)
        self.pings = 0
        self.deliveries: list[LongConnDelivery] = []
        self._tickets: dict[str, str] = {}  # device_id -> app_id, issued by discovery, used once
        self._acks: dict[str, asyncio.Future[Frame]] = {}  # message_id -> its acknowledgement
        self._turn = itertools.count()
        self._changed = asyncio.Event()

    # -- routes

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint("POST", ENDPOINT_PATH, self._discover, auth="none")]

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute(SOCKET_PATH, self._serve)]

    async def _discover(self, ctx: Ctx) -> Reply:
        body = ctx.json
        app = ctx.state.apps.get(str(body.get("AppID", "")))
        if app is None or body.get("AppSecret") != app.app_secret:
            return Reply(200, {"code": APP_INVALID, "msg": "app id or app secret invalid"})
        if not self.accepting:
            return Reply(200, {"code": SYSTEM_BUSY, "msg": "system busy"})
        ctx.app = app
        device_id = uuid.uuid4().hex
        self._tickets[device_id] = app.app_id
        base = self.standin.base_url.replace("http://", "ws://", 1)
        url = f"{base}{SOCKET_PATH}?device_id={device_id}&service_id={self.SERVICE_ID}"
        return Reply(200, {"code": 0, "msg": "ok", "data": {"URL": url, "ClientConfig": dict(self.client_config)}})

    async def _serve(self, socket: WebSocket) -> None:
        app_id = self._tickets.pop(socket.query_params.get("device_id", ""), None)
        if app_id is None or not self.accepting:
            await socket.close(code=1008)  # before accept: the handshake is refused with 403
            return
        await socket.accept()
        conn = _Connection(app_id, socket.query_params["device_id"], socket, time.time())
        self.connections.append(conn)
        self.opened += 1
        self._signal()
        try:
            while True:
                raw = await socket.receive_bytes()
                frame = Frame()
                frame.ParseFromString(raw)
                if frame.method == CONTROL and _header(frame, "type") == "ping":
                    self.pings += 1
                    pong = _frame(CONTROL, frame.service, {"type": "pong"},
                                  json.dumps(self.client_config).encode())
                    await socket.send_bytes(pong.SerializeToString())
                elif frame.method == DATA:
                    waiter = self._acks.get(_header(frame, "message_id") or "")
                    if waiter is not None and not waiter.done():
                        waiter.set_result(frame)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went away, or drop() closed it under this loop
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
            self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- what tests and tools do

    def open_connections(self, app_id: str | None = None) -> list[_Connection]:
        app_id = app_id or self.standin.app_id
        return [c for c in self.connections if c.app_id == app_id]

    async def wait_connected(self, app_id: str | None = None, *, opened: int = 1, timeout: float = 10.0) -> None:
        """Until ``opened`` connections were accepted in all and one of ``app_id``'s is open."""
        deadline = time.monotonic() + timeout
        while not (self.opened >= opened and self.open_connections(app_id)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no long connection (accepted so far: {self.opened}) within {timeout} s")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    async def drop(self, app_id: str | None = None) -> int:
        """Close every open connection of ``app_id`` from the gateway's side; returns how many."""
        dropped = self.open_connections(app_id)
        for conn in dropped:
            self.connections.remove(conn)
            with contextlib.suppress(RuntimeError):  # already closing
                await conn.socket.close(code=1001)
        self._signal()
        return len(dropped)

    async def push_once(self, payload: dict[str, Any] | bytes, *, app_id: str | None = None,
                        timeout: float = ACK_TIMEOUT, parts: int = 1) -> Ack:
        """Send one data frame (in ``parts`` frames) to one open connection and wait for its acknowledgement."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        message_id = uuid.uuid4().hex
        conns = self.open_connections(app_id)
        if not conns:
            return Ack(message_id, None, error="no open long connection")
        conn = conns[next(self._turn) % len(conns)]
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._acks[message_id] = waiter
        size = -(-len(raw) // parts)
        started = time.monotonic()
        try:
            for seq in range(parts):
                frame = _frame(DATA, self.SERVICE_ID,
                               {"type": "event", "message_id": message_id, "trace_id": secrets.token_hex(8),
                                "sum": str(parts), "seq": str(seq)}, raw[seq * size:(seq + 1) * size],
                               seq_id=seq)
                await conn.socket.send_bytes(frame.SerializeToString())
            reply = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return Ack(message_id, None, error=f"not acknowledged within {timeout} s",
                       elapsed=time.monotonic() - started)
        except (WebSocketDisconnect, RuntimeError) as exc:
            return Ack(message_id, None, error=f"connection lost: {exc!r}", elapsed=time.monotonic() - started)
        finally:
            self._acks.pop(message_id, None)
        elapsed = time.monotonic() - started
        try:
            body = json.loads(reply.payload)
            answer = json.loads(base64.b64decode(body["data"])) if body.get("data") else None
        except (ValueError, TypeError, KeyError) as exc:
            return Ack(message_id, None, error=f"unreadable acknowledgement: {exc!r}", elapsed=elapsed)
        rt = _header(reply, "biz_rt")
        return Ack(message_id, body.get("code"), answer, elapsed, biz_rt_ms=int(rt) if rt and rt.isdigit() else None)

    async def deliver(self, payload: dict[str, Any], *, app_id: str | None = None,
                      retries: Sequence[float] = REDELIVERY_DELAYS, timeout: float = ACK_TIMEOUT,
                      parts: int = 1) -> LongConnDelivery:
        """Push until acknowledged with 200 or ``retries`` run out (1 + len(retries) pushes)."""
        header = payload.get("header") if isinstance(payload.get("header"), dict) else {}
        result = LongConnDelivery(str(header.get("event_id") or payload.get("uuid") or ""), payload)
        self.deliveries.append(result)
        for delay in (0.0, *retries):
            if delay:
                await asyncio.sleep(delay)
            ack = await self.push_once(payload, app_id=app_id, timeout=timeout, parts=parts)
            result.attempts.append(ack)
            if ack.ok:
                break
        return result
