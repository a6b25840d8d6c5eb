"""The monthly outcome card: last month's loans from the history table, per site, on the first working day
only, for a month with a holiday in it (the figures are checked exactly against the seeded rows)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import plugins.asset_loan as asset_loan
from engine.sdk import cells
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.asset_loan.models import OutcomeInput

ZONE = ZoneInfo("Asia/Shanghai")
APP, ASSETS, HISTORY = "bascnAssetLoan", "tblAssets", "tblAssetHistory"
HEAD, KEEPER_A, KEEPER_B, BORROWER = "ou_al_head", "ou_al_keeper_a", "ou_al_keeper_b", "ou_al_li"
SETTINGS = {"history_fields": {"scanned_at": "扫码时间"},
            "report_recipients": {"": [HEAD], "hosp_a": [KEEPER_A], "hosp_b": [KEEPER_B]}}
CONFIG = org_config(plugins=["asset_loan"], settings={"asset_loan": SETTINGS},
                    sites={"hosp_a": {"name": "A院"}, "hosp_b": {"name": "B院", "locale": "en_US"}})
_ids = itertools.count(1)


def asset(asset_id: str, name: str, site: str) -> dict[str, Any]:
    return {"record_id": f"rec{asset_id}", "fields": {"资产编号": asset_id, "名称": name, "类别": "default",
                                                      "院区": site, "状态": "在库"}}


def entry(asset_id: str, action: str, at: datetime, *, due: date | None = None,
          scan_s: float | None = None) -> dict[str, Any]:
    """A history row as the Loan workflow writes it (``bitable.history_fields``)."""
    fields: dict[str, Any] = {"资产编号": asset_id, "动作": action, "时间": cells.encode_moment(at),
                              "借用人": [{"id": BORROWER}], "说明": ""}
    if due is not None:
        fields["应还日期"] = cells.encode_date(due, ZONE)
    if scan_s is not None:
        fields["扫码时间"] = cells.encode_moment(at - timedelta(seconds=scan_s))
    return {"record_id": f"rech{next(_ids)}", "fields": fields}


def seed(env: Any, month: date, first: datetime) -> None:
    def on(n: int, hour: int = 10) -> datetime:
        return datetime.combine(month + timedelta(days=n - 1), time(hour), tzinfo=ZONE)

    def day(n: int) -> date:
        return month + timedelta(days=n - 1)

    after_month = first.date().replace(day=1) + timedelta(days=3)
    history = [
        # 示波器: two loans, the first back in 2 days on time (both presses on the scan page: 2 s and 4 s) ...
        entry("AL-OSC-1", "borrow", on(2), due=day(5), scan_s=2),
        entry("AL-OSC-1", "return", on(4), due=day(5), scan_s=4),
        # ... the second extended to the 12th and back on the 13th: 5 days, overdue
        entry("AL-OSC-1", "borrow", on(8), due=day(10), scan_s=6),
        entry("AL-OSC-1", "extend", on(9), due=day(12)),
        entry("AL-OSC-1", "return", on(13), due=day(12)),
        # 万用表: a loan from the month before, returned in it (not this month's) ...
        entry("AL-DMM-1", "borrow", on(-5), due=day(3)),
        entry("AL-DMM-1", "return", on(3), due=day(3)),
        # ... and one due on the 25th, still out at the month's end: overdue
        entry("AL-DMM-1", "borrow", on(20, 9), due=day(25)),
        # 探头 (B院): due after the month, still out: not overdue
        entry("AL-PRB-1", "borrow", on(27), due=after_month),
        # this month's loan is not last month's
        entry("AL-OSC-1", "borrow", first - timedelta(hours=1), due=after_month, scan_s=1),
    ]
    env.standin.state.merge_json({"bitable": {APP: {
        ASSETS: {"records": [asset("AL-OSC-1", "示波器", "hosp_a"), asset("AL-DMM-1", "万用表", "A院"),
                             asset("AL-PRB-1", "探头", "hosp_b")]},
        HISTORY: {"records": history}}}})


def elements(card: Any, tag: str) -> list[dict[str, Any]]:
    return [e for e in card.card["body"]["elements"] if e["tag"] == tag]


async def test_the_first_working_day_brings_last_months_loans(scenario_harness: Any) -> None:
    async with scenario_harness({"asset_loan": asset_loan}, config=CONFIG) as env:
        first = await env.begin_at(moments.first_workday_after_holiday_month(time(9, 0)))
        month = (first.date().replace(day=1) - timedelta(days=1)).replace(day=1)
        seed(env, month, first)

        handle = await env.start_workflow("asset_loan.MonthlyOutcome", OutcomeInput(org="acme"), id="loans-first")
        assert await handle.result() == 3

        (group,) = env.messages(to=HEAD)
        text = str(group.card)
        assert f"资产借用月报 {month:%Y-%m}" in text
        assert "**本月借出**：4 次" in text and "**逾期**：2 次（50.0%）" in text
        assert "**借用时长**（已归还 2 次）：平均 3.5 天，中位 3.5 天" in text
        # 2, 4 and 6 s from the press to the record: median 4 s, p90 5.6 s
        assert "**扫码到记录**：中位 4.0 秒，p90 5.6 秒（扫码页操作 3 次）" in text
        assert "AL-OSC-1" not in text  # names, not ids
        (chart,) = elements(group, "chart")
        assert chart["chart_spec"]["data"]["values"] == [
            {"asset": "示波器", "value": 2}, {"asset": "万用表", "value": 1}, {"asset": "探头", "value": 1}]
        (panel,) = elements(group, "collapsible_panel")
        assert panel["elements"][0]["content"] == "示波器：2 次\n万用表：1 次\n探头：1 次"

        (site_a,) = env.messages(to=KEEPER_A)  # the 万用表 row names its site by name: counted for A院
        text_a = str(site_a.card)
        assert f"资产借用月报 {month:%Y-%m} · A院" in text_a
        assert "**本月借出**：3 次" in text_a and "**逾期**：2 次（66.7%）" in text_a and "探头" not in text_a

        (site_b,) = env.messages(to=KEEPER_B)  # B院 reads English only
        text_b = str(site_b.card)
        assert f"Asset loans {month:%Y-%m} · B院" in text_b
        assert "**Loans in the month**: 1" in text_b and "**Overdue**: 0 (0.0%)" in text_b
        assert "**Loan length** (0 returned): average -, median -" in text_b
        assert "**Scan to record**: no press on the scan page this month." in text_b and "本月" not in text_b

        await env.advance(days=1)  # the schedule starts it again the next morning: not the first working day
        second = await env.start_workflow("asset_loan.MonthlyOutcome", OutcomeInput(org="acme"), id="loans-second")
        assert await second.result() == 0
        assert len(env.messages(to=HEAD)) == 1


async def test_without_the_scan_time_column_the_card_says_it_is_not_measured(scenario_harness: Any) -> None:
    settings = {"report_recipients": {"": [HEAD]}}
    config = org_config(plugins=["asset_loan"], settings={"asset_loan": settings})
    async with scenario_harness({"asset_loan": asset_loan}, config=config) as env:
        first = await env.begin_at(moments.first_workday_of_month(time(9, 0)))
        month = (first.date().replace(day=1) - timedelta(days=1)).replace(day=1)
        seed(env, month, first)
        handle = await env.start_workflow("asset_loan.MonthlyOutcome", OutcomeInput(org="acme"), id="loans-plain")
        assert await handle.result() == 1
        (card,) = env.messages(to=HEAD)
        assert "**扫码到记录**：未测量" in str(card.card) and "**本月借出**：4 次" in str(card.card)
