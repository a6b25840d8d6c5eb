"""The engine's one cron dialect: what a Temporal schedule runs exactly as the rules compute it.

Temporal's schedules do not read cron like classic cron (temporalio/temporal #4288): a day-of-month and
a day-of-week are both required (AND, not OR), ``#`` starts a comment (``1#1`` fires every Monday), and
``L``, ``W`` and ``?`` are refused by the server. The dialect here keeps only what means the same
everywhere, and :func:`next_fire` follows the server's own search (``compiledCalendar.next`` in
``service/worker/scheduler/calendar.go``), daylight saving changes included:

- a wall time that the spring change skips does not fire that day (02:30 in Berlin on the last Sunday
  of March);
- in the hour repeated in autumn, a time fires once or twice depending on the zone and the expression,
  because the server resolves a repeated wall time the way Go's ``time.Date`` does (the later of the two
  east of UTC, the earlier west of it) and then revisits the repeated hour when it walks hour by hour:
  ``30 2 * * *`` fires once in Berlin (02:30 CET), ``30 1 * * *`` twice in New York (01:30 EDT and
  01:30 EST);
- a search that starts inside the second pass of the repeated hour gives the rest of that day one hour
  late (from 02:10 CET, ``30 2 * * *`` next fires at 03:30 CET), as the server's does.

Accepted: five fields (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or jan-dec, day-of-week
0-7 or sun-sat, 0 and 7 both Sunday), each ``*`` or a comma list of ``a``, ``a-b``, ``a-b/n``, ``*/n``,
``a/n`` (from a to the field's end); at most one of day-of-month and day-of-week other than ``*``; the
aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

ALIASES: dict[str, str] = {  # the server's own expansions (handlePredefinedCronStrings)
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # longest month lengths (leap February)
# The server gives up searching after this year (maxCalendarYear).
_MAX_YEAR = 2100
_HOUR = timedelta(hours=1)
_TERM = re.compile(r"^(?:\*|(?P<start>[0-9a-z]+)(?:-(?P<end>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?$")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # the number of the first name (jan = 1, sun = 0)


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _WEEKDAYS, 0),
)
_FIELD_LIST = " ".join(field.name for field in _FIELDS)


class CronError(ValueError):
    """A cron expression outside the dialect: ``found`` is the offending part, ``hint`` how to fix it."""

    def __init__(self, expr: str, found: str, problem: str, hint: str):
        self.expr = expr
        self.found = found
        self.problem = problem
        self.hint = hint
        super().__init__(f"invalid cron expression {expr!r}: {problem}; {hint}")


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the allowed values of each field (day-of-week 0-6, Sunday 0)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]


def _unsupported(expr: str, field: _Field, value: str) -> CronError | None:
    """A clear refusal for the classic and Quartz extensions Temporal reads differently or not at all."""
    upper = value.upper()
    if "#" in value:
        return CronError(expr, value, f"{field.name} {value!r}: '#' (nth weekday) is read as a comment by "
                         "Temporal, 1#1 would fire every Monday",
                         "use the weekday alone, e.g. mon, and let the workflow go on only when the day of "
                         "the month is 1-7 for the first, 8-14 for the second, ...")
    if field.name == "day-of-month" and "L" in upper:
        return CronError(expr, value, f"day-of-month {value!r}: 'L' (last day) is refused by Temporal",
                         "use 28-31 and let the workflow go on only on the month's last day")
    if field.name == "day-of-week" and upper.endswith("L") and upper != "L":
        return CronError(expr, value, f"day-of-week {value!r}: 'L' (last weekday of the month) is refused by "
                         "Temporal", "use the weekday alone, e.g. fri, and let the workflow go on only in "
                         "the month's last seven days")
    if field.name == "day-of-month" and "W" in upper:
        return CronError(expr, value, f"day-of-month {value!r}: 'W' (nearest workday) is refused by Temporal",
                         "use the day itself, or a few days such as 1-3 and let the workflow go on only on "
                         "the workday it wants, see engine.rules.first_workday_of_month")
    if "?" in value:
        return CronError(expr, value, f"{field.name} '?' is Quartz syntax, refused by Temporal",
                         "write * instead")
    if re.search(r"(^|[,(/-])[HR]($|[(/,])", upper):
        return CronError(expr, value, f"{field.name} {value!r} is random or hashed; rules must be "
                         "deterministic", "write the value out")
    return None


def _number(expr: str, field: _Field, value: str, token: str) -> int:
    if token.isdigit():
        number = int(token)
    elif token.lower() in field.names:
        number = field.names.index(token.lower()) + field.name_base
    else:
        known = f" or {field.names[0]}-{field.names[-1]}" if field.names else ""
        raise CronError(expr, value, f"{field.name} {value!r} is out of range or malformed",
                        f"use {field.low}-{field.high}{known}")
    if not field.low <= number <= field.high:
        raise CronError(expr, value, f"{field.name} {value!r} is out of range",
                        f"use {field.low}-{field.high}")
    return number


def _values(expr: str, field: _Field, value: str) -> frozenset[int]:
    refusal = _unsupported(expr, field, value)
    if refusal is not None:
        raise refusal
    values: set[int] = set()
    for term in value.split(","):
        match = _TERM.match(term.lower())
        if match is None:
            raise CronError(expr, value, f"{field.name} {value!r} is malformed",
                            "write *, a, a-b, a-b/n, */n or a/n, separated by commas")
        step = int(match["step"]) if match["step"] else 1
        if step < 1:
            raise CronError(expr, value, f"{field.name} {value!r} has a step of 0", "use a step of 1 or more")
        if match["start"] is None:
            start, end = field.low, field.high
        else:
            start = _number(expr, field, value, match["start"])
            # "a/n" runs from a to the field's end, as on the server
            end = _number(expr, field, value, match["end"]) if match["end"] else (
                field.high if match["step"] else start)
            if end < start:
                raise CronError(expr, value, f"{field.name} {value!r} runs backwards",
                                "write the range from low to high, or as two parts (e.g. fri,sat,sun)")
        values.update(range(start, end + 1, step))
    if field.name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def parse_cron(expr: str) -> Cron:
    """Parse ``expr`` (5 fields or an alias) into a :class:`Cron`; raise :class:`CronError` if refused.

    Refused on purpose, each with a fix in the message: seconds or year fields, ``L``, ``W``, ``#``, ``?``,
    croniter's random ``R`` and hashed ``H``, ``@every`` and ``@reboot``, a time-zone prefix, both
    day-of-month and day-of-week restricted, ranges that run backwards, and expressions that never match
    a real date (``0 9 31 2 *``).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise CronError(str(expr), repr(expr), "it is empty", "write five fields, e.g. '0 9 * * mon'")
    text = " ".join(expr.split())
    if text.startswith("@"):
        alias = text.lower()
        if alias not in ALIASES:
            raise CronError(expr, text, "unknown alias", f"use one of {', '.join(ALIASES)} or five fields")
        fields = ALIASES[alias].split(" ")
        text = alias
    else:
        if text.upper().startswith(("TZ=", "CRON_TZ=")):
            raise CronError(expr, text.split(" ")[0], "a time-zone prefix",
                            "remove it: the organization's timezone applies")
        fields = text.split(" ")
        if len(fields) != 5:
            raise CronError(expr, text, f"expected 5 fields ({_FIELD_LIST}), found {len(fields)}",
                            "write minute hour day-of-month month day-of-week, e.g. '0 9 * * mon'")
    minutes, hours, days, months, weekdays = (
        _values(expr, field, value) for field, value in zip(_FIELDS, fields, strict=True))
    if fields[2] != "*" and fields[4] != "*":
        raise CronError(expr, f"{fields[2]} {fields[4]}",
                        "both day-of-month and day-of-week are restricted: classic cron fires on either, "
                        "Temporal only when both match",
                        "restrict one of them, write * in the other and let the workflow check it; "
                        "or declare two schedules")
    if not any(day <= _MONTH_DAYS[month - 1] for month in months for day in days):
        raise CronError(expr, text, "it never matches a real date",
                        "pick a day-of-month that exists in the chosen months")
    return Cron(text, minutes, hours, days, months, weekdays)


def validate_cron(expr: str) -> str:
    """Check ``expr`` against the dialect (see :func:`parse_cron`) and return it with single spaces.

    Aliases come back in lower case (the server expands only lower-case ones).
    """
    return parse_cron(expr).text


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _go_date(y: int, mo: int, d: int, h: int, mi: int, s: int, zone: ZoneInfo) -> datetime:
    """The instant Go's ``time.Date`` gives a wall time: overflowing fields carry over; a wall time that
    does not exist or exists twice gets the offset in force at (wall time read as UTC) minus that offset.
    """
    as_utc = datetime(y, mo, 1, tzinfo=UTC) + timedelta(days=d - 1, hours=h, minutes=mi, seconds=s)
    return as_utc - _offset(as_utc - _offset(as_utc, zone), zone)


def _days_in_month(month: int, year: int) -> int:
    if month > 12:  # asked once a month carried over, with day 1: the year's carry comes next
        return 31
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return _MONTH_DAYS[month - 1]


def _weekday(instant: datetime, zone: ZoneInfo) -> int:
    return (instant.astimezone(zone).weekday() + 1) % 7  # Sunday 0, as in Go


def next_fire(cron: Cron, after: datetime, zone: ZoneInfo) -> datetime | None:
    """The first time after ``after`` the server fires ``cron`` in ``zone`` (aware UTC, whole seconds),
    or ``None`` if there is none before the year 2101.

    A port of the server's search, loop for loop, so that daylight saving changes come out the same;
    the seconds field is always 0 here.
    """
    local = after.astimezone(zone)
    y, mo, d, h, m, s = local.year, local.month, local.day, local.hour, local.minute, local.second
    no_offset = timedelta(0)
    # inside the second pass of a repeated hour, results are shifted one hour later
    dst_offset = _HOUR if (after - _HOUR).astimezone(zone).hour == h else no_offset
    s += 1
    while True:  # each `continue` is the server's `continue Outer`
        if s >= 60:
            m, s = m + 1, 0
        if m >= 60:
            before = _go_date(y, mo, d, h, 0, 0, zone)
            h, m = h + 1, 0
            # two real hours between consecutive wall hours: the repeated hour was jumped, walk it again
            if dst_offset == no_offset and _go_date(y, mo, d, h, 0, 0, zone) - before > _HOUR:
                h, dst_offset = h - 1, _HOUR
            else:
                dst_offset = no_offset
        if h >= 24:
            d, h = d + 1, 0
        if d > _days_in_month(mo, y):
            mo, d = mo + 1, 1
        if mo > 12:
            y, mo = y + 1, 1
        if y > _MAX_YEAR:
            return None
        while mo <= 12 and mo not in cron.months:
            mo, d, h, m, s, dst_offset = mo + 1, 1, 0, 0, 0, no_offset
        if mo > 12:
            continue
        days = _days_in_month(mo, y)
        while d <= days and (d not in cron.days
                             or _weekday(_go_date(y, mo, d, h, m, s, zone), zone) not in cron.weekdays):
            d, h, m, s, dst_offset = d + 1, 0, 0, 0, no_offset
        if d > days:
            continue
        while h < 24 and h not in cron.hours:
            h, m, s, dst_offset = h + 1, 0, 0, no_offset
        if h >= 24:
            continue
        while m < 60 and m not in cron.minutes:
            m, s = m + 1, 0
        if m >= 60:
            continue
        if s != 0:  # the seconds field is 0: go on to the next minute
            s = 60
            continue
        found = _go_date(y, mo, d, h, m, 0, zone)
        if found.astimezone(zone).hour != h:  # a wall time the spring change skipped
            h, m, s = h + 1, 0, 0
            continue
        return found + dst_offset
