"""The monthly outcome figures as pure rules: due-day edges, extensions, the press time, and history rows
read back as written."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plugins.asset_loan.bitable import history_fields, read_history
from plugins.asset_loan.config import AssetLoanSettings
from plugins.asset_loan.models import AssetMeta, HistoryEntry, HistoryRow
from plugins.asset_loan.outcome import loan_figures

ZONE = ZoneInfo("Asia/Shanghai")
MONTH = date(2026, 10, 1)
ASSETS = {"AL-OSC-1": AssetMeta(name="示波器", site="hosp_a")}


def at(day: int, hour: int = 10) -> datetime:
    return datetime.combine(MONTH + timedelta(days=day - 1), time(hour), tzinfo=ZONE)


def row(action: str, when: datetime, due: int | None = None, scanned: datetime | None = None) -> HistoryRow:
    return HistoryRow(asset_id="AL-OSC-1", action=action, at=when,
                      due=MONTH + timedelta(days=due - 1) if due else None, scanned_at=scanned)


def figures(rows: list[HistoryRow]) -> dict[str, object]:
    return loan_figures(rows, ASSETS, month=MONTH, zone=ZONE)


def test_back_on_the_due_day_is_on_time_and_the_day_after_is_overdue() -> None:
    on_time = figures([row("borrow", at(2), due=5), row("return", at(5, 23))])
    assert (on_time["overdue"], on_time["overdue_rate"], on_time["loan_days_mean"]) == (0, 0.0, 3.5)
    late = figures([row("borrow", at(2), due=5), row("return", at(6, 8))])
    assert (late["overdue"], late["overdue_rate"]) == (1, 1.0)


def test_an_extension_moves_the_due_date() -> None:
    rows = [row("borrow", at(2), due=5), row("extend", at(4), due=9), row("return", at(8))]
    assert figures(rows)["overdue"] == 0
    # still out when the month ends: overdue when due on its last day, not when due on the next month's first
    assert figures([row("borrow", at(20), due=31)])["overdue"] == 1
    assert figures([row("borrow", at(20), due=32)])["overdue"] == 0


def test_scan_to_record_counts_only_rows_with_a_press_time_before_the_record() -> None:
    rows = [row("borrow", at(2), due=5, scanned=at(2) - timedelta(seconds=3)),
            row("return", at(4), scanned=at(4) + timedelta(seconds=2)),  # a press "after" its record: skewed clock
            row("borrow", at(10), due=12)]
    result = figures(rows)
    assert (result["scans"], result["scan_seconds_p50"]) == (1, 3.0)
    empty = figures([])
    assert (empty["loans"], empty["overdue_rate"], empty["loan_days_median"], empty["scan_seconds_p50"]) == (
        0, None, None, None)


def test_a_history_row_reads_back_as_written() -> None:
    settings = AssetLoanSettings.model_validate({"history_fields": {"scanned_at": "扫码时间"}})
    entry = HistoryEntry(at=at(3), action="borrow", actor_open_id="ou_li", borrower_open_id="ou_li",
                         scanned_at=at(3) - timedelta(seconds=2))
    fields = history_fields(settings, "AL-OSC-1", entry, MONTH + timedelta(days=9), ZONE)
    assert read_history(fields, settings, ZONE) == HistoryRow(
        asset_id="AL-OSC-1", action="borrow", at=at(3), borrower_open_id="ou_li", due=date(2026, 10, 10),
        scanned_at=at(3) - timedelta(seconds=2))
    # without the column (the default) the row does not name it: Feishu would refuse an unknown column
    assert "扫码时间" not in history_fields(AssetLoanSettings(), "AL-OSC-1", entry, None, ZONE)
