"""project_delivery: "@bot 建群 <customer> <product>" creates the project group, and the delivery of a
medical-equipment installation runs itself from contract to acceptance and warranty.

Only the hook implementations live here (the workflow sandbox re-imports parent packages): everything
else is imported inside the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import hookimpl

SCENARIO = "project_delivery"
REGISTRY_KEY = "registry"
TEMPLATES = Path(__file__).parent / "templates"
# A project's key, as "<key> 状态" asks about it: "PD-" and 10 hex digits (rules.project_id_for).
PROJECT_KEY = r"(?i)PD-[0-9A-F]{10}"


@hookimpl
def register_scenarios(register: Any) -> None:
    from engine.sdk import Scenario

    from .activities import ACTIVITIES
    from .config import SITE_OVERRIDABLE, ProjectDeliverySettings
    from .workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version="1.0", settings_model=ProjectDeliverySettings, workflows=WORKFLOWS,
        activities=ACTIVITIES, templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE,
        description="project groups by @bot, delivery stages with reminders, slips, digests, warranty and close"))


@hookimpl
def route_event(event: Any, org: Any) -> list[Any] | None:
    from .routing import route

    return route(event, org)


@hookimpl
def schedules(org: Any) -> list[Any]:
    from engine.sdk import ScheduleSpec


    settings = org.settings(SCENARIO)
    specs = [ScheduleSpec(id="portfolio_digest", cron=settings.portfolio_cron,
                          workflow="project_delivery.PortfolioDigest", args=[{"org": org.id}],
                          setting="portfolio_cron",
                          description="weekly portfolio digest per region to the regional managers")]
    if settings.report_recipients:
        specs.append(ScheduleSpec(id="monthly_outcome", cron=f"0 {settings.report_hour} 1-12 * *",
                                  workflow="project_delivery.MonthlyOutcome", args=[{"org": org.id}],
                                  setting="report_hour",
                                  description="last month's milestones per project, on the first working day"))
    return specs
