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
from temporalio.converter import PayloadCodec
from temporalio.worker import Replayer

from engine.codec import EncryptionCodec, data_converter, new_key_text
from engine.runtime.worker import workflow_runner


async def assert_replays(history: WorkflowHistory, workflows: Sequence[type],
                         codec: PayloadCodec | None = None) -> None:
    """Replay ``history`` with the worker's sandbox and data converter; fail with the replay's own error.

    ``codec`` is the payload codec the history was written with (engine/codec.py). Without one, a codec
    with a throwaway key is used, as a worker would: plain payloads (the recorded fixtures) pass through
    it undecoded, so the replay goes through the same converter a production worker uses.
    """
    codec = codec or EncryptionCodec.from_text(new_key_text("replay"))
    # debug_mode: no deadlock detector. It guards a live worker's liveness (an activation over 2 s), not
    # whether the history replays; on a loaded machine the sandbox's first imports alone can exceed it
    replayer = Replayer(workflows=list(workflows), workflow_runner=workflow_runner(),
                        data_converter=data_converter(codec), debug_mode=True)
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
