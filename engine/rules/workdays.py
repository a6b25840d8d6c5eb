"""Working days and working hours of one organization, pure and deterministic.

How a day is decided, first match wins:

1. the organization's own ``workdays`` (extra working days, e.g. an audit Saturday) and ``holidays``
   (extra days off, e.g. the hospital's anniversary) from config;
2. with ``use_china_calendar``: mainland China's public holidays and make-up workdays (调休), from the
   ``chinese_calendar`` package, which is maintained upstream as the State Council publishes each year;
3. otherwise the ``weekend`` weekdays are off and every other day is a workday.

**Fallback.** ``chinese_calendar`` only knows the years it ships data for (2004-2026 in 1.11.0). For any
other year, step 2 uses a *provisional* calendar instead: the statutory public holidays that the
``holidays`` package computes for China (the fixed dates and the lunar festivals, with the extra days of
the long breaks), on top of the organization's weekend. It cannot know the make-up workdays (调休) nor
the exact breaks, which the State Council publishes each year (usually in November), so such a day's
status is only an estimate: :meth:`WorkCalendar.provisional` tells which days, :func:`uncovered_ranges`
which dates ahead, and rules say "provisional" in their reasons. Upgrade ``chinese-calendar`` or list the
dates in config ``holidays`` / ``workdays`` to make them official.

Nothing here reads the wall clock or does I/O once imported (``holidays`` reads its name translations at
import), so it runs inside Temporal workflows. The answers depend on the installed data: upgrading
``chinese-calendar`` or ``holidays`` can move a day, which a workflow sees the next time it decides.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays as holiday_rules

# No real calendar has more than a few weeks off in a row; a longer search means a configuration that
# leaves no workday at all, which we report instead of looping forever.
_MAX_SEARCH_DAYS = 3660


@lru_cache(maxsize=64)
def _china_covers(year: int) -> bool:
    try:
        chinese_calendar.get_holiday_detail(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# One ``holidays`` calendar built at import, outside any workflow sandbox: building one reads its
# translations with gettext, which the sandbox forbids (``locale.normalize``); asking it about a new year
# only computes dates. English names, whatever the process's locale, so reasons read the same everywhere.
_PROVISIONAL_CHINA = holiday_rules.China(language="en_US")
_PROVISIONAL_LOCK = threading.Lock()  # the worker runs workflow tasks in threads; the calendar grows per year


@lru_cache(maxsize=16)
def _provisional_days_off(year: int) -> dict[date, str]:
    """China's statutory days off in ``year`` as computed by the ``holidays`` package, with English names.

    Source: ``holidays.China`` (python-holidays), which follows the State Council's rules for public
    holidays and the extra days of the long breaks, but not the yearly make-up workdays (调休).
    """
    with _PROVISIONAL_LOCK:
        _PROVISIONAL_CHINA.get(date(year, 1, 1))  # fills in the whole year
        return {day: name for day, name in _PROVISIONAL_CHINA.items() if day.year == year}


def as_zone(zone: ZoneInfo | str) -> ZoneInfo:
    """A real ``ZoneInfo`` for ``zone`` (a ``ZoneInfo`` or an IANA key such as ``"Asia/Shanghai"``).

    Inside Temporal's workflow sandbox, ``ZoneInfo(...)`` called from workflow code returns a restricted
    proxy that C code such as ``datetime.combine(..., tzinfo=...)`` rejects (``TypeError: tzinfo argument
    must be None or of a tzinfo subclass``); rebuilding it from its key here, in a passed-through module,
    gives the real object. ``ZoneInfo`` caches by key, so this costs nothing.
    """
    if isinstance(zone, str):
        return ZoneInfo(zone)
    if type(zone) is ZoneInfo:
        return zone
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return ZoneInfo(key)
    raise TypeError(f"expected a zoneinfo.ZoneInfo or an IANA zone name, got {zone!r}")


def china_calendar_covers(year: int) -> bool:
    """True when the installed ``chinese_calendar`` has holiday data for ``year``."""
    return _china_covers(year)


def uncovered_ranges(today: date, months: int = 12) -> list[tuple[date, date]]:
    """The dates of the ``months`` months from ``today`` (``today`` included, the same day ``months``
    later excluded) whose year ``chinese_calendar`` does not cover: ``[(first, last), ...]``, inclusive,
    one range per uncovered year, in order; empty when the official data covers them all.

    Pure: pass ``today`` explicitly (the organization's local date). E.g. from ``date(2026, 11, 30)`` with
    chinese-calendar 1.11: ``[(date(2027, 1, 1), date(2027, 11, 29))]``.
    """
    if months < 1:
        return []
    years, month = divmod(today.month - 1 + months, 12)
    year = today.year + years
    end = date(year, month + 1, min(today.day, _stdlib_calendar.monthrange(year, month + 1)[1]))
    last = end - timedelta(days=1)
    return [
        (max(today, date(y, 1, 1)), min(last, date(y, 12, 31)))
        for y in range(today.year, last.year + 1)
        if not _china_covers(y)
    ]


def describe_ranges(ranges: Iterable[tuple[date, date]]) -> str:
    """``"2027-01-01..2027-11-30"`` (ranges joined by ``", "``), for log lines and config check output."""
    return ", ".join(f"{first.isoformat()}..{last.isoformat()}" for first, last in ranges)


class WorkCalendar:
    """Which days are workdays for one organization, and what "local 09:00" means in its zone.

    ``zone`` is a ``ZoneInfo`` or its IANA name. ``weekend`` uses Python's weekday numbers (Monday 0 ...
    Sunday 6). A day listed both in ``holidays`` and in ``workdays`` is a configuration mistake and raises
    ``ValueError``.
    """

    def __init__(
        self,
        zone: ZoneInfo | str,
        holidays: Iterable[date] = (),
        workdays: Iterable[date] = (),
        weekend: tuple[int, ...] = (5, 6),
        use_china_calendar: bool = True,
    ) -> None:
        self.zone: ZoneInfo = as_zone(zone)
        self.holidays: frozenset[date] = frozenset(holidays)
        self.workdays: frozenset[date] = frozenset(workdays)
        self.weekend: tuple[int, ...] = tuple(sorted(set(weekend)))
        self.use_china_calendar = use_china_calendar
        both = self.holidays & self.workdays
        if both:
            listed = ", ".join(d.isoformat() for d in sorted(both))
            raise ValueError(f"dates listed both as holidays and as workdays: {listed}")
        if any(not 0 <= day <= 6 for day in self.weekend):
            raise ValueError(f"weekend days are weekday numbers 0 (Monday) to 6 (Sunday), got {weekend!r}")
        if len(self.weekend) == 7:
            raise ValueError("weekend cannot be every day of the week")

    def __repr__(self) -> str:
        return (
            f"WorkCalendar(zone={self.zone.key!r}, holidays={len(self.holidays)}, workdays={len(self.workdays)}, "
            f"weekend={self.weekend!r}, use_china_calendar={self.use_china_calendar!r})"
        )

    # ------------------------------------------------------------------------------------------ days

    def covered(self, year: int) -> bool:
        """True when official public holidays are known for ``year`` (always True without the China calendar).

        False means :meth:`is_workday` uses the provisional calendar for that year (module docstring).
        """
        return not self.use_china_calendar or _china_covers(year)

    def provisional(self, d: date) -> bool:
        """True when ``d``'s status comes from the provisional calendar: the China calendar is on, its
        official data does not cover ``d``'s year, and config's ``holidays`` / ``workdays`` do not list ``d``.
        """
        return (
            self.use_china_calendar
            and d not in self.workdays
            and d not in self.holidays
            and not _china_covers(d.year)
        )

    def provisional_note(self, *days: date) -> str | None:
        """A short English note for rule reasons when any of ``days`` is :meth:`provisional`, else None.

        E.g. ``"provisional calendar for 2027: no official holiday data, make-up workdays unknown"``.
        """
        years = sorted({d.year for d in days if self.provisional(d)})
        if not years:
            return None
        listed = ", ".join(str(year) for year in years)
        return f"provisional calendar for {listed}: no official holiday data, make-up workdays unknown"

    def mark_provisional(self, reason: str, *days: date) -> str:
        """``reason`` with ``" (<provisional note>)"`` appended when any of ``days`` is :meth:`provisional`.

        For rules whose reason rests on working days: pass the days the decision was computed from
        (e.g. the start and the end of an SLA). Reasons go to logs and audit rows, never to cards.
        """
        note = self.provisional_note(*days)
        return f"{reason} ({note})" if note else reason

    def holiday_name(self, d: date) -> str | None:
        """The public holiday or make-up workday ``d`` belongs to (e.g. ``"National Day"``), if known.

        For a :meth:`provisional` day, the name the ``holidays`` package gives (e.g. ``"Chinese New Year
        (Spring Festival)"``); None for a day the config lists.
        """
        if not self.use_china_calendar:
            return None
        if self.provisional(d):
            return _provisional_days_off(d.year).get(d)
        if not _china_covers(d.year):
            return None
        return chinese_calendar.get_holiday_detail(d)[1]

    def is_workday(self, d: date) -> bool:
        """True when ``d`` is a working day (see the module docstring for the order of the rules)."""
        if isinstance(d, datetime):
            raise TypeError("is_workday takes a date; convert a moment with .astimezone(zone).date() first")
        if d in self.workdays:
            return True
        if d in self.holidays:
            return False
        if self.use_china_calendar and _china_covers(d.year):
            off, name = chinese_calendar.get_holiday_detail(d)
            # A named day is a public holiday (off) or a make-up workday (on); an unnamed one is an ordinary
            # day, which the org's own weekend decides (chinese_calendar assumes Saturday and Sunday).
            if name is not None:
                return not off
        elif self.use_china_calendar and d in _provisional_days_off(d.year):
            return False  # provisional: a statutory holiday, no make-up workday known
        return d.weekday() not in self.weekend

    def next_workday(self, d: date, include_today: bool = True) -> date:
        """The first workday on or after ``d`` (strictly after it when ``include_today`` is False)."""
        day = d if include_today else d + timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_workday(day):
                return day
            day += timedelta(days=1)
        raise ValueError(f"no workday within {_MAX_SEARCH_DAYS} days after {d.isoformat()}")

    def previous_workday(self, d: date, include_today: bool = True) -> date:
        """The last workday on or before ``d`` (strictly before it when ``include_today`` is False)."""
        day = d if include_today else d - timedelta(days=1)
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_workday(day):
                return day
            day -= timedelta(days=1)
        raise ValueError(f"no workday within {_MAX_SEARCH_DAYS} days before {d.isoformat()}")

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th workday after ``d`` (before it when ``n`` is negative); ``d`` itself is not counted.

        ``n == 0`` returns ``d`` unchanged, workday or not. From a Saturday, ``+1`` is the next workday.
        """
        step = timedelta(days=1 if n > 0 else -1)
        day = d
        for _ in range(abs(n)):
            day = self.next_workday(day + step) if n > 0 else self.previous_workday(day + step)
        return day

    def workdays_between(self, a: date, b: date) -> int:
        """The number of workdays after ``a`` up to and including ``b``; negative when ``b`` is before ``a``.

        So ``workdays_between(a, add_workdays(a, n)) == n`` for ``n >= 0``: "how many working days from
        ``a`` until ``b``", the count an SLA of N workdays uses.
        """
        if b < a:
            return -self.workdays_between(b, a)
        return sum(1 for i in range(1, (b - a).days + 1) if self.is_workday(a + timedelta(days=i)))

    # --------------------------------------------------------------------------------------- moments

    def at_local(self, d: date, t: time) -> datetime:
        """``d`` at wall-clock time ``t`` in the organization's zone (aware, in that zone).

        A time that does not exist on that day (skipped by a DST change) comes out shifted forward by the
        gap, as ``zoneinfo`` does for ``fold=0``.
        """
        if t.tzinfo is not None:
            raise ValueError("at_local takes a naive wall-clock time; the calendar's zone gives its meaning")
        return datetime.combine(d, t, tzinfo=self.zone)

    def local(self, moment: datetime) -> datetime:
        """``moment`` seen in the organization's zone (``moment`` must be aware)."""
        _require_aware(moment, "moment")
        return moment.astimezone(self.zone)

    def next_working_moment(
        self,
        dt: datetime,
        morning: time = time(9, 0),
        quiet_start: time | None = None,
        quiet_end: time | None = None,
    ) -> datetime:
        """The first moment at or after ``dt`` that falls in working hours, returned in UTC.

        Working hours are from ``morning`` on a workday. Quiet hours start at ``quiet_start`` (local):

        * without ``quiet_end``, or when ``quiet_end <= quiet_start`` (quiet over midnight, e.g. 22:00 to
          07:00), a moment at or after ``quiet_start`` moves to ``morning`` of the next workday;
        * with ``quiet_start < quiet_end`` (a quiet window inside the day, e.g. 12:00 to 13:30), a moment
          in the window moves to ``quiet_end`` that day;
        * a moment before ``morning`` (or before ``quiet_end`` of an overnight window) moves later that day.

        A moment that is not on a workday moves to ``morning`` of the next workday. ``dt`` already in
        working hours is returned unchanged (as UTC).
        """
        _require_aware(dt, "dt")
        if quiet_end is not None and quiet_start is None:
            raise ValueError("quiet_end needs quiet_start")
        local = dt.astimezone(self.zone)
        day, clock = local.date(), local.time().replace(tzinfo=None)
        moved = False
        # Each pass moves the moment forward; a few passes settle any sane configuration, so a long run of
        # passes means the quiet hours swallow the whole working day.
        for _ in range(16):
            if not self.is_workday(day):
                day, clock, moved = self.next_workday(day), morning, True
            elif clock < morning:
                clock, moved = morning, True
            elif _is_quiet(clock, quiet_start, quiet_end):
                if quiet_end is not None and clock < quiet_end:
                    clock = quiet_end  # the quiet window ends later today
                else:
                    day, clock = self.next_workday(day, include_today=False), morning
                moved = True
            else:
                break
        else:
            raise ValueError(f"no working moment: quiet hours {quiet_start}-{quiet_end} leave no time after {morning}")
        result = self.at_local(day, clock) if moved else local
        return result.astimezone(UTC)


def _is_quiet(clock: time, start: time | None, end: time | None) -> bool:
    if start is None:
        return False
    if end is None:
        return clock >= start
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # over midnight


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
