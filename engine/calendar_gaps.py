"""Which organizations' work calendars are provisional in the months ahead, and what to tell their admins.

``chinese_calendar`` carries the State Council's holiday plans only up to the year it was released for;
beyond it, :mod:`engine.rules.workdays` estimates the public holidays and cannot know the make-up
workdays (调休). ``engine config check``, the worker's start-up log and the admin notice
(:mod:`engine.notices.calendar`) all report the same gaps, from :func:`calendar_gaps`. Pure: the caller
passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata
from typing import TYPE_CHECKING

from engine.rules.workdays import describe_ranges, uncovered_ranges

if TYPE_CHECKING:
    from engine.config import EngineConfig, OrgContext

WINDOW_MONTHS = 12


@dataclass(frozen=True)
class CalendarGap:
    """The dates of the next ``WINDOW_MONTHS`` months that ``org`` sees without an official calendar.

    ``ranges`` are inclusive ``(first, last)`` pairs, one per uncovered year; ``listed`` counts the dates
    of those ranges the organization lists itself in config ``holidays`` / ``workdays``.
    """

    org: str
    ranges: tuple[tuple[date, date], ...]
    listed: int

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(first.year for first, _ in self.ranges)

    def warning(self) -> str:
        """One line for people who run the engine (English, like every log line)."""
        listed = f"; {self.listed} of those dates listed in config" if self.listed else ""
        return (f"organizations.{self.org}: no official holiday calendar for {describe_ranges(self.ranges)} "
                f"(chinese-calendar {chinese_calendar_version()}): working days there are provisional, "
                f"China's statutory holidays estimated and make-up workdays (调休) unknown{listed}")

    def hint(self) -> str:
        years = ", ".join(str(year) for year in self.years)
        return (f"upgrade chinese-calendar once a release covers {years}, or list the days off and make-up "
                f"workdays in organizations.{self.org}.holidays / organizations.{self.org}.workdays")


def chinese_calendar_version() -> str:
    """The installed chinese-calendar's version (``"1.11.0"``), or ``"unknown"``."""
    try:
        return metadata.version("chinese-calendar")
    except metadata.PackageNotFoundError:
        return "unknown"


def uses_china_calendar(org: OrgContext) -> bool:
    """True unless the organization enables no plugin, or every plugin it enables has its setting
    ``use_china_calendar`` turned off (for the group and each site). Plugins without that setting
    follow the China calendar.
    """
    for scenario in org.plugins:
        for site in (None, *org.site_ids):
            try:
                settings = org.settings(scenario, site)
            except KeyError:
                return True
            if getattr(settings, "use_china_calendar", True):
                return True
    return False


def calendar_gaps(config: EngineConfig, now: datetime) -> list[CalendarGap]:
    """Every organization using the China calendar with dates in the next ``WINDOW_MONTHS`` months (from
    ``now``, an aware moment, seen in the organization's zone) that have no official calendar.
    """
    if now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    gaps = []
    for org in config.orgs.values():
        if not uses_china_calendar(org):
            continue
        ranges = uncovered_ranges(now.astimezone(org.zone).date(), WINDOW_MONTHS)
        if not ranges:
            continue
        own = {date.fromisoformat(text) for text in (*org.config.holidays, *org.config.workdays)}
        listed = sum(1 for day in own if any(first <= day <= last for first, last in ranges))
        gaps.append(CalendarGap(org.id, tuple(ranges), listed))
    return gaps
