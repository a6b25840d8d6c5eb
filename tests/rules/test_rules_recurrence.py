"""Recurrence: month arithmetic with clamping, cron on the local wall clock (Shanghai, UTC, Berlin DST)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from engine.rules import (
    WorkCalendar,
    add_months,
    cron_iter,
    cron_next,
    first_workday_of_month,
    next_due,
    validate_cron,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


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


def test_cron_iter_shanghai_month_end() -> None:
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    assert list(cron_iter("30 8 L * *", start, SHANGHAI, 3)) == [
        datetime(2026, 1, 31, 0, 30, tzinfo=UTC),
        datetime(2026, 2, 28, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
    ]
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


def test_cron_in_the_skipped_spring_hour_fires_after_the_gap() -> None:
    moments = list(cron_iter("30 2 * * *", datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), BERLIN, 2))
    assert moments == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 02:30 does not exist that night: 03:30 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    hourly = list(cron_iter("0 * * * *", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), BERLIN, 3))
    assert hourly == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # "02:00" -> 03:00 CEST
        datetime(2026, 3, 29, 2, 0, tzinfo=UTC),  # 04:00 CEST; 03:00 CEST is not repeated
        datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
    ]


def test_cron_in_the_repeated_autumn_hour_fires_once() -> None:
    moments = list(cron_iter("30 2 * * *", datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN), BERLIN, 2))
    assert moments == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST)
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # next day 02:30 CET; the second 02:30 CET is not used
    ]
    # Asked from inside the repeated hour (02:10 CET, after the first 02:30 went by): the next day.
    second_pass = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert second_pass.astimezone(BERLIN).fold == 1
    assert cron_next("30 2 * * *", second_pass, BERLIN) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "empty"),
        ("0 9 * *", "expected 5 fields"),
        ("0 0 9 * * *", "expected 5 fields"),
        ("61 * * * *", "out of range or malformed"),
        ("0 9 * * funday", "out of range or malformed"),
        ("R 9 * * *", "random or hashed"),
        ("0 H * * *", "random or hashed"),
        ("0 9 31 2 *", "never matches"),
        ("@reboot", "known aliases"),
    ],
)
def test_invalid_cron_expressions(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_cron(expr)
    with pytest.raises(ValueError, match=message):
        cron_next(expr, datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI)
    # cron_iter checks at once, not when the first item is taken.
    with pytest.raises(ValueError, match=message):
        cron_iter(expr, datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI, 1)


def test_valid_cron_forms() -> None:
    assert validate_cron("  0  9 * *   MON-FRI ") == "0 9 * * MON-FRI"
    assert validate_cron("@Daily") == "@daily"
    assert validate_cron("0 9 * mar,apr fri") == "0 9 * mar,apr fri"  # month and day names are not "R"
    assert cron_next("@daily", datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI), SHANGHAI) == datetime(
        2026, 11, 20, 16, 0, tzinfo=UTC
    )


def test_cron_needs_an_aware_after_and_a_count() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cron_next("0 9 * * *", datetime(2026, 1, 1), SHANGHAI)
    with pytest.raises(ValueError, match="count"):
        cron_iter("0 9 * * *", datetime(2026, 1, 1, tzinfo=UTC), SHANGHAI, -1)
