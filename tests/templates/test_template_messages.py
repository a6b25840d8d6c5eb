"""Rendering to Feishu messages: text, rich text posts and cards, validated and size-checked."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from engine.larkmd import unescape
from engine.templates import CARD_MAX_BYTES, TEXT_MAX_BYTES, RenderedMessage, TemplateEngine, TemplateError

CARD_CONTEXT = {"device": "监护仪 M-1", "due": "2026-11-26", "now": "2026-11-23T09:00:00+08:00", "note": "ok"}


def test_text_message(engine: TemplateEngine) -> None:
    message = engine.render_message("demo:greeting", {"name": 'A "quoted"\nname', "site": "S"}, locale="en_US")
    assert message == RenderedMessage(msg_type="text", content=message.content)
    assert json.loads(message.content) == {"text": 'Hello, A "quoted"\nname! (S)'}


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
def test_card_message(engine: TemplateEngine, locale: str) -> None:
    message = engine.render_message("demo:reminder.card", CARD_CONTEXT, locale=locale)
    assert message.msg_type == "interactive"
    card = json.loads(message.content)
    assert card["schema"] == "2.0"
    button = card["body"]["elements"][1]
    assert button["behaviors"][0]["value"] == {"action": "ack", "device": "监护仪 M-1"}
    expected = "到期：2026年11月26日（3 天后）" if locale == "zh_CN" else "Due 2026-11-26 (in 3 days)"
    assert card["body"]["elements"][0]["content"].startswith(expected)


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
def test_user_data_with_quotes_and_newlines_cannot_break_a_card(engine: TemplateEngine, locale: str) -> None:
    nasty = 'He said "stop"\nline two\\ and a tab\t and </script> and 中文 "}]}'
    context = {**CARD_CONTEXT, "device": nasty, "note": nasty}
    card = engine.render_card_dict("demo:reminder.card", context, locale=locale)
    markdown = card["body"]["elements"][0]["content"]
    assert unescape(markdown).endswith("\n" + nasty)  # in markdown: the same text, its syntax escaped
    assert "</script>" not in markdown and "&#60;/script&#62;" in markdown
    assert card["body"]["elements"][1]["behaviors"][0]["value"]["device"] == nasty  # elsewhere: exact
    assert card["header"]["title"]["content"].endswith(nasty)


def test_render_card_dict_only_for_cards(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="not a card template"):
        engine.render_card_dict("demo:greeting", {"name": "x", "site": "y"}, locale="en_US")


def test_broken_card_json_names_the_position_and_line(make_engine: Callable[..., TemplateEngine]) -> None:
    source = '{\n  "schema": "2.0",\n  "body": {"elements": [{"tag": "markdown", "content": "{{ text }}"}]}\n}\n'
    engine = make_engine({"en_US/raw.card.j2": source})
    with pytest.raises(TemplateError) as caught:
        engine.render_message("x:raw.card", {"text": 'say "hi"'}, locale="en_US")
    message = str(caught.value)
    assert "x:raw.card" in message
    assert "not valid JSON" in message
    assert "line 3 column" in message
    assert 'say \\"hi\\"' in message or 'say "hi"' in message  # the offending line is quoted


@pytest.mark.parametrize(("card", "problem"), [
    ({"schema": "2.0", "body": {"elements": [
        {"tag": "button", "behaviors": [{"type": "callback", "value": "ack"}]}]}},
     "body.elements[0].behaviors[0].value: a callback value must be an object"),
    ({"schema": "2.0", "body": {"elements": [
        {"tag": "column_set", "columns": [{"elements": [{"tag": "button", "value": ["ack"]}]}]}]}},
     "body.elements[0].columns[0].elements[0].value: a button's value must be an object"),
    ({"schema": "1.0", "body": {"elements": []}}, '"schema" must be "2.0"'),
    ({"schema": "2.0", "elements": []}, '"body.elements" must be a list'),
    ({"schema": "2.0", "header": "title", "body": {"elements": []}}, '"header" must be an object'),
    ([1, 2], "a card must be a JSON object"),
])
def test_card_validation(make_engine: Callable[..., TemplateEngine], card: object, problem: str) -> None:
    engine = make_engine({"en_US/bad.card.j2": json.dumps(card)})
    with pytest.raises(TemplateError, match="not a valid card") as caught:
        engine.render_message("x:bad.card", {}, locale="en_US")
    assert problem in str(caught.value)


def test_card_without_header_and_with_object_values_is_fine(make_engine: Callable[..., TemplateEngine]) -> None:
    card = {"schema": "2.0", "body": {"elements": [
        {"tag": "button", "behaviors": [{"type": "callback", "value": {"a": 1}}, {"type": "open_url"}]}]}}
    engine = make_engine({"en_US/ok.card.j2": json.dumps(card, indent=2)})
    message = engine.render_message("x:ok.card", {}, locale="en_US")
    assert json.loads(message.content) == card
    assert "\n" not in message.content  # sent compact: Feishu's size limit counts every byte


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
def test_post_message(engine: TemplateEngine, locale: str) -> None:
    message = engine.render_message("demo:summary.post", {"items": ['x "1"', "y\n2"]}, locale=locale)
    assert message.msg_type == "post"
    post = json.loads(message.content)
    language = "zh_cn" if locale == "zh_CN" else "en_us"
    assert post[language]["content"] == [[{"tag": "text", "text": 'x "1"'}], [{"tag": "text", "text": "y\n2"}]]


@pytest.mark.parametrize(("post", "problem"), [
    ({"post": {"zh_cn": {}}}, "'post' is not a post language"),
    ({"zh_cn": {"title": "t", "content": [{"tag": "text"}]}}, "zh_cn.content must be a list of paragraphs"),
    ({"en_us": {"title": 3, "content": []}}, "en_us.title must be a string"),
    ({"en_us": {"content": [["text"]]}}, "en_us.content[0][0] must be an object with a tag"),
    ({}, "keyed by language"),
])
def test_post_validation(make_engine: Callable[..., TemplateEngine], post: object, problem: str) -> None:
    engine = make_engine({"en_US/bad.post.j2": json.dumps(post)})
    with pytest.raises(TemplateError, match="not a valid post") as caught:
        engine.render_message("x:bad.post", {}, locale="en_US")
    assert problem in str(caught.value)


def test_text_size_limit(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/long.j2": "{{ body }}"})
    assert engine.render_message("x:long", {"body": "a" * (TEXT_MAX_BYTES - 100)}, locale="en_US")
    with pytest.raises(TemplateError, match="over Feishu's limit of 153,600 bytes"):
        engine.render_message("x:long", {"body": "a" * TEXT_MAX_BYTES}, locale="en_US")
    # Chinese text takes three bytes a character: the limit is in bytes, not characters
    with pytest.raises(TemplateError, match="text message is"):
        engine.render_message("x:long", {"body": "字" * (TEXT_MAX_BYTES // 3 + 10)}, locale="en_US")


def test_card_size_limit(make_engine: Callable[..., TemplateEngine]) -> None:
    source = '{"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "{{ body | json_str }}"}]}}'
    engine = make_engine({"en_US/big.card.j2": source})
    assert engine.render_message("x:big.card", {"body": "a" * 20_000}, locale="en_US")
    with pytest.raises(TemplateError, match=f"interactive message is .* over Feishu's limit of {CARD_MAX_BYTES:,}"):
        engine.render_message("x:big.card", {"body": "a" * CARD_MAX_BYTES}, locale="en_US")
