"""Shared helpers for project_delivery's tests: events, the seeded stand-in, and lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import BitableRecordChanged, CardAction, MessageReceived
from engine.testing import events

SEED = Path(__file__).resolve().parents[3] / "examples" / "project_delivery" / "staffing.json"
NORTH = {"pm": "ou_pm_north", "sales": "ou_sales_north", "se": "ou_se_north", "rm": "ou_rm_north"}


def mention(text: str, event_id: str, *, message_id: str | None = None, chat: str = "oc_sales",
            sender: str = "ou_sales_north", mentions: list[str] = ()) -> MessageReceived:
    """A group message that @-mentions the bot (and optionally users)."""
    return events.message(text, sender=sender, chat_id=chat, chat_type="group", mentions=mentions,
                          message_id=message_id or f"om_{event_id}", event_id=event_id)


def press(value: dict[str, Any], event_id: str, operator: str, form: dict[str, Any] | None = None,
          message_id: str = "") -> CardAction:
    return events.card_press({"scenario": "project_delivery", **value}, operator, form=form, message_id=message_id,
                             event_id=event_id)


def row_edited(record_id: str, event_id: str, operator: str) -> BitableRecordChanged:
    return events.record_changed("bascnDelivery", "tblProjects", record_id, operator=operator, event_id=event_id)


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
