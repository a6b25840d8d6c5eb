"""The monthly outcome figures as pure rules: the month's edges, retired cycles, sites, the estimate, and
log rows as Bitable gives them."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from plugins.device_calibration.config import LogFields, OutcomeSettings
from plugins.device_calibration.models import DeviceMeta, LogRow
from plugins.device_calibration.outcome import log_row, outcome_figures

ZONE = ZoneInfo("Asia/Shanghai")
MONTH = date(2026, 10, 1)  # National Day's October
DEVICES = {"CT-1": DeviceMeta(name="CT 机", site="hosp_a"), "DR-2": DeviceMeta(name="DR 机", site="hosp_b")}


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZONE)


def row(device: str, action: str, when: datetime, cycle: int = 1, kind: str = "calibration",
        **detail: object) -> LogRow:
    return LogRow(device_id=device, kind=kind, cycle=cycle, action=action, at=when, detail=dict(detail))


def figures(rows: list[LogRow], **kwargs: object) -> dict[str, object]:
    return outcome_figures(rows, DEVICES, month=MONTH, zone=ZONE, assumptions=OutcomeSettings(), **kwargs)  # type: ignore[arg-type]


def test_due_on_the_last_day_done_that_day_is_on_time_and_open_is_one_day_overdue() -> None:
    registered = row("CT-1", "registered", at(date(2025, 10, 1)), due="2026-10-31")
    done = [registered, row("CT-1", "result", at(date(2026, 10, 31)), performed_on="2026-10-31"),
            row("CT-1", "cycle_completed", at(date(2026, 10, 31)), next_due="2027-10-31")]
    assert figures(done)["on_time"] == 1
    still_open = figures([registered])
    assert (still_open["overdue"], still_open["overdue_days_max"]) == (1, 1)  # on 1 November it is one day late
    assert still_open["longest"] == [{"device": "CT 机", "kind": "calibration", "days": 1}]


def test_the_next_cycles_due_date_comes_from_the_completion_and_a_retirement_before_it_drops_the_cycle() -> None:
    rows = [row("CT-1", "registered", at(date(2025, 9, 1)), due="2025-10-08"),
            row("CT-1", "cycle_completed", at(date(2025, 10, 8)), next_due="2026-10-08"),
            row("DR-2", "registered", at(date(2025, 9, 1)), due="2026-10-20"),
            row("DR-2", "retired", at(date(2026, 10, 12)))]
    result = figures(rows)
    assert (result["due"], result["overdue"]) == (1, 1)  # CT's cycle 2, due 8 October, not done
    assert result["by_kind"] == [{"kind": "calibration", "on_time": 0, "overdue": 1}]


def test_a_site_counts_its_own_devices_and_the_estimate_uses_the_settings() -> None:
    rows = [row("CT-1", "registered", at(date(2025, 9, 1)), due="2026-10-09"),
            row("CT-1", "remind", at(date(2026, 10, 2)), to=["ou_a", "ou_b"]),
            row("DR-2", "registered", at(date(2025, 9, 1)), due="2026-10-09"),
            row("DR-2", "escalate", at(date(2026, 10, 12)), to=["ou_m"]),
            row("DR-2", "quarantined", at(date(2026, 9, 30)))]
    site_a = figures(rows, site="hosp_a")
    assert (site_a["due"], site_a["messages"], site_a["assessments_open"]) == (1, 2, 0)
    group = outcome_figures(rows, DEVICES, month=MONTH, zone=ZONE,
                            assumptions=OutcomeSettings(minutes_per_reminder=5, minutes_per_device_cycle=30))
    # quarantined in September and never closed: open at October's end, but not October's
    assert (group["quarantined"], group["assessments_open"]) == (0, 1)
    gone = figures([*rows, row("DR-2", "retired", at(date(2026, 10, 20)))])
    assert gone["assessments_open"] == 0  # the device left the table: its assessment is no longer open
    assert group["estimate_minutes"] == 3 * 5 + 2 * 30
    assert figures([])["overdue_days_p50"] is None and figures([])["due"] == 0


def test_log_rows_as_bitable_gives_them() -> None:
    names = LogFields()
    moment = int(at(date(2026, 10, 9)).timestamp() * 1000)
    parsed = log_row({"设备编号": "CT-1", "类别": "electrical_safety", "周期": "2", "动作": "remind", "时间": moment,
                      "详情": '{"to": ["ou_a"]}'}, names)
    assert parsed is not None
    assert (parsed.kind, parsed.cycle, parsed.detail) == ("electrical_safety", 2, {"to": ["ou_a"]})
    assert parsed.at == at(date(2026, 10, 9))
    broken = log_row({"设备编号": "CT-1", "动作": "remind", "时间": moment, "详情": "not json"}, names)
    assert broken is not None and broken.detail == {} and broken.kind == "calibration"
    assert log_row({"动作": "remind", "时间": moment}, names) is None  # not a row the engine wrote
