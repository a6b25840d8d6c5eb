"""Pure figures of the group's HR monthly report (人力资源月报): people, operations, talent development and
risk warnings, per hospital, per department and for the group.

The people figures come from recorded monthly snapshots of Feishu's contact directory (who was in post,
where, at each month's end), not from the wall clock or a live directory: a month's report is the
difference between the snapshot of the month before and the month's own. Definitions:

* headcount at the start / end: people in the previous month's / the month's snapshot at the hospital;
* joiners: in the month's snapshot and not the previous one; leavers: in the previous and not the month's;
  someone who joined and left within the month (in neither) counts as both, from the leavers table (the
  directory's removal events, ``contact.user.deleted_v3``);
* transfers between hospitals: in both snapshots at different hospitals (out of the old, into the new);
  they are neither joiners nor leavers, and cancel out for the group;
* average headcount: (start + end) / 2; **turnover rate = leavers / average headcount** (None when 0);
* open positions: headcount of requisitions approved before the month's end and not closed by then;
  filled: requisitions closed as ``filled`` in the month; time to fill: their mean days from approval
  to closing;
* talent pool: candidates retained at the month's end, by the hospital they came from; pool moves:
  offers accepted in the month from the pool by another hospital than the candidate came from (into the
  hiring hospital, out of the source one);
* training / promotions: rows of the development table dated in the month (trainings, their hours,
  promotions);
* operations per head: each of the month's figures in the operations table / average headcount (the
  group's: the hospitals' sum / the group's average headcount);
* risk warnings at the report's time: probation or a contract ending within ``report.risk_window_days``,
  onboarding rows with overdue items, and labour-dispute or compliance cases open (registered, not closed).

Nothing here reads the clock or the network; callers pass the rows and ``as_of``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.sdk import WorkCalendar, cells

from . import reading
from .config import RecruitingSettings

GROUP = "*"
RiskKind = Literal["probation", "contract", "overdue_onboarding", "labour_dispute", "compliance"]
_TRAINING_WORDS = {"培训", "training", "train"}
_PROMOTION_WORDS = {"晋升", "promotion", "promoted"}
_DISPUTE_WORDS = {"劳动纠纷", "纠纷", "labour_dispute", "labor_dispute", "labour dispute", "labor dispute"}
_COMPLIANCE_WORDS = {"合规", "合规事件", "compliance"}


class Staff(BaseModel):
    """One person in post at a snapshot: the directory's user id, name, hospital (site id), department."""

    user_id: str
    name: str = ""
    site: str
    department: str = ""


class RiskItem(BaseModel):
    """One warning: what, where, whom (a person's name, or a case's subject) and when it falls due."""

    kind: RiskKind
    site: str
    name: str
    department: str = ""
    due: date | None = None


class DepartmentFigures(BaseModel):
    department: str
    headcount: int = 0
    joiners: int = 0
    leavers: int = 0
    transfers_in: int = 0
    transfers_out: int = 0


class HospitalFigures(BaseModel):
    """One hospital's month (``site == "*"``: the group's). Rates are fractions (0.05 = 5 %)."""

    site: str
    name: str
    configured: bool = False  # a hospital of the config (not only named by a row)
    headcount_start: int = 0
    headcount_end: int = 0
    joiners: int = 0
    leavers: int = 0
    transfers_in: int = 0
    transfers_out: int = 0
    average_headcount: float = 0.0
    turnover_rate: float | None = None
    open_positions: int = 0
    filled: int = 0
    time_to_fill_days: float | None = None
    fill_days_total: float = 0.0
    pool_size: int = 0
    pool_moves_in: int = 0
    pool_moves_out: int = 0
    trainings: int = 0
    training_hours: float = 0.0
    promotions: int = 0
    operations_total: dict[str, float] = Field(default_factory=dict)
    operations_per_head: dict[str, float | None] = Field(default_factory=dict)
    risks: list[RiskItem] = Field(default_factory=list)
    departments: list[DepartmentFigures] = Field(default_factory=list)

    def risk_count(self, kind: str) -> int:
        return sum(1 for r in self.risks if r.kind == kind)


class HrReport(BaseModel):
    month: str
    as_of: datetime
    hospitals: list[HospitalFigures]
    group: HospitalFigures
    # False: no snapshot of the month before was recorded (the first month): joiners, leavers, transfers
    # and turnover are not counted, every person would look like a joiner
    previous_recorded: bool = True


# ------------------------------------------------------------------------------------------- reading


class Sites:
    """Hospital ids and names: a cell may hold either (people type ``A院``, the engine writes ``hosp_a``)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)
        self._by_name = {name: site for site, name in self.names.items() if name}

    def of(self, value: Any) -> str:
        text = reading.value_text(value).strip()
        return self._by_name.get(text, text) or "(none)"

    def name(self, site: str) -> str:
        return self.names.get(site) or site


def month_end(month: str) -> date:
    """The last day of a ``YYYY-MM`` month."""
    year, mon = (int(part) for part in month.split("-"))
    first_next = date(year + mon // 12, mon % 12 + 1, 1)
    return first_next - timedelta(days=1)


def month_start(month: str) -> date:
    year, mon = (int(part) for part in month.split("-"))
    return date(year, mon, 1)


def previous_month_of(month: str) -> str:
    previous = month_start(month) - timedelta(days=1)
    return f"{previous.year:04d}-{previous.month:02d}"


def staff_from_rows(rows: Sequence[Mapping[str, Any]], month: str, settings: RecruitingSettings,
                    sites: Sites) -> list[Staff]:
    """The people of ``month``'s snapshot, read from the snapshot table's rows (other months' left out)."""
    f = settings.fields.staff
    found: dict[str, Staff] = {}
    for row in rows:
        if reading.text(row, f.month).strip() != month:
            continue
        user = reading.text(row, f.user_id).strip()
        if not user:
            continue
        found[user] = Staff(user_id=user, name=reading.text(row, f.name), site=sites.of(row.get(f.site)),
                            department=reading.text(row, f.department))
    return list(found.values())


def snapshot_rows(month: str, staff: Sequence[Staff], settings: RecruitingSettings,
                  sites: Sites | None = None) -> list[dict[str, Any]]:
    """The snapshot table's rows for ``month``, keyed ``{month}:{user_id}`` so a retried write updates them;
    the hospital by its name (``sites``; read back to its id by :func:`staff_from_rows`)."""
    f = settings.fields.staff
    return [{f.key: f"{month}:{s.user_id}", f.month: month, f.user_id: s.user_id, f.name: s.name,
             f.site: sites.name(s.site) if sites else s.site, f.department: s.department} for s in staff]


def staff_from_directory(hospitals: Mapping[str, Sequence[Mapping[str, Any]]], users: Sequence[Mapping[str, Any]],
                         roots: Mapping[str, str]) -> list[Staff]:
    """Who is in post at each hospital, from Feishu's contact directory.

    ``roots`` maps a site to its department's open_department_id; ``hospitals`` maps a site to the
    departments below its root (contact v3 department JSON: ``open_department_id``, ``name``); ``users``
    are the members listed by department (contact v3 user JSON: ``open_id``, ``name``, ``department_ids``),
    a person listed more than once counted once. A person is at the hospital of their first department
    that lies in a hospital's tree, in that department ("" when directly in the hospital's own department).
    """
    where: dict[str, tuple[str, str]] = {}
    for site, root in roots.items():
        if root:
            where.setdefault(root, (site, ""))
    for site, departments in hospitals.items():
        for department in departments:
            key = str(department.get("open_department_id") or "")
            if key:
                where.setdefault(key, (site, str(department.get("name") or "")))
    found: dict[str, Staff] = {}
    for user in users:
        open_id = str(user.get("open_id") or "")
        status = user.get("status") if isinstance(user.get("status"), Mapping) else {}
        if not open_id or open_id in found or status.get("is_resigned"):
            continue
        for department in user.get("department_ids") or []:
            if department in where:
                site, name = where[department]
                found[open_id] = Staff(user_id=open_id, name=str(user.get("name") or ""), site=site,
                                       department=name)
                break
    return sorted(found.values(), key=lambda s: (s.site, s.department, s.user_id))


def leaver_row(open_id: str, name: str, where: Staff | None, left_at: datetime, settings: RecruitingSettings,
               sites: Sites, calendar: WorkCalendar) -> dict[str, Any]:
    """The leavers table's row of an account removed from the directory (keyed by its open id)."""
    f = settings.fields.leavers
    return {f.user_id: open_id, f.name: name, f.site: sites.name(where.site) if where else "",
            f.department: where.department if where else "", f.left_at: cells.encode_moment(left_at)}


def _day_of(row: Mapping[str, Any], column: str, calendar: WorkCalendar) -> date | None:
    return reading.day(row, column, calendar)


def _words(value: str) -> str:
    return value.strip().lower()


# ------------------------------------------------------------------------------------------- compute


def compute_hr_report(month: str, previous: Sequence[Staff], current: Sequence[Staff], *,
                      leavers: Sequence[Mapping[str, Any]] = (), requisitions: Sequence[Mapping[str, Any]] = (),
                      applications: Sequence[Mapping[str, Any]] = (),
                      pool: Sequence[Mapping[str, Any]] = (), onboarding: Sequence[Mapping[str, Any]] = (),
                      development: Sequence[Mapping[str, Any]] = (), operations: Sequence[Mapping[str, Any]] = (),
                      cases: Sequence[Mapping[str, Any]] = (), as_of: datetime, settings: RecruitingSettings,
                      calendar: WorkCalendar, site_names: Mapping[str, str]) -> HrReport:
    """The month's HR report per hospital (ordered as ``site_names``, then any other hospital met) and for
    the group, from the two snapshots and the recorded Bitable rows (field dicts). See the module's
    docstring for each figure's definition."""
    sites = Sites(site_names)
    first, last = month_start(month), month_end(month)
    today = calendar.local(as_of).date()
    rows = {s: HospitalFigures(site=s, name=sites.name(s), configured=True) for s in site_names}
    depts: dict[tuple[str, str], DepartmentFigures] = {}

    def hospital(site: str) -> HospitalFigures:
        return rows.setdefault(site, HospitalFigures(site=site, name=sites.name(site)))

    def dept(site: str, name: str) -> DepartmentFigures:
        hospital(site)
        return depts.setdefault((site, name), DepartmentFigures(department=name))

    # people: the two snapshots
    before = {s.user_id: s for s in previous}
    after = {s.user_id: s for s in current}
    for person in previous:
        hospital(person.site).headcount_start += 1
    for person in current:
        hospital(person.site).headcount_end += 1
        dept(person.site, person.department).headcount += 1
    for user, person in after.items() if previous else ():
        old = before.get(user)
        if old is None:
            hospital(person.site).joiners += 1
            dept(person.site, person.department).joiners += 1
        elif old.site != person.site:
            hospital(person.site).transfers_in += 1
            dept(person.site, person.department).transfers_in += 1
            hospital(old.site).transfers_out += 1
            dept(old.site, old.department).transfers_out += 1
    for user, person in before.items():
        if user not in after:
            hospital(person.site).leavers += 1
            dept(person.site, person.department).leavers += 1
    # someone who joined and left within the month is in neither snapshot: their removal event recorded them
    lf = settings.fields.leavers
    for row in leavers if previous else ():
        user, left = reading.text(row, lf.user_id), _day_of(row, lf.left_at, calendar)
        site = sites.of(row.get(lf.site))
        if not user or user in before or user in after or left is None or not first <= left <= last:
            continue
        if site == "(none)":
            continue  # removed from a department of none of the hospitals
        department = reading.text(row, lf.department)
        for counted in (hospital(site), dept(site, department)):
            counted.joiners += 1
            counted.leavers += 1

    # recruiting: open positions, filled requisitions and time to fill
    rf = settings.fields.requisitions
    for req in requisitions:
        site = sites.of(req.get(rf.site))
        approved = _day_of(req, rf.approved_at, calendar)
        closed = _day_of(req, rf.closed_at, calendar)
        if approved is not None and approved <= last and (closed is None or closed > last):
            hospital(site).open_positions += max(reading.count(req, rf.headcount, 1), 0)
        if (closed is not None and first <= closed <= last and approved is not None
                and _words(reading.text(req, rf.status)) in {"filled", "已招满", "已满员"}):
            target = hospital(site)
            target.filled += 1
            opened, ended = reading.moment(req, rf.approved_at), reading.moment(req, rf.closed_at)
            if opened is not None and ended is not None:
                target.fill_days_total += (ended - opened).total_seconds() / 86400

    # talent pool: its size at the month's end, and moves between hospitals through it
    pf, af = settings.fields.pool, settings.fields.applications
    source: dict[str, str] = {}
    for entry in pool:
        site = sites.of(entry.get(pf.site))
        candidate = reading.text(entry, pf.candidate_id)
        if candidate:
            source[candidate] = site
        added = _day_of(entry, pf.added_at, calendar)
        until = _day_of(entry, pf.retain_until, calendar)
        if (added is None or added <= last) and (until is None or until >= last):
            hospital(site).pool_size += 1
    for app in applications:
        accepted = _day_of(app, af.accepted_at, calendar)
        if accepted is None or not first <= accepted <= last or not reading.flag(app, af.from_pool):
            continue
        site, origin = sites.of(app.get(af.site)), source.get(reading.text(app, af.candidate_id))
        if origin is not None and origin != site:
            hospital(site).pool_moves_in += 1
            hospital(origin).pool_moves_out += 1

    # talent development
    df = settings.fields.development
    for entry in development:
        day = _day_of(entry, df.day, calendar)
        if day is None or not first <= day <= last:
            continue
        target, kind = hospital(sites.of(entry.get(df.site))), _words(reading.text(entry, df.kind))
        if kind in _TRAINING_WORDS:
            target.trainings += 1
            target.training_hours += float(reading.number(entry, df.hours) or 0.0)
        elif kind in _PROMOTION_WORDS:
            target.promotions += 1

    # operations: the month's figures per hospital
    of_ = settings.fields.operations
    for entry in operations:
        if reading.text(entry, of_.month).strip() != month:
            continue
        target = hospital(sites.of(entry.get(of_.site)))
        for key, column in settings.report.metrics.items():
            value = reading.number(entry, column)
            if value is not None:
                target.operations_total[key] = target.operations_total.get(key, 0.0) + value

    # risk warnings at the report's time
    window = settings.report.risk_window_days
    on = settings.fields.onboarding
    for person in onboarding:
        if _words(reading.text(person, on.status)) in {"left", "已离职"}:
            continue
        site, name = sites.of(person.get(on.site)), reading.text(person, on.name)
        department = reading.text(person, on.department)
        for kind, column in (("probation", on.probation_end), ("contract", on.contract_end)):
            end_day = _day_of(person, column, calendar)
            if end_day is not None and 0 <= (end_day - today).days <= window:
                hospital(site).risks.append(RiskItem(kind=kind, site=site, name=name, department=department,
                                                     due=end_day))
        if reading.count(person, on.overdue_items) > 0:
            hospital(site).risks.append(RiskItem(kind="overdue_onboarding", site=site, name=name,
                                                 department=department))
    cf = settings.fields.cases
    for case in cases:
        kind_text = _words(reading.text(case, cf.kind))
        kind: RiskKind | None = ("labour_dispute" if kind_text in _DISPUTE_WORDS
                                 else "compliance" if kind_text in _COMPLIANCE_WORDS else None)
        opened, closed = _day_of(case, cf.opened, calendar), _day_of(case, cf.closed, calendar)
        if kind is None or opened is None or opened > today or (closed is not None and closed <= today):
            continue
        site = sites.of(case.get(cf.site))
        hospital(site).risks.append(RiskItem(kind=kind, site=site, name=reading.text(case, cf.subject), due=opened))

    ordered = [rows[s] for s in site_names if s in rows] + [rows[s] for s in sorted(rows) if s not in site_names]
    group = HospitalFigures(site=GROUP, name="")
    for target in ordered:
        target.departments = sorted((d for (s, _), d in depts.items() if s == target.site),
                                    key=lambda d: d.department)
        for name in ("headcount_start", "headcount_end", "joiners", "leavers", "transfers_in", "transfers_out",
                     "open_positions", "filled", "fill_days_total", "pool_size", "pool_moves_in", "pool_moves_out",
                     "trainings", "training_hours", "promotions"):
            setattr(group, name, getattr(group, name) + getattr(target, name))
        for key, value in target.operations_total.items():
            group.operations_total[key] = group.operations_total.get(key, 0.0) + value
        group.risks.extend(target.risks)
        _finish(target, settings)
    _finish(group, settings)
    if not previous:
        for target in [*ordered, group]:
            target.turnover_rate = None
    return HrReport(month=month, as_of=as_of.astimezone(UTC), hospitals=ordered, group=group,
                    previous_recorded=bool(previous))


def _finish(row: HospitalFigures, settings: RecruitingSettings) -> None:
    row.average_headcount = (row.headcount_start + row.headcount_end) / 2
    row.turnover_rate = round(row.leavers / row.average_headcount, 4) if row.average_headcount else None
    row.time_to_fill_days = round(row.fill_days_total / row.filled, 1) if row.filled else None
    row.training_hours = round(row.training_hours, 1)
    row.operations_per_head = {
        key: (round(row.operations_total[key] / row.average_headcount, 2)
              if key in row.operations_total and row.average_headcount else None)
        for key in settings.report.metrics}
    row.risks.sort(key=lambda r: (r.kind, r.due or date.max, r.name))


# ------------------------------------------------------------------------------------------- output

HR_COLUMNS = ["month", "site", "hospital", "headcount_start", "headcount_end", "joiners", "leavers", "transfers_in",
              "transfers_out", "average_headcount", "turnover_rate", "open_positions", "filled", "time_to_fill_days",
              "pool_size", "pool_moves_in", "pool_moves_out", "trainings", "training_hours", "promotions",
              "probation_ending", "contract_ending", "overdue_onboarding", "labour_disputes", "compliance_cases"]
_RISK_COLUMNS = {"probation_ending": "probation", "contract_ending": "contract",
                 "overdue_onboarding": "overdue_onboarding", "labour_disputes": "labour_dispute",
                 "compliance_cases": "compliance"}


def hr_columns(settings: RecruitingSettings) -> list[str]:
    """The export's columns: the fixed ones, then ``<metric>_per_head`` for each operations metric."""
    return [*HR_COLUMNS, *(f"{key}_per_head" for key in settings.report.metrics)]


def group_name(locale: str) -> str:
    return "Group" if locale.startswith("en") else "集团"


def hr_export_rows(report: HrReport, settings: RecruitingSettings, locale: str = "zh_CN") -> list[dict[str, Any]]:
    """One row per hospital and one for the group (``site == "*"``), by :func:`hr_columns`."""
    out = []
    for row in [*report.hospitals, report.group]:
        values: dict[str, Any] = {"month": report.month, "site": row.site,
                                  "hospital": row.name if row.site != GROUP else group_name(locale)}
        for column in HR_COLUMNS[3:]:
            if column in _RISK_COLUMNS:
                values[column] = row.risk_count(_RISK_COLUMNS[column])
            else:
                value = getattr(row, column)
                values[column] = "" if value is None else value
        for key in settings.report.metrics:
            value = row.operations_per_head.get(key)
            values[f"{key}_per_head"] = "" if value is None else value
        out.append(values)
    return out


def hr_bitable_rows(report: HrReport, settings: RecruitingSettings) -> list[dict[str, Any]]:
    """The HR monthly table's rows (hospital names, not ids), keyed ``{month}:{site}`` so a re-run updates them."""
    f = settings.fields.hr_monthly
    out = []
    for row in [*report.hospitals, report.group]:
        per_head = "; ".join(f"{settings.report.metrics[k]} {v}" for k, v in row.operations_per_head.items()
                             if v is not None)
        out.append({
            f.key: f"{report.month}:{row.site}", f.month: report.month,
            f.site: row.name if row.site != GROUP else group_name("zh_CN"),
            f.headcount_start: row.headcount_start, f.headcount_end: row.headcount_end, f.joiners: row.joiners,
            f.leavers: row.leavers, f.transfers_in: row.transfers_in, f.transfers_out: row.transfers_out,
            f.turnover_rate: "" if row.turnover_rate is None else row.turnover_rate,
            f.open_positions: row.open_positions, f.filled: row.filled,
            f.time_to_fill_days: "" if row.time_to_fill_days is None else row.time_to_fill_days,
            f.pool_size: row.pool_size, f.pool_moves: row.pool_moves_in, f.trainings: row.trainings,
            f.training_hours: row.training_hours, f.promotions: row.promotions, f.operations: per_head,
            f.probation_ending: row.risk_count("probation"), f.contract_ending: row.risk_count("contract"),
            f.overdue_onboarding: row.risk_count("overdue_onboarding"),
            f.labour_disputes: row.risk_count("labour_dispute"), f.compliance_cases: row.risk_count("compliance")})
    return out


def card_context(report: HrReport, site: str | None = None) -> dict[str, Any]:
    """The card's data: headquarters' (``site=None``: every hospital and the group, figures only) or one
    hospital's (its figures, departments and named risk warnings)."""
    chosen = [h for h in report.hospitals if h.site == site] if site else [*report.hospitals, report.group]
    return {"month": report.month, "title": chosen[0].name if site and chosen else "", "details": site is not None,
            "previous_recorded": report.previous_recorded,
            "rows": [{**r.model_dump(mode="json"), "is_group": r.site == GROUP} for r in chosen]}
