"""The documents scenario's own I/O: the round's plan (its row re-read, each hospital's context).
Messages, cards and Bitable writes go through the engine's Feishu activities (``engine.sdk.feishu``).

The worker builds :class:`DocumentsActivities` once with the engine's services (``engine.sdk.Services``).
"""

from __future__ import annotations

import logging

from temporalio import activity

from engine.sdk import FeishuError, Services, SiteContext, cells

from .bitable import read_round_row
from .config import DocumentsSettings
from .models import Plan, PlanRequest

log = logging.getLogger(__name__)

SCENARIO = "documents"


class DocumentsActivities:
    """documents' activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @activity.defn(name="documents.plan")
    async def plan(self, request: PlanRequest) -> Plan:
        """The round's facts and the context of each hospital it goes to.

        A round from the rounds table is re-read from its row (the event's values are not trusted). The
        hospitals are the sites named (by id or name), or every site with responsible people; a plan with a
        ``problem`` (no deadline, an unknown site, nobody responsible) is refused by the workflow.
        """
        org_id, given = request.org, request.round
        group = self.services.context(org_id, SCENARIO)
        settings = group.settings_as(DocumentsSettings)
        row_has_id = True
        if given.record_id:
            try:
                record = await self.services.feishu.bitable_get(settings.app_token, settings.rounds_table_id,
                                                                 given.record_id)
            except FeishuError as error:
                raise error.to_application_error() from error
            given = read_round_row(record.fields, settings, given, group.zone)
            row_has_id = bool(cells.text(record.fields.get(settings.fields.round_id)))
        sites = self.services.org(org_id).config.sites
        wanted: list[str] = []
        for named in given.sites:
            found = next((sid for sid, site in sites.items() if named in (sid, site.name)), None)
            if found is None:
                return Plan(round=given, group=group, problem=f"unknown site {named!r}", problem_kind="unknown_site",
                            row_has_id=row_has_id)
            wanted.append(found)
        hospitals: list[SiteContext] = []
        for site_id in wanted or list(sites):
            context = self.services.context(org_id, SCENARIO, site_id)
            if context.settings_as(DocumentsSettings).responsible_open_ids:
                hospitals.append(context)
            elif wanted:
                return Plan(round=given, group=group, problem=f"site {site_id!r} has no responsible_open_ids",
                            problem_kind="nobody_responsible", row_has_id=row_has_id)
        problem, kind = ("", "") if given.deadline else ("no deadline", "no_deadline")
        if not hospitals and not problem:
            problem, kind = "no hospital has responsible_open_ids", "nobody_responsible"
        if problem:
            log.warning("round %s not sent: %s", given.round_id, problem)
        return Plan(round=given, group=group, hospitals=hospitals, problem=problem, problem_kind=kind,  # type: ignore[arg-type]
                    row_has_id=row_has_id)


ACTIVITIES = [DocumentsActivities]
