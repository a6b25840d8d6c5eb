"""Requisitions approved in Feishu's approval app instead of by cards, end to end.

The time-skipping Temporal server and a worker; the Feishu stand-in's Approval API over HTTP through
lark-oapi; approvers decide through the stand-in's ``POST /_standin/approval/decide`` over real HTTP, and
the ``approval_instance`` events are pushed signed over HTTP to the engine's ingress, twice and out of
order, as Feishu may push them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from recruiting_helpers import add_row, config, press, record_event, rows, seed, state, track
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import is_cancelled_exception

import plugins.recruiting as recruiting
from engine.approvals import approval_workflow_id
from engine.testing.events import message
from plugins.recruiting.config import SITE_OVERRIDABLE

CODE = "RECRUIT-REQ-0001"
PLUGINS = {"recruiting": recruiting}


def feishu_config(**approval: Any) -> dict[str, Any]:
    return config(approval={"feishu": {"approval_code": CODE, **approval}})


def define(env: Any) -> None:
    """Headquarters' definition: the hospital head, then group HR, whom Feishu passes when nobody is named."""
    env.standin.add_approval_definition(CODE, "招聘需求审批", nodes=[
        {"custom_node_id": "hospital_head", "approvers": []},
        {"custom_node_id": "group_hr", "approvers": [], "if_empty": "pass"}])


async def open_requisition(env: Any, record_id: str, site: str, headcount: int, opener: str, **fields: Any) -> str:
    """Add a requisition row and tell the engine; returns the Feishu instance it asked for."""
    before = set(env.standin.state.approval_instances)
    add_row(env, "tblRequisitions", record_id, {"医院": site, "科室": "急诊科", "职位": "主治医师",
                                                "人数": headcount, "招聘负责人": [{"id": opener}], **fields})
    await env.deliver(record_event("tblRequisitions", record_id, operator=opener))
    created = [code for code in env.standin.state.approval_instances if code not in before]
    assert len(created) == 1, created
    return created[0]


async def decide(env: Any, instance_code: str, action: str, open_id: str = "", comment: str = ""
                 ) -> dict[str, Any] | None:
    """Act on the instance as Feishu's approval app does (``comment``: the approver's words), through the
    stand-in's HTTP endpoint; returns the ``approval_instance`` payload when its status changed."""
    async with httpx.AsyncClient(base_url=env.standin.base_url) as http:
        response = await http.post("/_standin/approval/decide", json={
            "instance_code": instance_code, "action": action, "open_id": open_id, "comment": comment})
    assert response.status_code == 200, response.text
    return response.json()["event"]


def tasks(env: Any, code: str) -> list[tuple[str, str]]:
    return [(t["open_id"], t["status"]) for t in env.standin.state.approval_instances[code]["task_list"]]


def told(env: Any, open_id: str, words: str) -> int:
    return sum(words in m.text for m in env.messages(to=open_id))


async def test_approved_in_feishu_with_events_twice_and_out_of_order(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config()) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF1", "hosp_a", 3, "ou_rc_a", 申请理由="急诊扩编")
        instance = env.standin.state.approval_instances[code]
        assert instance["open_id"] == "ou_rc_a"  # the recruiter who added the row applies
        form = {w["id"]: w["value"] for w in json.loads(instance["form"])}
        assert form == {"position": "急诊科 主治医师", "headcount": 3, "hospital": "A院", "reason": "急诊扩编"}
        assert tasks(env, code) == [("ou_head_a", "PENDING")]  # three people: group HR comes next
        assert not env.messages(to="ou_head_a")  # no approval card: Feishu's approval app asks
        refused = await env.deliver(press("ou_head_a", "approve", req="recReqF1"))
        assert refused.toast == "recReqF1 正在飞书审批中，请在「审批」应用里处理"

        assert await decide(env, code, "approve", "ou_head_a") is None  # on to group HR
        assert tasks(env, code)[-1] == ("ou_group_hr", "PENDING")
        approved = await decide(env, code, "approve", "ou_group_hr")
        created = env.standin.approval_payloads[0]
        for payload in (approved, created, approved, created):  # the decision first, stale news after, twice
            assert (await env.push_payload(payload)).acknowledged

        st = await state(env, "req:recReqF1")
        assert (st.status, st.approval_instance, st.approval_outcome) == ("open", code, "approved")
        assert [(s.role, s.status) for s in st.chain] == [("hospital_head", "approved"), ("group_hr", "approved")]
        assert st.chain[-1].decided_by == "ou_group_hr"
        row = rows(env, "tblRequisitions")["recReqF1"]
        assert row["状态"] == "open" and row["批准时间"] and f"feishu: {code} approved" in row["审批记录"]
        assert told(env, "ou_rc_a", "已审批通过") == 1  # the recruiter, once, as after the cards


async def test_rejected_in_feishu(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config()) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF2", "hosp_b", 1, "ou_rc_b")
        assert tasks(env, code) == [("ou_head_b", "PENDING")]
        rejected = await decide(env, code, "reject", "ou_head_b")
        assert rejected is not None
        await env.push_payload(rejected)
        await env.push_payload(rejected)
        st = await state(env, "req:recReqF2")
        assert (st.status, st.approval_outcome) == ("rejected", "rejected")
        assert [(s.role, s.status, s.decided_by) for s in st.chain] == [("hospital_head", "rejected", "ou_head_b")]
        assert rows(env, "tblRequisitions")["recReqF2"]["状态"] == "rejected"
        assert told(env, "ou_rc_b", "被驳回") == 1
        assert told(env, "ou_rc_b", "被驳回：") == 0  # no comment, no comment line
        assert not env.messages(to="ou_group_hr")  # one person: group HR never had a task
        assert [t for t in tasks(env, code) if t[0] == "ou_group_hr"] == []


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
async def test_the_rejecting_approvers_comment_reaches_the_recruiter(scenario_harness: Any, locale: str) -> None:
    settings = feishu_config()
    settings["organizations"]["acme"]["sites"]["hosp_b"]["locale"] = locale
    async with scenario_harness(PLUGINS, config=settings) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF9", "hosp_b", 1, "ou_rc_b")
        # the approver's words, with a mention of everyone that must not become one
        rejected = await decide(env, code, "reject", "ou_head_b", comment='编制已满 <at user_id="all"></at>')
        assert rejected is not None
        await env.push_payload(rejected)
        st = await state(env, "req:recReqF9")
        assert (st.status, st.approval_outcome) == ("rejected", "rejected")
        await env.settle()
        [notice] = [m.text for m in env.messages(to="ou_rc_b")]
        lead = "被驳回：编制已满" if locale == "zh_CN" else "was rejected: 编制已满"
        assert lead in notice
        assert '<at user_id="all">' not in notice  # escaped: shown as text, nobody is mentioned
        assert ("was rejected" in notice) == (locale == "en_US")  # the site's language only


async def test_withdrawn_in_feishu_closes_the_requisition(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config()) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF3", "hosp_a", 1, "ou_rc_a")
        withdrawn = await decide(env, code, "cancel")  # the applicant withdraws it in Feishu
        assert withdrawn is not None
        await env.push_payload(withdrawn)
        await env.push_payload(env.standin.approval_payloads[0])
        await env.push_payload(withdrawn)
        st = await state(env, "req:recReqF3")
        assert (st.status, st.approval_outcome) == ("closed", "withdrawn")
        row = rows(env, "tblRequisitions")["recReqF3"]
        assert row["状态"] == "closed" and row["关闭时间"] and not row.get("批准时间")
        assert await env.handle("recruiting", "req:recReqF3").result() == "closed"
        await env.deliver(message("recReqF3 状态", chat_type="group", message_id="om_f3"))
        track(env, "status:om_f3")
        await env.settle()
        reply = [m.text for m in env.messages() if m.reply_to == "om_f3"]
        assert len(reply) == 1 and "已关闭" in reply[0] and "等待审批" not in reply[0]  # it waits for nobody


async def test_a_hospital_overrides_the_approver_chain(scenario_harness: Any) -> None:
    settings = feishu_config()
    org = settings["organizations"]["acme"]
    # B院 names its deputy head at the head's node and lets group HR see every requisition (threshold 1)
    org["site_overridable"] = {"recruiting": [*SITE_OVERRIDABLE, "approval.group_headcount_threshold"]}
    org["sites"]["hosp_b"]["settings"]["recruiting"]["approval"] = {
        "group_headcount_threshold": 1, "feishu": {"approvers": {"hospital_head": ["ou_deputy_b"]}}}
    async with scenario_harness(PLUGINS, config=settings) as env:
        seed(env, applications=False)
        define(env)
        b = await open_requisition(env, "recReqF4", "hosp_b", 1, "ou_rc_b")
        a = await open_requisition(env, "recReqF5", "hosp_a", 1, "ou_rc_a")
        assert tasks(env, a) == [("ou_head_a", "PENDING")]  # the group's standard: the head, one person
        assert tasks(env, b) == [("ou_deputy_b", "PENDING")]  # B院's own approver
        assert await decide(env, a, "approve", "ou_head_a") is not None  # A院: approved at once
        assert await decide(env, b, "approve", "ou_deputy_b") is None  # B院: group HR too, at one person
        approved = await decide(env, b, "approve", "ou_group_hr")
        await env.push_payload(approved)
        await env.push_payload(env.standin.approval_payloads[-2])  # A院's decision
        assert (await state(env, "req:recReqF4")).status == "open"
        assert (await state(env, "req:recReqF5")).status == "open"


async def test_a_requisition_closed_while_pending_withdraws_its_instance(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config()) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF6", "hosp_a", 1, "ou_rc_a")
        closed = await env.deliver(press("ou_rc_a", "close_req", req="recReqF6"))
        assert closed.toast == "recReqF6：已关闭"
        assert await env.handle("recruiting", "req:recReqF6").result() == "closed"
        instance = env.standin.state.approval_instances[code]
        assert instance["status"] == "CANCELED"  # nobody is left a task to decide
        assert [t for t in tasks(env, code) if t[1] == "PENDING"] == []
        follower = env.client.get_workflow_handle(approval_workflow_id(env.org.id, code))
        assert (await follower.describe()).status.name == "CANCELED"
        assert rows(env, "tblRequisitions")["recReqF6"]["状态"] == "closed"


async def test_a_cancelled_requisition_workflow_withdraws_its_instance(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config()) as env:
        seed(env, applications=False)
        define(env)
        code = await open_requisition(env, "recReqF7", "hosp_a", 1, "ou_rc_a")
        handle = env.handle("recruiting", "req:recReqF7")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        assert is_cancelled_exception(ended.value.cause)
        assert (await handle.describe()).status.name == "CANCELED"
        assert env.standin.state.approval_instances[code]["status"] == "CANCELED"
        withdrawn = [c for c in env.standin.calls if c.path == "/open-apis/approval/v4/instances/cancel"]
        assert len(withdrawn) == 1


async def test_a_definition_feishu_does_not_know_blocks_the_requisition_with_the_reason(
        scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, config=feishu_config(approval_code="NO-SUCH-DEFINITION")) as env:
        seed(env, applications=False)
        add_row(env, "tblRequisitions", "recReqF8", {"医院": "hosp_a", "科室": "急诊科", "职位": "主治医师", "人数": 1})
        await env.deliver(record_event("tblRequisitions", "recReqF8"))
        st = await state(env, "req:recReqF8")
        assert st.status == "blocked" and "Feishu approval refused" in st.history[-1].detail
        assert "NO-SUCH-DEFINITION" in st.history[-1].detail  # Feishu's own words, for the history
        assert rows(env, "tblRequisitions")["recReqF8"]["状态"] == "blocked"
        assert not env.messages(to="ou_head_a")  # nobody was asked
        await env.deliver(press("ou_rc_a", "close_req", req="recReqF8"))
        assert await env.handle("recruiting", "req:recReqF8").result() == "closed"
