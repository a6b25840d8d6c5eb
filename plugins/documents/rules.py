"""Pure decisions of a round: who may answer, what is late, which notice or summary comes next.

Everything here is deterministic (it runs inside the workflow) and tested without Temporal. Reasons are
English for logs and the round's history; people see only the toasts of :data:`TEXTS` in their language.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from engine.sdk import Decision, LadderSettings, Texts, WorkCalendar, all_notices, next_notice

from .models import AnswerRequest, Hospital, Round

TEXTS = Texts({
    "zh_CN": {
        "acknowledged": "已确认阅知：{title}", "submitted": "已提交材料：{title}",
        "already": "本院已回复，无需重复操作", "not_yours": "您不是本院此事项的负责人",
        "need_link": "请填写材料链接（以 http 开头）", "closed": "此轮已结束", "wrong_kind": "此轮无需此操作",
    },
    "en_US": {
        "acknowledged": "Acknowledged: {title}", "submitted": "Material submitted: {title}",
        "already": "Your hospital has answered already", "not_yours": "You are not responsible for this",
        "need_link": "Give the material's link (starting with http)", "closed": "This round is over",
        "wrong_kind": "This round does not ask for that",
    },
}, default="zh_CN")


def text(key: str, locale: str, **values: Any) -> str:
    """A toast in ``locale`` (zh_CN when the locale is not one of ours)."""
    return TEXTS(key, locale, **values)


def is_link(value: str) -> bool:
    """Whether a form's answer is a web link (a Feishu Docs or drive link)."""
    value = value.strip()
    return value.startswith(("https://", "http://")) and len(value) > 10 and " " not in value


def may_answer(hospital: Hospital, open_id: str) -> bool:
    """The hospital's responsible people answer; its head may answer for them."""
    return open_id in hospital.responsible or (bool(hospital.head) and open_id == hospital.head)


def check_answer(r: Round, hospital: Hospital | None, request: AnswerRequest) -> str | None:
    """The toast key refusing ``request``, or None when it is accepted."""
    if r.status in ("closed", "refused") or hospital is None:
        return "closed"
    if not may_answer(hospital, request.actor_open_id):
        return "not_yours"
    if hospital.status in ("acknowledged", "uploaded"):
        return "already"
    if (request.op == "acknowledge") != (r.kind == "read"):
        return "wrong_kind"
    if request.op == "submit" and not is_link(request.link):
        return "need_link"
    return None


def hospitals_of_sender(r: Round, open_id: str) -> list[Hospital]:
    """The hospitals a file's sender answers for, those still waiting first."""
    mine = [h for h in r.hospitals if may_answer(h, open_id)]
    return sorted(mine, key=lambda h: h.status != "waiting")


def late(deadline: date, at: datetime, calendar: WorkCalendar) -> bool:
    """Whether an answer at ``at`` is after the deadline day, in the hospital's own zone."""
    return calendar.local(at).date() > deadline


def summary_moment(deadline: date, calendar: WorkCalendar, send_at: time) -> datetime:
    """When headquarters gets the summary of a round not all in: the first working moment after the
    deadline day (``send_at`` of the next working day)."""
    after = calendar.at_local(deadline + timedelta(days=1), time(0, 0))
    return calendar.next_working_moment(after, morning=send_at)


def close_moment(deadline: date, calendar: WorkCalendar, days: int) -> datetime:
    """When a round still open closes for good: ``days`` after the deadline, at local midnight."""
    return calendar.at_local(deadline + timedelta(days=days + 1), time(0, 0))


def next_hospital_notice(hospital: Hospital, deadline: date, now: datetime, ladder: LadderSettings,
                         calendar: WorkCalendar) -> Decision:
    """The hospital's next reminder or escalation (the SDK's ladder on its own working days); nothing once
    it answered."""
    if hospital.status != "waiting":
        return Decision.nothing(f"{hospital.site} answered ({hospital.status})")
    return next_notice(deadline, hospital.fired, now, ladder, calendar)


def passed_notices(deadline: date, sent_at: datetime, ladder: LadderSettings, calendar: WorkCalendar) -> list[str]:
    """The ladder's reminders whose moment is already past when the round goes out: the card itself says
    what they would have, so they are counted as sent (escalations after the deadline are not skipped)."""
    return [d.step for d in all_notices(deadline, ladder, calendar)
            if d.action == "remind" and d.at is not None and d.at <= sent_at]


def figures(r: Round) -> dict[str, Any]:
    """The counts a status card and a summary show (JSON values)."""
    waiting = [h.name or h.site for h in r.hospitals if h.status in ("waiting", "missing")]
    late_ones = [h.name or h.site for h in r.hospitals if h.late]
    return {"total": len(r.hospitals), "answered": r.answered, "waiting": waiting, "late": late_ones,
            "escalated": [h.name or h.site for h in r.hospitals if h.escalated]}
