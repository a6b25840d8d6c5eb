"""Replay: recorded handover histories still replay against the current workflow code.

``histories/shift.json`` (a shift written, submitted, a critical patient and the handover confirmed, a
question answered) and ``histories/rota_driver.json`` (the schedule's run that planned and started it)
were recorded before the card presses' I/O was deferred and before the rota driver loaded its site's
context. Re-record them on purpose only, with ``HANDOVER_RECORD_HISTORY=1``; a change that breaks their
replay must go behind ``workflow.patched``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from handover_helpers import card, handover_settings
from test_handover_flow import at, start_shift

import plugins.handover as handover
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.handover.workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
SHIFT = HISTORIES / "shift.json"
DRIVER = HISTORIES / "rota_driver.json"
SHIFT_ID = "acme:handover:icu:2000-01-02T20:00"  # replaced by the recorded id when loading
RECORD = "HANDOVER_RECORD_HISTORY"


async def test_record_and_replay(scenario_harness: Any) -> None:
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        plan = await start_shift(env, "20:00")
        await at(env, plan.form_at)
        await env.deliver(card(plan.giver, "handover.entry", plan.key, {
            "bed": "12", "category": "critically_ill", "severity": "unstable", "summary": "重症肺炎",
            "actions": "02:00 复查血气", "contingency": "SpO2<88% 上调 FiO2"}))
        await env.deliver(card(plan.giver, "handover.submit", plan.key, {}))
        await env.deliver(card(plan.receiver, "handover.ask", plan.key, {"question": "要复查胸片吗？"}))
        await env.deliver(card(plan.giver, "handover.answer", plan.key, {"answer": "明早复查"}, question="q1"))
        await at(env, plan.change_at + timedelta(minutes=5))
        await env.deliver(card(plan.receiver, "handover.ack_patient", plan.key, bed="12"))
        await env.deliver(card(plan.receiver, "handover.ack", plan.key, {"synthesis": "12 床呼吸机"}))
        await env.settle()
        shift = await env.handle("handover", plan.key).fetch_history()
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" in shift.to_json()
        await assert_replays(shift, WORKFLOWS)
        keep_history(shift, SHIFT, RECORD)
        driver_id = env.workflow_id("handover", f"schedule:rota-icu-2000:{plan.key}")
        driver = await env.client.get_workflow_handle(driver_id).fetch_history()
        await assert_replays(driver, WORKFLOWS)
        keep_history(driver, DRIVER, RECORD)


def _recorded_id(path: Path) -> str:
    import json

    events = json.loads(path.read_text(encoding="utf-8"))["events"]
    return str(events[0]["workflowExecutionStartedEventAttributes"].get("workflowId") or SHIFT_ID)


async def test_recorded_shift_replays() -> None:
    await assert_replays(load_history(SHIFT, _recorded_id(SHIFT)), WORKFLOWS)


async def test_recorded_rota_driver_replays() -> None:
    await assert_replays(load_history(DRIVER, _recorded_id(DRIVER)), WORKFLOWS)
