"""Replay: a recorded loan history still replays against the current workflow code.

``histories/loan.json`` was recorded by :func:`test_record_and_replay` (borrow, extend, a keeper's manual
reminder, return, continue-as-new) before updates refused events applied in an earlier run (issue 9).
Re-record it on purpose only, with ``ASSET_LOAN_RECORD_HISTORY=1``; a change that breaks its replay must
go behind ``workflow.patched``. ``histories/loan_deferred.json`` is a loan whose presses were answered
before the I/O they decided (``DEFERRED_IO``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_asset_loan_flow import BORROWER, KEEPER, SEED, harness, press

from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.asset_loan.workflows import DEFERRED_IO, WORKFLOWS

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


DEFERRED_FIXTURE = Path(__file__).parent / "histories" / "loan_deferred.json"


async def test_record_and_replay_presses_answered_first(scenario_harness: Any) -> None:
    """Records (once) a loan whose presses were answered before their I/O (``DEFERRED_IO``): borrow by a
    card press (the name looked up after), a second borrower refused, extend, return, continue-as-new."""
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        first_run = (await env.handle("asset_loan", "RD-OSC-001").describe()).run_id
        await env.deliver(press("borrow", "RD-OSC-001", KEEPER))
        await env.deliver(press("extend", "RD-OSC-001", BORROWER))
        await env.deliver(press("return", "RD-OSC-001", BORROWER))
        history = await env.client.get_workflow_handle(WORKFLOW_ID, run_id=first_run).fetch_history()
        markers = [e.marker_recorded_event_attributes for e in history.events
                   if e.HasField("marker_recorded_event_attributes")]
        assert any(DEFERRED_IO.encode() in payload.data
                   for m in markers for payload in m.details["patch-data"].payloads)
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in history.to_json()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, DEFERRED_FIXTURE, "ASSET_LOAN_RECORD_HISTORY")


async def test_recorded_history_of_presses_answered_first_replays() -> None:
    await assert_replays(load_history(DEFERRED_FIXTURE, WORKFLOW_ID), WORKFLOWS)
