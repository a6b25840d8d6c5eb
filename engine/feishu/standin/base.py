"""The plumbing every stand-in endpoint shares: the request context, replies, and the endpoint table.

Handlers are ``async def handler(ctx: Ctx) -> Reply``; the app wrapper (``app.py``) parses the request,
checks the token, applies faults and rate limits, records the call, and turns the :class:`Reply` into an
HTTP response. Handlers therefore only implement Feishu's semantics.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request

from .state import App, State, Token

if TYPE_CHECKING:
    from .core import FeishuStandIn

Auth = Literal["none", "tenant", "app", "tenant_or_app", "user"]


@dataclass
class Reply:
    """An HTTP answer: a dict/list body is sent as JSON, str as text (``media_type`` decides), bytes raw."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str | None = None

    @property
    def code(self) -> int | None:
        """Feishu's business code in the body, if there is one."""
        if isinstance(self.body, dict) and isinstance(self.body.get("code"), int):
            return self.body["code"]
        return None


def log_id() -> str:
    """A request id shaped like Feishu's ``X-Tt-Logid`` (date-time prefix + random hex)."""
    return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def ok(data: Any = None, msg: str = "success") -> Reply:
    """The success envelope ``{"code": 0, "msg": "success", "data": {...}}``."""
    return Reply(200, {"code": 0, "msg": msg, "data": {} if data is None else data})


def fail(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Reply:
    """Feishu's error envelope: ``code``/``msg`` plus an ``error`` object carrying the log id."""
    lid = log_id()
    return Reply(status, {"code": code, "msg": msg, "error": {"log_id": lid}},
                 headers={"X-Tt-Logid": lid, **(headers or {})})


@dataclass
class Ctx:
    """One API request, parsed."""

    standin: FeishuStandIn
    request: Request
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    form: dict[str, tuple[str | None, bytes]] | None = None
    app: App | None = None
    token: Token | None = None

    @property
    def state(self) -> State:
        return self.standin.state

    @property
    def json(self) -> dict[str, Any]:
        """The JSON body as a dict ({} when absent or not an object)."""
        return self.body if isinstance(self.body, dict) else {}

    @property
    def app_id(self) -> str | None:
        return self.app.app_id if self.app else None


Handler = Callable[[Ctx], Awaitable[Reply]]


@dataclass(frozen=True)
class Endpoint:
    """One Feishu API route.

    ``api`` names the call for rate limiting (see ``faults.DEFAULT_RATE_RULES``); ``receiver`` extracts the
    per-receiver key (chat or user) for limits that apply per receiver.
    """

    method: str
    path: str
    handler: Handler
    auth: Auth = "tenant"
    api: str | None = None
    receiver: Callable[[Ctx], str | None] | None = None
