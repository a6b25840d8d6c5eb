"""The monthly outcome card's figures, from the calibration log's rows. Pure: no I/O, no clock of its own.

A cycle's due date is the last one the log set for it: ``registered`` (``detail.due``), ``due_changed``
(``detail.to``), or the previous cycle's ``cycle_completed`` (``detail.next_due``). It is done on the
``performed_on`` date of its last ``result`` row (else the day of its ``cycle_completed`` row). A cycle due
in the month is on time when done by its due date; otherwise overdue, by the days from its due date to its
completion or, when still open, to the first day after the month.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import cells
from plugins.device_calibration.config import OutcomeSettings
from plugins.device_calibration.models import DeviceMeta, LogRow

NOTICES = ("remind", "escalate", "away_reminder", "assessment_reminder")  # messages the engine sent for people
SHOWN = 5  # longest-overdue devices named on the card

Cycle = tuple[str, str, int]  # (device_id, kind, cycle)


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _cycles(rows: list[LogRow], zone: ZoneInfo) -> dict[Cycle, dict[str, Any]]:
    """Per cycle: its due date, the day it was done, and whether it was retired."""
    cycles: dict[Cycle, dict[str, Any]] = {}

    def of(key: Cycle) -> dict[str, Any]:
        return cycles.setdefault(key, {"due": None, "done": None, "performed": None, "retired": None})

    for row in sorted(rows, key=lambda r: r.at):
        key = (row.device_id, row.kind, row.cycle)
        if row.action == "registered":
            of(key)["due"] = _day(row.detail.get("due")) or of(key)["due"]
        elif row.action == "due_changed":
            of(key)["due"] = _day(row.detail.get("to")) or of(key)["due"]
        elif row.action == "result":
            of(key)["performed"] = _day(row.detail.get("performed_on"))
        elif row.action == "cycle_completed":
            cycle = of(key)
            cycle["done"] = cycle["performed"] or row.at.astimezone(zone).date()
            following = _day(row.detail.get("next_due"))
            if following is not None:
                of((row.device_id, row.kind, row.cycle + 1))["due"] = following
        elif row.action == "retired":
            of(key)["retired"] = row.at.astimezone(zone).date()
    return cycles


def _p50(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def outcome_figures(rows: Iterable[LogRow], devices: dict[str, DeviceMeta], *, month: date, zone: ZoneInfo,
                    assumptions: OutcomeSettings, site: str = "") -> dict[str, Any]:
    """The card's figures for the month starting ``month`` (its first day, in ``zone``), for the devices of
    ``site`` ("" for every device). JSON values only (it goes into a card).

    ``due`` / ``on_time`` / ``overdue`` count cycles due in the month; ``overdue_days_p50`` /
    ``overdue_days_max`` are calendar days (None without overdue cycles); ``quarantined`` counts
    out-of-tolerance results that opened an assessment in the month, ``assessments_closed`` those closed in
    it (``returned`` to service, ``retired``), ``assessments_open`` those still open at the month's end.
    ``notices`` counts the reminders and escalations the engine sent (``messages``: one per recipient).
    ``estimate_minutes`` is an estimate: ``messages × minutes_per_reminder + due × minutes_per_device_cycle``.
    """
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1)  # the first day after the month
    mine = [r for r in rows if not site or devices.get(r.device_id, DeviceMeta()).site == site]
    in_month = [r for r in mine if month <= r.at.astimezone(zone).date() < end]
    by_kind: dict[str, dict[str, int]] = {}
    late: list[tuple[int, str, str]] = []
    on_time = 0
    for (device_id, kind, _), cycle in sorted(_cycles(mine, zone).items()):
        due: date | None = cycle["due"]
        if due is None or not month <= due < end or (cycle["retired"] and cycle["retired"] <= due):
            continue
        counts = by_kind.setdefault(kind, {"on_time": 0, "overdue": 0})
        done: date | None = cycle["done"] if cycle["done"] and cycle["done"] < end else None
        if done is not None and done <= due:
            on_time += 1
            counts["on_time"] += 1
            continue
        counts["overdue"] += 1
        late.append((((done or end) - due).days, device_id, kind))
    quarantined = {(r.device_id, r.kind, r.cycle): r for r in mine if r.action == "quarantined"}
    # an assessment ends with its closing, or with the cycle's retirement (the device left the table)
    closed = {(r.device_id, r.kind, r.cycle): r for r in mine if r.action in ("assessment_closed", "retired")}
    closed_now = [r for r in in_month if r.action == "assessment_closed"]
    notices = [r for r in in_month if r.action in NOTICES]
    messages = sum(len(r.detail.get("to") or []) for r in notices)
    due_count = on_time + len(late)
    days = [d for d, _, _ in late]
    late.sort(key=lambda item: (-item[0], item[1], item[2]))
    return {
        "due": due_count, "on_time": on_time, "overdue": len(late),
        "overdue_days_p50": _p50(days), "overdue_days_max": max(days) if days else None,
        "longest": [{"device": devices.get(d, DeviceMeta()).name or d, "kind": k, "days": n}
                    for n, d, k in late[:SHOWN]],
        "by_kind": [{"kind": k, **v} for k, v in sorted(by_kind.items())],
        "quarantined": sum(1 for r in in_month if r.action == "quarantined"),
        "assessments_closed": len(closed_now),
        "returned": sum(1 for r in closed_now if r.detail.get("outcome") == "return_to_service"),
        "retired": sum(1 for r in closed_now if r.detail.get("outcome") == "retire"),
        "assessments_open": sum(1 for key, r in quarantined.items()
                                if r.at.astimezone(zone).date() < end and key not in closed),
        "notices": len(notices), "messages": messages,
        "estimate_minutes": round(messages * assumptions.minutes_per_reminder
                                  + due_count * assumptions.minutes_per_device_cycle),
        "minutes_per_reminder": assumptions.minutes_per_reminder,
        "minutes_per_device_cycle": assumptions.minutes_per_device_cycle,
    }




def log_row(fields: dict[str, Any], names: Any) -> LogRow | None:
    """A calibration-log record's fields as a :class:`LogRow` (None for a row without device, action or
    time: not one the engine wrote)."""
    device_id, action = cells.text(fields.get(names.device_id)), cells.text(fields.get(names.action))
    at = cells.or_none(cells.moment, fields.get(names.at), where=f"log column {names.at!r}")
    if not device_id or not action or at is None:
        return None
    cycle = cells.or_none(cells.number, fields.get(names.cycle), where=f"log column {names.cycle!r}")
    try:
        detail = json.loads(cells.text(fields.get(names.detail)) or "{}")
    except ValueError:
        detail = {}
    return LogRow(device_id=device_id, kind=cells.text(fields.get(names.kind)) or "calibration",
                  cycle=int(cycle or 0), action=action, at=at, detail=detail if isinstance(detail, dict) else {})
