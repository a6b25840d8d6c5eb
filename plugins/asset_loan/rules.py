"""Pure decisions of the asset_loan scenario: who may borrow, until when, and which reminder is next.

Every function is a function of facts, the present moment and the settings, and returns a
:class:`engine.rules.decision.Decision` (or plain data) with the reason, so the workflow can log why.
They run inside the Loan workflow (deterministic) and are tested without Temporal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import Decision, Texts, WorkCalendar

from .config import AssetLoanSettings, CategoryRule, ReminderSettings
from .models import AssetInfo, AssetRow, GuardResult, Loan, UserProfile

# User-facing answers of the workflow (update failures become toasts and page errors). Kept here, not in
# Jinja templates, because they are raised inside workflow code where templates are never rendered.
MESSAGES = Texts({
    "zh_CN": {
        "unknown_asset": "资产 {asset} 不在资产台账中",
        "not_available": "{asset} 当前不可借用（{status}）",
        "on_loan_to": "{asset} 已被 {borrower} 借出（{since} 起）",
        "in_progress": "{asset} 正被 {borrower} 借用中，请稍后",
        "guard": "{asset} 暂停使用，不能借出：{reason}",
        "not_allowed": "您所在的部门或角色不能借用 {category} 类物资",
        "due_past": "应还日期不能早于今天",
        "due_too_late": "{category} 类最长借用 {days} 天（最晚 {max_due}）",
        "borrowed": "已借出 {asset}，请于 {due} 前归还",
        "requested": "已提交借用申请，等待保管人 {keeper} 审批",
        "not_on_loan": "{asset} 当前未借出",
        "not_yours": "只有借用人、保管人或管理员可以操作",
        "already_done": "这个操作已经处理过了",
        "keeper_only": "只有保管人或管理员可以操作",
        "returned": "{asset} 已归还",
        "restored": "{asset} 已恢复为在库",
        "no_more_extensions": "已达到最多续借次数（{max} 次）",
        "extend_limit": "已达到 {category} 类最长借用期限（{max_due}）",
        "extended": "已续借至 {due}",
        "marked": "{asset} 已登记为{condition}",
        "reminded": "已提醒 {borrower}",
        "approved": "已批准 {borrower} 借用 {asset}",
        "rejected": "已拒绝 {borrower} 的借用申请",
        "not_requested": "{asset} 没有待审批的借用申请",
        "card_sent": "已发送",
        "someone": "其他同事",
        "guard_reason": "计量状态为{status}",
    },
    "en_US": {
        "unknown_asset": "Asset {asset} is not in the inventory",
        "not_available": "{asset} cannot be borrowed right now ({status})",
        "on_loan_to": "{asset} is on loan to {borrower} (since {since})",
        "in_progress": "{asset} is being borrowed by {borrower} right now",
        "guard": "{asset} is out of service and cannot be borrowed: {reason}",
        "not_allowed": "Your department or role may not borrow {category} items",
        "due_past": "The due date cannot be before today",
        "due_too_late": "{category} items are lent for at most {days} days (until {max_due})",
        "borrowed": "You borrowed {asset}; please return it by {due}",
        "requested": "Request sent; waiting for keeper {keeper} to approve",
        "not_on_loan": "{asset} is not on loan",
        "not_yours": "Only the borrower, the keeper or a manager can do this",
        "already_done": "This was already done",
        "keeper_only": "Only the keeper or a manager can do this",
        "returned": "{asset} returned",
        "restored": "{asset} is available again",
        "no_more_extensions": "No more extensions allowed ({max} at most)",
        "extend_limit": "Already at the longest loan for {category} items ({max_due})",
        "extended": "Extended until {due}",
        "marked": "{asset} recorded as {condition}",
        "reminded": "{borrower} reminded",
        "approved": "{borrower} may borrow {asset}",
        "rejected": "Request by {borrower} rejected",
        "not_requested": "{asset} has no pending request",
        "card_sent": "Sent",
        "someone": "someone else",
        "guard_reason": "its calibration status is {status}",
    },
})
CONDITIONS = {"zh_CN": {"lost": "遗失", "damaged": "损坏"}, "en_US": {"lost": "lost", "damaged": "damaged"}}
# the loan's status as people read it (the asset table's cells are the organization's ``status_labels``)
STATUS_NAMES = Texts({
    "zh_CN": {"available": "在库", "requested": "待审批", "on_loan": "借出", "lost": "遗失", "damaged": "损坏"},
    "en_US": {"available": "available", "requested": "awaiting approval", "on_loan": "on loan", "lost": "lost",
              "damaged": "damaged"},
})
# device_calibration's phases that keep an asset from being lent, as people read them
GUARD_STATUSES = {
    "zh_CN": {"overdue": "超期未校准", "quarantined": "超差停用", "sent_out": "送检中", "retired": "已退役",
              "out_of_service": "停用", "paused": "暂停使用"},
    "en_US": {"overdue": "overdue for calibration", "quarantined": "quarantined (out of tolerance)",
              "sent_out": "away for calibration", "retired": "retired", "out_of_service": "out of service",
              "paused": "paused"},
}


def text(code: str, locale: str, **values: Any) -> str:
    """The user-facing message ``code`` in ``locale`` (Chinese when the locale is unknown)."""
    return MESSAGES(code, locale, **values)


def status_name(status: str, locale: str) -> str:
    """A loan status (``available``, ``on_loan``...) in ``locale``."""
    return STATUS_NAMES.get(status, locale)


def guard_text(guard: GuardResult, locale: str) -> str:
    """Why the guard keeps the asset in, as people read it: the calibration status, never its log reason."""
    names = GUARD_STATUSES.get(locale, GUARD_STATUSES["zh_CN"])
    return text("guard_reason", locale, status=names.get(guard.status, names["out_of_service"]))


# ------------------------------------------------------------------------------------------------ days


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of ``moment`` in the organization's zone."""
    return moment.astimezone(zone).date()


def default_due(today: date, rule: CategoryRule) -> date:
    return today + timedelta(days=min(rule.default_loan_days, rule.max_loan_days))


def latest_due(start: date, rule: CategoryRule) -> date:
    """The latest due date a loan that started on ``start`` may ever have (extensions included)."""
    return start + timedelta(days=rule.max_loan_days)


def is_overdue(due: date, now: datetime, zone: ZoneInfo) -> bool:
    """Overdue from the day after the due date (the whole due date is still in time)."""
    return local_day(now, zone) > due


def days_overdue(due: date, now: datetime, zone: ZoneInfo) -> int:
    return max(0, (local_day(now, zone) - due).days)


# ------------------------------------------------------------------------------------------ borrowing


def may_borrow(profile: UserProfile, rule: CategoryRule, roles: dict[str, list[str]]) -> bool:
    """Whether the category's department, user and role lists admit this person (empty lists: everyone)."""
    if not (rule.allowed_departments or rule.allowed_users or rule.allowed_roles):
        return True
    if profile.open_id in rule.allowed_users:
        return True
    if any(profile.open_id in roles.get(role, []) for role in rule.allowed_roles):
        return True
    return bool(set(profile.department_ids) & set(rule.allowed_departments))


def check_borrow(
    *,
    asset: AssetInfo | None,
    asset_id: str,
    profile: UserProfile,
    settings: AssetLoanSettings,
    requested_due: date | None,
    today: date,
    guard: GuardResult,
    locale: str,
) -> Decision:
    """Decide a borrow request on an available asset: ``lend``, ``request_approval`` or ``refuse``.

    ``data`` carries ``due`` (ISO) when accepted and ``message`` (what the person is told) always.
    """
    if asset is None or asset.record_id is None:
        return Decision(action="refuse", reason=f"{asset_id} is not in the asset table",
                        data={"code": "unknown_asset", "message": text("unknown_asset", locale, asset=asset_id)})
    label = asset.name or asset.asset_id
    if guard.blocked:
        return Decision(action="refuse", reason=f"guard: {guard.source} status {guard.status}: {guard.reason}",
                        data={"code": "guard", "message": text("guard", locale, asset=label,
                                                               reason=guard_text(guard, locale))})
    rule = settings.category_rule(asset.category)
    category = asset.category or settings.default_category
    shown = settings.category_label(category, locale)
    if not may_borrow(profile, rule, settings.roles):
        return Decision(action="refuse", reason=f"{profile.open_id} not admitted by category {category!r}",
                        data={"code": "not_allowed", "message": text("not_allowed", locale, category=shown)})
    due = requested_due or default_due(today, rule)
    limit = latest_due(today, rule)
    if due < today:
        return Decision(action="refuse", reason=f"due {due} is before today {today}",
                        data={"code": "due_past", "message": text("due_past", locale)})
    if due > limit:
        return Decision(action="refuse", reason=f"due {due} beyond max_loan_days {rule.max_loan_days}",
                        data={"code": "due_too_late", "message": text(
                            "due_too_late", locale, category=shown, days=rule.max_loan_days,
                            max_due=limit.isoformat())})
    days = (due - today).days
    if rule.needs_keeper_approval and asset.keeper_open_id and profile.open_id != asset.keeper_open_id:
        return Decision(action="request_approval",
                        reason=f"category {category!r} needs the keeper's approval; due in {days} days",
                        data={"due": due.isoformat(), "message": text(
                            "requested", locale, keeper=asset.keeper_name or asset.keeper_open_id)})
    return Decision(action="lend", reason=f"lend for {days} days (category {category!r}, max {rule.max_loan_days})",
                    data={"due": due.isoformat(), "message": text("borrowed", locale, asset=label,
                                                                  due=due.isoformat())})


def check_extend(*, loan: Loan, rule: CategoryRule, category: str, days: int | None, zone: ZoneInfo,
                 locale: str) -> Decision:
    """Extend a loan by ``days`` (default: the category's extension), capped at the category's limit."""
    if loan.extensions >= rule.max_extensions:
        return Decision(action="refuse", reason=f"{loan.extensions} extensions already (max {rule.max_extensions})",
                        data={"message": text("no_more_extensions", locale, max=rule.max_extensions)})
    start = local_day(loan.borrowed_at or loan.requested_at, zone)
    limit = latest_due(start, rule)
    wanted = loan.due + timedelta(days=days or rule.extension_days)
    new_due = min(wanted, limit)
    if new_due <= loan.due:
        return Decision(action="refuse", reason=f"due {loan.due} already at the limit {limit}",
                        data={"message": text("extend_limit", locale, category=category, max_due=limit.isoformat())})
    capped = " (capped by max_loan_days)" if new_due < wanted else ""
    return Decision(action="extend", reason=f"due {loan.due} -> {new_due}{capped}",
                    data={"due": new_due.isoformat(), "message": text("extended", locale, due=new_due.isoformat())})


def roles_of(actor: str, *, asset: AssetInfo | None, loan: Loan | None, manager: str | None) -> set[str]:
    """What ``actor`` is for this asset: ``borrower``, ``keeper``, ``manager`` (possibly several)."""
    found = set()
    if loan is not None and actor == loan.borrower_open_id:
        found.add("borrower")
    if asset is not None and asset.keeper_open_id and actor == asset.keeper_open_id:
        found.add("keeper")
    if manager and actor == manager:
        found.add("manager")
    return found


# ------------------------------------------------------------------------------------------- reminders


def _at(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour=hour), tzinfo=zone)


def reminder_plan(due: date, settings: ReminderSettings, zone: ZoneInfo,
                  calendar: WorkCalendar | None = None) -> list[Decision]:
    """Every notice of a loan due on ``due``, in order: before the due date, on it, then the ladder.

    Each notice is a ``remind`` (to the borrower, before or on the due date) or ``escalate`` decision
    whose ``step`` is unique for this due date, so an extension (a new due date) starts a fresh plan.

    With ``calendar`` the ladder runs on working days, as every engine ladder does (engine.rules.ladder):
    a reminder, and the due-day notice, that would fall on a day off moves to the previous workday (the
    borrower hears before the date, never after; a due-day notice moved earlier says "due in N days"),
    an escalation to the next workday (it is about something already late). Notices that land on the same
    moment are decided by :func:`next_reminder`: the later one of the plan goes out. Without ``calendar``:
    calendar days (loans recorded before the working-day ladder).
    """
    def before(day: date) -> date:
        return calendar.previous_workday(day) if calendar is not None else day

    def after(day: date) -> date:
        return calendar.next_workday(day) if calendar is not None else day

    plan: list[Decision] = []
    for days in settings.before_due_days:
        day = before(due - timedelta(days=days))
        lead = (due - day).days
        plan.append(Decision(action="remind", at=_at(day, settings.hour, zone),
                             step=f"{due}:before:{days}",
                             reason=f"due in {lead} day(s) (before_due_days {settings.before_due_days}"
                                    + (", moved to the previous workday)" if lead != days else ")"),
                             data={"kind": "before_due", "days": lead, "to": ["borrower"]}))
    if settings.on_due_date:
        day = before(due)
        if day == due:
            plan.append(Decision(action="remind", at=_at(due, settings.hour, zone), step=f"{due}:due",
                                 reason="due today", data={"kind": "due", "days": 0, "to": ["borrower"]}))
        else:
            lead = (due - day).days
            plan.append(Decision(action="remind", at=_at(day, settings.hour, zone), step=f"{due}:due",
                                 reason=f"due in {lead} day(s) on a day off: the last workday before it",
                                 data={"kind": "before_due", "days": lead, "to": ["borrower"]}))
    for rung, step in enumerate(settings.escalation, start=1):
        day = after(due + timedelta(days=step.after_days))
        late = (day - due).days
        plan.append(Decision(action="escalate", at=_at(day, settings.hour, zone),
                             step=f"{due}:overdue:{step.after_days}",
                             reason=f"overdue {late} day(s): rung {rung} of {len(settings.escalation)}"
                                    f" to {', '.join(step.to)}",
                             data={"kind": "overdue", "days": late, "to": list(step.to), "rung": rung}))
    if settings.escalation and settings.repeat_every_days:
        last = settings.escalation[-1]
        for repeat in range(1, settings.max_repeats + 1):
            days = last.after_days + repeat * settings.repeat_every_days
            day = after(due + timedelta(days=days))
            plan.append(Decision(action="escalate", at=_at(day, settings.hour, zone),
                                 step=f"{due}:overdue:{days}",
                                 reason=f"overdue {(day - due).days} day(s): repeat {repeat} of the last rung "
                                        f"every {settings.repeat_every_days} day(s)",
                                 data={"kind": "overdue", "days": (day - due).days, "to": list(last.to),
                                       "rung": len(settings.escalation), "repeat": repeat}))
    return plan


def next_reminder(plan: Sequence[Decision], done: Iterable[str], now: datetime, since: datetime) -> Decision:
    """The notice to send now, the next one to wait for, or nothing.

    Notices at or before ``since`` (the loan started or was extended after them) never fire. When several
    came due while the worker was down, only the latest is sent; the earlier ones are listed in
    ``data["skipped"]`` so the workflow records them as done instead of sending a burst.
    """
    sent = set(done)
    pending = [n for n in plan if n.step not in sent and n.at is not None and n.at > since]
    due_now = [n for n in pending if n.at is not None and n.at <= now]
    if due_now:
        latest = due_now[-1]
        return latest.model_copy(update={"data": {**latest.data, "skipped": [n.step for n in due_now[:-1]]}})
    if pending:
        upcoming = pending[0]
        return Decision(action="wait", at=upcoming.at, step=upcoming.step, reason=f"next: {upcoming.reason}")
    return Decision.nothing("no reminder left in the plan")


def recipients(to: Iterable[str], *, loan: Loan, asset: AssetInfo | None, manager: str | None) -> list[str]:
    """The open_ids for a notice's ``to`` roles, without duplicates or blanks, in ladder order."""
    ids: list[str] = []
    for role in to:
        candidate = {"borrower": loan.borrower_open_id,
                     "keeper": asset.keeper_open_id if asset else "",
                     "manager": manager or ""}[role]
        if candidate and candidate not in ids:
            ids.append(candidate)
    return ids


# --------------------------------------------------------------------------------------------- views


def summarize_for_keepers(rows: Sequence[AssetRow], now: datetime, zone: ZoneInfo,
                          on_loan_labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per keeper: items out, overdue ones and the longest-held item (by borrowed-at)."""
    summary: dict[str, dict[str, Any]] = {}
    today = local_day(now, zone)
    for row in rows:
        if not row.keeper_open_id or row.status not in on_loan_labels or not row.borrower_open_id:
            continue
        entry = summary.setdefault(row.keeper_open_id, {"keeper_name": row.keeper_name, "out": [], "overdue": [],
                                                        "longest": None})
        held_days = (today - local_day(row.borrowed_at, zone)).days if row.borrowed_at else 0
        item = {"asset_id": row.asset_id, "name": row.name, "borrower": row.borrower_name or row.borrower_open_id,
                "borrower_open_id": row.borrower_open_id, "due": row.due_back.isoformat() if row.due_back else "",
                "held_days": held_days,
                "days_overdue": (today - row.due_back).days if row.due_back and today > row.due_back else 0}
        entry["out"].append(item)
        if item["days_overdue"] > 0:
            entry["overdue"].append(item)
        if entry["longest"] is None or held_days > entry["longest"]["held_days"]:
            entry["longest"] = item
    return summary


def open_loans_of(rows: Sequence[AssetRow], open_id: str, now: datetime, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The open loans of one person, soonest due first, for the "what do I have" reply."""
    today = local_day(now, zone)
    loans = [{"asset_id": r.asset_id, "name": r.name, "location": r.location,
              "due": r.due_back.isoformat() if r.due_back else "",
              "borrowed_at": r.borrowed_at.isoformat() if r.borrowed_at else "",
              "overdue": bool(r.due_back and today > r.due_back)}
             for r in rows if r.borrower_open_id == open_id]
    return sorted(loans, key=lambda item: (item["due"] or "9999", item["asset_id"]))
