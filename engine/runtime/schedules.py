"""Plugins' ``schedules`` hook becomes one Temporal schedule per organization and spec.

Synchronizing is idempotent: declared schedules are created or updated, and engine schedules of an
organization that are no longer declared (plugin switched off, spec removed) are deleted. Each schedule
is its own call: one the engine's cron dialect or the server refuses is logged (organization, settings
key, cron, reason) and left as it was, and the others go on.
"""

from __future__ import annotations

import dataclasses
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
from temporalio.service import RPCError, RPCStatusCode

from engine.approval_report import report_schedule
from engine.approvals import ENGINE_SCENARIO
from engine.config import EngineConfig
from engine.ids import workflow_id
from engine.plugins import PluginSet
from engine.rules.cron import CronError, validate_cron
from engine.scenario import ScheduleSpec

log = logging.getLogger(__name__)
# what the server answers for a schedule it will not take; anything else (unreachable) is not a refusal
_REFUSED = frozenset({RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION})


@dataclass(frozen=True)
class DeclaredSchedule:
    org: str
    scenario: str
    spec: ScheduleSpec
    timezone: str

    @property
    def id(self) -> str:
        return workflow_id(self.org, self.scenario, f"schedule:{self.spec.id}")

    @property
    def source(self) -> str:
        """Where the cron comes from: the settings key if the plugin says, else the plugin's schedule."""
        if self.spec.setting:
            return f"organizations.{self.org}.settings.{self.scenario}.{self.spec.setting}"
        return f"schedule {self.spec.id!r} of plugin {self.scenario}"


def declared_schedules(config: EngineConfig, plugins: PluginSet) -> list[DeclaredSchedule]:
    """Every schedule the enabled plugins declare, and the engine's own, for every organization."""
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
        report = report_schedule(org)  # the engine's own: the monthly approval-time card
        if report is not None:
            declared.append(DeclaredSchedule(org.id, ENGINE_SCENARIO, report, org.timezone))
    return declared


def _schedule(item: DeclaredSchedule, task_queue: str) -> Schedule:
    """The Temporal schedule; raises ``CronError`` for a cron outside the engine's dialect."""
    return Schedule(
        action=ScheduleActionStartWorkflow(item.spec.workflow, args=list(item.spec.args), id=item.id,
                                           task_queue=task_queue),
        spec=TemporalScheduleSpec(cron_expressions=[validate_cron(item.spec.cron)],
                                  time_zone_name=item.timezone),
    )


async def _create_or_update(client: Client, schedule_id: str, schedule: Schedule) -> str:
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        def replace(current: ScheduleUpdateInput, schedule: Schedule = schedule) -> ScheduleUpdate:
            # the spec and action are the config's; the state (an operator's pause and its note) is theirs:
            # a worker's restart must not resume a schedule someone paused
            return ScheduleUpdate(schedule=dataclasses.replace(schedule, state=current.description.schedule.state))

        await client.get_schedule_handle(schedule_id).update(replace)
        return "updated"


async def sync_schedules(client: Client, config: EngineConfig, plugins: PluginSet, *,
                         task_queue: str) -> dict[str, list[str]]:
    """Create, update and delete schedules, each on its own.

    Returns the ids under ``created``/``updated``/``deleted``/``refused`` (a cron outside the dialect
    or a schedule the server refused: logged, not raised), and under ``dev_start`` those that ask to
    run once when ``engine dev`` starts. Errors other than a refusal (server unreachable) propagate.
    """
    report: dict[str, list[str]] = {"created": [], "updated": [], "deleted": [], "refused": []}
    wanted = {item.id: item for item in declared_schedules(config, plugins)}
    for schedule_id, item in wanted.items():
        try:
            outcome = await _create_or_update(client, schedule_id, _schedule(item, task_queue))
        except (CronError, RPCError) as error:
            if isinstance(error, RPCError) and error.status not in _REFUSED:
                raise
            # one line per refusal; an existing version of the schedule keeps running unchanged
            reason = f"{error.problem}; {error.hint}" if isinstance(error, CronError) else str(error)
            log.error("schedule refused: organization %s, %s, cron %r: %s (%s); the other schedules go on",
                      item.org, item.source, item.spec.cron, reason, schedule_id)
            report["refused"].append(schedule_id)
            continue
        report[outcome].append(schedule_id)
    org_prefixes = tuple(f"{org}:" for org in config.orgs)
    async for listed in await client.list_schedules():
        if listed.id.startswith(org_prefixes) and ":schedule:" in listed.id and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            report["deleted"].append(listed.id)
    report["dev_start"] = [item.id for item in wanted.values()
                           if item.spec.run_on_dev_start and item.id not in report["refused"]]
    for kind in ("created", "updated", "deleted"):
        for schedule_id in report[kind]:
            log.info("schedule %s: %s", kind, schedule_id)
    return report
