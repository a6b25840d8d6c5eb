"""The scenario's own I/O: settings for a run, reading rows (hashing contacts on the way), pool and
duplicate searches, and the report's data. Messages and Bitable writes go through the engine's Feishu
activities; rows are read here because they need parsing with the organization's settings.

Plain phone numbers and emails are read here and never returned: only their keyed hashes leave.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from temporalio import activity

from . import rules
from .config import CONTACT_HASH, RecruitingSettings
from .models import (
    SCENARIO,
    ApplicationFacts,
    Context,
    ContextRequest,
    FindOnboarding,
    LoadApplication,
    PoolMatch,
    PoolQuery,
    ReadStage,
    ReportRequest,
    RequisitionFacts,
    StageRead,
)


def _app() -> Any:
    from engine.runtime.app import current_app

    return current_app()


def _org_settings(org_id: str, site: str | None = None) -> tuple[Any, RecruitingSettings]:
    org = _app().config.org(org_id)
    return org, org.settings(SCENARIO, site=site or None)


def _calendar(org: Any, settings: RecruitingSettings) -> Any:
    return rules.calendar_for(org.timezone, [date.fromisoformat(d) for d in org.config.holidays],
                              [date.fromisoformat(d) for d in org.config.workdays], settings.use_china_calendar)


async def _rows(settings: RecruitingSettings, table: str, column: str | None = None, value: str | None = None
                ) -> list[Any]:
    flt = None
    if column and value:
        flt = {"conjunction": "and", "conditions": [{"field_name": column, "operator": "is", "value": [value]}]}
    return await _app().feishu.bitable_search(settings.app_token, table, filter=flt)


@activity.defn(name="recruiting.context")
async def load_context(request: ContextRequest) -> Context:
    """The effective settings of the group or one hospital, with the zone, locale and calendar extras."""
    org, settings = _org_settings(request.org, request.site)
    return Context(org=org.id, site=request.site, timezone=str(org.site_zone(request.site or None).key),
                   locale=(org.config.sites[request.site].locale if request.site in org.config.sites
                           and org.config.sites[request.site].locale else org.locale),
                   settings=settings.model_dump(mode="json"),
                   holidays=[date.fromisoformat(d) for d in org.config.holidays],
                   workdays=[date.fromisoformat(d) for d in org.config.workdays])


def requisition_facts(req_id: str, record_id: str | None, fields: dict[str, Any], settings: RecruitingSettings
                      ) -> RequisitionFacts:
    f = settings.fields.requisitions
    return RequisitionFacts(
        req_id=req_id, record_id=record_id,
        site=rules.cell_text(fields.get(f.site)), department=rules.cell_text(fields.get(f.department)),
        title=rules.cell_text(fields.get(f.title)), headcount=max(rules.cell_int(fields.get(f.headcount), 1), 1),
        grade=rules.cell_text(fields.get(f.grade)), tags=rules.cell_list(fields.get(f.tags)),
        recruiter=rules.cell_person(fields.get(f.recruiter)))


@activity.defn(name="recruiting.load_requisition")
async def load_requisition(request: LoadApplication) -> RequisitionFacts | None:
    """A requisition row by record id (``record_id``) or by its id column (``req_id``); None if absent."""
    _, settings = _org_settings(request.org)
    table = settings.tables.requisitions
    if request.record_id:
        record = await _app().feishu.bitable_get(settings.app_token, table, request.record_id)
        return requisition_facts(request.req_id or request.record_id, record.record_id, record.fields, settings)
    for record in await _rows(settings, table, settings.fields.requisitions.req_id, request.req_id):
        return requisition_facts(request.req_id, record.record_id, record.fields, settings)
    return None


def _pool_entry(fields: dict[str, Any], settings: RecruitingSettings, calendar: Any) -> rules.PoolEntry:
    f = settings.fields.pool
    return rules.PoolEntry(
        candidate_id=rules.cell_text(fields.get(f.candidate_id)), name=rules.cell_text(fields.get(f.name)),
        site=rules.cell_text(fields.get(f.site)), department=rules.cell_text(fields.get(f.department)),
        title=rules.cell_text(fields.get(f.title)), tags=rules.cell_list(fields.get(f.tags)),
        last_stage=rules.cell_text(fields.get(f.last_stage)),
        retain_until=rules.cell_date(fields.get(f.retain_until), calendar))


@activity.defn(name="recruiting.pool_matches")
async def pool_matches(query: PoolQuery) -> list[PoolMatch]:
    """The group's pool candidates matching a requisition (candidates already applying are left out)."""
    org, settings = _org_settings(query.org, query.site)
    calendar = _calendar(org, settings)
    pool = [_pool_entry(r.fields, settings, calendar) for r in await _rows(settings, settings.tables.pool)]
    af = settings.fields.applications
    busy = set()
    for record in await _rows(settings, settings.tables.applications):
        stage = rules.parse_stage(record.fields.get(af.stage), settings)
        if stage is not None and not rules.is_terminal(stage, settings):
            busy.add(rules.cell_text(record.fields.get(af.candidate_id)))
    req = RequisitionFacts(req_id="", site=query.site, department=query.department, title=query.title,
                           tags=query.tags)
    return rules.match_pool(req, [p for p in pool if p.candidate_id], query.as_of, settings, exclude=busy)


@activity.defn(name="recruiting.load_application")
async def load_application(request: LoadApplication) -> ApplicationFacts:
    """An application's facts: its row (or the pool entry it was invited from), the contact hashed,
    the candidate recognized among earlier applications, and whether they came from the pool."""
    org, settings = _org_settings(request.org)
    calendar = _calendar(org, settings)
    af = settings.fields.applications
    keys = org.keyring(SCENARIO).keys(CONTACT_HASH)
    fields: dict[str, Any] = {}
    hashes: list[str] = []
    also: list[str] = []  # previous keys' hashes: recognize the person across a key rotation, never stored
    if request.record_id:
        record = await _app().feishu.bitable_get(settings.app_token, settings.tables.applications, request.record_id)
        fields = record.fields
        phone, email = rules.cell_text(fields.get(af.phone)), rules.cell_text(fields.get(af.email))
        hashes = rules.contact_hashes(phone, email, keys[0])
        also = [h for h in rules.matching_hashes(phone, email, keys) if h not in hashes]
        hashes = hashes or rules.split_hashes(rules.cell_text(fields.get(af.contact_hash)))
    pool_entry = None
    if request.candidate_id:
        pf = settings.fields.pool
        for record in await _rows(settings, settings.tables.pool, pf.candidate_id, request.candidate_id):
            pool_entry = record.fields
            hashes = hashes or rules.split_hashes(rules.cell_text(record.fields.get(pf.contact_hash)))
    req_id = rules.cell_text(fields.get(af.req_id)) or request.req_id
    req = None
    if req_id:
        req_rows = await _rows(settings, settings.tables.requisitions, settings.fields.requisitions.req_id, req_id)
        if req_rows:
            req = requisition_facts(req_id, req_rows[0].record_id, req_rows[0].fields, settings)
    known = []
    for record in await _rows(settings, settings.tables.applications):
        if record.record_id == request.record_id:
            continue
        other = record.fields
        stored = rules.split_hashes(rules.cell_text(other.get(af.contact_hash)))
        if stored:  # a row already checked: its contact hashed now too, as its stored hash may be of an older key
            stored += rules.matching_hashes(rules.cell_text(other.get(af.phone)), rules.cell_text(other.get(af.email)),
                                            keys)
        known.append(rules.KnownApplication(
            application_id=rules.cell_text(other.get(af.app_id)) or record.record_id,
            candidate_id=rules.cell_text(other.get(af.candidate_id)),
            hashes=stored,
            site=rules.cell_text(other.get(af.site)), req_id=rules.cell_text(other.get(af.req_id)),
            stage=rules.parse_stage(other.get(af.stage), settings) or ""))
    candidate, linked, _ = rules.link_candidate(request.application_id, hashes + also, known)
    candidate = request.candidate_id or candidate
    in_pool = pool_entry is not None
    if not in_pool and candidate:
        in_pool = bool(await _rows(settings, settings.tables.pool, settings.fields.pool.candidate_id, candidate))
    name = rules.cell_text(fields.get(af.name)) or (
        rules.cell_text(pool_entry.get(settings.fields.pool.name)) if pool_entry else "")
    return ApplicationFacts(
        application_id=request.application_id, record_id=request.record_id, name=name, req_id=req_id,
        site=rules.cell_text(fields.get(af.site)) or (req.site if req else ""),
        department=rules.cell_text(fields.get(af.department)) or (req.department if req else ""),
        title=rules.cell_text(fields.get(af.title)) or (req.title if req else ""),
        tags=rules.cell_list(fields.get(af.tags)) or (req.tags if req else []),
        stage=rules.parse_stage(fields.get(af.stage), settings) or "",
        consent=rules.cell_bool(fields.get(af.consent)) or in_pool,
        start_date=rules.cell_date(fields.get(af.start_date), calendar),
        contact_hash=",".join(hashes), candidate_id=candidate, linked=linked, in_pool=in_pool)


@activity.defn(name="recruiting.read_stage")
async def read_stage(request: ReadStage) -> StageRead:
    """The stage (and planned start date) an application row shows now (after a Bitable edit)."""
    org, settings = _org_settings(request.org)
    af = settings.fields.applications
    record = await _app().feishu.bitable_get(settings.app_token, settings.tables.applications, request.record_id)
    return StageRead(stage=rules.parse_stage(record.fields.get(af.stage), settings) or "",
                     start_date=rules.cell_date(record.fields.get(af.start_date), _calendar(org, settings)))


@activity.defn(name="recruiting.find_onboarding")
async def find_onboarding(request: FindOnboarding) -> list[str]:
    """Application ids of onboarding records (not yet matched) whose contact hash is one of ``hashes``."""
    _, settings = _org_settings(request.org)
    of = settings.fields.onboarding
    wanted = set(request.hashes)
    found = []
    for record in await _rows(settings, settings.tables.onboarding):
        fields = record.fields
        if rules.cell_text(fields.get(of.open_id)):
            continue
        if wanted & set(rules.split_hashes(rules.cell_text(fields.get(of.contact_hash)))):
            found.append(rules.cell_text(fields.get(of.app_id)))
    return [f for f in found if f]


async def report_for(org_id: str, month: str, as_of: Any) -> rules.Report:
    """Read the three tables and compute the month's report (shared by the workflow and the command)."""
    org, settings = _org_settings(org_id)
    calendar = _calendar(org, settings)
    reqs = [r.fields for r in await _rows(settings, settings.tables.requisitions)]
    apps = [r.fields for r in await _rows(settings, settings.tables.applications)]
    people = [r.fields for r in await _rows(settings, settings.tables.onboarding)]
    return rules.compute_report(month, reqs, apps, people, as_of, settings, calendar, sites=org.site_ids)


@activity.defn(name="recruiting.build_report")
async def build_report(request: ReportRequest) -> rules.Report:
    """The monthly report of one organization, computed from the recorded rows."""
    return await report_for(request.org, request.month, request.as_of)


ACTIVITIES = [load_context, load_requisition, pool_matches, load_application, read_stage, find_onboarding,
              build_report]
