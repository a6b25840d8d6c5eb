"""Every plugin's cards, rendered with hostile Bitable text in each context value: no link or mention of the
data survives in card markdown, plain-text parts show the data exactly, and Chinese text is unchanged."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import plugins.asset_loan as asset_loan
import plugins.device_calibration as device_calibration
import plugins.handover as handover
import plugins.project_delivery as project_delivery
import plugins.recruiting as recruiting
import plugins.repair as repair
from engine import larkmd
from engine.plugins import load_plugins
from engine.templates import TemplateEngine, TemplateError

HOSTILE = ('[点我](https://evil.example/a) <at id=all></at><at user_id="all">所有人</at> ![p](img_v2_evil) '
           '<font color=red>红</font> <link url="https://evil.example/b">x</link> **粗** `c` https://evil.example/c')
CHINESE = "示波器（研发部）第3台：借用人张三，已逾期2天。"
# what the hostile text would render as if it were not escaped (templates' own markdown uses none of it)
SURVIVORS = ("](https://evil", "<at", "<font color=red>", "<link url=", "![p]", "**粗**", "`c`")


def _engine() -> TemplateEngine:
    modules = {"asset_loan": asset_loan, "device_calibration": device_calibration, "handover": handover,
               "project_delivery": project_delivery, "recruiting": recruiting,
               "repair": repair}
    plugin_set = load_plugins(modules=modules, entry_points=False)
    return TemplateEngine(plugin_set.template_dirs(), plugin_set.template_filters())


ENGINE = _engine()
CARDS = [name for name in ENGINE.names() if name.endswith(".card")]


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, str):
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))


def _with(context: dict[str, Any], path: tuple[Any, ...], suffix: str) -> dict[str, Any]:
    changed = copy.deepcopy(context)
    node: Any = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = node[path[-1]] + suffix
    return changed


def _markdown(card: Any) -> list[str]:
    found = []
    for node in _nodes(card):
        if node.get("tag") in larkmd.MARKDOWN_TAGS and isinstance(node.get("content"), str):
            found.append(node["content"])
    return found


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _render(name: str, context: dict[str, Any], locale: str) -> dict[str, Any] | None:
    try:
        return ENGINE.render_card_dict(name, context, locale=locale)
    except TemplateError:
        return None  # the value is a date, a number or a lookup key: not text that is shown


def test_every_plugin_has_cards() -> None:
    assert {name.split(":")[0] for name in CARDS} == {"asset_loan", "device_calibration", "engine", "handover",
                                                      "project_delivery", "recruiting", "repair"}


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
@pytest.mark.parametrize("name", CARDS)
def test_hostile_text_renders_as_text(name: str, locale: str) -> None:
    sample = ENGINE.sample_context(name)
    original = ENGINE.render_card_dict(name, sample, locale=locale)
    shown_in_markdown = shown_in_plain = unchanged = 0
    for path in _leaves(sample):
        card = _render(name, _with(sample, path, HOSTILE), locale)
        if card is None:
            continue
        unchanged += card == original
        for content in _markdown(card):
            for survivor in SURVIVORS:
                assert survivor not in content, (path, survivor, content)
            # no bare URL to autolink either (the template's own link targets, checked by md_url, aside)
            assert "https://evil" not in re.sub(r"\]\([^)]*\)", "", content), (path, content)
            if larkmd.escape(HOSTILE) in content:
                shown_in_markdown += 1
                assert HOSTILE in larkmd.unescape(content)  # every character still there, as text
        plain = [n["content"] for n in _nodes(card) if n.get("tag") == "plain_text"]
        shown_in_plain += sum(HOSTILE in text for text in plain)
        # buttons hand the data back unchanged
        assert larkmd.escape(HOSTILE) not in json.dumps([n.get("value") for n in _nodes(card)], ensure_ascii=False)
    # a card either shows data, or (a static form) shows none of its context at all
    assert shown_in_markdown + shown_in_plain > 0 or unchanged == len(list(_leaves(sample))), name


@pytest.mark.parametrize("name", CARDS)
def test_chinese_text_renders_unchanged(name: str) -> None:
    assert larkmd.escape(CHINESE) == CHINESE
    sample = ENGINE.sample_context(name)
    original = ENGINE.render_card_dict(name, sample, locale="zh_CN")
    shown = unchanged = 0
    for path in _leaves(sample):
        card = _render(name, _with(sample, path, CHINESE), "zh_CN")
        if card is None:
            continue
        unchanged += card == original
        # wherever the value shows (markdown or plain text), it shows exactly as written
        shown += json.dumps(card, ensure_ascii=False).count(CHINESE)
    assert shown > 0 or unchanged == len(list(_leaves(sample))), name


def test_escalation_card_from_bitable_text() -> None:
    """The reported case: an asset name holding a link and an @all tag."""
    name = '示波器 [x](https://evil) <at id=all></at>'
    context = {**ENGINE.sample_context("asset_loan:escalation.card"), "asset_name": name}
    card = ENGINE.render_card_dict("asset_loan:escalation.card", context, locale="zh_CN")
    [content] = _markdown(card)
    assert "](" not in content and "<at" not in content and "https://" not in content
    assert "示波器 &#91;x&#93;&#40;https&#58;//evil&#41; &#60;at id=all&#62;&#60;/at&#62;" in content
    assert card["header"]["title"]["content"] == f"逾期未还：{name}"  # plain text: exactly as typed


def test_a_link_target_from_the_data_is_a_checked_url() -> None:
    assert larkmd.md_url(larkmd.escape("https://pacs.example/study?id=1&x=(2)")) == \
        "https://pacs.example/study?id=1&x=%282%29"
    assert larkmd.md_url("javascript:alert(1)") == "" and larkmd.md_url("lark://x") == ""
    assert larkmd.md_url("https://a.example/x) [y](https://evil") == "https://a.example/x%29%20%5By%5D%28https://evil"


TEXTS = [name for name in ENGINE.names() if not name.endswith((".card", ".post"))]
# templates whose context names things of the engine's own (scenario names to include), never user text:
# a hostile value there changes which partials are included, and is itself never shown
IDENTIFIER_CONTEXTS = {"engine:help"}
HOSTILE_TEXT = '<at user_id="all"></at><at user_id = "all">所有人</at> [点我](https://evil.example/t) </b>'


def _text(name: str, context: dict[str, Any], locale: str) -> str | None:
    try:
        return str(json.loads(ENGINE.render_message(name, context, locale=locale).content)["text"])
    except TemplateError:
        return None


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
@pytest.mark.parametrize("name", TEXTS)
def test_text_messages_cannot_mention_everyone_or_link(name: str, locale: str) -> None:
    sample = ENGINE.sample_context(name)
    shown = 0
    for path in _leaves(sample):
        text = _text(name, _with(sample, path, HOSTILE_TEXT), locale)
        if text is None:
            continue
        assert not re.search(r'<\s*at\s+user_id\s*=\s*"all"', text) and "</b>" not in text, (path, text)
        assert not re.search(r"\]\s*\(", text), (path, text)
        shown += HOSTILE_TEXT in text.replace(larkmd.ZERO_WIDTH_SPACE, "")  # the same text, to the reader
    original = _text(name, sample, locale)
    assert original is not None and larkmd.ZERO_WIDTH_SPACE not in original
    assert shown > 0 or name in IDENTIFIER_CONTEXTS or all(
        _text(name, _with(sample, p, HOSTILE_TEXT), locale) in (None, original) for p in _leaves(sample)), name


def test_a_templates_own_mention_still_mentions() -> None:
    context = {**ENGINE.sample_context("project_delivery:stage_changed"), "by": "ou_pm_li"}
    text = _text("project_delivery:stage_changed", context, "zh_CN")
    assert text is not None and '<at user_id="ou_pm_li"></at>' in text
