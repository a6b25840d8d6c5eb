"""Bitable record search semantics: filter conditions, sorting and field projection (pure functions).

Cell values come in many shapes (text, number, single/multi select, people ``[{"id": "ou_…"}]``, dates in
ms, checkboxes, rich-text segments ``[{"type": "text", "text": …}]``); conditions carry their operands as a
list of strings. :func:`matches` compares them the way a user would expect from Feishu's filter UI.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

OPERATORS = {"is", "isNot", "contains", "doesNotContain", "isEmpty", "isNotEmpty", "isGreater",
             "isGreaterEqual", "isLess", "isLessEqual"}
CST = timezone(timedelta(hours=8))  # Bitable dates are interpreted in the tenant's zone; Feishu is UTC+8
_DAY_MS = 86400 * 1000
_RELATIVE = {"Today": 0, "Tomorrow": 1, "Yesterday": -1}


class FilterError(ValueError):
    """A malformed filter (unknown operator or conjunction)."""


def texts(value: Any) -> list[str]:
    """Every comparable string inside a cell value."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float):
        return [_num_text(value)]
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        for key in ("text", "id", "name", "link", "value", "email"):
            if key in value:
                return texts(value[key])
        if "link_record_ids" in value:
            return [str(v) for v in value["link_record_ids"]]
        return []
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    return [str(value)]


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _day_start(ms: float) -> int:
    day = datetime.fromtimestamp(ms / 1000, CST).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp() * 1000)


def _date_operand(operand: list[str]) -> int | None:
    """Start of the day an operand names: ``["ExactDate", "<ms>"]``, ``["Today"]``, ``["Tomorrow"]``…"""
    if not operand:
        return None
    head = operand[0]
    if head == "ExactDate" and len(operand) > 1 and _number(operand[1]) is not None:
        return _day_start(float(operand[1]))
    if head in _RELATIVE:
        today = _day_start(datetime.now(UTC).timestamp() * 1000)
        return today + _RELATIVE[head] * _DAY_MS
    return None


def _compare(cell: Any, operand: list[str]) -> float | None:
    """cell - operand (sign only matters) for numbers and dates; None when not comparable."""
    day = _date_operand(operand)
    if day is not None:
        if not isinstance(cell, int | float) or isinstance(cell, bool):
            return None
        cell_day = _day_start(cell)
        return float(cell_day - day)
    values = texts(cell)
    left = _number(values[0]) if len(values) == 1 else None
    right = _number(operand[0]) if operand else None
    if left is None or right is None:
        return None
    return left - right


def condition_holds(fields: dict[str, Any], cond: dict[str, Any]) -> bool:
    op = cond.get("operator", "is")
    if op not in OPERATORS:
        raise FilterError(f"unknown operator {op!r}")
    cell = fields.get(cond.get("field_name", ""))
    operand = [str(v) for v in (cond.get("value") or [])]
    if op == "isEmpty":
        return _is_empty(cell)
    if op == "isNotEmpty":
        return not _is_empty(cell)
    if op in ("is", "isNot"):
        equal = _equals(cell, operand)
        return equal if op == "is" else not equal
    if op in ("contains", "doesNotContain"):
        cell_texts = texts(cell)
        hit = any(o in t for o in operand for t in cell_texts) if not isinstance(cell, list) else \
            any(o in cell_texts for o in operand)
        return hit if op == "contains" else not hit
    diff = _compare(cell, operand)
    if diff is None:
        return False
    return {"isGreater": diff > 0, "isGreaterEqual": diff >= 0, "isLess": diff < 0,
            "isLessEqual": diff <= 0}[op]


def _equals(cell: Any, operand: list[str]) -> bool:
    if not operand:
        return _is_empty(cell)
    day = _date_operand(operand)
    if day is not None:
        return isinstance(cell, int | float) and not isinstance(cell, bool) and _day_start(cell) == day
    cell_texts = texts(cell)
    if isinstance(cell, list):  # multi-select / people: the same set of options
        return sorted(set(cell_texts)) == sorted(set(operand))
    if len(cell_texts) != 1:
        return False
    left, right = _number(cell_texts[0]), _number(operand[0])
    if left is not None and right is not None and not isinstance(cell, str):
        return left == right
    return cell_texts[0] == operand[0]


def matches(fields: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    """Whether a record's fields satisfy a search ``filter`` (conditions and nested ``children``)."""
    if not flt:
        return True
    conjunction = flt.get("conjunction", "and")
    if conjunction not in ("and", "or"):
        raise FilterError(f"unknown conjunction {conjunction!r}")
    results = [condition_holds(fields, c) for c in flt.get("conditions") or []]
    results += [matches(fields, child) for child in flt.get("children") or []]
    if not results:
        return True
    return all(results) if conjunction == "and" else any(results)


def sort_records(records: list[dict[str, Any]], sort: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Stable multi-key sort; empty cells go last whatever the direction."""
    out = list(records)
    for spec in reversed(sort or []):
        name, desc = spec.get("field_name", ""), bool(spec.get("desc"))

        def key(rec: dict[str, Any], name: str = name) -> tuple[int, Any]:
            cell = rec["fields"].get(name)
            if _is_empty(cell):
                return (1, 0)
            values = texts(cell)
            num = _number(values[0]) if len(values) == 1 and not isinstance(cell, str) else None
            return (0, num if num is not None else (values[0] if values else ""))

        present = [r for r in out if key(r)[0] == 0]
        empty = [r for r in out if key(r)[0] == 1]
        try:
            present.sort(key=lambda r: key(r)[1], reverse=desc)
        except TypeError:  # mixed numbers and text: compare as text
            present.sort(key=lambda r: str(key(r)[1]), reverse=desc)
        out = present + empty
    return out


def project(fields: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if not names:
        return dict(fields)
    return {n: fields[n] for n in names if n in fields}
