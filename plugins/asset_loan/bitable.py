"""Reading and writing asset and history rows: Bitable cells ↔ the scenario's models, through the SDK's codec.

Every cell shape Feishu sends reads the same here as in every scenario (``engine.sdk.cells``): a lookup or
formula "应还日期" column reads as the due date, a keeper written as text (an open_id or a name) still
reads. A cell of a shape that cannot be its column's type is logged (by column, never by content) and
read as empty, so one odd row does not stop the weekly summary.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import cells

from .config import AssetLoanSettings
from .models import AssetInfo, AssetRow, HistoryEntry, HistoryRow, Loan

cell_text = cells.text  # the name the label sheet reads asset ids and names with


def _person(fields: dict[str, Any], column: str) -> tuple[str, str]:
    """``(open_id, name)`` of a person column; a name typed as text gives ``("", name)``."""
    value = fields.get(column)
    try:
        found = cells.person(value)
    except cells.CellError:
        return "", cells.text(value)
    return (found.id, found.name) if found else ("", "")


def _read(reader: Any, fields: dict[str, Any], column: str, *args: Any) -> Any:
    return cells.or_none(reader, fields.get(column), *args, where=f"asset table column {column!r}")


def read_asset(record_id: str, fields: dict[str, Any], settings: AssetLoanSettings, zone: ZoneInfo) -> AssetRow:
    """One asset-table record as an :class:`AssetRow` (dates read in ``zone``, the organization's)."""
    names = settings.fields
    keeper_id, keeper_name = _person(fields, names.keeper)
    borrower_id, borrower_name = _person(fields, names.borrower)
    return AssetRow(
        record_id=record_id, asset_id=cells.text(fields.get(names.asset_id)),
        name=cells.text(fields.get(names.name)), category=cells.text(fields.get(names.category)),
        location=cells.text(fields.get(names.location)), site=cells.text(fields.get(names.site)),
        keeper_open_id=keeper_id, keeper_name=keeper_name, status=cells.text(fields.get(names.status)),
        borrower_open_id=borrower_id, borrower_name=borrower_name,
        borrowed_at=_read(cells.moment, fields, names.borrowed_at),
        due_back=_read(cells.date, fields, names.due_back, zone))


def loan_fields(settings: AssetLoanSettings, status_label: str, loan: Loan | None, zone: ZoneInfo,
                returned_at: datetime | None = None) -> dict[str, Any]:
    """The asset row's loan columns for a status change (``loan=None`` clears the borrower)."""
    names = settings.fields
    fields: dict[str, Any] = {names.status: status_label}
    if loan is not None:
        fields[names.borrower] = _person_value(loan.borrower_open_id, loan.borrower_name)
        fields[names.borrowed_at] = cells.encode_moment(loan.borrowed_at or loan.requested_at)
        fields[names.due_back] = cells.encode_date(loan.due, zone)
        fields[names.returned_at] = None
    else:
        # An empty list clears a person cell. Date cells keep the last loan's dates: lark-oapi drops None
        # values from request bodies, so a null never reaches Feishu to clear them (the status and the
        # empty borrower say the asset is back; "returned at" says when).
        fields[names.borrower] = cells.encode_persons([])
    if returned_at is not None:
        fields[names.returned_at] = cells.encode_moment(returned_at)
    return fields


def _person_value(open_id: str, name: str = "") -> list[dict[str, str]]:
    # the name travels along so the stand-in (and a reader of the request log) shows who it is; Feishu
    # itself reads only the id
    return [{**entry, **({"name": name} if name else {})} for entry in cells.encode_persons([open_id])]


def history_fields(settings: AssetLoanSettings, asset: AssetInfo | str, entry: HistoryEntry,
                   due: date | None, zone: ZoneInfo) -> dict[str, Any]:
    """One history-table record for ``entry``."""
    names = settings.history_fields
    asset_id = asset if isinstance(asset, str) else asset.asset_id
    fields: dict[str, Any] = {names.asset_id: asset_id, names.action: entry.action,
                              names.at: cells.encode_moment(entry.at), names.note: entry.detail}
    if entry.actor_open_id:
        fields[names.actor] = cells.encode_persons([entry.actor_open_id])
    if entry.borrower_open_id:
        fields[names.borrower] = cells.encode_persons([entry.borrower_open_id])
    if due is not None:
        fields[names.due_back] = cells.encode_date(due, zone)
    if entry.scanned_at is not None and names.scanned_at:
        fields[names.scanned_at] = cells.encode_moment(entry.scanned_at)
    return fields


def read_history(fields: dict[str, Any], settings: AssetLoanSettings, zone: ZoneInfo) -> HistoryRow | None:
    """A history-table record as a :class:`HistoryRow` (None for one without asset, action or time)."""
    names = settings.history_fields
    asset_id, action = cells.text(fields.get(names.asset_id)), cells.text(fields.get(names.action))
    at = cells.or_none(cells.moment, fields.get(names.at), where=f"history column {names.at!r}")
    if not asset_id or not action or at is None:
        return None
    borrower, _ = _person(fields, names.borrower)
    scanned = cells.or_none(cells.moment, fields.get(names.scanned_at),
                            where=f"history column {names.scanned_at!r}") if names.scanned_at else None
    return HistoryRow(asset_id=asset_id, action=action, at=at, borrower_open_id=borrower,
                      due=cells.or_none(cells.date, fields.get(names.due_back), zone,
                                        where=f"history column {names.due_back!r}"),
                      scanned_at=scanned)
