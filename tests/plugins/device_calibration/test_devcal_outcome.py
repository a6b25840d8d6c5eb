"""The monthly outcome card: last month's figures from the calibration log, per site, on the first working
day only, for a month with a holiday in it (the figures are checked exactly against the seeded rows)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.models import OutcomeInput

GROUP_HEAD = "ou_group_head"
SITES = {"hosp_a": {"name": "A院"}, "hosp_b": {"name": "B院", "locale": "en_US"}}
SETTINGS = {**h.SETTINGS, "report_recipients": {"": [GROUP_HEAD], "hosp_a": [h.MANAGER], "hosp_b": [h.HEAD]}}
CONFIG = org_config(plugins=["device_calibration"], settings={"device_calibration": SETTINGS}, sites=SITES,
                    extra=h.ORG_EXTRA)
_seq = iter(range(1, 1000))


def log(device_id: str, action: str, at: datetime, *, kind: str = "calibration", cycle: int = 1,
        **detail: Any) -> dict[str, Any]:
    """A calibration-log row as the cycle workflow writes it (``CalibrationCycle._log``)."""
    n = next(_seq)
    return {"record_id": f"reclog{n}", "fields": {
        "日志编号": f"acme:device_calibration:{device_id}:{cycle}:{n}", "设备编号": device_id, "类别": kind,
        "周期": cycle, "动作": action, "操作人": "system", "时间": int(at.timestamp() * 1000), "原因": "",
        "详情": json.dumps(detail, ensure_ascii=False)}}


def seed_month(env: Any, month: date, holiday: date) -> None:
    def on(day: date, hour: int = 10) -> datetime:
        return h.at_local(day, hour)

    def day(n: int) -> date:
        return month + timedelta(days=n - 1)

    long_ago = on(month - timedelta(days=300))
    devices = {
        "rec1": h.device_row("CT-0001", last=None, 设备名称="CT 机", 院区="hosp_a"),
        "rec2": h.device_row("DR-0002", last=None, 设备名称="DR 机", 院区="hosp_a"),
        "rec3": h.device_row("US-0003", last=None, 设备名称="B 超", 院区="hosp_b"),
        "rec4": h.device_row("OLD-0004", last=None, 设备名称="旧监护仪", 院区="hosp_a"),
    }
    h.seed(env.standin, devices)
    rows = [
        # CT: due on the 5th, calibrated on the 3rd: on time
        log("CT-0001", "registered", long_ago, due=day(5).isoformat()),
        log("CT-0001", "remind", on(month - timedelta(days=2)), step="before:7", to=[h.CUSTODIAN]),  # month before
        log("CT-0001", "remind", on(day(2), 9), step="before:3", to=[h.CUSTODIAN, h.MANAGER]),
        log("CT-0001", "result", on(day(3)), performed_on=day(3).isoformat(), verdict="pass"),
        log("CT-0001", "cycle_completed", on(day(3)), next_due=(day(3) + timedelta(days=365)).isoformat()),
        # DR calibration: due on the holiday, moved there by hand; done three days after it: 3 days overdue
        log("DR-0002", "registered", long_ago, due=(holiday - timedelta(days=40)).isoformat()),
        log("DR-0002", "due_changed", on(month - timedelta(days=20)), to=holiday.isoformat()),
        log("DR-0002", "escalate", on(holiday + timedelta(days=1), 9), step="after:1", to=[h.MANAGER]),
        log("DR-0002", "result", on(holiday + timedelta(days=3)),
            performed_on=(holiday + timedelta(days=3)).isoformat(), verdict="pass"),
        log("DR-0002", "cycle_completed", on(holiday + timedelta(days=3))),
        # DR electrical safety: due on the 10th, still open at the month's end
        log("DR-0002", "registered", long_ago, kind="electrical_safety", due=day(10).isoformat()),
        # B超 (site B): out of tolerance on its due day, quarantined, assessed, back in service
        log("US-0003", "registered", long_ago, due=day(14).isoformat()),
        log("US-0003", "result", on(day(14)), performed_on=day(14).isoformat(), verdict="quarantine"),
        log("US-0003", "quarantined", on(day(14))),
        log("US-0003", "assessment_closed", on(day(20)), outcome="return_to_service"),
        log("US-0003", "cycle_completed", on(day(20))),
        # the old monitor was retired before its due date: not counted
        log("OLD-0004", "registered", long_ago, due=day(15).isoformat()),
        log("OLD-0004", "retired", on(day(10))),
    ]
    env.standin.state.merge_json({"bitable": {h.APP: {h.LOG: {"records": rows}}}})


def elements(card: Any, tag: str) -> list[dict[str, Any]]:
    return [e for e in card.card["body"]["elements"] if e["tag"] == tag]


async def test_the_first_working_day_brings_last_months_outcome(scenario_harness: Any) -> None:
    async with scenario_harness({"device_calibration": device_calibration}, config=CONFIG) as env:
        first = await env.begin_at(moments.first_workday_after_holiday_month(time(9, 0)))
        calendar = env.calendar()
        month = (first.date().replace(day=1) - timedelta(days=1)).replace(day=1)
        end = first.date().replace(day=1)
        holiday = next(d for d in (month + timedelta(days=n) for n in range(31))
                       if d < end and d.weekday() < 5 and not calendar.is_workday(d))
        seed_month(env, month, holiday)
        # a row of the new month is not last month's: the electrical-safety test done today stays overdue
        env.standin.state.merge_json({"bitable": {h.APP: {h.LOG: {"records": [
            log("DR-0002", "cycle_completed", first - timedelta(minutes=30), kind="electrical_safety")]}}}})
        still_open = (end - (month + timedelta(days=9))).days  # due on the 10th, open on the 1st of next month

        handle = await env.start_workflow("device_calibration.MonthlyOutcome", OutcomeInput(org="acme"),
                                          id="outcome-first")
        assert await handle.result() == 3

        (group,) = env.messages(to=GROUP_HEAD)
        text = str(group.card)
        assert f"计量器具月报 {month:%Y-%m}" in text
        assert "**本月到期**：4 台次；按时完成 2，超期 2" in text
        p50 = (3 + still_open) / 2
        assert f"超期天数中位 {p50} 天，最长 {still_open} 天" in text
        assert f"超期最久：DR 机（电安，{still_open} 天）、DR 机（校准，3 天）" in text
        assert "**超差**：1 台次停用隔离待评估；评估结案 1 次（恢复使用 1，退役 0）；尚未结案 0" in text
        assert "**已发提醒与升级**：2 次（3 条消息）" in text
        # the estimate says it is one and names its settings: 3 messages × 2 min + 4 cycles × 20 min
        assert "**省去的人工（估算）**：约 86 分钟" in text
        assert "估算值，不是测量值" in text and "outcome.minutes_per_reminder" in text
        assert "OLD-0004" not in text and "旧监护仪" not in text and "CT-0001" not in text
        (chart,) = elements(group, "chart")
        assert chart["chart_spec"]["data"]["values"] == [
            {"kind": "校准", "value": 2, "series": "按时完成"}, {"kind": "校准", "value": 1, "series": "已超期"},
            {"kind": "电安", "value": 0, "series": "按时完成"}, {"kind": "电安", "value": 1, "series": "已超期"}]
        (panel,) = elements(group, "collapsible_panel")
        assert panel["elements"][0]["content"] == "校准：按时 2，超期 1\n电安：按时 0，超期 1"

        (site_a,) = env.messages(to=h.MANAGER)
        text_a = str(site_a.card)
        assert f"计量器具月报 {month:%Y-%m} · A院" in text_a
        assert "**本月到期**：3 台次；按时完成 1，超期 2" in text_a and "**超差**：0 台次" in text_a
        assert "约 66 分钟" in text_a  # 3 × 2 + 3 × 20

        (site_b,) = env.messages(to=h.HEAD)  # B院 reads English: its card is in English only
        text_b = str(site_b.card)
        assert f"Measuring equipment {month:%Y-%m} · B院" in text_b
        assert "**Due in the month**: 1; done on time 1, overdue 0" in text_b
        assert "1 quarantined for assessment; 1 assessment(s) closed (1 back in service, 0 retired)" in text_b
        assert "about 20 min" in text_b and "本月" not in text_b

        await env.advance(days=1)  # the schedule starts it again the next morning: not the first working day
        second = await env.start_workflow("device_calibration.MonthlyOutcome", OutcomeInput(org="acme"),
                                          id="outcome-second")
        assert await second.result() == 0
        assert len(env.messages(to=GROUP_HEAD)) == 1
