"""Pure decisions of project_delivery: parsing requests, naming groups, planning and moving stages,
choosing the next reminder/escalation/digest, and reading and writing table rows.

Nothing here does I/O or reads the clock: callers pass ``now``/``today``. Safe inside workflows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import Decision, LadderSettings, WorkCalendar, add_months, cells, cron_next, next_notice

from .config import ROLES, NamingRule, ProjectDeliverySettings, StaffingTable
from .models import (
    CreateRequest,
    MilestoneOutcome,
    ParseResult,
    ProjectRow,
    ProjectState,
    StageChange,
    StageEvent,
)

_SPLIT = re.compile(r"[\s,，、;；]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OPEN_ID = re.compile(r"\bou_[A-Za-z0-9_-]+")

# ------------------------------------------------------------------------------------------ requests


def match_trigger(text: str, triggers: Sequence[str]) -> str | None:
    """The text after a trigger word at the start of ``text`` (case-insensitive), or None."""
    stripped = " ".join(text.split())
    for word in sorted(triggers, key=len, reverse=True):  # longest first: "create project" before "create"
        if stripped.lower().startswith(word.lower()):
            rest = stripped[len(word):]
            # "create projects" is not "create project s"; a CJK trigger needs no space after it
            if rest and word[-1].isascii() and word[-1].isalnum() and not (rest[0].isspace() or rest[0] in ",，:："):
                continue
            return rest.lstrip(" ,，:：")
    return None


def parse_request(rest: str, settings: ProjectDeliverySettings, **fields: Any) -> ParseResult:
    """Parse "<customer> <product> [region]" (the text after the trigger word).

    Tokens split on spaces and commas. With three or more tokens the first is the customer, the last
    the region and those between the product (products often have spaces: "CT NeuViz 128"). The region
    is required only when the naming rule uses ``{region}`` and no ``default_region`` is set.
    """
    tokens = [t for t in _SPLIT.split(rest.strip()) if t]
    if not tokens:
        return ParseResult(missing=_needed(settings, "", "", ""), empty=True)
    customer = tokens[0]
    product = " ".join(tokens[1:-1]) if len(tokens) >= 3 else (tokens[1] if len(tokens) == 2 else "")
    region = tokens[-1] if len(tokens) >= 3 else ""
    return request_from_parts(customer, product, region, settings, **fields)


def request_from_parts(customer: str, product: str, region: str, settings: ProjectDeliverySettings,
                       **fields: Any) -> ParseResult:
    """A request from its parts (message or card form), or the list of parts that are missing."""
    customer, product = clean_part(customer, settings.naming), clean_part(product, settings.naming)
    region = clean_part(region, settings.naming) or settings.default_region
    missing = _needed(settings, customer, product, region)
    if missing:
        return ParseResult(missing=missing)
    return ParseResult(request=CreateRequest(customer=customer, product=product, region=region, **fields))


def _needed(settings: ProjectDeliverySettings, customer: str, product: str, region: str) -> list[str]:
    missing = []
    if not customer:
        missing.append("customer")
    if not product:
        missing.append("product")
    if not region and ("region" in settings.naming.placeholders):
        missing.append("region")
    return missing


_PART_NAMES = {"zh_CN": {"customer": "客户名称", "product": "产品名称", "region": "区域"},
               "en_US": {"customer": "customer name", "product": "product name", "region": "region"}}


def missing_text(missing: Sequence[str], locale: str) -> str:
    """"缺少：产品名称、区域" / "Missing: product name, region" (what the ``missing`` template says first)."""
    if locale == "en_US":
        return "Missing: " + ", ".join(_PART_NAMES["en_US"].get(m, m) for m in missing)
    return "缺少：" + "、".join(_PART_NAMES["zh_CN"].get(m, m) for m in missing)


def project_id_for(message_id: str) -> str:
    """A project id derived from the request's message (or card event) id: a retried request maps to the
    same workflow, so it never makes two projects."""
    return "PD-" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:10].upper()


# ------------------------------------------------------------------------------------------- naming


def clean_part(value: str, naming: NamingRule) -> str:
    """A name part without forbidden or control characters, whitespace collapsed."""
    text = _CONTROL.sub("", value or "")
    text = "".join(ch for ch in text if ch not in naming.forbidden_chars)
    return " ".join(text.split())


def build_group_name(naming: NamingRule, *, customer: str, product: str, region: str, today: date,
                     project_id: str = "") -> Decision:
    """The group name by the rule: ``action="name"`` with ``data["name"]``, or ``"invalid"`` and why.

    Parts are cleaned first; a name over ``max_length`` shortens the longest of customer and product
    (never below 2 characters each) and, failing that, is cut with "…".
    """
    parts = {"customer": clean_part(customer, naming), "product": clean_part(product, naming),
             "region": clean_part(region, naming), "project_id": project_id,
             "yyyymm": f"{today:%Y%m}", "yyyy": f"{today:%Y}", "mm": f"{today:%m}", "yyyymmdd": f"{today:%Y%m%d}"}
    empty = [p for p in naming.placeholders if p in ("customer", "product", "region") and not parts[p]]
    if empty:
        return Decision(action="invalid", reason=f"required parts empty after cleaning: {', '.join(sorted(empty))}",
                        data={"missing": sorted(empty)})
    name = naming.template.format(**parts)
    notes: list[str] = []
    while len(name) > naming.max_length:
        longest = max(("customer", "product"), key=lambda p: len(parts[p]))
        if len(parts[longest]) <= 2:
            name = name[: naming.max_length - 1] + "…"
            notes.append("cut to the length limit")
            break
        parts[longest] = parts[longest][:-1]
        name = naming.template.format(**parts)
        if f"shortened {longest}" not in notes:
            notes.append(f"shortened {longest}")
    reason = f"named by rule {naming.template!r}" + (f" ({'; '.join(notes)})" if notes else "")
    return Decision(action="name", reason=reason, data={"name": name})


def unique_name(name: str, taken: Iterable[str], max_length: int) -> str:
    """``name``, or ``name-2``, ``name-3``... (shortened to fit) when an open project already uses it."""
    used = set(taken)
    if name not in used:
        return name
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = name[: max_length - len(suffix)] + suffix
        if candidate not in used:
            return candidate
        n += 1


def same_project_key(customer: str, product: str) -> str:
    """How duplicates are recognized: customer + product, case and spaces ignored."""
    return f"{''.join(customer.split()).casefold()}|{''.join(product.split()).casefold()}"


def closed_name(name: str, naming: NamingRule, cancelled: bool) -> str:
    marker = naming.cancelled_marker if cancelled else naming.closed_marker
    if name.startswith(marker):
        return name
    full = marker + name
    return full if len(full) <= naming.max_length else full[: naming.max_length - 1] + "…"


# ----------------------------------------------------------------------------------------- staffing


def person_ids(cell: Any) -> list[str]:
    """Open ids in a staffing cell: Feishu person cells, a list of ids or text ("ou_a, ou_b"), read with the
    SDK's codec; a hand-typed cell with other words around the ids still gives its ids."""
    try:
        return [person.id for person in cells.persons(cell)]
    except cells.CellError:
        return _OPEN_ID.findall(cells.text(cell))


def staff_for_region(rows: Iterable[Mapping[str, Any]], region: str, staffing: StaffingTable) -> dict[str, list[str]]:
    """Role -> open ids for ``region`` from the staffing table's rows (empty lists when no row matches)."""
    staff: dict[str, list[str]] = {role: [] for role in ROLES}
    for fields in rows:
        if cells.text(fields.get(staffing.region_field)) != region:
            continue
        for role, column in staffing.role_fields.items():
            for open_id in person_ids(fields.get(column)):
                if open_id not in staff[role]:
                    staff[role].append(open_id)
    return staff


def members_for(staff: Mapping[str, list[str]], staffing: StaffingTable, *extra: Iterable[str]) -> list[str]:
    """Who is invited: the invited roles' people, then the requester and mentioned users, without repeats."""
    ordered = [i for role in staffing.invite_roles for i in staff.get(role, [])]
    for group in extra:
        ordered.extend(group)
    return [i for i in dict.fromkeys(ordered) if i]


# ------------------------------------------------------------------------------------------- stages


def plan(start: date, settings: ProjectDeliverySettings) -> dict[str, date]:
    """Planned date of each stage: contract signing plus the stage's offset."""
    return {s.key: start + timedelta(days=s.offset_days) for s in settings.stages}


def check_stage_change(state: ProjectState, change: StageChange, settings: ProjectDeliverySettings) -> Decision:
    """Accept, refuse or turn into a close a request to move the project to ``change.stage``."""
    if state.status != "open":
        return Decision(action="refuse", reason=f"project is {state.status}", data={"code": "not_open"})
    target = settings.stage(change.stage)
    if target is None:
        return Decision(action="refuse", reason=f"unknown stage {change.stage!r}", data={"code": "unknown"})
    if change.stage == state.stage:
        return Decision(action="refuse", reason=f"already at stage {change.stage}", data={"code": "already"})
    if change.stage == settings.closing_stage:
        return Decision(action="close", reason=f"{change.via}: closing stage reached", data={"code": "close"})
    old, new = settings.stage_index(state.stage), settings.stage_index(change.stage)
    skipped = [s.key for s in settings.stages[old + 1:new]] if new > old else []
    return Decision(action="accept", reason=f"{state.stage} -> {change.stage} via {change.via}",
                    data={"backwards": new < old, "skipped": skipped})


def apply_stage(state: ProjectState, change: StageChange, now: datetime, today: date,
                settings: ProjectDeliverySettings) -> ProjectState:
    """The project after moving to ``change.stage`` (already accepted): history, acceptance, warranty."""
    new = state.model_copy(deep=True)
    planned = state.planned.get(change.stage)
    slipped = max(0, (today - planned).days) if planned else 0
    new.history.append(StageEvent(stage=change.stage, at=now, by=change.operator_open_id, via=change.via,
                                  planned=planned, slipped_days=slipped, note=change.note))
    old_i, new_i = settings.stage_index(state.stage), settings.stage_index(change.stage)
    acc_i = settings.stage_index(settings.acceptance_stage) if settings.acceptance_stage else -1
    # Passing beyond the acceptance stage is the acceptance: the warranty runs from that day.
    if acc_i >= 0 and old_i <= acc_i < new_i and new.accepted_on is None:
        new.accepted_on = today
    if new_i < old_i and acc_i >= 0 and new_i <= acc_i:
        new.accepted_on = None  # moved back before acceptance: not accepted any more
    if settings.warranty_stage and change.stage == settings.warranty_stage:
        start = new.accepted_on or today
        new.accepted_on = start
        new.warranty_end = add_months(start, settings.warranty_months)
        new.planned[settings.closing_stage] = new.warranty_end
    new.stage = change.stage
    new.fired = []
    new.warranty_fired = []
    new.cycle += 1
    return new


def next_milestone(state: ProjectState, settings: ProjectDeliverySettings) -> tuple[str, date] | None:
    """The next stage to reach and its planned date (None after the last)."""
    i = settings.stage_index(state.stage)
    if i < 0 or i + 1 >= len(settings.stages):
        return None
    key = settings.stages[i + 1].key
    due = state.planned.get(key)
    return (key, due) if due else None


def milestone_ladder(settings: ProjectDeliverySettings) -> LadderSettings:
    return LadderSettings(before_days=settings.reminder_lead_days, on_due=True, after=settings.slip_ladder,
                          working_days_only=settings.working_days_only, send_at=settings.send_at)


def warranty_ladder(settings: ProjectDeliverySettings) -> LadderSettings:
    return LadderSettings(before_days=settings.warranty_reminder_days, on_due=False, after=[],
                          working_days_only=settings.working_days_only, send_at=settings.send_at)


def next_timer(state: ProjectState, now: datetime, settings: ProjectDeliverySettings,
               calendar: WorkCalendar) -> Decision:
    """The next thing the project does by itself: a milestone reminder or escalation, a warranty reminder,
    the end of the warranty, or the weekly group digest. The earliest wins."""
    if state.status != "open":
        return Decision.nothing(f"project is {state.status}")
    candidates: list[Decision] = []
    in_warranty = bool(settings.warranty_stage) and state.stage == settings.warranty_stage
    if in_warranty and state.warranty_end:
        notice = next_notice(state.warranty_end, state.warranty_fired, now, warranty_ladder(settings), calendar)
        if not notice.is_nothing:
            candidates.append(Decision(action="warranty", reason=f"warranty {notice.reason}", at=notice.at,
                                       step=notice.step, data={**notice.data, "role": "service_engineer"}))
        if settings.close_at_warranty_end:
            end = calendar.at_local(state.warranty_end, settings.send_at).astimezone(UTC)
            candidates.append(Decision(action="warranty_end", at=max(end, now), step="warranty_end",
                                       reason=f"warranty ends {state.warranty_end.isoformat()}: close the project"))
    elif (upcoming := next_milestone(state, settings)) is not None:
        key, due = upcoming
        notice = next_notice(due, state.fired, now, milestone_ladder(settings), calendar)
        if not notice.is_nothing:
            spec = settings.stage(key)
            assert spec is not None
            to = notice.data.get("to")
            role = spec.role if to == "owner" else str(to)
            candidates.append(Decision(action=notice.action, reason=f"milestone {key}: {notice.reason}",
                                       at=notice.at, step=notice.step,
                                       data={**notice.data, "role": role, "milestone": key}))
    after = state.last_digest_at or state.created_at or now
    digest_at = cron_next(settings.digest_cron, after, calendar.zone)
    candidates.append(Decision(action="digest", at=max(digest_at, now),
                               step=f"digest:{calendar.local(digest_at).date().isoformat()}",
                               reason=f"weekly digest ({settings.digest_cron})"))
    return min(candidates, key=lambda d: d.at or now)


# ---------------------------------------------------------------------------------------- summaries


def stage_view(settings: ProjectDeliverySettings, state: ProjectState, today: date) -> list[dict[str, Any]]:
    """Each stage for templates: names, planned date, reached date, whether current/late."""
    reached = {e.stage: e for e in state.history}
    current = settings.stage_index(state.stage)
    out = []
    for i, spec in enumerate(settings.stages):
        planned = state.planned.get(spec.key)
        event = reached.get(spec.key) if i <= current else None
        out.append({
            "key": spec.key, "name_zh": spec.name_zh, "name_en": spec.name_en, "note_zh": spec.note_zh,
            "note_en": spec.note_en, "role": spec.role,
            "planned": planned.isoformat() if planned else "", "done": i < current, "current": i == current,
            "reached": event.at.isoformat() if event else "",
            "late": bool(planned and i > current and today > planned),
        })
    return out


def slipped_items(state: ProjectState, today: date, settings: ProjectDeliverySettings) -> list[dict[str, Any]]:
    """Milestones reached late (from history) and the next one if it is already overdue."""
    items = []
    for event in state.history:
        if event.slipped_days > 0:
            spec = settings.stage(event.stage)
            items.append({"stage": event.stage, "name_zh": spec.name_zh if spec else event.stage,
                          "name_en": spec.name_en if spec else event.stage, "days": event.slipped_days,
                          "open": False})
    upcoming = next_milestone(state, settings)
    in_warranty = state.stage == settings.warranty_stage
    if upcoming and not in_warranty and today > upcoming[1]:
        spec = settings.stage(upcoming[0])
        assert spec is not None
        items.append({"stage": spec.key, "name_zh": spec.name_zh, "name_en": spec.name_en,
                      "days": (today - upcoming[1]).days, "open": True})
    return items


def overdue_days(state: ProjectState, today: date, settings: ProjectDeliverySettings) -> int:
    upcoming = next_milestone(state, settings)
    if not upcoming or state.stage == settings.warranty_stage:
        return 0
    return max(0, (today - upcoming[1]).days)


def project_context(state: ProjectState, settings: ProjectDeliverySettings, today: date) -> dict[str, Any]:
    """The template context every project message shares."""
    spec = settings.stage(state.stage)
    upcoming = next_milestone(state, settings)
    nxt = settings.stage(upcoming[0]) if upcoming else None
    return {
        "project_id": state.project_id, "name": state.name, "customer": state.customer,
        "product": state.product, "region": state.region, "status": state.status, "today": today.isoformat(),
        "stage": state.stage, "stage_zh": spec.name_zh if spec else state.stage,
        "stage_en": spec.name_en if spec else state.stage,
        "next_stage": nxt.key if nxt else "", "next_zh": nxt.name_zh if nxt else "",
        "next_en": nxt.name_en if nxt else "", "next_due": upcoming[1].isoformat() if upcoming else "",
        "days_left": (upcoming[1] - today).days if upcoming else 0,
        "stages": stage_view(settings, state, today), "slipped": slipped_items(state, today, settings),
        "warranty_end": state.warranty_end.isoformat() if state.warranty_end else "",
        "accepted_on": state.accepted_on.isoformat() if state.accepted_on else "",
        "project_manager": (state.staff.get("project_manager") or [""])[0],
        "closing_stage": settings.closing_stage,
    }


# ------------------------------------------------------------------------------------------ bitable


def _ms(day: date | None, zone: ZoneInfo) -> int | None:
    return cells.encode_date(day, zone) if day is not None else None


def _log_line(event: StageEvent, settings: ProjectDeliverySettings, zone: ZoneInfo) -> str:
    """One line of the row's stage log: when, which stage, how and by whom, how late."""
    spec = settings.stage(event.stage)
    who = f" {event.by}" if event.by else ""
    late = f", 延期{event.slipped_days}天" if event.slipped_days else ""
    name = spec.name_zh if spec else event.stage
    return f"{event.at.astimezone(zone):%Y-%m-%d %H:%M} {name} ({event.via}{who}{late})"


def project_fields(state: ProjectState, settings: ProjectDeliverySettings, today: date,
                   zone: ZoneInfo) -> dict[str, Any]:
    """The project's row in the projects table (dates as Feishu date cells: epoch milliseconds)."""
    f, table = settings.projects.fields, settings.projects
    status = {"open": table.status_open, "closed": table.status_closed,
              "cancelled": table.status_cancelled}.get(state.status, state.status)
    spec = settings.stage(state.stage)
    upcoming = next_milestone(state, settings) if state.status == "open" else None
    nxt = settings.stage(upcoming[0]) if upcoming else None
    log = "\n".join(_log_line(e, settings, zone) for e in state.history)
    fields: dict[str, Any] = {
        f.project_id: state.project_id, f.name: state.name, f.customer: state.customer, f.product: state.product,
        f.region: state.region, f.stage: spec.name_zh if spec else state.stage, f.status: status,
        f.chat_id: state.chat_id, f.project_manager: ", ".join(state.staff.get("project_manager", [])),
        f.next_milestone: nxt.name_zh if nxt else "", f.next_due: _ms(upcoming[1], zone) if upcoming else None,
        f.slipped_days: overdue_days(state, today, settings) if state.status == "open" else 0,
        f.warranty_end: _ms(state.warranty_end, zone), f.stage_log: log,
        f.created: cells.encode_moment(state.created_at) if state.created_at else None,
        f.closed: cells.encode_moment(state.closed_at) if state.closed_at else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def stage_from_fields(fields: Mapping[str, Any], settings: ProjectDeliverySettings) -> str | None:
    """The stage key a (possibly hand-edited) row names: its key, Chinese or English name."""
    text = cells.text(fields.get(settings.projects.fields.stage))
    for spec in settings.stages:
        if text in (spec.key, spec.name_zh, spec.name_en):
            return spec.key
    return None


def _date_cell(value: Any, zone: ZoneInfo) -> date | None:
    """A date cell's day in ``zone``; a cell that holds no date (typed by hand) reads as none."""
    return cells.or_none(cells.date, value, zone)


def project_row(fields: Mapping[str, Any], settings: ProjectDeliverySettings, today: date,
                zone: ZoneInfo) -> ProjectRow:
    f = settings.projects.fields
    due = _date_cell(fields.get(f.next_due), zone)
    status = cells.text(fields.get(f.status))
    late = (today - due).days if due and today > due and status == settings.projects.status_open else 0
    return ProjectRow(project_id=cells.text(fields.get(f.project_id)), name=cells.text(fields.get(f.name)),
                      region=cells.text(fields.get(f.region)), stage=cells.text(fields.get(f.stage)), status=status,
                      next_milestone=cells.text(fields.get(f.next_milestone)), next_due=due, late_days=late)


def portfolio(rows: Iterable[ProjectRow], settings: ProjectDeliverySettings) -> dict[str, dict[str, Any]]:
    """Per region: open projects counted by stage (in stage order) and the late ones, latest first."""
    order = [s.name_zh for s in settings.stages]
    regions: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.status != settings.projects.status_open or not row.project_id:
            continue
        entry = regions.setdefault(row.region, {"region": row.region, "total": 0, "by_stage": {}, "late": []})
        entry["total"] += 1
        entry["by_stage"][row.stage] = entry["by_stage"].get(row.stage, 0) + 1
        if row.late_days > 0:
            entry["late"].append({"project_id": row.project_id, "name": row.name, "milestone": row.next_milestone,
                                  "due": row.next_due.isoformat() if row.next_due else "", "days": row.late_days})
    for entry in regions.values():
        entry["by_stage"] = [{"stage": s, "count": entry["by_stage"][s]}
                             for s in sorted(entry["by_stage"], key=lambda s: order.index(s) if s in order else 99)]
        entry["late"].sort(key=lambda item: -item["days"])
    return dict(sorted(regions.items()))


def stage_name(text: str, settings: ProjectDeliverySettings, locale: str) -> str:
    """A stage as the projects table writes it (its Chinese name, or its key or English name when edited by
    hand) in ``locale``; a name that is no stage is shown as written."""
    for spec in settings.stages:
        if text in (spec.key, spec.name_zh, spec.name_en):
            return spec.name_en if locale == "en_US" else spec.name_zh
    return text


def localized_portfolio(entry: Mapping[str, Any], settings: ProjectDeliverySettings, locale: str) -> dict[str, Any]:
    """One region's portfolio entry with its stage and milestone names in the reader's ``locale``."""
    return {**entry,
            "by_stage": [{**s, "stage": stage_name(s["stage"], settings, locale)} for s in entry["by_stage"]],
            "late": [{**p, "milestone": stage_name(p["milestone"], settings, locale)} for p in entry["late"]]}


def status_view(state: ProjectState, settings: ProjectDeliverySettings, today: date) -> dict[str, Any]:
    """What "<project id> 状态" answers: the stage, the next milestone and the slips (both languages'
    names: the reply renders the asker's)."""
    context = project_context(state, settings, today)
    keep = ("project_id", "name", "customer", "product", "region", "status", "today", "stage", "stage_zh",
            "stage_en", "next_stage", "next_zh", "next_en", "next_due", "days_left", "slipped", "warranty_end",
            "accepted_on")
    view = {key: context[key] for key in keep}
    if state.status != "open":
        view.update(next_stage="", next_zh="", next_en="", next_due="", days_left=0)
    return view


# ------------------------------------------------------------------------------------ monthly outcome

_LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}) \d{2}:\d{2} (.+?) \(")


def stage_log_days(text: str, settings: ProjectDeliverySettings) -> list[tuple[int, date]]:
    """``(stage index, day reached)`` of each line of a row's stage log (:func:`project_fields` writes it:
    ``2026-10-05 09:00 现场勘察 (card ou_x, 延期3天)``); lines naming no configured stage are skipped."""
    found = []
    for line in text.splitlines():
        matched = _LOG_LINE.match(line.strip())
        if matched is None:
            continue
        index = next((i for i, s in enumerate(settings.stages) if matched.group(2) in (s.name_zh, s.name_en, s.key)),
                     -1)
        if index >= 0:
            found.append((index, date.fromisoformat(matched.group(1))))
    return found


def _median(values: Sequence[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def milestone_outcomes(records: Iterable[Mapping[str, Any]], settings: ProjectDeliverySettings, first: date,
                       last: date, zone: ZoneInfo) -> list[MilestoneOutcome]:
    """Per project, the milestones planned in ``[first, last]`` (days, local), from the projects table.

    A stage's planned day is the row's 创建时间 (the day the project started, local) plus the stage's
    ``offset_days`` (the closing stage: the row's 保修截止 when set), as :func:`plan` planned it. It is
    reached on the first stage-log day of it or of a later stage (a skipped stage is passed); ``late``
    ones slipped ``reached - planned`` days, ``open`` ones (not reached) ``last - planned`` days so far.
    Cancelled projects and rows without a start are left out. Rows in name order.
    """
    f, out = settings.projects.fields, []
    for fields in records:
        started = cells.or_none(cells.moment, fields.get(f.created), where=f"projects column {f.created!r}")
        if started is None or cells.text(fields.get(f.status)) == settings.projects.status_cancelled:
            continue
        start = started.astimezone(zone).date()
        log = stage_log_days(cells.text(fields.get(f.stage_log)), settings)
        warranty_end = _date_cell(fields.get(f.warranty_end), zone)
        on_time = late = still_open = 0
        slips: list[int] = []
        for index, stage in enumerate(settings.stages):
            planned = start + timedelta(days=stage.offset_days)
            if stage.key == settings.closing_stage and warranty_end is not None:
                planned = warranty_end
            if index == 0 or not first <= planned <= last:
                continue
            reached = min((day for i, day in log if i >= index), default=None)
            if reached is not None and reached <= planned:
                on_time += 1
            elif reached is not None:
                late += 1
                slips.append((reached - planned).days)
            else:
                still_open += 1
                slips.append((last - planned).days)
        due = on_time + late + still_open
        if not due:
            continue
        customer, product = cells.text(fields.get(f.customer)), cells.text(fields.get(f.product))
        project_id = cells.text(fields.get(f.project_id))
        out.append(MilestoneOutcome(
            project_id=project_id, name=cells.text(fields.get(f.name)) or project_id,
            label=" · ".join(p for p in (customer, product) if p) or project_id,
            region=cells.text(fields.get(f.region)), due=due, on_time=on_time, late=late, open=still_open,
            slip_p50=_median(slips), slip_max=max(slips) if slips else None))
    return sorted(out, key=lambda o: (o.name, o.project_id))
