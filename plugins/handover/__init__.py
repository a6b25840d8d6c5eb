"""Structured doctors' shift handovers (I-PASS or SBAR): written, received, acknowledged and counted.

Only the hook implementations live here; everything heavy is imported inside the hooks, because the
workflow sandbox re-imports this package for every workflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.hookspecs import hookimpl

SCENARIO = "handover"
VERSION = "1.0"

# card button op -> workflow update
CARD_UPDATES = {
    "handover.entry": "entry",
    "handover.submit": "submit",
    "handover.ack_patient": "ack_patient",
    "handover.ack": "acknowledge",
    "handover.ask": "ask",
    "handover.answer": "answer",
}


@hookimpl
def register_scenarios(register: Any) -> None:
    from engine.scenario import Scenario
    from plugins.handover.activities import collect_stats, plan_shift, start_shift
    from plugins.handover.config import SITE_OVERRIDABLE, HandoverSettings
    from plugins.handover.workflows import MonthlyStats, RotaDriver, Shift

    register(Scenario(
        name=SCENARIO, version=VERSION, settings_model=HandoverSettings,
        workflows=[Shift, RotaDriver, MonthlyStats], activities=[plan_shift, start_shift, collect_stats],
        templates=Path(__file__).parent / "templates", site_overridable=SITE_OVERRIDABLE,
        description="Doctors' shift handovers (I-PASS/SBAR): form, receipt, confirmation, escalation, statistics",
    ))


@hookimpl
def route_event(event: Any, org: Any) -> list[Any] | None:
    from engine import actions
    from engine.events import CardAction

    if not isinstance(event, CardAction):
        return None
    op = event.action_value.get("op")
    update = CARD_UPDATES.get(op) if isinstance(op, str) else None
    key = event.action_value.get("key")
    if update is None or not isinstance(key, str) or not key:
        return None
    from plugins.handover.models import CardInput

    arg = CardInput(event_id=event.event_id, operator=event.operator_open_id, value=event.action_value,
                    form=event.form_value or {}, message_id=event.open_message_id)
    return [actions.UpdateWorkflow(scenario=SCENARIO, key=key, update=update, arg=arg, update_id=event.event_id)]


def department_ids(org: Any) -> list[tuple[str, str | None]]:
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


@hookimpl
def schedules(org: Any) -> list[Any]:
    from datetime import datetime, timedelta

    from engine.scenario import ScheduleSpec
    from plugins.handover.models import RotaRequest

    specs = []
    for department_id, site in department_ids(org):
        settings = org.settings(SCENARIO, site)
        for change in settings.changes_of(department_id):
            # fire at the form time: lead minutes before the change
            fire = datetime.strptime(change, "%H:%M") - timedelta(minutes=settings.lead_minutes)
            specs.append(ScheduleSpec(
                id=f"rota-{department_id}-{change.replace(':', '')}", cron=f"{fire.minute} {fire.hour} * * *",
                workflow="handover.RotaDriver",
                # plain JSON args: readable in the schedule's description; the workflow's type hint parses them
                args=[RotaRequest(org=org.id, department=department_id, change=change, site=site).model_dump(),
                      org.locale],
                description=f"handover rota of {department_id} for the {change} shift change"))
    group = org.settings(SCENARIO)
    if group.stats_cron and group.medical_affairs:
        specs.append(ScheduleSpec(id="monthly-stats", cron=group.stats_cron, workflow="handover.MonthlyStats",
                                  args=[org.id, list(group.medical_affairs)], setting="stats_cron",
                                  description="monthly handover statistics for the medical affairs office"))
    return specs


@hookimpl
def register_commands(cli: Any) -> None:
    from plugins.handover.commands import handover_group

    cli.add_command(handover_group)
