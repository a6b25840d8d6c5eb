"""asset_loan: QR-coded R&D materials, borrowed and returned by scanning, reminded until returned.

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

SCENARIO = "asset_loan"
TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario

    from .activities import ACTIVITIES
    from .config import SIGNING_SECRET, SITE_OVERRIDABLE, AssetLoanSettings
    from .workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version="1.0", settings_model=AssetLoanSettings, workflows=WORKFLOWS,
        activities=ACTIVITIES, templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE, secrets=[SIGNING_SECRET],
        description="QR-coded materials: borrow and return by scanning, reminders and escalation until returned"))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from .routing import route

    return route(event, org)


@hookimpl
def schedules(org: OrgContext) -> list[ScheduleSpec]:
    from engine.sdk import ScheduleSpec

    settings = org.settings(SCENARIO)
    return [ScheduleSpec(id="weekly_summary", cron=settings.summary_cron, workflow="asset_loan.WeeklySummary",
                         args=[{"org": org.id}], setting="summary_cron",
                         description="weekly summary to each keeper"),
            # every morning of days 1-12; the run sends only on the month's first working day (its calendar)
            ScheduleSpec(id="monthly_outcome", cron=f"0 {settings.report_hour} 1-12 * *",
                         workflow="asset_loan.MonthlyOutcome", args=[{"org": org.id}], setting="report_hour",
                         description="last month's loans per site, on the first working day")]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .labels import register

    register(cli)


@hookimpl
def ingress_routes(register: RegisterRoute) -> None:
    from .web import ROUTES

    for path, endpoint, methods in ROUTES:
        register(path, endpoint, methods=methods)
