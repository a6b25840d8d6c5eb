"""Replay tests for plugin authors: a recorded history must still replay against the current workflow code.

Record a history once from a test that drives the workflow (``keep_history``), commit the JSON file, and
replay it in every run (``assert_replays``). A change that breaks the replay goes behind
``workflow.patched``; re-record only on purpose, by setting the named environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.runtime.worker import workflow_runner


async def assert_replays(history: WorkflowHistory, workflows: Sequence[type]) -> None:
    """Replay ``history`` with the worker's sandbox and data converter; fail with the replay's own error."""
    replayer = Replayer(workflows=list(workflows), workflow_runner=workflow_runner(),
                        data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{history.workflow_id} no longer replays: {result.replay_failure!r}"


def keep_history(history: WorkflowHistory, fixture: Path, record_env: str) -> None:
    """Write ``history`` to ``fixture`` when it does not exist yet or ``record_env`` is set."""
    if os.environ.get(record_env) or not fixture.exists():
        fixture.parent.mkdir(parents=True, exist_ok=True)
        fixture.write_text(history.to_json(), encoding="utf-8")


def load_history(fixture: Path, workflow_id: str) -> WorkflowHistory:
    """A history written by :func:`keep_history`."""
    return WorkflowHistory.from_json(workflow_id, fixture.read_text(encoding="utf-8"))
