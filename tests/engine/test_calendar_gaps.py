"""Which organizations see dates without an official holiday calendar ahead (engine/calendar_gaps.py).

Every test passes ``now`` explicitly: the answer depends on the date, and must not on the day tests run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sample_plugins import EchoPlugin

import plugins.recruiting as recruiting
from engine.calendar_gaps import CalendarGap, calendar_gaps, uses_china_calendar
from engine.config import EngineConfig, parse_config
from engine.plugins import load_plugins

SCENARIOS = load_plugins(modules={"echo": EchoPlugin(), "recruiting": recruiting}, entry_points=False).scenarios


def config(organizations: dict[str, Any]) -> EngineConfig:
    return parse_config({"organizations": organizations}, Path("/srv/engine/engine.toml"), SCENARIOS)


ORGS = {
    "rennuo": {"plugins": ["echo"], "holidays": ["2027-02-08", "2026-12-31"], "workdays": ["2027-02-14"]},
    "berlin": {"timezone": "Europe/Berlin", "plugins": ["recruiting"],
               "settings": {"recruiting": {"use_china_calendar": False}}},
    "idle": {},
}


def test_the_next_12_months_from_late_november_reach_into_2027() -> None:
    # 2026-11-30 09:00 in Shanghai: the window runs to 2027-11-29.
    gaps = calendar_gaps(config(ORGS), datetime(2026, 11, 30, 1, 0, tzinfo=UTC))
    assert gaps == [CalendarGap("rennuo", ((date(2027, 1, 1), date(2027, 11, 29)),), listed=2)]
    (gap,) = gaps
    assert gap.years == (2027,)
    assert gap.warning() == (
        "organizations.rennuo: no official holiday calendar for 2027-01-01..2027-11-29 (chinese-calendar "
        f"{_version()}): working days there are provisional, China's statutory holidays estimated and "
        "make-up workdays (调休) unknown; 2 of those dates listed in config"
    )
    assert "organizations.rennuo.holidays / organizations.rennuo.workdays" in gap.hint()
    assert "upgrade chinese-calendar once a release covers 2027" in gap.hint()


def test_a_window_inside_covered_years_has_no_gap() -> None:
    assert calendar_gaps(config(ORGS), datetime(2025, 12, 31, 15, 0, tzinfo=UTC)) == []  # 2026-01-01 in Shanghai


def test_the_organizations_zone_decides_today() -> None:
    # 2026-01-01 16:30 UTC is still 2026-01-01 in Shanghai (the window ends 2026-12-31) ...
    assert calendar_gaps(config(ORGS), datetime(2026, 1, 1, 15, 30, tzinfo=UTC)) == []
    # ... and 2026-01-02 there half an hour later: 2027-01-01 enters the window.
    (gap,) = calendar_gaps(config(ORGS), datetime(2026, 1, 1, 16, 30, tzinfo=UTC))
    assert gap.ranges == ((date(2027, 1, 1), date(2027, 1, 1)),)


def test_who_uses_the_china_calendar() -> None:
    orgs = config(ORGS).orgs
    assert uses_china_calendar(orgs["rennuo"])  # echo has no such setting: the China calendar applies
    assert not uses_china_calendar(orgs["berlin"])  # every plugin turned it off
    assert not uses_china_calendar(orgs["idle"])  # no plugin, no calendar
    mixed = config({"o": {"plugins": ["echo", "recruiting"],
                          "settings": {"recruiting": {"use_china_calendar": False}}}})
    assert uses_china_calendar(mixed.orgs["o"])


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_gaps(config(ORGS), datetime(2026, 11, 30, 9, 0))


def _version() -> str:
    from importlib.metadata import version

    return version("chinese-calendar")
