"""The monthly outcome card: last month's milestones per project from the projects table's rows, on the
month's first working day only, in both languages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import plugins.project_delivery as project_delivery
from engine.config import parse_config
from engine.plugins import load_plugins
from engine.rules.workdays import WorkCalendar
from engine.templates import TemplateEngine
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.project_delivery import rules
from plugins.project_delivery.config import ProjectDeliverySettings
from plugins.project_delivery.models import OutcomeInput, ProjectState, StageEvent

ZONE = ZoneInfo("Asia/Shanghai")
SETTINGS = ProjectDeliverySettings()
ALL, EAST = "ou_rm_all", "ou_rm_east"


def project(pid: str, customer: str, product: str, region: str, start: date, reached: dict[str, date],
            status: str = "open") -> dict[str, Any]:
    """A projects-table row as the project's workflow writes it (rules.project_fields), its stages reached
    on the days given (besides the contract, on the start day)."""
    at = lambda day: datetime.combine(day, time(10), tzinfo=ZONE)  # noqa: E731
    planned = rules.plan(start, SETTINGS)
    history = [StageEvent(stage="contract_signed", at=at(start), via="create", planned=start)]
    history += [StageEvent(stage=key, at=at(day), by="ou_pm", planned=planned[key],
                           slipped_days=max(0, (day - planned[key]).days)) for key, day in reached.items()]
    state = ProjectState(project_id=pid, status=status, customer=customer, product=product, region=region,
                         name=f"【交付】{region}-{customer}-{product}", start_date=start, created_at=at(start),
                         stage=history[-1].stage, planned=planned, history=history)
    return {"record_id": f"rec{pid}", "fields": rules.project_fields(state, SETTINGS, start, ZONE)}


def month_rows(last: date) -> list[dict[str, Any]]:
    """Projects whose milestones fall in the month that starts on ``last`` (every offset below stays in its
    first 28 days): shipped is planned 60 days after the contract, installed 75, acceptance testing 85."""
    first = last.replace(day=1)
    day = lambda n: first + timedelta(days=n)  # noqa: E731
    return [
        # shipped (day 10) on its day, installed (day 25) three days late
        project("PD-A", "瑞金医院", "CT", "华东", day(-50), {"site_survey": day(-36), "site_readiness": day(-6),
                                                         "shipped": day(10), "installed": day(28)}),
        # site survey (day 4) not reached by the month's end
        project("PD-B", "仁济医院", "MR", "华东", day(-10), {}),
        # shipped (day 0) skipped, passed when installed on day 20; installed (day 15) 5 days late;
        # acceptance testing (day 25) on day 24
        project("PD-C", "协和医院", "DSA", "华北", day(-60), {"site_survey": day(-40), "site_readiness": day(-20),
                                                          "installed": day(20), "acceptance_testing": day(24)}),
        # cancelled: not counted
        project("PD-D", "朝阳医院", "CT", "华北", day(-50), {}, status="cancelled"),
        # its milestones were planned the month before: not in this card
        project("PD-E", "中山医院", "PET", "华东", day(-130), {"site_survey": day(-116)}),
    ]


async def test_the_first_working_day_brings_last_months_milestones(scenario_harness: Any) -> None:
    # the next first working day of a month; the company makes it a day off of its own, so the card goes on
    # the working day after it; the reported month holds a day off too
    calendar = WorkCalendar(ZONE)
    planned = moments.ahead(moments.first_workday_of_month(time(9, 0)), calendar).date()
    last = planned.replace(day=1) - timedelta(days=1)
    first = WorkCalendar(ZONE, holidays=[planned]).next_workday(planned)
    settings = {"report_recipients": {"": [ALL], "华东": [EAST]}}
    config = org_config(plugins=["project_delivery"], settings={"project_delivery": settings},
                        extra={"holidays": [planned.isoformat(), last.replace(day=3).isoformat()]})
    async with scenario_harness({"project_delivery": project_delivery}, config=config) as env:
        env.standin.state.merge_json({"bitable": {"bascnDelivery": {"tblProjects": {"records": month_rows(last)}}}})
        await env.begin_at(moments.at(datetime.combine(planned, time(9), tzinfo=ZONE)))
        off = await env.start_workflow("project_delivery.MonthlyOutcome", OutcomeInput(org="acme"), id="pd-off")
        assert await off.result() == 0
        assert env.messages(to=ALL) == [] and env.messages(to=EAST) == []

        await env.advance_to(datetime.combine(first, time(9), tzinfo=ZONE))
        run = await env.start_workflow("project_delivery.MonthlyOutcome", OutcomeInput(org="acme"), id="pd-first")
        assert await run.result() == 2
        (card,) = env.messages(to=ALL)
        assert card.card["header"]["title"]["content"] == f"{last:%Y-%m} 交付里程碑"
        elements = card.card["body"]["elements"]
        (chart,) = [e for e in elements if e["tag"] == "chart"]
        assert chart["chart_spec"]["title"] == {"text": "各项目里程碑"}
        assert chart["chart_spec"]["data"]["values"] == [
            {"label": "仁济医院 · MR", "value": 1, "series": "应达成里程碑"},
            {"label": "仁济医院 · MR", "value": 0, "series": "按时达成"},
            {"label": "瑞金医院 · CT", "value": 2, "series": "应达成里程碑"},
            {"label": "瑞金医院 · CT", "value": 1, "series": "按时达成"},
            {"label": "协和医院 · DSA", "value": 3, "series": "应达成里程碑"},
            {"label": "协和医院 · DSA", "value": 1, "series": "按时达成"}]
        open_days = (last - last.replace(day=5)).days  # site survey planned on the 5th, open at the month's end
        (panel,) = [e for e in elements if e["tag"] == "collapsible_panel"]
        assert panel["elements"][0]["content"] == (
            f"**【交付】华东-仁济医院-MR**：应达成 1 个，按时 0 个，延期达成 0 个，仍未达成 1 个；"
            f"延期 p50 {open_days} 天，最长 {open_days} 天\n"
            "**【交付】华东-瑞金医院-CT**：应达成 2 个，按时 1 个，延期达成 1 个，仍未达成 0 个；"
            "延期 p50 3 天，最长 3 天\n"
            "**【交付】华北-协和医院-DSA**：应达成 3 个，按时 1 个，延期达成 2 个，仍未达成 0 个；"
            "延期 p50 12.5 天，最长 20 天")
        (east,) = env.messages(to=EAST)  # the region's card: its projects only
        assert east.card["header"]["title"]["content"] == f"{last:%Y-%m} 交付里程碑 · 华东"
        assert "协和医院" not in str(east.card) and "瑞金医院" in str(east.card) and "中山医院" not in str(east.card)

        # the schedule starts it again on a later working day: not the first one, nothing more is sent
        later = calendar.next_workday((await env.now()).astimezone(ZONE).date() + timedelta(days=1))
        await env.advance_to(datetime.combine(later, time(9), tzinfo=ZONE))
        again = await env.start_workflow("project_delivery.MonthlyOutcome", OutcomeInput(org="acme"), id="pd-again")
        assert await again.result() == 0
        assert len(env.messages(to=ALL)) == 1 and len(env.messages(to=EAST)) == 1


def test_milestones_of_a_month_from_the_rows() -> None:
    last = date(2026, 10, 31)
    rows = rules.milestone_outcomes([r["fields"] for r in month_rows(last)], SETTINGS, date(2026, 10, 1), last,
                                    ZONE)
    assert [(r.project_id, r.region, r.due, r.on_time, r.late, r.open, r.slip_p50, r.slip_max) for r in rows] == [
        ("PD-B", "华东", 1, 0, 0, 1, 26.0, 26), ("PD-A", "华东", 2, 1, 1, 0, 3.0, 3),
        ("PD-C", "华北", 3, 1, 2, 0, 12.5, 20)]
    assert rules.stage_log_days("2026-10-05 09:00 现场勘察 (card ou_x, 延期3天)\nnot a line", SETTINGS) == [
        (1, date(2026, 10, 5))]


def test_the_schedule_runs_in_the_first_twelve_days_when_someone_gets_the_card() -> None:
    plugins = load_plugins(modules={"project_delivery": project_delivery}, entry_points=False)

    def outcome_specs(settings: dict[str, Any]) -> list[Any]:
        doc = org_config(plugins=["project_delivery"], settings={"project_delivery": settings})
        org = parse_config(doc, Path("engine.toml"), plugins.scenarios).org("acme")
        return [s for s in project_delivery.schedules(org=org) if s.id == "monthly_outcome"]

    (outcome,) = outcome_specs({"report_recipients": {"": [ALL]}, "report_hour": 8})
    assert outcome.cron == "0 8 1-12 * *" and outcome.workflow == "project_delivery.MonthlyOutcome"
    assert outcome_specs({}) == []


def test_the_card_renders_in_both_languages() -> None:
    engine = TemplateEngine({"project_delivery": Path(project_delivery.__file__).parent / "templates"})
    assert engine.check_all() == []
    sample = engine.sample_context("project_delivery:outcome.card")
    zh = engine.render("project_delivery:outcome.card", sample, locale="zh_CN")
    en = engine.render("project_delivery:outcome.card", sample, locale="en_US")
    assert "2026-10 交付里程碑" in zh and "各项目里程碑" in zh and "延期 p50 3 天" in zh and "Milestone" not in zh
    assert "Delivery milestones 2026-10" in en and "Milestones by project" in en and "slip p50 3 day(s)" in en
    assert "里程碑" not in en


@pytest.mark.parametrize(("moment", "sent"), [("2026-11-02T09:00:00+08:00", 1), ("2026-11-03T09:00:00+08:00", 0)])
async def test_october_2026_with_national_day(scenario_harness: Any, moment: str, sent: int) -> None:
    # 2 November 2026 (a Monday) is November's first working day: October's card goes; the 3rd sends none.
    # The organization's clock stands (almost) still at that moment, whatever day the test runs.
    config = org_config(plugins=["project_delivery"], settings={"project_delivery": {"report_recipients": {"": [ALL]}}},
                        extra={"clock": {"origin": moment, "scale": 1e-9}})
    async with scenario_harness({"project_delivery": project_delivery}, config=config) as env:
        rows = month_rows(date(2026, 10, 31))  # PD-A ships on 11 October, after the National Day week
        env.standin.state.merge_json({"bitable": {"bascnDelivery": {"tblProjects": {"records": rows}}}})
        run = await env.start_workflow("project_delivery.MonthlyOutcome", OutcomeInput(org="acme"), id="pd-outcome")
        assert await run.result() == sent
        if sent:
            (card,) = env.messages(to=ALL)
            assert card.card["header"]["title"]["content"] == "2026-10 交付里程碑"
            (panel,) = [e for e in card.card["body"]["elements"] if e["tag"] == "collapsible_panel"]
            # the site survey planned on 5 October is still open on the 31st: 26 days
            assert panel["elements"][0]["content"] == (
                "**【交付】华东-仁济医院-MR**：应达成 1 个，按时 0 个，延期达成 0 个，仍未达成 1 个；"
                "延期 p50 26 天，最长 26 天\n"
                "**【交付】华东-瑞金医院-CT**：应达成 2 个，按时 1 个，延期达成 1 个，仍未达成 0 个；"
                "延期 p50 3 天，最长 3 天\n"
                "**【交付】华北-协和医院-DSA**：应达成 3 个，按时 1 个，延期达成 2 个，仍未达成 0 个；"
                "延期 p50 12.5 天，最长 20 天")
        else:
            assert env.messages(to=ALL) == []
