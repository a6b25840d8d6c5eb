"""A tiny plugin for the SDK's tests: its workflow loads its site context through the engine's activity."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

from engine.sdk import PluginSettings, Scenario, Services, SiteContext, hookimpl

with workflow.unsafe.imports_passed_through():
    from engine.sdk import load_site_context

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


class ProbeActivities:
    """The plugin's I/O, given the engine's services by the worker (no process-wide global)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @activity.defn(name="probe.site_label")
    async def site_label(self, site: str) -> str:
        context = self.services.context(activity.info().workflow_id.split(":")[0], SCENARIO, site)
        return f"{context.site_name or 'group'}/{context.locale}/{self.services.task_queue}"


@workflow.defn(name="probe.Label")
class LabelProbe:
    @workflow.run
    async def run(self, site: str) -> str:
        return await workflow.execute_activity("probe.site_label", site, start_to_close_timeout=timedelta(seconds=10))


@hookimpl
def register_scenarios(register: Any) -> None:
    register(Scenario(name=SCENARIO, version="1.0", settings_model=ProbeSettings, workflows=[ContextProbe, LabelProbe],
                      activities=[ProbeActivities],
                      site_overridable=["reminder_days"]))
