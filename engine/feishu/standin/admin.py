"""``/_standin/``: what developers look at (the outbox page) and what tools poke (faults, events, state).

* ``GET  /_standin/``              HTML page: the last messages the bot sent, newest first (auto-refresh)
* ``GET  /_standin/outbox``        the same as JSON
* ``GET  /_standin/calls``         recorded API calls (``?limit=100&path=/open-apis/im``)
* ``GET/POST/DELETE /_standin/faults``  list / inject (a :class:`Fault` as JSON) / clear faults
* ``POST /_standin/deliver``       push an event to the ingress (see :func:`deliver`)
* ``GET/POST /_standin/state``     dump / merge state JSON (``?replace=1`` clears first)
* ``POST /_standin/expire_tokens`` invalidate every issued token
"""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .faults import Fault

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
        return HTMLResponse(render_outbox(standin))

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

    return [
        Route("/_standin/", page, methods=["GET"]),
        Route("/_standin/outbox", outbox, methods=["GET"]),
        Route("/_standin/calls", calls, methods=["GET"]),
        Route("/_standin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_standin/deliver", deliver, methods=["POST"]),
        Route("/_standin/state", state, methods=["GET", "POST"]),
        Route("/_standin/expire_tokens", expire, methods=["POST"]),
    ]


def render_outbox(standin: FeishuStandIn, limit: int = 100) -> str:
    """A plain page listing the newest messages first; refreshes itself every 5 s."""
    rows = []
    for item in reversed(standin.outbox()[-limit:]):
        body = item["text"] if item["msg_type"] != "interactive" else item["text"] or "(card)"
        detail = ""
        if item.get("card") is not None:
            detail = (f"<details><summary>card JSON</summary><pre>"
                      f"{html.escape(json.dumps(item['card'], ensure_ascii=False, indent=1))}</pre></details>")
        rows.append(
            "<tr>"
            f"<td>{html.escape(item['time'])}</td>"
            f"<td>{html.escape(item['to'] or '')}<br><small>{html.escape(item['chat_id'] or '')}</small></td>"
            f"<td>{html.escape(item['msg_type'])}{' (updated)' if item['updated'] else ''}"
            f"{' ↩ ' + html.escape(item['reply_to']) if item['reply_to'] else ''}</td>"
            f"<td><pre>{html.escape(body)}</pre>{detail}</td>"
            "</tr>")
    table = "\n".join(rows) or "<tr><td colspan=4>no messages yet</td></tr>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Feishu stand-in outbox</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.4em;vertical-align:top;text-align:left}}
pre{{white-space:pre-wrap;margin:0;font-family:inherit}} small{{color:#888}}</style></head>
<body><h1>Feishu stand-in</h1>
<p>{html.escape(standin.base_url or '')} · apps: {html.escape(', '.join(standin.state.apps))} ·
{len(standin.calls)} API calls · {len(standin.faults.active())} active faults ·
<a href="/_standin/outbox">outbox JSON</a> · <a href="/_standin/calls">calls JSON</a> ·
<a href="/_standin/state">state JSON</a> · {time.strftime('%H:%M:%S')}</p>
<table><tr><th>time</th><th>to / chat</th><th>type</th><th>content</th></tr>
{table}
</table></body></html>"""
