"""The HR monthly report's I/O: Feishu's contact directory read into a monthly staff snapshot, and the
recorded tables read for :func:`hr_rules.compute_hr_report` (shared by the activities and the command).

Raises :class:`engine.sdk.FeishuError` when the directory or a table cannot be read or written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from engine.sdk import Services

from . import hr_rules, rules
from .config import RecruitingSettings
from .models import SCENARIO, LeaverInput


class SnapshotResult(BaseModel):
    month: str
    people: int


def _settings(services: Services, org_id: str, site: str | None = None) -> RecruitingSettings:
    return services.context(org_id, SCENARIO, site).settings_as(RecruitingSettings)


def site_names(services: Services, org_id: str) -> dict[str, str]:
    """Each hospital's name by site id, in the config's order (the id when it has no name)."""
    org = services.org(org_id)
    return {site: (config.name or site) for site, config in org.config.sites.items()}


async def _trees(services: Services, org_id: str) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    """Each hospital's department (``directory.department_id`` per site; one without is left out) and the
    departments below it, from Feishu's contact directory."""
    roots = {site: _settings(services, org_id, site).directory.department_id
             for site in services.org(org_id).site_ids}
    roots = {site: root for site, root in roots.items() if root}
    return roots, {site: await services.feishu.list_departments(root, recursive=True) for site, root in roots.items()}


async def read_directory(services: Services, org_id: str) -> list[hr_rules.Staff]:
    """Who is in post now: every hospital's department tree and its members, read from Feishu's contact
    directory page by page."""
    roots, trees = await _trees(services, org_id)
    users: list[dict[str, Any]] = []
    for site, root in roots.items():
        for department in [root, *(str(d.get("open_department_id") or "") for d in trees[site])]:
            if department:
                users.extend(await services.feishu.users_in_department(department))
    return hr_rules.staff_from_directory(trees, users, roots)


async def record_leaver(services: Services, leaver: LeaverInput, client_token: str) -> str:
    """Record an account removed from the directory in the leavers table (the hospital and department its
    departments lie in, "" when none of the hospitals'); returns the site ("" when none)."""
    settings = _settings(services, leaver.org)
    roots, trees = await _trees(services, leaver.org)
    found = hr_rules.staff_from_directory(trees, [{"open_id": leaver.open_id, "name": leaver.name,
                                                   "department_ids": leaver.department_ids}], roots)
    where = found[0] if found else None
    ctx = services.context(leaver.org, SCENARIO)
    calendar = rules.calendar_for(ctx.timezone, ctx.holidays, ctx.workdays, settings.use_china_calendar)
    if leaver.left_at is None:
        raise ValueError("record_leaver needs left_at (the workflow sets it)")
    row = hr_rules.leaver_row(leaver.open_id, leaver.name, where, leaver.left_at, settings,
                              hr_rules.Sites(site_names(services, leaver.org)), calendar)
    await services.feishu.bitable_upsert(settings.app_token, settings.tables.leavers, settings.fields.leavers.user_id,
                                         [row], client_token=client_token)
    return where.site if where else ""


def _month_filter(column: str, months: list[str]) -> dict[str, Any]:
    return {"conjunction": "or", "conditions": [{"field_name": column, "operator": "is", "value": [m]}
                                                  for m in months]}


async def record_snapshot(services: Services, org_id: str, month: str, client_token: str) -> SnapshotResult:
    """Record the directory as it is now as ``month``'s staff snapshot (rows keyed ``{month}:{open_id}``, so
    a retry updates them). Called at the month's end, i.e. by the report on the next month's first
    working day, or by hand (``engine recruiting snapshot``) for the month before the first report."""
    settings = _settings(services, org_id)
    rows = hr_rules.snapshot_rows(month, await read_directory(services, org_id), settings,
                                  hr_rules.Sites(site_names(services, org_id)))
    if rows:
        await services.feishu.bitable_upsert(settings.app_token, settings.tables.staff, settings.fields.staff.key,
                                             rows, client_token=client_token)
    return SnapshotResult(month=month, people=len(rows))


async def hr_report_for(services: Services, org_id: str, month: str, as_of: datetime) -> hr_rules.HrReport:
    """Read the snapshots of ``month`` and the month before, and the tables; compute the month's report."""
    settings = _settings(services, org_id)
    ctx = services.context(org_id, SCENARIO)
    calendar = rules.calendar_for(ctx.timezone, ctx.holidays, ctx.workdays, settings.use_china_calendar)
    names = site_names(services, org_id)
    sites = hr_rules.Sites(names)
    previous = hr_rules.previous_month_of(month)

    async def fields(table: str, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [r.fields for r in await services.feishu.bitable_search(settings.app_token, table, filter=flt)]

    t = settings.tables
    snapshots = await fields(t.staff, _month_filter(settings.fields.staff.month, [previous, month]))
    return hr_rules.compute_hr_report(
        month, hr_rules.staff_from_rows(snapshots, previous, settings, sites),
        hr_rules.staff_from_rows(snapshots, month, settings, sites),
        leavers=await fields(t.leavers), requisitions=await fields(t.requisitions),
        applications=await fields(t.applications),
        pool=await fields(t.pool), onboarding=await fields(t.onboarding), development=await fields(t.development),
        operations=await fields(t.operations), cases=await fields(t.cases), as_of=as_of, settings=settings,
        calendar=calendar, site_names=names)
