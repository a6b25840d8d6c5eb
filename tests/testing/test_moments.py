"""The kit's calendar situations, from fixed moments: each is the first of its kind after the given moment."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from engine.rules.workdays import WorkCalendar
from engine.testing import moments
from engine.testing.hard_moments import MOMENTS, faked_environment, moment, rotation

SHANGHAI = WorkCalendar("Asia/Shanghai")
BERLIN = WorkCalendar("Europe/Berlin", use_china_calendar=False)


def shanghai(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI.zone)


@pytest.mark.parametrize(("after", "expected"), [
    ("2026-11-30 12:00", "2026-12-01 08:55"),   # December begins on a Tuesday
    ("2026-09-02 12:00", "2026-10-08 08:55"),   # October's first working day follows National Day
    ("2026-12-01 08:54", "2026-12-01 08:55"),   # the same day, still ahead
    ("2026-12-01 08:55", "2027-01-04 08:55"),   # strictly after: New Year's Day and a weekend follow
])
def test_first_workday_of_month(after: str, expected: str) -> None:
    assert moments.first_workday_of_month(time(8, 55)).find(shanghai(after), SHANGHAI) == shanghai(expected)


@pytest.mark.parametrize(("after", "expected"), [
    ("2026-09-01 00:00", "2026-10-08 08:55"),   # National Day: October starts on the 8th
    ("2026-10-08 09:00", "2027-01-04 08:55"),   # November and December start on a workday; New Year's Day
])
def test_first_workday_after_holiday(after: str, expected: str) -> None:
    found = moments.first_workday_after_holiday(time(8, 55)).find(shanghai(after), SHANGHAI)
    assert found == shanghai(expected)


@pytest.mark.parametrize(("after", "expected"), [
    ("2026-09-02 12:00", "2026-10-08 09:00"),   # September had the Mid-Autumn Festival (25th)
    ("2026-10-09 12:00", "2026-11-02 09:00"),   # October had National Day
    ("2026-11-30 12:00", "2027-02-01 09:00"),   # November has no holiday, December neither: January's New Year
])
def test_first_workday_after_a_month_with_a_holiday(after: str, expected: str) -> None:
    situation = moments.first_workday_after_holiday_month(time(9, 0))
    assert situation.find(shanghai(after), SHANGHAI) == shanghai(expected)


def test_month_and_year_ends_and_the_next_time_of_day() -> None:
    after = shanghai("2026-11-30 23:59")
    assert moments.last_minute_of_month().find(after, SHANGHAI) == shanghai("2026-12-31 23:59")
    assert moments.last_minute_of_year().find(after, SHANGHAI) == shanghai("2026-12-31 23:59")
    assert moments.next_time(time(3, 0)).find(after, SHANGHAI) == shanghai("2026-12-01 03:00")
    assert moments.workday(time(9, 0)).find(shanghai("2026-10-01 12:00"), SHANGHAI) == shanghai("2026-10-08 09:00")


def test_holiday_eve_and_make_up_days_come_from_the_calendar() -> None:
    assert moments.makeup_workday().find(shanghai("2026-09-01 00:00"), SHANGHAI) == shanghai("2026-09-20 08:55")
    assert moments.eve_of_days_off(time(16, 0)).find(shanghai("2026-09-21 00:00"), SHANGHAI) == \
        shanghai("2026-09-24 16:00")  # Mid-autumn and National Day
    # a year without make-up data: a config ``workdays`` entry makes one
    own = WorkCalendar("Asia/Shanghai", workdays=[date(2027, 3, 6)])
    assert moments.makeup_workday().find(shanghai("2027-01-01 00:00"), own) == shanghai("2027-03-06 08:55")


def test_an_ordinary_workday_is_away_from_month_edges_and_holidays() -> None:
    found = moments.ordinary_workday().find(shanghai("2027-01-25 12:00"), SHANGHAI)
    assert found.date() > date(2027, 2, 10)  # not in the weeks before Spring Festival 2027
    day = found.date()
    assert SHANGHAI.is_workday(day) and day.day > 1 and SHANGHAI.next_workday(day.replace(day=1)) != day


def test_before_a_daylight_saving_change() -> None:
    found = moments.before_offset_change(5).find(datetime(2026, 11, 30, tzinfo=UTC), BERLIN)
    assert found.replace(tzinfo=None) == datetime(2027, 3, 28, 1, 55)
    after_change = BERLIN.local(found.astimezone(UTC) + timedelta(minutes=5))
    assert (after_change.replace(tzinfo=None), after_change.utcoffset()) == (datetime(2027, 3, 28, 3, 0),
                                                                            timedelta(hours=2))


def test_a_situation_that_never_comes_says_so() -> None:
    never = WorkCalendar("Europe/Berlin", use_china_calendar=False)
    with pytest.raises(moments.SituationNotFound, match="make-up working day"):
        moments.makeup_workday().find(datetime(2026, 11, 30, tzinfo=UTC), never)
    with pytest.raises(moments.SituationNotFound, match="already past"):
        moments.at(datetime(2026, 1, 1, tzinfo=UTC)).find(datetime(2026, 11, 30, tzinfo=UTC), never)


def test_hard_moments_are_the_documented_set_and_rotate_daily(tmp_path: Path) -> None:
    names = [m.name for m in MOMENTS]
    assert names == ["month-end", "year-end", "spring-festival-eve", "makeup-saturday", "leap-day", "dst-berlin"]
    assert not SHANGHAI.is_workday(moment("spring-festival-eve").local.date() + timedelta(days=1))
    assert SHANGHAI.is_workday(moment("makeup-saturday").local.date())  # a Saturday that is worked
    assert moment("leap-day").local.date() == date(2028, 2, 29)
    seen = {rotation(date.fromordinal(date(2026, 1, 1).toordinal() + i)).name for i in range(6)}
    assert seen == set(names)
    env = faked_environment(moment("year-end"), base={}, scratch=tmp_path)
    assert env["FAKETIME"].startswith(("+", "-")) and env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    assert env["LD_PRELOAD"].endswith("libfaketime.so.1")
    wrapper = Path(env["ENGINE_TEST_SERVER"]).read_text(encoding="utf-8")
    assert "FAKETIME_DONT_FAKE_MONOTONIC=0 exec" in wrapper
