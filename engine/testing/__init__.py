"""The test kit for plugin authors: time-skipping Temporal, the Feishu stand-in, frozen wall clock.

``scenario_harness`` (a pytest fixture, loaded by itself) is typed :class:`HarnessFactory`; the ``env`` it
gives is a :class:`~engine.testing.kit.ScenarioHarness`. Event builders are in :mod:`engine.testing.events`,
calendar situations in :mod:`engine.testing.moments`, the plugin contract in :mod:`engine.testing.contract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the kit imports Temporal's test server support: only where a test uses it
    from engine.testing.kit import HarnessFactory, ScenarioHarness

__all__ = ["HarnessFactory", "ScenarioHarness"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from engine.testing import kit

        return getattr(kit, name)
    raise AttributeError(name)
