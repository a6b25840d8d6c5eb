"""Recurrence: calendar months with month-end clamping, and cron expressions read in local time.

Cron is evaluated on the organization's wall clock, not on UTC: ``0 9 * * mon-fri`` means 09:00 in
Shanghai for a Shanghai hospital, and stays 09:00 in Berlin across daylight saving changes. Results are
aware UTC datetimes, ready to store or to hand to a Temporal timer, and equal to the times a Temporal
schedule with the same cron fires (the dialect and the search are in :mod:`engine.rules.cron`).
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.rules.cron import CronError, next_fire, parse_cron, validate_cron
from engine.rules.workdays import WorkCalendar, as_zone


def add_months(d: date, n: int) -> date:
    """``d`` moved by ``n`` calendar months (``n`` may be negative), clamped to the end of the month.

    Jan 31 + 1 month is Feb 28 (Feb 29 in a leap year); Mar 31 - 1 month is Feb 28/29.
    """
    index = d.year * 12 + (d.month - 1) + n
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise ValueError(f"{d.isoformat()} + {n} months is out of the supported date range")
    last = _stdlib_calendar.monthrange(year, month)[1]
    return date(year, month, min(d.day, last))


def next_due(last: date, interval_months: int) -> date:
    """When the next cycle is due, ``interval_months`` after ``last`` (e.g. the last calibration).

    Chaining clamps drifts (Jan 31 -> Feb 28 -> Mar 28): to keep a month-end schedule, compute each cycle
    from the original anchor instead, ``add_months(anchor, k * interval_months)``.
    """
    if interval_months < 1:
        raise ValueError(f"interval_months must be at least 1, got {interval_months}")
    return add_months(last, interval_months)


def first_workday_of_month(year: int, month: int, calendar: WorkCalendar) -> date:
    """The first workday of ``year``-``month`` in ``calendar`` (e.g. 2026-10-09 after National Day)."""
    return calendar.next_workday(date(year, month, 1))


@dataclass(frozen=True)
class ReportMonth:
    """The month a monthly report covers: ``month`` as ``YYYY-MM``, its ``first`` and ``last`` days, and its
    bounds as aware moments in the calendar's zone, ``since`` (the 1st, 00:00) inclusive and ``until`` (the
    next month's 1st, 00:00) exclusive."""

    month: str
    first: date
    last: date
    since: datetime
    until: datetime


def report_month(now: datetime, calendar: WorkCalendar) -> ReportMonth | None:
    """Last month, when ``now`` (aware) falls on this month's first working day in ``calendar``'s zone;
    ``None`` on every other day.

    A monthly report's schedule fires on days 1-12 (a cron cannot know holidays: the first working day
    after National Day is the 8th) and its run sends only when this says so, once, on the right day.
    """
    today = calendar.local(now).date()
    if today != first_workday_of_month(today.year, today.month, calendar):
        return None
    last = today.replace(day=1) - timedelta(days=1)
    first = last.replace(day=1)
    return ReportMonth(month=f"{first:%Y-%m}", first=first, last=last, since=calendar.at_local(first, time.min),
                       until=calendar.at_local(today.replace(day=1), time.min))


def cron_next(expr: str, after: datetime, zone: ZoneInfo | str) -> datetime:
    """The first moment strictly after ``after`` that ``expr`` fires on the wall clock of ``zone``.

    ``zone`` is a ``ZoneInfo`` or its IANA name. Returns an aware UTC datetime: the time Temporal's
    schedule with this cron and zone fires (see :mod:`engine.rules.cron`). Around daylight saving
    changes: a wall time skipped by the spring change (02:30 in Berlin) does not fire that day; in the
    hour repeated in autumn it fires as the server does (once in Berlin, at 02:30 CET, for ``30 2 * * *``).
    Raises ``CronError`` (a ``ValueError``) for an expression outside the dialect.
    """
    cron = parse_cron(expr)
    if not isinstance(after, datetime) or after.utcoffset() is None:
        raise ValueError(f"after must be a timezone-aware datetime, got {after!r}")
    zone = as_zone(zone)
    found = next_fire(cron, after, zone)
    if found is None:
        raise ValueError(f"cron expression {expr!r} has no match after {after.isoformat()} in {zone.key}")
    return found


def cron_iter(expr: str, after: datetime, zone: ZoneInfo | str, count: int) -> Iterator[datetime]:
    """The next ``count`` matches of ``expr`` after ``after`` (see :func:`cron_next`), strictly increasing.

    The expression and arguments are checked at once, before the first item is taken.
    """
    parse_cron(expr)
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if not isinstance(after, datetime) or after.utcoffset() is None:
        raise ValueError(f"after must be a timezone-aware datetime, got {after!r}")
    return _cron_moments(expr, after, as_zone(zone), count)


def _cron_moments(expr: str, after: datetime, zone: ZoneInfo, count: int) -> Iterator[datetime]:
    moment = after
    for _ in range(count):
        moment = cron_next(expr, moment, zone)
        yield moment


__all__ = [
    "CronError",
    "add_months",
    "cron_iter",
    "cron_next",
    "first_workday_of_month",
    "next_due",
    "validate_cron",
]
