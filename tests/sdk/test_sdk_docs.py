"""docs/sdk.md lists exactly the SDK's public names, one line each, in the section of their module."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

import engine.sdk
from engine.sdk import cells, feishu

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
ENTRY = re.compile(r"^- `([A-Za-z_][A-Za-z0-9_]*)` — \S")


def documented() -> dict[str, list[str]]:
    """Names listed under each ``## `module` `` heading of the page."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `([\w.]+)`$", line)
        if heading:
            current = sections.setdefault(heading.group(1), [])
        elif current is not None and (entry := ENTRY.match(line)):
            current.append(entry.group(1))
    return sections


@pytest.mark.parametrize("module", [engine.sdk, cells, feishu], ids=lambda m: m.__name__)
def test_the_page_lists_every_public_name_once(module: ModuleType) -> None:
    listed = documented().get(module.__name__, [])
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    assert not duplicates, f"docs/sdk.md lists {duplicates} twice under {module.__name__}"
    public = set(module.__all__)
    assert not public - set(listed), f"docs/sdk.md must document {sorted(public - set(listed))} ({module.__name__})"
    assert not set(listed) - public, f"docs/sdk.md lists {sorted(set(listed) - public)}, not in {module.__name__}"


@pytest.mark.parametrize("module", [engine.sdk, cells, feishu], ids=lambda m: m.__name__)
def test_every_public_name_exists(module: ModuleType) -> None:
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_the_page_has_no_other_module_sections() -> None:
    assert set(documented()) == {"engine.sdk", "engine.sdk.cells", "engine.sdk.feishu"}
