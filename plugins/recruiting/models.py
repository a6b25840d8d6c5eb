"""Typed facts, requests and states of the recruiting scenario (all pydantic: they travel through Temporal).

Contacts (phone, email) never appear here in clear: only their keyed hash (HMAC), computed at the edge (the
router for contact events, an activity for Bitable rows), so Temporal histories hold no personal contacts.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

SCENARIO = "recruiting"

Via = Literal["card", "bitable", "hire", "system", "contact", "form"]


def req_key(req_id: str) -> str:
    return f"req:{req_id}"


def app_key(application_id: str) -> str:
    return f"app:{application_id}"


def onboarding_key(application_id: str) -> str:
    return f"onb:{application_id}"


class Transition(BaseModel):
    """One recorded change: who did what, when, through which channel."""

    at: datetime
    actor: str = ""
    action: str
    via: str = "system"
    detail: str = ""


class Context(BaseModel):
    """The context runs recorded before ``load_site_context`` loaded (kept so those runs replay and finish)."""

    org: str
    site: str = ""
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    settings: dict[str, Any] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list)


class ContextRequest(BaseModel):
    org: str
    site: str = ""


# ---------------------------------------------------------------------------------------- requisitions


class RequisitionFacts(BaseModel):
    req_id: str
    site: str = ""
    department: str = ""
    title: str = ""
    headcount: int = 1
    grade: str = ""
    tags: list[str] = Field(default_factory=list)
    recruiter: str = ""  # open id; empty: the site's recruiter role
    record_id: str | None = None
    reason: str = ""  # why the position is needed (the Feishu approval's form shows it)


class RequisitionInput(BaseModel):
    """Start of a requisition: from a Bitable row (only ``record_id`` known) or a card form (facts)."""

    req_id: str
    record_id: str | None = None
    facts: RequisitionFacts | None = None
    opened_by: str = ""
    via: str = "bitable"


class ApprovalStep(BaseModel):
    role: str
    approver: str  # open id
    status: Literal["pending", "approved", "rejected"] = "pending"
    decided_by: str = ""
    decided_at: datetime | None = None
    comment: str = ""
    message_id: str | None = None


class Decide(BaseModel):
    approve: bool
    actor: str
    event_id: str = ""
    comment: str = ""
    via: str = "card"


class CloseRequest(BaseModel):
    actor: str = ""
    event_id: str = ""
    reason: Literal["filled", "closed"] = "closed"
    via: str = "card"


class Hired(BaseModel):
    application_id: str
    event_id: str = ""


class PoolMatch(BaseModel):
    candidate_id: str
    name: str = ""
    site: str = ""
    department: str = ""
    title: str = ""
    last_stage: str = ""
    score: int = 0
    reasons: list[str] = Field(default_factory=list)


class PoolQuery(BaseModel):
    org: str
    site: str
    department: str = ""
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    as_of: date


class RequisitionState(BaseModel):
    req_id: str
    status: str
    facts: RequisitionFacts | None = None
    chain: list[ApprovalStep] = Field(default_factory=list)
    chain_reason: str = ""
    hired: list[str] = Field(default_factory=list)
    matches: list[PoolMatch] = Field(default_factory=list)
    history: list[Transition] = Field(default_factory=list)
    approval_instance: str = ""  # the Feishu approval instance, when the approval goes through Feishu
    approval_outcome: str = ""  # how it ended: approved, rejected, withdrawn, deleted


# ---------------------------------------------------------------------------------------- applications


class ApplicationInput(BaseModel):
    """Start of an application. ``application_id`` is the business key (the Bitable record id for rows
    entered in Bitable, ``hire_<id>`` for Feishu Hire, ``pool_<candidate>_<req>`` for a pool invitation)."""

    application_id: str
    record_id: str | None = None
    via: str = "bitable"
    candidate_id: str | None = None
    req_id: str = ""
    site: str = ""
    name: str = ""
    stage: str = ""
    actor: str = ""


class LoadApplication(BaseModel):
    org: str
    application_id: str
    record_id: str | None = None
    candidate_id: str | None = None
    req_id: str = ""


class Linked(BaseModel):
    application_id: str
    site: str = ""
    site_name: str = ""  # the hospital as people call it (empty in runs recorded before it was kept)
    req_id: str = ""
    stage: str = ""


class ApplicationFacts(BaseModel):
    """An application row as the workflow may keep it: the contact is only its keyed hash."""

    application_id: str
    record_id: str | None = None
    name: str = ""
    req_id: str = ""
    site: str = ""
    department: str = ""
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    stage: str = ""
    consent: bool = False
    start_date: date | None = None
    contact_hash: str = ""
    candidate_id: str = ""
    linked: list[Linked] = Field(default_factory=list)  # the same person's other applications
    in_pool: bool = False


class MoveRequest(BaseModel):
    to: str
    actor: str = ""
    via: str = "card"
    event_id: str = ""
    reason: str = ""
    start_date: date | None = None


class RecordChanged(BaseModel):
    record_id: str
    actor: str = ""
    event_id: str = ""


class ReadStage(BaseModel):
    org: str
    record_id: str
    site: str = ""  # the application's hospital: its start date is read in the hospital's zone


class StageRead(BaseModel):
    stage: str = ""
    start_date: date | None = None


class ApplicationState(BaseModel):
    application_id: str
    candidate_id: str = ""
    name: str = ""
    site: str = ""
    req_id: str = ""
    stage: str
    stage_at: datetime
    sla_due: datetime | None = None
    linked: list[Linked] = Field(default_factory=list)
    from_pool: bool = False
    notices: list[str] = Field(default_factory=list)
    history: list[Transition] = Field(default_factory=list)
    done: bool = False


# ------------------------------------------------------------------------------------------ onboarding


class ChecklistEntry(BaseModel):
    id: str
    label: str
    owner: str  # role
    due: date
    done_at: datetime | None = None
    done_by: str = ""


class OnboardingInput(BaseModel):
    application_id: str
    site: str = ""
    name: str = ""
    department: str = ""
    title: str = ""
    contact_hash: str = ""
    candidate_id: str = ""
    start_date: date


class CompleteItem(BaseModel):
    item: str
    actor: str = ""
    event_id: str = ""
    via: str = "card"


class AccountMatched(BaseModel):
    open_id: str
    name: str = ""
    event_id: str = ""


class LeaveRequest(BaseModel):
    last_day: date | None = None
    actor: str = ""
    event_id: str = ""
    via: str = "card"


class OnboardingState(BaseModel):
    application_id: str
    name: str = ""
    site: str = ""
    status: Literal["onboarding", "employed", "offboarding", "left"] = "onboarding"
    start_date: date
    probation_end: date | None = None
    contract_end: date | None = None
    open_id: str = ""
    last_day: date | None = None
    checklist: list[ChecklistEntry] = Field(default_factory=list)
    offboarding: list[ChecklistEntry] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    history: list[Transition] = Field(default_factory=list)


class MatchAccountInput(BaseModel):
    open_id: str
    name: str = ""
    hashes: list[str]
    event_id: str = ""


class LeaverInput(BaseModel):
    """An account removed from the directory (``contact.user.deleted_v3``), to record as a leaver."""

    org: str = ""
    open_id: str
    name: str = ""
    department_ids: list[str] = Field(default_factory=list)
    left_at: datetime | None = None  # None: the business time the workflow records it at


class FindOnboarding(BaseModel):
    org: str
    hashes: list[str]


# -------------------------------------------------------------------------------------------- report


class ReportInput(BaseModel):
    org: str
    month: str | None = None  # "2026-11"; default: the previous month, on its first working day only
    force: bool = False


class ReportRequest(BaseModel):
    org: str
    month: str
    as_of: datetime


class SnapshotRequest(BaseModel):
    """Record the contact directory as ``month``'s staff snapshot (``client_token``: the upsert's)."""

    org: str
    month: str
    client_token: str


# -------------------------------------------------------------------------------------------- status


class StatusInput(BaseModel):
    """"@bot <key> 状态": one run per message (keyed on its message id), answered in ``locale``."""

    org: str
    key: str
    message_id: str
    locale: str | None = None  # the question's language; None: the site's (or the group's) locale


class StatusLookup(BaseModel):
    org: str
    key: str


class StatusAnswer(BaseModel):
    """The state under a key, as a group chat may see it: no contact, no internal reason."""

    kind: Literal["requisition", "application", ""] = ""  # "": nothing runs or ran under the key
    key: str
    site: str = ""
    status: str = ""  # a requisition's status or an application's stage
    title: str = ""
    department: str = ""
    headcount: int = 0
    hired: int = 0
    waiting_for: str = ""  # the role whose approval a requisition waits for
    name: str = ""
    req_id: str = ""
    since: datetime | None = None
    sla_due: datetime | None = None
    onboarding: str = ""
    from_table: bool = False  # read from a row no workflow follows (nothing approves or reminds for it)
