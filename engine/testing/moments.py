"""Calendar situations a scenario test starts in, instead of whatever moment the suite happens to run at.

The time-skipping test server's clock starts at the real current time and only moves forward
(TEMPORAL_NOTES.md), so a test cannot choose a date; it can choose a *situation*, "the next first working
day of a month, 08:55 in the organization's zone", and skip the clock to the next moment in it:

```python
from engine.testing import moments

async with scenario_harness(PLUGINS) as env:
    start = await env.begin_at(moments.first_workday_of_month(time(8, 55)))
    # every expectation derives from ``start`` (or from what the workflow recorded), never from a wall clock
```

Each situation is a pure function of "after" and the organization's :class:`WorkCalendar`, so it is tested
on its own and gives the same moment for the same clock. A situation the calendar cannot offer within
``HORIZON_DAYS`` (a make-up working Saturday in a year the official calendar has no data for) raises
:class:`SituationNotFound`; give the organization a config ``workdays`` entry to make one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from engine.rules.workdays import WorkCalendar

#: How far ahead a situation is looked for (days).
HORIZON_DAYS = 800


class SituationNotFound(LookupError):
    """No moment of the situation within :data:`HORIZON_DAYS` after the given moment."""


@dataclass(frozen=True)
class Situation:
    """A named kind of moment; :meth:`find` gives the first one strictly after ``after``."""

    name: str
    _find: Callable[[datetime, WorkCalendar], datetime | None]

    def find(self, after: datetime, calendar: WorkCalendar) -> datetime:
        """The first moment of this situation after ``after`` (aware), in the calendar's zone.

        Raises :class:`SituationNotFound` when there is none within :data:`HORIZON_DAYS`.
        """
        found = self._find(calendar.local(after), calendar)
        if found is None:
            raise SituationNotFound(f"no {self.name} within {HORIZON_DAYS} days after {after.isoformat()}")
        return calendar.local(found)

    def __str__(self) -> str:
        return self.name


def _days(after: datetime) -> list[date]:
    first = after.date()
    return [first + timedelta(days=i) for i in range(HORIZON_DAYS)]


def _first_day(name: str, clock: time, accept: Callable[[date, WorkCalendar], bool]) -> Situation:
    """The first day (from ``after``'s own day) that ``accept`` takes, at local ``clock``, after ``after``."""

    def find(after: datetime, calendar: WorkCalendar) -> datetime | None:
        for day in _days(after):
            moment = calendar.at_local(day, clock)
            if moment > after and accept(day, calendar):
                return moment
        return None

    return Situation(f"{name} at {clock:%H:%M}", find)


def at(moment: datetime) -> Situation:
    """Exactly ``moment`` (aware), e.g. a moment named in a bug report; it must lie ahead of the clock."""
    if moment.utcoffset() is None:
        raise ValueError("at() takes an aware moment")

    def find(after: datetime, calendar: WorkCalendar) -> datetime | None:
        if moment <= after:
            raise SituationNotFound(f"{moment.isoformat()} is already past ({after.isoformat()})")
        return moment

    return Situation(f"at {moment.isoformat()}", find)


def next_time(clock: time) -> Situation:
    """The next local ``clock`` on any day (e.g. 03:00, the quiet hour before a day shift)."""
    return _first_day("the next", clock, lambda day, cal: True)


def workday(clock: time = time(9, 0)) -> Situation:
    """The next working day at ``clock``."""
    return _first_day("a working day", clock, lambda day, cal: cal.is_workday(day))


def first_workday_of_month(clock: time = time(8, 55)) -> Situation:
    """The next first working day of a month (after New Year's Day, National Day ... it is not the 1st)."""

    def accept(day: date, cal: WorkCalendar) -> bool:
        return cal.is_workday(day) and cal.next_workday(day.replace(day=1)) == day

    return _first_day("the first working day of a month", clock, accept)


def first_workday_after_holiday(clock: time = time(8, 55)) -> Situation:
    """The next first working day of a month that begins with a public holiday on a weekday (New Year's
    Day, National Day: 2026-10-08, 2027-01-04), not merely a weekend."""

    def accept(day: date, cal: WorkCalendar) -> bool:
        if not (cal.is_workday(day) and cal.next_workday(day.replace(day=1)) == day):
            return False
        return any(not cal.is_workday(d) and d.weekday() < 5 for d in (day.replace(day=i) for i in range(1, day.day)))

    return _first_day("the first working day of a month after a holiday", clock, accept)


def first_workday_after_holiday_month(clock: time = time(8, 55)) -> Situation:
    """The first working day of a month whose previous month has a holiday (a weekday off): the day a
    monthly report covers a month with National Day, New Year's Day, the Spring Festival ..."""

    def accept(day: date, cal: WorkCalendar) -> bool:
        if not (cal.is_workday(day) and cal.next_workday(day.replace(day=1)) == day):
            return False
        last = day.replace(day=1) - timedelta(days=1)
        return any(d.weekday() < 5 and not cal.is_workday(d)
                   for d in (last.replace(day=n) for n in range(1, last.day + 1)))

    return _first_day("the first working day after a month with a holiday", clock, accept)


def ordinary_workday(clock: time = time(10, 0), *, clear_days: int = 14, weekday: int | None = None) -> Situation:
    """A working day in the middle of things: not a month's first working day nor in its last three days,
    not the first day after a holiday, followed by a working day, and with no holiday (three or more days
    off in a row) starting within the next ``clear_days`` days; with ``weekday`` (0 = Monday), that day of
    the week. What a test wants when "a normal Tuesday" is the point."""

    def off(day: date, cal: WorkCalendar, offset: int) -> bool:
        return not cal.is_workday(day + timedelta(days=offset))

    def holiday_at(day: date, cal: WorkCalendar, offset: int) -> bool:
        return all(off(day, cal, offset + i) for i in range(3))

    def accept(day: date, cal: WorkCalendar) -> bool:
        month_end = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return ((weekday is None or day.weekday() == weekday) and not off(day, cal, 0) and not off(day, cal, 1)
                and not holiday_at(day, cal, -3) and not any(holiday_at(day, cal, i) for i in range(2, clear_days + 1))
                and cal.next_workday(day.replace(day=1)) != day and (month_end - day).days >= 3)

    return _first_day("an ordinary working day", clock, accept)


def last_minute_of_month() -> Situation:
    """23:59 on the last day of a month."""
    return _first_day("the last minute of a month", time(23, 59),
                      lambda day, cal: (day + timedelta(days=1)).day == 1)


def last_minute_of_year() -> Situation:
    """23:59 on 31 December."""
    return _first_day("the last minute of the year", time(23, 59), lambda day, cal: (day.month, day.day) == (12, 31))


def eve_of_days_off(clock: time = time(16, 0), *, min_days: int = 3) -> Situation:
    """The last working day before at least ``min_days`` days off in a row (a holiday's eve)."""

    def accept(day: date, cal: WorkCalendar) -> bool:
        return cal.is_workday(day) and all(not cal.is_workday(day + timedelta(days=i))
                                           for i in range(1, min_days + 1))

    return _first_day(f"the eve of {min_days}+ days off", clock, accept)


def makeup_workday(clock: time = time(8, 55)) -> Situation:
    """A Saturday or Sunday that is a working day (a make-up day, 调休, or a config ``workdays`` entry)."""
    return _first_day("a make-up working day", clock, lambda day, cal: day.weekday() >= 5 and cal.is_workday(day))


def before_offset_change(minutes: int = 5) -> Situation:
    """``minutes`` before the zone's next UTC offset change (a daylight-saving change), local time."""

    def find(after: datetime, calendar: WorkCalendar) -> datetime | None:
        # Steps in UTC (aware arithmetic in a zone is wall-clock arithmetic); hourly steps find a change,
        # then minutes place it: zones in use change their offset on a whole minute.
        probe = after.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        offset = calendar.local(probe).utcoffset()
        for _ in range(HORIZON_DAYS * 24):
            following = probe + timedelta(hours=1)
            if calendar.local(following).utcoffset() != offset:
                change = probe
                while calendar.local(change).utcoffset() == offset:
                    change += timedelta(minutes=1)
                moment = calendar.local(change - timedelta(minutes=minutes))
                if moment > after:
                    return moment
                offset = calendar.local(following).utcoffset()
            probe = following
        return None

    return Situation(f"{minutes} minutes before a change of UTC offset", find)


def ahead(situation: Situation, calendar: WorkCalendar, *, margin: timedelta = timedelta(minutes=10)) -> datetime:
    """The next moment of ``situation`` at least ``margin`` after the wall clock, for a test that must know it
    before the harness starts (to write it into config or seed data).

    The time-skipping server starts at the wall clock's time, so with a ``margin`` longer than the set-up
    takes, the moment still lies ahead once the harness runs: then ``await env.begin_at(at(moment))``.
    This is the one place the kit reads the wall clock for a test.
    """
    return situation.find(datetime.now(UTC) + margin, calendar)
