"""The repair scenario's own I/O: who reported and where, who is on duty, the rows of the monthly report.
Messages and Bitable writes go through the engine's Feishu activities (``engine.sdk.feishu``).

The worker builds :class:`RepairActivities` once with the engine's services (``engine.sdk.Services``).
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity

from engine.sdk import FeishuError, Services, cells

from . import rules
from .bitable import read_rota_row, read_ticket_row, reporter_of
from .config import RepairSettings
from .models import Intake, IntakeRequest, OnDutyRequest, ReportRequest, Technician, TicketRow

log = logging.getLogger(__name__)

SCENARIO = "repair"


class RepairActivities:
    """repair's activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _site_in(self, org_id: str, *texts: str) -> str:
        """A site of the organization named (by id or name) in ``texts``, else ""."""
        sites = self.services.org(org_id).config.sites
        joined = " ".join(texts)
        for site_id, site in sites.items():
            if (site.name and site.name in joined) or site_id in joined.split():
                return site_id
        return ""

    @activity.defn(name="repair.intake")
    async def intake(self, request: IntakeRequest) -> Intake:
        """The report's facts (re-read from its row when it came from the table), the reporter's name, and
        the context of the site it belongs to: the site given, else one named in the text or location."""
        ticket, org_id = request.ticket, request.org
        group = self.services.context(org_id, SCENARIO).settings_as(RepairSettings)
        found = Intake(text=ticket.text, reporter_open_id=ticket.reporter_open_id, site=ticket.site,
                       location=ticket.location, asset_id=ticket.asset_id, record_id=ticket.record_id)
        try:
            if ticket.source == "table" and ticket.record_id:
                record = await self.services.feishu.bitable_get(group.app_token, group.tickets_table_id,
                                                                 ticket.record_id)
                names = group.fields
                if cells.text(record.fields.get(names.ticket)):
                    return Intake(ignore=True)  # a row the engine wrote: it is a ticket already
                found = found.model_copy(update={
                    "text": cells.text(record.fields.get(names.description)),
                    "reporter_open_id": reporter_of(record.fields, names.reporter),
                    "site": cells.text(record.fields.get(names.site)),
                    "location": cells.text(record.fields.get(names.location)),
                    "asset_id": cells.text(record.fields.get(names.asset))})
            departments: list[str] = []
            if found.reporter_open_id:
                user = await self.services.feishu.get_user(found.reporter_open_id)
                found.reporter_name = str((user or {}).get("name") or "")
                departments = [str(d) for d in (user or {}).get("department_ids") or []]
        except FeishuError as error:
            raise error.to_application_error() from error
        # the site given (row, label, alert), else one named in the report, else the reporter's department's
        by_department = next((group.department_sites[d] for d in departments if d in group.department_sites), "")
        site = found.site or self._site_in(org_id, found.location, found.text) or by_department
        context = self.services.context(org_id, SCENARIO, site or None)
        found.site, found.site_name, found.context = context.site or "", context.site_name, context
        return found

    @activity.defn(name="repair.on_duty")
    async def on_duty(self, request: OnDutyRequest) -> Technician:
        """The technician on duty for the site's category at ``at`` (the site's rota, in its zone); the team
        lead when nobody is on duty; an empty technician when the team has neither."""
        context = self.services.context(request.org, SCENARIO, request.site or None)
        settings = context.settings_as(RepairSettings)
        team = settings.team(request.category)
        rota = team.rota
        if settings.rota_table_id:
            rota = await self._rota_rows(settings, context.site or "", context.site_name, request.category)
        found = rules.on_duty(rota, request.at.astimezone(context.zone))
        if found is None:
            log.info("nobody on the %s rota at %s: the team lead takes it", request.category, request.at)
            return Technician(open_id=team.lead_open_id)
        return found

    async def _rota_rows(self, settings: RepairSettings, site: str, site_name: str, category: str) -> list[Any]:
        """The rota table's duties for one site (rows naming it, or no site) and category, in table order."""
        try:
            records = await self.services.feishu.bitable_search(settings.app_token, settings.rota_table_id)
        except FeishuError as error:
            raise error.to_application_error() from error
        duties = [read_rota_row(r.fields, settings) for r in records]
        own = {site, site_name} - {""}
        return [entry for found in duties if found is not None
                for row_site, row_category, entry in [found]
                if row_category == category and (not row_site or row_site in own)]

    @activity.defn(name="repair.list_tickets")
    async def list_tickets(self, request: ReportRequest) -> list[TicketRow]:
        """The ticket rows reported in ``[since, until)`` (the monthly report's month)."""
        settings = self.services.context(request.org, SCENARIO).settings_as(RepairSettings)
        try:
            records = await self.services.feishu.bitable_search(settings.app_token, settings.tickets_table_id)
        except FeishuError as error:
            raise error.to_application_error() from error
        rows = [read_ticket_row(r.fields, settings) for r in records]
        return [r for r in rows if r.reported_at is not None and request.since <= r.reported_at < request.until]


ACTIVITIES = [RepairActivities]
