"""The report page: what a repair label on equipment or a room opens, served by the ingress (``ingress_routes``).

The signed link, Feishu's web login, the session cookie and the CSRF token are the SDK's
(:class:`engine.sdk.scan_page.ScanSite`). GET shows the label's equipment or room, already filled in, and
a box for the fault; POST opens a ticket (``repair.Ticket``) exactly as "@bot 报修 ..." does, with the
label's name as the location, its id as the asset (equipment only) and its site, and answers with the
ticket number; the reporter is then told in Feishu like any reporter.
"""

from __future__ import annotations

import contextlib
import html
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.sdk import scan_page

from .labels import LINK, SCENARIO, SECRET

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

MAX_TEXT = 500  # characters of the fault's description kept, as for a comment on a card

TEXT = {
    "zh_CN": {"title": "报修", "equipment": "设备", "room": "位置", "id": "编号", "fault": "故障描述",
              "placeholder": "例如：黑屏、无法开机、漏水", "submit": "提交报修", "empty": "请描述故障",
              "sent": "已提交报修，工单号 {ticket}。处理进度会通过飞书通知您。"},
    "en_US": {"title": "Report a fault", "equipment": "Equipment", "room": "Place", "id": "ID",
              "fault": "What is wrong", "placeholder": "e.g. black screen, does not start, leaking",
              "submit": "Report", "empty": "Describe the fault",
              "sent": "Reported: ticket {ticket}. You will hear of its progress in Feishu."},
}

SITE = scan_page.ScanSite(SCENARIO, LINK, TEXT, session_hours=lambda org: org.settings(SCENARIO).session_hours,
                          secret=SECRET)


async def open_ticket(app: Any, org: Any, opened: scan_page.Opened, text: str, request_id: str) -> str:
    """Start the ticket of one report from the page; the same form posted twice opens one ticket."""
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from engine.sdk import workflow_id

    from .models import TicketInput
    from .rules import ticket_number

    now = datetime.now(UTC)  # when the page took the report: a request handler, not a workflow
    number = ticket_number(org.id, "scan", request_id, now.astimezone(org.zone))
    room = opened.extra.get("kind") == "room"
    ticket = TicketInput(ticket_id=number, source="message", text=text, reporter_open_id=str(opened.user["open_id"]),
                         location=opened.extra.get("name", ""), asset_id="" if room else opened.item,
                         site=opened.extra.get("site", ""), reported_at=now)
    # the form posted again (a double tap, a reload) finds its ticket started: that ticket is the answer
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await app.temporal.start_workflow("repair.Ticket", ticket, id=workflow_id(org.id, SCENARIO, number),
                                          task_queue=app.config.temporal.task_queue,
                                          id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    return number


def render(opened: scan_page.Opened, csrf: str, message: tuple[bool, str] | None = None, status: int = 200) -> Any:
    org, esc = opened.org, html.escape
    t = SITE.text(org)
    kind = "room" if opened.extra.get("kind") == "room" else "equipment"
    name = opened.extra.get("name") or opened.item
    body = [f"<h1>{esc(t['title'])}</h1>",
            f"<p>{esc(t['hello'])}, {esc(str(opened.user.get('name') or opened.user['open_id']))}</p>",
            f"<dl><dt>{esc(t[kind])}</dt><dd id='place'>{esc(name)}</dd>"
            f"<dt>{esc(t['id'])}</dt><dd>{esc(opened.item)}</dd></dl>"]
    if message is not None:
        ok, text = message
        body.append(f"<p class='msg{'' if ok else ' err'}' id='message'>{esc(text)}</p>")
    if message is None or not message[0]:
        body.append(f"<form method='post' action='{esc(opened.path)}'>"
                    f"<input type='hidden' name='csrf' value='{csrf}'>"
                    f"<input type='hidden' name='request_id' value='{secrets.token_hex(8)}'>"
                    f"<label>{esc(t['fault'])}<textarea name='text' maxlength='{MAX_TEXT}' required "
                    f"placeholder='{esc(t['placeholder'])}'></textarea></label>"
                    f"<button type='submit' class='primary'>{esc(t['submit'])}</button></form>")
    return SITE.page(org, "".join(body), status=status)


async def report(request: Request, app: Any) -> Response:
    """GET: the label's equipment or room and the form; POST: open the ticket."""
    opened = await SITE.open(request, app)
    if not isinstance(opened, scan_page.Opened):
        return opened  # refused, or on to the login
    org = opened.org
    if request.method != "POST":
        return render(opened, SITE.csrf(org, request))
    form = await scan_page.read_form(request)
    if not SITE.csrf_ok(org, request, form.get("csrf", "")):
        return SITE.refusal(org, "forbidden", 403)
    text = " ".join(form.get("text", "").split())[:MAX_TEXT]
    request_id = form.get("request_id", "")[:32]
    if not text or not request_id:
        return render(opened, SITE.csrf(org, request), (False, SITE.text(org)["empty"]), status=400)
    number = await open_ticket(app, org, opened, text, request_id)
    return render(opened, SITE.csrf(org, request), (True, SITE.text(org)["sent"].format(ticket=number)))


ROUTES = SITE.routes(report)
