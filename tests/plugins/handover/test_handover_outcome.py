"""The monthly outcome card: last month's handovers per department from the recorded rows, on the month's
first working day only, in both languages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from handover_helpers import HEAD, OFFICE, RECORDS, handover_settings

import plugins.handover as handover
from engine.config import parse_config
from engine.plugins import load_plugins
from engine.rules.workdays import WorkCalendar
from engine.sdk import cells
from engine.templates import TemplateEngine
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.handover import models as m
from plugins.handover import rules

ZONE = ZoneInfo("Asia/Shanghai")


def record(department: str, shift: datetime, status: str, *, on_time: bool = True,
           ack_minutes: float | None = None) -> dict[str, Any]:
    """A handover record as the shift's workflow writes it (submitted unless missing)."""
    key = f"{department}:{shift:%Y-%m-%dT%H:%M}"
    fields: dict[str, Any] = {
        m.H_KEY: key, m.H_DEPARTMENT: department, m.H_SITE: "", m.H_SHIFT: key.split(":", 1)[1],
        m.H_MONTH: f"{shift:%Y-%m}", m.H_STATUS: status, m.H_ON_TIME: on_time and status != "missing"}
    if status != "missing":
        fields[m.H_SUBMITTED] = cells.encode_moment(shift - timedelta(minutes=10 if on_time else -20))
    if ack_minutes is not None:
        fields[m.H_ACK_MINUTES] = ack_minutes
    return {"record_id": f"rec{department}{shift:%Y%m%d%H%M}", "fields": fields}


def month_records(first: date, holiday: date) -> list[dict[str, Any]]:
    """The reported month (the one before ``first``): ICU 5 handovers, cardiology 3, plus rows of the
    months around it that must not count."""
    last = (first.replace(day=1) - timedelta(days=1)).replace(day=1)
    at = lambda day, hour: datetime.combine(last + timedelta(days=day), time(hour), tzinfo=ZONE)  # noqa: E731
    on_holiday = datetime.combine(holiday, time(8), tzinfo=ZONE)
    return [
        record("icu", at(0, 8), "acknowledged", ack_minutes=10),
        record("icu", at(0, 20), "acknowledged", ack_minutes=20),
        record("icu", on_holiday, "acknowledged", on_time=False, ack_minutes=40),
        record("icu", at(3, 20), "unacknowledged"),
        record("icu", at(4, 8), "missing"),
        record("cardio", at(1, 8), "acknowledged", ack_minutes=5),
        record("cardio", at(1, 20), "acknowledged", on_time=False, ack_minutes=65),
        record("cardio", at(2, 8), "unacknowledged", on_time=False),
        record("icu", datetime.combine(last - timedelta(days=2), time(8), tzinfo=ZONE), "acknowledged",
               ack_minutes=999),  # the month before
        record("icu", datetime.combine(first, time(8), tzinfo=ZONE), "acknowledged", ack_minutes=999),  # this month
    ]


async def test_the_first_working_day_brings_last_months_outcome(scenario_harness: Any) -> None:
    # the next first working day of a month; the hospital makes it a day off of its own, so the card goes on
    # the working day after it; the reported month has a day off too (a handover on it counts like any other)
    calendar = WorkCalendar(ZONE)
    planned = moments.ahead(moments.first_workday_of_month(time(9, 0)), calendar).date()
    last = (planned.replace(day=1) - timedelta(days=1)).replace(day=1)
    holiday = last + timedelta(days=2)
    first = WorkCalendar(ZONE, holidays=[planned]).next_workday(planned)
    settings = handover_settings(report_recipients={"": [OFFICE], "icu": [HEAD]})
    settings["departments"]["cardio"] = {"name": "心内科", "head": "ou_head_cardio"}
    settings["departments"]["icu"]["name"] = "重症医学科"
    config = org_config(plugins=["handover"], settings={"handover": settings},
                        extra={"holidays": [planned.isoformat(), holiday.isoformat()]})
    async with scenario_harness({"handover": handover}, config=config) as env:
        env.standin.state.merge_json({"bitable": {RECORDS["app_token"]: {RECORDS["table_id"]: {
            "records": month_records(first, holiday)}}}})
        # the calendar's first working day, but the hospital's day off: nothing is sent
        await env.begin_at(moments.at(datetime.combine(planned, time(9), tzinfo=ZONE)))
        off = await env.start_workflow("handover.MonthlyOutcome", m.OutcomeInput(org="acme"), id="outcome-off")
        assert await off.result() == 0
        assert env.messages(to=OFFICE) == [] and env.messages(to=HEAD) == []

        await env.advance_to(datetime.combine(first, time(9), tzinfo=ZONE))
        run = await env.start_workflow("handover.MonthlyOutcome", m.OutcomeInput(org="acme"), id="outcome-first")
        assert await run.result() == 2
        (office,) = env.messages(to=OFFICE)
        elements = office.card["body"]["elements"]
        assert office.card["header"]["title"]["content"] == f"{last:%Y-%m} 交班成效"
        (chart,) = [e for e in elements if e["tag"] == "chart"]
        assert chart["chart_spec"]["title"] == {"text": "各科室交班数"}
        # names, not ids; handovers and on time per department (on time: submitted before the change)
        assert chart["chart_spec"]["data"]["values"] == [
            {"name": "心内科", "value": 3, "series": "交班数"},
            {"name": "心内科", "value": 1, "series": "按时提交"},
            {"name": "重症医学科", "value": 5, "series": "交班数"},
            {"name": "重症医学科", "value": 3, "series": "按时提交"}]
        (panel,) = [e for e in elements if e["tag"] == "collapsible_panel"]
        # ICU: acknowledged in 10, 20, 40 min -> p50 20, p90 36; cardiology: 5, 65 -> p50 35, p90 59
        assert panel["elements"][0]["content"] == (
            "**心内科**：交班 3 次，已提交 3 次，按时 1 次；"
            "确认用时 p50 35.0 分钟 / p90 59.0 分钟；未确认 1 次，未提交 0 次\n"
            "**重症医学科**：交班 5 次，已提交 4 次，按时 3 次；"
            "确认用时 p50 20.0 分钟 / p90 36.0 分钟；未确认 1 次，未提交 1 次")
        # 7 handovers written x 30 minutes (the setting's default), said to be an estimate
        assert "约 3.5 小时" in str(office.card) and "估算" in str(office.card) and "并非实测" in str(office.card)
        # the department's head gets the department's figures only
        (head,) = env.messages(to=HEAD)
        assert head.card["header"]["title"]["content"] == f"{last:%Y-%m} 交班成效 · 重症医学科"
        assert "心内科" not in str(head.card) and "约 2.0 小时" in str(head.card)

        # the schedule starts it again on a later working day: not the first one, nothing more is sent
        later = calendar.next_workday((await env.now()).astimezone(ZONE).date() + timedelta(days=1))
        await env.advance_to(datetime.combine(later, time(9), tzinfo=ZONE))
        again = await env.start_workflow("handover.MonthlyOutcome", m.OutcomeInput(org="acme"), id="outcome-again")
        assert await again.result() == 0
        assert len(env.messages(to=OFFICE)) == 1 and len(env.messages(to=HEAD)) == 1


def test_the_schedule_runs_in_the_first_twelve_days_when_someone_gets_the_card() -> None:
    plugins = load_plugins(modules={"handover": handover}, entry_points=False)

    def outcome_specs(**settings: Any) -> list[Any]:
        doc = org_config(plugins=["handover"], settings={"handover": handover_settings(**settings)})
        org = parse_config(doc, Path("engine.toml"), plugins.scenarios).org("acme")
        return [s for s in handover.schedules(org=org) if s.id == "monthly-outcome"]

    (outcome,) = outcome_specs(report_recipients={"": [OFFICE]}, report_hour=8)
    assert outcome.cron == "0 8 1-12 * *" and outcome.workflow == "handover.MonthlyOutcome"
    assert outcome.args == [{"org": "acme"}]
    assert outcome_specs() == []  # nobody to send it to: no schedule


def test_outcome_rows_from_records() -> None:
    first, holiday = date(2026, 11, 2), date(2026, 10, 3)
    rows = rules.outcome_rows([r["fields"] for r in month_records(first, holiday)], "2026-10", {"icu": "ICU"})
    assert [(r.department, r.name, r.handovers, r.written, r.on_time, r.acknowledged, r.unacknowledged, r.missing)
            for r in rows] == [("icu", "ICU", 5, 4, 3, 3, 1, 1), ("cardio", "cardio", 3, 3, 1, 2, 1, 0)]
    assert (rows[0].ack_p50, rows[0].ack_p90, rows[1].ack_p50, rows[1].ack_p90) == (20.0, 36.0, 35.0, 59.0)
    assert rules.overtime_estimate_hours(rows, 30) == 3.5
    assert rules.outcome_rows([], "2026-10", {}) == []


def test_the_card_renders_in_both_languages() -> None:
    engine = TemplateEngine({"handover": Path(handover.__file__).parent / "templates"})
    assert engine.check_all() == []
    sample = engine.sample_context("handover:outcome.card")
    zh = engine.render("handover:outcome.card", sample, locale="zh_CN")
    en = engine.render("handover:outcome.card", sample, locale="en_US")
    assert "2026-10 交班成效" in zh and "各科室交班数" in zh and "估算" in zh and "Handover" not in zh
    assert "Handover outcome 2026-10" in en and "Handovers by department" in en and "an estimate" in en
    assert "交班成效" not in en


def pinned_clock(moment: str) -> dict[str, Any]:
    """An organization clock that stands (almost) still at ``moment``: business time is that fixed day
    whatever day the test runs (a clock slowed a billion times, ``[organizations.<id>.clock]``)."""
    return {"clock": {"origin": moment, "scale": 1e-9}}


@pytest.mark.parametrize(("moment", "sent"), [("2026-11-02T09:00:00+08:00", 1), ("2026-11-03T09:00:00+08:00", 0)])
async def test_october_2026_with_national_day(scenario_harness: Any, moment: str, sent: int) -> None:
    # 2 November 2026 (a Monday) is November's first working day: October's card goes; the 3rd sends none
    settings = handover_settings(report_recipients={"": [OFFICE]})
    config = org_config(plugins=["handover"], settings={"handover": settings}, extra=pinned_clock(moment))
    async with scenario_harness({"handover": handover}, config=config) as env:
        records = month_records(date(2026, 11, 2), date(2026, 10, 3))  # one on National Day
        env.standin.state.merge_json({"bitable": {RECORDS["app_token"]: {RECORDS["table_id"]: {"records": records}}}})
        run = await env.start_workflow("handover.MonthlyOutcome", m.OutcomeInput(org="acme"), id="outcome")
        assert await run.result() == sent
        if sent:
            (office,) = env.messages(to=OFFICE)
            assert office.card["header"]["title"]["content"] == "2026-10 交班成效"
            (panel,) = [e for e in office.card["body"]["elements"] if e["tag"] == "collapsible_panel"]
            # cardiology is not in these settings: its records show under its id
            assert panel["elements"][0]["content"] == (
                "**ICU**：交班 5 次，已提交 4 次，按时 3 次；"
                "确认用时 p50 20.0 分钟 / p90 36.0 分钟；未确认 1 次，未提交 1 次\n"
                "**cardio**：交班 3 次，已提交 3 次，按时 1 次；"
                "确认用时 p50 35.0 分钟 / p90 59.0 分钟；未确认 1 次，未提交 0 次")
        else:
            assert env.messages(to=OFFICE) == []
