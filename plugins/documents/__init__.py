"""documents: headquarters sends a round (a document to acknowledge, or material to upload) to every
hospital, reminds and escalates on working days, and collects who answered what and when.

Only the hook implementations live here (the workflow sandbox re-imports parent packages): everything
else is imported inside the hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.sdk import hookimpl

if TYPE_CHECKING:  # annotations only: the hooks' types, without importing them at load
    import click

    from engine.sdk import Action, FeishuEvent, OrgContext, RegisterScenario

SCENARIO = "documents"
TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_scenarios(register: RegisterScenario) -> None:
    from engine.sdk import Scenario

    from .activities import ACTIVITIES
    from .config import SITE_OVERRIDABLE, DocumentsSettings
    from .workflows import WORKFLOWS

    register(Scenario(
        name=SCENARIO, version="1.0", settings_model=DocumentsSettings, workflows=WORKFLOWS, activities=ACTIVITIES,
        templates=TEMPLATES, site_overridable=SITE_OVERRIDABLE,
        description="documents: rounds of material sent to every hospital, acknowledged or uploaded, "
                    "with reminders, escalation and a live status"))


@hookimpl
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    from .routing import route

    return route(event, org)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import documents_group

    cli.add_command(documents_group)
