"""The handover scenario's own activities: resolving a shift's plan and collecting statistics.

Both need the organization's config (settings, calendar) and may read Bitable, which workflows cannot
do themselves. The Feishu sends all go through the engine's activities.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.rules.workdays import WorkCalendar
from engine.runtime.app import current_app
from plugins.handover import models as m
from plugins.handover import rules
from plugins.handover.config import HandoverSettings, RotaEntry

PLAN_SHIFT = "handover.plan_shift"
START_SHIFT = "handover.start_shift"
COLLECT_STATS = "handover.collect_stats"


def calendar_of(org: Any, site: str | None) -> WorkCalendar:
    """The organization's work calendar: China's holidays and make-up days plus its own extras."""
    return WorkCalendar(org.site_zone(site), holidays=[date.fromisoformat(d) for d in org.config.holidays],
                        workdays=[date.fromisoformat(d) for d in org.config.workdays])


def department_settings(org: Any, department: str) -> tuple[HandoverSettings, str | None]:
    """The effective settings that define ``department``: its site's, else the group's."""
    group: HandoverSettings = org.settings(m.SCENARIO)
    for site in org.site_ids:
        try:
            settings: HandoverSettings = org.settings(m.SCENARIO, site)
        except KeyError:
            continue
        found = settings.departments.get(department)
        if found is not None and (found.site == site or department not in group.departments):
            return settings, site
    if department in group.departments:
        return group, group.departments[department].site
    raise KeyError(department)


def read_rota_file(path: Path, department: str, zone: Any) -> list[RotaEntry]:
    """Dated lines of ``department`` from a JSON rota file (a list, or ``{"entries": [...]}``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data.get("entries", []) if isinstance(data, dict) else data
    default = data.get("department") if isinstance(data, dict) else None
    return rules.rota_lines([{"department": default, **row} for row in rows], department, zone)


@activity.defn(name=PLAN_SHIFT)
async def plan_shift(request: m.PlanRequest) -> m.PlanResult:
    """The plan of ``department``'s next shift change at ``request.change`` on or after ``as_of``."""
    app = current_app()
    org = app.config.org(request.org)
    try:
        settings, site = department_settings(org, request.department)
    except KeyError:
        raise ApplicationError(f"no department {request.department!r} in the handover settings of {org.id!r}",
                               type="UnknownDepartment", non_retryable=True) from None
    department = settings.departments[request.department]
    zone = org.site_zone(site)
    if request.change not in settings.changes_of(request.department):
        return m.PlanResult(reason=f"{request.change} is not a shift change of {request.department}")
    change_local = rules.next_change(request.as_of, [request.change], zone)
    dated: list[RotaEntry] = []
    if department.rota_file:
        dated += read_rota_file(app.config.path.parent / department.rota_file, request.department, zone)
    if department.rota_table is not None:
        table = department.rota_table
        records = await app.feishu.bitable_search(table.app_token, table.table_id)
        dated += rules.rota_lines([r.fields for r in records], request.department, zone)
    decision = rules.resolve_rota(change_local.date(), request.change, department, calendar_of(org, site), dated)
    activity.logger.info("handover rota %s %s: %s", request.department, change_local, decision.reason)
    if decision.is_nothing:
        return m.PlanResult(reason=decision.reason)
    plan = rules.build_plan(org.id, request.department, settings, change_local, decision, str(zone.key))
    return m.PlanResult(plan=plan, reason=decision.reason)


@activity.defn(name=START_SHIFT)
async def start_shift(request: m.StartShift) -> m.ShiftStarted:
    """Start the shift's ``handover.Shift`` unless it already runs (a repeated schedule run is a no-op).

    Started from an activity, not as a child: the shift outlives the short rota run by many hours, and a
    parent-less workflow is what every other way of starting it (the CLI, a test) gives too.
    """
    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from engine.ids import workflow_id

    app = current_app()
    plan = request.plan
    wid = workflow_id(plan.org, m.SCENARIO, plan.key)
    try:
        handle = await app.temporal.start_workflow(
            "handover.Shift", args=[plan, request.locale], id=wid, task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # a shift that already ran to its end is not started again by a late or repeated schedule run
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        return m.ShiftStarted(workflow_id=wid, started=False)
    return m.ShiftStarted(workflow_id=wid, run_id=handle.result_run_id or "", started=True)


async def read_handover_records(app: Any, org_id: str) -> list[dict[str, Any]]:
    """The fields of every handover record of ``org_id`` (each distinct table of the group and sites)."""
    org = app.config.org(org_id)
    tables = {}
    for site in [None, *org.site_ids]:
        try:
            settings: HandoverSettings = org.settings(m.SCENARIO, site)
        except KeyError:
            continue
        if settings.handovers_table is not None:
            ref = settings.handovers_table
            tables[(ref.app_token, ref.table_id)] = ref
    fields: dict[str, dict[str, Any]] = {}
    for ref in tables.values():
        for record in await app.feishu.bitable_search(ref.app_token, ref.table_id):
            key = str(record.fields.get(m.H_KEY) or record.record_id)
            fields[key] = record.fields  # a table shared by sites is read once per key
    return list(fields.values())


@activity.defn(name=COLLECT_STATS)
async def collect_stats(request: m.StatsRequest) -> m.StatsReport:
    """The month's statistics of the organization, from its handover records in Bitable."""
    app = current_app()
    org = app.config.org(request.org)
    month = request.month or rules.previous_month(request.as_of, org.zone)
    records = await read_handover_records(app, request.org)
    return m.StatsReport(org=request.org, month=month, rows=rules.monthly_stats(records, month))
