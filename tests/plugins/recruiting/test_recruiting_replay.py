"""Replay: recorded recruiting histories still replay against the current workflow code.

``histories/application.json``, ``histories/onboarding.json`` and ``histories/requisition.json`` were
recorded by the tests below: an application moved by card presses until rejected into the pool, an
onboarding whose checklist item and leaving were pressed, and a requisition approved and closed by card
(recorded before requisitions could ask Feishu's approval app, ``recruiting.feishu_approval``).
The ``*_before_sdk.json`` ones were recorded the same way by the code before the site context
(``recruiting.site_context``) and deferred card presses (``recruiting.deferred_presses``): running
workflows of that code must replay, so those changes are behind ``workflow.patched``.
Re-record on purpose only, with ``RECRUITING_RECORD_HISTORY=1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recruiting_helpers import config, press, record_event, seed, track

import plugins.recruiting as recruiting
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.recruiting.workflows import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
APPLICATION = "acme:recruiting:app:recAppB03"
ONBOARDING = "acme:recruiting:onb:recAppA01"
REQUISITION = "acme:recruiting:req:recReqA002"


async def record_application(env: Any) -> Any:
    """recAppB03 moved by card to screened, then rejected (its consent keeps it in the pool): the run ends."""
    seed(env)
    await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
    await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="screened"))
    await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="rejected"))
    return await env.client.get_workflow_handle(APPLICATION).fetch_history()


async def record_onboarding(env: Any) -> Any:
    """recAppA01 accepted by card: its onboarding gets a checklist item pressed done, then leaving."""
    seed(env)
    await env.deliver(record_event("tblApplications", "recAppA01"))
    await env.deliver(press("ou_hr_a", "move", app="recAppA01", to="accepted"))
    track(env, "onb:recAppA01")
    await env.settle()
    await env.deliver(press("ou_hr_a", "item_done", app="recAppA01", item="badge"))
    await env.deliver(press("ou_hr_a", "leave", app="recAppA01"))
    return await env.client.get_workflow_handle(ONBOARDING).fetch_history()


async def record_requisition(env: Any) -> Any:
    """recReqA002 approved by its hospital head's card press, then closed by card: the run ends."""
    seed(env, applications=False)
    await env.deliver(record_event("tblRequisitions", "recReqA002"))
    await env.deliver(press("ou_head_a", "approve", req="recReqA002"))
    await env.deliver(press("ou_rc_a", "close_req", req="recReqA002"))
    return await env.client.get_workflow_handle(REQUISITION).fetch_history()


async def test_a_requisition_approved_by_card_replays(scenario_harness: Any) -> None:
    async with scenario_harness({"recruiting": recruiting}, config=config()) as env:
        history = await record_requisition(env)
        await assert_replays(history, WORKFLOWS)
        keep_history(history, HISTORIES / "requisition.json", "RECRUITING_RECORD_HISTORY")


async def test_an_application_moved_by_card_replays(scenario_harness: Any) -> None:
    async with scenario_harness({"recruiting": recruiting}, config=config()) as env:
        history = await record_application(env)
        text = history.to_json()
        # the two patches' markers (site context, deferred presses) and the engine's context activity
        assert text.count("EVENT_TYPE_MARKER_RECORDED") == 2 and "engine.site_context" in text
        await assert_replays(history, WORKFLOWS)
        keep_history(history, HISTORIES / "application.json", "RECRUITING_RECORD_HISTORY")


async def test_an_onboarding_pressed_by_card_replays(scenario_harness: Any) -> None:
    async with scenario_harness({"recruiting": recruiting}, config=config()) as env:
        history = await record_onboarding(env)
        # site context, deferred presses, and the owner check of the pressed item (recruiting.item_owners);
        # histories/onboarding.json was recorded before that check and replays without it
        assert history.to_json().count("EVENT_TYPE_MARKER_RECORDED") == 3
        await assert_replays(history, WORKFLOWS)
        keep_history(history, HISTORIES / "onboarding.json", "RECRUITING_RECORD_HISTORY")


async def test_the_recorded_histories_replay() -> None:
    await assert_replays(load_history(HISTORIES / "application.json", APPLICATION), WORKFLOWS)
    await assert_replays(load_history(HISTORIES / "onboarding.json", ONBOARDING), WORKFLOWS)
    await assert_replays(load_history(HISTORIES / "requisition.json", REQUISITION), WORKFLOWS)


async def test_runs_recorded_before_the_site_context_and_deferred_presses_replay() -> None:
    for name, workflow_id in (("application_before_sdk.json", APPLICATION), ("onboarding_before_sdk.json", ONBOARDING)):
        history = load_history(HISTORIES / name, workflow_id)
        text = history.to_json()
        assert "recruiting.context" in text and "EVENT_TYPE_MARKER_RECORDED" not in text  # the old code's run
        await assert_replays(history, WORKFLOWS)
