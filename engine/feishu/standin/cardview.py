"""Messages as a Feishu client shows them, in HTML: what the stand-in's outbox page draws.

* Cards, JSON 1.0 (``{"header", "elements"}``: ``div`` with text, fields and extra, ``markdown``, ``hr``,
  ``img``, ``note``, ``action``, ``column_set``) and 2.0 (``{"schema": "2.0", "header", "body":
  {"elements"}}``: ``markdown``, ``div``, ``hr``, ``img``, ``column_set``, ``form``, ``button``, ``input``,
  ``select_static``, ``multi_select_static``, ``select_person``, ``date_picker``, ``picker_time``,
  ``picker_datetime``, ``checker``, ``collapsible_panel``, ``interactive_container``, ``person``). The header
  keeps its ``template`` colour (class ``hdr-<colour>``), buttons their ``type`` (class ``btn-<type>``).
* Card markdown (``markdown`` elements and ``lark_md`` text), as Feishu's rich-text component documents
  it: ``**bold**`` (``<strong>``), ``*italic*``, ``~~strike~~``, ``<font color='red'>``, ``<text_tag>``,
  ``<at id=...></at>`` (shown as @name), ``[label](url)``, inline code, headings, lists, ``---``; and
  character references (``&#42;``) shown as the character, which is how escaped data looks in Feishu.
* Text messages: ``<at user_id="..."></at>`` as @name, ``<b> <i> <u> <s>`` styles and ``[label](url)``
  links; everything else, character references included, shown literally. Rich-text ``post`` messages.

Everything in a message is untrusted. Every piece of text is HTML-escaped where it is written, only this
module's own tags and class names reach the page, colours and button styles come from fixed lists, and
only http(s) links become links. Nesting deeper than :data:`MAX_DEPTH` is cut off, not recursed into.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

# who an id is: an open_id / user_id / email (or "all") -> a display name, or None when unknown
Names = Callable[[str], str | None]

MAX_DEPTH = 24
# Feishu's colour names (card header templates, <font color>, text tags, button styles)
COLOURS = frozenset({"blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine", "violet",
                     "purple", "indigo", "grey", "gray", "neutral", "lime", "default"})
BUTTON_TYPES = frozenset({"default", "primary", "danger", "text", "laser", "primary_filled", "danger_filled",
                          "primary_text", "danger_text"})
ALL_NAMES = {"all": "所有人"}

_COLOUR_NAME = re.compile(r"^([a-z]+)(?:-\d{2,3})?$")
_AT = re.compile(r"<at\s+(id|user_id|open_id|email)\s*=\s*(['\"]?)([^'\"\s>]{1,200})\2\s*>"
                 r"((?:(?!<at\s).){0,200}?)</at>", re.S | re.I)
# Lengths are bounded, and a tag's content stops at the next opening of the same tag, so a long line of
# unclosed marks costs linear time, not quadratic.
_LINK = re.compile(r"\[([^\[\]\n]{1,400})\]\(([^()\[\]\s]{1,2000})\)")
_MD_INLINE: list[tuple[str, re.Pattern[str]]] = [
    ("at", _AT),
    ("font", re.compile(r"<font\s+color\s*=\s*(['\"]?)([\w-]{1,40})\1\s*>((?:(?!<font\s).){0,4000}?)</font>",
                                re.S | re.I)),
    ("text_tag", re.compile(r"<text_tag\s+color\s*=\s*(['\"]?)([\w-]{1,40})\1\s*>"
                            r"((?:(?!<text_tag\s).){0,400}?)</text_tag>", re.S | re.I)),
    ("link_tag", re.compile(r"<link\s+url\s*=\s*(['\"])([^'\"]{0,2000})\1[^>]{0,400}>((?:(?!<link\s).){0,400}?)</link>",
                            re.S | re.I)),
    ("br", re.compile(r"<br\s*/?>", re.I)),
    ("code", re.compile(r"`([^`\n]{1,4000})`")),
    ("bold", re.compile(r"\*\*(.{1,4000}?)\*\*", re.S)),
    ("strike", re.compile(r"~~(.{1,4000}?)~~", re.S)),
    ("italic", re.compile(r"\*(?=\S)(.{1,4000}?)(?<=\S)\*", re.S)),
    ("link", _LINK),
]
_TEXT_INLINE: list[tuple[str, re.Pattern[str]]] = [
    ("at", _AT),
    ("style", re.compile(r"<(b|i|u|s)>((?:(?!<\1>).){0,4000}?)</\1>", re.S | re.I)),
    ("link", _LINK),
]
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")
_RULE = re.compile(r"^\s*(-{3,}|\*{3,})\s*$")
_STYLE_TAGS = {"b": "strong", "i": "em", "u": "u", "s": "s"}


def esc(value: Any) -> str:
    """``value`` as text for HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def colour_class(prefix: str, colour: Any, default: str = "") -> str:
    """``prefix-<colour>`` for a known Feishu colour name (``red``, ``red-400``...), else ``default``."""
    match = _COLOUR_NAME.match(str(colour or "").strip().lower())
    if match is None or match.group(1) not in COLOURS:
        return default
    name = "grey" if match.group(1) in ("gray", "neutral") else match.group(1)
    return f"{prefix}-{name}"


def safe_url(url: str) -> str | None:
    """``url`` when it is an http(s) link, else None (no ``javascript:``, ``data:``...)."""
    url = html.unescape(url).strip()
    return url if re.match(r"https?://[^\s<>\"']+$", url, re.I) else None


class View:
    """Renders one message's content; ``names`` resolves mentioned ids, ``locale`` picks i18n text."""

    def __init__(self, names: Names | None = None, locale: str = "zh_cn") -> None:
        self.names = names or (lambda _id: None)
        self.locale = locale.lower()

    # ------------------------------------------------------------------------------------------- text
    def mention(self, who: str, inner: str = "") -> str:
        name = ALL_NAMES.get(who) or self.names(who) or html.unescape(inner).strip() or who
        return f'<span class="at" title="{esc(who)}">@{esc(name)}</span>'

    def _plain(self, text: str) -> str:
        """Text as Feishu shows it in card markdown: character references as the characters."""
        return esc(html.unescape(text))

    def _inline(self, text: str, patterns: list[tuple[str, re.Pattern[str]]], plain: Callable[[str], str],
                depth: int = 0) -> str:
        if depth > MAX_DEPTH:
            return plain(text)
        out: list[str] = []
        pos = 0
        # each pattern's next match, searched again only once the text before it has been used up, so a
        # long message with many marks is not rescanned from every mark to its end (nor is a pattern that
        # found nothing)
        ahead: list[re.Match[str] | None] = [pattern.search(text) for _, pattern in patterns]
        while pos < len(text):
            best: tuple[int, int, str, re.Match[str]] | None = None
            for order, (kind, pattern) in enumerate(patterns):
                found = ahead[order]
                if found is not None and found.start() < pos:
                    found = ahead[order] = pattern.search(text, pos)
                if found and (best is None or (found.start(), order) < (best[0], best[1])):
                    best = (found.start(), order, kind, found)
            if best is None:
                break
            start, _, kind, match = best
            out.append(plain(text[pos:start]))
            out.append(self._token(kind, match, patterns, plain, depth + 1))
            pos = match.end()
        out.append(plain(text[pos:]))
        return "".join(out)

    def _token(self, kind: str, m: re.Match[str], patterns: list[tuple[str, re.Pattern[str]]],
               plain: Callable[[str], str], depth: int) -> str:
        def inner(text: str) -> str:
            return self._inline(text, patterns, plain, depth)

        if kind == "at":
            return self.mention(html.unescape(m.group(3)), m.group(4))
        if kind == "font":
            return f'<span class="font {colour_class("c", m.group(2))}">{inner(m.group(3))}</span>'
        if kind == "text_tag":
            return f'<span class="tag {colour_class("tag", m.group(2), "tag-grey")}">{inner(m.group(3))}</span>'
        if kind == "link_tag":
            return self._link(m.group(2), inner(m.group(3)))
        if kind == "br":
            return "<br>"
        if kind == "code":
            return f"<code>{plain(m.group(1))}</code>"
        if kind == "bold":
            return f"<strong>{inner(m.group(1))}</strong>"
        if kind == "strike":
            return f"<s>{inner(m.group(1))}</s>"
        if kind == "italic":
            return f"<em>{inner(m.group(1))}</em>"
        if kind == "style":
            tag = _STYLE_TAGS[m.group(1).lower()]
            return f"<{tag}>{inner(m.group(2))}</{tag}>"
        if kind == "link":
            return self._link(m.group(2), inner(m.group(1)))
        raise AssertionError(kind)

    def _link(self, url: str, label_html: str) -> str:
        target = safe_url(url)
        if target is None:
            return label_html
        return f'<a href="{esc(target)}" rel="noopener noreferrer" target="_blank">{label_html}</a>'

    def markdown(self, text: str) -> str:
        """Card markdown (``markdown`` elements, ``lark_md`` text) as HTML."""
        blocks: list[str] = []
        lines: list[str] = []
        items: list[str] = []
        list_tag = ""

        def flush() -> None:
            nonlocal list_tag
            if lines:
                blocks.append('<div class="md-p">' + "<br>".join(lines) + "</div>")
                lines.clear()
            if items:
                blocks.append(f"<{list_tag}>" + "".join(f"<li>{i}</li>" for i in items) + f"</{list_tag}>")
                items.clear()

        def inline(line: str) -> str:
            return self._inline(line, _MD_INLINE, self._plain)

        for line in str(text).split("\n"):
            heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
            if _RULE.match(line):
                flush()
                blocks.append("<hr>")
            elif heading:
                flush()
                level = min(len(heading.group(1)) + 2, 6)  # card headings are small: h3..h6
                blocks.append(f'<h{level} class="md-h">{inline(heading.group(2))}</h{level}>')
            elif bullet or numbered:
                tag = "ul" if bullet else "ol"
                if lines or list_tag != tag:
                    flush()
                list_tag = tag
                items.append(inline(bullet.group(1) if bullet else numbered.group(2)))  # type: ignore[union-attr]
            else:
                if items:
                    flush()
                lines.append(inline(line))
        flush()
        return "".join(blocks)

    def text_message(self, text: str) -> str:
        """A text message's ``text``: @mentions, ``<b>``-style tags and links; the rest literally."""
        return self._inline(str(text), _TEXT_INLINE, esc)

    def text_object(self, obj: Any) -> str:
        """A card text object (``plain_text`` / ``lark_md``), or a bare string, as HTML."""
        if isinstance(obj, str):
            return esc(obj)
        if not isinstance(obj, dict):
            return ""
        content = self._i18n(obj, "content", "i18n", "i18n_content")
        if obj.get("tag") in ("lark_md", "markdown"):
            return f'<span class="md">{self.markdown(content)}</span>'
        return f'<span class="plain">{esc(content)}</span>'

    def _i18n(self, obj: dict[str, Any], key: str, *i18n_keys: str) -> str:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
        for i18n_key in i18n_keys:
            table = obj.get(i18n_key)
            if isinstance(table, dict) and table:
                chosen = table.get(self.locale) or table.get("zh_cn") or next(iter(table.values()))
                return chosen if isinstance(chosen, str) else ""
        return value if isinstance(value, str) else ""

    # ------------------------------------------------------------------------------------------ cards
    def card(self, card: Any) -> str:
        """A card (JSON 1.0 or 2.0) as a ``<div class="card">``."""
        if not isinstance(card, dict):
            return '<div class="card"><div class="card-body"><div class="unknown">(not a card)</div></div></div>'
        if card.get("type") == "template":
            data = card.get("data") if isinstance(card.get("data"), dict) else {}
            return ('<div class="card"><div class="card-body"><div class="unknown">card template '
                    f'{esc(data.get("template_id", ""))}</div></div></div>')
        header = card.get("header")
        if not isinstance(header, dict):
            i18n_header = card.get("i18n_header")
            header = self._pick_locale(i18n_header) if isinstance(i18n_header, dict) else None
        body = card.get("body") if isinstance(card.get("body"), dict) else {}
        elements = body.get("elements") if body else card.get("elements")
        if elements is None and isinstance(card.get("i18n_elements"), dict):
            elements = self._pick_locale(card["i18n_elements"])
        schema = "2.0" if str(card.get("schema", "")).startswith("2") else "1.0"
        parts = [f'<div class="card" data-schema="{schema}">']
        if isinstance(header, dict):
            parts.append(self._header(header))
        parts.append(f'<div class="card-body">{self.elements(elements, 0)}</div></div>')
        return "".join(parts)

    def _pick_locale(self, table: dict[str, Any]) -> Any:
        return table.get(self.locale) or table.get("zh_cn") or next(iter(table.values()), None)

    def _header(self, header: dict[str, Any]) -> str:
        colour = colour_class("hdr", header.get("template"), "hdr-default")
        title = self.text_object(header.get("title"))
        subtitle = header.get("subtitle")
        tags = "".join(self._element(tag, 1) for tag in header.get("text_tag_list") or [] if isinstance(tag, dict))
        sub = f'<div class="card-subtitle">{self.text_object(subtitle)}</div>' if subtitle else ""
        return (f'<div class="card-header {colour}"><div class="card-title">{title}{tags}</div>{sub}</div>')

    def elements(self, elements: Any, depth: int) -> str:
        if not isinstance(elements, list):
            return ""
        return "".join(self._element(element, depth + 1) for element in elements)

    def _element(self, el: Any, depth: int) -> str:
        if depth > MAX_DEPTH:
            return '<div class="unknown">(nested too deep)</div>'
        if not isinstance(el, dict):
            return ""
        tag = str(el.get("tag", ""))
        method = getattr(self, "_el_" + tag, None) if re.fullmatch(r"[a-z_]+", tag) else None
        if method is None:
            return f'<div class="unknown">[{esc(tag or "?")}]</div>'
        out: str = method(el, depth)
        return out

    def _el_markdown(self, el: dict[str, Any], depth: int) -> str:
        align = el.get("text_align") if el.get("text_align") in ("left", "center", "right") else "left"
        return f'<div class="el md align-{align}">{self.markdown(self._i18n(el, "content", "i18n_content"))}</div>'

    def _el_lark_md(self, el: dict[str, Any], depth: int) -> str:
        return f'<div class="el">{self.text_object(el)}</div>'

    _el_plain_text = _el_lark_md

    def _el_div(self, el: dict[str, Any], depth: int) -> str:
        parts = ['<div class="el div">']
        if el.get("text"):
            parts.append(f'<div class="div-text">{self.text_object(el["text"])}</div>')
        fields = el.get("fields")
        if isinstance(fields, list) and fields:
            cells = []
            for f in fields:
                if isinstance(f, dict):
                    short = "short" if f.get("is_short") else "long"
                    cells.append(f'<div class="field {short}">{self.text_object(f.get("text"))}</div>')
            parts.append(f'<div class="fields">{"".join(cells)}</div>')
        if isinstance(el.get("extra"), dict):
            parts.append(f'<div class="extra">{self._element(el["extra"], depth + 1)}</div>')
        parts.append("</div>")
        return "".join(parts)

    def _el_hr(self, el: dict[str, Any], depth: int) -> str:
        return '<hr class="el">'

    def _el_img(self, el: dict[str, Any], depth: int) -> str:
        alt = self.text_object(el.get("alt")) if el.get("alt") else ""
        key = esc(el.get("img_key", ""))
        return f'<div class="el img-ph" title="{key}">🖼 image{(" · " + alt) if alt else ""}</div>'

    def _el_note(self, el: dict[str, Any], depth: int) -> str:
        inner = []
        for item in el.get("elements") or []:
            if isinstance(item, dict) and item.get("tag") == "img":
                inner.append('<span class="img-ph small">🖼</span>')
            else:
                inner.append(self.text_object(item))
        return f'<div class="el note">{" ".join(inner)}</div>'

    def _el_action(self, el: dict[str, Any], depth: int) -> str:
        return f'<div class="el actions">{self.elements(el.get("actions"), depth)}</div>'

    def _el_column_set(self, el: dict[str, Any], depth: int) -> str:
        columns = []
        for column in el.get("columns") or []:
            if not isinstance(column, dict):
                continue
            weight = column.get("weight", 1)
            grow = weight if isinstance(weight, int) and 0 < weight <= 5 else 1
            columns.append(f'<div class="column" style="flex-grow:{grow}">'
                           f'{self.elements(column.get("elements"), depth)}</div>')
        return f'<div class="el columns">{"".join(columns)}</div>'

    def _el_column(self, el: dict[str, Any], depth: int) -> str:
        return f'<div class="column">{self.elements(el.get("elements"), depth)}</div>'

    def _el_form(self, el: dict[str, Any], depth: int) -> str:
        inner = self.elements(el.get("elements"), depth)
        return f'<div class="el form" title="form {esc(el.get("name", ""))}">{inner}</div>'

    def _el_interactive_container(self, el: dict[str, Any], depth: int) -> str:
        return f'<div class="el container">{self.elements(el.get("elements"), depth)}</div>'

    def _el_collapsible_panel(self, el: dict[str, Any], depth: int) -> str:
        header = el.get("header") if isinstance(el.get("header"), dict) else {}
        opened = " open" if el.get("expanded") else ""
        return (f'<details class="el panel"{opened}><summary>{self.text_object(header.get("title"))}</summary>'
                f'{self.elements(el.get("elements"), depth)}</details>')

    def _el_chart(self, el: dict[str, Any], depth: int) -> str:
        from engine.feishu.standin.chartview import render_chart

        return render_chart(el)

    def _el_button(self, el: dict[str, Any], depth: int) -> str:
        kind = str(el.get("type") or "default")
        kind = kind if kind in BUTTON_TYPES else "default"
        values = [b.get("value") for b in el.get("behaviors") or []
                  if isinstance(b, dict) and b.get("type") == "callback"]
        if "value" in el:
            values.append(el["value"])
        links = [b.get("default_url") for b in el.get("behaviors") or []
                 if isinstance(b, dict) and b.get("type") == "open_url"]
        if el.get("url"):
            links.append(el["url"])
        hint = "; ".join(json.dumps(v, ensure_ascii=False) for v in values)
        hint += "".join(f" ↗ {link}" for link in links if isinstance(link, str))
        submit = " submit" if el.get("form_action_type") == "submit" else ""
        disabled = " disabled" if el.get("disabled") else ""
        label = self.text_object(el.get("text"))
        arrow = " ↗" if links else ""
        return (f'<button type="button" class="btn btn-{kind}{submit}{disabled}" title="{esc(hint)}">'
                f"{label}{arrow}</button>")

    def _field(self, el: dict[str, Any], control: str) -> str:
        label = el.get("label")
        required = '<span class="req">*</span>' if el.get("required") else ""
        head = f'<div class="label">{required}{self.text_object(label)}</div>' if label else ""
        return f'<div class="el field-input">{head}{control}</div>'

    def _placeholder(self, el: dict[str, Any]) -> str:
        holder = el.get("placeholder")
        if isinstance(holder, dict):
            return self._i18n(holder, "content", "i18n", "i18n_content")
        return holder if isinstance(holder, str) else ""

    def _el_input(self, el: dict[str, Any], depth: int) -> str:
        holder, value = esc(self._placeholder(el)), esc(el.get("default_value") or "")
        if el.get("input_type") == "multiline_text":
            control = f'<textarea readonly rows="2" placeholder="{holder}">{value}</textarea>'
        else:
            control = f'<input type="text" readonly placeholder="{holder}" value="{value}">'
        return self._field(el, control)

    def _options(self, el: dict[str, Any]) -> list[tuple[str, str]]:
        out = []
        for option in el.get("options") or []:
            if isinstance(option, dict):
                out.append((str(option.get("value", "")), html.unescape(self._text_of(option.get("text")))))
        return out

    def _text_of(self, obj: Any) -> str:
        if isinstance(obj, dict):
            return self._i18n(obj, "content", "i18n", "i18n_content")
        return obj if isinstance(obj, str) else ""

    def _el_select_static(self, el: dict[str, Any], depth: int) -> str:
        initial = str(el.get("initial_option", ""))
        holder = self._placeholder(el)
        chosen = [text for value, text in self._options(el) if value == initial]
        shown = chosen[0] if chosen else holder
        options = "".join(f"<li>{esc(text)}</li>" for _, text in self._options(el))
        empty = "" if chosen else " empty"
        return self._field(el, f'<div class="select{empty}" title="options"><span>{esc(shown)}</span>'
                               f'<span class="caret">▾</span><ul class="options">{options}</ul></div>')

    _el_multi_select_static = _el_select_static
    _el_overflow = _el_select_static

    def _el_select_person(self, el: dict[str, Any], depth: int) -> str:
        holder = self._placeholder(el)
        return self._field(el, f'<div class="select empty"><span>👤 {esc(holder)}</span>'
                               '<span class="caret">▾</span></div>')

    _el_multi_select_person = _el_select_person

    def _el_date_picker(self, el: dict[str, Any], depth: int) -> str:
        initial = el.get("initial_date") or el.get("initial_datetime") or el.get("initial_time") or ""
        shown = esc(initial) if initial else esc(self._placeholder(el))
        empty = "" if initial else " empty"
        return self._field(el, f'<div class="select date{empty}"><span>{shown}</span>'
                               '<span class="caret">📅</span></div>')

    _el_picker_time = _el_date_picker
    _el_picker_datetime = _el_date_picker

    def _el_checker(self, el: dict[str, Any], depth: int) -> str:
        box = "☑" if el.get("checked") else "☐"
        return f'<div class="el checker">{box} {self.text_object(el.get("text"))}</div>'

    def _el_person(self, el: dict[str, Any], depth: int) -> str:
        return f'<span class="el person">{self.mention(str(el.get("user_id", "")))}</span>'

    def _el_person_list(self, el: dict[str, Any], depth: int) -> str:
        people = [self.mention(str(p.get("id", ""))) for p in el.get("persons") or [] if isinstance(p, dict)]
        return f'<div class="el person-list">{" ".join(people)}</div>'

    def _el_text_tag(self, el: dict[str, Any], depth: int) -> str:
        colour = colour_class("tag", el.get("color"), "tag-grey")
        return f'<span class="tag {colour}">{self.text_object(el.get("text"))}</span>'

    # ------------------------------------------------------------------------------------------- post
    def post(self, content: Any) -> str:
        """A rich-text post (``{"title", "content": [[element, ...], ...]}``, or per locale) as HTML."""
        if isinstance(content, dict) and "content" not in content:
            content = self._pick_locale(content)
        if not isinstance(content, dict):
            return '<div class="unknown">(not a post)</div>'
        parts = []
        if content.get("title"):
            parts.append(f'<div class="post-title">{esc(content["title"])}</div>')
        for paragraph in content.get("content") or []:
            if isinstance(paragraph, list):
                parts.append('<div class="post-p">' + "".join(self._post_el(e) for e in paragraph) + "</div>")
        return "".join(parts)

    def _post_el(self, el: Any) -> str:
        if not isinstance(el, dict):
            return ""
        tag = el.get("tag")
        style = set(el.get("style") or [])
        if tag == "text":
            out = esc(el.get("text", ""))
        elif tag == "a":
            out = self._link(str(el.get("href", "")), esc(el.get("text", "")))
        elif tag == "at":
            out = self.mention(str(el.get("user_id", "")), str(el.get("user_name", "")))
        elif tag == "img":
            out = '<span class="img-ph">🖼 image</span>'
        elif tag == "hr":
            return "<hr>"
        elif tag == "code_block":
            return f'<pre class="code">{esc(el.get("text", ""))}</pre>'
        elif tag == "md":
            return self.markdown(str(el.get("text", "")))
        elif tag == "emotion":
            out = f"[{esc(el.get('emoji_type', ''))}]"
        else:
            out = f'<span class="unknown">[{esc(tag)}]</span>'
        for name, wrap in (("bold", "strong"), ("italic", "em"), ("underline", "u"), ("lineThrough", "s")):
            if name in style:
                out = f"<{wrap}>{out}</{wrap}>"
        return out
