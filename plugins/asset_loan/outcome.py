"""The monthly outcome card's figures, from the history table's rows. Pure: no I/O, no clock of its own.

A loan is a ``borrow`` row; it ends at the asset's next ``return`` row. Its due date is the last one its
``borrow`` or ``extend`` rows gave. It was overdue when returned on a day after its due date, or when still
out at the month's end with its due date inside the month. Loan days run from the borrow to the return
(returned loans only). "Scan to record" is the time from the press on the scan page to the history row's
time (when the loan workflow recorded the action), on rows that carry the press's time.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .models import AssetMeta, HistoryRow

TOP = 5  # most borrowed assets on the card


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def loan_figures(rows: Iterable[HistoryRow], assets: dict[str, AssetMeta], *, month: date, zone: ZoneInfo,
                 site: str = "") -> dict[str, Any]:
    """The card's figures for loans that began in the month starting ``month`` (its first day, in ``zone``),
    of the assets of ``site`` ("" for every asset). JSON values only (it goes into a card).

    ``loans``; ``overdue`` and ``overdue_rate`` (0-1, None without loans); ``returned`` with
    ``loan_days_mean`` / ``loan_days_median`` (days, one decimal; None without returned loans);
    ``scan_seconds_p50`` / ``scan_seconds_p90`` over ``scans`` rows of the month that carry the press's time
    (None when none does); ``top``: the most borrowed assets by name, with their loan counts.
    """
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1)  # the first day after the month
    mine = sorted((r for r in rows if not site or assets.get(r.asset_id, AssetMeta()).site == site),
                  key=lambda r: r.at)
    open_loans: dict[str, dict[str, Any]] = {}
    loans: list[dict[str, Any]] = []
    for row in mine:
        if row.action == "borrow":
            loan = {"asset": row.asset_id, "start": row.at, "due": row.due, "end": None}
            open_loans[row.asset_id] = loan
            loans.append(loan)
        elif row.action == "extend" and row.asset_id in open_loans and row.due is not None:
            open_loans[row.asset_id]["due"] = row.due
        elif row.action == "return" and row.asset_id in open_loans:
            open_loans.pop(row.asset_id)["end"] = row.at
    started = [loan for loan in loans if month <= loan["start"].astimezone(zone).date() < end]
    overdue = 0
    days: list[float] = []
    for loan in started:
        due: date | None = loan["due"]
        if loan["end"] is not None:
            days.append((loan["end"] - loan["start"]).total_seconds() / 86400)
            overdue += due is not None and loan["end"].astimezone(zone).date() > due
        else:
            overdue += due is not None and due < end
    scans = [(r.at - r.scanned_at).total_seconds() for r in mine
             if r.scanned_at is not None and month <= r.at.astimezone(zone).date() < end and r.at >= r.scanned_at]
    counts = Counter(loan["asset"] for loan in started)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return {
        "loans": len(started), "overdue": overdue,
        "overdue_rate": round(overdue / len(started), 3) if started else None,
        "returned": len(days),
        "loan_days_mean": round(statistics.fmean(days), 1) if days else None,
        "loan_days_median": round(statistics.median(days), 1) if days else None,
        "scans": len(scans), "scan_seconds_p50": _percentile(scans, 0.5), "scan_seconds_p90": _percentile(scans, 0.9),
        "top": [{"asset": assets.get(a, AssetMeta()).name or a, "loans": n} for a, n in top],
    }


