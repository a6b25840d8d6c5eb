"""The stand-in's Approval API v4 over real HTTP, through the engine's Feishu client (lark-oapi).

Create (with a node's approvers replaced and a uuid for idempotency), get, withdraw, the approver's
decisions through the admin route, and the v1 ``approval_instance`` events each status change emits,
shaped as the engine's normalizer reads them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.events import ApprovalStatusChanged
from engine.feishu.client import FeishuClient
from engine.feishu.errors import FeishuError
from engine.feishu.normalize import normalize
from engine.feishu.standin import FeishuStandIn

CODE = "7C468A54-8745-2245-9675-08B7C63E7A85"
FORM = [{"id": "reason", "type": "textarea", "value": "new ultrasound probe"}]


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}")
    s.add_user("ou_applicant", name="申请人")
    s.add_approval_definition(CODE, "采购审批", nodes=[
        {"custom_node_id": "dept_head", "approvers": ["ou_head"]},
        {"custom_node_id": "finance", "approvers": ["ou_finance"]},
    ])
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def client(standin: FeishuStandIn) -> AsyncIterator[FeishuClient]:
    async with FeishuClient(standin.base_url, standin.app_id, standin.app_secret) as c:
        yield c


async def test_create_get_and_approve_through_the_chain(standin: FeishuStandIn, client: FeishuClient) -> None:
    code = await client.create_approval(CODE, "ou_applicant", FORM, {"dept_head": ["ou_site_head"]}, uuid="u-1")
    again = await client.create_approval(CODE, "ou_applicant", FORM, {"dept_head": ["ou_site_head"]}, uuid="u-1")
    assert again == code  # the same uuid: the same instance, no second one
    assert len(standin.state.approval_instances) == 1

    instance = await client.get_approval(code)
    assert (instance.status, instance.applicant_open_id, instance.uuid) == ("PENDING", "ou_applicant", "u-1")
    assert [(t.open_id, t.status, t.custom_node_id) for t in instance.tasks] == [
        ("ou_site_head", "PENDING", "dept_head")]  # the override replaced the definition's approver
    created = standin.approval_payloads[-1]
    assert (created["event"]["status"], created["event"]["instance_code"]) == ("PENDING", code)

    assert standin.decide_approval(code, "approve", open_id="ou_site_head") is None  # on to finance
    instance = await client.get_approval(code)
    assert instance.status == "PENDING"
    assert [(t.open_id, t.status) for t in instance.tasks] == [("ou_site_head", "APPROVED"),
                                                               ("ou_finance", "PENDING")]
    payload = standin.decide_approval(code, "approve", open_id="ou_finance")
    assert payload is not None
    event = normalize(payload, bot_open_id=None)
    assert isinstance(event, ApprovalStatusChanged)
    assert (event.instance_code, event.status, event.approval_code) == (code, "APPROVED", CODE)
    assert event.event_id == payload["uuid"]
    instance = await client.get_approval(code)
    assert instance.status == "APPROVED" and instance.end_time >= instance.start_time > 0


async def test_transfer_keeps_it_pending_and_reject_ends_it(standin: FeishuStandIn, client: FeishuClient) -> None:
    code = await client.create_approval(CODE, "ou_applicant", FORM)
    assert standin.decide_approval(code, "transfer", open_id="ou_head", to="ou_deputy") is None
    instance = await client.get_approval(code)
    assert instance.status == "PENDING"
    assert [(t.open_id, t.status) for t in instance.tasks] == [("ou_head", "TRANSFERRED"), ("ou_deputy", "PENDING")]
    with pytest.raises(ValueError, match="no pending task"):
        standin.decide_approval(code, "approve", open_id="ou_head")  # it is not theirs any more
    payload = standin.decide_approval(code, "reject", open_id="ou_deputy", comment="over budget")
    assert payload is not None and payload["event"]["status"] == "REJECTED"
    assert (await client.get_approval(code)).status == "REJECTED"


async def test_the_applicant_withdraws_and_errors_are_feishu_shaped(standin: FeishuStandIn,
                                                                    client: FeishuClient) -> None:
    code = await client.create_approval(CODE, "ou_applicant", FORM)
    with pytest.raises(FeishuError) as refused:
        await client.cancel_approval(CODE, code, "ou_someone_else")
    assert refused.value.code == 1390001 and not refused.value.retryable
    await client.cancel_approval(CODE, code, "ou_applicant")
    assert (await client.get_approval(code)).status == "CANCELED"
    assert standin.approval_payloads[-1]["event"]["status"] == "CANCELED"
    with pytest.raises(FeishuError) as again:
        await client.cancel_approval(CODE, code, "ou_applicant")
    assert again.value.code == 1390004

    with pytest.raises(FeishuError) as unknown:
        await client.create_approval("NO-SUCH-CODE", "ou_applicant", FORM)
    assert unknown.value.code == 1390002
    with pytest.raises(FeishuError) as bad_node:
        await client.create_approval(CODE, "ou_applicant", FORM, {"no_such_node": ["ou_x"]})
    assert bad_node.value.code == 1390001
    with pytest.raises(FeishuError) as missing:
        await client.get_approval("NO-SUCH-INSTANCE")
    assert missing.value.code == 1390003


async def test_admin_route_decides_and_reports(standin: FeishuStandIn, client: FeishuClient) -> None:
    code = await client.create_approval(CODE, "ou_applicant", FORM)
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        first = await http.post("/_standin/approval/decide", json={"instance_code": code, "action": "approve"})
        assert first.json() == {"instance_code": code, "status": "PENDING", "event": None}
        second = await http.post("/_standin/approval/decide",
                                 json={"instance_code": code, "action": "reject", "open_id": "ou_finance"})
        assert second.json()["status"] == "REJECTED"
        assert second.json()["event"]["event"]["status"] == "REJECTED"
        late = await http.post("/_standin/approval/decide", json={"instance_code": code, "action": "approve"})
        assert late.status_code == 400 and "REJECTED" in late.json()["error"]
        added = await http.post("/_standin/approval/definitions", json={"approval_code": "LEAVE", "nodes": [
            {"custom_node_id": "manager", "approvers": ["ou_m"]}]})
        assert added.status_code == 200
    assert "LEAVE" in standin.state.approvals
    saved = json.loads(json.dumps(standin.state.to_json()))
    restored = FeishuStandIn(app_id="cli_restore")
    restored.state.merge_json(saved)
    assert restored.state.approval_instances[code]["status"] == "REJECTED"
    assert set(restored.state.approvals) == {CODE, "LEAVE"}


async def test_the_admin_route_finds_the_approvers_pending_instance(standin: FeishuStandIn,
                                                                     client: FeishuClient) -> None:
    older = await client.create_approval(CODE, "ou_applicant", FORM)
    newer = await client.create_approval(CODE, "ou_applicant", FORM)
    standin.state.approval_instances[newer]["start_time"] = str(int(standin.state.approval_instances[older]
                                                                    ["start_time"]) + 1)
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        head = await http.post("/_standin/approval/decide", json={"action": "approve", "open_id": "ou_head"})
        assert head.json()["instance_code"] == newer  # the newest one waiting for ou_head
        finance = await http.post("/_standin/approval/decide", json={"action": "reject", "open_id": "ou_finance"})
        assert (finance.json()["instance_code"], finance.json()["status"]) == (newer, "REJECTED")
        withdrawn = await http.post("/_standin/approval/decide", json={"action": "cancel", "open_id": "ou_applicant"})
        assert (withdrawn.json()["instance_code"], withdrawn.json()["status"]) == (older, "CANCELED")
        nobody = await http.post("/_standin/approval/decide", json={"action": "approve", "open_id": "ou_head"})
        assert nobody.status_code == 400 and "no pending approval waits for ou_head" in nobody.json()["error"]


async def test_a_node_left_without_approvers_passes_and_events_name_the_definitions_tenant(
        standin: FeishuStandIn, client: FeishuClient) -> None:
    standin.add_approval_definition("REQ", "招聘需求审批", tenant_key="t_rennuo", nodes=[
        {"custom_node_id": "head", "approvers": []},
        {"custom_node_id": "group", "approvers": [], "if_empty": "pass"}])
    small = await client.create_approval("REQ", "ou_applicant", FORM, {"head": ["ou_head"]})
    big = await client.create_approval("REQ", "ou_applicant", FORM, {"head": ["ou_head"], "group": ["ou_group"]})
    assert standin.approval_payloads[-1]["event"]["tenant_key"] == "t_rennuo"  # not the app's own tenant
    approved = standin.decide_approval(small, "approve", open_id="ou_head")
    assert approved is not None and approved["event"]["status"] == "APPROVED"  # the empty group node passed
    assert standin.decide_approval(big, "approve", open_id="ou_head") is None  # on to the group's approver
    assert standin.state.approval_instances[big]["task_list"][-1]["open_id"] == "ou_group"
    with pytest.raises(FeishuError):  # a node that must have approvers still refuses to be left empty
        await client.create_approval("REQ", "ou_applicant", FORM, {"group": ["ou_group"]})


async def test_events_are_pushed_only_for_subscribed_definitions(standin: FeishuStandIn,
                                                                  client: FeishuClient) -> None:
    received: list[dict] = []

    async def sink(scope: dict, receive: Any, send: Any) -> None:  # a bare ASGI receiver of the pushes
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    from engine.feishu.standin.runner import ServerRunner

    runner = ServerRunner(sink)
    await runner.start("127.0.0.1", 0)
    try:
        standin.event_url = f"http://127.0.0.1:{runner.port}/feishu/events"
        quiet = await client.create_approval(CODE, "ou_applicant", FORM)  # not subscribed yet
        await client.subscribe_approval(CODE)
        await client.subscribe_approval(CODE)  # a repeat is harmless
        loud = await client.create_approval(CODE, "ou_applicant", FORM)
        standin.decide_approval(loud, "reject", open_id="ou_head")
        for _ in range(200):
            if len(received) >= 3:
                break
            await asyncio.sleep(0.01)
        # the instance's events, and the rejecting approver's task event (pushed in the background: any order)
        assert sorted((r["event"]["type"], r["event"]["instance_code"], r["event"]["status"]) for r in received) == [
            ("approval_instance", loud, "PENDING"), ("approval_instance", loud, "REJECTED"),
            ("approval_task", loud, "REJECTED")]
        assert quiet not in {r["event"]["instance_code"] for r in received}
        with pytest.raises(FeishuError) as unknown:
            await client.subscribe_approval("NO-SUCH-CODE")
        assert unknown.value.code == 1390002
    finally:
        await runner.stop()


async def test_the_subscribe_command(standin: FeishuStandIn, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    config = tmp_path / "engine.toml"
    config.write_text('[organizations.acme]\ntenant_key = "t_standin"\n', encoding="utf-8")
    for name, value in (("FEISHU_APP_ID", standin.app_id), ("FEISHU_APP_SECRET", standin.app_secret),
                        ("FEISHU_BASE_URL", standin.base_url)):
        monkeypatch.setenv(name, value)
    done = await asyncio.to_thread(CliRunner().invoke, cli, ["--config", str(config), "approvals", "subscribe", CODE])
    assert done.exit_code == 0, done.output
    assert f"{CODE}: subscribed" in done.output
    assert standin.state.approval_subscriptions[standin.app_id] == [CODE]
    refused = await asyncio.to_thread(CliRunner().invoke, cli, [
        "--config", str(config), "approvals", "subscribe", "NO-SUCH-CODE"])
    assert refused.exit_code == 2 and "NO-SUCH-CODE: refused" in refused.output
