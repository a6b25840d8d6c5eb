"""Shared set-up of the documents tests: three hospitals, their people, builders of rounds and answers."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from engine.sdk import CardAction, MessageReceived
from engine.testing.events import card_press
from engine.testing.events import message as build_message
from engine.testing.kit import org_config
from plugins.documents.models import Round, RoundInput

HQ = "ou_doc_hq"  # 总部质控部
A_RESP, B_RESP, C_RESP = "ou_doc_a_zhang", "ou_doc_b_wang", "ou_doc_c_lee"
A_HEAD, B_HEAD, C_HEAD = "ou_doc_a_head", "ou_doc_b_head", "ou_doc_c_head"



def people(responsible: str, head: str) -> dict[str, Any]:
    return {"documents": {"responsible_open_ids": [responsible], "head_open_id": head}}


SITES: dict[str, Any] = {
    "hosp_a": {"name": "仁诺A院", "settings": people(A_RESP, A_HEAD)},
    "hosp_b": {"name": "仁诺B院", "settings": people(B_RESP, B_HEAD)},
    "hosp_c": {"name": "Rennuo C", "locale": "en_US", "settings": people(C_RESP, C_HEAD)},
}


def config(**extra: Any) -> dict[str, Any]:
    """The organization: headquarters hears of every round; three hospitals, C in English."""
    return org_config(plugins=["documents"], settings={"documents": {"hq_open_ids": [HQ]}}, sites=SITES, **extra)


def a_round(round_id: str, deadline: date, *, kind: str = "read", title: str = "院感防控新规") -> RoundInput:
    return RoundInput(round_id=round_id, kind=kind, title=title, body="请各院组织学习并确认。", deadline=deadline,  # type: ignore[arg-type]
                      link="https://example.feishu.cn/docx/rule")


async def send(env: Any, start: RoundInput) -> None:
    await env.start_workflow("documents.Round", start, id=env.workflow_id("documents", start.round_id))


def press(op: str, round_id: str, site: str, who: str, *, event_id: str | None = None,
          link: str | None = None) -> CardAction:
    form = {"link": link} if link is not None else None
    return card_press({"scenario": "documents", "op": op, "round": round_id, "site": site}, who, form=form,
                      event_id=event_id)


def file_message(name: str, sender: str, *, message_id: str, event_id: str | None = None,
                 at: datetime | None = None) -> MessageReceived:
    """A file sent to the bot in a direct chat, as Feishu's ``im.message.receive_v1`` carries it."""
    content = {"file_key": f"file_v3_{message_id}", "file_name": name}
    base = build_message("", sender=sender, chat_type="p2p", message_id=message_id, event_id=event_id,
                         create_time=at)
    # ``raw`` is the event body, as the ingress normalizes it
    raw = {"sender": {"sender_id": {"open_id": sender}}, "message": {
        "message_id": message_id, "message_type": "file", "content": json.dumps(content, ensure_ascii=False)}}
    return base.model_copy(update={"message_type": "file", "raw": raw})


def question(text: str, *, message_id: str, sender: str = HQ) -> MessageReceived:
    return build_message(text, sender=sender, chat_type="group", message_id=message_id)


async def state(env: Any, round_id: str) -> Round:
    return Round.model_validate(await env.query("documents", round_id))


def rows(env: Any) -> dict[str, dict[str, Any]]:
    """The answers table's rows by their key ("<round>/<site>")."""
    table = env.standin.state.table("bascnDocuments", "tblAnswers")["records"].values()
    return {r["fields"]["编号"]: r["fields"] for r in table}


def card_text(message: Any) -> str:
    return json.dumps(message.content, ensure_ascii=False)
