"""Shared fixtures of the engine's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.runtime.server import EmbeddedTemporal, free_port


@pytest.fixture(scope="session")
async def dev_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedTemporal]:
    """A real embedded Temporal dev server (Schedules and visibility work here, unlike time-skipping)."""
    state: Path = tmp_path_factory.mktemp("temporal")
    server = EmbeddedTemporal(state, port=free_port(), ui=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
