"""checkup: a yearly check-up whose owner is reminded before it is due, then a manager is told.

The smallest complete scenario: a settings model, one workflow, routing, two templates. Events come
from the engine itself here (``checkup.registered``); a real plugin would route a Bitable change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import Scenario, actions, hookimpl


@hookimpl
def register_scenarios(register: Any) -> None:
    from checkup_plugin.workflows import CheckupReminders, CheckupSettings

    register(Scenario(name="checkup", version="0.1.0", settings_model=CheckupSettings,
                      workflows=[CheckupReminders], templates=Path(__file__).parent / "templates",
                      site_overridable=["ladder"]))


@hookimpl
def route_event(event: Any, org: Any) -> list[actions.Action] | None:
    from engine.sdk import EngineEvent

    if not isinstance(event, EngineEvent) or event.event_type != "checkup.registered":
        return None
    return [actions.StartWorkflow(scenario="checkup", key=event.payload["device"], workflow="checkup.Reminders",
                                  args=[event.payload])]
