"""Message catalogs of templates: one template per message, its words translated in gettext ``.po`` files.

Layout, inside a plugin's template folder (the standard gettext layout, so ``pybabel init/update`` work)::

    templates/locales/<locale>/LC_MESSAGES/messages.po

The source strings (``msgid``) are the English text written in the templates, as gettext expects; en_US is
therefore the source locale and needs no catalog (a catalog for it may exist, to polish the English without
touching templates). Every other supported locale needs a catalog that translates every message.

Catalogs are read from the ``.po`` text with Babel (https://babel.pocoo.org/en/latest/api/messages/pofile.html)
when first used, so no compiled ``.mo`` file is committed. A lookup never falls back to another language:
a message missing from a catalog (or marked fuzzy, or empty) raises :class:`MissingTranslation`.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from babel.core import UnknownLocaleError
from babel.messages.catalog import Message
from babel.messages.pofile import PoFileError, read_po

__all__ = ["CATALOG_DOMAIN", "LOCALES_DIR", "SOURCE_LOCALE", "Catalog", "CatalogError", "MissingTranslation",
           "catalog_path", "context_key", "load_catalog"]

LOCALES_DIR = "locales"
CATALOG_DOMAIN = "messages"
SOURCE_LOCALE = "en_US"
"""The language of the ``msgid`` strings written in templates."""


class CatalogError(Exception):
    """A catalog that is missing, unreadable or not valid ``.po``; the message names the file."""


def context_key(context: str | None, msgid: str) -> str:
    """The catalog key of ``msgid`` in ``context`` (msgctxt): gettext's ``context + EOT + msgid``."""
    return msgid if context is None else f"{context}\x04{msgid}"


class MissingTranslation(LookupError):
    """A message that has no (non-fuzzy, non-empty) translation in the catalog of the render's locale."""

    def __init__(self, locale: str, msgid: str, path: Path | None) -> None:
        self.locale = locale
        self.msgid = msgid
        self.path = path
        where = f" in {path}" if path is not None else ""
        super().__init__(f"no {locale} translation of {msgid!r}{where}")


def catalog_path(folder: Path, locale: str) -> Path:
    """Where ``locale``'s catalog of the template folder ``folder`` lives."""
    return folder / LOCALES_DIR / locale / "LC_MESSAGES" / f"{CATALOG_DOMAIN}.po"


def _plural_of(expression: str) -> Callable[[int], int]:
    # the C expression of the catalog's Plural-Forms header, compiled the way gettext itself does
    return gettext.c2py(expression)  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True)
class Catalog:
    """One locale's translations of one template folder.

    ``singular`` maps a msgid to its text; ``plural`` maps ``(singular, plural)`` msgids to the forms, picked
    by ``plural_index(n)``. The source locale (``source=True``) answers an unknown msgid with itself.
    """

    locale: str
    path: Path | None = None
    source: bool = False
    singular: dict[str, str] = field(default_factory=dict)
    plural: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    plural_index: Callable[[int], int] = field(default=lambda n: int(n != 1))
    problems: tuple[tuple[str, int | None, str], ...] = ()
    """``(msgid, line, problem)`` of entries that cannot be used: fuzzy, empty, placeholders that differ."""

    def gettext(self, msgid: str) -> str:
        text = self.singular.get(msgid)
        if text is not None:
            return text
        if self.source:
            return msgid
        raise MissingTranslation(self.locale, msgid, self.path)

    def pgettext(self, context: str, msgid: str) -> str:
        """``msgid`` in ``context`` (msgctxt): the same English words translated differently in one place."""
        text = self.singular.get(context_key(context, msgid))
        if text is not None:
            return text
        if self.source:
            return msgid
        raise MissingTranslation(self.locale, f"{msgid} (context {context!r})", self.path)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        forms = self.plural.get((singular, plural))
        if forms is not None:
            return forms[min(self.plural_index(n), len(forms) - 1)]
        if self.source:
            return singular if n == 1 else plural
        raise MissingTranslation(self.locale, singular, self.path)

    def has(self, message: str | tuple[str, str]) -> bool:
        """Whether ``message`` (a msgid, or a ``(singular, plural)`` pair) has a usable translation."""
        return (message in self.plural) if isinstance(message, tuple) else (message in self.singular)


def _usable(message: Message) -> str | None:
    """Why ``message`` cannot be used, or None."""
    if message.fuzzy:
        return "marked fuzzy (check the translation, then remove the fuzzy flag)"
    strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
    if not strings or any(not text for text in strings):
        return "not translated (empty msgstr)"
    return None


def load_catalog(folder: Path, locale: str, *, source: bool = False) -> Catalog:
    """``locale``'s catalog of the template folder ``folder``, read from its ``.po`` file.

    Raises :class:`CatalogError` when the file is missing (unless ``source``: the source locale then gets
    an empty catalog that answers msgids with themselves) or cannot be parsed.
    """
    path = catalog_path(folder, locale)
    try:
        with path.open("rb") as handle:
            po = read_po(handle, locale=locale, abort_invalid=True)
    except FileNotFoundError:
        if source:
            return Catalog(locale, None, source=True)
        raise CatalogError(f"no {locale} catalog: add {path} (see 'Adding a language' in README.md)") from None
    except (OSError, PoFileError, UnknownLocaleError, ValueError) as error:
        raise CatalogError(f"cannot read the {locale} catalog {path}: {error}") from None
    singular: dict[str, str] = {}
    plural: dict[tuple[str, str], tuple[str, ...]] = {}
    problems: list[tuple[str, int | None, str]] = []
    for message in po:
        if not message.id:  # the header entry
            continue
        msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
        line = message.lineno if isinstance(message.lineno, int) else None
        reason = _usable(message)
        if reason is not None:
            problems.append((msgid, line, reason))
            continue
        if isinstance(message.id, tuple | list):
            plural[(message.id[0], message.id[1])] = tuple(message.string)
        else:
            singular[context_key(message.context, message.id)] = message.string
    for message, errors in po.check():  # Babel's checkers: the same %(name)s placeholders, plural forms
        msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
        for error in errors:
            problems.append((msgid, message.lineno, str(error)))
            singular.pop(context_key(message.context, msgid), None)
            plural.pop(tuple(message.id), None)  # type: ignore[arg-type]
    return Catalog(locale, path, source, singular, plural, _plural_of(po.plural_expr), tuple(problems))
