"""Recurrence: calendar months with month-end clamping, and cron expressions read in local time.

Cron is evaluated on the organization's wall clock, not on UTC: ``0 9 * * mon-fri`` means 09:00 in
Shanghai for a Shanghai hospital, and stays 09:00 in Berlin across daylight saving changes. Results are
aware UTC datetimes, ready to store or to hand to a Temporal timer.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, CroniterError, croniter

from engine.rules.workdays import WorkCalendar, as_zone

_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_FIELDS = "minute hour day-of-month month day-of-week"
# A fixed, arbitrary reference for the "can it ever match" check, so validation is deterministic.
_PROBE = datetime(2000, 1, 1)
# croniter's random (R) and hashed (H) tokens, e.g. "R", "H(0-29)/5".
_RANDOM_OR_HASHED = re.compile(r"^[hr](\(\d+-\d+\))?(/\d+)?$", re.IGNORECASE)


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


def validate_cron(expr: str) -> str:
    """Check a 5-field cron expression (or an alias such as ``@daily``) and return it stripped.

    Raises ``ValueError`` that says what is wrong. Refused on purpose: seconds or year fields, croniter's
    random ``R`` (a rule must be deterministic) and hashed ``H`` fields, and expressions that can never
    match (``0 9 31 2 *``).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"invalid cron expression {expr!r}: it is empty")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise ValueError(f"invalid cron expression {expr!r}: known aliases are {', '.join(sorted(_ALIASES))}")
        return text.lower()
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"invalid cron expression {expr!r}: expected 5 fields ({_FIELDS}), found {len(fields)}")
    for name, value in zip(_FIELDS.split(" "), fields, strict=True):
        if any(_RANDOM_OR_HASHED.match(token) for token in value.split(",")):
            raise ValueError(
                f"invalid cron expression {expr!r}: {name} field {value!r} is random or hashed; rules must be "
                "deterministic, write the value out"
            )
    if not croniter.is_valid(text):
        raise ValueError(f"invalid cron expression {expr!r}: a field is out of range or malformed ({_FIELDS})")
    try:
        croniter(text, _PROBE).get_next(datetime)
    except CroniterBadDateError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: it never matches a real date") from exc
    except CroniterError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from exc
    return text


def cron_next(expr: str, after: datetime, zone: ZoneInfo | str) -> datetime:
    """The first moment strictly after ``after`` that matches ``expr`` on the wall clock of ``zone``.

    ``zone`` is a ``ZoneInfo`` or its IANA name. Returns an aware UTC datetime. Around daylight saving
    changes: a wall time skipped by the spring change (02:30 in Berlin) fires at the same offset past the
    change (03:30 local); a wall time that happens twice in autumn fires once, at its first occurrence.
    """
    text = validate_cron(expr)
    if not isinstance(after, datetime) or after.utcoffset() is None:
        raise ValueError(f"after must be a timezone-aware datetime, got {after!r}")
    zone = as_zone(zone)
    # Iterate on naive wall-clock times (no DST arithmetic inside croniter), then give each candidate the
    # zone; a candidate can map to an instant not after ``after`` (in the repeated autumn hour), so go on.
    wall = after.astimezone(zone).replace(tzinfo=None)
    it = croniter(text, wall)
    for _ in range(10):
        try:
            candidate_wall = it.get_next(datetime)
        except CroniterBadDateError as exc:
            raise ValueError(f"cron expression {expr!r} has no match after {after.isoformat()}") from exc
        candidate = candidate_wall.replace(tzinfo=zone).astimezone(UTC)
        if candidate > after:
            return candidate
    # Only reachable with a zone that repeats more than a few hours at once; refuse rather than loop.
    raise ValueError(f"cron expression {expr!r}: no match after {after.isoformat()} in {zone.key}")


def cron_iter(expr: str, after: datetime, zone: ZoneInfo | str, count: int) -> Iterator[datetime]:
    """The next ``count`` matches of ``expr`` after ``after`` (see :func:`cron_next`), strictly increasing.

    The expression and arguments are checked at once, before the first item is taken.
    """
    validate_cron(expr)
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
    "add_months",
    "cron_iter",
    "cron_next",
    "first_workday_of_month",
    "next_due",
    "validate_cron",
]
