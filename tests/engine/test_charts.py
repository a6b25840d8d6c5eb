"""Charts in cards: the ``chart`` template filter writes Feishu's card chart element (JSON 2.0), and the
stand-in's outbox draws it as an SVG with every label escaped."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.charts import ChartError, chart_element
from engine.feishu.standin.cardview import View
from engine.templates import TemplateEngine
from engine.testing.browser import parse_dom

ROWS = [{"category": "it", "site": "A院", "tickets": 12, "fixed": 10},
        {"category": "facilities", "site": "A院", "tickets": 5, "fixed": 5},
        {"category": "it", "site": "B院", "tickets": 7, "fixed": 6}]


def test_a_bar_chart_of_rows_is_feishus_chart_element() -> None:
    element = chart_element(ROWS[:2], "bar", x="category", y="tickets", labels={"it": "信息"}, title="工单数")
    assert element == {"tag": "chart", "chart_spec": {
        "type": "bar", "xField": "category", "yField": "value", "title": {"text": "工单数"},
        "data": {"values": [{"category": "信息", "value": 12}, {"category": "facilities", "value": 5}]}}}


def test_series_by_a_field_or_by_several_number_fields_make_grouped_bars() -> None:
    by_site = chart_element(ROWS, "bar", x="category", y="tickets", series="site")["chart_spec"]
    assert by_site["xField"] == ["category", "site"] and by_site["seriesField"] == "site"
    assert [v["site"] for v in by_site["data"]["values"]] == ["A院", "A院", "B院"]
    fields = chart_element(ROWS[:1], "line", x="category", y=["tickets", "fixed"],
                           names={"tickets": "报修", "fixed": "修复"})["chart_spec"]
    assert fields["seriesField"] == "series" and fields["data"]["values"] == [
        {"category": "it", "value": 12, "series": "报修"}, {"category": "it", "value": 10, "series": "修复"}]


def test_pie_and_horizontal_bars() -> None:
    pie = chart_element(ROWS[:2], "pie", x="category", y="tickets")["chart_spec"]
    assert (pie["type"], pie["categoryField"], pie["valueField"]) == ("pie", "category", "value")
    bars = chart_element(ROWS[:2], "horizontal_bar", x="category", y="tickets", height=300)
    assert bars["chart_spec"]["direction"] == "horizontal" and bars["chart_spec"]["yField"] == "category"
    assert bars["height"] == "300px"


@pytest.mark.parametrize(("rows", "kind", "y", "message"), [
    (ROWS, "radar", "tickets", "not one of"),
    ([{"category": "it"}], "bar", "tickets", "has no field 'tickets'"),
    ([{"category": "it", "tickets": math.nan}], "bar", "tickets", "not a finite number"),
    ([{"category": "it", "tickets": True}], "bar", "tickets", "not a finite number"),
    ([{"category": "it", "tickets": "12"}], "bar", "tickets", "not a finite number"),
    ([{"category": str(i), "tickets": i} for i in range(201)], "bar", "tickets", "more than a chart shows"),
    (ROWS, "pie", ["tickets", "fixed"], "one y field"),
])
def test_a_chart_the_rows_cannot_make_is_a_clear_error(rows: list, kind: str, y: object, message: str) -> None:
    with pytest.raises(ChartError, match=message):
        chart_element(rows, kind, x="category", y=y)  # type: ignore[arg-type]


def test_the_filter_renders_in_a_card_in_each_locale(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "report.card.j2").write_text(
        '{"schema": "2.0", "body": {"elements": [{{ rows | chart("bar", x="category", y="tickets", '
        'labels=words, title=title) }}]}}', "utf-8")
    engine = TemplateEngine({"demo": folder})
    hostile = "<b>A院</b> [x](http://evil)"
    for locale, words in (("zh_CN", {"it": "信息"}), ("en_US", {"it": "IT"})):
        card = engine.render_card_dict("demo:report.card", {"rows": [{"category": "it", "tickets": 3}, {
            "category": hostile, "tickets": 1}], "words": words, "title": "T"}, locale=locale)
        values = card["body"]["elements"][0]["chart_spec"]["data"]["values"]
        assert values == [{"category": words["it"], "value": 3}, {"category": hostile, "value": 1}]


def test_the_outbox_draws_each_kind_and_shows_hostile_labels_as_text() -> None:
    hostile = '<script>alert(1)</script>"'
    rows = [*ROWS, {"category": hostile, "site": "C院", "tickets": 2, "fixed": 1}]
    for kind, extra in (("bar", {"series": "site"}), ("line", {}), ("area", {}), ("pie", {}),
                        ("horizontal_bar", {}), ("bar", {"y": ["tickets", "fixed"]})):
        element = chart_element(rows, kind, x="category", **{"y": "tickets", **extra})  # type: ignore[arg-type]
        card = {"schema": "2.0", "body": {"elements": [element]}}
        html = View().card(card)
        doc = parse_dom(f"<html><body>{html}</body></html>")
        assert "<script>" not in html and "unknown" not in html, kind
        svg = doc.find_all("svg")
        assert len(svg) == 1, kind
        marks = doc.find_all("rect") + doc.find_all("circle") + doc.find_all("path")
        assert len(marks) >= 3, kind  # one mark per category at least ("it" of two sites adds up)
        assert hostile in doc.text, kind  # the label, shown as text
