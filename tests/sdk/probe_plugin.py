"""A tiny plugin for the SDK's tests: its workflow loads its site context through the engine's activity."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from engine.context import SiteContext
from engine.hookspecs import hookimpl
from engine.scenario import PluginSettings, Scenario

with workflow.unsafe.imports_passed_through():
    from engine.workflow_support import load_site_context

SCENARIO = "probe"


class ProbeSettings(PluginSettings):
    reminder_days: int = 3
    label: str = "group"


@workflow.defn(name="probe.Context")
class ContextProbe:
    """Returns the context of ``site`` (``""``: the group's), as a workflow holds it."""

    @workflow.run
    async def run(self, site: str) -> SiteContext:
        return await load_site_context(SCENARIO, site or None)


@hookimpl
def register_scenarios(register: Any) -> None:
    register(Scenario(name=SCENARIO, version="1.0", settings_model=ProbeSettings, workflows=[ContextProbe],
                      site_overridable=["reminder_days"]))
