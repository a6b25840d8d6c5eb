"""Feishu approvals in the engine: a workflow asks, the decision comes back exactly once.

Real pieces throughout: the time-skipping Temporal server and a worker, the Feishu stand-in's Approval API
over HTTP through lark-oapi, and approval events pushed signed over HTTP to the engine's ingress, twice
and out of order.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from approval_plugin import PurchasePlugin

from engine.approvals import WORKFLOWS, approval_workflow_id
from engine.runtime.worker import build_worker, engine_activities
from engine.testing import moments
from engine.testing.kit import TASK_QUEUE, FreezeWallClock, ScenarioHarness, org_config
from engine.testing.replay import assert_replays, keep_history, load_history

FOLLOW_HISTORY = Path(__file__).parent / "histories" / "approval_follow_workdays.json"
CODE = "PURCHASE-7C46"
APPLICANT = "ou_applicant"


def config(**approval: Any) -> dict[str, Any]:
    settings = {"approval_code": CODE, "escalate_to": ["ou_boss"], **approval}
    return org_config(plugins=["purchase"], settings={"purchase": {"approval": settings}},
                      sites={"west": {"name": "西院", "settings": {
                          "purchase": {"approval": {"approvers": {"dept_head": ["ou_west_head"]}}}}}})


def seed(env: ScenarioHarness) -> None:
    env.standin.add_approval_definition(CODE, "采购审批", nodes=[
        {"custom_node_id": "dept_head", "approvers": ["ou_head"]},
        {"custom_node_id": "finance", "approvers": ["ou_finance"]}])


async def ask(env: ScenarioHarness, key: str, site: str | None = None) -> tuple[Any, str]:
    """Start a purchase request; returns its handle and the instance it created in Feishu."""
    handle = await env.start_workflow("purchase.Request", site, APPLICANT, f"采购 {key}",
                                      id=env.workflow_id("purchase", key))
    codes = [c for c, i in env.standin.state.approval_instances.items() if i["form"] and key in i["form"]]
    assert len(codes) == 1
    return handle, codes[0]


async def result_without_waiting(env: ScenarioHarness, handle: Any) -> list[dict[str, Any]]:
    """The asking workflow's result, which the events alone must have brought: the follower also reads the
    instance every 12 hours, so a decision it read after the clock skipped ahead did not come from them.
    (The clock itself may skip after the result, to the completed activities' timeouts: the decision's own
    ``decided_at`` tells.)"""
    before = await env.now()
    decisions = await handle.result()
    for decision in decisions:
        read_at = datetime.fromisoformat(decision["decided_at"])
        assert read_at - before < timedelta(hours=1), "decided by the periodic read, not by the events"
    return decisions


def tasks(env: ScenarioHarness, code: str) -> list[tuple[str, str]]:
    return [(t["open_id"], t["status"]) for t in env.standin.state.approval_instances[code]["task_list"]]


async def follower(env: ScenarioHarness, code: str) -> dict[str, Any]:
    return await env.client.get_workflow_handle(approval_workflow_id(env.org.id, code)).query("state")


async def test_approved_after_events_twice_and_out_of_order(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        handle, code = await ask(env, "PR-1")
        assert (await follower(env, code))["pending_approvers"] == ["ou_head"]
        created = env.standin.approval_payloads[-1]
        assert env.standin.decide_approval(code, "approve", open_id="ou_head") is None  # on to finance
        approved = env.standin.decide_approval(code, "approve", open_id="ou_finance")
        for payload in (approved, created, approved, created):  # the decision first, then stale news, twice
            result = await env.push_payload(payload)
            assert result.acknowledged
        decisions = await result_without_waiting(env, handle)
        assert [(d["outcome"], d["status"], d["decided_by"], d["instance_code"]) for d in decisions] == [
            ("approved", "APPROVED", "ou_finance", code)]


async def test_decisions_pushed_by_feishu_itself_once_subscribed(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        await env.app.feishu.subscribe_approval(CODE)
        env.standin.event_url = await env.ingress_url()  # the stand-in pushes each change, as Feishu does
        handle, code = await ask(env, "PR-8")
        env.standin.decide_approval(code, "approve", open_id="ou_head")
        env.standin.decide_approval(code, "approve", open_id="ou_finance")
        for _ in range(500):  # the stand-in pushes in the background
            if len(env.standin.deliveries) == 4 and all(d.acknowledged for d in env.standin.deliveries):
                break
            await asyncio.sleep(0.01)
        await env.settle()
        decisions = await result_without_waiting(env, handle)
        assert [(d["outcome"], d["decided_by"]) for d in decisions] == [("approved", "ou_finance")]
        assert [p["event"]["status"] for p in env.standin.approval_payloads] == ["PENDING", "APPROVED"]
        assert [p["event"]["status"] for p in env.standin.approval_task_payloads] == ["APPROVED", "APPROVED"]


async def test_a_forged_approval_changes_nothing_and_the_rejection_ends_it(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        handle, code = await ask(env, "PR-2")
        forged = env.standin.approval_event(CODE, code, "APPROVED")  # Feishu never said so
        await env.push_payload(forged)
        assert (await follower(env, code))["status"] == "PENDING"  # re-read: still pending
        rejected = env.standin.decide_approval(code, "reject", open_id="ou_head", comment="over budget")
        await env.push_payload(rejected)
        await env.push_payload(rejected)
        decisions = await result_without_waiting(env, handle)
        assert [(d["outcome"], d["decided_by"]) for d in decisions] == [("rejected", "ou_head")]


async def test_withdrawn_after_a_transfer_that_kept_it_pending(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        handle, code = await ask(env, "PR-3")
        assert env.standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy") is None
        await env.push_payload(env.standin.approval_event(CODE, code, "PENDING"))  # news of a kind
        assert (await follower(env, code))["pending_approvers"] == ["ou_deputy"]  # transferred: still pending
        withdrawn = env.standin.decide_approval(code, "cancel")
        await env.push_payload(withdrawn)
        await env.push_payload(withdrawn)
        decisions = await result_without_waiting(env, handle)
        assert [(d["outcome"], d["status"], d["decided_by"]) for d in decisions] == [("withdrawn", "CANCELED", "")]


async def test_a_transfer_reaches_the_follower_by_its_task_event(scenario_harness: Any) -> None:
    """A transfer leaves the instance PENDING and Feishu sends no instance event, only task events: the
    follower re-reads at once, so its next reminder goes to the new approver (no 12-hour wait)."""
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        await env.app.feishu.subscribe_approval(CODE)
        env.standin.event_url = await env.ingress_url()
        _, code = await ask(env, "PR-9")
        before = await env.now()
        assert env.standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy") is None
        pushed = len(env.standin.approval_payloads) + len(env.standin.approval_task_payloads)  # all subscribed
        for _ in range(1000):  # the stand-in pushes in the background: wait for every push to be answered
            if len(env.standin.deliveries) == pushed and all(d.acknowledged for d in env.standin.deliveries):
                break
            await asyncio.sleep(0.01)
        assert len(env.standin.deliveries) == pushed
        await env.settle()
        (task_event,) = env.standin.approval_task_payloads
        assert (task_event["event"]["type"], task_event["event"]["status"]) == ("approval_task", "TRANSFERRED")
        assert (await follower(env, code))["pending_approvers"] == ["ou_deputy"]
        assert await env.now() - before < timedelta(hours=1), "learnt by the periodic read, not the task event"


def uncached_worker(env: ScenarioHarness) -> Any:
    """A worker that keeps no workflow cached: once it stops, the next one picks its workflows up at once
    (the test server never hands a stopped worker's sticky tasks on)."""
    return build_worker(env.client, env.plugins, engine_activities(env.app), task_queue=TASK_QUEUE,
                        interceptors=[FreezeWallClock()], max_cached_workflows=0)


async def test_decided_while_the_worker_is_down(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        await env.worker.shutdown()
        async with uncached_worker(env):
            handle, code = await ask(env, "PR-4")
        # no worker now: the approvers decide, Feishu pushes, the ingress hands the events to Temporal
        env.standin.decide_approval(code, "approve", open_id="ou_head")
        approved = env.standin.decide_approval(code, "approve", open_id="ou_finance")
        assert (await env.push_payload(approved, settle=False)).acknowledged
        assert (await env.push_payload(approved, settle=False)).acknowledged
        async with uncached_worker(env):  # the worker is back
            decisions = await result_without_waiting(env, handle)
        assert [(d["outcome"], d["decided_by"]) for d in decisions] == [("approved", "ou_finance")]


async def test_a_hospital_overrides_the_approver_chain(scenario_harness: Any) -> None:
    async with scenario_harness({"purchase": PurchasePlugin()}, config=config()) as env:
        seed(env)
        _, west = await ask(env, "PR-5", site="west")
        _, group = await ask(env, "PR-6")
        assert tasks(env, west) == [("ou_west_head", "PENDING")]  # the hospital's own head
        assert tasks(env, group) == [("ou_head", "PENDING")]  # the group's standard chain
        env.standin.decide_approval(west, "approve", open_id="ou_west_head")
        assert tasks(env, west)[-1] == ("ou_finance", "PENDING")  # the rest of the chain is headquarters'


async def test_pending_approvals_are_reminded_and_escalated_on_working_days(scenario_harness: Any) -> None:
    ladder = {"before_days": [], "on_due": True, "after": [{"every_days": 1, "times": 1, "to": "head"}]}
    async with scenario_harness({"purchase": PurchasePlugin()},
                                config=config(decide_within_days=1, ladder=ladder)) as env:
        seed(env)
        calendar = env.calendar()
        eve = await env.begin_at(moments.eve_of_days_off(time(10, 0), min_days=2))
        handle, code = await ask(env, "PR-7")
        due = calendar.add_workdays(eve.date(), 1)  # the first working day after the days off
        await env.advance(days=1)
        # transferred on a day off, with no event at all: the reminder finds the task's new holder
        assert env.standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy") is None
        await env.advance_to(calendar.at_local(due, time(8, 59)))
        assert env.messages(to="ou_deputy") == [] and env.messages(to="ou_boss") == []  # nothing on days off
        await env.advance(minutes=2)
        assert env.messages(to="ou_head") == []
        assert [m.text for m in env.messages(to="ou_deputy")] == [
            f"【审批提醒】「采购 PR-7」正在等你审批，请在 {due.isoformat()} 前在飞书审批中处理。"]
        escalation_day = calendar.next_workday(due + timedelta(days=1))
        await env.advance_to(calendar.at_local(escalation_day, time(8, 59)))
        assert env.messages(to="ou_boss") == []
        await env.advance(minutes=2)
        assert [m.text for m in env.messages(to="ou_boss")] == [
            f"【审批逾期】「采购 PR-7」应在 {due.isoformat()} 前审批完成，仍有 1 位审批人未处理，请跟进。"]
        await env.push_payload(env.standin.decide_approval(code, "reject", open_id="ou_deputy"))
        assert [(d["outcome"], d["decided_by"]) for d in await handle.result()] == [("rejected", "ou_deputy")]
        assert len(env.messages(to="ou_deputy")) == 1 and len(env.messages(to="ou_boss")) == 1
        # recorded once (RECORD_APPROVAL_HISTORY=1 records again): later changes must replay it
        history = await env.client.get_workflow_handle(approval_workflow_id(env.org.id, code)).fetch_history()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, FOLLOW_HISTORY, "RECORD_APPROVAL_HISTORY")


async def test_the_recorded_follower_replays() -> None:
    """A follower that reminded, escalated, re-read a transferred task and ended rejected."""
    await assert_replays(load_history(FOLLOW_HISTORY, "acme:engine:approval:recorded"), WORKFLOWS)


async def test_a_long_pending_follower_continues_as_new_and_keeps_what_it_did(scenario_harness: Any) -> None:
    """A follower pending for weeks starts over before its history grows long, carrying the notices it sent
    and the events it saw: nobody is reminded twice, and the decision still comes back once."""
    from engine.approvals import FOLLOW_WORKFLOW, FollowInput
    from engine.context import resolve_site_context

    ladder = {"before_days": [], "on_due": True, "after": [{"every_days": 1, "times": 2, "to": "head"}]}
    async with scenario_harness({"purchase": PurchasePlugin()},
                                config=config(decide_within_days=1, ladder=ladder, recheck_hours=6)) as env:
        seed(env)
        start = await env.begin_at(moments.ordinary_workday(clear_days=10))
        site = resolve_site_context(env.org, "purchase", None)
        settings = env.org.settings("purchase").approval
        code = await env.app.feishu.create_approval(CODE, APPLICANT, [], None, "long-pending-1")
        follow = FollowInput(org=env.org.id, approval_code=CODE, instance_code=code, title="采购 PR-LONG",
                             settings=settings, site=site, requested_at=start, history_limit=40)
        wid = approval_workflow_id(env.org.id, code)
        handle = await env.client.start_workflow(FOLLOW_WORKFLOW, follow, id=wid, task_queue=TASK_QUEUE)
        first_run = (await handle.describe()).run_id
        event = env.standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy")
        assert event is None  # a transfer leaves it pending
        await env.advance(days=8)  # a reminder, two escalations and many six-hourly reads
        assert (await handle.describe()).run_id != first_run, "the follower did not continue as new"
        assert len(env.messages(to="ou_deputy")) == 1 and len(env.messages(to="ou_boss")) == 2
        await env.advance(days=2)
        assert len(env.messages(to="ou_deputy")) == 1 and len(env.messages(to="ou_boss")) == 2
        assert env.standin.decide_approval(code, "approve", open_id="ou_deputy") is None  # on to finance
        approved = env.standin.decide_approval(code, "approve", open_id="ou_finance")
        for _ in range(2):
            await env.push_payload(approved)
        decision = await env.client.get_workflow_handle(wid).result()
        assert (decision["outcome"], decision["decided_by"]) == ("approved", "ou_finance")
        # the run that continued as new replays against the code
        await assert_replays(await env.client.get_workflow_handle(wid, run_id=first_run).fetch_history(), WORKFLOWS)
