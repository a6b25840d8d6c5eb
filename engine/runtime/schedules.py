"""Plugins' ``schedules`` hook becomes one Temporal schedule per organization and spec.

Synchronizing is idempotent: declared schedules are created or updated, and engine schedules of an
organization that are no longer declared (plugin switched off, spec removed) are deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import (
    ScheduleSpec as TemporalScheduleSpec,
)

from engine.config import EngineConfig
from engine.ids import workflow_id
from engine.plugins import PluginSet
from engine.scenario import ScheduleSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeclaredSchedule:
    org: str
    scenario: str
    spec: ScheduleSpec
    timezone: str

    @property
    def id(self) -> str:
        return workflow_id(self.org, self.scenario, f"schedule:{self.spec.id}")


def declared_schedules(config: EngineConfig, plugins: PluginSet) -> list[DeclaredSchedule]:
    """Every schedule the enabled plugins declare, for every organization."""
    declared = []
    for org in config.orgs.values():
        hook = plugins.hook_for("schedules", org.plugins)
        for result in hook(org=org):
            for spec in result or []:
                scenario = spec.workflow.split(".", 1)[0]
                if scenario not in org.plugins:
                    raise ValueError(f"schedule {spec.id!r} starts {spec.workflow!r}, "
                                     f"which is not a workflow of a scenario {org.id!r} enabled")
                declared.append(DeclaredSchedule(org.id, scenario, spec, org.timezone))
    return declared


def _schedule(item: DeclaredSchedule, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(item.spec.workflow, args=list(item.spec.args), id=item.id,
                                           task_queue=task_queue),
        spec=TemporalScheduleSpec(cron_expressions=[item.spec.cron], time_zone_name=item.timezone),
    )


async def sync_schedules(client: Client, config: EngineConfig, plugins: PluginSet, *,
                         task_queue: str) -> dict[str, list[str]]:
    """Create, update and delete schedules.

    Returns the ids under ``created``/``updated``/``deleted``, and under ``dev_start`` those that ask to
    run once when ``engine dev`` starts.
    """
    report: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}
    wanted = {item.id: item for item in declared_schedules(config, plugins)}
    for schedule_id, item in wanted.items():
        schedule = _schedule(item, task_queue)
        try:
            await client.create_schedule(schedule_id, schedule)
            report["created"].append(schedule_id)
        except ScheduleAlreadyRunningError:
            def replace(_: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await client.get_schedule_handle(schedule_id).update(replace)
            report["updated"].append(schedule_id)
    org_prefixes = tuple(f"{org}:" for org in config.orgs)
    async for listed in await client.list_schedules():
        if listed.id.startswith(org_prefixes) and ":schedule:" in listed.id and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            report["deleted"].append(listed.id)
    report["dev_start"] = [item.id for item in wanted.values() if item.spec.run_on_dev_start]
    for kind in ("created", "updated", "deleted"):
        for schedule_id in report[kind]:
            log.info("schedule %s: %s", kind, schedule_id)
    return report
