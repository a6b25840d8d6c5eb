"""Replay: recorded handover histories still replay against the current workflow code.

Each pair is a shift (written, submitted, a question answered, a critical patient and the handover
confirmed) and the schedule's rota run that planned and started it:

- ``shift.json`` / ``rota_driver.json`` were recorded before the card presses' I/O was deferred and
  before the rota driver loaded its site's context (kept as they are: they prove the patches);
- ``shift_deferred.json`` / ``rota_driver_site.json`` by :func:`test_record_and_replay` with both.

Re-record the latter on purpose only, with ``HANDOVER_RECORD_HISTORY=1``; a change that breaks the
replay of any of them must go behind ``workflow.patched``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from handover_helpers import card, handover_settings
from test_handover_flow import at, start_shift

import plugins.handover as handover
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.handover.workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
RECORDED = {  # history -> recorded with deferred I/O and site context
    "shift.json": False, "rota_driver.json": False, "shift_deferred.json": True, "rota_driver_site.json": True}
RECORD = "HANDOVER_RECORD_HISTORY"
MARKER = "EVENT_TYPE_MARKER_RECORDED"  # workflow.patched's marker


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
        assert MARKER in shift.to_json()  # the patch's marker
        keep_history(shift, HISTORIES / "shift_deferred.json", RECORD)
        driver_id = env.workflow_id("handover", f"schedule:rota-icu-2000:{plan.key}")
        driver = await env.client.get_workflow_handle(driver_id).fetch_history()
        await assert_replays(driver, WORKFLOWS)
        assert MARKER in driver.to_json() and "engine.site_context" in driver.to_json()
        keep_history(driver, HISTORIES / "rota_driver_site.json", RECORD)


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_recorded_history_replays(name: str) -> None:
    text = (HISTORIES / name).read_text(encoding="utf-8")
    assert (MARKER in text) == RECORDED[name]  # the patches' markers are where they should be
    await assert_replays(load_history(HISTORIES / name, f"acme:handover:{name}"), WORKFLOWS)
