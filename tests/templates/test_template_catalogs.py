"""One template per message, its words in gettext catalogs: lookup, plurals, and the checks of missing words."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.templates import TemplateEngine, TemplateError

ZH = "locales/zh_CN/LC_MESSAGES/messages.po"

HEADER = '''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=1; plural=0;\\n"
'''

CATALOG = HEADER + '''
msgid "Calibration due: %(device)s"
msgstr "校准提醒：%(device)s"

msgid "Got it"
msgstr "已知晓"

msgid "%(num)d device is overdue"
msgid_plural "%(num)d devices are overdue"
msgstr[0] "%(num)d 台设备已超期"

msgid "Thanks, %(name)s."
msgstr "谢谢，%(name)s。"

msgid "Hello, %(name)s!"
msgstr "你好，%(name)s！"

msgid "mandatory verification"
msgstr "强制检定"

msgctxt "short"
msgid "mandatory verification"
msgstr "强检"
'''

CARD = '''\
{% set overdue_line = ngettext('%(num)d device is overdue', '%(num)d devices are overdue', overdue) %}
{
  "schema": "2.0",
  "header": {"title": {"tag": "plain_text",
                       "content": "{{ _('Calibration due: %(device)s', device=device) | json_str }}"}},
  "body": {"elements": [
    {"tag": "markdown", "content": "{{ overdue_line | json_str }}\\n{% include '_thanks' %}"},
    {"tag": "button", "text": {"tag": "plain_text", "content": "{{ _('Got it') }}"},
     "behaviors": [{"type": "callback", "value": {{ {"action": "ack", "device": device} | json_value }}}]}
  ]}
}
'''


FILES = {
    "reminder.card.j2": CARD,
    "_thanks.j2": "{% trans %}Thanks, {{ name }}.{% endtrans %}",
    "greeting.j2": "{{ _('Hello, %(name)s!', name=name) }}",
    "kinds.j2": "{{ _('mandatory verification') }} / {{ pgettext('short', 'mandatory verification') }}",
    ZH: CATALOG,
}
SAMPLES = {"reminder.card": {"device": "M-1", "overdue": 2, "name": "Li"}, "greeting": {"name": "Li"}, "kinds": {}}


def _card_texts(engine: TemplateEngine, locale: str, **context: object) -> list[str]:
    card = engine.render_card_dict("x:reminder.card", {**SAMPLES["reminder.card"], **context}, locale=locale)
    return [card["header"]["title"]["content"], card["body"]["elements"][0]["content"],
            card["body"]["elements"][1]["text"]["content"]]


def test_one_template_speaks_each_locale_from_its_catalog(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine(FILES, SAMPLES)
    assert engine.names() == ["x:greeting", "x:kinds", "x:reminder.card"]  # the partial is no template of its own
    assert _card_texts(engine, "zh_CN") == ["校准提醒：M-1", "2 台设备已超期\n谢谢，Li。", "已知晓"]
    # en_US is the source language: the msgids are its text, plural forms by English rules
    assert _card_texts(engine, "en_US") == ["Calibration due: M-1", "2 devices are overdue\nThanks, Li.", "Got it"]
    assert _card_texts(engine, "en_US", overdue=1)[1] == "1 device is overdue\nThanks, Li."
    assert engine.check_all() == []


def test_the_same_words_translated_two_ways_take_a_context(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine(FILES, SAMPLES)
    assert engine.render("x:kinds", {}, locale="zh_CN") == "强制检定 / 强检"
    assert engine.render("x:kinds", {}, locale="en_US") == "mandatory verification / mandatory verification"
    short = "\n\n".join(block for block in CATALOG.split("\n\n") if 'msgctxt "short"' not in block)
    problems = [str(error) for error in make_engine({**FILES, ZH: short}, SAMPLES).check_all()]
    assert any("kinds.j2:1]: no zh_CN translation of 'mandatory verification'" in p for p in problems)


def test_a_file_for_the_locale_wins_over_the_shared_template(make_engine: Callable[..., TemplateEngine],
                                                             tmp_path: Path) -> None:
    engine = make_engine({**FILES, "zh_CN/greeting.j2": "{{ name }}，您好"}, SAMPLES)
    assert engine.render("x:greeting", {"name": "Li"}, locale="zh_CN") == "Li，您好"
    assert engine.render("x:greeting", {"name": "Li"}, locale="en_US") == "Hello, Li!"
    assert engine.check_all() == []

    # an organization's override is a file for one locale too, and wins for that locale only
    overrides = tmp_path / "org"
    (overrides / "x" / "en_US").mkdir(parents=True)
    (overrides / "x" / "en_US" / "greeting.j2").write_text("Welcome, {{ name }}", encoding="utf-8")
    assert engine.render("x:greeting", {"name": "Li"}, locale="en_US", override_dir=overrides) == "Welcome, Li"
    assert engine.render("x:greeting", {"name": "Li"}, locale="zh_CN", override_dir=overrides) == "Li，您好"
    assert engine.check_all(override_dir=overrides) == []


def test_a_locale_file_including_a_shared_partial_keeps_its_language(
        make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({**FILES, "zh_CN/done.j2": "已完成。{% include '_thanks' %}"}, {**SAMPLES, "done": {}})
    # the only file is Chinese: the shared partial speaks Chinese with it rather than mixing languages
    assert engine.render("x:done", {"name": "Li"}, locale="en_US") == "已完成。谢谢，Li。"


def test_a_missing_translation_is_an_error_not_another_language(make_engine: Callable[..., TemplateEngine]) -> None:
    catalog = CATALOG.replace('msgid "Got it"\nmsgstr "已知晓"\n', "")
    engine = make_engine({**FILES, ZH: catalog}, SAMPLES)
    with pytest.raises(TemplateError, match="no zh_CN translation of 'Got it'") as caught:
        engine.render_message("x:reminder.card", SAMPLES["reminder.card"], locale="zh_CN")
    assert caught.value.locale == "zh_CN"
    assert _card_texts(engine, "en_US")[2] == "Got it"

    problems = [str(error) for error in engine.check_all()]
    static = [p for p in problems if "add it to the catalog" in p]
    assert len(static) == 1 and "reminder.card.j2:8" in static[0] and "'Got it'" in static[0]
    assert any("(zh_CN)" in p and "no zh_CN translation of 'Got it'" in p for p in problems)  # the sample render


def test_a_locale_without_a_catalog_is_an_error(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({k: v for k, v in FILES.items() if k != ZH}, SAMPLES)
    problems = [str(error) for error in engine.check_all()]
    assert any("no zh_CN catalog: add" in p and p.endswith("(see 'Adding a language' in README.md)")
               for p in problems)
    with pytest.raises(TemplateError, match="no zh_CN catalog"):
        engine.render("x:greeting", {"name": "Li"}, locale="zh_CN")
    assert engine.render("x:greeting", {"name": "Li"}, locale="en_US") == "Hello, Li!"


@pytest.mark.parametrize(("entry", "problem"), [
    ('#, fuzzy\nmsgid "Got it"\nmsgstr "已知晓"\n', "marked fuzzy"),
    ('msgid "Got it"\nmsgstr ""\n', "not translated (empty msgstr)"),
    ('msgid "Hello, %(name)s!"\nmsgstr "你好，%(person)s！"\n', "unknown named placeholder 'person'"),
])
def test_unusable_catalog_entries_are_reported(make_engine: Callable[..., TemplateEngine], entry: str,
                                               problem: str) -> None:
    msgid = entry.split('msgid "', 1)[1].split('"', 1)[0]
    kept = "\n\n".join(block for block in CATALOG.split("\n\n") if f'msgid "{msgid}"' not in block)
    engine = make_engine({**FILES, ZH: f"{kept}\n\n{entry}"}, SAMPLES)
    problems = [str(error) for error in engine.check_all()]
    reported = [p for p in problems if f"catalog entry {msgid!r}" in p]
    assert len(reported) == 1 and problem in reported[0] and "messages.po:" in reported[0]
    with pytest.raises(TemplateError, match=re.escape(f"no zh_CN translation of {msgid!r}")):
        engine.render(f"x:{'greeting' if 'Hello' in msgid else 'reminder.card'}",
                      SAMPLES["reminder.card"], locale="zh_CN")


def test_overrides_render_in_their_process_with_the_catalog(make_engine: Callable[..., TemplateEngine],
                                                            tmp_path: Path) -> None:
    engine = make_engine(FILES, SAMPLES, isolate_overrides=True)
    overrides = tmp_path / "org"
    (overrides / "x" / "en_US").mkdir(parents=True)
    (overrides / "x" / "en_US" / "greeting.j2").write_text("Welcome, {{ name }}", encoding="utf-8")
    try:
        # the scenario has overrides, so its shared card renders in a render process, which reads the catalog
        assert engine.render("x:greeting", {"name": "Li"}, locale="zh_CN", override_dir=overrides) == "你好，Li！"
        card = engine.render_card_dict("x:reminder.card", SAMPLES["reminder.card"], locale="zh_CN",
                                       override_dir=overrides)
        assert card["header"]["title"]["content"] == "校准提醒：M-1"
    finally:
        assert engine._isolated is not None
        engine._isolated.close()


def test_localized_picks_the_language_of_data_that_carries_each(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"label.j2": "{{ label | localized }}"}, {"label": {}})
    label = {"zh": "病危", "en": "Critically ill"}
    assert engine.render("x:label", {"label": label}, locale="zh_CN") == "病危"
    assert engine.render("x:label", {"label": {"en_US": "Critically ill"}}, locale="en_US") == "Critically ill"
    named = make_engine({"stage.j2": "{{ stage | localized('name') }}"}, {"stage": {}})
    stage = {"key": "survey", "name_zh": "现场勘察", "name_en": "Site survey"}
    assert named.render("x:stage", {"stage": stage}, locale="zh_CN") == "现场勘察"
    assert named.render("x:stage", {"stage": stage}, locale="en_US") == "Site survey"
    with pytest.raises(TemplateError, match=r"localized: no en_US text among \['zh'\]"):
        engine.render("x:label", {"label": {"zh": "病危"}}, locale="en_US")
