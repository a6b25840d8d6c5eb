"""CSV exports write formula-like cells as text (OWASP CSV injection), and every export uses the helper."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from engine import csvexport

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("cell", ['=HYPERLINK("https://evil.example","x")', "+1+1", "-1+1", "@SUM(A1)", "\t=1",
                                  "\r=1", "＝1+1", "＋1", "－1", "＠A1", "-", "=", "+ 3"])
def test_formula_cells_get_a_leading_quote(cell: str) -> None:
    assert csvexport.neutralize(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["校准合格，偏差 0.2%", "CT-0012", "a=b", "", " =1", "-3", "+1.5", "-.5", "1e-3",
                                  "-2.5E+3", 0, -3, 1.5, None, True])
def test_other_cells_are_unchanged(cell: object) -> None:
    assert csvexport.neutralize(cell) == cell


def test_writers_neutralize_every_cell() -> None:
    out = io.StringIO()
    plain = csvexport.writer(out, lineterminator="\n")
    plain.writerow(["=1+1", "ok", -2])
    plain.writerows([["@x", "-7"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=1+1", "ok", "-2"], ["'@x", "-7"]]

    out = io.StringIO()
    keyed = csvexport.DictWriter(out, fieldnames=["a", "b"], lineterminator="\n")
    keyed.writeheader()
    keyed.writerow({"a": "+cmd|' /C calc'!A0", "b": "值"})
    keyed.writerows([{"a": "-1", "b": "\t=2"}])
    assert list(csv.DictReader(io.StringIO(out.getvalue()))) == [
        {"a": "'+cmd|' /C calc'!A0", "b": "值"}, {"a": "-1", "b": "'\t=2"}]


def test_no_export_writes_csv_without_the_helper() -> None:
    """A new export that reaches for csv.writer directly would bring formula cells back."""
    offenders = []
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        if path.name == "csvexport.py":
            continue
        if re.search(r"\bcsv\.(writer|DictWriter)\b", path.read_text("utf-8")):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
