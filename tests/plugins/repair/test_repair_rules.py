"""repair's pure rules: triage, the rota, SLA deadlines on working hours, the monthly figures."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.sdk import WorkCalendar
from plugins.repair import rules
from plugins.repair.config import RepairSettings, RotaEntry, SlaSettings
from plugins.repair.models import TicketRow

ZONE = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(ZONE)
SLA = SlaSettings()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZONE)


def test_triage_by_keywords_and_places() -> None:
    settings = RepairSettings()
    icu = rules.triage("3床监护仪报警", "住院部5楼 ICU", settings)
    assert icu.data == {"category": "medical", "priority": "urgent"} and "ICU" in icu.reason
    assert rules.triage("HIS 账号登录不了", "门诊2楼", settings).data == {"category": "it", "priority": "normal"}
    assert rules.triage("CT 停机", "", settings).data["priority"] == "urgent"
    assert rules.triage("手术室无影灯不亮", "", settings).data == {"category": "facilities", "priority": "urgent"}
    assert rules.triage("something odd", "", settings).data == {"category": "facilities", "priority": "normal"}


def test_the_rota_by_weekday_and_hours_past_midnight() -> None:
    monday = date(2026, 11, 30)
    rota = [RotaEntry(open_id="day", weekdays=[1, 2, 3, 4, 5], start=time(8), end=time(18)),
            RotaEntry(open_id="night", weekdays=[1], start=time(18), end=time(8)),
            RotaEntry(open_id="always")]
    assert rules.on_duty(rota, at(monday, 9)).open_id == "day"  # type: ignore[union-attr]
    assert rules.on_duty(rota, at(monday, 23)).open_id == "night"  # type: ignore[union-attr]
    assert rules.on_duty(rota, at(monday + timedelta(days=1), 3)).open_id == "night"  # type: ignore[union-attr]
    assert rules.on_duty(rota, at(monday + timedelta(days=1), 20)).open_id == "always"  # type: ignore[union-attr]
    assert rules.on_duty(rota[:2], at(monday + timedelta(days=5), 12)) is None


def test_normal_tickets_count_working_hours_and_urgent_ones_the_clock() -> None:
    eve = date(2026, 9, 30)  # the day before National Day
    back = date(2026, 10, 8)  # 1-7 October are off
    assert CALENDAR.next_workday(eve, include_today=False) == back
    assert rules.sla_deadline(at(eve, 17, 20), 30, urgent=False, calendar=CALENDAR, sla=SLA) == at(back, 8, 20)
    assert rules.sla_deadline(at(eve, 17, 20), 30, urgent=True, calendar=CALENDAR, sla=SLA) == at(eve, 17, 50)
    assert rules.sla_deadline(at(eve, 6, 0), 30, urgent=False, calendar=CALENDAR, sla=SLA) == at(eve, 8, 30)
    spent = rules.sla_between(at(eve, 17, 0), at(back, 9, 0), urgent=False, calendar=CALENDAR, sla=SLA)
    assert spent == timedelta(minutes=90)


def test_monthly_figures_per_site_and_category() -> None:
    base = datetime(2026, 10, 12, 9, tzinfo=ZONE)
    made = [TicketRow(ticket_id=f"T{i}", site="A院", category="it", location="收费处" if i % 2 else "药房",
                      asset_id="PRN-1" if i < 3 else f"PC-{i}", reported_at=base,
                      notified_at=base + timedelta(seconds=2 + i),
                      accepted_at=base + timedelta(minutes=5 + i), done_at=base + timedelta(hours=1 + i),
                      sla_met=i != 4, reopened=1 if i == 0 else 0) for i in range(5)]
    made.append(TicketRow(ticket_id="F1", site="A院", category="facilities", reported_at=base))
    (facilities, it) = rules.monthly_figures(made, 21600)
    assert facilities["tickets"] == 1 and facilities["median_to_phone"] is None and facilities["faster"] is None
    assert it["tickets"] == 5 and it["notify_p50"] == 4 and it["median_to_phone"] == 4
    assert it["fix_p50"] == 3 * 3600 and it["fix_p90"] == 4.6 * 3600
    assert (it["sla_met"], it["sla_judged"], it["reopened"]) == (4, 5, 1)
    assert it["repeats"] == [{"asset": "PRN-1", "count": 3}]
    assert it["top_locations"][0] == {"location": "药房", "count": 3}
    assert it["faster"] == 5400  # 6 h of patrol against 4 s


def test_an_asset_id_in_the_report_text_links_the_ticket() -> None:
    from plugins.repair.config import RepairSettings
    from plugins.repair.rules import asset_in_text

    pattern = RepairSettings().asset_id_pattern
    assert asset_in_text("CT-0012 停机，无法开机", pattern) == "CT-0012"
    assert asset_in_text("放射科ct-0012冒烟", pattern) == "CT-0012"  # no spaces around it in Chinese text
    assert asset_in_text("BX-261130-7Q2KD 又坏了", pattern) == ""  # a ticket number is no asset
    assert asset_in_text("3楼开水间漏水", pattern) == ""
    assert asset_in_text("CT-0012 停机", "") == ""  # the organization reads no asset from the text
