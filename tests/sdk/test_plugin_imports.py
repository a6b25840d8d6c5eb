"""Every plugin under ``plugins/`` imports ``engine.sdk`` and nothing else of the engine (docs/sdk.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.testing.contract import outside_the_sdk

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def plugin_names() -> list[str]:
    return sorted(p.parent.name for p in PLUGINS.glob("*/__init__.py"))


@pytest.mark.parametrize("plugin", plugin_names())
def test_a_plugin_imports_only_the_sdk(plugin: str) -> None:
    offending = outside_the_sdk(PLUGINS / plugin)
    assert not offending, "plugins may import only engine.sdk:\n" + "\n".join(offending)


def test_every_plugin_is_checked() -> None:
    assert {"asset_loan", "device_calibration", "handover", "project_delivery", "recruiting"} <= set(plugin_names())
