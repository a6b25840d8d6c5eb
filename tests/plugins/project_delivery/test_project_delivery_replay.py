"""Replay: recorded project histories still replay against the current workflow code.

``histories/project_v1.json`` was recorded before projects loaded their region's site context and carried
out card presses through ``Deferred`` (create, a stage press, continue-as-new);
``histories/project_closed_v1.json`` is the next run of the same project: reminders and slips on its
timers, then a cancel press. ``project_v2.json`` and ``project_closed_v2.json`` are the same project
recorded by :func:`test_record_and_replay` since (with the ``project_delivery.site_context`` patch marker).
Re-record the v2 files on purpose only, with ``PROJECT_DELIVERY_RECORD_HISTORY=1``, never the v1 files; a
change that breaks a replay goes behind ``workflow.patched``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pd_helpers as h

import plugins.project_delivery as project_delivery
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.project_delivery.rules import project_id_for
from plugins.project_delivery.workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
PLUGINS = {"project_delivery": project_delivery}
CALENDAR_DAYS = {"project_delivery": {"working_days_only": False}}
PROJECT = project_id_for("om_ev-replay")
WORKFLOW_ID = f"acme:project_delivery:{PROJECT}"


async def _record(env: Any) -> tuple[Any, Any]:
    """Drive one project through a press, an edit, a reminder and a cancel; the histories of its two runs."""
    h.seed(env)
    await env.deliver(h.mention("建群 协和医院 CT128 华北", "ev-replay"))
    first = (await env.handle("project_delivery", PROJECT).describe()).run_id
    await env.deliver(h.press({"op": "stage", "project": PROJECT, "stage": "site_survey"}, "ev-r1", h.NORTH["se"]))
    await env.advance(seconds=1)
    project = await h.state(env, PROJECT)
    second = (await env.handle("project_delivery", PROJECT).describe()).run_id
    assert second != first and project.stage == "site_survey"
    await env.advance(days=32)  # the site-readiness milestone: reminders and the slip ladder
    await env.deliver(h.press({"op": "cancel", "project": PROJECT}, "ev-r2", h.NORTH["pm"]))
    await env.advance(seconds=1)
    assert (await env.handle("project_delivery", PROJECT).result())["status"] == "cancelled"
    client = env.client
    return (await client.get_workflow_handle(WORKFLOW_ID, run_id=first).fetch_history(),
            await client.get_workflow_handle(WORKFLOW_ID, run_id=second).fetch_history())


async def test_record_and_replay(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, org_settings=CALENDAR_DAYS) as env:
        created, cancelled = await _record(env)
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in created.to_json()
        assert "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED" in cancelled.to_json()
        for history in (created, cancelled):
            assert "EVENT_TYPE_MARKER_RECORDED" in history.to_json()  # the site-context patch marker
            assert "engine.site_context" in history.to_json()
            await assert_replays(history, WORKFLOWS)
        keep_history(created, HISTORIES / "project_v2.json", "PROJECT_DELIVERY_RECORD_HISTORY")
        keep_history(cancelled, HISTORIES / "project_closed_v2.json", "PROJECT_DELIVERY_RECORD_HISTORY")


async def test_histories_recorded_before_site_contexts_and_deferred_presses_replay() -> None:
    for name in ("project_v1.json", "project_closed_v1.json"):
        history = load_history(HISTORIES / name, WORKFLOW_ID)
        assert "project_delivery.load_context" in history.to_json()  # the organization's context, as then
        await assert_replays(history, WORKFLOWS)


async def test_histories_recorded_with_site_contexts_replay() -> None:
    for name in ("project_v2.json", "project_closed_v2.json"):
        await assert_replays(load_history(HISTORIES / name, WORKFLOW_ID), WORKFLOWS)
