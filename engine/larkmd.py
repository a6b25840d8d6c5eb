"""Escaping for Feishu card markdown (the ``markdown`` component, ``lark_md`` text), applied by default.

Card markdown renders links (``[x](https://...)``), mentions (``<at id=all></at>``), HTML-like tags
(``<font>``, ``<link>``), images and emphasis. Text from Bitable or from users that lands in it unescaped
can post a link or mention everyone. Feishu's rich-text (Markdown) component documentation says to
write characters that would be read as syntax as HTML character references (``&#42;`` for ``*``,
``&lt;`` for ``<``...), which the card shows as the plain character.

How the template engine applies it to ``.card`` templates, so a template author cannot forget it:

1. every string in the render's context (at any depth) is escaped with :func:`escape` before rendering,
   like HTML autoescaping but for data instead of output;
2. after rendering, the card JSON is walked: the ``content`` of ``markdown`` / ``lark_md`` elements keeps
   the escaped text; every other string (``plain_text`` titles, button values, URLs, form defaults) is
   put back with :func:`unescape`, so it shows and round-trips exactly as the data was.

Escaped characters: ``\\ ` * ~ [ ] ( ) < > &``, and ``:`` where it starts ``://`` (so a bare URL is
not made a link). ``_``, ``-``, ``.``, ``#`` and the rest are left alone: identifiers, dates and ids
compared in templates (``status == "on_loan"``) keep working, and ordinary Chinese text is unchanged.
A value meant as a link target in markdown goes through the ``md_url`` filter.

Text messages have a smaller markup of their own (``<at user_id="all"></at>`` mentions everyone) and
show character references literally, so there :func:`neutralize_text` puts an invisible zero-width
space after a ``<`` that could open a tag and between ``]`` and ``(``: the text reads the same, and no
tag or link is formed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

ESCAPED = "\\`*~[]()<>&"
_ESCAPE = {ord(char): f"&#{ord(char)};" for char in ESCAPED}
_SCHEME = re.compile(r":(?=//)")
_REFERENCE = re.compile(r"&#(\d{2,3});")
_RESTORABLE = {ord(char) for char in ESCAPED + ":"}
MARKDOWN_TAGS = ("markdown", "lark_md")


def escape(text: str) -> str:
    """``text`` for card markdown: syntax characters as numeric character references, shown as themselves."""
    return _SCHEME.sub("&#58;", text.translate(_ESCAPE))


def unescape(text: str) -> str:
    """The inverse of :func:`escape` (only the references it writes are turned back)."""
    return _REFERENCE.sub(lambda m: chr(int(m.group(1))) if int(m.group(1)) in _RESTORABLE else m.group(0), text)


def escape_context(value: Any) -> Any:
    """Every string in a JSON-like ``value`` escaped (dict keys kept as they are); other values unchanged."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {key: escape_context(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_context(item) for item in value]
    return value


def restore_plain(node: Any, *, markdown: bool = False) -> Any:
    """The rendered card with every string outside markdown content unescaped (see the module's doc)."""
    if isinstance(node, str):
        return node if markdown else unescape(node)
    if isinstance(node, list):
        return [restore_plain(item, markdown=markdown) for item in node]
    if isinstance(node, dict):
        if markdown:  # the per-language table of a markdown element's i18n_content
            return {key: restore_plain(item, markdown=True) for key, item in node.items()}
        is_markdown = node.get("tag") in MARKDOWN_TAGS
        return {unescape(key): restore_plain(item, markdown=is_markdown and key in ("content", "i18n_content"))
                for key, item in node.items()}
    return node


ZERO_WIDTH_SPACE = "\u200b"
_TEXT_TAG = re.compile(r"<(?=\s*/?\s*[A-Za-z])")
_TEXT_LINK = re.compile(r"\](?=\s*\()")


def neutralize_text(text: str) -> str:
    """``text`` for a text message: no ``<tag`` (an ``<at>`` mention) and no ``[label](url)`` can form."""
    return _TEXT_LINK.sub("]" + ZERO_WIDTH_SPACE, _TEXT_TAG.sub("<" + ZERO_WIDTH_SPACE, text))


def neutralize_text_context(value: Any) -> Any:
    """Every string in a JSON-like ``value`` passed through :func:`neutralize_text`."""
    if isinstance(value, str):
        return neutralize_text(value)
    if isinstance(value, Mapping):
        return {key: neutralize_text_context(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [neutralize_text_context(item) for item in value]
    return value


def md_url(value: Any) -> str:
    """A link target for card markdown (``[label]({{ url | md_url }})``): http(s) only, else empty.

    The value is unescaped first (context strings arrive escaped), then characters that could end the
    link or open a tag are percent-encoded.
    """
    url = unescape(str(value)).strip()
    if not re.match(r"https?://", url, re.IGNORECASE):
        return ""
    return quote(url, safe="/:?#@!$&'*+,;=%-._~")
