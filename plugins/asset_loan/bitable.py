"""Reading and writing asset and history rows: pure conversions between Bitable cells and models.

Bitable cells come in several shapes (text, rich-text segments, people ``[{"id": "ou_..."}]``, dates in
ms since the epoch); these helpers accept all of them, so a table set up by hand still reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from .config import AssetLoanSettings
from .models import AssetInfo, AssetRow, HistoryEntry, Loan


def cell_text(value: Any) -> str:
    """The plain text of a cell (first item of a list, ``text``/``name`` of a segment)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, dict):
        for key in ("text", "name", "value", "id"):
            if key in value:
                return cell_text(value[key])
        return ""
    if isinstance(value, list):
        return "".join(cell_text(item) for item in value)
    return str(value)


def cell_person(value: Any) -> tuple[str, str]:
    """``(open_id, name)`` of a person cell; a text cell starting with ``ou_`` is taken as an open_id."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        return str(value.get("id") or value.get("open_id") or ""), str(value.get("name") or "")
    textual = cell_text(value)
    return (textual, "") if textual.startswith("ou_") else ("", textual)


def person(open_id: str, name: str = "") -> list[dict[str, str]]:
    return [{"id": open_id, **({"name": name} if name else {})}]


def cell_datetime(value: Any) -> datetime | None:
    """A date cell (ms since the epoch, or an ISO string) as an aware UTC datetime."""
    if value in (None, "", []):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(cell_text(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def date_ms(day: date, zone: ZoneInfo) -> int:
    """A calendar day as Bitable stores a date: local midnight in ms."""
    return int(datetime.combine(day, time(), tzinfo=zone).timestamp() * 1000)


def moment_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def read_asset(record_id: str, fields: dict[str, Any], settings: AssetLoanSettings, zone: ZoneInfo) -> AssetRow:
    """One asset-table record as an :class:`AssetRow`."""
    names = settings.fields
    keeper_id, keeper_name = cell_person(fields.get(names.keeper))
    borrower_id, borrower_name = cell_person(fields.get(names.borrower))
    due_moment = cell_datetime(fields.get(names.due_back))
    return AssetRow(
        record_id=record_id, asset_id=cell_text(fields.get(names.asset_id)).strip(),
        name=cell_text(fields.get(names.name)), category=cell_text(fields.get(names.category)),
        location=cell_text(fields.get(names.location)), keeper_open_id=keeper_id, keeper_name=keeper_name,
        status=cell_text(fields.get(names.status)), borrower_open_id=borrower_id, borrower_name=borrower_name,
        borrowed_at=cell_datetime(fields.get(names.borrowed_at)),
        due_back=due_moment.astimezone(zone).date() if due_moment else None)


def loan_fields(settings: AssetLoanSettings, status_label: str, loan: Loan | None, zone: ZoneInfo,
                returned_at: datetime | None = None) -> dict[str, Any]:
    """The asset row's loan columns for a status change (``loan=None`` clears the borrower)."""
    names = settings.fields
    fields: dict[str, Any] = {names.status: status_label}
    if loan is not None:
        fields[names.borrower] = person(loan.borrower_open_id, loan.borrower_name)
        fields[names.borrowed_at] = moment_ms(loan.borrowed_at or loan.requested_at)
        fields[names.due_back] = date_ms(loan.due, zone)
        fields[names.returned_at] = None
    else:
        # An empty list clears a person cell. Date cells keep the last loan's dates: lark-oapi drops None
        # values from request bodies, so a null never reaches Feishu to clear them (the status and the
        # empty borrower say the asset is back; "returned at" says when).
        fields[names.borrower] = []
    if returned_at is not None:
        fields[names.returned_at] = moment_ms(returned_at)
    return fields


def history_fields(settings: AssetLoanSettings, asset: AssetInfo | str, entry: HistoryEntry,
                   due: date | None, zone: ZoneInfo) -> dict[str, Any]:
    """One history-table record for ``entry``."""
    names = settings.history_fields
    asset_id = asset if isinstance(asset, str) else asset.asset_id
    fields: dict[str, Any] = {names.asset_id: asset_id, names.action: entry.action, names.at: moment_ms(entry.at),
                              names.note: entry.detail}
    if entry.actor_open_id:
        fields[names.actor] = person(entry.actor_open_id)
    if entry.borrower_open_id:
        fields[names.borrower] = person(entry.borrower_open_id)
    if due is not None:
        fields[names.due_back] = date_ms(due, zone)
    return fields
