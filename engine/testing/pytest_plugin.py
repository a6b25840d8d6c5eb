"""pytest plugin (entry point ``pytest11``): the engine's fixtures for plugin authors.

- ``feishu_standin``: a started local Feishu stand-in (fresh app id, so lark-oapi's token cache is clean).
- ``scenario_harness``: a factory; ``async with scenario_harness({"name": module}, org_settings=...) as env``
  gives time-skipping Temporal, a worker for those plugins, the router and the stand-in
  (:class:`engine.testing.kit.ScenarioHarness`).
- ``temporal_test_server``: the path of the time-skipping test server binary.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.testing.kit import HarnessFactory

_app_ids = itertools.count(1)


@pytest.fixture(scope="session")
def temporal_test_server() -> str:
    from engine.testing.kit import find_test_server

    return find_test_server()


@pytest.fixture
async def feishu_standin() -> AsyncIterator[Any]:
    from engine.feishu.standin import FeishuStandIn

    standin = FeishuStandIn(app_id=f"cli_fixture_{next(_app_ids)}")
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture
def scenario_harness(tmp_path: Any) -> HarnessFactory:
    """``async with scenario_harness({"name": plugin}, config=..., org_settings=...) as env`` (typed)."""
    # imported here: this module loads in every pytest run, the kit only where a test asks for it
    from engine.testing.kit import ScenarioHarness

    def start(plugins: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("config_dir", tmp_path)
        return ScenarioHarness.start(plugins, **kwargs)

    return start
