"""README "A minimal scenario and its test": the test shown there runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_test_module() -> dict[str, Any]:
    """The README's ``# tests/test_checkup.py`` block, executed as a module."""
    blocks = re.findall(r"```python\n(# tests/test_checkup.py\n.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "README.md lost its example test block"
    namespace: dict[str, Any] = {"__name__": "readme_test_checkup"}
    exec(compile(blocks[0], f"{README}:example", "exec"), namespace)
    return namespace


async def test_the_readme_example_test_passes(scenario_harness: Any) -> None:
    await readme_test_module()["test_reminders_then_escalation"](scenario_harness)
