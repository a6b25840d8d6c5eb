"""The scan page: what an asset's QR label opens, served by the ingress (``ingress_routes``).

The signed link, Feishu's web login, the session cookie and the CSRF token are the SDK's
(:class:`engine.sdk.scan_page.ScanSite`); here is the page: the asset and the actions this person may take.
Actions are POSTed to the same URL and run as Temporal updates on the asset's Loan workflow, exactly like
the card buttons.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from engine.sdk import scan_page

from .labels import LINK, SCENARIO

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response

TEXT = {
    "zh_CN": {
        "title": "物资借还", "status": "状态", "location": "位置", "keeper": "保管人", "category": "类别",
        "borrower": "借用人", "since": "借出时间", "due": "应还日期", "borrow": "借用", "return": "归还",
        "extend": "续借", "remind_now": "立即提醒", "lost": "登记遗失", "damaged": "登记损坏",
        "approve": "批准", "reject": "拒绝", "restore": "恢复在库", "blocked": "不可借用",
        "pending": "等待保管人审批", "overdue": "已逾期", "busy": "系统繁忙，请稍后再试",
        "confirm_return": "确认归还",
    },
    "en_US": {
        "title": "Asset loan", "status": "Status", "location": "Location", "keeper": "Keeper", "category": "Category",
        "borrower": "Borrower", "since": "Since", "due": "Due back", "borrow": "Borrow", "return": "Return",
        "extend": "Extend", "remind_now": "Remind now", "lost": "Mark lost", "damaged": "Mark damaged",
        "approve": "Approve", "reject": "Reject", "restore": "Back in stock",
        "blocked": "Cannot be borrowed", "pending": "Waiting for the keeper's approval", "overdue": "Overdue",
        "busy": "Busy, try again shortly",
        "confirm_return": "Confirm return",
    },
}

OPS = {"borrow", "return", "extend", "remind_now", "lost", "damaged", "approve", "reject"}


SITE = scan_page.ScanSite(SCENARIO, LINK, TEXT, session_hours=lambda org: org.settings(SCENARIO).session_hours)


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
    # the press, on the organization's business clock (the workflow's), for the card's "scan to record"
    scanned_at = org.config.clock.now(datetime.now(UTC))
    arg: Any
    if op == "borrow":
        due = None
        if form.get("due"):
            try:
                due = date.fromisoformat(form["due"])
            except ValueError:
                return False, form["due"]
        name, arg = "borrow", BorrowRequest(borrower_open_id=actor, borrower_name=str(user.get("name", "")),
                                            due=due, event_id=request_id, via="scan", scanned_at=scanned_at)
    elif op == "extend":
        name, arg = "extend", ExtendRequest(actor_open_id=actor, event_id=request_id, via="scan")
    elif op in ("lost", "damaged"):
        name, arg = "mark", MarkRequest(actor_open_id=actor, condition=op, event_id=request_id, via="scan")
    else:
        name = {"return": "return_asset", "remind_now": "remind_now", "approve": "approve", "reject": "reject"}[op]
        arg = ActorRequest(actor_open_id=actor, event_id=request_id, via="scan", scanned_at=scanned_at)
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
    t = SITE.text(org)
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
    return SITE.page(org, "".join(body))


async def scan(request: Request, app: Any) -> Response:
    """GET shows the asset and the viewer's actions; POST runs one of them."""
    opened = await SITE.open(request, app)
    if not isinstance(opened, scan_page.Opened):
        return opened  # refused, or on to the login
    org, asset_id, user = opened.org, opened.item, opened.user
    message = None
    if request.method == "POST":
        form = await scan_page.read_form(request)
        if not SITE.csrf_ok(org, request, form.get("csrf", "")):
            return SITE.refusal(org, "forbidden", 403)
        op = form.get("op") or form.get("action", "")
        if op not in OPS:
            return SITE.refusal(org, "forbidden", 400)
        message = await run_update(app, org, asset_id, op, user, form)
    state = await loan_state(app, org, asset_id)
    guard = None
    if state.status == "available" and org.enabled("device_calibration"):
        from .activities import guard_for

        guard = await guard_for(app, org, asset_id)
    return render_asset(org, state, user, opened.path, SITE.csrf(org, request), message, guard)


ROUTES = SITE.routes(scan)
