"""Charts in cards: Feishu's card chart element (JSON 2.0 ``{"tag": "chart", "chart_spec": ...}``) from rows.

Feishu draws the chart from a VChart spec inside the card (Feishu Open Platform, "卡片 JSON 2.0 结构 /
图表组件": line, area, bar and pie among others; at most five charts per card is advised; no JavaScript in
the spec). Templates use the ``chart`` filter::

    {{ rows | chart("bar", x="category", y="tickets", title=_("Tickets")) }},

which writes the whole element as JSON. The rows are plain data (``[{"category": "信息", "tickets": 12}]``);
labels come from the context already in the reader's language, so one template serves every locale. The
stand-in's outbox draws the same element (``engine.feishu.standin.cardview``).

Errors: :class:`ChartError` (a ``ValueError``) for an unknown kind, a row without the named field, a value
that is not a finite number, or more rows than :data:`MAX_POINTS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

KINDS = ("bar", "horizontal_bar", "line", "area", "pie")
MAX_POINTS = 200  # a chart people read, not a data dump: the rows behind it go in a panel or the table


class ChartError(ValueError):
    """A chart the rows cannot make (see the module's docstring)."""


def _number(value: Any, where: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChartError(f"{where} is {value!r}, not a finite number")
    return value


SERIES = "series"  # the series field of a chart whose ``y`` names several number fields


def _values(rows: Sequence[Mapping[str, Any]], x: str, ys: list[str], series: str | None,
            labels: Mapping[str, Any], names: Mapping[str, Any]) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ChartError(f"chart row {index} is {type(row).__name__}, not an object")
        for field in (x, *ys, *([series] if series else [])):
            if field not in row:
                raise ChartError(f"chart row {index} has no field {field!r}")
        label = str(labels.get(str(row[x]), row[x]))
        for field in ys:
            value: dict[str, Any] = {x: label, "value": _number(row[field], f"chart row {index}'s {field!r}")}
            if len(ys) > 1:
                value[SERIES] = str(names.get(field, field))
            elif series:
                value[series] = str(row[series])
            values.append(value)
    return values


def chart_element(rows: Sequence[Mapping[str, Any]], kind: str, *, x: str, y: str | Sequence[str],
                  series: str | None = None, labels: Mapping[str, Any] | None = None,
                  names: Mapping[str, Any] | None = None, title: str = "",
                  height: int | None = None) -> dict[str, Any]:
    """The card element of a ``kind`` chart of ``rows``: ``x`` names the category (or time) field, ``y``
    the number field, ``series`` an optional field that splits rows into coloured series.

    ``y`` may name several number fields instead (``["accepted", "fixed"]``): each becomes a series, shown
    as ``names[field]``. ``labels`` maps ``x`` values to what the reader sees (``{"it": "信息"}``), so a
    template passes its own words. ``kind`` is one of :data:`KINDS` (``pie``: ``x`` is the slice's label,
    ``y`` its size). ``height`` in pixels (1–999); default: Feishu's aspect ratio (16:9 on desktop). Rows
    keep their order.
    """
    if kind not in KINDS:
        raise ChartError(f"chart kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(rows, Sequence) or isinstance(rows, str | bytes):
        raise ChartError(f"chart rows must be a list of objects, not {type(rows).__name__}")
    ys = [y] if isinstance(y, str) else [str(field) for field in y]
    if not ys or (len(ys) > 1 and (series or kind == "pie")):
        raise ChartError("a chart takes one y field with a series or a pie, or several y fields without")
    if len(rows) * len(ys) > MAX_POINTS:
        raise ChartError(f"{len(rows) * len(ys)} values is more than a chart shows ({MAX_POINTS})")
    values = _values(rows, x, ys, series, labels or {}, names or {})
    y = "value"
    series = SERIES if len(ys) > 1 else series
    spec: dict[str, Any] = {"data": {"values": values}}
    if kind == "pie":
        spec.update(type="pie", categoryField=x, valueField=y, outerRadius=0.8, innerRadius=0.5,
                    label={"visible": True}, legends={"visible": True, "orient": "right"})
    elif kind == "horizontal_bar":
        spec.update(type="bar", direction="horizontal", xField=y, yField=x)
    else:
        spec.update(type=kind, xField=x, yField=y)
    if series and kind != "pie":
        spec.update(seriesField=series, legends={"visible": True, "orient": "bottom"})
        if kind in ("bar", "horizontal_bar"):
            spec["xField" if kind == "bar" else "yField"] = [x, series]  # grouped bars, side by side
    if title:
        spec["title"] = {"text": str(title)}
    element: dict[str, Any] = {"tag": "chart", "chart_spec": spec}
    if height is not None:
        if not 1 <= int(height) <= 999:
            raise ChartError(f"chart height {height} is not 1-999 px")
        element["height"] = f"{int(height)}px"
    return element


def chart_filter(rows: Sequence[Mapping[str, Any]], kind: str, *, x: str, y: str | Sequence[str],
                 series: str | None = None, labels: Mapping[str, Any] | None = None,
                 names: Mapping[str, Any] | None = None, title: str = "", height: int | None = None) -> str:
    """The ``chart`` template filter: :func:`chart_element` as a JSON literal."""
    return json.dumps(chart_element(rows, kind, x=x, y=y, series=series, labels=labels, names=names, title=title,
                                    height=height), ensure_ascii=False)
