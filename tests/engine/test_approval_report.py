"""Approval time, measured: decided approvals recorded once each, and last month's card on the first working day.

Real pieces throughout: the time-skipping Temporal server and a worker, the Feishu stand-in over HTTP
(Approval API v4, contact directory, Bitable), approval events pushed over HTTP to the engine's ingress.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from approval_plugin import PurchasePlugin
from temporalio.testing import ActivityEnvironment

from engine.approval_report import (
    FIELDS,
    ApprovalReportActivities,
    RecordApproval,
    ReportInput,
    approval_row,
)
from engine.approvals import WORKFLOWS, approval_workflow_id
from engine.feishu import requests as rq
from engine.rules.recurrence import cron_iter, first_workday_of_month
from engine.rules.workdays import WorkCalendar
from engine.testing import moments
from engine.testing.kit import ScenarioHarness, org_config
from engine.testing.replay import assert_replays, keep_history, load_history

RECORDED_HISTORY = Path(__file__).parent / "histories" / "approval_follow_recorded.json"
CODE, LEAVE = "PURCHASE-7C46", "LEAVE-11AB"
APP, TABLE = "bascnApprovals", "tblDecided"
HQ, WEST_BOSS, EAST_BOSS = "ou_hq_ops", "ou_west_boss", "ou_east_boss"
PEOPLE = {"ou_head": ("王主任", "Director Wang"), "ou_finance": ("李娜", "Li Na"),
          "ou_deputy": ("张副主任", "Deputy Zhang")}


def config(**report: Any) -> dict[str, Any]:
    settings = {"approval_code": CODE}
    return org_config(
        plugins=["purchase"], settings={"purchase": {"approval": settings}},
        sites={"west": {"name": "西院", "locale": "en_US"}, "east": {"name": "东院"}},
        extra={"name": "华东医疗集团", "approvals": {"report": {"app_token": APP, "table_id": TABLE, **report}}})


def seed(env: ScenarioHarness) -> None:
    env.standin.add_approval_definition(CODE, "采购审批", nodes=[
        {"custom_node_id": "dept_head", "name": "科室主任", "approvers": ["ou_head"]},
        {"custom_node_id": "finance", "name": "财务", "approvers": ["ou_finance"]}])
    for open_id, (name, en_name) in PEOPLE.items():
        env.standin.add_user(open_id, name=name, en_name=en_name)


def rows(env: ScenarioHarness) -> list[dict[str, Any]]:
    table = env.standin.state.table(APP, TABLE) or {"records": {}}
    return [record["fields"] for record in table["records"].values()]


# ------------------------------------------------------------------------------------------ recording


async def test_a_decision_seen_twice_is_recorded_once_with_its_tasks(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        handle = await env.start_workflow("purchase.Request", "west", "ou_applicant", "采购 超声探头",
                                          id=env.workflow_id("purchase", "PR-1"))
        (code,) = env.standin.state.approval_instances
        env.standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy")
        env.standin.decide_approval(code, "approve", open_id="ou_deputy")
        approved = env.standin.decide_approval(code, "approve", open_id="ou_finance")
        for _ in range(2):  # Feishu delivers at least once
            await env.push_payload(approved)
        assert [d["outcome"] for d in await handle.result()] == ["approved"]

        instance = env.standin.state.approval_instances[code]
        (row,) = rows(env)
        assert {key: row[FIELDS[key]] for key in ("instance_code", "definition", "definition_name", "org",
                                                  "site", "site_name", "scenario", "title", "status")} == {
            "instance_code": code, "definition": CODE, "definition_name": "采购审批", "org": env.org.id,
            "site": "west", "site_name": "西院", "scenario": "purchase", "title": "采购 超声探头",
            "status": "APPROVED"}
        assert (row[FIELDS["started"]], row[FIELDS["ended"]]) == (int(instance["start_time"]),
                                                                  int(instance["end_time"]))
        tasks = json.loads(row[FIELDS["tasks"]])
        assert [(t["node"], t["approver"], t["name"], t["en_name"], t["status"]) for t in tasks] == [
            ("科室主任", "ou_head", "王主任", "Director Wang", "TRANSFERRED"),
            ("科室主任", "ou_deputy", "张副主任", "Deputy Zhang", "APPROVED"),
            ("财务", "ou_finance", "李娜", "Li Na", "APPROVED")]
        assert [(t["start"], t["end"]) for t in tasks] == [
            (int(t["start_time"]), int(t["end_time"])) for t in instance["task_list"]]

        # the follower's record retried (the activity's answer lost): still one row, updated in place
        public = rq.ApprovalInstance.model_validate({**instance, "tasks": [
            {**t, "start_time": int(t["start_time"]), "end_time": int(t["end_time"])} for t in instance["task_list"]]})
        again = RecordApproval(org=env.org.id, scenario="purchase", site="west", site_name="西院",
                               title="采购 超声探头", instance=public)
        activities = ApprovalReportActivities(env.config, env.app.feishu)
        assert await ActivityEnvironment().run(activities.record, again) is True
        assert rows(env) == [row]

        # recorded once (RECORD_APPROVAL_HISTORY=1 records again): later changes must replay it
        history = await env.client.get_workflow_handle(approval_workflow_id(env.org.id, code)).fetch_history()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, RECORDED_HISTORY, "RECORD_APPROVAL_HISTORY")


async def test_the_recorded_follower_that_records_replays() -> None:
    """A follower that read a transfer, then the approval, and recorded the instance."""
    await assert_replays(load_history(RECORDED_HISTORY, "acme:engine:approval:recorded"), WORKFLOWS)


async def test_an_organization_without_the_table_records_nothing(scenario_harness: Any) -> None:
    document = config()
    del document["organizations"]["acme"]["approvals"]
    async with scenario_harness({"purchase": PurchasePlugin()}, config=document) as env:
        seed(env)
        handle = await env.start_workflow("purchase.Request", None, "ou_applicant", "采购 输液泵",
                                          id=env.workflow_id("purchase", "PR-2"))
        (code,) = env.standin.state.approval_instances
        await env.push_payload(env.standin.decide_approval(code, "reject", open_id="ou_head"))
        assert [d["outcome"] for d in await handle.result()] == ["rejected"]
        assert env.standin.state.bitable == {}


# ------------------------------------------------------------------------------------------ the card


def holiday_first(clock: time) -> moments.Situation:
    """The next 1st of a month that is a day off on a weekday (New Year's Day, National Day ...)."""

    def find(after: datetime, calendar: WorkCalendar) -> datetime | None:
        for offset in range(moments.HORIZON_DAYS):
            day = after.date() + timedelta(days=offset)
            moment = calendar.at_local(day, clock)
            if day.day == 1 and day.weekday() < 5 and not calendar.is_workday(day) and moment > after:
                return moment
        return None

    return moments.Situation(f"a month's 1st that is a holiday, at {clock:%H:%M}", find)


def decided(code: str, definition: tuple[str, str], status: str, start: datetime, seconds: int,
            tasks: list[tuple[str, str, str, int, int]], *, site: str = "", title: str = "") -> dict[str, Any]:
    """A table row as the recorder writes it: ``tasks`` are (node, open id, status, start, end) in seconds
    after ``start``."""
    ms = int(start.timestamp() * 1000)
    instance = rq.ApprovalInstance(
        instance_code=code, approval_code=definition[0], approval_name=definition[1], status=status,
        start_time=ms, end_time=ms + seconds * 1000,
        tasks=[rq.ApprovalTask(id=f"{code}-{i}", open_id=who, status=state, node_name=node,
                               start_time=ms + a * 1000, end_time=ms + b * 1000)
               for i, (node, who, state, a, b) in enumerate(tasks)])
    names = {site: "西院", "": ""}
    request = RecordApproval(org="acme", scenario="purchase", site=site or None, site_name=names.get(site, site),
                             title=title, instance=instance)
    return {"record_id": f"rec{code}", "fields": approval_row(request, PEOPLE)}


def last_months_rows(start: date, zone: Any) -> list[dict[str, Any]]:
    """Four decided approvals of the month before ``start`` (figures worked out in the test's comments),
    one of two months before and one of this month (neither counted)."""
    first = (start.replace(day=1) - timedelta(days=1)).replace(day=3)

    def at(day: date, hour: int = 9) -> datetime:
        return datetime.combine(day, time(hour), tzinfo=zone)

    purchase, leave = (CODE, "采购审批"), (LEAVE, "请假审批")
    return [
        # west, approved in 1.5 h: head held 30 min, finance 1 h
        decided("I1", purchase, "APPROVED", at(first), 5400,
                [("科室主任", "ou_head", "APPROVED", 0, 1800), ("财务", "ou_finance", "APPROVED", 1800, 5400)],
                site="west", title="采购 超声探头"),
        # the group's own, rejected after 25 h: head held 1 d, finance 1 h
        decided("I2", purchase, "REJECTED", at(first + timedelta(days=1)), 90000,
                [("科室主任", "ou_head", "APPROVED", 0, 86400), ("财务", "ou_finance", "REJECTED", 86400, 90000)],
                title="采购 输液泵"),
        # west, withdrawn after 10 min: the task Feishu closed counts for nobody
        decided("I3", purchase, "CANCELED", at(first + timedelta(days=2)), 600,
                [("科室主任", "ou_head", "DONE", 0, 600)], site="west", title="采购 监护仪"),
        # west, approved in 2 h: head transferred after 20 min, the deputy held 100 min
        decided("I4", leave, "APPROVED", at(first + timedelta(days=3)), 7200,
                [("主任审批", "ou_head", "TRANSFERRED", 0, 1200), ("主任审批", "ou_deputy", "APPROVED", 1200, 7200)],
                site="west", title="请假 3 天"),
        decided("OLD", purchase, "APPROVED", at(first - timedelta(days=40)), 60,
                [("科室主任", "ou_head", "APPROVED", 0, 60)], site="west"),
        decided("NOW", purchase, "APPROVED", at(start, 8), 60,
                [("科室主任", "ou_head", "APPROVED", 0, 60)], site="west"),
    ]


def lines(card: Any) -> list[str]:
    texts = [card["header"]["title"]["content"]]
    for element in card["body"]["elements"]:
        if element["tag"] != "chart":
            texts.extend(element["content"].split("\n"))
    return texts


def chart_values(card: Any) -> list[tuple[str, str, int]]:
    (chart,) = [e for e in card["body"]["elements"] if e["tag"] == "chart"]
    return [(v["name"], v["series"], v["value"]) for v in chart["chart_spec"]["data"]["values"]]


async def test_last_months_cards_on_the_first_working_day_after_a_holiday(scenario_harness: Any) -> None:
    report = {"recipients": [HQ], "top_steps": 2, "sites": {"west": {"recipients": [WEST_BOSS]},
                                                             "east": {"recipients": [EAST_BOSS]}}}
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config(**report)) as env:
        calendar = env.calendar()
        first = await env.begin_at(holiday_first(time(9, 0)))  # what the schedule fires at (09:00, days 1-12)
        month = f"{first.date().replace(day=1) - timedelta(days=1):%Y-%m}"
        records = last_months_rows(first.date(), calendar.zone)
        env.standin.state.merge_json({"bitable": {APP: {TABLE: {"records": records}}}})
        workday = first_workday_of_month(first.year, first.month, calendar)
        assert workday > first.date()

        sent_on = {}
        for offset in range(12):  # every morning the schedule fires (days 1-12); only one run sends
            day = first.date() + timedelta(days=offset)
            if offset:
                await env.advance_to(calendar.at_local(day, time(9, 0)))
            with env.env.auto_time_skipping_disabled():  # the run's day is the day it started on
                handle = await env.start_workflow("engine.ApprovalReport", ReportInput(org="acme"),
                                                  id=f"acme:engine:schedule:approval_report-{day.isoformat()}")
                sent_on[day] = await handle.result()
                if day == workday:  # a run repeated that day (a second worker, a retry) sends nothing twice
                    again = await env.start_workflow("engine.ApprovalReport", ReportInput(org="acme"),
                                                     id="acme:engine:again")
                    assert await again.result() == 3 and len(env.messages(to=HQ)) == 1
        assert {d: n for d, n in sent_on.items() if n} == {workday: 3}

        # the group's card, zh_CN: 4 approvals; decisions took 1.5 h, 2 h and 25 h: median 2 h, p90 25 h
        (group,) = env.messages(to=HQ)
        assert lines(group.card) == [
            f"{month} 审批用时 · 华东医疗集团",
            "**共 4 件审批**：通过 2，拒绝 1，撤回 1",
            "审批用时：中位 2.0 小时，P90 1.0 天",
            "**按审批类型**",
            "- 采购审批：3 件（通过 1，拒绝 1，撤回 1），中位 1.5 小时，P90 1.0 天",
            "- 请假审批：1 件（通过 1，拒绝 0，撤回 0），中位 2.0 小时，P90 2.0 小时",
            "**各审批人处理用时**",
            "- 王主任：3 个环节，共 1.0 天，中位 30.0 分钟",  # 20 min + 30 min + 24 h
            "- 李娜：2 个环节，共 2.0 小时，中位 1.0 小时",
            "- 张副主任：1 个环节，共 1.7 小时，中位 1.7 小时",  # 100 min
            "**最慢的环节**",
            "- 1.0 天：王主任 在「采购审批」的科室主任环节，「采购 输液泵」",
            "- 1.7 小时：张副主任 在「请假审批」的主任审批环节，「请假 3 天」（西院）"]
        # west's card, en_US: its three approvals, names in English
        (west,) = env.messages(to=WEST_BOSS)
        assert lines(west.card) == [
            f"Approval times {month} · 西院",
            "**3 approval(s)**: 2 approved, 0 rejected, 1 withdrawn",
            "Time to decision: median 1.5 h, p90 2.0 h",
            "**By approval**",
            "- 采购审批: 2 (1 approved, 0 rejected, 1 withdrawn), median 1.5 h, p90 1.5 h",
            "- 请假审批: 1 (1 approved, 0 rejected, 0 withdrawn), median 2.0 h, p90 2.0 h",
            "**Time each approver held them**",
            "- Deputy Zhang: 1 task(s), 1.7 h in all, median 1.7 h",
            "- Li Na: 1 task(s), 1.0 h in all, median 1.0 h",
            "- Director Wang: 2 task(s), 50.0 min in all, median 20.0 min",
            "**Slowest steps**",
            '- 1.7 h: Deputy Zhang at 主任审批 of 请假审批, "请假 3 天" (西院)',
            '- 1.0 h: Li Na at 财务 of 采购审批, "采购 超声探头" (西院)']
        # the chart: decisions by approval, the outcomes in each card's language
        assert chart_values(group.card) == [("采购审批", "通过", 1), ("采购审批", "拒绝", 1), ("采购审批", "撤回", 1),
                                            ("请假审批", "通过", 1), ("请假审批", "拒绝", 0), ("请假审批", "撤回", 0)]
        assert chart_values(west.card)[:3] == [("采购审批", "approved", 1), ("采购审批", "rejected", 0),
                                               ("采购审批", "withdrawn", 1)]
        # east had none: its card says so, in its (the group's) language
        (east,) = env.messages(to=EAST_BOSS)
        assert lines(east.card) == [f"{month} 审批用时 · 东院", f"{month} 没有办结的审批。"]
        for card in (group, west, east):
            assert "ou_" not in json.dumps(card.card) and "I1" not in json.dumps(card.card)  # names, not ids


def test_the_schedules_window_holds_every_first_working_day() -> None:
    """The cron fires on days 1-12: over two years, each month has exactly one run that is on its first
    working day (National Day's week pushes it to the 8th; January 2026's is a make-up Sunday, the 4th)."""
    calendar = WorkCalendar("Asia/Shanghai")
    start = datetime(2025, 12, 31, 12, tzinfo=calendar.zone)
    fires = [calendar.local(m).date() for m in cron_iter("0 9 1-12 * *", start, calendar.zone, 12 * 24)]
    sending = [d for d in fires if d == first_workday_of_month(d.year, d.month, calendar)]
    assert len(sending) == 24 and len({(d.year, d.month) for d in sending}) == 24
    assert {date(2026, 10, 8), date(2026, 1, 4)} <= set(sending) and date(2026, 10, 1) not in sending


def test_a_report_for_an_unknown_site_names_the_key(tmp_path: Path) -> None:
    from engine.config import ConfigError, parse_config
    from engine.plugins import load_plugins

    document = config(sites={"north": {"recipients": ["ou_x"]}}, chat_id="group-chat")
    scenarios = load_plugins(modules={"purchase": PurchasePlugin()}, entry_points=False).scenarios
    try:
        parse_config(document, tmp_path / "engine.toml", scenarios)
    except ConfigError as error:
        found = {(issue.key, issue.found) for issue in error.issues}
    else:
        raise AssertionError("the config was accepted")
    assert found == {("organizations.acme.approvals.report.sites.north", "'north'"),
                     ("organizations.acme.approvals.report.chat_id", "'group-chat'")}


def test_the_engine_declares_the_reports_schedule_only_where_a_card_goes(tmp_path: Path) -> None:
    from engine.config import parse_config
    from engine.plugins import load_plugins
    from engine.runtime.schedules import declared_schedules

    plugins = load_plugins(modules={"purchase": PurchasePlugin()}, entry_points=False)
    sending = parse_config(config(recipients=[HQ], send_hour=8), tmp_path / "engine.toml", plugins.scenarios)
    (schedule,) = declared_schedules(sending, plugins)
    assert (schedule.id, schedule.spec.cron, schedule.spec.workflow, schedule.timezone) == (
        "acme:engine:schedule:approval_report", "0 8 1-12 * *", "engine.ApprovalReport", "Asia/Shanghai")
    recording_only = parse_config(config(), tmp_path / "engine.toml", plugins.scenarios)
    assert declared_schedules(recording_only, plugins) == []
