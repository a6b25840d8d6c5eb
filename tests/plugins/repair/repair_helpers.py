"""Shared set-up of the repair tests: the example people, the teams and rota, event builders."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.sdk import CardAction, MessageReceived
from engine.testing.events import card_press
from engine.testing.events import message as build_message
from plugins.repair.models import Ticket

SEED = json.loads((Path(__file__).parents[3] / "examples" / "repair" / "sample.json").read_text("utf-8"))
REPORTER = "ou_rp_li"
IT_TECH, FAC_TECH, MED_TECH = "ou_rp_wang", "ou_rp_zhou", "ou_rp_sun"
IT_LEAD, IT_HEAD = "ou_rp_lead_it", "ou_rp_head_it"
FAC_LEAD, FAC_HEAD = "ou_rp_lead_fac", "ou_rp_head_fac"
B_TECH = "ou_rp_b_tech"


def team(tech: str, name: str, lead: str, head: str) -> dict[str, Any]:
    return {"rota": [{"open_id": tech, "name": name}], "lead_open_id": lead, "head_open_id": head}


SETTINGS: dict[str, Any] = {
    "teams": {
        "it": team(IT_TECH, "王工", IT_LEAD, IT_HEAD),
        "facilities": team(FAC_TECH, "周工", FAC_LEAD, FAC_HEAD),
        "medical": team(MED_TECH, "孙工", "ou_rp_lead_med", "ou_rp_head_med"),
    },
}


def report(text: str, *, message_id: str, event_id: str | None = None, chat_type: str = "group",
           sender: str = REPORTER, at: datetime | None = None) -> MessageReceived:
    """A message to the bot; ``at`` is when Feishu took it (pass the workflow clock's now)."""
    return build_message(text, sender=sender, chat_type=chat_type, message_id=message_id, event_id=event_id,
                         create_time=at)


def press(op: str, ticket: str, who: str, *, event_id: str | None = None, **value: Any) -> CardAction:
    form = {"comment": value.pop("comment")} if "comment" in value else None
    return card_press({"scenario": "repair", "op": op, "ticket": ticket, **value}, who, form=form,
                      event_id=event_id)


def replies_to(env: Any, message_id: str) -> list[Any]:
    return [m for m in env.messages() if m.reply_to == message_id]


def ticket_of(env: Any, message_id: str) -> str:
    """The ticket number the reply to ``message_id`` carries."""
    import re

    (reply,) = replies_to(env, message_id)
    found = re.search(r"BX-\d{6}-[0-9A-Z]{5}", reply.text)
    assert found, reply.text
    return found.group(0)


async def state(env: Any, ticket: str) -> Ticket:
    return Ticket.model_validate(await env.query("repair", ticket))


def rows(env: Any, table: str = "tblTickets") -> list[dict[str, Any]]:
    return [r["fields"] for r in env.standin.state.table("bascnRepair", table)["records"].values()]


@contextlib.asynccontextmanager
async def report_pages(scenario_harness: Callable[..., Any]) -> AsyncIterator[tuple[Any, str]]:
    """The repair plugin with the example people, its pages served over HTTP (the report page a label opens)
    and 李娜 logged in to Feishu; yields the harness and the pages' base URL."""
    import plugins.repair as repair
    from engine.runtime.server import free_port
    from engine.testing.kit import org_config

    port = free_port()
    document = org_config(plugins=["repair"], settings={"repair": SETTINGS})
    document["ingress"] = {"public_url": f"http://127.0.0.1:{port}"}
    async with scenario_harness({"repair": repair}, config=document) as env, env.serve_plugin_routes(port) as base:
        env.standin.state.merge_json(SEED)
        env.standin.oauth_default_user = REPORTER  # who is logged in to Feishu on this phone
        yield env, base
