"""Short texts people read outside templates (toasts, refusals, status words), one table per language.

Templates carry their words in gettext catalogs; a toast is chosen inside workflow code, where reading a
catalog file would be I/O, so a scenario keeps those few texts in Python. :class:`Texts` checks them when
the plugin loads: every language has the same keys, and each key the same ``{placeholders}``, so a missing
translation stops the start-up instead of showing a person the other language or failing their press.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Texts"]


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


class Texts:
    """``Texts({"zh_CN": {"saved": "已保存：{item}"}, "en_US": {"saved": "Saved: {item}"}})``.

    ``texts("saved", locale, item=...)`` is the text in ``locale`` (the default language's, the first
    table's unless ``default`` names another, for a locale it does not have). Raises ``ValueError`` at
    construction when the tables differ in keys or placeholders, naming them.
    """

    def __init__(self, tables: Mapping[str, Mapping[str, str]], *, default: str | None = None) -> None:
        if not tables:
            raise ValueError("Texts needs at least one language's table")
        self.default = default or next(iter(tables))
        if self.default not in tables:
            raise ValueError(f"Texts: the default language {self.default!r} has no table")
        reference = tables[self.default]
        problems = []
        for locale, table in tables.items():
            missing, extra = set(reference) - set(table), set(table) - set(reference)
            if missing or extra:
                problems.append(f"{locale}: missing {sorted(missing)}, not in {self.default}: {sorted(extra)}")
            for key in set(reference) & set(table):
                if _placeholders(reference[key]) != _placeholders(table[key]):
                    problems.append(f"{locale}: {key!r} has placeholders {sorted(_placeholders(table[key]))}, "
                                    f"{self.default} {sorted(_placeholders(reference[key]))}")
        if problems:
            raise ValueError("Texts differ between languages: " + "; ".join(problems))
        self._tables = {locale: dict(table) for locale, table in tables.items()}

    @property
    def locales(self) -> list[str]:
        return list(self._tables)

    def _table(self, locale: str | None) -> dict[str, str]:
        return self._tables.get(locale or self.default) or self._tables[self.default]

    def __call__(self, key: str, locale: str | None, **values: Any) -> str:
        """``key``'s text in ``locale``, formatted with ``values``; an unknown key raises ``KeyError``."""
        return self._table(locale)[key].format(**values)

    def get(self, key: str, locale: str | None, default: str | None = None) -> str:
        """``key``'s text in ``locale`` as it stands (no formatting), or ``default`` (``key`` itself when
        not given) for a key it does not have: for words looked up from data, such as a status."""
        return self._table(locale).get(key, key if default is None else default)

    def keys(self) -> list[str]:
        """Every key (the same in each language)."""
        return list(self._tables[self.default])

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self._tables[self.default]
