"""No scenario test takes an expectation from the wall clock: dates come from the kit's situations.

A call to ``datetime.now``, ``date.today`` or ``time.time`` in a plugin or example test is allowed only as
an event's ``create_time`` (Feishu's own stamp, which no scenario decides on), or on a line that says why
with a ``# wall clock:`` comment.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_TESTS = [ROOT / "tests" / "plugins", ROOT / "tests" / "examples"]
CLOCKS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time")}


def _clock_calls(tree: ast.AST) -> list[ast.Call]:
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "create_time":
            allowed.update(id(inner) for inner in ast.walk(node.value))
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and (node.func.value.id, node.func.attr) in CLOCKS
                and id(node) not in allowed):
            calls.append(node)
    return calls


def test_scenario_tests_read_no_wall_clock() -> None:
    found = []
    for folder in SCENARIO_TESTS:
        for path in sorted(folder.rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            for call in _clock_calls(ast.parse(source)):
                if "# wall clock:" not in lines[call.lineno - 1]:
                    found.append(f"{path.relative_to(ROOT)}:{call.lineno}: {lines[call.lineno - 1].strip()}")
    assert not found, "use engine.testing.moments (env.begin_at) instead of the wall clock:\n" + "\n".join(found)


def test_the_check_sees_a_wall_clock_read() -> None:
    tree = ast.parse("today = date.today()\nevent = Event(create_time=datetime.now(UTC))\n")
    assert [call.lineno for call in _clock_calls(tree)] == [1]
