"""Settings of the handover scenario (``[organizations.<id>.settings.handover]``).

The group sets the standard; a site (one hospital) may override the keys in ``SITE_OVERRIDABLE``, for
instance its own departments, shift change times or deadlines. Departments are keyed by an id without
``:`` that is unique in the organization (``icu``, ``h2-cardiology``): it is part of every workflow id.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.sdk import PluginSettings, validate_cron

Structure = Literal["ipass", "sbar"]
Target = Literal["receiver", "giver", "head", "medical_affairs"]

# The content fields of each handover structure (illness severity, bed and category are common to both).
# I-PASS: I = severity, P = patient summary, A = action list, S = situation awareness and contingency,
# S = synthesis by the receiver (the acknowledgement step, not a form field).
STRUCTURE_FIELDS: dict[str, tuple[str, ...]] = {
    "ipass": ("summary", "actions", "contingency"),
    "sbar": ("situation", "background", "assessment", "recommendation"),
}

SITE_OVERRIDABLE = (
    "departments", "shift_changes", "lead_minutes", "ack_minutes", "critical_ack_minutes", "ack_escalation",
    "critical_escalation", "missing_reminders", "missing_escalation", "close_after_hours", "structure",
    "required_fields", "handovers_table", "patients_table", "medical_affairs",
)


def _clock(value: str) -> str:
    """Validate an ``HH:MM`` wall-clock time and return it normalized (``8:00`` -> ``08:00``)."""
    try:
        parsed = dt.time.fromisoformat(value if len(value) >= 5 else value.rjust(5, "0"))
    except ValueError:
        raise ValueError(f"{value!r} is not a wall-clock time HH:MM") from None
    if parsed.second or parsed.microsecond:
        raise ValueError(f"{value!r}: shift changes are whole minutes (HH:MM)")
    return parsed.strftime("%H:%M")


class TableRef(PluginSettings):
    """A Bitable table: the Base's ``app_token`` and the table's ``table_id``."""

    app_token: str
    table_id: str


class Category(PluginSettings):
    """A patient category shown in the form; ``critical`` ones need a per-patient confirmation."""

    id: str
    zh: str
    en: str
    critical: bool = False


class EscalationStep(PluginSettings):
    """One rung of a ladder: ``after_minutes`` past the deadline, notify ``to``."""

    after_minutes: int = Field(ge=0)
    to: Target = "head"


class RotaSlot(PluginSettings):
    """Who hands over (``giver``) and who takes over (``receiver``), as Feishu open ids."""

    giver: str
    receiver: str


class RotaEntry(RotaSlot):
    """A dated rota line: at ``date`` + ``shift`` (the shift change, local) ``giver`` hands to ``receiver``."""

    date: dt.date
    shift: str

    @field_validator("shift")
    @classmethod
    def _shift(cls, value: str) -> str:
        return _clock(value)


class Department(PluginSettings):
    """One department: its people, its group chat and its rota.

    The rota is resolved per shift change, first match wins: a dated line in ``rota`` (or in the
    Bitable ``rota_table``, or in ``rota_file``); on a day off per the organization's work calendar
    (weekends, public holidays, its own ``holidays``; make-up workdays count as workdays) the
    ``holiday_rota`` slot for that shift change; otherwise the ``workday_rota`` slot.
    """

    name: str = ""
    site: str | None = None
    head: str
    group_chat: str | None = None  # chat id of the department group: counts and statuses only
    shift_changes: list[str] | None = None  # default: the scenario's shift_changes
    rota: list[RotaEntry] = Field(default_factory=list)
    workday_rota: dict[str, RotaSlot] = Field(default_factory=dict)
    holiday_rota: dict[str, RotaSlot] = Field(default_factory=dict)
    rota_table: TableRef | None = None
    rota_file: str | None = None  # JSON rota, relative to the config file (examples/handover/rota.json)

    @field_validator("shift_changes")
    @classmethod
    def _changes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted({_clock(v) for v in value})

    @field_validator("workday_rota", "holiday_rota")
    @classmethod
    def _slots(cls, value: dict[str, RotaSlot]) -> dict[str, RotaSlot]:
        return {_clock(k): v for k, v in value.items()}


def default_categories() -> list[Category]:
    return [
        Category(id="new_admission", zh="新入院", en="New admission"),
        Category(id="critically_ill", zh="病危", en="Critically ill", critical=True),
        Category(id="pre_op", zh="术前", en="Pre-op"),
        Category(id="post_op", zh="术后", en="Post-op"),
        Category(id="critical_value", zh="危急值", en="Critical lab value", critical=True),
        Category(id="transfer", zh="转科", en="Transfer"),
    ]


class HandoverSettings(PluginSettings):
    """Everything the handover scenario reads from config; every key has a working default."""

    departments: dict[str, Department] = Field(default_factory=dict)
    shift_changes: list[str] = Field(default_factory=lambda: ["08:00", "20:00"])
    lead_minutes: int = Field(45, ge=0, description="form card this long before the shift change")
    ack_minutes: int = Field(60, ge=1, description="the receiver confirms the handover within this")
    critical_ack_minutes: int = Field(15, ge=1, description="each critical patient is confirmed within this")
    ack_escalation: list[EscalationStep] = Field(
        default_factory=lambda: [EscalationStep(after_minutes=0, to="receiver"),
                                 EscalationStep(after_minutes=0, to="head"),
                                 EscalationStep(after_minutes=120, to="medical_affairs")])
    critical_escalation: list[EscalationStep] = Field(
        default_factory=lambda: [EscalationStep(after_minutes=0, to="head")])
    missing_reminders: list[int] = Field(default_factory=lambda: [0], description="minutes after the change")
    missing_escalation: list[EscalationStep] = Field(
        default_factory=lambda: [EscalationStep(after_minutes=30, to="head"),
                                 EscalationStep(after_minutes=180, to="medical_affairs")])
    close_after_hours: int = Field(12, ge=1, description="the workflow ends this long after the change")
    structure: Structure = "ipass"
    required_fields: list[str] | None = None  # default: every content field of the structure
    categories: list[Category] = Field(default_factory=default_categories)
    handovers_table: TableRef | None = None  # one record per shift handover (statistics)
    patients_table: TableRef | None = None  # one record per patient entry (restricted: patient data)
    medical_affairs: list[str] = Field(default_factory=list)  # open ids of the medical affairs office
    stats_cron: str = "0 9 1 * *"  # monthly statistics card (org timezone); "" switches it off
    # the monthly outcome card: recipients (open ids) per department id ("" for every department), sent at
    # report_hour on the month's first working day
    report_recipients: dict[str, list[str]] = Field(default_factory=dict)
    report_hour: int = Field(9, ge=0, le=23)
    # the case's figure (each doctor about 30 minutes less overtime per handover written on the phone): an
    # assumption, stated as an estimate on the card; set what your hospitals measured
    overtime_saved_minutes: int = Field(30, ge=0)

    @field_validator("stats_cron")
    @classmethod
    def _stats_cron(cls, value: str) -> str:
        # "" switches the statistics card off; anything else must be a cron the schedule can use
        return validate_cron(value) if value.strip() else ""

    @field_validator("shift_changes")
    @classmethod
    def _changes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one shift change time")
        return sorted({_clock(v) for v in value})

    @field_validator("departments")
    @classmethod
    def _department_ids(cls, value: dict[str, Department]) -> dict[str, Department]:
        for key in value:
            if not key or ":" in key:
                raise ValueError(f"department id {key!r} must be non-empty and contain no ':'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HandoverSettings:
        fields = STRUCTURE_FIELDS[self.structure]
        unknown = [f for f in self.required_fields or () if f not in (*fields, "name", "imaging")]
        if unknown:
            raise ValueError(f"required_fields {unknown} are not fields of the {self.structure} structure "
                             f"({', '.join(fields)}, name, imaging)")
        ids = [c.id for c in self.categories]
        if len(ids) != len(set(ids)):
            raise ValueError("category ids must be unique")
        return self

    def changes_of(self, department: str) -> list[str]:
        """The shift change times of ``department`` (its own, else the scenario's)."""
        own = self.departments[department].shift_changes
        return own if own else self.shift_changes

    def required(self) -> list[str]:
        """Content fields an entry must fill to count as complete."""
        if self.required_fields is not None:
            return list(self.required_fields)
        return list(STRUCTURE_FIELDS[self.structure])
