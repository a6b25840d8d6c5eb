"""Shared helpers of the device_calibration tests: a seeded device table, people and typed events."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from engine.events import BitableRecordChanged, CardAction, MessageReceived

SHANGHAI = ZoneInfo("Asia/Shanghai")
APP, TABLE, LOG = "bascnDeviceLedger", "tblDevices", "tblCalibrationLog"
CUSTODIAN, MANAGER, HEAD, STRANGER = "ou_custodian", "ou_manager", "ou_head", "ou_stranger"
# 2027 holidays are not in chinese_calendar 1.11 yet: the organization lists New Year's Day itself.
ORG_EXTRA = {"holidays": ["2027-01-01"]}
SETTINGS: dict[str, Any] = {"default_managers": [MANAGER]}

_ids = itertools.count(1)


def ms(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=SHANGHAI).timestamp() * 1000)


def local(moment: datetime) -> datetime:
    return moment.astimezone(SHANGHAI)


def at_local(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=SHANGHAI)


def device_row(device_id: str, *, last: date | None, interval: int = 12, status: str = "合格",
               department: str = "放射科", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "设备编号": device_id, "设备名称": f"{device_id} 设备", "型号": "M-1", "使用科室": department,
        "存放位置": "2 楼", "保管人": [{"id": CUSTODIAN, "name": "张伟"}],
        "设备管理员": [{"id": MANAGER, "name": "李娜"}], "科室负责人": [{"id": HEAD, "name": "王主任"}],
        "校准周期(月)": interval, "状态": status,
    }
    if last is not None:
        fields["上次校准日期"] = ms(last)
    fields.update(extra)
    return fields


def seed(standin: Any, rows: dict[str, dict[str, Any]]) -> None:
    """Put ``{record_id: fields}`` into the stand-in's device table, and the people into its directory."""
    standin.state.merge_json({
        "users": [{"open_id": CUSTODIAN, "name": "张伟"}, {"open_id": MANAGER, "name": "李娜"},
                  {"open_id": HEAD, "name": "王主任"}, {"open_id": STRANGER, "name": "路人"}],
        "bitable": {APP: {TABLE: {"records": [{"record_id": rid, "fields": f} for rid, f in rows.items()]}}},
    })


def row(standin: Any, record_id: str) -> dict[str, Any]:
    return standin.state.table(APP, TABLE)["records"][record_id]["fields"]  # type: ignore[no-any-return]


def log_rows(standin: Any) -> list[dict[str, Any]]:
    table = standin.state.table(APP, LOG)
    return [r["fields"] for r in table["records"].values()] if table else []


def record_event(record_id: str, device_id: str | None, action: str = "record_added",
                 operator: str = MANAGER) -> BitableRecordChanged:
    after = {"设备编号": device_id} if device_id and action != "record_deleted" else {}
    before = {"设备编号": device_id} if device_id and action == "record_deleted" else {}
    return BitableRecordChanged(event_id=f"ev-rec-{next(_ids)}", event_type="drive.file.bitable_record_changed_v1",
                                create_time=datetime.now(UTC), app_token=APP, table_id=TABLE, record_id=record_id,
                                action=action, after=after, before=before, operator_open_id=operator)


def card(value: dict[str, Any], operator: str, form: dict[str, Any] | None = None) -> CardAction:
    return CardAction(event_id=f"ev-card-{next(_ids)}", event_type="card.action.trigger", create_time=datetime.now(UTC),
                      operator_open_id=operator, action_tag="button", action_value=value, form_value=form,
                      open_message_id="om_card")


def button(message: Any, op: str) -> dict[str, Any]:
    """The callback value of the button (or form submit) ``op`` on a sent card."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for behavior in node.get("behaviors", []) or []:
                if behavior.get("value", {}).get("op") == op:
                    found.append(behavior["value"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(message.card)
    assert found, f"no {op!r} button on the card"
    return found[0]


def mention(text: str, sender: str = CUSTODIAN) -> MessageReceived:
    n = next(_ids)
    return MessageReceived(event_id=f"ev-msg-{n}", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id=f"om_user_{n}", chat_id="oc_chat", chat_type="group", text=text,
                           sender_open_id=sender, mentions_bot=True)


def history(state: Any, action: str | None = None) -> list[Any]:
    entries = state.history if hasattr(state, "history") else state["history"]
    return [e for e in entries if action is None or (e.action if hasattr(e, "action") else e["action"]) == action]
