"""The device_calibration scenario's typed facts: device records, cycle state, signal and update payloads.

Everything here is a pydantic model, so it travels through Temporal's pydantic data converter unchanged and
is safe to import in the workflow sandbox (no I/O, no wall clock). Parsing a Bitable record into a
:class:`DeviceRecord` is pure too: Feishu's cell shapes (ms timestamps, person lists, rich-text segments)
are decoded here, in one place.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey

from engine.sdk import BusinessClock, cells
from plugins.device_calibration.config import PRIMARY_KIND

SCENARIO = "device_calibration"
CYCLE_WORKFLOW = f"{SCENARIO}.CalibrationCycle"
RECONCILE_WORKFLOW = f"{SCENARIO}.Reconcile"
DIGEST_WORKFLOW = f"{SCENARIO}.WeeklyDigest"
OUTCOME_WORKFLOW = f"{SCENARIO}.MonthlyOutcome"

Phase = Literal["active", "sent_out", "overdue", "quarantined", "paused", "retired", "not_found"]
ResultValue = Literal["pass", "fail", "adjusted"]


def cycle_key(device_id: str, kind: str) -> str:
    """The business key of one cycle: ``{device_id}`` for calibration, ``{device_id}:{kind}`` otherwise."""
    return device_id if kind == PRIMARY_KIND else f"{device_id}:{kind}"


def split_cycle_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`cycle_key` (device ids never contain ':')."""
    device_id, sep, kind = key.partition(":")
    return device_id, (kind if sep else PRIMARY_KIND)


# ------------------------------------------------------------------------------------------ cell decoding
# Cells are decoded by the SDK's codec (every field type, formula and lookup wrappers included); these
# keep the scenario's lenient reading: a cell that cannot be its column's type reads as empty.


def cell_text(value: Any) -> str:
    """Text of a Bitable cell: plain strings, numbers, rich-text segments or option lists (stripped)."""
    return cells.text(value)


def cell_int(value: Any) -> int | None:
    """A whole number from a number or text cell ("12", 12, 12.0); None when empty or not a number."""
    number = cells.or_none(cells.number, value)
    return int(number) if number is not None else None


def cell_date(value: Any, zone: ZoneInfo) -> date | None:
    """A date from a Bitable date cell (ms since the epoch, shown in ``zone``), a lookup of one, or ISO text."""
    return cells.or_none(cells.date, value, zone)


def date_cell(day: date, zone: ZoneInfo) -> int:
    """How a date is written into a Bitable date field: ms at local midnight in ``zone``."""
    return cells.encode_date(day, zone)


class Person(BaseModel):
    """Someone named in a person field (or an open_id typed as text)."""

    open_id: str
    name: str = ""


def cell_person(value: Any) -> Person | None:
    """The first person of a person cell (``[{"id": "ou_...", "name": ...}]``) or an open_id as text."""
    found = cells.or_none(cells.person, value)
    return Person(open_id=found.id, name=found.name or found.en_name) if found else None


# ---------------------------------------------------------------------------------------------- records


class KindFacts(BaseModel):
    """What the device table says about one schedule kind of one device."""

    interval_months: int | None = None
    last: date | None = None
    due: date | None = None
    certificate: str = ""


class DeviceInfo(BaseModel):
    """Who and what a device is: shown in cards, replies and the digest."""

    device_id: str
    name: str = ""
    model: str = ""
    department: str = ""
    site: str = ""
    location: str = ""
    custodian: Person | None = None
    manager: Person | None = None
    department_head: Person | None = None


class DeviceRecord(BaseModel):
    """One row of the device table, decoded with the organization's field names."""

    record_id: str
    info: DeviceInfo
    status: str = ""  # the raw status label (合格 / 准用 / 停用 / 报废 ...)
    kinds: dict[str, KindFacts] = Field(default_factory=dict)

    @property
    def device_id(self) -> str:
        return self.info.device_id


# ------------------------------------------------------------------------------------------- the cycle


class HistoryEntry(BaseModel):
    """One decision or confirmation: what happened, who did it (open_id, or ``system``), when, and why."""

    at: datetime
    cycle: int
    seq: int = 0  # numbers every entry of a device's kind, across cycles (the audit log's key)
    action: str
    actor: str = "system"
    reason: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class SentOut(BaseModel):
    vendor: str
    sent_on: date
    by: str
    at: datetime


class CalibrationResult(BaseModel):
    performed_on: date
    performed_by: str
    certificate: str
    as_found: ResultValue
    as_left: ResultValue
    recorded_by: str
    recorded_at: datetime
    note: str = ""


class Assessment(BaseModel):
    """An out-of-tolerance assessment: which earlier measurements the device may have affected."""

    opened_at: datetime
    result: CalibrationResult
    owner: str = ""  # the equipment manager's open_id
    closed_at: datetime | None = None
    closed_by: str | None = None
    conclusion: str = ""
    affected: str = ""  # earlier measurements / patients / batches the manager reviewed
    outcome: Literal["return_to_service", "retire", ""] = ""


class CycleState(BaseModel):
    """Everything a cycle knows; the ``state`` query returns it (with ``days_left`` filled in)."""

    org: str
    device_id: str
    kind: str
    record_id: str | None = None
    info: DeviceInfo
    phase: Phase = "active"
    status_label: str = ""
    cycle: int = 1
    interval_months: int = 12
    last_calibrated: date | None = None
    due: date | None = None
    days_left: int | None = None
    last_certificate: str = ""
    sent_out: SentOut | None = None
    last_result: CalibrationResult | None = None
    assessment: Assessment | None = None
    overdue_stage: str = ""  # "grace" or "overdue" once the due date passed without a result
    paused_reason: str = ""
    paused_by_table: bool = False
    phase_before_pause: Phase | None = None
    fired: list[str] = Field(default_factory=list)
    next_notice_at: datetime | None = None
    next_notice: str = ""
    history: list[HistoryEntry] = Field(default_factory=list)
    next_seq: int = 0
    seen: list[str] = Field(default_factory=list)


# The memo key under which a running cycle keeps its CycleView (read back by one visibility listing).
VIEW_MEMO = "devcal_view"
# The search attribute a cycle sets to the workflow time at which its view last changed: a reconciliation
# whose worker holds the last listing lists only the cycles changed since (plugins.device_calibration.listing).
VIEW_CHANGED_AT = SearchAttributeKey.for_datetime("CalibrationViewChangedAt")


def info_fingerprint(info: DeviceInfo) -> str:
    """A short digest of a device's details: equal details, equal digest (sha-256 of their JSON, 16 hex)."""
    return hashlib.sha256(info.model_dump_json().encode()).hexdigest()[:16]


class CycleView(BaseModel):
    """What reconciliation compares with a row, kept in the running cycle's memo.

    Reconciliation reads every cycle's view in one visibility listing instead of a describe and a query
    per cycle; ``info`` is :func:`info_fingerprint` of the details the cycle holds.
    """

    phase: Phase
    paused_by_table: bool = False
    due: date | None = None
    info: str

    @classmethod
    def of(cls, state: CycleState) -> CycleView:
        return cls(phase=state.phase, paused_by_table=state.paused_by_table, due=state.due,
                   info=info_fingerprint(state.info))


class CycleInput(BaseModel):
    """How a cycle starts: from the router or reconciliation (``carry`` empty), or continued as new.

    ``seed`` is what a reconciliation that starts the cycle has just read (its row, the site's settings and
    calendar) and the day it planned the due date on; it has written the cycle's "registered" audit row
    too, in a batch with the other cycles it started. A seeded cycle reads nothing and logs nothing to
    register: its first workflow task plans the due date and goes to sleep.
    """

    org: str
    device_id: str
    kind: str = PRIMARY_KIND
    record_id: str | None = None
    carry: CycleState | None = None
    seed: CycleSeed | None = None


class CycleOutcome(BaseModel):
    phase: Phase
    cycles: int
    reason: str = ""


# ---------------------------------------------------------------------------------- signals and updates


class RecordChanged(BaseModel):
    """The device's row changed (Bitable event or reconciliation): re-read it and re-plan."""

    event_id: str
    record_id: str | None = None
    action: str = "record_edited"
    operator: str = ""


class Retire(BaseModel):
    event_id: str
    reason: str = ""
    by: str = "system"
    mark_retired: bool = False  # write the first of `retired_values` into the usage status


class PauseRequest(BaseModel):
    event_id: str
    reason: str = ""
    by: str = "system"


class CardInput(BaseModel):
    """A button press or form submission on one of this scenario's cards."""

    event_id: str
    operator: str
    cycle: int | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    message_id: str = ""


# --------------------------------------------------------------------------------------- context / sync


class CalendarFacts(BaseModel):
    """What a workflow needs to build the organization's WorkCalendar (no config access in workflows)."""

    timezone: str = "Asia/Shanghai"
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)
    clock: BusinessClock = Field(default_factory=BusinessClock)


class CycleContext(BaseModel):
    """The organization's current settings and the device's current row, read by an activity."""

    settings: dict[str, Any]
    calendar: CalendarFacts
    locale: str = "zh_CN"
    device: DeviceRecord | None = None


class CycleSeed(BaseModel):
    """A cycle's start from a reconciliation: the context it read, and the day its due date was planned on."""

    context: CycleContext
    planned_on: date
    registered_at: datetime | None = None  # the business time of its "registered" entry (None: its first task)


class WriteStatus(BaseModel):
    """Cells of a device's row to write, with a usage status to combine with the other kinds' states."""

    org: str
    record_id: str
    kind: str
    fields: dict[str, Any]


class LoadContext(BaseModel):
    org: str
    device_id: str
    record_id: str | None = None


class ReconcileInput(BaseModel):
    """A reconciliation run: the whole table, or only ``record_ids`` (a Bitable event we could not key)."""

    org: str
    record_ids: list[str] | None = None
    report: bool = True
    run_key: str = ""  # set by the workflow: makes the event ids of this run's signals unique


class ReconcileChange(BaseModel):
    key: str
    action: Literal["started", "updated", "retired", "unchanged", "skipped"]
    reason: str = ""


# Changes a reconciliation's report lists, of the unchanged and of the others each: a report is a Temporal
# payload (2 MiB at most), and 100,000 rows listed one by one would not fit. ``counts`` counts them all.
LISTED_CHANGES = 1000


class ReconcileReport(BaseModel):
    org: str
    rows: int = 0
    changes: list[ReconcileChange] = Field(default_factory=list)  # the first LISTED_CHANGES of each kind
    counts: dict[str, int] = Field(default_factory=dict)  # every change, by action
    errors: list[str] = Field(default_factory=list)  # for the log: the managers' report says only that some were
    locale: str = "zh_CN"  # the organization's, which the report is written in
    # seconds per phase ("read", "listing", "check", "start", "retire"), for the log and the benchmark; the
    # listing runs while the table is read
    phases: dict[str, float] = Field(default_factory=dict)

    def add(self, change: ReconcileChange) -> None:
        """Count ``change``, and list it while fewer than LISTED_CHANGES of its kind are."""
        self.counts[change.action] = self.counts.get(change.action, 0) + 1
        listed = self.count("unchanged") if change.action == "unchanged" else self.fixes()
        if listed <= LISTED_CHANGES:
            self.changes.append(change)

    def count(self, action: str) -> int:
        return self.counts.get(action, 0)

    def fixes(self) -> int:
        """Cycles started, updated or retired."""
        return sum(self.count(action) for action in ("started", "updated", "retired"))


class DigestInput(BaseModel):
    org: str
    window_days: int | None = None


class DigestItem(BaseModel):
    key: str
    device_id: str
    name: str
    kind: str
    due: date | None
    days_left: int | None
    phase: str
    vendor: str = ""


class DepartmentDigest(BaseModel):
    department: str
    head: str | None = None
    due_soon: list[DigestItem] = Field(default_factory=list)
    overdue: list[DigestItem] = Field(default_factory=list)
    sent_out: list[DigestItem] = Field(default_factory=list)


# ------------------------------------------------------------------------------------ monthly outcome


class LogRow(BaseModel):
    """One calibration-log row as the monthly outcome card reads it."""

    device_id: str
    kind: str = PRIMARY_KIND
    cycle: int = 0
    action: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)


class DeviceMeta(BaseModel):
    """What the card needs of a device: its name (shown) and its site (whose card counts it)."""

    name: str = ""
    site: str = ""  # site id ("" for the group's)


class OutcomeInput(BaseModel):
    org: str


class OutcomeRequest(BaseModel):
    """The log rows recorded before ``until`` (older rows carry the due dates of the month's cycles)."""

    org: str
    until: datetime


class OutcomeData(BaseModel):
    rows: list[LogRow] = Field(default_factory=list)
    devices: dict[str, DeviceMeta] = Field(default_factory=dict)
