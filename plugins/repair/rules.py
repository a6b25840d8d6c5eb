"""Pure decisions of the repair scenario: triage, who is on duty, SLA deadlines, what a press may do, the
monthly figures. No I/O and no clock of their own: safe inside workflows, tested without Temporal."""

from __future__ import annotations

import base64
import hashlib
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any

from engine.sdk import Decision, Texts, WorkCalendar

from .config import TICKET_PATTERN, RepairSettings, RotaEntry, SlaSettings
from .models import Technician, Ticket, TicketRow

# ------------------------------------------------------------------------------------------ numbers


def ticket_number(org: str, source: str, unique: str, day: datetime) -> str:
    """A short ticket number, the same for the same report pushed again: ``BX-<yymmdd>-<5 chars>``.

    ``unique`` is the report's message id or the row's record id; ``day`` the report's local time.
    """
    digest = hashlib.sha256(f"{org}\x1f{source}\x1f{unique}".encode()).digest()
    return f"BX-{day:%y%m%d}-{base64.b32encode(digest).decode()[:5]}"


def alert_ticket_number(fingerprint: str) -> str:
    """The ticket of one Alertmanager alert (its fingerprint is 16 hex digits)."""
    return f"BX-AL-{fingerprint.upper()[:16]}"


# ------------------------------------------------------------------------------------------- triage


def _found(words: Iterable[str], text: str) -> str | None:
    lowered = text.lower()
    return next((w for w in words if w and w.lower() in lowered), None)


def triage(text: str, location: str, settings: RepairSettings, given_category: str = "") -> Decision:
    """Category and priority of a report, from the (site's) keyword and location rules.

    Returns ``Decision(action="triage", data={"category", "priority"})`` with the rule that decided in
    ``reason`` (for the history row, never the reporter).
    """
    category, why = given_category, f"category {given_category} given"
    if not category:
        hits = {c: _found(words, f"{text} {location}") for c, words in settings.keywords.items()}
        # the first listed category with a keyword wins; medical before facilities ("设备" vs "电")
        for candidate in ("medical", "it", "facilities"):
            if hits.get(candidate):
                category, why = candidate, f"keyword {hits[candidate]!r} -> {candidate}"
                break
        else:
            category, why = settings.default_category, f"no keyword: default {settings.default_category}"
    urgent_word = _found(settings.urgent_keywords, text)
    urgent_place = _found(settings.urgent_locations, f"{location} {text}")
    priority = "urgent" if urgent_word or urgent_place else "normal"
    if urgent_word:
        why += f"; urgent keyword {urgent_word!r}"
    elif urgent_place:
        why += f"; urgent location {urgent_place!r}"
    return Decision(action="triage", reason=why, data={"category": category, "priority": priority})


# ----------------------------------------------------------------------------------------- the rota


def _on_duty(entry: RotaEntry, local: datetime) -> bool:
    clock = local.time().replace(tzinfo=None)
    day = local.isoweekday()
    if entry.start == entry.end:
        return not entry.weekdays or day in entry.weekdays
    if entry.start < entry.end:
        return (not entry.weekdays or day in entry.weekdays) and entry.start <= clock < entry.end
    # past midnight: the evening belongs to today's duty, the small hours to yesterday's
    if clock >= entry.start:
        return not entry.weekdays or day in entry.weekdays
    yesterday = 7 if day == 1 else day - 1
    return clock < entry.end and (not entry.weekdays or yesterday in entry.weekdays)


def on_duty(rota: list[RotaEntry], local: datetime) -> Technician | None:
    """The first technician of ``rota`` on duty at ``local`` (a moment in the site's zone), else None."""
    for entry in rota:
        if _on_duty(entry, local):
            return Technician(open_id=entry.open_id, name=entry.name)
    return None


# ------------------------------------------------------------------------------------- SLA deadlines


def _working_window(calendar: WorkCalendar, moment: datetime, sla: SlaSettings) -> tuple[datetime, datetime]:
    """The working period at or after ``moment``: ``(start, end)``, ``start >= moment``."""
    local = calendar.local(moment)
    day = local.date()
    for _ in range(400):
        if calendar.is_workday(day):
            start = calendar.at_local(day, sla.working_start)
            end = calendar.at_local(day, sla.working_end)
            if local < end:
                return max(start, local), end
        day = calendar.next_workday(day, include_today=False)
        local = calendar.at_local(day, time(0, 0))
    raise ValueError("no working day within 400 days")


def sla_deadline(start: datetime, minutes: float, *, urgent: bool, calendar: WorkCalendar,
                 sla: SlaSettings) -> datetime:
    """When ``minutes`` of SLA time have passed from ``start``: around the clock for urgent tickets, else
    counted only within the working hours (``sla.working_start``-``working_end``) of working days."""
    if urgent:
        return start + timedelta(minutes=minutes)
    remaining = timedelta(minutes=minutes)
    moment = start
    while True:
        window_start, window_end = _working_window(calendar, moment, sla)
        if window_start + remaining <= window_end:
            return (window_start + remaining).astimezone(start.tzinfo)
        remaining -= window_end - window_start
        moment = window_end


def sla_between(a: datetime, b: datetime, *, urgent: bool, calendar: WorkCalendar, sla: SlaSettings) -> timedelta:
    """SLA time between ``a`` and ``b`` (negative when ``b`` is before ``a``), as :func:`sla_deadline` counts it."""
    if b < a:
        return -sla_between(b, a, urgent=urgent, calendar=calendar, sla=sla)
    if urgent:
        return b - a
    total, moment = timedelta(0), a
    while moment < b:
        window_start, window_end = _working_window(calendar, moment, sla)
        if window_start >= b:
            break
        total += min(window_end, b) - window_start
        moment = window_end
    return total


# ------------------------------------------------------------------------------------------- presses

TECHNICIAN_OPS = ("accept", "on_the_way", "working", "waiting_parts", "done")
REPORTER_OPS = ("confirm", "reopen", "rate")
# from which statuses each technician step may be taken
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "accept": ("dispatched",),
    "on_the_way": ("accepted",),
    "working": ("accepted", "on_the_way", "waiting_parts"),
    "waiting_parts": ("accepted", "on_the_way", "working"),
    "done": ("accepted", "on_the_way", "working", "waiting_parts"),
    "confirm": ("done",),
    "reopen": ("done",),
    "rate": ("done", "confirmed"),
}
NEXT_STATUS = {"accept": "accepted", "on_the_way": "on_the_way", "working": "working",
               "waiting_parts": "waiting_parts", "done": "done", "confirm": "confirmed", "reopen": "dispatched"}


def check_press(ticket: Ticket, op: str, actor: str, crew: set[str], locale: str) -> str | None:
    """Why ``actor`` may not press ``op`` now (a message in ``locale``), or None when they may.

    ``crew`` is who may take technician steps: the assigned technician, the team lead and the head.
    """
    if op in TECHNICIAN_OPS and actor not in crew:
        return text("not_your_ticket", locale)
    if op in REPORTER_OPS and actor != ticket.reporter_open_id:
        return text("reporter_only", locale)
    if op == "rate" and ticket.rating is not None:
        return text("already_rated", locale)
    if ticket.status not in ALLOWED_FROM.get(op, ()):
        return text("not_now", locale, status=status_word(ticket.status, locale))
    return None


# ------------------------------------------------------------------------------------------- words

STATUS_WORDS = Texts({
    "zh_CN": {"new": "已受理", "dispatched": "已派单", "accepted": "已接单", "on_the_way": "维修人员在路上",
              "working": "维修中", "waiting_parts": "等待配件", "done": "已修复，待确认", "confirmed": "已确认",
              "closed": "已关闭"},
    "en_US": {"new": "received", "dispatched": "dispatched", "accepted": "accepted", "on_the_way": "on the way",
              "working": "being repaired", "waiting_parts": "waiting for parts", "done": "fixed, to confirm",
              "confirmed": "confirmed", "closed": "closed"},
})

TEXTS = Texts({
    "zh_CN": {
        "accept": "已接单：{ticket}", "on_the_way": "已通知报修人：您在路上", "working": "已标记为维修中",
        "waiting_parts": "已标记为等待配件，SLA 计时暂停", "done": "已标记为修复，等待报修人确认",
        "confirm": "感谢确认，工单 {ticket} 已完成", "reopen": "已重新派单，工单 {ticket}",
        "rate": "感谢您的评价", "not_your_ticket": "这不是您的工单", "reporter_only": "只有报修人可以操作",
        "already_rated": "您已评价过", "not_now": "工单当前{status}，无法执行此操作", "already_done": "已处理",
        "closed": "工单已关闭", "bad_score": "请选择 1 到 5 分",
    },
    "en_US": {
        "accept": "Accepted: {ticket}", "on_the_way": "The reporter knows you are on the way",
        "working": "Marked as being repaired", "waiting_parts": "Waiting for parts: the SLA clock is paused",
        "done": "Marked as fixed; waiting for the reporter to confirm",
        "confirm": "Thank you: ticket {ticket} is complete", "reopen": "Dispatched again: ticket {ticket}",
        "rate": "Thank you for your rating", "not_your_ticket": "This is not your ticket",
        "reporter_only": "Only the reporter can do this", "already_rated": "You rated this ticket already",
        "not_now": "The ticket is {status}; this cannot be done now", "already_done": "Already done",
        "closed": "The ticket is closed", "bad_score": "Choose 1 to 5 stars",
    },
})


def text(key: str, locale: str, **values: Any) -> str:
    """A toast in ``locale`` (zh_CN when the locale is not one of ours)."""
    return TEXTS(key, locale, **values)


def status_word(status: str, locale: str) -> str:
    return STATUS_WORDS.get(status, locale)


# ------------------------------------------------------------------------------------ monthly report


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None and b >= a else None


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile (0-1) of ``values`` by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def monthly_figures(rows: list[TicketRow], baseline_seconds: int) -> list[dict[str, Any]]:
    """One entry per (site, category) of ``rows``: counts, p50/p90 of notify/accept/fix seconds, SLA met,
    repeat faults per asset, top locations, and the median report→technician seconds against the patrol
    ``baseline_seconds`` (JSON values only: it goes into a card)."""
    groups: dict[tuple[str, str], list[TicketRow]] = {}
    for row in rows:
        groups.setdefault((row.site, row.category), []).append(row)
    out = []
    for (site, category), items in sorted(groups.items()):
        notify = [s for r in items if (s := _seconds(r.reported_at, r.notified_at)) is not None]
        accept = [s for r in items if (s := _seconds(r.notified_at, r.accepted_at)) is not None]
        fix = [s for r in items if (s := _seconds(r.reported_at, r.done_at)) is not None]
        judged = [r.sla_met for r in items if r.sla_met is not None]
        assets = Counter(r.asset_id for r in items if r.asset_id)
        places = Counter(r.location for r in items if r.location)
        median_notify = statistics.median(notify) if notify else None
        out.append({
            "site": site, "category": category, "tickets": len(items),
            "notify_p50": percentile(notify, 0.5), "notify_p90": percentile(notify, 0.9),
            "accept_p50": percentile(accept, 0.5), "accept_p90": percentile(accept, 0.9),
            "fix_p50": percentile(fix, 0.5), "fix_p90": percentile(fix, 0.9),
            "sla_met": sum(judged), "sla_judged": len(judged),
            "repeats": [{"asset": a, "count": n} for a, n in assets.most_common() if n > 1][:5],
            "top_locations": [{"location": place, "count": n} for place, n in places.most_common(3)],
            "reopened": sum(r.reopened for r in items),
            "median_to_phone": median_notify, "baseline": baseline_seconds,
            "faster": round(baseline_seconds / median_notify) if median_notify else None,
        })
    return out


def asset_in_text(text: str, pattern: str) -> str:
    """The first asset id ``pattern`` finds in a report's text, upper-cased ("" for none or no pattern);
    ticket numbers (``BX-…``) in the text are not assets."""
    if not pattern:
        return ""
    found = re.search(pattern, TICKET_PATTERN.sub(" ", text))
    return found.group(0).upper() if found else ""
