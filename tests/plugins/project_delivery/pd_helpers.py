"""Shared helpers for project_delivery's tests: events, the seeded stand-in, and lookups."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.events import BitableRecordChanged, CardAction, Mention, MessageReceived

SEED = Path(__file__).resolve().parents[3] / "examples" / "project_delivery" / "staffing.json"
NORTH = {"pm": "ou_pm_north", "sales": "ou_sales_north", "se": "ou_se_north", "rm": "ou_rm_north"}


def mention(text: str, event_id: str, *, message_id: str | None = None, chat: str = "oc_sales",
            sender: str = "ou_sales_north", mentions: list[str] = ()) -> MessageReceived:
    """A group message that @-mentions the bot (and optionally users)."""
    people = [Mention(key=f"@_user_{i + 2}", open_id=o, name=o) for i, o in enumerate(mentions)]
    return MessageReceived(
        event_id=event_id, event_type="im.message.receive_v1", create_time=datetime.now(UTC),
        message_id=message_id or f"om_{event_id}", chat_id=chat, chat_type="group", text=text,
        sender_open_id=sender, mentions_bot=True,
        mentions=[Mention(key="@_user_1", open_id="ou_bot", name="bot", is_bot=True), *people])


def press(value: dict[str, Any], event_id: str, operator: str, form: dict[str, Any] | None = None,
          message_id: str = "") -> CardAction:
    return CardAction(event_id=event_id, event_type="card.action.trigger", create_time=datetime.now(UTC),
                      operator_open_id=operator, action_value={"scenario": "project_delivery", **value},
                      form_value=form, open_message_id=message_id)


def row_edited(record_id: str, event_id: str, operator: str) -> BitableRecordChanged:
    return BitableRecordChanged(event_id=event_id, event_type="drive.file.bitable_record_changed_v1",
                                create_time=datetime.now(UTC), app_token="bascnDelivery", table_id="tblProjects",
                                record_id=record_id, action="record_edited", operator_open_id=operator)


def seed(env: Any) -> None:
    env.standin.load(SEED)


def projects(env: Any) -> list[dict[str, Any]]:
    table = env.standin.state.table("bascnDelivery", "tblProjects") or {"records": {}}
    return [r["fields"] for r in table["records"].values()]


def chat(env: Any, chat_id: str) -> dict[str, Any]:
    return env.standin.state.chats[chat_id]


def created_chats(env: Any) -> list[dict[str, Any]]:
    return [c for c in env.standin.state.chats.values() if c.get("_created_by")]


def replies(env: Any) -> list[str]:
    return [m.text for m in env.messages() if m.reply_to]


async def state(env: Any, key: str) -> Any:
    """The project's (or registry's) ``state`` query as its model."""
    from plugins.project_delivery.models import ProjectState, RegistryState

    raw = await env.query("project_delivery", key)
    return (RegistryState if key == "registry" else ProjectState).model_validate(raw)
