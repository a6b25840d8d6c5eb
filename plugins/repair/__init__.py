"""repair: facilities, IT and medical-equipment repair tickets in real time, from the report to the rating.

Only the hook implementations live here (the workflow sandbox re-imports parent packages): everything
else is imported inside the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.sdk import hookimpl

if TYPE_CHECKING:  # annotations only: the hooks' types, without importing them at load
    import click

    from engine.sdk import Action, FeishuEvent, OrgContext, RegisterRoute, RegisterScenario, ScheduleSpec

SCENARIO = "repair"
TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario

    from .activities import ACTIVITIES
    from .config import ALERT_SECRET, SIGNING_SECRET, SITE_OVERRIDABLE, RepairSettings
    from .workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version="1.0", settings_model=RepairSettings, workflows=WORKFLOWS, activities=ACTIVITIES,
        templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE, secrets=[ALERT_SECRET, SIGNING_SECRET],
        description="repair tickets: report, triage, dispatch, SLA escalation, progress, confirmation, rating"))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from .routing import route

    return route(event, org)


@hookimpl
def schedules(org: OrgContext) -> list[ScheduleSpec]:
    from engine.sdk import ScheduleSpec

    settings = org.settings(SCENARIO)
    return [ScheduleSpec(id="monthly_report", cron=f"0 {settings.report_hour} 1-12 * *",
                         workflow="repair.MonthlyReport", args=[{"org": org.id}], setting="report_hour",
                         description="last month's repair figures per site and category, on the first working day")]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .alerts import register
    from .labels import register_labels

    register_labels(register(cli))


@hookimpl
def ingress_routes(register: RegisterRoute) -> None:
    from .alerts import ROUTES
    from .web import ROUTES as PAGES

    for path, endpoint, methods in [*ROUTES, *PAGES]:
        register(path, endpoint, methods=methods)
