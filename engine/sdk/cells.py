"""Bitable cells: every value shape Feishu sends, decoded into typed Python values, and encoded back.

Read a cell with the function for what the column *means*, whatever its field type::

    cells.text(fields.get("名称"))                 # str ("" when empty)
    cells.date(fields.get("应还日期"), zone)       # datetime.date in the zone, or None
    cells.persons(fields.get("保管人"))            # list[Person]
    cells.options(fields.get("标签"))              # list[str]

Shapes (Feishu's "多维表格记录数据结构", open.feishu.cn/document/docs/bitable-v1/app-table-record/
bitable-record-data-structure-overview, and the field guide app-table-field/guide), by field type:

====================  =========================================================================
text (1), barcode     ``[{"type": "text", "text": "..."}, {"type": "mention", ...}, {"type": "url",
                      "text": ..., "link": ...}]`` (rich-text segments), or a plain string
number (2), currency, progress, rating: a number (a formula may give a numeric string)
single select (3)     ``"选项"``;  multi select (4): ``["a", "b"]``
date (5), created time (1001), modified time (1002): ms since the epoch (an int)
checkbox (7)          ``true`` / ``false``
person (11), created by (1003), modified by (1004): ``[{"id": "ou_...", "name", "en_name", "email"}]``
                      (``open_id`` instead of ``id`` in some payloads; created/modified by may be a
                      single object)
phone (13)            ``"13800000000"``
URL (15)              ``{"link": "https://...", "text": "..."}``
attachment (17)       ``[{"file_token", "name", "size", "type", "url", "tmp_url"}]``
link (18), two-way link (21): ``{"link_record_ids": ["rec..."]}``, or the list API's
                      ``[{"record_ids": ["rec..."], "text": ..., "type": "text"}]``, or ``["rec..."]``
location (22)         ``{"location": "lng,lat", "name", "address", "full_address", "pname", "cityname",
                      "adname"}``
group (23)            ``[{"id": "oc_...", "name": ...}]``
auto number (1005)    ``"12"`` (a string, possibly with a prefix such as ``"NO.012"``)
formula (20), lookup (19): ``{"type": N, "value": [...]}`` where N is the field type of the values
                      in ``value``, each in that type's shape: ``{"type": 5, "value": [1795449600000]}``
                      is a date (2026-11-24 in Asia/Shanghai)
====================  =========================================================================

Every reader unwraps formula and lookup wrappers first, so a column may turn into a lookup without a
code change. Empty cells (absent, ``None``, ``""``, ``[]``) read as the empty value of the type (``""``,
``None``, ``[]``, ``False``). A value that cannot be the requested type raises :class:`CellError`,
which names the shape found and never the value (cells may hold personal data).

Writing: :func:`encode_date` (a day as local midnight in ms), :func:`encode_moment`,
:func:`encode_persons` (``[{"id": ...}]``; ``[]`` clears), :func:`encode_options`, :func:`encode_links`,
:func:`encode_url`. lark-oapi drops ``None`` values from request bodies, so ``None`` never clears a
cell: write ``[]`` (persons, options, links) or ``""`` (text) instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Attachment",
    "CellError",
    "Location",
    "Person",
    "Url",
    "attachments",
    "checkbox",
    "date",
    "encode_date",
    "encode_links",
    "encode_moment",
    "encode_options",
    "encode_persons",
    "encode_url",
    "links",
    "location",
    "moment",
    "number",
    "option",
    "options",
    "or_none",
    "person",
    "persons",
    "phone",
    "text",
    "unwrap",
    "url",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_SEGMENT_TYPES = {"text", "mention", "url", "equation"}
_TRUE = {"true", "1", "yes", "是", "✓", "√"}
_FALSE = {"false", "0", "no", "否", ""}


class CellError(ValueError):
    """A cell value that cannot be read as the requested type (its shape, never its content, is named)."""

    def __init__(self, wanted: str, value: Any) -> None:
        super().__init__(f"a Bitable cell of shape {_shape(value)} cannot be read as {wanted}")
        self.wanted = wanted


def or_none(reader: Callable[..., T], value: Any, *args: Any, where: str = "") -> T | None:
    """``reader(value, *args)``, or ``None`` when the cell cannot be read as that type.

    The lenient reading for tables people type into: one odd cell reads as empty instead of stopping a
    reconciliation, a search or a report. ``where`` (e.g. ``"asset table column '借用人'"``) is logged with the
    shape at WARNING; the cell's content never is (tables hold personal data).
    Example: ``cells.or_none(cells.date, fields.get("到期日"), zone, where="column '到期日'")``.
    """
    try:
        return reader(value, *args)
    except CellError as error:
        if where:
            log.warning("%s: %s; read as empty", where, error)
        return None


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class Person(_Value):
    """A person cell's entry: ``id`` is the open_id (``ou_...``) unless the app reads user or union ids."""

    id: str
    name: str = ""
    en_name: str = ""
    email: str = ""


class Url(_Value):
    link: str
    text: str = ""


class Attachment(_Value):
    """``size`` in bytes; ``url`` needs the app's token to download (``tmp_url`` gives a temporary one)."""

    file_token: str
    name: str = ""
    size: int = 0
    type: str = ""
    url: str = ""


class Location(_Value):
    """``longitude``/``latitude`` in degrees (GCJ-02, as Feishu's map gives them), with the address parts."""

    longitude: float | None = None
    latitude: float | None = None
    name: str = ""
    address: str = ""
    full_address: str = ""
    province: str = ""
    city: str = ""
    district: str = ""


# ---------------------------------------------------------------------------------------------- shapes


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(str(k) for k in value)[:6]) + "}"
    if isinstance(value, list):
        return f"list[{_shape(value[0])}]" if value else "[]"
    return type(value).__name__


def _is_wrapper(value: Any) -> bool:
    return isinstance(value, dict) and "value" in value and isinstance(value.get("type"), int) and (
        set(value) <= {"type", "value"})


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def unwrap(value: Any) -> Any:
    """The cell's own value: formula and lookup wrappers ``{"type": N, "value": [...]}`` removed.

    A wrapper's ``value`` is a list (one entry per looked-up record or formula result); wrappers inside it
    are unwrapped too. Anything else is returned as it is.
    """
    while _is_wrapper(value):
        value = value["value"]
    if isinstance(value, list) and any(isinstance(item, dict) and _is_wrapper(item) for item in value):
        flat: list[Any] = []
        for item in value:
            inner = unwrap(item)
            flat.extend(inner if isinstance(inner, list) else [inner])
        return flat
    return value


def _items(value: Any) -> Iterator[Any]:
    """The entries of a cell: a list's items (nested lists flattened), or the value itself."""
    value = unwrap(value)
    if _empty(value):
        return
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list):
                yield from _items(item)
            elif not _empty(item):
                yield item
    else:
        yield value


def _first(value: Any) -> Any:
    if isinstance(value, str):
        return value or None  # a plain cell: no wrapper, no list (a table read decodes many of these)
    if value is None or isinstance(value, int | float):
        return value
    return next(_items(value), None)


# ------------------------------------------------------------------------------------------------ text


def _text_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        return str(int(item)) if float(item).is_integer() else str(item)
    if isinstance(item, dict):
        for key in ("text", "name", "full_address", "link", "id", "file_token"):
            if isinstance(item.get(key), str):
                return item[key]
        if "link_record_ids" in item or "record_ids" in item:
            return ", ".join(links(item))
        if _is_wrapper(item):
            return text(item)
    raise CellError("text", item)


def text(value: Any) -> str:
    """The plain text of any cell, stripped of surrounding whitespace ("" when empty).

    Rich-text segments join without a separator (they are parts of one text); other lists (options,
    persons' names, looked-up values of several records) join with ", ".
    """
    if isinstance(value, str):
        return value.strip()  # a plain text cell, the most common by far
    if value is None:
        return ""
    items = list(_items(value))
    if not items:
        return ""
    if all(isinstance(i, dict) and i.get("type") in _SEGMENT_TYPES for i in items):
        return "".join(str(i.get("text", "")) for i in items).strip()
    return ", ".join(part for part in (_text_of(i).strip() for i in items) if part)


def phone(value: Any) -> str:
    """A phone cell (a string; a number typed into a text column reads the same)."""
    return text(value)


# ------------------------------------------------------------------------------------ numbers and flags


def number(value: Any) -> float | int | None:
    """A number, currency, progress or rating cell (or a formula/lookup giving one); None when empty.

    Integers stay ``int``; a numeric string (some formulas give one) is parsed.
    """
    item = _first(value)
    if item is None:
        return None
    if isinstance(item, bool):
        raise CellError("a number", item)
    if isinstance(item, int | float):
        return item
    raw = text(item) if isinstance(item, dict) else item
    if isinstance(raw, str):
        cleaned = raw.replace(",", "").strip()
        try:
            parsed = float(cleaned)
        except ValueError:
            raise CellError("a number", item) from None
        return int(parsed) if parsed.is_integer() and "." not in cleaned else parsed
    raise CellError("a number", item)


def checkbox(value: Any) -> bool:
    """A checkbox cell: ``True`` only when ticked (an empty cell is ``False``)."""
    item = _first(value)
    if item is None:
        return False
    if isinstance(item, bool):
        return item
    if isinstance(item, int | float):
        return item != 0
    raw = text(item).lower() if isinstance(item, dict | str) else None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise CellError("a checkbox", item)


# ------------------------------------------------------------------------------------------ moments


def moment(value: Any) -> dt.datetime | None:
    """A date, created-time or modified-time cell as an aware UTC ``datetime``; None when empty.

    Feishu sends ms since the epoch; an ISO 8601 string (a hand-filled text column) is read too, in UTC
    when it has no offset.
    """
    item = _first(value)
    if item is None:
        return None
    if isinstance(item, bool):
        raise CellError("a date", item)
    if isinstance(item, int | float):
        return dt.datetime.fromtimestamp(item / 1000, tz=dt.UTC)
    raw = text(item) if isinstance(item, dict) else item
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.isdigit():
            return dt.datetime.fromtimestamp(int(raw) / 1000, tz=dt.UTC)
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("/", "-"))
        except ValueError:
            raise CellError("a date", item) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise CellError("a date", item)


def date(value: Any, zone: ZoneInfo | str) -> dt.date | None:
    """A date cell as the calendar day it shows in ``zone`` (the organization's or site's zone).

    Feishu stores a date as the ms of local midnight, so the day must be read in the zone it was entered
    in: 1795449600000 is 2026-11-24 in Asia/Shanghai and 2026-11-23 in UTC. A plain ISO day
    (``"2026-11-24"``) is that day in any zone.
    """
    item = _first(value)
    if isinstance(item, str) and len(item.strip()) == 10:
        try:
            return dt.date.fromisoformat(item.strip().replace("/", "-"))
        except ValueError:
            pass
    found = moment(item)
    if found is None:
        return None
    return found.astimezone(_zone(zone)).date()


def _zone(zone: ZoneInfo | str) -> ZoneInfo:
    from engine.rules.workdays import as_zone

    return as_zone(zone)


# ----------------------------------------------------------------------------------------- choices


def options(value: Any) -> list[str]:
    """A single- or multi-select cell (or a lookup of one) as its option names, in order, without blanks."""
    names = []
    for item in _items(value):
        name = text(item) if isinstance(item, dict) else _text_of(item).strip()
        if name and name not in names:
            names.append(name)
    return names


def option(value: Any) -> str | None:
    """A single-select cell's option (the first one of a multi-select); None when empty."""
    found = options(value)
    return found[0] if found else None


# ----------------------------------------------------------------------------------------- people


def persons(value: Any) -> list[Person]:
    """A person, created-by or modified-by cell (or a lookup of one) as :class:`Person` entries.

    A text cell holding open_ids (``"ou_1, ou_2"``) reads as persons without names, so a table set up by
    hand still works.
    """
    found: list[Person] = []
    for item in _items(value):
        if isinstance(item, dict) and item.get("type") not in _SEGMENT_TYPES:
            person_id = item.get("id") or item.get("open_id") or item.get("user_id") or item.get("union_id")
            if not isinstance(person_id, str) or not person_id:
                raise CellError("a person", item)
            found.append(Person(id=person_id, name=str(item.get("name") or ""),
                                en_name=str(item.get("en_name") or ""), email=str(item.get("email") or "")))
        else:
            raw = text(item) if isinstance(item, dict) else item
            if not isinstance(raw, str):
                raise CellError("a person", item)
            ids = [part.strip() for part in raw.replace("，", ",").split(",") if part.strip()]
            if not ids or not all(part.startswith(("ou_", "on_")) for part in ids):
                raise CellError("a person", item)
            found.extend(Person(id=part) for part in ids)
    return found


def person(value: Any) -> Person | None:
    """The first person of a person cell; None when empty."""
    found = persons(value)
    return found[0] if found else None


# ------------------------------------------------------------------------------------ links and files


def links(value: Any) -> list[str]:
    """A link or two-way link cell as the linked record ids, in order."""
    ids: list[str] = []
    for item in _items(value):
        if isinstance(item, dict) and ("link_record_ids" in item or "record_ids" in item):
            found = item.get("link_record_ids") or item.get("record_ids") or []
        elif isinstance(item, str) and item.startswith("rec"):
            found = [item]
        else:
            raise CellError("linked records", item)
        ids.extend(str(record_id) for record_id in found if record_id and record_id not in ids)
    return ids


def url(value: Any) -> Url | None:
    """A URL cell (``{"link", "text"}``; a plain string is taken as the link); None when empty."""
    item = _first(value)
    if item is None:
        return None
    if isinstance(item, dict) and isinstance(item.get("link"), str):
        return Url(link=item["link"], text=str(item.get("text") or ""))
    if isinstance(item, str):
        return Url(link=item.strip(), text=item.strip())
    raise CellError("a URL", item)


def attachments(value: Any) -> list[Attachment]:
    """An attachment cell's files."""
    files = []
    for item in _items(value):
        if not isinstance(item, dict) or not isinstance(item.get("file_token"), str):
            raise CellError("attachments", item)
        files.append(Attachment(file_token=item["file_token"], name=str(item.get("name") or ""),
                                size=int(item.get("size") or 0), type=str(item.get("type") or ""),
                                url=str(item.get("url") or item.get("tmp_url") or "")))
    return files


def location(value: Any) -> Location | None:
    """A location cell; None when empty."""
    item = _first(value)
    if item is None:
        return None
    if not isinstance(item, dict) or not ({"location", "full_address", "address"} & set(item)):
        raise CellError("a location", item)
    longitude = latitude = None
    coordinates = str(item.get("location") or "")
    if "," in coordinates:
        lng, lat = coordinates.split(",", 1)
        try:
            longitude, latitude = float(lng), float(lat)
        except ValueError:
            raise CellError("a location", item) from None
    return Location(longitude=longitude, latitude=latitude, name=str(item.get("name") or ""),
                    address=str(item.get("address") or ""), full_address=str(item.get("full_address") or ""),
                    province=str(item.get("pname") or ""), city=str(item.get("cityname") or ""),
                    district=str(item.get("adname") or ""))


# ----------------------------------------------------------------------------------------- writing


def encode_date(day: dt.date, zone: ZoneInfo | str) -> int:
    """A calendar day as a date cell stores it: local midnight in ``zone``, in ms since the epoch."""
    if isinstance(day, dt.datetime):
        raise TypeError("encode_date takes a date; use encode_moment for a moment")
    return int(dt.datetime.combine(day, dt.time(), tzinfo=_zone(zone)).timestamp() * 1000)


def encode_moment(value: dt.datetime) -> int:
    """An aware moment as a date-time cell stores it, in ms since the epoch."""
    if value.utcoffset() is None:
        raise ValueError("encode_moment needs a timezone-aware datetime")
    return int(value.timestamp() * 1000)


def encode_persons(people: Iterable[str | Person]) -> list[dict[str, str]]:
    """A person cell's value: ``[{"id": open_id}, ...]`` (``[]`` clears the cell)."""
    return [{"id": p.id if isinstance(p, Person) else str(p)} for p in people if (p.id if isinstance(p, Person) else p)]


def encode_options(names: str | Sequence[str]) -> str | list[str]:
    """A single select's value (one name) or a multi select's (a list; ``[]`` clears it)."""
    return names if isinstance(names, str) else [str(name) for name in names]


def encode_links(record_ids: Iterable[str]) -> list[str]:
    """A link cell's value: the linked record ids (``[]`` clears it)."""
    return [str(record_id) for record_id in record_ids]


def encode_url(link: str, label: str = "") -> dict[str, str]:
    """A URL cell's value: ``{"link", "text"}`` (the link itself when no label is given)."""
    return {"link": link, "text": label or link}
