"""Reading the recruiting tables' cells through the SDK's codec (``engine.sdk.cells``).

Every cell shape Feishu sends (rich text, options, persons, dates, formula and lookup wrappers) reads the
same here as in every scenario. What this module adds is the tables' own conventions: tags typed as
"ICU、急诊" in a text column, a consent column that is a checkbox or a "同意" select, and tolerance: a cell
of a shape that cannot be its column's type is logged (by column, never by content: the tables hold
candidates' personal data) and read as empty, so one odd row does not stop a search or the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from engine.sdk import WorkCalendar, cells

T = TypeVar("T")
_SEPARATORS = re.compile(r"[,，、;；]")
_CONSENT_WORDS = {"y", "同意", "已同意"}  # a select column's "yes", besides the checkbox's own words


def _read(reader: Callable[..., T], row: Mapping[str, Any], column: str, *args: Any) -> T | None:
    return cells.or_none(reader, row.get(column), *args, where=f"recruiting column {column!r}")


def text(row: Mapping[str, Any], column: str) -> str:
    """A column's plain text ("" when empty or unreadable)."""
    return _read(cells.text, row, column) or ""


def tags(row: Mapping[str, Any], column: str) -> list[str]:
    """A multi-select, or text separated by commas / 、 / semicolons, as a list of tags."""
    found: list[str] = []
    for option in _read(cells.options, row, column) or []:
        found.extend(part.strip() for part in _SEPARATORS.split(option) if part.strip())
    return found


def person_id(row: Mapping[str, Any], column: str) -> str:
    """The open id of a person column's first person ("" when empty or a name typed as text)."""
    found = _read(cells.person, row, column)
    return found.id if found else ""


def moment(row: Mapping[str, Any], column: str) -> datetime | None:
    """A date(-time) column as an aware UTC moment."""
    return _read(cells.moment, row, column)


def day(row: Mapping[str, Any], column: str, calendar: WorkCalendar) -> date | None:
    """A date column as the day it shows in the calendar's zone (the organization's or the site's)."""
    return _read(cells.date, row, column, calendar.zone)


def flag(row: Mapping[str, Any], column: str) -> bool:
    """A checkbox, or a select/text column saying yes ("是", "同意", "true"...)."""
    try:
        return cells.checkbox(row.get(column))
    except cells.CellError:
        return text(row, column).strip().lower() in _CONSENT_WORDS


def count(row: Mapping[str, Any], column: str, default: int = 0) -> int:
    """A number column as a whole number (``default`` when empty or unreadable)."""
    found = _read(cells.number, row, column)
    return int(found) if found is not None else default


def number(row: Mapping[str, Any], column: str) -> float | None:
    """A number column as a float (None when empty or unreadable)."""
    found = _read(cells.number, row, column)
    return float(found) if found is not None else None


def value_text(value: Any) -> str:
    """The text of one loose value (a card form's field, a Hire payload's), "" when unreadable."""
    return text({"": value}, "")


def value_tags(value: Any) -> list[str]:
    return tags({"": value}, "")


def value_count(value: Any, default: int = 0) -> int:
    return count({"": value}, "", default)
