"""The ASGI app: Feishu's API routes behind one wrapper that does what Feishu's gateway does.

Per call, in order: parse the request, find the caller's token, apply an injected fault (a gateway
failure happens before anything else), check the token, apply rate limits, run the handler, and record
the call in ``standin.calls``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from . import admin, routes_approval, routes_auth, routes_bitable, routes_im
from .base import Ctx, Endpoint, Reply, fail
from .faults import RATE_LIMITED, TOKEN_INVALID, TOKEN_MISSING, Fault

if TYPE_CHECKING:
    from .core import FeishuStandIn

ENDPOINTS: list[Endpoint] = [*routes_auth.ENDPOINTS, *routes_im.ENDPOINTS, *routes_bitable.ENDPOINTS,
                             *routes_approval.ENDPOINTS]
USER_TOKEN_INVALID = 99991668
SECRET_KEYS = frozenset({"app_secret", "client_secret", "AppSecret"})

GATEWAY_PAGE = ("<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n")
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
           504: "Gateway Time-out"}


@dataclass
class Call:
    """One API call the stand-in answered."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    code: int | None
    app_id: str | None
    at: float
    duration: float
    fault: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``multipart/form-data`` → {name: (filename, bytes)} with the stdlib email parser.

    (python-multipart, which Starlette's own ``form()`` needs, is not a dependency of this project.)
    """
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    out: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return out
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            out[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
    return out


def _fault_reply(fault: Fault) -> Reply:
    if fault.kind == "rate_limit":
        reply = fail(fault.status or 429, fault.code or RATE_LIMITED, "request trigger frequency limit",
                     headers={"x-ogw-ratelimit-limit": str(fault.limit),
                              "x-ogw-ratelimit-reset": str(fault.reset)})
        return reply
    if fault.kind == "expired_token":
        return fail(fault.status or 400, fault.code or TOKEN_INVALID,
                    "Invalid access token for authorization. Please make a request with token attached.")
    status = fault.status or 502
    html = fault.html if fault.html is not None else fault.hits % 2 == 1  # alternate, HTML first
    if html:
        return Reply(status, GATEWAY_PAGE.format(status=status, reason=REASONS.get(status, "Error")),
                     media_type="text/html")
    return fail(status, fault.code or 1, "internal server error, please retry later")


def _to_response(reply: Reply) -> Response:
    if isinstance(reply.body, dict | list):
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)
    if isinstance(reply.body, bytes):
        return Response(reply.body, status_code=reply.status, headers=reply.headers,
                        media_type=reply.media_type or "application/octet-stream")
    return Response(reply.body or "", status_code=reply.status, headers=reply.headers,
                    media_type=reply.media_type or "text/plain")


def _wrap(standin: FeishuStandIn, endpoint: Endpoint):  # type: ignore[no-untyped-def]
    async def handle(request: Request) -> Response:
        started, at = time.monotonic(), time.time()
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: Any = None
        form = None
        if ctype.startswith("multipart/form-data"):
            form = parse_multipart(ctype, raw)
            body = {name: (f"<file {fn} {len(data)} bytes>" if fn else data.decode("utf-8", "replace"))
                    for name, (fn, data) in form.items()}
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        recorded = body
        if isinstance(body, dict) and SECRET_KEYS & body.keys():  # keep secrets out of logs and pages
            recorded = {k: ("***" if k in SECRET_KEYS else v) for k, v in body.items()}
        ctx = Ctx(standin=standin, request=request, path=request.url.path,
                  params={k: str(v) for k, v in request.path_params.items()},
                  query=dict(request.query_params), body=body, form=form)
        reply, fault_kind = await _dispatch(standin, endpoint, ctx)
        code = reply.code
        standin.record(Call(method=request.method, path=ctx.path, query=ctx.query,
                            body=recorded, status=reply.status, code=code,
                            app_id=ctx.app_id, at=at, duration=time.monotonic() - started, fault=fault_kind))
        return _to_response(reply)

    return handle


async def _dispatch(standin: FeishuStandIn, endpoint: Endpoint, ctx: Ctx) -> tuple[Reply, str | None]:
    header = ctx.request.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else ""
    token = standin.state.tokens.get(bearer) if bearer else None
    if token is not None:
        ctx.token, ctx.app = token, standin.state.apps.get(token.app_id)
    elif endpoint.auth == "none" and isinstance(ctx.body, dict):
        ctx.app = standin.state.apps.get(str(ctx.body.get("app_id") or ctx.body.get("client_id") or ""))

    fault = standin.faults.take(ctx.path, ctx.app_id)
    slowed: str | None = None  # a slow fault answers normally, late: the call still counts as faulted
    if fault is not None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            slowed = fault.kind
        else:
            return _fault_reply(fault), fault.kind

    if endpoint.auth != "none":
        denied = _check_token(endpoint, bearer, token)
        if denied is not None:
            return denied, slowed
    if standin.enforce_rate_limits and endpoint.api and ctx.app is not None:
        receiver = endpoint.receiver(ctx) if endpoint.receiver else None
        broken = standin.rate_limiter.check(endpoint.api, ctx.app.app_id, receiver)
        if broken is not None:
            rule, wait = broken
            return fail(rule.status, rule.code, "request trigger frequency limit",
                        headers={"x-ogw-ratelimit-limit": str(rule.limit),
                                 "x-ogw-ratelimit-reset": str(max(1, round(wait + 0.499)))}), "rate_limit"
    try:
        return await endpoint.handler(ctx), slowed
    except Exception as exc:  # a stand-in bug should read as a 500, with the reason, not a dropped socket
        standin.log.exception("stand-in handler %s %s failed", endpoint.method, endpoint.path)
        return fail(500, 1, f"stand-in internal error: {type(exc).__name__}: {exc}"), None


def _check_token(endpoint: Endpoint, bearer: str, token: Any) -> Reply | None:
    missing = "Missing access token for authorization. Please make a request with token attached."
    invalid = "Invalid access token for authorization. Please make a request with token attached."
    if not bearer:
        return fail(400, TOKEN_MISSING, missing)
    allowed = {"tenant": {"tenant"}, "app": {"app"}, "tenant_or_app": {"tenant", "app"},
               "user": {"user"}}[endpoint.auth]
    if token is None or token.kind not in allowed or not token.valid(time.time()):
        return fail(400, USER_TOKEN_INVALID if endpoint.auth == "user" else TOKEN_INVALID, invalid)
    return None


async def _not_found(request: Request) -> Response:
    return PlainTextResponse("404 page not found", status_code=404)


async def _caller_left(request: Request, exc: Exception) -> Response:
    # The caller gave up before its body arrived (its timeout, a killed worker): nobody reads an answer,
    # and it is no fault of the stand-in's, so no traceback in its log. 499 is the usual status for it.
    return Response(status_code=499)


def build_app(standin: FeishuStandIn) -> Starlette:
    """The Starlette app for one stand-in: Feishu's API, its long-connection gateway, the ``/_standin/`` pages."""
    routes: list[BaseRoute] = [Route(e.path, _wrap(standin, e), methods=[e.method], name=f"{e.method} {e.path}")
                               for e in [*ENDPOINTS, *standin.gateway.endpoints()]]
    routes += standin.gateway.routes()
    routes += admin.routes(standin)
    routes.append(Route("/{path:path}", _not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
    return Starlette(routes=routes, exception_handlers={ClientDisconnect: _caller_left})
