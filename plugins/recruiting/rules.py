"""Pure decisions of the recruiting scenario: contacts, pool matches, approvals, stages, SLAs, checklists,
risk warnings and the monthly report.

Nothing here reads the clock, the environment or the network: callers pass ``now``, the contact key and
the rows. Safe inside Temporal workflows (engine.sdk is passed through by the workflow module).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from engine.sdk import ApprovalSettings as FeishuApprovalSettings
from engine.sdk import Decision, WorkCalendar, add_months, cells, first_workday_of_month

from . import reading
from .config import ApplicationFields, ChecklistItem, RecruitingSettings
from .models import ApprovalStep, ChecklistEntry, Linked, PoolMatch, RequisitionFacts

# ------------------------------------------------------------------------------------------ contacts

_PHONE_JUNK = re.compile(r"[\s\-().\u00a0\u3000]")


def normalize_phone(raw: str | None) -> str | None:
    """A phone number as one canonical string: mainland mobiles as 11 digits, others ``+<digits>``.

    ``+86 138-0000-0001``, ``0086 13800000001``, ``(86)138 0000 0001`` and ``13800000001`` are one number.
    Returns None when nothing like a phone number is left.
    """
    if not raw:
        return None
    text = _PHONE_JUNK.sub("", str(raw).strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    plus = text.startswith("+")
    digits = text.lstrip("+")
    if not digits.isdigit():
        return None
    if digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        return digits[2:]  # +86 / 0086 / 86 before a mainland mobile
    if len(digits) == 11 and digits.startswith("1"):
        return digits
    if len(digits) < 6:
        return None
    return f"+{digits}" if plus else digits


def normalize_email(raw: str | None) -> str | None:
    """An email lower-cased and trimmed; None when it is not an address."""
    if not raw:
        return None
    text = str(raw).strip().lower()
    if text.count("@") != 1 or text.startswith("@") or text.endswith("@"):
        return None
    return text


def contact_hash(kind: str, normalized: str, key: bytes) -> str:
    """HMAC-SHA256 of one normalized contact (``kind`` is ``phone`` or ``email``), hex.

    Keyed, not salted: a mobile prefix holds 10^8 numbers, so a plain hash with a known salt is reversed
    by hashing them all; without the key there is nothing to compare against.
    """
    return hmac.new(key, f"{kind}\x1f{normalized}".encode(), hashlib.sha256).hexdigest()


def contact_hashes(phone: str | None, email: str | None, key: bytes) -> list[str]:
    """The hashes that identify a person: phone first, then email (either may be missing)."""
    out = []
    if (p := normalize_phone(phone)) is not None:
        out.append(contact_hash("phone", p, key))
    if (e := normalize_email(email)) is not None:
        out.append(contact_hash("email", e, key))
    return out


def matching_hashes(phone: str | None, email: str | None, keys: Sequence[bytes]) -> list[str]:
    """The hashes to look a person up by: those of the current key first, then those of previous keys
    (still accepted while a key rotation's grace period lasts)."""
    out: list[str] = []
    for key in keys:
        out += [h for h in contact_hashes(phone, email, key) if h not in out]
    return out


def split_hashes(value: str) -> list[str]:
    """Hashes as stored in one Bitable cell (comma separated)."""
    return [h for h in (part.strip() for part in str(value or "").split(",")) if h]


class KnownApplication(BaseModel):
    """Another application as the duplicate check sees it."""

    application_id: str
    candidate_id: str = ""
    hashes: list[str] = Field(default_factory=list)
    site: str = ""
    req_id: str = ""
    stage: str = ""


def link_candidate(application_id: str, hashes: Sequence[str], known: Iterable[KnownApplication]
                   ) -> tuple[str, list[Linked], Decision]:
    """The candidate id of a new application and the same person's other applications.

    A person is recognized by any shared contact hash. The candidate id of the earliest linked
    application is reused (linked, not duplicated); a new person gets ``c_`` + the first hash's prefix.
    """
    wanted = set(hashes)
    linked = [k for k in known if k.application_id != application_id and wanted & set(k.hashes)]
    if not hashes:
        return "", [], Decision(action="new", reason="no phone or email: cannot recognize duplicates")
    existing = next((k.candidate_id for k in linked if k.candidate_id), "")
    candidate = existing or f"c_{hashes[0][:16]}"
    links = [Linked(application_id=k.application_id, site=k.site, req_id=k.req_id, stage=k.stage) for k in linked]
    if links:
        sites = sorted({k.site for k in linked if k.site})
        reason = (f"same person as {len(links)} earlier application(s) (matching phone or email hash)"
                  + (f" at {', '.join(sites)}" if sites else ""))
        return candidate, links, Decision(action="duplicate", reason=reason, data={"candidate_id": candidate})
    return candidate, [], Decision(action="new", reason="no earlier application with this phone or email")


# ------------------------------------------------------------------------------------------- pool


class PoolEntry(BaseModel):
    candidate_id: str
    name: str = ""
    site: str = ""
    department: str = ""
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    last_stage: str = ""
    retain_until: date | None = None


def _norm(text: str) -> str:
    return " ".join(str(text or "").split()).casefold()


def match_pool(req: RequisitionFacts, pool: Iterable[PoolEntry], as_of: date, settings: RecruitingSettings,
               exclude: Iterable[str] = ()) -> list[PoolMatch]:
    """Pool candidates for a requisition: department and title count 2 each, every shared tag 1.

    Expired entries (past ``retain_until``) and ``exclude`` (candidates already in this pipeline) never
    match; the best ``max_matches`` with at least ``min_score`` are returned, best first.
    """
    skip = set(exclude)
    req_tags = {_norm(t) for t in req.tags if _norm(t)}
    matches: list[PoolMatch] = []
    for entry in pool:
        if entry.candidate_id in skip or (entry.retain_until is not None and entry.retain_until < as_of):
            continue
        score, reasons = 0, []
        if req.department and _norm(entry.department) == _norm(req.department):
            score += 2
            reasons.append(f"department {req.department}")
        if req.title and _norm(entry.title) == _norm(req.title):
            score += 2
            reasons.append(f"title {req.title}")
        shared = sorted(req_tags & {_norm(t) for t in entry.tags})
        if shared:
            score += len(shared)
            reasons.append(f"tags {', '.join(shared)}")
        if score >= settings.pool.min_score:
            matches.append(PoolMatch(candidate_id=entry.candidate_id, name=entry.name, site=entry.site,
                                     department=entry.department, title=entry.title, last_stage=entry.last_stage,
                                     score=score, reasons=reasons))
    matches.sort(key=lambda m: (-m.score, m.name, m.candidate_id))
    return matches[: settings.pool.max_matches]


def pool_admission(consent: bool, exit_stage: str, ended: date, settings: RecruitingSettings) -> Decision:
    """Whether a candidate who left the pipeline (rejected, withdrew) stays in the group's pool."""
    if not settings.pool.enabled:
        return Decision.nothing("the talent pool is switched off")
    if settings.pool.require_consent and not consent:
        return Decision.nothing("no consent to keep the candidate in the pool")
    until = ended + timedelta(days=settings.pool.retention_days)
    return Decision(action="keep", reason=f"{exit_stage}: kept in the pool until {until.isoformat()} "
                    f"(retention {settings.pool.retention_days} days)", data={"retain_until": until.isoformat()})


# -------------------------------------------------------------------------------------- approvals


def approval_chain(req: RequisitionFacts, settings: RecruitingSettings) -> tuple[list[ApprovalStep], Decision]:
    """Who approves a requisition, in order, and why: the hospital head; group HR too above a threshold.

    ``settings`` are the site's effective settings (the site's hospital head).
    """
    approval = settings.approval
    steps = [ApprovalStep(role=approval.first_role, approver=settings.roles.get(approval.first_role))]
    reasons = [f"{approval.first_role} approves every requisition"]
    big = req.headcount >= approval.group_headcount_threshold
    senior = bool(req.grade) and req.grade in approval.group_grades
    if big or senior:
        steps.append(ApprovalStep(role=approval.second_role, approver=settings.roles.get(approval.second_role)))
        why = []
        if big:
            why.append(f"headcount {req.headcount} >= {approval.group_headcount_threshold}")
        if senior:
            why.append(f"grade {req.grade} is one of {'/'.join(approval.group_grades)}")
        reasons.append(f"{approval.second_role} too: {' and '.join(why)}")
    missing = [s.role for s in steps if not s.approver]
    if missing:
        return steps, Decision(action="refuse", reason=f"nobody holds role(s) {', '.join(missing)}; "
                               "set them in settings.recruiting.roles")
    return steps, Decision(action="chain", reason="; ".join(reasons), data={"levels": len(steps)})


def feishu_approval(chain: Sequence[ApprovalStep], settings: RecruitingSettings) -> FeishuApprovalSettings:
    """The Feishu approval settings of one requisition (``settings``: the site's effective ones).

    Each step of the chain fills the definition's node named like its role with the role's holder; the
    configured ``approval.feishu.approvers`` replace a node's (role names become their holders), except
    for a chain role the rules left out (group HR below the threshold: that node gets nobody, and the
    definition passes a node without approvers). Role names in ``escalate_to`` become their holders.
    """
    feishu = settings.approval.feishu
    chain_roles = {settings.approval.first_role, settings.approval.second_role}
    in_chain = {step.role for step in chain}

    def people(names: Iterable[str]) -> list[str]:
        found = [name if name.startswith("ou_") else settings.roles.get(name) for name in names]
        return list(dict.fromkeys(p for p in found if p))

    approvers = {step.role: [step.approver] for step in chain if step.approver}
    for node, names in feishu.approvers.items():
        if node in in_chain or node not in chain_roles:
            approvers[node] = people(names)
    return feishu.model_copy(update={"approvers": approvers, "escalate_to": people(feishu.escalate_to)})


def approval_form(req: RequisitionFacts, site_name: str, settings: RecruitingSettings) -> list[dict[str, Any]]:
    """The Feishu approval form's widget values for a requisition: position, headcount, hospital, reason."""
    widgets = settings.approval.form
    position = " ".join(part for part in (req.department, req.title) if part)
    return [{"id": widgets.position, "type": "input", "value": position},
            {"id": widgets.headcount, "type": "number", "value": req.headcount},
            {"id": widgets.hospital, "type": "input", "value": site_name or req.site},
            {"id": widgets.reason, "type": "textarea", "value": req.reason or position}]


# ------------------------------------------------------------------------------------------ stages


def parse_stage(value: Any, settings: RecruitingSettings) -> str | None:
    """Our stage name for a Bitable cell (its label or its name), None when unknown."""
    text = _norm(reading.value_text(value))
    if not text:
        return None
    for spec in settings.stages:
        if text in (_norm(spec.name), _norm(spec.label)):
            return spec.name
    for name in settings.exits:
        if text in (_norm(name), _norm(settings.exit_labels.get(name, ""))):
            return name
    return None


def is_terminal(stage: str, settings: RecruitingSettings) -> bool:
    return stage in settings.exits or stage == settings.stage_names[-1]


def check_move(current: str, to: str, settings: RecruitingSettings) -> Decision:
    """Whether an application may move from ``current`` to ``to``: forward (skipping is fine) or an exit."""
    names = settings.stage_names
    if to not in names and to not in settings.exits:
        return Decision(action="refuse", reason=f"unknown stage {to!r}; stages are {', '.join(names)}")
    if to == current:
        return Decision.nothing(f"already {current}")
    if is_terminal(current, settings):
        return Decision(action="refuse", reason=f"the application already ended ({current})")
    if to in settings.exits:
        return Decision(action="move", reason=f"{current} → {to} (exit)")
    if names.index(to) < names.index(current):
        return Decision(action="refuse", reason=f"cannot go back from {current} to {to}")
    skipped = names[names.index(current) + 1: names.index(to)]
    note = f", skipping {', '.join(skipped)}" if skipped else ""
    return Decision(action="move", reason=f"{current} → {to}{note}")


# ----------------------------------------------------------------------------------------- notices


class Notice(BaseModel):
    """One planned message: ``series`` groups reminders of which only the latest due one is sent."""

    step: str
    series: str
    at: datetime
    to: str  # a role
    kind: str
    reason: str
    data: dict[str, Any] = Field(default_factory=dict)


def calendar_for(zone: str, holidays: Iterable[date] = (), workdays: Iterable[date] = (),
                 use_china_calendar: bool = True) -> WorkCalendar:
    return WorkCalendar(zone, holidays=holidays, workdays=workdays, use_china_calendar=use_china_calendar)


def sla_due(entered_at: datetime, days: int | None, settings: RecruitingSettings, calendar: WorkCalendar
            ) -> datetime | None:
    """When an SLA of ``days`` working days, started at ``entered_at``, lapses (UTC; None without SLA)."""
    if not days:
        return None
    start = calendar.local(entered_at).date()
    return calendar.at_local(calendar.add_workdays(start, days), settings.sla.deadline_at).astimezone(UTC)


def sla_notices(application_id: str, stage: str, entered_at: datetime, seq: int, settings: RecruitingSettings,
                calendar: WorkCalendar) -> list[Notice]:
    """The SLA plan of one stage visit: nudge the owner on the last working day, escalate after it.

    ``seq`` numbers the stage visits, so the steps of a later visit never collide with an earlier one.
    """
    spec = settings.stage(stage)
    days = settings.sla_workdays.get(stage)
    due = sla_due(entered_at, days, settings, calendar)
    if spec is None or due is None or days is None:
        return []
    due_day = calendar.local(due).date()
    base = f"sla:{seq}:{stage}"
    nudge_at = calendar.at_local(due_day, settings.sla.send_at).astimezone(UTC)
    notices = []
    if nudge_at > entered_at:
        notices.append(Notice(step=f"{base}:nudge", series=f"{base}:nudge", at=nudge_at, to=spec.owner, kind="nudge",
                              reason=calendar.mark_provisional(
                                  f"{stage}: SLA {days} working day(s) lapses {_local(due, calendar)}; "
                                  f"nudging the {spec.owner} on the last working day",
                                  calendar.local(entered_at).date(), due_day),
                              data={"due": due.isoformat(), "days": days}))
    for k in range(1, settings.sla.escalate_times + 1):
        day = calendar.add_workdays(due_day, k * settings.sla.escalate_every_workdays)
        notices.append(Notice(step=f"{base}:escalate:{k}", series=f"{base}:escalate", at=calendar.at_local(
            day, settings.sla.send_at).astimezone(UTC), to=spec.escalate_to, kind="escalate",
            reason=calendar.mark_provisional(
                f"{stage}: SLA lapsed {_local(due, calendar)}; escalation {k}/{settings.sla.escalate_times} "
                f"to the {spec.escalate_to}, every {settings.sla.escalate_every_workdays} working day(s)",
                calendar.local(entered_at).date(), due_day, day),
            data={"due": due.isoformat(), "days": days, "k": k}))
    return notices


def _local(moment: datetime, calendar: WorkCalendar) -> str:
    return calendar.local(moment).strftime("%Y-%m-%d %H:%M")


def pick_due(notices: Iterable[Notice], fired: Iterable[str], now: datetime
             ) -> tuple[list[Notice], list[str], datetime | None]:
    """What to send now, what a later notice made obsolete, and when the next one is due.

    Of the unsent notices of one series whose moment has passed, only the latest goes out (a warning
    "probation ends in 30 days" is pointless once the 7-day one is due); the others are skipped.
    """
    done = set(fired)
    pending = sorted((n for n in notices if n.step not in done), key=lambda n: n.at)
    due = [n for n in pending if n.at <= now]
    latest: dict[str, Notice] = {}
    for notice in due:
        latest[notice.series] = notice
    send = sorted(latest.values(), key=lambda n: n.at)
    skipped = [n.step for n in due if latest[n.series] is not n]
    later = [n.at for n in pending if n.at > now]
    return send, skipped, min(later) if later else None


# --------------------------------------------------------------------------------------- checklists


def checklist(items: Sequence[ChecklistItem], anchor: date, settings: RecruitingSettings,
              calendar: WorkCalendar) -> list[ChecklistEntry]:
    """Checklist entries due ``due_offset_workdays`` working days from ``anchor`` (the start/last day)."""
    return [ChecklistEntry(id=item.id, label=item.label, owner=settings.item_owner(item),
                           due=calendar.add_workdays(anchor, item.due_offset_workdays)) for item in items]


def checklist_notices(prefix: str, entries: Iterable[ChecklistEntry], settings: RecruitingSettings,
                      calendar: WorkCalendar) -> list[Notice]:
    """Reminders to each open item's owner before it is due, and escalations once it is overdue."""
    timing = settings.checklist
    notices = []
    for entry in entries:
        if entry.done_at is not None:
            continue
        # the previous N-th workday (N == 0: the due day itself, or the workday before it)
        remind_day = calendar.add_workdays(entry.due, -timing.remind_workdays_before) \
            if timing.remind_workdays_before else calendar.previous_workday(entry.due)
        notices.append(Notice(
            step=f"{prefix}:{entry.id}:remind", series=f"{prefix}:{entry.id}:remind",
            at=calendar.at_local(remind_day, settings.sla.send_at).astimezone(UTC), to=entry.owner, kind="item_due",
            reason=calendar.mark_provisional(f"{entry.label} due {entry.due.isoformat()}: reminding the "
                                             f"{entry.owner} {timing.remind_workdays_before} working day(s) ahead",
                                             remind_day, entry.due),
            data={"item": entry.id, "due": entry.due.isoformat()}))
        for k in range(1, timing.escalate_times + 1):
            day = calendar.add_workdays(entry.due, k * timing.escalate_every_workdays)
            notices.append(Notice(
                step=f"{prefix}:{entry.id}:overdue:{k}", series=f"{prefix}:{entry.id}:overdue",
                at=calendar.at_local(day, settings.sla.send_at).astimezone(UTC), to=timing.escalate_to,
                kind="item_overdue", reason=calendar.mark_provisional(
                    f"{entry.label} overdue since {entry.due.isoformat()} (owner {entry.owner}); "
                    f"warning {k}/{timing.escalate_times} to {timing.escalate_to}", entry.due, day),
                data={"item": entry.id, "due": entry.due.isoformat(), "owner": entry.owner, "k": k}))
    return notices


def overdue_items(entries: Iterable[ChecklistEntry], today: date) -> list[ChecklistEntry]:
    return [e for e in entries if e.done_at is None and e.due < today]


# -------------------------------------------------------------------------------------------- risks


def probation_end(start: date, months: int) -> date | None:
    """The last day of probation (``months`` after the start date, the day before); None without one."""
    return add_months(start, months) - timedelta(days=1) if months else None


def contract_end(start: date, months: int) -> date:
    return add_months(start, months) - timedelta(days=1)


def risk_notices(probation: date | None, contract: date | None, settings: RecruitingSettings,
                 calendar: WorkCalendar) -> list[Notice]:
    """Warnings to HR ahead of probation ending and a contract expiring, on the previous workday."""
    risk = settings.risk
    notices = []
    for kind, end, leads in (("probation", probation, risk.probation_lead_days),
                             ("contract", contract, risk.contract_lead_days)):
        if end is None:
            continue
        for lead in leads:
            day = calendar.previous_workday(end - timedelta(days=lead))
            notices.append(Notice(
                step=f"risk:{kind}:{end.isoformat()}:{lead}", series=f"risk:{kind}:{end.isoformat()}",
                at=calendar.at_local(day, settings.sla.send_at).astimezone(UTC), to=risk.to, kind=kind,
                reason=calendar.mark_provisional(f"{kind} ends {end.isoformat()}; warning {lead} days ahead "
                                                 f"(lead times {'/'.join(str(d) for d in leads)})", day),
                data={"end": end.isoformat(), "lead_days": lead}))
    return notices


# ------------------------------------------------------------------------------------------- report


def previous_month(today: date) -> str:
    """``YYYY-MM`` of the month before ``today``'s."""
    previous = add_months(today.replace(day=1), -1)
    return f"{previous.year:04d}-{previous.month:02d}"


def report_due(now: datetime, calendar: WorkCalendar) -> Decision:
    """Run the monthly report today? Yes on the first working day of a month, for the previous month."""
    today = calendar.local(now).date()
    first = first_workday_of_month(today.year, today.month, calendar)
    if today != first:
        return Decision.nothing(calendar.mark_provisional(
            f"{today.isoformat()} is not the first working day of the month ({first.isoformat()})", first))
    month = previous_month(today)
    return Decision(action="report", reason=calendar.mark_provisional(
        f"{today.isoformat()} is the first working day of the month: reporting {month}", first),
        data={"month": month})


def month_bounds(month: str, calendar: WorkCalendar) -> tuple[datetime, datetime]:
    """``[start, end)`` of a ``YYYY-MM`` month in the organization's zone, as UTC moments."""
    year, mon = (int(part) for part in month.split("-"))
    first = date(year, mon, 1)
    start = calendar.at_local(first, datetime.min.time()).astimezone(UTC)
    end = calendar.at_local(add_months(first, 1), datetime.min.time()).astimezone(UTC)
    return start, end


def ms(moment: datetime | None) -> int | None:
    """A moment as a date-time cell stores it (ms since the epoch); None stays None."""
    return cells.encode_moment(moment) if moment is not None else None


def day_ms(day: date | None, calendar: WorkCalendar) -> int | None:
    """A day as a date cell stores it (local midnight in the calendar's zone, in ms); None stays None."""
    return cells.encode_date(day, calendar.zone) if day is not None else None


class ReportRow(BaseModel):
    """The figures of one hospital (or ``site == "*"`` for the group) for one month."""

    month: str
    site: str
    name: str = ""  # the hospital's name, as the card shows it ("" for the group)
    open_positions: int = 0
    applications: int = 0
    hires: int = 0
    time_to_hire_days: float | None = None
    offer_acceptance_rate: float | None = None
    joined: int = 0
    left: int = 0
    net_headcount: int = 0
    pool_reuse: int = 0
    overdue_slas: int = 0
    open_risks: int = 0
    # numerators kept for the group's weighted figures
    offers_decided: int = 0
    hire_days_total: float = 0.0


class Report(BaseModel):
    month: str
    as_of: datetime
    rows: list[ReportRow]

    @property
    def group(self) -> ReportRow:
        return self.rows[-1]


REPORT_COLUMNS = ["month", "site", "open_positions", "applications", "hires", "time_to_hire_days",
                  "offer_acceptance_rate", "joined", "left", "net_headcount", "pool_reuse", "overdue_slas",
                  "open_risks"]


def _in(moment: datetime | None, start: datetime, end: datetime) -> bool:
    return moment is not None and start <= moment < end


def compute_report(month: str, requisitions: Sequence[Mapping[str, Any]], applications: Sequence[Mapping[str, Any]],
                   onboarding: Sequence[Mapping[str, Any]], as_of: datetime, settings: RecruitingSettings,
                   calendar: WorkCalendar, sites: Sequence[str] = ()) -> Report:
    """The month's figures per hospital and for the group, from the recorded Bitable rows (field dicts).

    * open positions: headcount of requisitions approved before the month's end and not closed by then;
    * applications: applied in the month; pool reuse: those marked as coming from the talent pool;
    * hires: offers accepted in the month; time to hire: their mean days from application to acceptance;
    * offer acceptance rate: accepted / (accepted + declined), offers decided in the month (declined: the
      application ended while at the offer stage);
    * joined / left / net: onboarding start dates and last days in the month;
    * overdue SLAs: open applications whose SLA had lapsed at ``as_of``;
    * open risks (at ``as_of``): onboarding rows with overdue checklist items, probation or contract ending
      within the longest lead time.
    """
    start, end = month_bounds(month, calendar)
    rf, af, of = settings.fields.requisitions, settings.fields.applications, settings.fields.onboarding
    offer = "offer"
    rows: dict[str, ReportRow] = {s: ReportRow(month=month, site=s) for s in sites}

    def row(site: Any) -> ReportRow:
        key = reading.value_text(site) or "(none)"
        return rows.setdefault(key, ReportRow(month=month, site=key))

    for req in requisitions:
        approved, closed = reading.moment(req, rf.approved_at), reading.moment(req, rf.closed_at)
        if approved is not None and approved < end and (closed is None or closed >= end):
            row(req.get(rf.site)).open_positions += max(reading.count(req, rf.headcount, 1), 0)

    for app in applications:
        target = row(app.get(af.site))
        applied = reading.moment(app, af.applied_at)
        if _in(applied, start, end):
            target.applications += 1
            if reading.flag(app, af.from_pool):
                target.pool_reuse += 1
        accepted = reading.moment(app, af.accepted_at)
        if _in(accepted, start, end):
            target.hires += 1
            target.offers_decided += 1
            if applied is not None and accepted is not None:
                target.hire_days_total += (accepted - applied).total_seconds() / 86400
        ended = reading.moment(app, af.ended_at)
        if _in(ended, start, end) and parse_stage(app.get(af.exited_from), settings) == offer:
            target.offers_decided += 1
        stage = parse_stage(app.get(af.stage), settings)
        due = reading.moment(app, af.sla_due)
        if stage is not None and not is_terminal(stage, settings) and due is not None and due < as_of:
            target.overdue_slas += 1

    today = calendar.local(as_of).date()
    probation_window = max(settings.risk.probation_lead_days, default=0)
    contract_window = max(settings.risk.contract_lead_days, default=0)
    for person in onboarding:
        target = row(person.get(of.site))
        if _in(reading.moment(person, of.start_date), start, end):
            target.joined += 1
        if _in(reading.moment(person, of.left_at), start, end):
            target.left += 1
        if _norm(reading.text(person, of.status)) in {"left", "已离职"}:
            continue
        if reading.count(person, of.overdue_items) > 0:
            target.open_risks += 1
        for column, window in ((of.probation_end, probation_window), (of.contract_end, contract_window)):
            end_day = reading.day(person, column, calendar)
            if end_day is not None and 0 <= (end_day - today).days <= window:
                target.open_risks += 1

    group = ReportRow(month=month, site="*")
    ordered = [rows[k] for k in sorted(rows)]
    for r in ordered:
        _finish(r)
        for name in ("open_positions", "applications", "hires", "joined", "left", "pool_reuse", "overdue_slas",
                     "open_risks", "offers_decided"):
            setattr(group, name, getattr(group, name) + getattr(r, name))
        group.hire_days_total += r.hire_days_total
    _finish(group)
    return Report(month=month, as_of=as_of, rows=[*ordered, group])


def _finish(r: ReportRow) -> None:
    r.net_headcount = r.joined - r.left
    r.time_to_hire_days = round(r.hire_days_total / r.hires, 1) if r.hires else None
    r.offer_acceptance_rate = round(r.hires / r.offers_decided, 3) if r.offers_decided else None


def report_csv_rows(report: Report) -> list[dict[str, Any]]:
    return [{c: ("" if getattr(r, c) is None else getattr(r, c)) for c in REPORT_COLUMNS} for r in report.rows]


def report_bitable_rows(report: Report, settings: RecruitingSettings) -> list[dict[str, Any]]:
    """The summary rows for the report table, keyed ``{month}:{site}`` so a re-run updates them."""
    f = settings.fields.report
    out = []
    for r in report.rows:
        out.append({f.key: f"{r.month}:{r.site}", f.month: r.month, f.site: r.site if r.site != "*" else "集团",
                    f.open_positions: r.open_positions, f.applications: r.applications, f.hires: r.hires,
                    f.time_to_hire_days: r.time_to_hire_days if r.time_to_hire_days is not None else "",
                    f.offer_acceptance_rate: r.offer_acceptance_rate if r.offer_acceptance_rate is not None else "",
                    f.joined: r.joined, f.left: r.left, f.net_headcount: r.net_headcount, f.pool_reuse: r.pool_reuse,
                    f.overdue_slas: r.overdue_slas, f.open_risks: r.open_risks})
    return out


def application_row(fields: ApplicationFields, **values: Any) -> dict[str, Any]:
    """A partial application row by attribute name (``stage=...``) → by the configured column names."""
    return {getattr(fields, key): value for key, value in values.items() if value is not None}
