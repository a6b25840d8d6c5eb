"""The monthly report card: last month's figures per site and category, on the first working day only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from repair_helpers import SEED, SETTINGS

import plugins.repair as repair
from engine.sdk import cells
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.repair.models import ReportInput

HEAD = "ou_rp_head_it"


def row(number: str, reported: datetime, *, site: str = "A院", category: str = "信息", asset: str = "",
        location: str = "收费处", notify_s: int = 3, accept_min: int = 6, fix_h: float = 2,
        met: bool = True) -> dict[str, Any]:
    return {"record_id": f"rec{number}", "fields": {
        "工单号": number, "院区": site, "类别": category, "位置": location, "设备编号": asset,
        "报修时间": cells.encode_moment(reported),
        "通知时间": cells.encode_moment(reported + timedelta(seconds=notify_s)),
        "接单时间": cells.encode_moment(reported + timedelta(minutes=accept_min)),
        "完成时间": cells.encode_moment(reported + timedelta(hours=fix_h)), "SLA达标": met, "返修次数": 0}}


async def test_the_first_working_day_brings_last_months_card(scenario_harness: Any) -> None:
    settings = {**SETTINGS, "report_recipients": {"": [HEAD]}}
    async with scenario_harness({"repair": repair}, org_settings={"repair": settings}) as env:
        env.standin.state.merge_json(SEED)
        first = await env.begin_at(moments.first_workday_of_month())
        last_month = (first.replace(day=1) - timedelta(days=1)).replace(day=1, hour=10)
        records = [row(f"T{i}", last_month + timedelta(days=i), asset="PRN-7" if i < 2 else "",
                       location="药房" if i == 3 else "收费处", notify_s=2 + i, met=i != 0) for i in range(4)]
        records.append(row("F1", last_month, category="总务", location="3楼开水间"))
        records.append(row("OLD", last_month - timedelta(days=40)))  # the month before: not counted
        records.append(row("NOW", first - timedelta(minutes=5)))  # this month: not counted
        env.standin.state.merge_json({"bitable": {"bascnRepair": {"tblTickets": {"records": records}}}})
        handle = await env.start_workflow("repair.MonthlyReport", ReportInput(org="acme"), id="report-first")
        assert await handle.result() == 1
        (card,) = env.messages(to=HEAD)
        text = str(card.card)
        assert f"{last_month:%Y-%m} 报修月报" in text
        assert "A院 · 信息**：4 单" in text and "A院 · 总务**：1 单" in text
        assert "SLA 达标 3/4" in text and "PRN-7（2 次）" in text and "收费处（3）" in text
        assert "中位 3.5" not in text and "中位 0.1 分钟" in text  # 3.5 s: 0.1 min
        assert "假设值" in text  # the patrol baseline is said to be an assumption
        # the chart: tickets per category and site, the words in the reader's language; its figures one press away
        (chart,) = [e for e in card.card["body"]["elements"] if e["tag"] == "chart"]
        assert chart["chart_spec"]["title"] == {"text": "各类别工单数"}
        assert chart["chart_spec"]["data"]["values"] == [{"category": "总务", "value": 1, "site": "A院"},
                                                         {"category": "信息", "value": 4, "site": "A院"}]
        (panel,) = [e for e in card.card["body"]["elements"] if e["tag"] == "collapsible_panel"]
        assert panel["elements"][0]["content"] == "A院 · 总务：1 单\nA院 · 信息：4 单"

        await env.advance(days=1)  # the schedule starts it again the next morning: not the first working day
        second = await env.start_workflow("repair.MonthlyReport", ReportInput(org="acme"), id="report-second")
        assert await second.result() == 0
        assert len(env.messages(to=HEAD)) == 1


async def test_a_sites_card_takes_its_rows_by_name_and_speaks_its_language(scenario_harness: Any) -> None:
    """Recipients are keyed by site id, while the rows carry the site's name as the ticket wrote it."""
    config = org_config(plugins=["repair"], settings={"repair": {**SETTINGS, "report_recipients": {
        "xj": [HEAD]}}}, sites={"xj": {"name": "新疆分院", "timezone": "Asia/Urumqi", "locale": "en_US"}})
    async with scenario_harness({"repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        first = await env.begin_at(moments.first_workday_of_month())
        last_month = (first.replace(day=1) - timedelta(days=1)).replace(day=1, hour=10)
        records = [row("X1", last_month, site="新疆分院"), row("X2", last_month + timedelta(days=1), site="新疆分院"),
                   row("A1", last_month)]  # another hospital's: not on this card
        env.standin.state.merge_json({"bitable": {"bascnRepair": {"tblTickets": {"records": records}}}})
        handle = await env.start_workflow("repair.MonthlyReport", ReportInput(org="acme"), id="report-site")
        assert await handle.result() == 1
        (card,) = env.messages(to=HEAD)
        text = str(card.card)
        assert f"Repair report {last_month:%Y-%m} · 新疆分院" in text
        assert "新疆分院 · IT**: 2 ticket(s)" in text and "A院" not in text
        assert "报修月报" not in text
