"""Replay: a recorded history of a calibration cycle still replays against the current workflow code.

``histories/cycle.json`` was recorded by :func:`test_record_and_replay` (registration, a catch-up reminder,
sent out, a passing result, continue-as-new). Re-record it on purpose only, with
``DEVCAL_RECORD_HISTORY=1``; a change that breaks its replay must go behind ``workflow.patched``.
``histories/cycle_deferred.json`` is a cycle whose card presses were answered before the I/O they decided.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.rules import add_months
from engine.testing import moments
from engine.testing.kit import org_config
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.device_calibration.workflows import PATCH_DEFERRED_IO, WORKFLOWS

FIXTURE = Path(__file__).parent / "histories" / "cycle.json"
WORKFLOW_ID = "acme:device_calibration:CT-0012"


async def test_record_and_replay(scenario_harness: object) -> None:
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec1": h.device_row("CT-0012", last=add_months(today + timedelta(days=5), -12))})
        await env.deliver(h.record_event("rec1", "CT-0012"))
        first_run = (await env.handle("device_calibration", "CT-0012").describe()).run_id
        value = {"scenario": "device_calibration", "org": "acme", "device": "CT-0012", "kind": "calibration",
                 "cycle": 1}
        await env.deliver(h.card({**value, "op": "sent_out"}, h.CUSTODIAN, {"vendor": "省计量院"}))
        await env.advance(days=2)
        await env.deliver(h.card({**value, "op": "result"}, h.MANAGER, {
            "performed_on": h.local(await env.now()).date().isoformat(), "performed_by": "省计量院",
            "certificate": "JL-R-1", "as_found": "pass", "as_left": "pass"}))
        history = await env.client.get_workflow_handle(WORKFLOW_ID, run_id=first_run).fetch_history()
        text = history.to_json()
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in text
        await assert_replays(history, WORKFLOWS)
        keep_history(history, FIXTURE, "DEVCAL_RECORD_HISTORY")


async def test_recorded_history_replays() -> None:
    await assert_replays(load_history(FIXTURE, WORKFLOW_ID), WORKFLOWS)


DEFERRED_FIXTURE = Path(__file__).parent / "histories" / "cycle_deferred.json"


async def test_record_and_replay_presses_answered_first(scenario_harness: object) -> None:
    """Records (once) a cycle whose presses were answered before their I/O (``PATCH_DEFERRED_IO``): sent
    out, a form press, a passing result, continue-as-new."""
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec1": h.device_row("CT-0012", last=add_months(today + timedelta(days=40), -12))})
        await env.deliver(h.record_event("rec1", "CT-0012"))
        first_run = (await env.handle("device_calibration", "CT-0012").describe()).run_id
        value = {"scenario": "device_calibration", "org": "acme", "device": "CT-0012", "kind": "calibration",
                 "cycle": 1}
        await env.deliver(h.card({**value, "op": "sent_out"}, h.CUSTODIAN, {"vendor": "省计量院"}))
        await env.deliver(h.card({**value, "op": "result_form"}, h.MANAGER))
        await env.deliver(h.card({**value, "op": "result"}, h.MANAGER, {
            "performed_on": today.isoformat(), "performed_by": "省计量院", "certificate": "JL-R-2",
            "as_found": "pass", "as_left": "pass"}))
        history = await env.client.get_workflow_handle(WORKFLOW_ID, run_id=first_run).fetch_history()
        markers = [e.marker_recorded_event_attributes for e in history.events
                   if e.HasField("marker_recorded_event_attributes")]
        assert any(PATCH_DEFERRED_IO.encode() in payload.data
                   for m in markers for payload in m.details["patch-data"].payloads)
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in history.to_json()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, DEFERRED_FIXTURE, "DEVCAL_RECORD_HISTORY")


async def test_recorded_history_of_presses_answered_first_replays() -> None:
    await assert_replays(load_history(DEFERRED_FIXTURE, WORKFLOW_ID), WORKFLOWS)
