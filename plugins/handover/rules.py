"""Pure decisions of the handover scenario: rota, plan, entries, deadlines and monthly statistics.

Nothing here reads the wall clock or does I/O, so the workflows call these functions directly and the
tests call them without Temporal. Decisions carry their reason ("escalate: critical patients not
confirmed 15 min after 20:00, ladder step 1 of 1").
"""

from __future__ import annotations

import io
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import Decision, WorkCalendar, cells, csvexport
from plugins.handover import models as m
from plugins.handover.config import STRUCTURE_FIELDS, Department, EscalationStep, HandoverSettings, RotaEntry

SHIFT_FORMAT = "%Y-%m-%dT%H:%M"
_URL = re.compile(r"https?://\S+")
MAX_TEXT = 2000  # a single form field; Feishu cards hold 30 KB in all

# ----------------------------------------------------------------------------------------------- rota


def shift_key(local: datetime) -> str:
    """The shift key of a local shift change moment: ``2026-11-23T20:00``."""
    return local.strftime(SHIFT_FORMAT)


def parse_shift_key(key: str, zone: ZoneInfo) -> datetime:
    """The aware moment of a shift key in ``zone``."""
    return datetime.strptime(key, SHIFT_FORMAT).replace(tzinfo=zone)


def next_change(now: datetime, changes: Sequence[str], zone: ZoneInfo) -> datetime:
    """The first shift change at or after ``now`` (aware, in ``zone``) among the ``HH:MM`` times."""
    local = now.astimezone(zone)
    for offset in (0, 1):
        day = local.date() + timedelta(days=offset)
        for change in sorted(changes):
            moment = datetime.combine(day, time.fromisoformat(change), tzinfo=zone)
            if moment >= local:
                return moment
    raise ValueError("no shift change times")  # unreachable with at least one change time


def previous_change(now: datetime, changes: Sequence[str], zone: ZoneInfo) -> datetime:
    """The last shift change before ``now`` (aware, in ``zone``) among the ``HH:MM`` times."""
    local = now.astimezone(zone)
    for offset in (0, 1):
        day = local.date() - timedelta(days=offset)
        for change in sorted(changes, reverse=True):
            moment = datetime.combine(day, time.fromisoformat(change), tzinfo=zone)
            if moment < local:
                return moment
    raise ValueError("no shift change times")  # unreachable with at least one change time


def current_change(now: datetime, changes: Sequence[str], lead_minutes: int, zone: ZoneInfo) -> datetime:
    """The shift change whose handover is under way at ``now``: the next one once its form is out
    (``lead_minutes`` before it), else the last one (its workflow runs on until it closes)."""
    upcoming = next_change(now, changes, zone)
    if now >= upcoming - timedelta(minutes=lead_minutes):
        return upcoming
    return previous_change(now, changes, zone)


def resolve_rota(day: date, change: str, department: Department, calendar: WorkCalendar,
                 dated: Iterable[RotaEntry] = ()) -> Decision:
    """Who hands over at ``day`` ``change``: a dated line first, then the holiday or workday slot.

    ``dated`` are lines from the Bitable rota table or the rota file; the settings' own ``rota`` lines
    are checked first. Returns ``action="handover"`` with giver, receiver, source and holiday in ``data``,
    or nothing with the reason (no rota line, no slot).
    """
    holiday = not calendar.is_workday(day)
    day_kind = "day off" if holiday else "workday"
    for source, lines in (("settings", department.rota), ("table", dated)):
        for line in lines:
            if line.date == day and line.shift == change:
                return Decision(action="handover", reason=f"dated rota line ({source}) for {day} {change}",
                                data={"giver": line.giver, "receiver": line.receiver, "source": source,
                                      "holiday": holiday})
    slots = department.holiday_rota if holiday else department.workday_rota
    kind = "holiday_rota" if holiday else "workday_rota"
    slot = slots.get(change)
    if slot is None and holiday and change in department.workday_rota:
        # no holiday rota for this shift: the usual pair covers it
        slot, kind = department.workday_rota[change], "workday_rota"
    if slot is None:
        return Decision.nothing(calendar.mark_provisional(
            f"no rota for {day} {change} ({day_kind}): no dated line and no {kind} slot", day))
    return Decision(action="handover", reason=calendar.mark_provisional(f"{kind} slot {change} ({day_kind})", day),
                    data={"giver": slot.giver, "receiver": slot.receiver, "source": kind, "holiday": holiday})


def build_plan(org: str, department_id: str, settings: HandoverSettings, change_local: datetime,
               rota: Decision, timezone: str) -> m.ShiftPlan:
    """The shift plan for one resolved rota decision (``rota.action == "handover"``)."""
    department = settings.departments[department_id]
    change_at = change_local.astimezone(UTC)
    return m.ShiftPlan(
        org=org, department=department_id, department_name=department.name or department_id,
        site=department.site, shift=shift_key(change_local), change_at=change_at,
        form_at=change_at - timedelta(minutes=settings.lead_minutes),
        close_at=change_at + timedelta(hours=settings.close_after_hours), timezone=timezone,
        giver=rota.data["giver"], receiver=rota.data["receiver"], head=department.head,
        group_chat=department.group_chat, medical_affairs=list(settings.medical_affairs),
        structure=settings.structure, fields=list(STRUCTURE_FIELDS[settings.structure]),
        required_fields=settings.required(), categories=list(settings.categories),
        ack_minutes=settings.ack_minutes, critical_ack_minutes=settings.critical_ack_minutes,
        ack_escalation=list(settings.ack_escalation), critical_escalation=list(settings.critical_escalation),
        missing_reminders=list(settings.missing_reminders), missing_escalation=list(settings.missing_escalation),
        handovers_table=settings.handovers_table, patients_table=settings.patients_table,
        holiday=bool(rota.data["holiday"]), rota_source=str(rota.data["source"]),
    )


def started_now(plan: m.ShiftPlan, now: datetime, minutes: int, close_after_hours: int) -> m.ShiftPlan:
    """``plan`` started on demand (``engine handover start``): its form due at ``now``, its change ``minutes``
    later, its end ``close_after_hours`` after that; its people and its key (the shift it stands for) kept.

    ``now`` is business time (aware); the times returned are UTC.
    """
    form_at = now.astimezone(UTC)
    change_at = form_at + timedelta(minutes=minutes)
    return plan.model_copy(update={"form_at": form_at, "change_at": change_at,
                                   "close_at": change_at + timedelta(hours=close_after_hours)})


def rota_lines(rows: Iterable[Mapping[str, Any]], department: str, zone: ZoneInfo) -> list[RotaEntry]:
    """Dated rota lines from Bitable records or a rota file, for one department.

    A row has ``date`` (ISO text, or a Bitable date cell), ``shift`` (``HH:MM``), ``giver``,
    ``receiver`` (open ids, or Bitable person cells) and optionally ``department`` (rows of other
    departments are skipped); the Chinese field names of a rota table (日期, 交班时间, 交班医生, 接班医生,
    科室) work too. Cells are read with :mod:`engine.sdk.cells`.
    """
    aliases = {"日期": "date", "交班时间": "shift", "交班医生": "giver", "接班医生": "receiver", "科室": "department"}
    lines = []
    for raw in rows:
        row = {aliases.get(k, k): v for k, v in raw.items()}
        if cells.text(row.get("department")) not in ("", department):
            continue
        day = cells.date(row.get("date"), zone)
        giver, receiver = cells.person(row.get("giver")), cells.person(row.get("receiver"))
        if day is None or giver is None or receiver is None:
            raise cells.CellError("a rota line (date, giver and receiver)", None)
        lines.append(RotaEntry(date=day, shift=cells.text(row.get("shift")), giver=giver.id, receiver=receiver.id))
    return lines


# -------------------------------------------------------------------------------------------- entries


def category_of(plan: m.ShiftPlan, category_id: str) -> Any:
    return next((c for c in plan.categories if c.id == category_id), None)


def is_critical(entry: m.PatientEntry, plan: m.ShiftPlan) -> bool:
    """Critical: a critical category (病危, 危急值 by default) or severity ``unstable``."""
    category = category_of(plan, entry.category)
    return entry.severity == "unstable" or bool(category and category.critical)


def missing_fields(entry: m.PatientEntry, plan: m.ShiftPlan) -> list[str]:
    """The fields an entry still lacks to be complete (bed, category and severity always count)."""
    missing = [name for name in ("category", "severity") if not getattr(entry, name)]
    for name in plan.required_fields:
        if name == "name":
            present = bool(entry.name)
        elif name == "imaging":
            present = bool(entry.imaging)
        else:
            present = bool(entry.fields.get(name))
        if not present:
            missing.append(name)
    return missing


def handover_complete(entries: Iterable[m.PatientEntry], plan: m.ShiftPlan) -> bool:
    """Every entry has every required field (an empty handover is complete: nothing to hand over)."""
    return all(not missing_fields(entry, plan) for entry in entries)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value).strip()[:MAX_TEXT]


FORM_REFUSALS = {"bed is required": "need_bed", "unknown category": "bad_category",
                 "unknown severity": "bad_severity"}


def form_refusal(why: str) -> str:
    """The toast key of a refusal reason of :func:`apply_form` (the reason itself goes to the log)."""
    return next((key for prefix, key in FORM_REFUSALS.items() if why.startswith(prefix)), "refused")


def apply_form(entries: Mapping[str, m.PatientEntry], form: Mapping[str, Any], plan: m.ShiftPlan,
               now: datetime) -> tuple[m.PatientEntry | None, str]:
    """Add or update the entry the form names by bed; empty form fields keep what was there.

    Returns the new entry and ``""``, or ``None`` and the reason the form was refused.
    """
    bed = _text(form.get("bed"))[:20]
    if not bed:
        return None, "bed is required"
    current = entries.get(bed) or m.PatientEntry(bed=bed)
    data = current.model_dump()
    category = _text(form.get("category"))
    if category:
        if category_of(plan, category) is None:
            return None, f"unknown category {category!r}"
        data["category"] = category
    severity = _text(form.get("severity"))
    if severity:
        if severity not in m.SEVERITIES:
            return None, f"unknown severity {severity!r}"
        data["severity"] = severity
    if name := _text(form.get("name")):
        data["name"] = name[:50]
    fields = dict(current.fields)
    for field in plan.fields:
        if text := _text(form.get(field)):
            fields[field] = text
    data["fields"] = fields
    links = _URL.findall(_text(form.get("imaging")))
    if links:
        data["imaging"] = list(dict.fromkeys([*current.imaging, *links]))
    data["updated_at"] = now
    entry = m.PatientEntry.model_validate(data)
    entry.critical = is_critical(entry, plan)
    return entry, ""


# ------------------------------------------------------------------------------------------ deadlines


def ack_base(plan: m.ShiftPlan, submitted_at: datetime) -> datetime:
    """The acknowledgement clock starts at submission, but never before the shift change."""
    return max(submitted_at, plan.change_at)


def _ladder(name: str, due: datetime, steps: Sequence[EscalationStep], fired: set[str], now: datetime,
            why: str) -> tuple[list[Decision], list[datetime]]:
    due_now, later = [], []
    for index, step in enumerate(steps):
        step_id = f"{name}-{index + 1}"
        at = due + timedelta(minutes=step.after_minutes)
        if step_id in fired:
            continue
        if at <= now:
            action = "remind" if step.to in ("giver", "receiver") else "escalate"
            due_now.append(Decision(action=action, at=at, step=step_id, data={"to": step.to, "ladder": name},
                                    reason=f"{action} {step.to}: {why}, step {index + 1} of {len(steps)} "
                                           f"({step.after_minutes} min after the deadline)"))
        else:
            later.append(at)
    return due_now, later


def notices(plan: m.ShiftPlan, *, now: datetime, fired: set[str], submitted_at: datetime | None,
            acknowledged: bool, unacked_critical: int) -> tuple[list[Decision], datetime | None]:
    """The notices due at ``now`` that have not fired yet, and when the next one comes due.

    Steps: ``form`` at the lead time; without a submission, ``missing-remind-N`` to the giver and the
    ``missing-N`` ladder after the change; after a submission without acknowledgement, the ``ack-N``
    ladder from the deadline and, while critical patients are unconfirmed, the sooner ``critical-N``
    ladder; ``close`` ends the shift's workflow.
    """
    due: list[Decision] = []
    later: list[datetime] = []
    if "form" not in fired and submitted_at is None:
        if plan.form_at <= now:
            due.append(Decision(action="form", at=plan.form_at, step="form",
                                reason=f"form: {plan.change_at - plan.form_at} before the shift change"))
        else:
            later.append(plan.form_at)
    if submitted_at is None:
        reminders = [EscalationStep(after_minutes=minutes, to="giver") for minutes in plan.missing_reminders]
        for name, steps in (("missing-remind", reminders), ("missing", plan.missing_escalation)):
            d, l_ = _ladder(name, plan.change_at, steps, fired, now, "no handover written by the shift change")
            due += d
            later += l_
    elif not acknowledged:
        base = ack_base(plan, submitted_at)
        d, l_ = _ladder("ack", base + timedelta(minutes=plan.ack_minutes), plan.ack_escalation, fired, now,
                        f"handover not confirmed within {plan.ack_minutes} min")
        due += d
        later += l_
        if unacked_critical:
            d, l_ = _ladder("critical", base + timedelta(minutes=plan.critical_ack_minutes),
                            plan.critical_escalation, fired, now,
                            f"{unacked_critical} critical patient(s) not confirmed within "
                            f"{plan.critical_ack_minutes} min")
            due += d
            later += l_
    if "close" not in fired:
        if plan.close_at <= now:
            due.append(Decision(action="close", at=plan.close_at, step="close",
                                reason="close: the shift's handover window is over"))
        else:
            later.append(plan.close_at)
    due.sort(key=lambda d: (d.at or now, d.step or ""))
    return due, min(later) if later else None


# ---------------------------------------------------------------------------------------- statistics


def month_of(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m")


def previous_month(moment: datetime, zone: ZoneInfo) -> str:
    """The month before the one ``moment`` falls in (the monthly card reports the month just over)."""
    first = moment.astimezone(zone).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _flag(value: Any) -> bool:
    """A checkbox cell of a handover record; one edited into something else counts as unticked."""
    try:
        return cells.checkbox(value)
    except cells.CellError:
        return False


def _number(value: Any) -> float | None:
    """A number cell of a handover record; one edited into something else counts as empty."""
    try:
        found = cells.number(value)
    except cells.CellError:
        return None
    return None if found is None else float(found)


def monthly_stats(records: Iterable[Mapping[str, Any]], month: str) -> list[m.StatsRow]:
    """Per department, per site and for the organization: the month's handover numbers.

    ``records`` are handover records' fields (:data:`models.H_KEY` ...). A record belongs to the month of
    its shift key. Median time to acknowledge is over acknowledged handovers (minutes from submission,
    or from the shift change when submitted early).
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for fields in records:
        if not str(fields.get(m.H_SHIFT, "")).startswith(month):
            continue
        site = str(fields.get(m.H_SITE) or "")
        department = str(fields.get(m.H_DEPARTMENT) or "")
        for key in ((site, department), (site, "*"), ("*", "*")):
            groups.setdefault(key, []).append(fields)
    rows = []
    for (site, department), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "*", kv[0])):
        minutes = [v for f in items if (v := _number(f.get(m.H_ACK_MINUTES))) is not None
                   and f.get(m.H_STATUS) == "acknowledged"]
        rows.append(m.StatsRow(
            month=month, site=site, department=department, shifts=len(items),
            written=sum(1 for f in items if f.get(m.H_SUBMITTED)),
            on_time=sum(1 for f in items if _flag(f.get(m.H_ON_TIME))),
            complete=sum(1 for f in items if f.get(m.H_SUBMITTED) and _flag(f.get(m.H_COMPLETE))),
            acknowledged=sum(1 for f in items if f.get(m.H_STATUS) == "acknowledged"),
            median_ack_minutes=round(statistics.median(minutes), 1) if minutes else None,
            escalations=int(sum(_number(f.get(m.H_ESCALATIONS)) or 0 for f in items)),
            missing=sum(1 for f in items if not f.get(m.H_SUBMITTED)),
        ))
    return rows


CSV_COLUMNS = ("month", "site", "department", "shifts", "written", "on_time", "complete", "acknowledged",
               "median_ack_minutes", "escalations", "missing")


def stats_csv(rows: Iterable[m.StatsRow]) -> str:
    """The statistics as CSV text (header row, one line per department/site/organization row)."""
    out = io.StringIO()
    writer = csvexport.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.model_dump()
        writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])
    return out.getvalue()


# ------------------------------------------------------------------------------------- monthly outcome


def percentile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` percentile (0-1) of ``values`` by linear interpolation between ranks; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


def outcome_rows(records: Iterable[Mapping[str, Any]], month: str, names: Mapping[str, str]) -> list[m.OutcomeRow]:
    """Per department, the month's handovers (records whose shift key falls in ``month``, "2026-10"):

    - ``written``: submitted; ``on_time``: submitted by the shift change (the record's 按时提交);
    - ``ack_p50``/``ack_p90``: minutes to acknowledge (确认用时) over acknowledged handovers;
    - ``unacknowledged``: submitted and not confirmed when the shift closed; ``missing``: never submitted.

    ``names`` maps department ids to their configured names; rows are in name order.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for fields in records:
        if cells.text(fields.get(m.H_SHIFT)).startswith(f"{month}-"):
            groups.setdefault(cells.text(fields.get(m.H_DEPARTMENT)), []).append(fields)
    rows = []
    for department, items in groups.items():
        status = [cells.text(f.get(m.H_STATUS)) for f in items]
        minutes = [v for f, s in zip(items, status, strict=True)
                   if s == "acknowledged" and (v := _number(f.get(m.H_ACK_MINUTES))) is not None]
        rows.append(m.OutcomeRow(
            department=department, name=names.get(department) or department, handovers=len(items),
            written=sum(1 for f in items if f.get(m.H_SUBMITTED)),
            on_time=sum(1 for f in items if f.get(m.H_SUBMITTED) and _flag(f.get(m.H_ON_TIME))),
            ack_p50=percentile(minutes, 0.5), ack_p90=percentile(minutes, 0.9),
            acknowledged=status.count("acknowledged"), unacknowledged=status.count("unacknowledged"),
            missing=sum(1 for f in items if not f.get(m.H_SUBMITTED))))
    return sorted(rows, key=lambda r: (r.name, r.department))


def overtime_estimate_hours(rows: Iterable[m.OutcomeRow], minutes_per_handover: int) -> float:
    """The overtime the written handovers saved, in hours, if each saved ``minutes_per_handover`` (an
    assumption from the settings: the case reports about 30 minutes less overtime per doctor)."""
    return round(sum(r.written for r in rows) * minutes_per_handover / 60, 1)
