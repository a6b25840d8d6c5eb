"""Rounds and answers rows: the workflow's facts ↔ Bitable cells, through the SDK's codec
(``engine.sdk.cells``). A cell of a shape its column cannot hold is logged by column, never by content,
and read as empty."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import cells

from .config import DocumentsSettings
from .models import Hospital, Round, RoundInput

KINDS = {"阅知": "read", "read": "read", "上报": "upload", "upload": "upload"}
STATUS_LABELS = {"waiting": "待回复", "acknowledged": "已阅知", "uploaded": "已上报", "missing": "未回复"}


def _read(reader: Any, fields: dict[str, Any], column: str, *args: Any) -> Any:
    return cells.or_none(reader, fields.get(column), *args, where=f"rounds table column {column!r}")


def read_round_row(fields: dict[str, Any], settings: DocumentsSettings, given: RoundInput,
                   zone: ZoneInfo) -> RoundInput:
    """A rounds-table row as the round it sends (the round id and record id come from ``given``)."""
    names = settings.fields
    sites = _read(cells.options, fields, names.sites) or []
    sites = [s.strip() for part in sites for s in part.replace("，", ",").split(",") if s.strip()]
    sender = _read(cells.person, fields, names.sender)
    link = _read(cells.url, fields, names.link)
    kind = KINDS.get(cells.text(fields.get(names.kind)).lower(), "read")
    return given.model_copy(update={
        "kind": kind, "title": cells.text(fields.get(names.title)), "body": cells.text(fields.get(names.body)),
        "link": link.link if link is not None else cells.text(fields.get(names.link)),
        "deadline": _read(cells.date, fields, names.deadline, zone), "sites": sites,
        "sender_open_id": sender.id if sender is not None else given.sender_open_id})


def answer_key(round_id: str, site: str) -> str:
    return f"{round_id}/{site}"


def answer_fields(r: Round, h: Hospital, settings: DocumentsSettings) -> dict[str, Any]:
    """The answers row of one hospital in one round, as it stands."""
    names = settings.answer_fields
    fields: dict[str, Any] = {
        names.key: answer_key(r.round_id, h.site), names.round_id: r.round_id, names.title: r.title,
        names.site: h.name or h.site, names.status: STATUS_LABELS[h.status], names.late: h.late,
        names.reminders: h.reminders, names.escalated: h.escalated,
        names.files: "\n".join(f.link or f.name for f in h.files),
    }
    if h.responsible:
        fields[names.responsible] = cells.encode_persons(h.responsible)
    if h.answered_by:
        fields[names.answered_by] = cells.encode_persons([h.answered_by])
    if h.answered_at is not None:
        fields[names.answered_at] = cells.encode_moment(h.answered_at)
    if r.deadline is not None:
        fields[names.deadline] = cells.encode_date(r.deadline, h.timezone)
    return fields
