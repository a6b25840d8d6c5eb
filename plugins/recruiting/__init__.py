"""recruiting: one pipeline and talent pool across a group's hospitals, onboarding, risk warnings and the
monthly HR report.

Only the hook implementations live here (the workflow sandbox re-imports parent packages): everything
else is imported inside the hooks. See README.md for behaviour, settings, schema and events.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.sdk import hookimpl

if TYPE_CHECKING:  # annotations only: the hooks' types, without importing them at load
    import click

    from engine.sdk import Action, FeishuEvent, OrgContext, RegisterScenario, ScheduleSpec

SCENARIO = "recruiting"
TEMPLATES = Path(__file__).parent / "templates"
HIRE_STAGE_CHANGED = "hire.application.stage_changed_v1"
HIRE_OFFER_CHANGED = "hire.offer.status_changed_v1"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario

    from .activities import ACTIVITIES
    from .config import CONTACT_SECRET, SITE_OVERRIDABLE, RecruitingSettings
    from .workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version="1.0", settings_model=RecruitingSettings, workflows=WORKFLOWS, activities=ACTIVITIES,
        templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE, secrets=[CONTACT_SECRET],
        description="Group recruiting: requisition approvals, candidate pipeline with SLAs, talent pool, "
                    "onboarding, risk warnings, monthly HR report"))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from .routing import route

    return route(event, org)


@hookimpl
def schedules(org: OrgContext) -> list[ScheduleSpec]:
    from engine.sdk import ScheduleSpec

    settings = org.settings(SCENARIO)
    if not settings.report.enabled:
        return []
    return [ScheduleSpec(id="monthly_report", cron=settings.report.cron, workflow="recruiting.MonthlyReport",
                         args=[{"org": org.id}], setting="report.cron",
                         description="daily check; the HR report goes out on the first working day of the month")]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import add_commands

    add_commands(cli)
