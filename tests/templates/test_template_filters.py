"""The built-in filters: local time, relative days, JSON escaping."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from engine.templates import (
    TemplateEngine,
    TemplateError,
    format_local_date,
    format_local_dt,
    format_relative_days,
    json_str,
    json_value,
)

UTC = dt.UTC


@pytest.fixture
def filters_engine(make_engine: Callable[..., TemplateEngine]) -> TemplateEngine:
    body = {"dt.j2": "{{ when | local_dt }}", "dt_fmt.j2": "{{ when | local_dt('%H:%M') }}",
            "date.j2": "{{ when | local_date }}", "rel.j2": "{{ value | relative_days }}",
            "rel_now.j2": "{{ value | relative_days(now=other) }}"}
    files = {f"{locale}/{name}": text for locale in ("zh_CN", "en_US") for name, text in body.items()}
    return make_engine(files)


@pytest.mark.parametrize(("locale", "expected"), [("zh_CN", "2026年11月23日 09:00"), ("en_US", "2026-11-23 09:00")])
def test_local_dt_from_utc_in_shanghai(filters_engine: TemplateEngine, locale: str, expected: str) -> None:
    when = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert filters_engine.render("x:dt", {"when": when}, locale=locale) == expected
    # ISO strings with an offset (JSON contexts, sample files) work the same way
    assert filters_engine.render("x:dt", {"when": "2026-11-23T01:00:00Z"}, locale=locale) == expected


def test_local_dt_uses_the_render_timezone_and_format(filters_engine: TemplateEngine) -> None:
    when = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert filters_engine.render("x:dt", {"when": when}, locale="en_US", tz="Europe/Berlin") == "2026-11-23 02:00"
    assert filters_engine.render("x:dt_fmt", {"when": when}, locale="en_US") == "09:00"


def test_local_dt_refuses_naive_times_and_dates(filters_engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="aware datetime"):
        filters_engine.render("x:dt", {"when": dt.datetime(2026, 11, 23, 9)}, locale="en_US")
    with pytest.raises(TemplateError, match="use local_date"):
        filters_engine.render("x:dt", {"when": dt.date(2026, 11, 23)}, locale="en_US")
    with pytest.raises(TemplateError, match="not an ISO date"):
        filters_engine.render("x:dt", {"when": "next tuesday"}, locale="en_US")


def test_local_date_crosses_midnight_in_the_zone(filters_engine: TemplateEngine) -> None:
    late_utc = dt.datetime(2026, 11, 22, 17, 30, tzinfo=UTC)  # 01:30 on the 23rd in Shanghai
    assert filters_engine.render("x:date", {"when": late_utc}, locale="zh_CN") == "2026年11月23日"
    assert filters_engine.render("x:date", {"when": late_utc}, locale="en_US", tz="UTC") == "2026-11-22"
    assert filters_engine.render("x:date", {"when": dt.date(2026, 1, 2)}, locale="en_US") == "2026-01-02"


@pytest.mark.parametrize(("days", "zh", "en"), [
    (3, "3 天后", "in 3 days"),
    (1, "明天", "tomorrow"),
    (0, "今天", "today"),
    (-1, "昨天", "yesterday"),
    (-3, "3 天前", "3 days ago"),
])
def test_relative_days_from_a_number(filters_engine: TemplateEngine, days: int, zh: str, en: str) -> None:
    assert filters_engine.render("x:rel", {"value": days}, locale="zh_CN") == zh
    assert filters_engine.render("x:rel", {"value": days}, locale="en_US") == en


def test_relative_days_from_a_date_uses_now_from_the_context(filters_engine: TemplateEngine) -> None:
    context = {"value": dt.date(2026, 11, 26), "now": dt.datetime(2026, 11, 23, 9, tzinfo=UTC)}
    assert filters_engine.render("x:rel", context, locale="zh_CN") == "3 天后"
    assert filters_engine.render("x:rel", context, locale="en_US") == "in 3 days"


def test_relative_days_counts_calendar_days_in_the_zone(filters_engine: TemplateEngine) -> None:
    # 16:30 UTC is already tomorrow 00:30 in Shanghai, so the 24th is "tomorrow", not "in 2 days"
    context = {"value": "2026-11-24", "now": "2026-11-22T16:30:00+00:00"}
    assert filters_engine.render("x:rel", context, locale="zh_CN") == "明天"
    assert filters_engine.render("x:rel", context, locale="en_US", tz="UTC") == "in 2 days"


def test_relative_days_explicit_now_wins(filters_engine: TemplateEngine) -> None:
    context = {"value": "2026-11-20", "other": "2026-11-23", "now": "2026-11-20"}
    assert filters_engine.render("x:rel_now", context, locale="en_US") == "3 days ago"


def test_relative_days_needs_now_for_a_date(filters_engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="needs `now`"):
        filters_engine.render("x:rel", {"value": "2026-11-24"}, locale="en_US")
    with pytest.raises(TemplateError, match="number of days"):
        filters_engine.render("x:rel", {"value": True}, locale="en_US")


def test_pure_formatters() -> None:
    when = dt.datetime(2026, 11, 23, 1, tzinfo=UTC)
    assert format_local_dt(when, locale="zh_CN") == "2026年11月23日 09:00"
    assert format_local_date(when, locale="en_US", tz="America/New_York") == "2026-11-22"
    assert format_relative_days(dt.date(2026, 11, 21), locale="zh_CN", now=when) == "2 天前"


def test_json_filters() -> None:
    nasty = 'a "b"\nc\\d\t中'
    assert json.loads(f'"{json_str(nasty)}"') == nasty
    assert json.loads(json_value({"x": nasty, "n": 1, "day": dt.date(2026, 1, 2)})) == {
        "x": nasty, "n": 1, "day": "2026-01-02"}
    assert json_str(3) == "3"


def test_filters_outside_a_render_are_refused() -> None:
    from engine.templates import BUILTIN_FILTERS

    with pytest.raises(RuntimeError, match="only run inside"):
        BUILTIN_FILTERS["local_dt"]("2026-11-23T01:00:00Z")
