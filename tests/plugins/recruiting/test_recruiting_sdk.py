"""recruiting on the SDK: cells read through the engine's codec (lookups, formulas, persons, dates in the
hospital's zone) and the report command reading the tables with the command's own Feishu client."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from recruiting_helpers import add_row, config, seed

import plugins.recruiting as recruiting
from engine.sdk import WorkCalendar, cells
from engine.testing import moments
from plugins.recruiting import reading, rules
from plugins.recruiting.activities import _pool_entry, requisition_facts
from plugins.recruiting.config import RecruitingSettings

NOV_24_SHANGHAI = 1795449600000  # 2026-11-24 00:00 in Asia/Shanghai


def test_a_requisition_row_of_lookups_formulas_and_persons_reads_right() -> None:
    fields = {"医院": [{"type": "text", "text": "hosp_a"}],
              "科室": {"type": 1, "value": [{"type": "text", "text": "心内科"}]},  # a lookup of a text column
              "职位": "护士", "人数": {"type": 2, "value": [3]}, "职级": "主任",
              "标签": ["ICU", "急诊"], "招聘负责人": {"type": 11, "value": [{"id": "ou_rc_a", "name": "张三"}]}}
    facts = requisition_facts("R1", "rec1", fields, RecruitingSettings())
    assert (facts.site, facts.department, facts.title, facts.headcount) == ("hosp_a", "心内科", "护士", 3)
    assert (facts.grade, facts.tags, facts.recruiter) == ("主任", ["ICU", "急诊"], "ou_rc_a")
    # tags typed as text, a recruiter typed as a name: still read (the name is no open id)
    typed = requisition_facts("R2", None, {"标签": "ICU、急诊, 夜班", "招聘负责人": "张三", "人数": "2"},
                              RecruitingSettings())
    assert (typed.tags, typed.recruiter, typed.headcount) == (["ICU", "急诊", "夜班"], "", 2)


def test_a_pool_entry_with_a_lookup_retention_date_reads_the_day() -> None:
    settings = RecruitingSettings()
    entry = _pool_entry({"候选人ID": "c_1", "保留至": {"type": 5, "value": [NOV_24_SHANGHAI]}, "标签": "ICU"},
                        settings, WorkCalendar("Asia/Shanghai"))
    assert (entry.candidate_id, entry.retain_until, entry.tags) == ("c_1", date(2026, 11, 24), ["ICU"])


def test_a_date_is_read_in_the_hospitals_zone() -> None:
    # 2026-11-24 00:00 in Auckland is still 2026-11-23 in Shanghai: read where it was entered
    auckland_midnight = cells.encode_date(date(2026, 11, 24), "Pacific/Auckland")
    row = {"预计入职日期": auckland_midnight}
    assert reading.day(row, "预计入职日期", WorkCalendar("Pacific/Auckland")) == date(2026, 11, 24)
    assert reading.day(row, "预计入职日期", WorkCalendar("Asia/Shanghai")) == date(2026, 11, 23)


def test_an_odd_cell_reads_as_empty_and_the_row_still_reads(caplog: Any) -> None:
    row = {"人数": {"phone": "13800000001"}, "保留至": [{"file_token": "x"}], "同意入库": "同意"}
    assert reading.count(row, "人数", 1) == 1
    assert reading.day(row, "保留至", WorkCalendar("Asia/Shanghai")) is None
    assert reading.flag(row, "同意入库") is True
    assert "'人数'" in caplog.text and "13800000001" not in caplog.text  # the column is named, not the content


def write_config(path: Path, org: str) -> Path:
    """The test organization as a TOML file, for the command line (roles as in the harness)."""
    lines = [f"[organizations.{org}]", 'plugins = ["recruiting"]', 'tenant_key = "t_standin"',
             f"[organizations.{org}.settings.recruiting.roles]", 'group_hr = "ou_group_hr"',
             f"[organizations.{org}.sites.hosp_a]", 'name = "A院"', f"[organizations.{org}.sites.hosp_b]",
             'name = "B院"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_the_report_command_writes_the_months_figures(scenario_harness: Any, tmp_path: Path) -> None:
    from engine.cli import cli

    async with scenario_harness({"recruiting": recruiting}, config=config()) as env:
        seed(env, applications=False)
        today = (await env.begin_at(moments.ordinary_workday(time(10, 0)))).date()
        month = rules.previous_month(today)
        start, _ = rules.month_bounds(month, rules.calendar_for("Asia/Shanghai"))
        in_month, later = rules.ms(start + timedelta(days=3)), rules.ms(start + timedelta(days=13))
        add_row(env, "tblApplications", "r1", {"医院": "hosp_a", "投递时间": in_month, "接受时间": later,
                                               "阶段": "已接受"})
        add_row(env, "tblApplications", "r2", {"医院": "hosp_b", "投递时间": {"type": 5, "value": [in_month]},
                                               "阶段": "已投递"})
        out = tmp_path / "report.csv"
        path = write_config(tmp_path / "engine.toml", env.org.id)
        result = await asyncio.to_thread(CliRunner().invoke, cli, [
            "--config", str(path), "recruiting", "report", "--org", env.org.id, "--month", month, "--out", str(out)])
        assert result.exit_code == 0, result.output
        figures = {r["site"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")))}
        assert figures["hosp_a"]["applications"] == "1" and figures["hosp_a"]["hires"] == "1"
        assert figures["hosp_a"]["time_to_hire_days"] == "10.0"
        assert figures["hosp_b"]["applications"] == "1"  # its date a lookup column
        assert figures["*"]["applications"] == "2"

        unknown = await asyncio.to_thread(CliRunner().invoke, cli, [
            "--config", str(path), "recruiting", "report", "--org", "nobody", "--month", month, "--out", str(out)])
        assert unknown.exit_code == 2 and "no recruiting organization 'nobody'" in unknown.output
