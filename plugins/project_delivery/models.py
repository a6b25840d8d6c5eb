"""Typed facts of project_delivery: requests, the project's state, registry messages, digest rows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["new", "refused", "open", "closed", "cancelled"]


class CreateRequest(BaseModel):
    """A valid "建群 <customer> <product> [region]" request."""

    customer: str
    product: str
    region: str = ""
    requester_open_id: str = ""
    chat_id: str = ""
    message_id: str = ""  # the request message: replies go to it
    event_id: str = ""
    extra_member_open_ids: list[str] = Field(default_factory=list)  # users @-mentioned in the request
    via: Literal["message", "card"] = "message"


class ParseResult(BaseModel):
    """What the parser made of a request: a valid request, or exactly which parts are missing."""

    request: CreateRequest | None = None
    missing: list[str] = Field(default_factory=list)  # "customer", "product", "region"
    empty: bool = False  # nothing but the trigger word: answer with the form card


class StageEvent(BaseModel):
    """One stage change: who, when, how, and how late against the plan."""

    stage: str
    at: datetime
    by: str = ""
    via: Literal["create", "card", "bitable", "warranty", "command"] = "card"
    planned: date | None = None
    slipped_days: int = 0
    note: str = ""


class ProjectState(BaseModel):
    """Everything a project workflow knows; carried over continue-as-new."""

    project_id: str
    status: Status = "new"
    reason: str = ""
    customer: str = ""
    product: str = ""
    region: str = ""
    site: str = ""  # the configured site of the region ("" : the organization's standard)
    name: str = ""
    chat_id: str = ""
    card_message_id: str = ""
    card_sent_at: datetime | None = None
    record_id: str = ""
    requester_open_id: str = ""
    staff: dict[str, list[str]] = Field(default_factory=dict)  # role -> open ids
    members: list[str] = Field(default_factory=list)
    start_date: date | None = None
    created_at: datetime | None = None
    stage: str = ""
    planned: dict[str, date] = Field(default_factory=dict)  # stage key -> planned date
    history: list[StageEvent] = Field(default_factory=list)
    fired: list[str] = Field(default_factory=list)  # ladder steps fired for the current milestone
    notices: list[dict[str, Any]] = Field(default_factory=list)  # reminders/escalations sent (last 100)
    accepted_on: date | None = None
    warranty_end: date | None = None
    warranty_fired: list[str] = Field(default_factory=list)
    last_digest_at: datetime | None = None
    digests_sent: int = 0
    closed_at: datetime | None = None
    cycle: int = 0


class ProjectInput(BaseModel):
    project_id: str
    request: CreateRequest
    state: ProjectState | None = None
    seen: list[str] = Field(default_factory=list)


class StageChange(BaseModel):
    """A request to move a project to ``stage`` (card button, Bitable edit)."""

    stage: str
    operator_open_id: str = ""
    event_id: str = ""
    via: Literal["card", "bitable", "command"] = "card"
    note: str = ""


class CloseRequest(BaseModel):
    cancelled: bool = False
    operator_open_id: str = ""
    event_id: str = ""
    reason: str = ""


class RecordChanged(BaseModel):
    """A Bitable edit of a project's row, forwarded by the registry to the project."""

    record_id: str
    event_id: str = ""
    operator_open_id: str = ""


class ProjectContext(BaseModel):
    """The organization's effective settings and calendar for one run, as ``project_delivery.load_context``
    gave them before projects loaded their site's context (kept for runs recorded then)."""

    settings: dict[str, Any]
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)


class ContextRef(BaseModel):
    org: str


class FormGaps(BaseModel):
    """A submitted creation form with parts missing, answered with a toast that names them."""

    missing: list[str]
    locale: str = ""


class Acknowledge(BaseModel):
    """A submitted creation form, answered with a toast while the project is being created."""

    event_id: str = ""
    locale: str = ""


class Reservation(BaseModel):
    """Ask the registry for a group name; one decision per project id, whatever the retries."""

    org: str
    project_id: str
    customer: str
    product: str
    region: str = ""
    name: str  # the name the rule produced; the registry makes it unique
    max_length: int = 60


class ReserveResult(BaseModel):
    ok: bool
    name: str = ""
    reason: str = ""
    existing_project_id: str = ""
    existing_name: str = ""


class OpenProject(BaseModel):
    project_id: str
    customer: str
    product: str
    region: str = ""
    name: str
    record_id: str = ""
    chat_id: str = ""


class Registered(BaseModel):
    project_id: str
    record_id: str = ""
    chat_id: str = ""


class RegistryState(BaseModel):
    open: dict[str, OpenProject] = Field(default_factory=dict)
    decisions: dict[str, ReserveResult] = Field(default_factory=dict)
    records: dict[str, str] = Field(default_factory=dict)  # record id -> project id
    seen: list[str] = Field(default_factory=list)


class PortfolioInput(BaseModel):
    org: str


class ProjectRow(BaseModel):
    """One row of the projects table, as the portfolio digest reads it."""

    project_id: str
    name: str = ""
    region: str = ""
    stage: str = ""
    status: str = ""
    next_milestone: str = ""
    next_due: date | None = None
    late_days: int = 0


class OutcomeInput(BaseModel):
    """The monthly outcome card's run (the schedule's argument)."""

    org: str


class MilestoneOutcome(BaseModel):
    """One project's milestones (stages) planned in a month: how many were reached on time, how late."""

    project_id: str
    name: str  # the project's group name as recorded
    label: str  # customer · product: short enough for a chart's axis
    region: str = ""
    due: int = 0  # stages planned in the month (the first stage, reached at signing, is not a milestone)
    on_time: int = 0  # reached by their planned day
    late: int = 0  # reached after it
    open: int = 0  # not reached by the month's last day
    slip_p50: float | None = None  # days late, over the late and open ones (open: to the month's last day)
    slip_max: int | None = None
