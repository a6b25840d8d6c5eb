"""The outbox's drawing of a card chart element: the VChart spec's data as an inline SVG.

Only what :mod:`engine.charts` writes is drawn (bar, grouped bar, horizontal bar, line, area, pie); Feishu
draws far more, and anything else shows as its data in a list. Every label is escaped; the SVG has no
script or link, so the outbox's Content Security Policy holds.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 520, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 46
COLOURS = ("#3370ff", "#34c724", "#ff8800", "#f54a45", "#7f3bf5", "#14c0ff", "#ffc60a", "#8f959e")


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        else 0.0


def _field(spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    if isinstance(value, list):  # grouped bars name [category, series]
        value = value[0] if value else ""
    return str(value or "")


def _label(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend(names: list[str]) -> str:
    if len(names) < 2:
        return ""
    items = "".join(f'<span class="legend-item"><i style="background:{COLOURS[i % len(COLOURS)]}"></i>'
                    f"{esc(name)}</span>" for i, name in enumerate(names))
    return f'<div class="chart-legend">{items}</div>'


def render_chart(element: dict[str, Any]) -> str:
    """The chart element as HTML (a title, an SVG, a legend), or its rows as a list when not drawable."""
    spec = element.get("chart_spec") if isinstance(element.get("chart_spec"), dict) else {}
    title = spec.get("title", {}).get("text", "") if isinstance(spec.get("title"), dict) else ""
    data = spec.get("data")
    values = data.get("values") if isinstance(data, dict) else data[0].get("values") \
        if isinstance(data, list) and data and isinstance(data[0], dict) else None
    rows = [v for v in values if isinstance(v, dict)] if isinstance(values, list) else []
    kind = str(spec.get("type") or "")
    head = f'<div class="chart-title">{esc(title)}</div>' if title else ""
    if kind == "pie":
        body, names = _pie(rows, str(spec.get("categoryField") or ""), str(spec.get("valueField") or ""))
    elif kind in ("bar", "line", "area"):
        horizontal = spec.get("direction") == "horizontal"
        x, y = (_field(spec, "yField"), _field(spec, "xField")) if horizontal else \
            (_field(spec, "xField"), _field(spec, "yField"))
        body, names = _axes(rows, kind, x, y, str(spec.get("seriesField") or ""), horizontal)
    else:
        items = "".join(f"<li>{esc(', '.join(f'{k}: {v}' for k, v in row.items()))}</li>" for row in rows)
        return f'<div class="el chart">{head}<ul class="chart-data">{items}</ul></div>'
    return f'<div class="el chart">{head}{body}{_legend(names)}</div>'


def _svg(inner: str) -> str:
    return (f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg">{inner}</svg>')


def _axes(rows: list[dict[str, Any]], kind: str, x: str, y: str, series: str,
          horizontal: bool) -> tuple[str, list[str]]:
    categories: list[str] = []
    names: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    for row in rows:
        category, name = str(row.get(x, "")), str(row.get(series, "")) if series else ""
        if category not in categories:
            categories.append(category)
        if name not in names:
            names.append(name)
        cells[(category, name)] = cells.get((category, name), 0.0) + _num(row.get(y))
    top = max([0.0, *cells.values()]) or 1.0
    low = min([0.0, *cells.values()])
    span = top - low or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" class="axis"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" class="axis"/>']
    n = max(len(categories), 1)
    if horizontal:
        band = plot_h / n
        for i, category in enumerate(categories):
            for j, name in enumerate(names):
                value = cells.get((category, name), 0.0)
                bar_h = band * 0.7 / len(names)
                y0 = TOP + i * band + band * 0.15 + j * bar_h
                w = plot_w * (value - low) / span
                parts.append(f'<rect x="{LEFT}" y="{y0:.1f}" width="{w:.1f}" height="{bar_h:.1f}" '
                             f'fill="{COLOURS[j % len(COLOURS)]}"><title>{esc(category)} {esc(name)} '
                             f'{value:g}</title></rect>')
                parts.append(f'<text x="{LEFT + w + 3:.1f}" y="{y0 + bar_h * 0.75:.1f}" class="val">{value:g}</text>')
            parts.append(f'<text x="{LEFT - 3}" y="{TOP + (i + 0.55) * band:.1f}" class="cat end">'
                         f"{esc(_label(category, 6))}</text>")
        return _svg("".join(parts)), names
    band = plot_w / n

    def at(value: float) -> float:
        return TOP + plot_h - plot_h * (value - low) / span

    for i, category in enumerate(categories):
        parts.append(f'<text x="{LEFT + (i + 0.5) * band:.1f}" y="{TOP + plot_h + 16}" class="cat">'
                     f"{esc(_label(category))}</text>")
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 8}" class="val end">{top:g}</text>')
    for j, name in enumerate(names):
        colour = COLOURS[j % len(COLOURS)]
        if kind == "bar":
            bar_w = band * 0.7 / len(names)
            for i, category in enumerate(categories):
                value = cells.get((category, name), 0.0)
                x0 = LEFT + i * band + band * 0.15 + j * bar_w
                y0 = at(max(value, 0.0))
                parts.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                             f'height="{abs(at(value) - at(0.0)):.1f}" fill="{colour}"><title>{esc(category)} '
                             f"{esc(name)} {value:g}</title></rect>")
                parts.append(f'<text x="{x0 + bar_w / 2:.1f}" y="{y0 - 3:.1f}" class="val">{value:g}</text>')
            continue
        points = [(LEFT + (i + 0.5) * band, at(cells.get((c, name), 0.0))) for i, c in enumerate(categories)]
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        if kind == "area" and points:
            base = at(0.0)
            parts.append(f'<polygon points="{points[0][0]:.1f},{base:.1f} {line} {points[-1][0]:.1f},{base:.1f}" '
                         f'fill="{colour}" fill-opacity="0.25"/>')
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (px, py), category in zip(points, categories, strict=True):
            value = cells.get((category, name), 0.0)
            parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{esc(category)} '
                         f"{esc(name)} {value:g}</title></circle>")
    return _svg("".join(parts)), names


def _pie(rows: list[dict[str, Any]], category: str, value: str) -> tuple[str, list[str]]:
    slices = [(str(row.get(category, "")), max(_num(row.get(value)), 0.0)) for row in rows]
    total = sum(size for _, size in slices) or 1.0
    cx, cy, outer, inner = WIDTH / 2, HEIGHT / 2, HEIGHT * 0.42, HEIGHT * 0.26
    parts, angle = [], -math.pi / 2
    for i, (name, size) in enumerate(slices):
        sweep = 2 * math.pi * size / total
        if sweep <= 0:
            continue
        end = angle + min(sweep, 2 * math.pi - 1e-6)
        large = 1 if sweep > math.pi else 0

        def point(radius: float, theta: float) -> str:
            return f"{cx + radius * math.cos(theta):.1f},{cy + radius * math.sin(theta):.1f}"

        path = (f"M{point(outer, angle)} A{outer:.1f},{outer:.1f} 0 {large} 1 {point(outer, end)} "
                f"L{point(inner, end)} A{inner:.1f},{inner:.1f} 0 {large} 0 {point(inner, angle)} Z")
        parts.append(f'<path d="{path}" fill="{COLOURS[i % len(COLOURS)]}"><title>{esc(name)} {size:g}'
                     f"</title></path>")
        angle = end
    return _svg("".join(parts)), [f"{name} {size:g}" for name, size in slices]
