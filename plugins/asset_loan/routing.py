"""Events to actions: card presses become updates on the asset's workflow, messages become queries or starts.

Pure and fast (Feishu waits for the answer): nothing here does I/O.
"""

from __future__ import annotations

import re
from typing import Any

from engine.sdk import Action, FeishuEvent, OrgContext

from . import SCENARIO

_ASK_CARD = re.compile(r"^(?:资产|物资|asset)\s*[:：]?\s*(\S+)$", re.IGNORECASE)
_CARD_OPS = {"borrow", "return", "extend", "remind_now", "approve", "reject", "mark_lost", "mark_damaged"}


def _start(asset_id: str) -> Any:
    from engine.sdk import actions as act

    from .models import LoanInput

    # a no-op when the asset's workflow already runs; the first action on a new asset starts it
    return act.StartWorkflow(scenario=SCENARIO, key=asset_id, workflow="asset_loan.Loan",
                             args=[LoanInput(asset_id=asset_id)])


def _card_action(event: Any) -> list[Any] | None:
    from engine.sdk import actions as act

    from .models import ActorRequest, BorrowRequest, ExtendRequest, MarkRequest

    value = event.action_value or {}
    op, asset_id = value.get("op"), str(value.get("asset") or "")
    if value.get("scenario") != SCENARIO or op not in _CARD_OPS or not asset_id:
        return None
    actor, event_id = event.operator_open_id, event.event_id
    form = event.form_value or {}
    arg: Any
    if op == "borrow":
        from datetime import date

        due = None
        with_due = str(form.get("due") or value.get("due") or "")[:10]
        if with_due:
            try:
                due = date.fromisoformat(with_due)
            except ValueError:
                due = None
        update, arg = "borrow", BorrowRequest(borrower_open_id=actor, due=due, event_id=event_id, via="card")
    elif op == "extend":
        update, arg = "extend", ExtendRequest(actor_open_id=actor, event_id=event_id, via="card")
    elif op in ("mark_lost", "mark_damaged"):
        update, arg = "mark", MarkRequest(actor_open_id=actor, event_id=event_id, via="card",
                                          condition="lost" if op == "mark_lost" else "damaged",
                                          note=str(form.get("note") or ""))
    else:
        update = "return_asset" if op == "return" else op
        arg = ActorRequest(actor_open_id=actor, event_id=event_id, via="card")
    return [_start(asset_id),
            act.UpdateWorkflow(scenario=SCENARIO, key=asset_id, update=update, arg=arg, update_id=event_id)]


def route(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    """The actions for one event: card presses, \"my loans\", status questions, \"asset X\" card requests."""
    from engine.sdk import (
        CardAction,
        MessageReceived,
        message_key,
        question_locale,
        status_question,
        status_reply,
    )
    from engine.sdk import actions as act

    if isinstance(event, CardAction):
        return _card_action(event)
    if not isinstance(event, MessageReceived) or not (event.chat_type == "p2p" or event.mentions_bot):
        return None
    text = " ".join(event.text.split())
    settings = org.settings(SCENARIO)
    if text.lower() in {phrase.lower() for phrase in settings.my_loans_phrases}:
        from .models import MyLoansInput

        # one workflow per message: the same message pushed again under a new event id is answered once
        return [act.StartWorkflow(scenario=SCENARIO, key=message_key("my_loans", event), workflow="asset_loan.MyLoans",
                                  args=[MyLoansInput(org=org.id, open_id=event.sender_open_id,
                                                     message_id=event.message_id, locale=question_locale(text))],
                                  once=True)]
    question = status_question(text, settings.asset_id_pattern)
    if question is not None and question.locale is not None:
        return [status_reply(event, scenario=SCENARIO, key=question.key, template=f"{SCENARIO}:status",
                             missing_template=f"{SCENARIO}:unknown_asset", locale=question.locale,
                             context={"now": event.create_time.isoformat()})]
    match = _ASK_CARD.match(text)
    if match:
        from .models import CardRequest, LoanInput

        asset_id = match.group(1)
        return [act.SignalWithStart(scenario=SCENARIO, key=asset_id, workflow="asset_loan.Loan", signal="send_card",
                                    arg=CardRequest(open_id=event.sender_open_id, event_id=event.event_id),
                                    start_args=[LoanInput(asset_id=asset_id)])]
    return None


