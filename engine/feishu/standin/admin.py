"""``/_standin/``: what developers look at (the outbox page) and what tools poke (faults, events, state).

* ``GET  /_standin/``              HTML page: the bot's messages as Feishu shows them, newest first, filtered
                                   by ``?org=&plugin=&chat=``, times in ``?tz=`` or each organization's zone
* ``GET  /_standin/outbox``        every sent message as JSON, oldest first (keys: :mod:`.outbox`)
* ``GET  /_standin/calls``         recorded API calls (``?limit=100&path=/open-apis/im``)
* ``GET/POST/DELETE /_standin/faults``  list / inject (a :class:`Fault` as JSON) / clear faults
* ``POST /_standin/deliver``       push an event to the ingress (see :func:`deliver`)
* ``GET/POST /_standin/state``     dump / merge state JSON (``?replace=1`` clears first)
* ``POST /_standin/expire_tokens`` invalidate every issued token
* ``POST /_standin/approval/definitions``  add an approval definition ``{"approval_code", "name"?, "nodes"?}``
* ``POST /_standin/approval/decide``  act on an instance as an approver or its applicant:
  ``{"instance_code", "action": "approve"|"reject"|"transfer"|"cancel"|"delete", "open_id"?, "to"?,
  "comment"?}``; the ``approval_instance`` event goes to the stand-in's event URL. Without
  ``instance_code``: the newest pending instance ``open_id`` may act on (``approval_code``? narrows it)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .faults import Fault
from .routes_approval import pending_for

if TYPE_CHECKING:
    from .core import FeishuStandIn


def _bad(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": msg}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def routes(standin: FeishuStandIn) -> list[Route]:
    async def page(request: Request) -> Response:
        return HTMLResponse(render_outbox(standin, query=dict(request.query_params)))

    async def outbox(request: Request) -> Response:
        return JSONResponse(standin.outbox())

    async def calls(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "200"))
        prefix = request.query_params.get("path", "")
        items = [c.to_json() for c in standin.calls if c.path.startswith(prefix)]
        return JSONResponse(items[-limit:] if limit > 0 else items)

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            standin.clear_faults()
            return JSONResponse({"cleared": True})
        if request.method == "POST":
            try:
                fault = standin.inject(Fault.from_json(await _json(request)))
            except (TypeError, ValueError) as exc:
                return _bad(str(exc))
            return JSONResponse(fault.describe())
        return JSONResponse([f.describe() for f in standin.faults.active()])

    async def deliver(request: Request) -> Response:
        try:
            data = await _json(request)
            result = await standin.deliver_from_admin(data)
        except (TypeError, ValueError, KeyError) as exc:
            return _bad(f"{type(exc).__name__}: {exc}")
        return JSONResponse(result)

    async def state(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await _json(request)
            except ValueError as exc:
                return _bad(str(exc))
            if request.query_params.get("replace") in ("1", "true"):
                standin.state.clear()
            standin.state.merge_json(data)
        return JSONResponse(standin.state.to_json())

    async def expire(request: Request) -> Response:
        return JSONResponse({"expired": standin.expire_tokens()})

    async def approval_definition(request: Request) -> Response:
        try:
            data = await _json(request)
            definition = standin.add_approval_definition(str(data["approval_code"]), str(data.get("name", "")),
                                                         data.get("nodes"))
        except (TypeError, ValueError, KeyError) as exc:
            return _bad(f"{type(exc).__name__}: {exc}")
        return JSONResponse(definition)

    async def approval_decide(request: Request) -> Response:
        try:
            data = await _json(request)
            open_id = str(data.get("open_id") or "")
            code = str(data.get("instance_code") or "") or pending_for(
                standin.state, open_id, str(data["action"]), str(data.get("approval_code") or ""))
            payload = standin.decide_approval(code, str(data["action"]), open_id=open_id,
                                              to=str(data.get("to") or ""), comment=str(data.get("comment") or ""))
        except (TypeError, ValueError, KeyError) as exc:
            return _bad(f"{type(exc).__name__}: {exc}")
        instance = standin.state.approval_instances[code]
        return JSONResponse({"instance_code": code, "status": instance["status"], "event": payload})

    return [
        Route("/_standin/", page, methods=["GET"]),
        Route("/_standin/approval/definitions", approval_definition, methods=["POST"]),
        Route("/_standin/approval/decide", approval_decide, methods=["POST"]),
        Route("/_standin/outbox", outbox, methods=["GET"]),
        Route("/_standin/calls", calls, methods=["GET"]),
        Route("/_standin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_standin/deliver", deliver, methods=["POST"]),
        Route("/_standin/state", state, methods=["GET", "POST"]),
        Route("/_standin/expire_tokens", expire, methods=["POST"]),
    ]


def render_outbox(standin: FeishuStandIn, limit: int = 100, query: Mapping[str, str] | None = None) -> str:
    """The outbox page (see :mod:`.outbox_page`): the newest ``limit`` messages as Feishu shows them."""
    from .outbox_page import render_page

    return render_page(standin, {"limit": str(limit), **(query or {})})
