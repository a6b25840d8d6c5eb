"""Structured doctors' shift handovers (I-PASS or SBAR): written, received, acknowledged and counted.

Only the hook implementations live here; everything heavy is imported inside the hooks, because the
workflow sandbox re-imports this package for every workflow run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.sdk import hookimpl

if TYPE_CHECKING:  # annotations only: the hooks' types, without importing them at load
    import click

    from engine.sdk import Action, FeishuEvent, OrgContext, RegisterScenario, ScheduleSpec

SCENARIO = "handover"
VERSION = "1.0"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario
    from plugins.handover.activities import ACTIVITIES
    from plugins.handover.config import SITE_OVERRIDABLE, HandoverSettings
    from plugins.handover.workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version=VERSION, settings_model=HandoverSettings, workflows=WORKFLOWS,
        activities=ACTIVITIES, templates=Path(__file__).parent / "templates", site_overridable=SITE_OVERRIDABLE,
        description="Doctors' shift handovers (I-PASS/SBAR): form, receipt, confirmation, escalation, statistics",
    ))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from engine.sdk import CardAction, MessageReceived
    from plugins.handover.routing import card_action, status

    if isinstance(event, CardAction):
        return card_action(event)
    if isinstance(event, MessageReceived) and (event.chat_type == "p2p" or event.mentions_bot):
        return status(event, org)
    return None


@hookimpl
def schedules(org: OrgContext) -> list[ScheduleSpec]:
    from datetime import datetime, timedelta

    from engine.sdk import ScheduleSpec
    from plugins.handover.models import RotaRequest
    from plugins.handover.routing import department_ids

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
    if group.report_recipients:
        specs.append(ScheduleSpec(id="monthly-outcome", cron=f"0 {group.report_hour} 1-12 * *",
                                  workflow="handover.MonthlyOutcome", args=[{"org": org.id}], setting="report_hour",
                                  description="last month's handover outcome per department, on the first "
                                              "working day"))
    return specs


@hookimpl
def register_commands(cli: click.Group) -> None:
    from plugins.handover.commands import handover_group

    cli.add_command(handover_group)
