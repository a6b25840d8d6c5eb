"""Texts: a scenario's toasts per language, checked when the plugin loads."""

from __future__ import annotations

import pytest

from engine.sdk import Texts


def test_the_persons_language_and_the_default_for_others() -> None:
    texts = Texts({"zh_CN": {"saved": "已保存：{item}"}, "en_US": {"saved": "Saved: {item}"}})
    assert texts("saved", "en_US", item="7 床") == "Saved: 7 床"
    assert texts("saved", "ja_JP", item="7") == "已保存：7"  # a language it does not have: the default's
    assert texts.get("unknown", "en_US") == "unknown" and "saved" in texts and list(texts) == ["saved"]


@pytest.mark.parametrize(("tables", "words"), [
    ({"zh_CN": {"a": "甲", "b": "乙"}, "en_US": {"a": "A"}}, "en_US: missing ['b']"),
    ({"zh_CN": {"a": "{n} 条"}, "en_US": {"a": "{count} items"}}, "placeholders ['count']"),
    ({"zh_CN": {"a": "甲"}}, None),
])
def test_a_missing_translation_stops_the_load(tables: dict[str, dict[str, str]], words: str | None) -> None:
    if words is None:
        assert Texts(tables)("a", "zh_CN") == "甲"
        return
    with pytest.raises(ValueError, match="differ between languages") as raised:
        Texts(tables)
    assert words in str(raised.value)
