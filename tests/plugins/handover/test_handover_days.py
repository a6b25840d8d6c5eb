"""Several days of shifts: a holiday rota, escalations, a missing and a late handover, the monthly numbers
from the recorded Bitable data (card and CSV command), and no patient data in any group message."""

from __future__ import annotations

import asyncio
import csv
import io
import statistics
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from handover_helpers import DAY, GROUP, HEAD, HOLIDAY, NIGHT, OFFICE, PATIENTS, RECORDS, card, handover_settings
from test_handover_flow import at, finished_result, start_shift, state_of, table

import plugins.handover as handover
from engine.rules.workdays import WorkCalendar
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.handover import models as m
from plugins.handover import rules

ZONE = ZoneInfo("Asia/Shanghai")
FULL = {"summary": "病情平稳", "actions": "晨间抽血", "contingency": "发热>38.5 ℃ 抽血培养"}
# what identifies patients in this run: none of it may reach a group chat
PATIENT_TEXT = ["床", "Bed", "张三", "李四", "王五", "赵六", "病情平稳", "晨间抽血", "血培养", "血钾", "呼吸机",
                "https://pacs"]


def expected_pair(change_local: datetime, holiday: date) -> tuple[str, str, bool]:
    """Who the rota in handover_settings() puts on a shift change (days off: the holiday rota).

    Days off are the hospital's own ``holiday`` and whatever the working-day calendar says: weekends, and
    public holidays such as New Year's Day when the run begins on the last night of a year.
    """
    day = change_local.date()
    off = not WorkCalendar(ZONE, holidays=[holiday]).is_workday(day)
    night_shift = change_local.hour == 20
    if off:
        return (HOLIDAY, NIGHT, True) if night_shift else (NIGHT, HOLIDAY, True)
    return (DAY, NIGHT, False) if night_shift else (NIGHT, DAY, False)


def write_config(path: Path, org: str) -> Path:
    """The same organization as a TOML file, for the command line."""
    settings = handover_settings()
    icu = settings["departments"]["icu"]
    lines = [f"[organizations.{org}]", 'plugins = ["handover"]', 'tenant_key = "t_standin"',
             f"[organizations.{org}.settings.handover]", f'medical_affairs = ["{OFFICE}"]',
             f'handovers_table = {{ app_token = "{RECORDS["app_token"]}", table_id = "{RECORDS["table_id"]}" }}',
             f"[organizations.{org}.settings.handover.departments.icu]", f'head = "{icu["head"]}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_days_of_shifts_holiday_rota_statistics_and_group_privacy(scenario_harness, tmp_path):
    # the run begins at 03:00 on a working day; the next day is the hospital's own day off (config
    # ``holidays``), so the four shifts see both rotas
    start = moments.ahead(moments.workday(time(3, 0)), WorkCalendar(ZONE))
    holiday = start.date() + timedelta(days=1)
    config = org_config(plugins=["handover"], settings={"handover": handover_settings()},
                        extra={"holidays": [holiday.isoformat()]})
    async with scenario_harness({"handover": handover}, config=config) as env:
        await env.begin_at(moments.at(start))
        first = rules.next_change(start, ["08:00", "20:00"], ZONE)
        expected: list[dict[str, Any]] = []
        plans: list[m.ShiftPlan] = []
        for index in range(4):
            change = (first + timedelta(hours=12 * index)).strftime("%H:%M")
            plan = await start_shift(env, change, before_form=False)
            plans.append(plan)
            giver, receiver, off = expected_pair(plan.change_at.astimezone(ZONE), holiday)
            assert (plan.giver, plan.receiver, plan.holiday) == (giver, receiver, off), plan.rota_source
            key = plan.key
            if index == 0:  # on time, complete, confirmed 10 minutes after the change
                await at(env, plan.form_at)
                await env.deliver(card(giver, "handover.entry", key, {"bed": "5", "name": "李四",
                                                                      "category": "new_admission",
                                                                      "severity": "stable", **FULL}))
                await env.deliver(card(giver, "handover.submit", key, {"bed": "6", "name": "王五",
                                                                       "category": "critically_ill",
                                                                       "severity": "unstable", **FULL,
                                                                       "summary": "呼吸机"}))
                await at(env, plan.change_at + timedelta(minutes=10))
                await env.deliver(card(receiver, "handover.ack_patient", key, bed="6"))
                await env.deliver(card(receiver, "handover.ack", key, {"synthesis": "6 床呼吸机"}))
                expected.append(dict(written=1, on_time=1, complete=1, acked=1, escalations=0, minutes=10.0))
            elif index == 1:  # on time; a critical patient confirmed late: escalations to the head
                await at(env, plan.form_at)
                await env.deliver(card(giver, "handover.submit", key, {"bed": "9", "name": "赵六",
                                                                       "category": "critical_value",
                                                                       "severity": "watcher", **FULL,
                                                                       "summary": "血钾 6.8"}))
                await at(env, plan.change_at + timedelta(minutes=61))
                assert (await state_of(env, key)).escalations == ["critical-1", "ack-2"]
                await env.deliver(card(receiver, "handover.ack_patient", key, bed="9"))
                await env.deliver(card(receiver, "handover.ack", key, {}))
                expected.append(dict(written=1, on_time=1, complete=1, acked=1, escalations=2, minutes=61.0))
            elif index == 2:  # never written: reminder, head, office
                await at(env, plan.change_at + timedelta(minutes=31))
                expected.append(dict(written=0, on_time=0, complete=0, acked=0, escalations=2, minutes=None))
            else:  # written late and incomplete, after the first escalation; confirmed 10 minutes later
                await at(env, plan.change_at + timedelta(minutes=40))
                await env.deliver(card(giver, "handover.submit", key, {"bed": "2", "name": "张三",
                                                                       "category": "post_op", "severity": "stable",
                                                                       "summary": "病情平稳"}))
                await at(env, plan.change_at + timedelta(minutes=50))
                await env.deliver(card(receiver, "handover.ack", key, {}))
                expected.append(dict(written=1, on_time=0, complete=0, acked=1, escalations=1, minutes=10.0))
        # the missing shift closes 12 hours after its change, in the middle of the last one
        missing = await state_of(env, plans[2].key)
        assert missing.status == "missing" and missing.escalations == ["missing-1", "missing-2"]
        assert any(p.holiday for p in plans) and any(not p.holiday for p in plans)

        # every handover has one record, every patient entry one record in the restricted table
        records = {r["交班编号"]: r for r in table(env, RECORDS)}
        assert set(records) == {p.key for p in plans}
        assert sorted(p["床号"] for p in table(env, PATIENTS)) == ["2", "5", "6", "9"]
        assert all(m.P_BED not in r and m.P_NAME not in r for r in records.values())

        # monthly statistics, from the recorded data, as a card to the medical affairs office
        month = plans[0].shift[:7]
        mine = [e for e, p in zip(expected, plans, strict=True) if p.shift.startswith(month)]
        handle = await env.start_workflow("handover.MonthlyStats", env.org.id, [OFFICE], month,
                                          id=env.workflow_id("handover", f"schedule:monthly-stats:{month}"))
        report = m.StatsReport.model_validate(await finished_result(env, handle))
        org_row = next(r for r in report.rows if r.site == "*")
        icu_row = next(r for r in report.rows if r.department == "icu")
        minutes = [e["minutes"] for e in mine if e["minutes"] is not None]
        for row in (org_row, icu_row):
            assert row.shifts == len(mine)
            assert row.written == sum(e["written"] for e in mine)
            assert row.on_time == sum(e["on_time"] for e in mine)
            assert row.complete == sum(e["complete"] for e in mine)
            assert row.acknowledged == sum(e["acked"] for e in mine)
            assert row.escalations == sum(e["escalations"] for e in mine)
            assert row.missing == len(mine) - row.written
            assert row.median_ack_minutes == pytest.approx(statistics.median(minutes), abs=0.5)
        stats_card = env.messages(to=OFFICE)[-1]
        assert stats_card.card is not None and month in stats_card.text
        # rows named, never by id: the department's configured name, the organization's row in words
        assert "&#42;" not in stats_card.text and "· icu" not in stats_card.text and "全院" in stats_card.text
        assert icu_row.department_name and f"· {icu_row.department_name}" in stats_card.text

        # the same numbers as CSV from `engine handover stats`
        from engine.cli import cli

        out = tmp_path / "stats.csv"
        path = write_config(tmp_path / "engine.toml", env.org.id)
        result = await asyncio.to_thread(CliRunner().invoke, cli, [
            "--config", str(path), "handover", "stats", "--org", env.org.id, "--month", month, "--out", str(out)])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
        csv_org = next(r for r in rows if r["site"] == "*")
        assert int(csv_org["written"]) == org_row.written and int(csv_org["escalations"]) == org_row.escalations

        # privacy: not one group message over the whole run carries patient content
        group = [msg for msg in env.messages() if msg.receive_id_type == "chat_id"]
        assert group and all(msg.chat_id == GROUP for msg in group)
        assert len(group) >= 6  # submitted/acknowledged/missing statuses of four shifts
        for msg in group:
            for text in PATIENT_TEXT:
                assert text not in msg.text, (text, msg.text)
        office = [msg.text for msg in env.messages(to=OFFICE)]
        assert office and not any(text in body for body in office for text in PATIENT_TEXT)
        # the department head saw which critical bed waited (a direct message)
        assert any("9 床" in msg.text for msg in env.messages(to=HEAD))
