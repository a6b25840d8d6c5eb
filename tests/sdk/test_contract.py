"""The plugin contract (engine.testing.contract): every plugin keeps it, and a plugin that breaks each rule
is told where."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_plugin_imports import plugin_names

from engine.testing.contract import check_plugin, engine_imports, foreign_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("plugin", plugin_names())
def test_every_plugin_keeps_the_contract(plugin: str) -> None:
    assert check_plugin(importlib.import_module(f"plugins.{plugin}")) == []


def test_the_example_plugin_keeps_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "checkup_plugin"))
    assert check_plugin(importlib.import_module("checkup_plugin")) == []


BROKEN = {
    "__init__.py": '''
        from pathlib import Path

        from engine.sdk import PluginSettings, Scenario, hookimpl


        class Settings(PluginSettings):
            recipient: str  # no default: an empty settings table cannot load


        def helper() -> None:
            """Not a hook: belongs in another module."""


        @hookimpl
        def register_scenarios(register):
            from . import work  # noqa: F401

            register(Scenario(name="broken", version="1", settings_model=Settings,
                              templates=Path(__file__).parent / "templates"))
        ''',
    "work.py": '''
        def run():
            from engine.runtime.app import current_app

            return current_app()
        ''',
    "templates/en_US/hello.j2": "你好 {{ name }}, welcome",
    "templates/zh_CN/hello.j2": "你好 {{ name }}",
    "templates/samples/hello.json": '{"name": "李娜"}',
    "templates/bye.j2": "{{ _('Goodbye, %(name)s.', name=name) }} {{ _('See you soon') }}",
    "templates/samples/bye.json": '{"name": "李娜"}',
    "templates/locales/zh_CN/LC_MESSAGES/messages.po": '''
        msgid ""
        msgstr ""
        "Content-Type: text/plain; charset=UTF-8\\n"

        msgid "Goodbye, %(name)s."
        msgstr "再见，%(name)s。"
        ''',
}


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[object]:
    for relative, text in BROKEN.items():
        path = tmp_path / "broken" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("broken")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken", None)
        sys.modules.pop("broken.work", None)


def test_a_broken_plugin_is_told_each_rule_it_breaks(broken: object) -> None:
    problems = check_plugin(broken)  # type: ignore[arg-type]
    assert any(p.startswith("broken/work.py:2 imports engine.runtime.app") for p in problems), problems
    assert any("defines class Settings" in p for p in problems), problems
    assert any("defines helper(), not a hook" in p for p in problems), problems
    assert any("settings model needs values" in p for p in problems), problems
    assert any(p.startswith("broken:hello (en_US) shows Chinese") and "你好" in p for p in problems), problems
    assert not any("李娜" in p for p in problems), "Chinese from the sample's data is allowed"
    # one template for both locales: a message the Chinese catalog lacks is named, not shown in English
    untranslated = [p for p in problems if "no zh_CN translation of 'See you soon'" in p]
    assert any("bye.j2:1" in p and "add it to the catalog" in p for p in untranslated), problems


def test_foreign_text_ignores_the_datas_own_chinese() -> None:
    assert foreign_text("Borrower: 李娜, due 2026-12-01", {"loan": {"name": "李娜"}}) == []
    assert foreign_text("Borrower: 李娜，应还", {"name": "李娜"}) != []


def test_engine_imports_are_found_inside_functions_too(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from engine.sdk import hookimpl\n"
                      "def f():\n    from engine.runtime.app import current_app\n    import engine.cli\n"
                      "from engine import actions, sdk\n", encoding="utf-8")
    assert engine_imports(module) == [(1, "engine.sdk"), (3, "engine.runtime.app"), (4, "engine.cli"),
                                      (5, "engine.actions"), (5, "engine.sdk")]
