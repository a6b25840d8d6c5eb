"""Approval API v4: create, get and cancel native approval instances, and decide their tasks.

Shapes follow Feishu's "创建审批实例" / "获取单个审批实例详情" / "撤回审批实例" pages (open.feishu.cn,
``/open-apis/approval/v4/instances``) and lark-oapi 1.7.5's ``approval.v4`` models.

A definition (seeded with :meth:`FeishuStandIn.add_approval_definition` or state JSON) is a chain of nodes,
each with default approvers; the create call may replace a node's approvers with
``node_approver_open_id_list`` (``[{"key": node_id or custom_node_id, "value": [open_id, ...]}]``); a node
marked ``"if_empty": "pass"`` may be left without approvers and is then passed. One
approver's decision settles a node (Feishu's "或签"). Nodes run in order: the last node approved approves
the instance; any rejection rejects it. Each task in ``task_list`` carries its ``start_time``/``end_time``
(epoch ms as strings, ``"0"`` while pending) and each decision its ``timeline`` entry (``PASS``,
``REJECT``, ``TRANSFER`` with the ``task_id``; a decision's ``comment`` too, also kept in ``comment_list``),
as Feishu's get call answers. A transfer hands the
task to someone else and leaves the instance ``PENDING``. Every change of the instance's status emits a
v1 ``approval_instance`` event (see :func:`decide`), which the stand-in pushes to its ``event_url`` when
the app subscribed to the definition (``POST /open-apis/approval/v4/approvals/{approval_code}/subscribe``,
as Feishu requires; the stand-in accepts a repeated subscription).

Error codes: Feishu's approval API answers in the 1390xxx range; the stand-in uses 1390001 for a bad
parameter, 1390002 for an unknown approval code and 1390003 for an unknown instance.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Ctx, Endpoint, Reply, fail, ok
from .state import new_id, now_ms

INVALID_PARAM = 1390001
APPROVAL_NOT_FOUND = 1390002
INSTANCE_NOT_FOUND = 1390003
NOT_PENDING = 1390004  # the instance was already decided or withdrawn

TERMINAL = frozenset({"APPROVED", "REJECTED", "CANCELED", "DELETED"})
ACTIONS = ("approve", "reject", "transfer", "cancel", "delete")


class ApprovalError(ValueError):
    """A decision the instance's state does not allow (the admin route answers it with a 400)."""


def _user(ctx_state: Any, value: str, id_type: str = "open_id") -> dict[str, str]:
    user = ctx_state.find_user(value, id_type) if value else None
    if user is None:
        return {"open_id": value if id_type == "open_id" else "", "user_id": value if id_type == "user_id" else ""}
    return {"open_id": user["open_id"], "user_id": user["user_id"]}


def _enter(state: Any, instance: dict[str, Any], index: int) -> bool:
    """Move the instance to the first node from ``index`` that has approvers (a node left without any
    passes: "审批人为空时：自动通过"); False when none is left (the instance is approved)."""
    nodes = instance["_nodes"]
    while index < len(nodes) and not nodes[index]["approvers"]:
        index += 1
    if index >= len(nodes):
        return False
    instance["_node"] = index
    _tasks_for(state, instance, index)
    return True


def _tasks_for(state: Any, instance: dict[str, Any], index: int) -> None:
    node = instance["_nodes"][index]
    for open_id in node["approvers"]:
        ids = _user(state, open_id)
        instance["task_list"].append({
            "id": new_id("", 16, "0123456789"), "user_id": ids["user_id"], "open_id": ids["open_id"],
            "status": "PENDING", "node_id": node["node_id"], "node_name": node.get("name", ""),
            "custom_node_id": node.get("custom_node_id", ""), "type": "OR",
            "start_time": str(now_ms()), "end_time": "0"})


def _event(instance: dict[str, Any]) -> dict[str, Any]:
    return {"approval_code": instance["approval_code"], "instance_code": instance["instance_code"],
            "status": instance["status"], "operate_time": str(now_ms())}


def create_instance(state: Any, body: dict[str, Any]) -> tuple[dict[str, Any], bool] | Reply:
    """``(instance, created)`` for a create call's body (the earlier one for a repeated ``uuid``: Feishu's
    idempotency), or the error answer."""
    code = str(body.get("approval_code") or "")
    definition = state.approvals.get(code)
    if definition is None:
        return fail(400, APPROVAL_NOT_FOUND, f"approval code not found: {code!r}")
    uuid = str(body.get("uuid") or "")
    if uuid:
        for existing in state.approval_instances.values():
            if existing.get("uuid") == uuid and existing["approval_code"] == code:
                return existing, False
    applicant = str(body.get("user_id") or "") or str(body.get("open_id") or "")
    if not applicant:
        return fail(400, INVALID_PARAM, "user_id or open_id is required")
    form = body.get("form")
    try:
        decoded = json.loads(form) if isinstance(form, str) else None
    except ValueError:
        decoded = None
    if not isinstance(decoded, list):
        return fail(400, INVALID_PARAM, "form must be a JSON string of a list of widget values")
    nodes = [dict(node) for node in definition["nodes"]]
    overrides = body.get("node_approver_open_id_list") or []
    for item in overrides:
        key, value = item.get("key"), item.get("value")
        node = next((n for n in nodes if key in (n["node_id"], n.get("custom_node_id"))), None)
        if node is None:
            return fail(400, INVALID_PARAM, f"node_approver_open_id_list: no node {key!r} in {code}")
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return fail(400, INVALID_PARAM, f"node_approver_open_id_list[{key}]: a list of open_ids")
        node["approvers"] = list(value)
    for node in nodes:
        if not node.get("approvers") and node.get("if_empty") != "pass":
            return fail(400, INVALID_PARAM, f"node {node.get('custom_node_id') or node['node_id']} needs approvers")
    who = _user(state, applicant, "user_id" if body.get("user_id") else "open_id")
    now = str(now_ms())
    instance = {
        "instance_code": new_id("", 8).upper() + "-" + new_id("", 24).upper(),
        "approval_code": code, "approval_name": definition.get("approval_name", code),
        "start_time": now, "end_time": "0", "user_id": who["user_id"], "open_id": who["open_id"],
        "serial_number": f"{len(state.approval_instances) + 1:012d}", "department_id": "",
        "status": "PENDING", "uuid": uuid, "form": form, "task_list": [], "comment_list": [],
        "timeline": [{"type": "START", "create_time": now, "user_id": who["user_id"], "open_id": who["open_id"]}],
        "_nodes": nodes, "_node": 0,
    }
    if not _enter(state, instance, 0):
        return fail(400, INVALID_PARAM, f"{code}: every node was left without approvers")
    state.approval_instances[instance["instance_code"]] = instance
    return instance, True


def decide(state: Any, instance_code: str, action: str, *, open_id: str = "", to: str = "",
           comment: str = "") -> dict[str, Any]:
    """Apply an approver's (or the applicant's) action; returns the ``approval_instance`` event body when
    the instance's status changed, else ``{}`` (a transfer, or an approval that moves to the next node).

    ``approve``/``reject``/``transfer`` act on ``open_id``'s pending task (any pending task when not given);
    ``transfer`` needs ``to``; ``cancel`` is the applicant withdrawing; ``delete`` removes it.
    """
    instance = state.approval_instances.get(instance_code)
    if instance is None:
        raise ApprovalError(f"no approval instance {instance_code!r}")
    if action not in ACTIONS:
        raise ApprovalError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if instance["status"] != "PENDING" and action != "delete":
        raise ApprovalError(f"instance {instance_code} is {instance['status']}, not PENDING")
    now = str(now_ms())
    before = instance["status"]
    if action in ("cancel", "delete"):
        instance["status"] = "CANCELED" if action == "cancel" else "DELETED"
        for task in instance["task_list"]:
            if task["status"] == "PENDING":
                task["status"], task["end_time"] = "DONE", now
        instance["timeline"].append({"type": "CANCEL" if action == "cancel" else "DELETE", "create_time": now,
                                     "open_id": instance["open_id"], "user_id": instance["user_id"]})
    else:
        pending = [t for t in instance["task_list"] if t["status"] == "PENDING"]
        task = next((t for t in pending if not open_id or t["open_id"] == open_id), None)
        if task is None:
            raise ApprovalError(f"{open_id or 'nobody'} has no pending task in {instance_code}")
        task["end_time"] = now
        if comment:
            instance["comment_list"].append({"id": new_id("", 16, "0123456789"), "open_id": task["open_id"],
                                             "user_id": task["user_id"], "comment": comment, "create_time": now})
        if action == "transfer":
            if not to:
                raise ApprovalError("transfer needs `to` (an open_id)")
            task["status"] = "TRANSFERRED"
            ids = _user(state, to)
            instance["task_list"].append({**task, "id": new_id("", 16, "0123456789"), "status": "PENDING",
                                          "open_id": ids["open_id"], "user_id": ids["user_id"],
                                          "start_time": now, "end_time": "0"})
            instance["timeline"].append({"type": "TRANSFER", "create_time": now, "open_id": task["open_id"],
                                         "user_id": task["user_id"], "open_id_list": [ids["open_id"]],
                                         "task_id": task["id"]})
        elif action == "reject":
            task["status"] = "REJECTED"
            instance["status"] = "REJECTED"
            for other in pending:
                if other is not task:
                    other["status"], other["end_time"] = "DONE", now
            instance["timeline"].append({"type": "REJECT", "create_time": now, "open_id": task["open_id"],
                                         "user_id": task["user_id"], "task_id": task["id"], "comment": comment})
        else:
            task["status"] = "APPROVED"
            for other in pending:  # "或签": one approval settles the node
                if other is not task:
                    other["status"], other["end_time"] = "DONE", now
            instance["timeline"].append({"type": "PASS", "create_time": now, "open_id": task["open_id"],
                                         "user_id": task["user_id"], "task_id": task["id"], "comment": comment})
            if not _enter(state, instance, instance["_node"] + 1):
                instance["status"] = "APPROVED"
    if instance["status"] == before:
        return {}
    instance["end_time"] = now
    return _event(instance)


def pending_for(state: Any, open_id: str, action: str, approval_code: str = "") -> str:
    """The newest pending instance ``open_id`` may act on with ``action``: one with a pending task of theirs,
    or, to ``cancel``, one they applied for (of ``approval_code`` when given). Raises :class:`ApprovalError`
    when there is none."""
    if not open_id:
        raise ApprovalError("without an instance_code, open_id names whose pending approval to act on")
    found = [i for i in state.approval_instances.values() if i["status"] == "PENDING"
             and approval_code in ("", i["approval_code"])
             and (i["open_id"] == open_id if action == "cancel"
                  else any(t["open_id"] == open_id and t["status"] == "PENDING" for t in i["task_list"]))]
    if not found:
        raise ApprovalError(f"no pending approval {'of' if action == 'cancel' else 'waits for'} {open_id}")
    return str(max(found, key=lambda i: int(i["start_time"]))["instance_code"])


def public_instance(instance: dict[str, Any]) -> dict[str, Any]:
    """The instance as Feishu's get call answers it (ids as numbers where lark's model wants ints)."""
    out = {k: v for k, v in instance.items() if not k.startswith("_")}
    out["start_time"], out["end_time"] = int(instance["start_time"]), int(instance["end_time"])
    return out


async def create(ctx: Ctx) -> Reply:
    made = create_instance(ctx.state, ctx.json)
    if isinstance(made, Reply):
        return made
    instance, created = made
    if created:  # Feishu announces a new instance as PENDING
        ctx.standin.approval_changed(_event(instance))
    return ok({"instance_code": instance["instance_code"]})


async def get(ctx: Ctx) -> Reply:
    instance = ctx.state.approval_instances.get(ctx.params["instance_id"])
    if instance is None:
        return fail(400, INSTANCE_NOT_FOUND, f"instance not found: {ctx.params['instance_id']!r}")
    return ok(public_instance(instance))


async def cancel(ctx: Ctx) -> Reply:
    body = ctx.json
    instance = ctx.state.approval_instances.get(str(body.get("instance_code") or ""))
    if instance is None or instance["approval_code"] != body.get("approval_code"):
        return fail(400, INSTANCE_NOT_FOUND, "instance not found for this approval code")
    id_type = ctx.query.get("user_id_type", "open_id")
    if str(body.get("user_id") or "") != instance["user_id" if id_type == "user_id" else "open_id"]:
        return fail(400, INVALID_PARAM, "only the applicant may withdraw an instance")
    try:
        event = decide(ctx.state, instance["instance_code"], "cancel")
    except ApprovalError as error:
        return fail(400, NOT_PENDING, str(error))
    ctx.standin.approval_changed(event)
    return ok({})


async def subscribe(ctx: Ctx) -> Reply:
    assert ctx.app is not None
    code = ctx.params["approval_code"]
    if code not in ctx.state.approvals:
        return fail(400, APPROVAL_NOT_FOUND, f"approval code not found: {code!r}")
    ctx.state.approval_subscriptions.setdefault(ctx.app.app_id, [])
    if code not in ctx.state.approval_subscriptions[ctx.app.app_id]:
        ctx.state.approval_subscriptions[ctx.app.app_id].append(code)
    return ok({})


_I = "/open-apis/approval/v4/instances"
ENDPOINTS = [
    Endpoint("POST", _I, create, api="approval.v4.instance.create"),
    Endpoint("POST", _I + "/cancel", cancel, api="approval.v4.instance.cancel"),
    Endpoint("GET", _I + "/{instance_id}", get, api="approval.v4.instance.get"),
    Endpoint("POST", "/open-apis/approval/v4/approvals/{approval_code}/subscribe", subscribe,
             api="approval.v4.approval.subscribe"),
]
