"""Ticket and history rows: the workflow's facts ↔ Bitable cells, through the SDK's codec (``engine.sdk.cells``).

The ticket table is kept in step with each ticket (one row per ticket), the history table gets a row
per step. A cell of a shape its column cannot hold is logged by column (never by content) and read as
empty, so one odd row does not stop the monthly report.
"""

from __future__ import annotations

import logging
from datetime import time
from typing import Any

from engine.sdk import cells

from .config import RepairSettings, RotaEntry
from .models import HistoryEntry, Ticket, TicketRow

log = logging.getLogger(__name__)

CATEGORY_LABELS = {"facilities": "总务", "it": "信息", "medical": "设备"}
PRIORITY_LABELS = {"urgent": "紧急", "normal": "一般"}
SOURCE_LABELS = {"message": "消息", "table": "表格", "alert": "监控告警", "event": "场景联动"}
STATUS_LABELS = {"new": "已受理", "dispatched": "已派单", "accepted": "已接单", "on_the_way": "在路上",
                 "working": "维修中", "waiting_parts": "等待配件", "done": "待确认", "confirmed": "已确认",
                 "closed": "已关闭"}


def _read(reader: Any, fields: dict[str, Any], column: str, *args: Any) -> Any:
    return cells.or_none(reader, fields.get(column), *args, where=f"ticket table column {column!r}")


def reporter_of(fields: dict[str, Any], column: str) -> str:
    """The open id of a person cell (or an open id typed as text)."""
    person = _read(cells.person, fields, column)
    if person is not None:
        return person.id
    typed = cells.text(fields.get(column))
    return typed if typed.startswith("ou_") else ""


def ticket_fields(ticket: Ticket, settings: RepairSettings) -> dict[str, Any]:
    """The ticket row's cells for the ticket as it stands (moments in ms; empty ones left out)."""
    names = settings.fields
    fields: dict[str, Any] = {
        names.ticket: ticket.ticket_id, names.description: ticket.text, names.site: ticket.site_name or ticket.site,
        names.location: ticket.location, names.asset: ticket.asset_id,
        names.category: CATEGORY_LABELS.get(ticket.category, ticket.category),
        names.priority: PRIORITY_LABELS.get(ticket.priority, ticket.priority),
        names.status: STATUS_LABELS.get(ticket.status, ticket.status),
        names.source: SOURCE_LABELS.get(ticket.source, ticket.source), names.reopened: ticket.reopened,
    }
    if ticket.reporter_open_id:
        fields[names.reporter] = cells.encode_persons([ticket.reporter_open_id])
    if ticket.technician.open_id:
        fields[names.technician] = cells.encode_persons([ticket.technician.open_id])
    for column, moment in ((names.reported_at, ticket.reported_at), (names.notified_at, ticket.notified_at),
                           (names.accepted_at, ticket.accepted_at), (names.done_at, ticket.done_at),
                           (names.closed_at, ticket.closed_at)):
        if moment is not None:
            fields[column] = cells.encode_moment(moment)
    if ticket.done_at is not None:
        fields[names.sla_met] = not (ticket.accept_late or ticket.fix_late)
    if ticket.rating is not None:
        fields[names.rating] = ticket.rating
        fields[names.comment] = ticket.comment
    return fields


def history_fields(ticket_id: str, entry: HistoryEntry, settings: RepairSettings) -> dict[str, Any]:
    names = settings.history_fields
    fields: dict[str, Any] = {names.ticket: ticket_id, names.action: entry.action,
                              names.at: cells.encode_moment(entry.at), names.note: entry.note}
    if entry.actor_open_id:
        fields[names.actor] = cells.encode_persons([entry.actor_open_id])
    return fields


_CATEGORY_OF = {label: key for key, label in CATEGORY_LABELS.items()}


def read_ticket_row(fields: dict[str, Any], settings: RepairSettings) -> TicketRow:
    """A ticket-table row as the monthly report reads it (a category label or key both read)."""
    names = settings.fields
    category = cells.text(fields.get(names.category))
    return TicketRow(
        ticket_id=cells.text(fields.get(names.ticket)), site=cells.text(fields.get(names.site)),
        category=_CATEGORY_OF.get(category, category), location=cells.text(fields.get(names.location)),
        asset_id=cells.text(fields.get(names.asset)),
        reported_at=_read(cells.moment, fields, names.reported_at),
        notified_at=_read(cells.moment, fields, names.notified_at),
        accepted_at=_read(cells.moment, fields, names.accepted_at),
        done_at=_read(cells.moment, fields, names.done_at),
        sla_met=(_read(cells.checkbox, fields, names.sla_met) if fields.get(names.sla_met) is not None else None),
        reopened=int(_read(cells.number, fields, names.reopened) or 0))


def _clock(value: str) -> time | None:
    try:
        return time.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def read_rota_row(fields: dict[str, Any], settings: RepairSettings) -> tuple[str, str, RotaEntry] | None:
    """``(site, category, duty)`` of a rota-table row; None for a row without a technician or with odd
    hours (logged by column, never by content)."""
    names = settings.rota_fields
    person = _read(cells.person, fields, names.technician)
    if person is None or not person.id:
        return None
    raw_days = _read(cells.options, fields, names.weekdays) or []
    days = [int(d) for part in raw_days for d in part.replace("，", ",").split(",") if d.strip().isdigit()]
    start, end = _clock(cells.text(fields.get(names.start)) or "00:00"), _clock(cells.text(fields.get(names.end))
                                                                                  or "00:00")
    if start is None or end is None or any(not 1 <= d <= 7 for d in days):
        log.warning("rota table: a row with unreadable %r/%r/%r; skipped", names.weekdays, names.start, names.end)
        return None
    category = cells.text(fields.get(names.category))
    entry = RotaEntry(open_id=person.id, name=person.name, weekdays=days, start=start, end=end)
    return cells.text(fields.get(names.site)), _CATEGORY_OF.get(category, category), entry
