"""device_calibration: calibration cycles for measuring equipment, from the registry to the certificate.

Only the hook implementations live here (the workflow sandbox re-imports this package, so it stays
light); the scenario itself is in config, models, rules, routing, workflows, activities and commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.sdk import hookimpl

if TYPE_CHECKING:  # annotations only: the hooks' types, without importing them at load
    import click

    from engine.sdk import Action, FeishuEvent, OrgContext, RegisterScenario, ScheduleSpec

TEMPLATES = Path(__file__).parent / "templates"
VERSION = "1.0.0"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario
    from plugins.device_calibration.activities import ACTIVITIES
    from plugins.device_calibration.config import SITE_OVERRIDABLE, DeviceCalibrationSettings
    from plugins.device_calibration.models import VIEW_CHANGED_AT
    from plugins.device_calibration.workflows import WORKFLOWS

    register(Scenario(
        name="device_calibration", version=VERSION, settings_model=DeviceCalibrationSettings,
        workflows=WORKFLOWS, activities=ACTIVITIES, templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE,
        search_attributes=[VIEW_CHANGED_AT],
        description="Calibration, electrical safety and 强检 cycles of measuring equipment (ISO 13485 §7.6)"))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from plugins.device_calibration.routing import route

    return route(event, org)


@hookimpl
def schedules(org: OrgContext) -> list[ScheduleSpec] | None:
    from plugins.device_calibration.routing import schedule_specs

    return schedule_specs(org)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from plugins.device_calibration.commands import add_commands

    add_commands(cli)
