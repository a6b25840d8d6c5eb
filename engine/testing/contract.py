"""The plugin contract: what every scenario plugin must satisfy, checked the same way for ours and a third party's.

``check_plugin(module)`` returns the problems found, one line each (empty: the plugin keeps the contract):

- **SDK only**: no module of the plugin's package imports any part of the engine but ``engine.sdk``;
- **hooks only in ``__init__.py``**: every public function there is a hook implementation (the workflow
  sandbox re-imports a workflow's parent packages, so anything else there slows every workflow run);
- **registers**: at least one scenario, whose settings model builds from its defaults alone (an
  organization may enable the plugin with an empty table);
- **templates**: every template renders with its sample context in both locales, every message of a
  template shared by the locales is translated in each locale's catalog (none missing, empty or fuzzy), and
  the en_US text has no Chinese of its own (Chinese that comes from the sample's data is allowed; users see
  one language).

A plugin's test::

    from engine.testing.contract import check_plugin
    import my_plugin

    def test_my_plugin_keeps_the_contract():
        assert check_plugin(my_plugin) == []
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["check_plugin", "engine_imports", "foreign_text", "outside_the_sdk"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3000-\u303f\uff01-\uff5e]")


def engine_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of the engine in ``path``, at any depth (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "engine":  # `from engine import x` imports engine.x
                found += [(node.lineno, f"engine.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return sorted((line, name) for line, name in found if name == "engine" or name.startswith("engine."))


def outside_the_sdk(package_dir: Path) -> list[str]:
    """``file:line imports module`` for every engine import under ``package_dir`` that is not ``engine.sdk``."""
    return [f"{path.relative_to(package_dir.parent)}:{line} imports {name}"
            for path in sorted(package_dir.rglob("*.py"))
            for line, name in engine_imports(path)
            if name != "engine.sdk" and not name.startswith("engine.sdk.")]


def _public_non_hooks(init: Path) -> list[str]:
    from engine import hookspecs

    hooks = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "engine_spec")}
    problems = []
    for node in ast.parse(init.read_text(encoding="utf-8"), str(init)).body:
        if isinstance(node, ast.ClassDef):
            problems.append(f"{init.name}:{node.lineno} defines class {node.name}: move it out of __init__.py")
        elif (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
              and (node.name not in hooks or not node.decorator_list)):
            problems.append(f"{init.name}:{node.lineno} defines {node.name}(), not a hook: move it out of "
                            "__init__.py (or make it private)")
    return problems


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def foreign_text(rendered: str, context: dict[str, Any]) -> list[str]:
    """Chinese in an en_US rendering that did not come from the context's data (at most a few snippets)."""
    text = rendered
    for value in sorted(set(_strings(context)), key=len, reverse=True):
        if value and _CJK.search(value):
            text = text.replace(value, " ")
    snippets = []
    for match in _CJK.finditer(text):
        snippet = text[max(0, match.start() - 12):match.end() + 12].replace("\n", " ")
        if not any(snippet in seen or seen in snippet for seen in snippets):
            snippets.append(snippet)
    return snippets[:3]


def _template_problems(plugins: Any) -> list[str]:
    from engine.templates import TemplateEngine, TemplateError

    engine = TemplateEngine(plugins.template_dirs(), plugins.template_filters())
    problems = [str(error) for error in engine.check_all()]
    for name in engine.names():
        try:
            sample = engine.sample_context(name)
            rendered = engine.render(name, sample, locale="en_US")
        except TemplateError:
            continue  # reported by check_all
        for snippet in foreign_text(rendered, sample):
            problems.append(f"{name} (en_US) shows Chinese that is not data: …{snippet}…")
    return problems


def check_plugin(module: ModuleType, *, name: str | None = None) -> list[str]:
    """Every way ``module`` (a plugin package) breaks the contract; ``[]`` when it keeps it."""
    from engine.plugins import load_plugins

    name = name or module.__name__.rsplit(".", 1)[-1]
    problems: list[str] = []
    source = Path(module.__file__ or "")
    package_dir = source.parent if source.name == "__init__.py" else None
    if package_dir is not None:
        problems += outside_the_sdk(package_dir)
        problems += _public_non_hooks(source)
    plugins = load_plugins(modules={name: module}, entry_points=False)
    if plugins.failures:
        return [*problems, *(f"does not load: {error}" for error in plugins.failures.values())]
    if not plugins.scenarios:
        problems.append("registers no scenario (register_scenarios must call register(Scenario(...)))")
    for scenario in plugins.scenarios.values():
        try:
            scenario.settings_model()
        except Exception as error:  # any failure means an empty settings table would not load
            problems.append(f"{scenario.name}: settings model needs values, an empty table fails: {error}")
    problems += _template_problems(plugins)
    return problems
