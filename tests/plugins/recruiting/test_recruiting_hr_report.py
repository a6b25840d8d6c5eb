"""The HR monthly report as the group runs it: on the first working day of a month that begins with a
public holiday (New Year's Day, National Day), the schedule's run reads Feishu's contact directory over
HTTP (the stand-in), records the month's staff snapshot, compares it with the month before's recorded one
(joiners, a leaver, a transfer between hospitals), and sends headquarters' card and each hospital's, in
the hospital's language, with the table rows and the CSV export agreeing."""

from __future__ import annotations

import copy
import csv
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from recruiting_helpers import APP, add_row, config, rows, seed

import plugins.recruiting as recruiting
from engine.feishu.standin import EVENT_USER_DELETED
from engine.sdk import cells
from engine.testing import moments
from plugins.recruiting import hr_rules, rules
from plugins.recruiting.commands import write_hr_csv
from plugins.recruiting.config import RecruitingSettings

PLUGINS = {"recruiting": recruiting}
DEPARTMENTS = [("od_a", "A院", "0"), ("od_a_ortho", "骨科", "od_a"), ("od_a_nurse", "护理部", "od_a"),
               ("od_b", "B院", "0"), ("od_b_er", "急诊科", "od_b"), ("od_b_anes", "麻醉科", "od_b"),
               ("od_b_nurse", "护理部", "od_b")]
# who is in the directory at the reported month's end: 周九 joined A院, 吴十 B院; 赵六 moved from A院's
# 麻醉科 to B院's; 李四 (A院 骨科) left and is no longer in the directory
NOW = [("ou_s1", "张三", "od_a_ortho"), ("ou_s3", "王五", "od_a_nurse"), ("ou_s7", "周九", "od_a_ortho"),
       ("ou_s5", "钱七", "od_b_er"), ("ou_s6", "孙八", "od_b_er"), ("ou_s4", "赵六", "od_b_anes"),
       ("ou_s8", "吴十", "od_b_nurse")]
BEFORE = [("ou_s1", "张三", "hosp_a", "骨科"), ("ou_s2", "李四", "hosp_a", "骨科"),
          ("ou_s3", "王五", "hosp_a", "护理部"), ("ou_s4", "赵六", "hosp_a", "麻醉科"),
          ("ou_s5", "钱七", "hosp_b", "急诊科"), ("ou_s6", "孙八", "hosp_b", "急诊科")]


def hr_config() -> dict[str, Any]:
    document = copy.deepcopy(config())
    sites = document["organizations"][next(iter(document["organizations"]))]["sites"]
    sites["hosp_a"]["settings"]["recruiting"]["directory"] = {"department_id": "od_a"}
    sites["hosp_b"]["settings"]["recruiting"]["directory"] = {"department_id": "od_b"}
    sites["hosp_b"]["locale"] = "en_US"  # B院's HR reads English
    return document


def directory(env: Any) -> None:
    for department, name, parent in DEPARTMENTS:
        env.standin.state.add_department(department, name=name, parent_department_id=parent)
    for open_id, name, department in NOW:
        env.standin.add_user(open_id, name=name, department_ids=[department])


def recorded(env: Any, month: str) -> None:
    for open_id, name, site, department in BEFORE:
        add_row(env, "tblStaffSnapshot", f"snap_{month}_{open_id}", {
            "快照键": f"{month}:{open_id}", "月份": month, "用户ID": open_id, "姓名": name, "医院": site,
            "科室": department})


async def test_first_working_day_after_a_holiday_reports_people_in_both_languages(scenario_harness: Any,
                                                                                    tmp_path: Path) -> None:
    async with scenario_harness(PLUGINS, config=hr_config()) as env:
        seed(env, applications=False)
        for table in ("tblTalentDevelopment", "tblRiskCases"):  # the example's rows: this test enters its own
            env.standin.state.table(APP, table)["records"].clear()
        directory(env)
        first = await env.begin_at(moments.first_workday_after_holiday())
        assert first.day > 1  # the month's first days were a holiday
        calendar = rules.calendar_for("Asia/Shanghai")
        month = rules.previous_month(first.date())
        previous = hr_rules.previous_month_of(month)
        recorded(env, previous)
        start = hr_rules.month_start(month)
        add_row(env, "tblTalentDevelopment", "dev1", {"医院": "A院", "类型": "培训", "学时": 4, "姓名": "张三",
                                                      "日期": rules.day_ms(start + timedelta(days=2), calendar)})
        add_row(env, "tblOperations", "ops1", {"月份": month, "医院": "A院", "营业收入": 700000, "门诊人次": 1400})
        add_row(env, "tblRiskCases", "case1", {"医院": "hosp_b", "类型": "劳动纠纷", "事项": "加班费争议",
                                               "登记日期": rules.day_ms(start + timedelta(days=5), calendar)})

        handle = await env.start_workflow("recruiting.MonthlyReport", {"org": env.org.id},
                                          id=env.workflow_id("recruiting", f"report:daily:{first:%Y%m%d}"))
        result = await handle.result()
        assert result["month"] == month
        hr = result["hr"]
        assert hr["snapshot"] == 7 and hr["hospitals_sent"] == ["hosp_a", "hosp_b"]
        a, b = hr["hospitals"]
        assert (a["name"], a["headcount_start"], a["headcount_end"], a["joiners"], a["leavers"],
                a["transfers_out"]) == ("A院", 4, 3, 1, 1, 1)
        assert (b["name"], b["headcount_start"], b["headcount_end"], b["joiners"], b["transfers_in"]) == \
            ("B院", 2, 4, 1, 1)
        assert a["turnover_rate"] == round(1 / 3.5, 4) and hr["group"]["turnover_rate"] == round(1 / 6.5, 4)
        assert a["operations_per_head"]["revenue"] == 200000.0 and a["trainings"] == 1

        # the month's snapshot is recorded from the directory, names and departments, not ids
        snapshot = {r["用户ID"]: r for r in rows(env, "tblStaffSnapshot").values() if r["月份"] == month}
        assert len(snapshot) == 7 and snapshot["ou_s4"]["医院"] == "B院" and snapshot["ou_s4"]["科室"] == "麻醉科"

        group_card = env.messages(to="ou_group_hr")[-1].text
        assert f"人力资源月报 {month} · 集团" in group_card and "集团合计" in group_card and "A院" in group_card
        a_card = env.messages(to="ou_hr_a")[-1].text
        assert f"人力资源月报 {month} · A院" in a_card and "离职率 28.6%" in a_card and "骨科" in a_card
        b_card = env.messages(to="ou_hr_b")[-1].text
        assert f"HR monthly report {month} · B院" in b_card and "turnover 0.0%" in b_card
        assert "Labour dispute: 加班费争议" in b_card  # the case's subject is data; the words are English
        assert "离职率" not in b_card and "风险预警" not in b_card
        # the group's chart: people in post at the start and end of the month per hospital, in its language
        (chart,) = [e for e in env.messages(to="ou_group_hr")[-1].card["body"]["elements"] if e["tag"] == "chart"]
        assert chart["chart_spec"]["title"] == {"text": "在岗人数"}
        assert chart["chart_spec"]["data"]["values"] == [
            {"name": "A院", "value": 4, "series": "月初"}, {"name": "A院", "value": 3, "series": "月末"},
            {"name": "B院", "value": 2, "series": "月初"}, {"name": "B院", "value": 4, "series": "月末"}]
        (b_chart,) = [e for e in env.messages(to="ou_hr_b")[-1].card["body"]["elements"] if e["tag"] == "chart"]
        assert {v["series"] for v in b_chart["chart_spec"]["data"]["values"]} == {"Start of month", "End of month"}

        table = {r["报表键"]: r for r in rows(env, "tblHrMonthly").values()}
        assert table[f"{month}:hosp_a"]["医院"] == "A院" and table[f"{month}:*"]["医院"] == "集团"
        assert table[f"{month}:hosp_a"]["离职率"] == round(1 / 3.5, 4) and table[f"{month}:hosp_b"]["劳动纠纷"] == 1
        assert table[f"{month}:*"]["期末人数"] == 7 and table[f"{month}:*"]["调入"] == 1

        # the CSV export is the same figures
        out = tmp_path / "hr.csv"
        settings = RecruitingSettings()
        report = hr_rules.HrReport(month=month, as_of=first, group=hr_rules.HospitalFigures(**hr["group"]),
                                   hospitals=[hr_rules.HospitalFigures(**h) for h in hr["hospitals"]])
        write_hr_csv(hr_rules.hr_export_rows(report, settings, "en_US"), out, settings)
        with out.open(encoding="utf-8-sig", newline="") as handle_:
            exported = list(csv.DictReader(handle_))
        assert [r["hospital"] for r in exported] == ["A院", "B院", "Group"]
        assert exported[0]["turnover_rate"] == "0.2857" and exported[2]["headcount_end"] == "7"

        # a re-run for that month (by hand, days later) reads the recorded snapshot and records nothing
        env.standin.add_user("ou_s9", name="郑十一", department_ids=["od_a_ortho"])
        again = await env.start_workflow("recruiting.MonthlyReport", {"org": env.org.id, "month": month},
                                         id=env.workflow_id("recruiting", f"report:{month}:again"))
        rerun = (await again.result())["hr"]
        assert rerun["snapshot"] is None and rerun["group"]["headcount_end"] == 7


def cli_config(path: Path, org: str) -> Path:
    lines = [f"[organizations.{org}]", 'plugins = ["recruiting"]', 'tenant_key = "t_standin"',
             f"[organizations.{org}.sites.hosp_a]", 'name = "A院"',
             f"[organizations.{org}.sites.hosp_a.settings.recruiting.directory]", 'department_id = "od_a"',
             f"[organizations.{org}.sites.hosp_b]", 'name = "B院"',
             f"[organizations.{org}.sites.hosp_b.settings.recruiting.directory]", 'department_id = "od_b"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_snapshot_and_hr_report_commands(scenario_harness: Any, tmp_path: Path) -> None:
    import asyncio

    from click.testing import CliRunner

    from engine.cli import cli

    async with scenario_harness(PLUGINS, config=hr_config()) as env:
        directory(env)
        path = cli_config(tmp_path / "engine.toml", env.org.id)

        async def run(*args: str) -> Any:
            result = await asyncio.to_thread(CliRunner().invoke, cli, ["--config", str(path), "recruiting", *args,
                                                                       "--org", env.org.id])
            assert result.exit_code == 0, result.output
            return result

        assert "2026-08: 7 people in post recorded" in (await run("snapshot", "--month", "2026-08")).output
        # in September 张三 leaves (out of the directory) and 郑十一 joins B院's 急诊科
        del env.standin.state.users["ou_s1"]
        env.standin.add_user("ou_s9", name="郑十一", department_ids=["od_b_er"])
        await run("snapshot", "--month", "2026-09")
        out = tmp_path / "hr.csv"
        result = await run("hr-report", "--month", "2026-09", "--out", str(out), "--locale", "en_US")
        assert f"{out}: 2 hospital(s) and the group for 2026-09" in result.output
        with out.open(encoding="utf-8-sig", newline="") as handle:
            figures = {r["site"]: r for r in csv.DictReader(handle)}
        assert (figures["hosp_a"]["leavers"], figures["hosp_a"]["headcount_end"]) == ("1", "2")
        assert (figures["hosp_b"]["joiners"], figures["hosp_b"]["headcount_end"]) == ("1", "5")
        assert figures["*"]["hospital"] == "Group" and figures["*"]["turnover_rate"] == str(round(1 / 7, 4))
        first = await run("hr-report", "--month", "2026-08", "--out", str(out))
        assert "no staff snapshot of the month before" in first.output


async def test_a_removed_account_is_recorded_as_a_leaver(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=hr_config()) as env:
        directory(env)
        env.standin.add_user("ou_s10", name="冯十二", department_ids=["od_a_ortho"])
        now = await env.begin_at(moments.ordinary_workday(time(11, 0)))
        pushed = await env.push(EVENT_USER_DELETED, env.standin.user_deleted("ou_s10"))
        assert pushed.acknowledged
        await (env.client.get_workflow_handle(env.workflow_id("recruiting", "leaver:ou_s10"))).result()
        (row,) = rows(env, "tblLeavers").values()
        assert (row["用户ID"], row["姓名"], row["医院"], row["科室"]) == ("ou_s10", "冯十二", "A院", "骨科")
        # the business time it was recorded at (the test clock runs on while the push is handled)
        assert 0 <= row["离职时间"] - cells.encode_moment(now) < 60_000
        assert "ou_s10" not in env.standin.state.users  # and no longer listed by the directory
