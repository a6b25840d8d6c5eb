"""A recorded ticket replays: later changes to repair.Ticket must keep it replaying (behind
``workflow.patched``), as Temporal replays the tickets running when a new version is deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repair_helpers import FAC_TECH, REPORTER, SEED, SETTINGS, press, report, state, ticket_of

import plugins.repair as repair
from engine.testing import moments
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.repair.workflows import WORKFLOWS

HISTORY = Path(__file__).parent / "histories" / "ticket_full.json"


async def test_a_whole_ticket_replays(scenario_harness: Any) -> None:
    """Records (once; ``REPAIR_RECORD_HISTORY=1`` again) a ticket through escalation, parts, reopen, rating."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 3楼开水间漏水", message_id="om_replay", at=start))
        number = ticket_of(env, "om_replay")
        await env.advance(minutes=31)  # the lead hears
        for op in ("accept", "on_the_way", "waiting_parts", "working", "done"):
            await env.deliver(press(op, number, FAC_TECH))
        await env.deliver(press("reopen", number, REPORTER))
        for op in ("accept", "done"):
            await env.deliver(press(op, number, FAC_TECH))
        await env.deliver(press("rate", number, REPORTER, score=4, comment="ok"))
        assert (await state(env, number)).status == "closed"
        await env.advance(days=8)  # past the week a closed ticket answers late presses
        history = await env.handle("repair", number).fetch_history()
        assert "WORKFLOW_EXECUTION_COMPLETED" in history.to_json()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, HISTORY, "REPAIR_RECORD_HISTORY")


async def test_the_recorded_ticket_replays() -> None:
    history = load_history(HISTORY, "acme:repair:recorded")
    await assert_replays(history, WORKFLOWS)
