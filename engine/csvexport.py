"""CSV for people's spreadsheets: cells that a spreadsheet would run as a formula are written as text.

Exports carry text that people typed into Bitable or Feishu (a calibration log's reason, a department's
name). A cell such as ``=HYPERLINK("https://evil.example","click")`` opened in Excel or WPS becomes a live
formula. Following the OWASP "CSV Injection" guidance, a text cell that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a single quote in front (the spreadsheet then shows it as text);
the full-width ``＝ ＋ － ＠`` that Chinese input methods type are treated the same. Numbers, and text that
is only a number (``-3``, ``+1.5``), are left as they are: they cannot be a formula.

Use :func:`writer` and :class:`DictWriter` instead of :mod:`csv`'s in every export.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralize(value: Any) -> Any:
    """``value`` as a spreadsheet may safely open it: a formula-like text cell gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class _Writer:
    """``csv.writer`` whose rows are neutralized cell by cell."""

    def __init__(self, handle: Any, **fmtparams: Any) -> None:
        self._writer = csv.writer(handle, **fmtparams)

    @property
    def dialect(self) -> Any:
        return self._writer.dialect

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralize(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(handle: Any, **fmtparams: Any) -> _Writer:
    """Like :func:`csv.writer` (same arguments), with formula cells neutralized."""
    return _Writer(handle, **fmtparams)


class DictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """Like :class:`csv.DictWriter` (same arguments), with formula cells neutralized."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: neutralize(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
