"""A tiny plugin for the SDK's tests: its workflow loads its site context through the engine's activity."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

from engine.sdk import PluginSettings, Scenario, Services, SiteContext, hookimpl

with workflow.unsafe.imports_passed_through():
    from engine.sdk import Deferred, load_site_context

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


# Opened by the test once the press was answered: the deferred work cannot finish before that.
GATE = asyncio.Event()


class GateActivities:
    def __init__(self, services: Services) -> None:
        self.services = services

    @activity.defn(name="probe.slow_write")
    async def slow_write(self, what: str) -> str:
        await GATE.wait()
        return what


@workflow.defn(name="probe.Answer")
class AnswerProbe:
    """A card press answered at once; its write (an activity held by ``GATE``) runs after the answer."""

    def __init__(self) -> None:
        self.deferred = Deferred()
        self.pressed: list[str] = []
        self.written: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        while len(self.written) < 2:
            await workflow.wait_condition(lambda: self.deferred.pending)
            await self.deferred.run()
        return self.written

    @workflow.update
    async def press(self, what: str) -> dict[str, Any]:
        self.pressed.append(what)
        self.deferred.add(self._write, what)
        return {"toast": f"{what} noted", "pressed": len(self.pressed)}

    async def _write(self, what: str) -> None:
        self.written.append(await workflow.execute_activity(
            "probe.slow_write", what, start_to_close_timeout=timedelta(minutes=5), result_type=str))


@hookimpl
def register_scenarios(register: Any) -> None:
    register(Scenario(name=SCENARIO, version="1.0", settings_model=ProbeSettings,
                      workflows=[ContextProbe, LabelProbe, AnswerProbe],
                      activities=[ProbeActivities, GateActivities],
                      site_overridable=["reminder_days"]))
