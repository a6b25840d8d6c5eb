"""The handover scenario's own activities: resolving a shift's plan, starting its workflow, statistics.

They need the organization's config (settings, calendar) and may read Bitable, which workflows cannot
do themselves. The worker builds :class:`HandoverActivities` once with the engine's services
(``engine.sdk.Services``); the Feishu sends all go through the engine's activities.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.sdk import FeishuError, Services, SiteContext, UnknownContext, cells, workflow_id
from plugins.handover import models as m
from plugins.handover import rules
from plugins.handover.config import HandoverSettings, RotaEntry

log = logging.getLogger(__name__)

PLAN_SHIFT = "handover.plan_shift"
START_SHIFT = "handover.start_shift"
COLLECT_STATS = "handover.collect_stats"
OUTCOME_ROWS = "handover.outcome_rows"


def department_context(services: Services, org_id: str, department: str) -> SiteContext:
    """The site context of the settings that define ``department``: its site's, else the group's."""
    org = services.org(org_id)
    group = services.context(org_id, m.SCENARIO)
    group_settings = group.settings_as(HandoverSettings)
    for site in org.site_ids:
        try:
            context = services.context(org_id, m.SCENARIO, site)
        except (KeyError, UnknownContext):
            continue
        found = context.settings_as(HandoverSettings).departments.get(department)
        if found is not None and (found.site == site or department not in group_settings.departments):
            return context
    if department in group_settings.departments:
        site = group_settings.departments[department].site
        context = services.context(org_id, m.SCENARIO, site) if site else group
        if department not in context.settings_as(HandoverSettings).departments:
            # the site overrides the departments without this one: the group's settings, the site's zone
            context = context.model_copy(update={"settings": group.settings})
        return context
    raise KeyError(department)


def read_rota_file(path: Path, department: str, zone: Any) -> list[RotaEntry]:
    """Dated lines of ``department`` from a JSON rota file (a list, or ``{"entries": [...]}``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data.get("entries", []) if isinstance(data, dict) else data
    default = data.get("department") if isinstance(data, dict) else None
    return rules.rota_lines([{"department": default, **row} for row in rows], department, zone)


async def read_handover_records(services: Services, org_id: str) -> list[dict[str, Any]]:
    """The fields of every handover record of ``org_id`` (each distinct table of the group and sites)."""
    org = services.org(org_id)
    tables = {}
    for site in [None, *org.site_ids]:
        try:
            settings = services.context(org_id, m.SCENARIO, site).settings_as(HandoverSettings)
        except (KeyError, UnknownContext):
            continue
        if settings.handovers_table is not None:
            ref = settings.handovers_table
            tables[(ref.app_token, ref.table_id)] = ref
    fields: dict[str, dict[str, Any]] = {}
    for ref in tables.values():
        try:
            records = await services.feishu.bitable_search(ref.app_token, ref.table_id)
        except FeishuError as error:
            raise error.to_application_error() from error
        for record in records:
            key = cells.text(record.fields.get(m.H_KEY)) or record.record_id
            fields[key] = record.fields  # a table shared by sites is read once per key
    return list(fields.values())


class HandoverActivities:
    """The handover scenario's activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _context(self, request: m.PlanRequest) -> SiteContext:
        """The context the rota driver loaded when it defines the department, else the department's own."""
        given = request.context
        if given is not None and request.department in given.settings_as(HandoverSettings).departments:
            return given
        try:
            return department_context(self.services, request.org, request.department)
        except (KeyError, UnknownContext):
            raise ApplicationError(f"no department {request.department!r} in the handover settings of "
                                   f"{request.org!r}", type="UnknownDepartment", non_retryable=True) from None

    @activity.defn(name=PLAN_SHIFT)
    async def plan_shift(self, request: m.PlanRequest) -> m.PlanResult:
        """The plan of ``department``'s next shift change at ``request.change`` on or after ``as_of``."""
        context = self._context(request)
        settings = context.settings_as(HandoverSettings)
        department = settings.departments[request.department]
        zone = context.zone
        if request.change not in settings.changes_of(request.department):
            return m.PlanResult(reason=f"{request.change} is not a shift change of {request.department}")
        change_local = rules.next_change(request.as_of, [request.change], zone)
        dated: list[RotaEntry] = []
        if department.rota_file:
            path = self.services.config.path.parent / department.rota_file
            dated += read_rota_file(path, request.department, zone)
        if department.rota_table is not None:
            table = department.rota_table
            try:
                records = await self.services.feishu.bitable_search(table.app_token, table.table_id)
            except FeishuError as error:
                raise error.to_application_error() from error
            dated += rules.rota_lines([r.fields for r in records], request.department, zone)
        decision = rules.resolve_rota(change_local.date(), request.change, department, context.calendar(), dated)
        activity.logger.info("handover rota %s %s: %s", request.department, change_local, decision.reason)
        if decision.is_nothing:
            return m.PlanResult(reason=decision.reason)
        plan = rules.build_plan(request.org, request.department, settings, change_local, decision, str(zone.key))
        plan = plan.model_copy(update={"locale": context.locale, "clock": context.clock})
        return m.PlanResult(plan=plan, reason=decision.reason)

    @activity.defn(name=START_SHIFT)
    async def start_shift(self, request: m.StartShift) -> m.ShiftStarted:
        """Start the shift's ``handover.Shift`` unless it already runs (a repeated schedule run is a no-op).

        Started from an activity, not as a child: the shift outlives the short rota run by many hours, and
        a parent-less workflow is what every other way of starting it (the CLI, a test) gives too.
        """
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        plan = request.plan
        wid = workflow_id(plan.org, m.SCENARIO, plan.key)
        try:
            handle = await self.services.temporal.start_workflow(
                "handover.Shift", args=[plan, request.locale], id=wid, task_queue=activity.info().task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                # a shift that already ran to its end is not started again by a late or repeated schedule run
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
        except WorkflowAlreadyStartedError:
            return m.ShiftStarted(workflow_id=wid, started=False)
        return m.ShiftStarted(workflow_id=wid, run_id=handle.result_run_id or "", started=True)

    @activity.defn(name=COLLECT_STATS)
    async def collect_stats(self, request: m.StatsRequest) -> m.StatsReport:
        """The month's statistics of the organization, from its handover records in Bitable."""
        zone = self.services.context(request.org, m.SCENARIO).zone
        month = request.month or rules.previous_month(request.as_of, zone)
        records = await read_handover_records(self.services, request.org)
        org = self.services.org(request.org)
        departments = self._department_names(request.org)
        rows = rules.monthly_stats(records, month)
        for row in rows:  # names for the card: ids stay in the CSV and the table
            site = org.config.sites.get(row.site)
            row.whole, row.site_total = row.site == "*", row.site != "*" and row.department == "*"
            row.site_name = (site.name if site and site.name else row.site) if row.site not in ("", "*") else ""
            row.department_name = departments.get(row.department, row.department)
        return m.StatsReport(org=request.org, month=month, rows=rows)

    def _department_names(self, org_id: str) -> dict[str, str]:
        names: dict[str, str] = {}
        for site in [None, *self.services.org(org_id).site_ids]:
            try:
                settings = self.services.context(org_id, m.SCENARIO, site).settings_as(HandoverSettings)
            except (KeyError, UnknownContext):
                continue
            for department_id, department in settings.departments.items():
                names.setdefault(department_id, department.name)
        return names

    @activity.defn(name=OUTCOME_ROWS)
    async def outcome_rows(self, request: m.OutcomeRequest) -> list[m.OutcomeRow]:
        """The month's outcome per department, from the handover records in Bitable (every page), with the
        departments' configured names."""
        records = await read_handover_records(self.services, request.org)
        return rules.outcome_rows(records, request.month, self._department_names(request.org))


ACTIVITIES = [HandoverActivities]
