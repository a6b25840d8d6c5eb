"""The scan page: what a QR label opens, served by the ingress (``ingress_routes``).

Flow: a signed link ``/asset_loan/scan/{org}/{asset_id}?sig=...`` (tampering: 403) → no session yet:
redirect to Feishu's web login (``/open-apis/authen/v1/authorize``) → Feishu redirects to
``/asset_loan/auth/callback`` with a one-time code → the code is exchanged for the user
(``authen/v1/oidc/access_token`` then ``authen/v1/user_info``) → a signed session cookie → back to the
page, which shows the asset and the actions this person may take. Actions are POSTed to the same URL
and run as Temporal updates on the asset's Loan workflow, exactly like the card buttons.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import time
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from . import signing

SCENARIO = "asset_loan"
COOKIE = "asset_loan_session"
CALLBACK = "/asset_loan/auth/callback"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
DEFAULT_FEISHU = "https://open.feishu.cn"

TEXT = {
    "zh_CN": {
        "title": "物资借还", "status": "状态", "location": "位置", "keeper": "保管人", "category": "类别",
        "borrower": "借用人", "since": "借出时间", "due": "应还日期", "borrow": "借用", "return": "归还",
        "extend": "续借", "remind_now": "立即提醒", "lost": "登记遗失", "damaged": "登记损坏",
        "approve": "批准", "reject": "拒绝", "restore": "恢复在库", "hello": "您好", "blocked": "不可借用",
        "pending": "等待保管人审批", "overdue": "已逾期", "forbidden": "链接无效或已被篡改",
        "not_found": "未找到该组织", "login_failed": "飞书登录失败，请重新扫码", "busy": "系统繁忙，请稍后再试",
        "confirm_return": "确认归还",
    },
    "en_US": {
        "title": "Asset loan", "status": "Status", "location": "Location", "keeper": "Keeper", "category": "Category",
        "borrower": "Borrower", "since": "Since", "due": "Due back", "borrow": "Borrow", "return": "Return",
        "extend": "Extend", "remind_now": "Remind now", "lost": "Mark lost", "damaged": "Mark damaged",
        "approve": "Approve", "reject": "Reject", "restore": "Back in stock", "hello": "Hello",
        "blocked": "Cannot be borrowed", "pending": "Waiting for the keeper's approval", "overdue": "Overdue",
        "forbidden": "This link is invalid or was altered", "not_found": "No such organization",
        "login_failed": "Feishu login failed; scan again", "busy": "Busy, try again shortly",
        "confirm_return": "Confirm return",
    },
}

OPS = {"borrow", "return", "extend", "remind_now", "lost", "damaged", "approve", "reject"}


# ---------------------------------------------------------------------------------------- plumbing


def public_url(app: Any) -> str:
    return (app.config.ingress.public_url or DEFAULT_PUBLIC_URL).rstrip("/")


def feishu_base(app: Any) -> str:
    return (app.feishu_base_url or app.config.secret("base_url") or DEFAULT_FEISHU).rstrip("/")


def _org(app: Any, org_id: str) -> Any | None:
    org = app.config.orgs.get(org_id)
    return org if org is not None and org.enabled(SCENARIO) else None


def _key(org: Any, purpose: str) -> bytes:
    """The key that signs ``purpose`` (:mod:`.signing`) now for this organization."""
    return bytes(org.keyring(SCENARIO).key(purpose))


def _keys(org: Any, purpose: str) -> tuple[bytes, ...]:
    """Every key that still verifies ``purpose`` (the current one, then previous secrets' during a rotation)."""
    return tuple(org.keyring(SCENARIO).keys(purpose))


def _t(org: Any) -> dict[str, str]:
    return TEXT.get(org.locale, TEXT["zh_CN"])


def _page(org: Any | None, body: str, status: int = 200) -> HTMLResponse:
    locale = org.locale if org is not None else "zh_CN"
    title = TEXT.get(locale, TEXT["zh_CN"])["title"]
    style = ("body{font-family:-apple-system,'PingFang SC',sans-serif;margin:0;padding:16px;max-width:480px}"
             "h1{font-size:20px}dl{display:grid;grid-template-columns:auto 1fr;gap:4px 12px}dt{color:#666}"
             "button{width:100%;padding:12px;margin:6px 0;font-size:16px;border-radius:8px;border:1px solid #ccc}"
             "button.primary{background:#3370ff;color:#fff;border:none}.msg{padding:10px;border-radius:6px;"
             "background:#f0f4ff;margin:8px 0}.err{background:#fff0f0;color:#c00}input{font-size:16px;padding:8px}")
    document = (f'<!doctype html><html lang="{locale[:2]}"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}'
                f"</title><style>{style}</style></head><body>{body}</body></html>")
    return HTMLResponse(document, status_code=status)


def _session(request: Request, org: Any) -> dict[str, Any] | None:
    payload = signing.read_payload(_keys(org, signing.SESSIONS), request.cookies.get(COOKIE))
    if payload is None or payload.get("org") != org.id:
        return None
    return payload


def _csrf(org: Any, request: Request) -> str:
    return signing.asset_signature(_key(org, signing.CSRF), "csrf", request.cookies.get(COOKIE, ""))


def _csrf_ok(org: Any, request: Request, token: str) -> bool:
    cookie = request.cookies.get(COOKIE, "")
    return any([secrets.compare_digest(token, signing.asset_signature(key, "csrf", cookie))
                for key in _keys(org, signing.CSRF)])


# ------------------------------------------------------------------------------------------- login


def login_redirect(app: Any, org: Any, next_path: str) -> RedirectResponse:
    """Send the browser to Feishu's web login; ``state`` (signed) brings it back to ``next_path``."""
    state = signing.sign_payload(_key(org, signing.LOGIN_STATE), {
        "org": org.id, "next": next_path, "exp": time.time() + 600, "nonce": secrets.token_hex(8)})
    query = urlencode({"app_id": app.config.secret("app_id") or "", "redirect_uri": public_url(app) + CALLBACK,
                       "state": state})
    return RedirectResponse(f"{feishu_base(app)}/open-apis/authen/v1/authorize?{query}", status_code=302)


async def exchange_code(app: Any, code: str) -> dict[str, Any]:
    """Feishu web login: the one-time ``code`` → user access token → the user's open_id and name."""
    import httpx

    base = feishu_base(app)
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        token_answer = (await http.post("/open-apis/auth/v3/app_access_token/internal", json={
            "app_id": app.config.secret("app_id"), "app_secret": app.config.secret("app_secret")})).json()
        if token_answer.get("code") != 0:
            raise PermissionError(f"app token: {token_answer.get('msg')}")
        headers = {"Authorization": f"Bearer {token_answer['app_access_token']}"}
        exchanged = (await http.post("/open-apis/authen/v1/oidc/access_token", headers=headers,
                                     json={"grant_type": "authorization_code", "code": code})).json()
        if exchanged.get("code") != 0:
            raise PermissionError(f"code exchange: {exchanged.get('msg')}")
        user_token = exchanged["data"]["access_token"]
        info = (await http.get("/open-apis/authen/v1/user_info",
                               headers={"Authorization": f"Bearer {user_token}"})).json()
        if info.get("code") != 0:
            raise PermissionError(f"user info: {info.get('msg')}")
    data = info["data"]
    return {"open_id": data["open_id"], "name": data.get("name", "")}


async def auth_callback(request: Request, app: Any) -> Response:
    """Where Feishu's login redirects: exchange the code, set the session cookie, go back to the page."""
    raw_state = request.query_params.get("state", "")
    # the signed state says which organization started the login; check it with that organization's key
    org = None
    for candidate in app.config.orgs.values():
        if candidate.enabled(SCENARIO) and signing.read_payload(_keys(candidate, signing.LOGIN_STATE),
                                                                raw_state) is not None:
            org = candidate
            break
    if org is None:
        return _page(None, f"<p class='msg err'>{TEXT['zh_CN']['forbidden']}</p>", status=403)
    state = signing.read_payload(_keys(org, signing.LOGIN_STATE), raw_state) or {}
    code = request.query_params.get("code", "")
    try:
        user = await exchange_code(app, code)
    except (PermissionError, KeyError, ValueError):
        return _page(org, f"<p class='msg err'>{_t(org)['login_failed']}</p>", status=401)
    hours = org.settings(SCENARIO).session_hours
    token = signing.sign_payload(_key(org, signing.SESSIONS), {
        "org": org.id, "open_id": user["open_id"], "name": user["name"], "exp": time.time() + hours * 3600})
    next_path = str(state.get("next", "/"))
    if not next_path.startswith("/asset_loan/"):
        next_path = "/"  # never an open redirect
    response = RedirectResponse(next_path, status_code=302)
    response.set_cookie(COOKIE, token, max_age=hours * 3600, httponly=True, samesite="lax",
                        secure=public_url(app).startswith("https://"), path="/asset_loan/")
    return response


# -------------------------------------------------------------------------------------- the workflow


async def _handle(app: Any, org: Any, asset_id: str) -> Any:
    from temporalio.common import WorkflowIDConflictPolicy

    from engine.sdk import workflow_id

    from .models import LoanInput

    wid = workflow_id(org.id, SCENARIO, asset_id)
    # the asset's workflow starts at its first scan; starting a running one is a no-op
    return await app.temporal.start_workflow(
        "asset_loan.Loan", LoanInput(asset_id=asset_id), id=wid, task_queue=app.config.temporal.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)


async def loan_state(app: Any, org: Any, asset_id: str, timeout: float = 10.0) -> Any:
    """The asset's ``state``, once its workflow has loaded the asset row."""
    from .models import LoanState

    handle = await _handle(app, org, asset_id)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await handle.query("state", result_type=LoanState)
        if state.loaded or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


async def run_update(app: Any, org: Any, asset_id: str, op: str, user: dict[str, Any],
                     form: dict[str, str]) -> tuple[bool, str]:
    """Run one page action as a Temporal update; ``(ok, message)`` for the page."""
    from temporalio.client import WorkflowUpdateFailedError

    from .models import ActorRequest, BorrowRequest, ExtendRequest, MarkRequest

    actor = str(user["open_id"])
    request_id = form.get("request_id") or secrets.token_hex(8)
    arg: Any
    if op == "borrow":
        due = None
        if form.get("due"):
            try:
                due = date.fromisoformat(form["due"])
            except ValueError:
                return False, form["due"]
        name, arg = "borrow", BorrowRequest(borrower_open_id=actor, borrower_name=str(user.get("name", "")),
                                            due=due, event_id=request_id, via="scan")
    elif op == "extend":
        name, arg = "extend", ExtendRequest(actor_open_id=actor, event_id=request_id, via="scan")
    elif op in ("lost", "damaged"):
        name, arg = "mark", MarkRequest(actor_open_id=actor, condition=op, event_id=request_id, via="scan")
    else:
        name = {"return": "return_asset", "remind_now": "remind_now", "approve": "approve", "reject": "reject"}[op]
        arg = ActorRequest(actor_open_id=actor, event_id=request_id, via="scan")
    handle = await _handle(app, org, asset_id)
    try:
        # the update id dedupes a double-submitted form within the run
        result = await handle.execute_update(name, arg, id=f"scan:{request_id}", result_type=dict)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        return False, str(getattr(cause, "message", None) or cause or error)
    return True, str(result.get("toast", ""))


# ---------------------------------------------------------------------------------------- the page


def _actions(state: Any, viewer: str, manager: str | None) -> list[str]:
    from . import rules

    roles = rules.roles_of(viewer, asset=state.asset, loan=state.loan, manager=manager)
    keeper = bool(roles & {"keeper", "manager"})
    if state.status == "available":
        return ["borrow", *(["lost", "damaged"] if keeper else [])]
    if state.status == "on_loan":
        ops = ["return", "extend"] if roles else []
        return ops + (["remind_now", "lost", "damaged"] if keeper else [])
    if state.status == "requested":
        return ["approve", "reject"] if keeper else []
    return ["return"] if keeper else []  # lost / damaged: the keeper puts it back in stock


def render_asset(org: Any, state: Any, user: dict[str, Any], path: str, csrf: str,
                 message: tuple[bool, str] | None = None, guard: Any = None) -> HTMLResponse:
    t = _t(org)
    settings = org.settings(SCENARIO)
    labels = settings.status_labels
    asset = state.asset
    esc = html.escape
    name = asset.name if asset and asset.name else state.asset_id
    rows = [(t["status"], getattr(labels, state.status) + (f" · {t['overdue']}" if state.overdue else ""))]
    if asset is not None:
        category = settings.category_label(asset.category, org.locale) if asset.category else ""
        rows += [(t["category"], category), (t["location"], asset.location),
                 (t["keeper"], asset.keeper_name or asset.keeper_open_id)]
    if state.loan is not None:
        loan = state.loan
        since = (loan.borrowed_at or loan.requested_at).astimezone(org.zone).strftime("%Y-%m-%d %H:%M")
        rows += [(t["borrower"], loan.borrower_name or loan.borrower_open_id), (t["since"], since),
                 (t["due"], loan.due.isoformat())]
    body = [f"<h1>{esc(name)}</h1><p>{esc(state.asset_id)}</p>",
            f"<p>{t['hello']}, {esc(str(user.get('name') or user['open_id']))}</p>"]
    if message is not None:
        ok, text = message
        body.append(f"<p class='msg{'' if ok else ' err'}' id='message'>{esc(text)}</p>")
    body.append("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in rows if v) + "</dl>")
    if state.status == "requested":
        body.append(f"<p class='msg'>{t['pending']}</p>")
    manager = settings.category_rule(asset.category if asset else None).manager_open_id or settings.manager_open_id
    actions = _actions(state, str(user["open_id"]), manager)
    if guard is not None and guard.blocked and "borrow" in actions:
        actions.remove("borrow")
        from .rules import guard_text

        body.append(f"<p class='msg err' id='guard'>{t['blocked']}: {esc(guard_text(guard, org.locale))}</p>")
    for op in actions:
        hidden = (f"<input type='hidden' name='op' value='{op}'><input type='hidden' name='csrf' value='{csrf}'>"
                  f"<input type='hidden' name='request_id' value='{secrets.token_hex(8)}'>")
        extra = ""
        if op == "borrow" and state.default_due:
            extra = (f"<label>{t['due']} <input type='date' name='due' value='{state.default_due.isoformat()}' "
                     f"max='{state.max_due.isoformat() if state.max_due else ''}'></label>")
        label = t["restore"] if op == "return" and state.status in ("lost", "damaged") else t[op]
        if op == "return" and state.loan is not None and state.loan.borrower_open_id != user["open_id"]:
            label = t["confirm_return"]
        primary = " class='primary'" if op in ("borrow", "return", "approve") else ""
        body.append(f"<form method='post' action='{esc(path)}'>{hidden}{extra}"
                    f"<button type='submit'{primary} name='action' value='{op}'>{esc(label)}</button></form>")
    return _page(org, "".join(body))


async def scan_page(request: Request, app: Any) -> Response:
    """GET shows the asset and the viewer's actions; POST runs one of them."""
    org_id = request.path_params["org"]
    asset_id = request.path_params["asset_id"]
    org = _org(app, org_id)
    if org is None:
        return _page(None, f"<p class='msg err'>{TEXT['zh_CN']['not_found']}</p>", status=404)
    if not signing.verify_asset(_keys(org, signing.LINKS), org_id, asset_id, request.query_params.get("sig")):
        return _page(org, f"<p class='msg err'>{_t(org)['forbidden']}</p>", status=403)
    path = signing.scan_path(_key(org, signing.LINKS), org_id, asset_id)
    user = _session(request, org)
    if user is None:
        return login_redirect(app, org, path)
    message = None
    if request.method == "POST":
        # the page posts urlencoded forms; parsed here, so the ingress needs no python-multipart
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        if not _csrf_ok(org, request, form.get("csrf", "")):
            return _page(org, f"<p class='msg err'>{_t(org)['forbidden']}</p>", status=403)
        op = form.get("op") or form.get("action", "")
        if op not in OPS:
            return _page(org, f"<p class='msg err'>{_t(org)['forbidden']}</p>", status=400)
        message = await run_update(app, org, asset_id, op, user, form)
    state = await loan_state(app, org, asset_id)
    guard = None
    if state.status == "available" and org.enabled("device_calibration"):
        from .activities import guard_for

        guard = await guard_for(app, org, asset_id)
    return render_asset(org, state, user, path, _csrf(org, request), message, guard)


ROUTES = [
    ("/asset_loan/scan/{org}/{asset_id}", scan_page, ["GET", "POST"]),
    (CALLBACK, auth_callback, ["GET"]),
]
