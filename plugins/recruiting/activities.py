"""The scenario's own I/O: rows read (contacts hashed on the way), pool and duplicate searches, the report's
data, and status look-ups. Messages and Bitable writes go through the engine's Feishu activities; rows are
read here because they need parsing with the organization's settings.

The worker builds :class:`RecruitingActivities` once with the engine's services (``engine.sdk.Services``):
the config, the Feishu client and the Temporal client are passed in, never read from a global.

Plain phone numbers and emails are read here and never returned: only their keyed hashes leave.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import activity

from engine.sdk import FeishuError, OrgContext, Services, UnknownContext, workflow_id

from . import hr_report, hr_rules, reading, rules
from .config import CONTACT_HASH, RecruitingSettings
from .models import (
    SCENARIO,
    ApplicationFacts,
    Context,
    ContextRequest,
    FindOnboarding,
    LeaverInput,
    LoadApplication,
    PoolMatch,
    PoolQuery,
    ReadStage,
    ReportRequest,
    RequisitionFacts,
    SnapshotRequest,
    StageRead,
    StatusAnswer,
    StatusLookup,
    app_key,
    onboarding_key,
    req_key,
)


def _calendar(services: Services, org_id: str, settings: RecruitingSettings, site: str | None = None) -> Any:
    """The working days in the zone of ``site`` (id or name; the group's when None): a date cell shows a day
    there."""
    ctx = services.context(org_id, SCENARIO, site or None)
    return rules.calendar_for(ctx.timezone, ctx.holidays, ctx.workdays, settings.use_china_calendar)


def requisition_facts(req_id: str, record_id: str | None, fields: dict[str, Any], settings: RecruitingSettings
                      ) -> RequisitionFacts:
    f = settings.fields.requisitions
    return RequisitionFacts(
        req_id=req_id, record_id=record_id,
        site=reading.text(fields, f.site), department=reading.text(fields, f.department),
        title=reading.text(fields, f.title), headcount=max(reading.count(fields, f.headcount, 1), 1),
        grade=reading.text(fields, f.grade), tags=reading.tags(fields, f.tags),
        recruiter=reading.person_id(fields, f.recruiter), reason=reading.text(fields, f.reason))


def _pool_entry(fields: dict[str, Any], settings: RecruitingSettings, calendar: Any) -> rules.PoolEntry:
    f = settings.fields.pool
    return rules.PoolEntry(
        candidate_id=reading.text(fields, f.candidate_id), name=reading.text(fields, f.name),
        site=reading.text(fields, f.site), department=reading.text(fields, f.department),
        title=reading.text(fields, f.title), tags=reading.tags(fields, f.tags),
        last_stage=reading.text(fields, f.last_stage), retain_until=reading.day(fields, f.retain_until, calendar))


class RecruitingActivities:
    """recruiting's activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _group(self, org_id: str) -> tuple[OrgContext, RecruitingSettings]:
        # the tables are the group's (sites override people and timing, not where the tables are)
        org = self.services.org(org_id)
        return org, self.services.context(org_id, SCENARIO).settings_as(RecruitingSettings)

    async def _feishu(self, call: Any) -> Any:
        try:
            return await call
        except FeishuError as error:
            raise error.to_application_error() from error

    async def _rows(self, settings: RecruitingSettings, table: str, column: str | None = None,
                    value: str | None = None) -> list[Any]:
        flt = None
        if column and value:
            flt = {"conjunction": "and", "conditions": [{"field_name": column, "operator": "is", "value": [value]}]}
        return await self._feishu(self.services.feishu.bitable_search(settings.app_token, table, filter=flt))

    async def _get(self, settings: RecruitingSettings, table: str, record_id: str) -> Any:
        return await self._feishu(self.services.feishu.bitable_get(settings.app_token, table, record_id))

    @activity.defn(name="recruiting.context")
    async def load_context(self, request: ContextRequest) -> Context:
        """The context of runs recorded before ``load_site_context`` (kept so they replay and finish)."""
        site = self.services.context(request.org, SCENARIO, request.site or None)
        return Context(org=site.org, site=request.site, timezone=site.timezone, locale=site.locale,
                       settings=site.settings, holidays=site.holidays, workdays=site.workdays)

    @activity.defn(name="recruiting.load_requisition")
    async def load_requisition(self, request: LoadApplication) -> RequisitionFacts | None:
        """A requisition row by record id (``record_id``) or by its id column (``req_id``); None if absent."""
        _, settings = self._group(request.org)
        table = settings.tables.requisitions
        if request.record_id:
            record = await self._get(settings, table, request.record_id)
            return requisition_facts(request.req_id or request.record_id, record.record_id, record.fields, settings)
        for record in await self._rows(settings, table, settings.fields.requisitions.req_id, request.req_id):
            return requisition_facts(request.req_id, record.record_id, record.fields, settings)
        return None

    @activity.defn(name="recruiting.pool_matches")
    async def pool_matches(self, query: PoolQuery) -> list[PoolMatch]:
        """The group's pool candidates matching a requisition (candidates already applying are left out)."""
        org, settings = self._group(query.org)
        calendar = _calendar(self.services, org.id, settings)
        pool = [_pool_entry(r.fields, settings, calendar) for r in await self._rows(settings, settings.tables.pool)]
        af = settings.fields.applications
        busy = set()
        for record in await self._rows(settings, settings.tables.applications):
            stage = rules.parse_stage(record.fields.get(af.stage), settings)
            if stage is not None and not rules.is_terminal(stage, settings):
                busy.add(reading.text(record.fields, af.candidate_id))
        req = RequisitionFacts(req_id="", site=query.site, department=query.department, title=query.title,
                               tags=query.tags)
        matches = rules.match_pool(req, [p for p in pool if p.candidate_id], query.as_of, settings, exclude=busy)
        for match in matches:  # the card names the hospitals
            match.site = self._site_name(org.id, match.site) or match.site
        return matches

    def _site_name(self, org_id: str, site: str) -> str:
        """A hospital's configured name ("" for an unknown site or one without a name)."""
        if not site:
            return ""
        context = self.services.context(org_id, SCENARIO, site)
        return context.site_name if context.site else ""

    @activity.defn(name="recruiting.load_application")
    async def load_application(self, request: LoadApplication) -> ApplicationFacts:
        """An application's facts: its row (or the pool entry it was invited from), the contact hashed,
        the candidate recognized among earlier applications, and whether they came from the pool."""
        org, settings = self._group(request.org)
        af = settings.fields.applications
        keys = org.keyring(SCENARIO).keys(CONTACT_HASH)
        fields: dict[str, Any] = {}
        hashes: list[str] = []
        also: list[str] = []  # previous keys' hashes: recognize the person across a key rotation, never stored
        if request.record_id:
            record = await self._get(settings, settings.tables.applications, request.record_id)
            fields = record.fields
            phone, email = reading.text(fields, af.phone), reading.text(fields, af.email)
            hashes = rules.contact_hashes(phone, email, keys[0])
            also = [h for h in rules.matching_hashes(phone, email, keys) if h not in hashes]
            hashes = hashes or rules.split_hashes(reading.text(fields, af.contact_hash))
        pool_entry = None
        if request.candidate_id:
            pf = settings.fields.pool
            for record in await self._rows(settings, settings.tables.pool, pf.candidate_id, request.candidate_id):
                pool_entry = record.fields
                hashes = hashes or rules.split_hashes(reading.text(record.fields, pf.contact_hash))
        req_id = reading.text(fields, af.req_id) or request.req_id
        req = None
        if req_id:
            req_rows = await self._rows(settings, settings.tables.requisitions, settings.fields.requisitions.req_id,
                                        req_id)
            if req_rows:
                req = requisition_facts(req_id, req_rows[0].record_id, req_rows[0].fields, settings)
        known = []
        for record in await self._rows(settings, settings.tables.applications):
            if record.record_id == request.record_id:
                continue
            other = record.fields
            stored = rules.split_hashes(reading.text(other, af.contact_hash))
            if stored:  # a row already checked: its contact hashed now too, as its stored hash may be of an older key
                stored += rules.matching_hashes(reading.text(other, af.phone), reading.text(other, af.email), keys)
            known.append(rules.KnownApplication(
                application_id=reading.text(other, af.app_id) or record.record_id,
                candidate_id=reading.text(other, af.candidate_id), hashes=stored,
                site=reading.text(other, af.site), req_id=reading.text(other, af.req_id),
                stage=rules.parse_stage(other.get(af.stage), settings) or ""))
        candidate, linked, _ = rules.link_candidate(request.application_id, hashes + also, known)
        for link in linked:  # the other hospitals by their names, as the notice shows them
            link.site_name = self._site_name(org.id, link.site)
        candidate = request.candidate_id or candidate
        in_pool = pool_entry is not None
        if not in_pool and candidate:
            in_pool = bool(await self._rows(settings, settings.tables.pool, settings.fields.pool.candidate_id,
                                            candidate))
        name = reading.text(fields, af.name) or (
            reading.text(pool_entry, settings.fields.pool.name) if pool_entry else "")
        site = reading.text(fields, af.site) or (req.site if req else "")
        return ApplicationFacts(
            application_id=request.application_id, record_id=request.record_id, name=name, req_id=req_id,
            site=site,
            department=reading.text(fields, af.department) or (req.department if req else ""),
            title=reading.text(fields, af.title) or (req.title if req else ""),
            tags=reading.tags(fields, af.tags) or (req.tags if req else []),
            stage=rules.parse_stage(fields.get(af.stage), settings) or "",
            consent=reading.flag(fields, af.consent) or in_pool,
            start_date=reading.day(fields, af.start_date, _calendar(self.services, org.id, settings, site)),
            contact_hash=",".join(hashes), candidate_id=candidate, linked=linked, in_pool=in_pool)

    @activity.defn(name="recruiting.read_stage")
    async def read_stage(self, request: ReadStage) -> StageRead:
        """The stage (and planned start date) an application row shows now (after a Bitable edit)."""
        org, settings = self._group(request.org)
        af = settings.fields.applications
        record = await self._get(settings, settings.tables.applications, request.record_id)
        return StageRead(stage=rules.parse_stage(record.fields.get(af.stage), settings) or "",
                         start_date=reading.day(record.fields, af.start_date,
                                                _calendar(self.services, org.id, settings, request.site)))

    @activity.defn(name="recruiting.find_onboarding")
    async def find_onboarding(self, request: FindOnboarding) -> list[str]:
        """Application ids of onboarding records (not yet matched) whose contact hash is one of ``hashes``."""
        _, settings = self._group(request.org)
        of = settings.fields.onboarding
        wanted = set(request.hashes)
        found = []
        for record in await self._rows(settings, settings.tables.onboarding):
            fields = record.fields
            if reading.text(fields, of.open_id):
                continue
            if wanted & set(rules.split_hashes(reading.text(fields, of.contact_hash))):
                found.append(reading.text(fields, of.app_id))
        return [f for f in found if f]

    @activity.defn(name="recruiting.build_report")
    async def build_report(self, request: ReportRequest) -> rules.Report:
        """The monthly report of one organization, computed from the recorded rows."""
        return await self._feishu(report_for(self.services, request.org, request.month, request.as_of))

    @activity.defn(name="recruiting.record_staff_snapshot")
    async def record_staff_snapshot(self, request: SnapshotRequest) -> hr_report.SnapshotResult:
        """The contact directory as it is now, recorded as ``month``'s staff snapshot."""
        return await self._feishu(hr_report.record_snapshot(self.services, request.org, request.month,
                                                            request.client_token))

    @activity.defn(name="recruiting.record_leaver")
    async def record_leaver(self, leaver: LeaverInput) -> str:
        """An account removed from the directory, recorded in the leavers table; returns its site."""
        wid = activity.info().workflow_id
        return await self._feishu(hr_report.record_leaver(self.services, leaver, f"{wid}:leaver"))

    @activity.defn(name="recruiting.build_hr_report")
    async def build_hr_report(self, request: ReportRequest) -> hr_rules.HrReport:
        """The HR monthly report, computed from the recorded snapshots and tables."""
        return await self._feishu(hr_report.hr_report_for(self.services, request.org, request.month, request.as_of))

    @activity.defn(name="recruiting.status")
    async def status(self, lookup: StatusLookup) -> StatusAnswer:
        """What "<key> 状态" asks: the requisition or the application (with its onboarding) under ``key``.

        Reads the workflows' ``state`` queries; only what a group chat may see is handed back (names,
        hospital, position, stage, dates), never a contact.
        """
        org = self.services.org(lookup.org)
        requisition = await self._state(org, req_key(lookup.key))
        if requisition is not None:
            facts = requisition.get("facts") or {}
            return StatusAnswer(kind="requisition", key=lookup.key, site=str(facts.get("site") or ""),
                                status=str(requisition.get("status") or ""),
                                title=str(facts.get("title") or ""), department=str(facts.get("department") or ""),
                                headcount=int(facts.get("headcount") or 0), hired=len(requisition.get("hired") or []),
                                # a requisition closed while pending waits for nobody
                                waiting_for=next((s.get("role", "") for s in requisition.get("chain") or []
                                                  if s.get("status") == "pending"
                                                  and requisition.get("status") == "pending_approval"), ""))
        application = await self._state(org, app_key(lookup.key))
        if application is None:
            return await self._status_from_table(lookup.org, lookup.key)
        onboarding = await self._state(org, onboarding_key(lookup.key))
        return StatusAnswer(kind="application", key=lookup.key, site=str(application.get("site") or ""),
                            status=str(application.get("stage") or ""), name=str(application.get("name") or ""),
                            req_id=str(application.get("req_id") or ""),
                            since=_moment(application.get("stage_at")), sla_due=_moment(application.get("sla_due")),
                            onboarding=str(onboarding.get("status") or "") if onboarding else "")

    async def _status_from_table(self, org_id: str, key: str) -> StatusAnswer:
        """A row no workflow follows (a seeded requisition marked open, an application row never pushed):
        what its cells say, marked ``from_table``; nothing under the key answers ``kind=""``."""
        _, settings = self._group(org_id)
        rf, af = settings.fields.requisitions, settings.fields.applications
        for record in await self._rows(settings, settings.tables.requisitions, rf.req_id, key):
            facts = requisition_facts(key, record.record_id, record.fields, settings)
            return StatusAnswer(kind="requisition", key=key, site=facts.site, title=facts.title,
                                department=facts.department, headcount=facts.headcount,
                                status=reading.text(record.fields, rf.status),
                                hired=reading.count(record.fields, rf.hired), from_table=True)
        for record in await self._rows(settings, settings.tables.applications):
            if key in (record.record_id, reading.text(record.fields, af.app_id)):
                fields = record.fields
                return StatusAnswer(kind="application", key=key, site=reading.text(fields, af.site),
                                    status=rules.parse_stage(fields.get(af.stage), settings) or "",
                                    name=reading.text(fields, af.name), req_id=reading.text(fields, af.req_id),
                                    from_table=True)
        return StatusAnswer(key=key)

    async def _state(self, org: OrgContext, key: str) -> dict[str, Any] | None:
        """A workflow's ``state`` answer as JSON, None when no workflow ran under the key."""
        from temporalio.client import WorkflowQueryFailedError
        from temporalio.service import RPCError, RPCStatusCode

        if self.services.temporal is None:
            raise UnknownContext("no Temporal client: status look-ups need the worker's")
        handle = self.services.temporal.get_workflow_handle(workflow_id(org.id, SCENARIO, key))
        try:
            state = await handle.query("state")
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise
        except WorkflowQueryFailedError:
            return None
        data = state.model_dump(mode="json") if hasattr(state, "model_dump") else state
        return data if isinstance(data, dict) else None


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


async def report_for(services: Services, org_id: str, month: str, as_of: datetime) -> rules.Report:
    """Read the three tables and compute the month's report (shared by the workflow and the command).

    Raises :class:`engine.sdk.FeishuError` when a table cannot be read.
    """
    org = services.org(org_id)
    settings = services.context(org_id, SCENARIO).settings_as(RecruitingSettings)
    calendar = _calendar(services, org_id, settings)

    async def fields(table: str) -> list[dict[str, Any]]:
        return [r.fields for r in await services.feishu.bitable_search(settings.app_token, table)]

    reqs = await fields(settings.tables.requisitions)
    apps = await fields(settings.tables.applications)
    people = await fields(settings.tables.onboarding)
    report = rules.compute_report(month, reqs, apps, people, as_of, settings, calendar, sites=org.site_ids)
    for row in report.rows:  # cards show hospitals by name, never by site id
        site = org.config.sites.get(row.site) if row.site != "*" else None
        row.name = "" if row.site == "*" else (site.name if site and site.name else row.site)
    return report


ACTIVITIES = [RecruitingActivities]
