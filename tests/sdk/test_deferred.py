"""Deferred: a card press's update answers before the I/O it decided on, and the I/O still happens, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import probe_plugin
import pytest

from engine.testing.kit import TASK_QUEUE, org_config

CONFIG = org_config(plugins=["probe"])


async def test_the_press_is_answered_while_its_write_still_waits(scenario_harness: Any) -> None:
    probe_plugin.GATE.clear()
    async with scenario_harness({"probe": probe_plugin}, config=CONFIG) as env:
        handle = await env.client.start_workflow("probe.Answer", id="acme:probe:answer", task_queue=TASK_QUEUE)
        # the write cannot finish until GATE opens, after both answers: an update that awaited it would hang
        first = await asyncio.wait_for(handle.execute_update("press", "first"), 60)
        second = await asyncio.wait_for(handle.execute_update("press", "second"), 60)
        assert (first, second) == ({"toast": "first noted", "pressed": 1}, {"toast": "second noted", "pressed": 2})
        probe_plugin.GATE.set()
        assert await handle.result() == ["first", "second"]  # nothing lost, in the order decided


async def test_run_keeps_what_failed_queued() -> None:
    from engine.sdk import Deferred

    done: list[str] = []

    async def work(name: str) -> None:
        if name == "bad" and "retry" not in done:
            done.append("retry")
            raise RuntimeError("transient")
        done.append(name)

    deferred = Deferred()
    for name in ("a", "bad", "c"):
        deferred.add(work, name)
    with pytest.raises(RuntimeError):
        await deferred.run()
    assert done == ["a", "retry"] and deferred.pending
    assert await deferred.run() == 2 and done == ["a", "retry", "bad", "c"] and not deferred.pending
