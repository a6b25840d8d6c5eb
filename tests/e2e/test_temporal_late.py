"""A worker or ingress that starts while Temporal is down waits for it instead of exiting (issue 9).

Found by the reliability suite: an ingress restarted during a Temporal restart exited at once with
"Failed client connect", and so did a worker restarted after a crash at that moment.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from engine.config import EngineConfig, parse_config
from engine.runtime.processes import _connect
from engine.runtime.server import EmbeddedTemporal, free_port

pytestmark = pytest.mark.e2e


def config_for(tmp_path: Path, port: int) -> EngineConfig:
    data = {"temporal": {"mode": "cluster", "address": f"127.0.0.1:{port}"},
            "organizations": {"acme": {"plugins": []}}}
    return parse_config(data, tmp_path / "engine.toml", {})


async def test_connect_waits_for_a_temporal_that_comes_up_later(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    server = EmbeddedTemporal(tmp_path / "temporal", port=port, ui=False)
    caplog.set_level(logging.WARNING, logger="engine.runtime.processes")
    connecting = asyncio.create_task(_connect(config_for(tmp_path, port), patience=60))
    await asyncio.sleep(1.5)  # nothing listens yet: the process keeps trying
    assert not connecting.done()
    await server.start()
    try:
        client = await asyncio.wait_for(connecting, 30)
        await client.service_client.check_health()
    finally:
        await server.stop()
    waits = [r for r in caplog.records if "not reachable" in r.getMessage()]
    assert waits and all(r.exc_info is None for r in waits)  # one line per attempt, no traceback


async def test_connect_gives_up_after_its_patience(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="connect"):
        await _connect(config_for(tmp_path, free_port()), patience=1.0)
