"""Routing of the handover scenario's events: card presses to updates, status questions to replies.

Pure functions of the event and the organization's config (no I/O), called by the hooks in
``__init__.py``.
"""

from __future__ import annotations

import re

from engine.sdk import (
    Action,
    CardAction,
    MessageReceived,
    OrgContext,
    UnknownContext,
    resolve_site_context,
    status_question,
    status_reply,
)
from engine.sdk import actions as act
from plugins.handover import rules
from plugins.handover.config import HandoverSettings
from plugins.handover.models import SCENARIO, CardInput

_SHIFT = r"(?::\d{4}-\d{2}-\d{2}T\d{2}:\d{2})?"  # a key may name the shift: icu:2026-11-23T20:00

# card button op -> workflow update
CARD_UPDATES = {
    "handover.entry": "entry",
    "handover.submit": "submit",
    "handover.ack_patient": "ack_patient",
    "handover.ack": "acknowledge",
    "handover.ask": "ask",
    "handover.answer": "answer",
}


def card_action(event: CardAction) -> list[Action] | None:
    op = event.action_value.get("op")
    update = CARD_UPDATES.get(op) if isinstance(op, str) else None
    key = event.action_value.get("key")
    if update is None or not isinstance(key, str) or not key:
        return None
    arg = CardInput(event_id=event.event_id, operator=event.operator_open_id, value=event.action_value,
                    form=event.form_value or {}, message_id=event.open_message_id)
    return [act.UpdateWorkflow(scenario=SCENARIO, key=key, update=update, arg=arg, update_id=event.event_id)]


def status(event: MessageReceived, org: OrgContext) -> list[Action] | None:
    """"@bot icu 状态" / "icu status" (or a shift's own key): the handover under way, in the asker's locale.

    The department's current shift is worked out from its site's shift changes, zone and clock (no I/O):
    the next change once its form is out, else the last one. The reply carries counts and statuses only
    (the ``state`` query has no patient content), so it may go to a group chat.
    """
    departments = dict(department_ids(org))
    if not departments:
        return None
    names = "|".join(re.escape(d) for d in sorted(departments, key=len, reverse=True))
    question = status_question(" ".join(event.text.split()), re.compile(f"(?:{names}){_SHIFT}"))
    if question is None or question.locale is None:
        return None
    department, _, shift = question.key.partition(":")
    try:
        context = resolve_site_context(org, SCENARIO, departments[department])
    except UnknownContext:
        return None
    settings = context.settings_as(HandoverSettings)
    if department not in settings.departments:
        settings = org.settings(SCENARIO)
    if not shift:
        now = context.clock.now(event.create_time)
        change = rules.current_change(now, settings.changes_of(department), settings.lead_minutes, context.zone)
        shift = rules.shift_key(change)
    name = settings.departments[department].name or department
    return [status_reply(event, scenario=SCENARIO, key=f"{department}:{shift}", template=f"{SCENARIO}:status",
                         missing_template=f"{SCENARIO}:status_missing", locale=question.locale,
                         context={"department": name, "shift": shift})]


def department_ids(org: OrgContext) -> list[tuple[str, str | None]]:
    """Every (department, site) an organization defines, group settings first, then each site's own."""
    found: dict[str, str | None] = {}
    for site in [None, *org.site_ids]:
        try:
            settings = org.settings(SCENARIO, site)
        except KeyError:
            continue
        for department_id, department in settings.departments.items():
            if department_id not in found or department.site == site:
                found[department_id] = department.site
    return list(found.items())
