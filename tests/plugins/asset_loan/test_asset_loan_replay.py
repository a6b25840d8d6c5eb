"""Replay: a recorded loan history still replays against the current workflow code.

``histories/loan.json`` was recorded by :func:`test_record_and_replay` (borrow, extend, a keeper's manual
reminder, return, continue-as-new) before updates refused events applied in an earlier run (issue 9).
Re-record it on purpose only, with ``ASSET_LOAN_RECORD_HISTORY=1``; a change that breaks its replay must
go behind ``workflow.patched``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_asset_loan_flow import BORROWER, KEEPER, SEED, harness, press

from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.asset_loan.workflows import WORKFLOWS

FIXTURE = Path(__file__).parent / "histories" / "loan.json"
WORKFLOW_ID = "acme:asset_loan:RD-OSC-001"


async def test_record_and_replay(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        first_run = (await env.handle("asset_loan", "RD-OSC-001").describe()).run_id
        await env.deliver(press("extend", "RD-OSC-001", BORROWER))
        await env.deliver(press("remind_now", "RD-OSC-001", KEEPER))
        await env.deliver(press("return", "RD-OSC-001", BORROWER))
        await env.settle()
        history = await env.client.get_workflow_handle(WORKFLOW_ID, run_id=first_run).fetch_history()
        text = history.to_json()
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in text
        await assert_replays(history, WORKFLOWS)
        keep_history(history, FIXTURE, "ASSET_LOAN_RECORD_HISTORY")


async def test_recorded_history_replays() -> None:
    await assert_replays(load_history(FIXTURE, WORKFLOW_ID), WORKFLOWS)
