"""WorkCalendar: China public holidays and 调休, the fallback for years without data, config overrides."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays
import pytest
from sandboxed_calendar import CalendarProbe

from engine.rules import WorkCalendar, as_zone, china_calendar_covers, describe_ranges, uncovered_ranges

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(SHANGHAI)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


# ------------------------------------------------------------------------------------ China calendar


def test_national_day_2026_is_off_as_chinese_calendar_says(cal: WorkCalendar) -> None:
    # The facts come from chinese_calendar itself, then are pinned to exact dates.
    national_day_off = [
        d
        for d in days(date(2026, 9, 28), date(2026, 10, 12))
        if chinese_calendar.get_holiday_detail(d) == (True, "National Day")
    ]
    assert national_day_off == days(date(2026, 10, 1), date(2026, 10, 7))
    for d in national_day_off:
        assert not cal.is_workday(d), d
        assert cal.holiday_name(d) == "National Day"
    # The break ends on Wednesday 2026-10-07: Thursday the 8th is an ordinary workday.
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    assert cal.is_workday(date(2026, 10, 8))
    assert cal.holiday_name(date(2026, 10, 8)) is None


def test_make_up_saturday_2026_is_a_workday(cal: WorkCalendar) -> None:
    make_up_weekend_days = [
        d for d in days(date(2026, 1, 1), date(2026, 12, 31)) if d.weekday() >= 5 and chinese_calendar.is_workday(d)
    ]
    assert date(2026, 10, 10) in make_up_weekend_days
    saturday = date(2026, 10, 10)
    assert saturday.weekday() == 5
    assert chinese_calendar.get_holiday_detail(saturday) == (False, "National Day")
    assert cal.is_workday(saturday)
    assert cal.holiday_name(saturday) == "National Day"
    # Every make-up weekend day of 2026 is a workday, e.g. Sunday 2026-09-20 before the National Day week.
    assert date(2026, 9, 20) in make_up_weekend_days
    assert all(cal.is_workday(d) for d in make_up_weekend_days)


def test_whole_year_2026_matches_chinese_calendar(cal: WorkCalendar) -> None:
    for d in days(date(2026, 1, 1), date(2026, 12, 31)):
        assert cal.is_workday(d) == chinese_calendar.is_workday(d), d


def test_spring_festival_and_labour_day_2026(cal: WorkCalendar) -> None:
    assert not any(cal.is_workday(d) for d in days(date(2026, 2, 15), date(2026, 2, 23)))
    assert cal.is_workday(date(2026, 2, 14))  # make-up Saturday before the Spring Festival
    assert not any(cal.is_workday(d) for d in days(date(2026, 5, 1), date(2026, 5, 5)))
    assert cal.next_workday(date(2026, 5, 1)) == date(2026, 5, 6)


# ------------------------------------------------------------------------------------------ fallback


def test_2027_has_no_official_data(cal: WorkCalendar) -> None:
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))
    assert cal.covered(2026)
    assert not cal.covered(2027)
    assert not china_calendar_covers(2027)


def test_spring_festival_2027_is_off_provisionally(cal: WorkCalendar) -> None:
    # The facts come from the `holidays` package (the fallback itself), then are pinned to exact dates:
    # the first day of the lunar year 2027 is Saturday 2027-02-06.
    provisional = holidays.China(years=2027, language="en_US")
    spring = [d for d in days(date(2027, 2, 1), date(2027, 2, 14)) if "Spring Festival" in provisional.get(d, "")]
    assert spring[:3] == days(date(2027, 2, 6), date(2027, 2, 8))
    for d in days(date(2027, 2, 6), date(2027, 2, 8)):
        assert not cal.is_workday(d), d
        assert cal.provisional(d)
        assert cal.holiday_name(d) == "Chinese New Year (Spring Festival)"
    # Monday 2027-02-08 would have been an ordinary workday with weekends only.
    assert date(2027, 2, 8).weekday() == 0
    assert cal.next_workday(date(2027, 2, 6)) == date(2027, 2, 11)
    # Days around the break are provisional workdays, without a name.
    assert cal.is_workday(date(2027, 2, 4))
    assert cal.provisional(date(2027, 2, 4))
    assert cal.holiday_name(date(2027, 2, 4)) is None


def test_new_years_day_and_national_day_2027_are_off_provisionally(cal: WorkCalendar) -> None:
    assert not cal.is_workday(date(2027, 1, 1))  # a Friday
    assert cal.holiday_name(date(2027, 1, 1)) == "New Year's Day"
    assert not any(cal.is_workday(d) for d in days(date(2027, 10, 1), date(2027, 10, 5)))
    assert cal.is_workday(date(2027, 10, 6))
    # No make-up workdays are known: a weekend stays off (the official 2027 plan may well add some).
    assert not cal.is_workday(date(2027, 1, 2))
    assert cal.holiday_name(date(2027, 1, 2)) is None


def test_2026_still_comes_from_the_official_data(cal: WorkCalendar) -> None:
    assert not any(cal.provisional(d) for d in days(date(2026, 1, 1), date(2026, 12, 31)))
    assert cal.is_workday(date(2026, 10, 10))  # an official make-up Saturday, unknown to `holidays`
    assert cal.holiday_name(date(2026, 10, 1)) == "National Day"  # chinese_calendar's name
    assert cal.provisional_note(date(2026, 10, 1), date(2026, 12, 31)) is None
    assert cal.provisional_note(date(2026, 12, 31), date(2027, 1, 4)) == (
        "provisional calendar for 2027: no official holiday data, make-up workdays unknown"
    )


def test_mark_provisional_appends_the_note_only_when_it_applies(cal: WorkCalendar) -> None:
    reason = "screening: SLA 3 working day(s) lapses 2027-01-06 09:00"
    assert cal.mark_provisional(reason, date(2026, 12, 31)) == reason
    assert cal.mark_provisional(reason, date(2026, 12, 31), date(2027, 1, 6)) == (
        f"{reason} (provisional calendar for 2027: no official holiday data, make-up workdays unknown)"
    )
    listed = WorkCalendar(SHANGHAI, workdays=[date(2027, 1, 6)])
    assert listed.mark_provisional(reason, date(2027, 1, 6)) == reason  # the org listed the day itself
    assert WorkCalendar(SHANGHAI, use_china_calendar=False).mark_provisional(reason, date(2027, 1, 6)) == reason


def test_years_before_the_data_fall_back_too(cal: WorkCalendar) -> None:
    assert not cal.covered(2003)
    assert not cal.is_workday(date(2003, 10, 1))  # a Wednesday, National Day
    assert cal.provisional(date(2003, 10, 1))
    assert cal.covered(2004)


def test_without_china_calendar_every_year_is_covered() -> None:
    # A foreign organization: no public holidays from either source, nothing provisional.
    plain = WorkCalendar(ZoneInfo("Europe/Berlin"), use_china_calendar=False)
    assert plain.covered(2027)
    assert plain.is_workday(date(2026, 10, 1))  # Thursday, no public holidays known
    assert not plain.is_workday(date(2026, 10, 10))  # Saturday: no make-up workdays either
    assert plain.holiday_name(date(2026, 10, 1)) is None
    assert plain.is_workday(date(2027, 2, 8))  # the 2027 Spring Festival is no holiday there
    assert not plain.provisional(date(2027, 2, 8))
    assert plain.holiday_name(date(2027, 2, 8)) is None
    assert plain.provisional_note(date(2027, 2, 8)) is None


def test_config_extras_win_over_the_fallback() -> None:
    spring_2027 = days(date(2027, 2, 5), date(2027, 2, 13))
    cal = WorkCalendar(SHANGHAI, holidays=spring_2027, workdays=[date(2027, 2, 14), date(2027, 10, 1)])
    assert not any(cal.is_workday(d) for d in spring_2027)
    assert cal.is_workday(date(2027, 2, 14))  # a Sunday made a workday in config
    assert cal.is_workday(date(2027, 10, 1))  # National Day made a workday in config
    assert cal.next_workday(date(2027, 2, 4), include_today=False) == date(2027, 2, 14)
    # Listed days are the organization's word, not provisional; the rest of 2027 still is.
    assert not any(cal.provisional(d) for d in [*spring_2027, date(2027, 2, 14), date(2027, 10, 1)])
    assert cal.holiday_name(date(2027, 2, 6)) is None
    assert cal.provisional(date(2027, 10, 2))
    assert not cal.is_workday(date(2027, 10, 4))  # Monday, still off provisionally


def test_org_weekend_applies_in_the_fallback_year() -> None:
    six_days = WorkCalendar(SHANGHAI, weekend=(6,))
    assert six_days.is_workday(date(2027, 1, 9))  # Saturday
    assert not six_days.is_workday(date(2027, 1, 10))  # Sunday
    assert not six_days.is_workday(date(2027, 2, 6))  # Saturday, but the Spring Festival


# ---------------------------------------------------------------------------- dates without official data


def test_uncovered_ranges_in_the_next_12_months() -> None:
    assert uncovered_ranges(date(2026, 1, 1)) == []  # the whole window is 2026
    assert uncovered_ranges(date(2026, 1, 2)) == [(date(2027, 1, 1), date(2027, 1, 1))]
    assert uncovered_ranges(date(2026, 11, 30)) == [(date(2027, 1, 1), date(2027, 11, 29))]
    assert uncovered_ranges(date(2027, 3, 15)) == [(date(2027, 3, 15), date(2027, 12, 31)),
                                                   (date(2028, 1, 1), date(2028, 3, 14))]
    assert uncovered_ranges(date(2024, 2, 29)) == []  # to 2025-02-28
    assert uncovered_ranges(date(2026, 6, 1), months=3) == []
    assert uncovered_ranges(date(2026, 11, 30), months=0) == []
    assert describe_ranges(uncovered_ranges(date(2027, 3, 15))) == "2027-03-15..2027-12-31, 2028-01-01..2028-03-14"


# ------------------------------------------------------------------------------------ workflow sandbox


async def test_the_fallback_works_inside_the_workflow_sandbox() -> None:
    """The production sandbox (engine.runtime.worker), on the time-skipping test server."""
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from engine.runtime.worker import workflow_runner
    from engine.testing.kit import find_test_server

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=find_test_server())
    try:
        async with Worker(env.client, task_queue="calendar-probe", workflows=[CalendarProbe],
                          workflow_runner=workflow_runner()):
            rows = await env.client.execute_workflow(
                CalendarProbe.run, args=["2027-02-05", 7], id="calendar-probe", task_queue="calendar-probe")
    finally:
        await env.shutdown()
    assert [tuple(row) for row in rows] == [
        ("2027-02-05", False, True, "Chinese New Year's Eve"),
        ("2027-02-06", False, True, "Chinese New Year (Spring Festival)"),
        ("2027-02-07", False, True, "Chinese New Year (Spring Festival)"),
        ("2027-02-08", False, True, "Chinese New Year (Spring Festival)"),
        ("2027-02-09", False, True, "Chinese New Year (Spring Festival) (observed)"),
        ("2027-02-10", False, True, "Chinese New Year (Spring Festival) (observed)"),
        ("2027-02-11", True, True, None),
    ]


# ------------------------------------------------------------------------------------------- overrides


def test_config_overrides_win_over_china_calendar() -> None:
    cal = WorkCalendar(
        SHANGHAI,
        holidays=[date(2026, 10, 10), date(2026, 11, 18)],  # make-up Saturday and a Wednesday off
        workdays=[date(2026, 10, 3), date(2026, 11, 21)],  # a National Day Saturday and a plain Saturday on
    )
    assert not cal.is_workday(date(2026, 10, 10))
    assert not cal.is_workday(date(2026, 11, 18))
    assert cal.is_workday(date(2026, 10, 3))
    assert cal.is_workday(date(2026, 11, 21))
    assert cal.is_workday(date(2026, 11, 19))  # untouched days keep the China calendar


def test_a_day_both_off_and_on_is_rejected() -> None:
    with pytest.raises(ValueError, match="2026-10-10"):
        WorkCalendar(SHANGHAI, holidays=[date(2026, 10, 10)], workdays=[date(2026, 10, 10)])


def test_custom_weekend_with_china_holidays() -> None:
    # A hospital open six days a week: only Sunday off, public holidays still off.
    six_days = WorkCalendar(SHANGHAI, weekend=(6,))
    assert six_days.is_workday(date(2026, 11, 21))  # Saturday
    assert not six_days.is_workday(date(2026, 11, 22))  # Sunday
    assert not six_days.is_workday(date(2026, 10, 3))  # Saturday inside the National Day break
    assert six_days.is_workday(date(2026, 9, 20))  # make-up Sunday


@pytest.mark.parametrize("weekend", [(0, 1, 2, 3, 4, 5, 6), (7,), (-1,)])
def test_bad_weekends_are_rejected(weekend: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        WorkCalendar(SHANGHAI, weekend=weekend)


def test_zone_by_name() -> None:
    cal = WorkCalendar("Asia/Shanghai")
    assert cal.zone is SHANGHAI
    assert as_zone("Europe/Berlin") is ZoneInfo("Europe/Berlin")
    with pytest.raises(TypeError):
        as_zone(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ day arithmetic


def test_next_workday(cal: WorkCalendar) -> None:
    assert cal.next_workday(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 10, 8)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 10, 8), include_today=False) == date(2026, 10, 9)
    assert cal.next_workday(date(2026, 10, 9), include_today=False) == date(2026, 10, 10)  # make-up Saturday
    assert cal.previous_workday(date(2026, 10, 7)) == date(2026, 9, 30)
    assert cal.previous_workday(date(2026, 10, 8), include_today=False) == date(2026, 9, 30)


def test_add_workdays_across_national_day(cal: WorkCalendar) -> None:
    wednesday = date(2026, 9, 30)
    assert [cal.add_workdays(wednesday, n) for n in range(1, 6)] == [
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),  # make-up Saturday
        date(2026, 10, 12),
        date(2026, 10, 13),
    ]
    assert cal.add_workdays(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert cal.add_workdays(date(2026, 10, 12), -3) == date(2026, 10, 8)
    assert cal.add_workdays(date(2026, 10, 3), 1) == date(2026, 10, 8)  # from a holiday
    assert cal.add_workdays(date(2026, 10, 3), -1) == date(2026, 9, 30)
    assert cal.add_workdays(date(2026, 10, 3), 0) == date(2026, 10, 3)
    # Before the week: Sunday 2026-09-20 is a make-up workday, Mid-Autumn 25-27 September is off.
    assert cal.add_workdays(date(2026, 9, 18), 1) == date(2026, 9, 20)
    assert cal.add_workdays(date(2026, 9, 24), 1) == date(2026, 9, 28)


def test_workdays_between(cal: WorkCalendar) -> None:
    assert cal.workdays_between(date(2026, 9, 30), date(2026, 10, 12)) == 4
    assert cal.workdays_between(date(2026, 10, 12), date(2026, 9, 30)) == -4
    assert cal.workdays_between(date(2026, 10, 1), date(2026, 10, 7)) == 0
    assert cal.workdays_between(date(2026, 10, 8), date(2026, 10, 8)) == 0
    start = date(2026, 9, 30)
    for n in range(0, 30):
        assert cal.workdays_between(start, cal.add_workdays(start, n)) == n


# ------------------------------------------------------------------------------------------- moments


def test_at_local(cal: WorkCalendar) -> None:
    moment = cal.at_local(date(2026, 10, 8), time(9, 0))
    assert moment.tzinfo is SHANGHAI
    assert moment == datetime(2026, 10, 8, 1, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        cal.at_local(date(2026, 10, 8), time(9, 0, tzinfo=UTC))


def test_next_working_moment_basics(cal: WorkCalendar) -> None:
    # Saturday afternoon -> Monday morning.
    assert cal.next_working_moment(datetime(2026, 11, 21, 14, 0, tzinfo=SHANGHAI)) == datetime(
        2026, 11, 23, 9, 0, tzinfo=SHANGHAI
    )
    # Before the morning -> that morning; during the day -> unchanged.
    assert cal.next_working_moment(datetime(2026, 11, 18, 7, 30, tzinfo=SHANGHAI)) == datetime(
        2026, 11, 18, 9, 0, tzinfo=SHANGHAI
    )
    inside = datetime(2026, 11, 18, 10, 17, tzinfo=SHANGHAI)
    assert cal.next_working_moment(inside) == inside
    # Given in UTC, judged on the Shanghai clock: 00:30 UTC is 08:30 local.
    result = cal.next_working_moment(datetime(2026, 11, 18, 0, 30, tzinfo=UTC))
    assert result == datetime(2026, 11, 18, 1, 0, tzinfo=UTC)
    assert result.tzinfo is UTC
    # During the National Day week -> the first workday after it, at the given morning.
    assert cal.next_working_moment(datetime(2026, 10, 2, 11, 0, tzinfo=SHANGHAI), morning=time(8, 30)) == datetime(
        2026, 10, 8, 8, 30, tzinfo=SHANGHAI
    )


def test_quiet_hours(cal: WorkCalendar) -> None:
    evening = datetime(2026, 9, 30, 20, 0, tzinfo=SHANGHAI)
    assert cal.next_working_moment(evening) == evening  # no quiet hours: the evening is fine
    assert cal.next_working_moment(evening, quiet_start=time(18, 0)) == datetime(2026, 10, 8, 9, 0, tzinfo=SHANGHAI)
    # Exactly at quiet_start is already quiet.
    assert cal.next_working_moment(datetime(2026, 11, 18, 18, 0, tzinfo=SHANGHAI), quiet_start=time(18, 0)) == datetime(
        2026, 11, 19, 9, 0, tzinfo=SHANGHAI
    )
    # A lunch break inside the day moves to its end.
    lunch = {"quiet_start": time(12, 0), "quiet_end": time(13, 30)}
    assert cal.next_working_moment(datetime(2026, 11, 18, 12, 15, tzinfo=SHANGHAI), **lunch) == datetime(
        2026, 11, 18, 13, 30, tzinfo=SHANGHAI
    )
    after_lunch = datetime(2026, 11, 18, 16, 0, tzinfo=SHANGHAI)
    assert cal.next_working_moment(after_lunch, **lunch) == after_lunch
    # Overnight quiet hours 22:00-07:00 with an early morning at 06:00: nothing before 07:00.
    night = {"morning": time(6, 0), "quiet_start": time(22, 0), "quiet_end": time(7, 0)}
    assert cal.next_working_moment(datetime(2026, 11, 18, 6, 30, tzinfo=SHANGHAI), **night) == datetime(
        2026, 11, 18, 7, 0, tzinfo=SHANGHAI
    )
    assert cal.next_working_moment(datetime(2026, 11, 20, 23, 0, tzinfo=SHANGHAI), **night) == datetime(
        2026, 11, 23, 7, 0, tzinfo=SHANGHAI
    )


def test_next_working_moment_rejects_bad_input(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.next_working_moment(datetime(2026, 11, 18, 10, 0))
    with pytest.raises(ValueError, match="quiet_end needs quiet_start"):
        cal.next_working_moment(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI), quiet_end=time(7, 0))
    with pytest.raises(ValueError, match="no working moment"):
        cal.next_working_moment(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI), quiet_start=time(8, 0))
    with pytest.raises(TypeError):
        cal.is_workday(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI))
