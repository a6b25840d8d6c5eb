"""The typed facts of a repair ticket: what starts it, what the workflow keeps, what card presses carry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from engine.sdk import SiteContext

Status = Literal["new", "dispatched", "accepted", "on_the_way", "working", "waiting_parts", "done", "confirmed",
                 "closed"]
Source = Literal["message", "table", "alert", "event"]  # event: raised by another scenario


class TicketInput(BaseModel):
    """How a ticket starts: a message ("@bot 报修 ..."), a row added to the ticket table, an alert, or
    another scenario's event (asset_loan's ``asset_loan.asset.damaged``)."""

    ticket_id: str
    source: Source = "message"
    text: str = ""
    reporter_open_id: str = ""
    reporter_locale: str | None = None  # the language the report was written in
    message_id: str = ""
    chat_id: str = ""
    record_id: str = ""  # the ticket row (a row added by hand, or the row written once)
    site: str = ""
    location: str = ""
    asset_id: str = ""
    photos: list[str] = Field(default_factory=list)  # image keys of the report
    category: str = ""  # given (an alert's label); empty: triage decides
    reported_at: datetime | None = None


class IntakeRequest(BaseModel):
    org: str
    ticket: TicketInput


class Intake(BaseModel):
    """The reporter's name and site, the row's facts, and the site's context (settings, zone, calendar)."""

    text: str = ""
    reporter_open_id: str = ""
    reporter_name: str = ""
    site: str = ""
    site_name: str = ""
    location: str = ""
    asset_id: str = ""
    record_id: str = ""
    ignore: bool = False  # a row the engine wrote itself (it carries a ticket number already)
    context: SiteContext | None = None


class Technician(BaseModel):
    open_id: str = ""
    name: str = ""


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    actor_open_id: str = ""
    note: str = ""  # internal reason: audit rows and logs, never cards


class Ticket(BaseModel):
    """What the workflow keeps of a ticket (also the ``state`` query's answer)."""

    ticket_id: str
    source: Source = "message"
    status: Status = "new"
    text: str = ""
    reporter_open_id: str = ""
    reporter_name: str = ""
    reporter_locale: str = "zh_CN"
    site: str = ""
    site_name: str = ""
    location: str = ""
    asset_id: str = ""
    photos: list[str] = Field(default_factory=list)
    category: str = ""
    priority: str = "normal"
    technician: Technician = Field(default_factory=Technician)
    reported_at: datetime | None = None
    notified_at: datetime | None = None
    accepted_at: datetime | None = None
    done_at: datetime | None = None
    confirmed_at: datetime | None = None
    closed_at: datetime | None = None
    accept_due: datetime | None = None
    fix_due: datetime | None = None
    paused_at: datetime | None = None
    escalations: int = 0  # rungs of the accept ladder reached (1: team lead, 2: head of department)
    fix_escalated: bool = False
    accept_late: bool = False
    fix_late: bool = False
    reopened: int = 0
    rating: int | None = None
    comment: str = ""
    alert_count: int = 0
    record_id: str = ""
    history: list[HistoryEntry] = Field(default_factory=list)


class ActRequest(BaseModel):
    """A press on a ticket card: ``op`` by ``actor_open_id`` (``score``/``comment`` for a rating)."""

    op: str
    actor_open_id: str
    event_id: str = ""
    score: int | None = None
    comment: str = ""


class AlertNote(BaseModel):
    """One Alertmanager alert as it reached the ticket (firing again, or resolved)."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    alertname: str = ""
    summary: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    event_id: str = ""


class OnDutyRequest(BaseModel):
    org: str
    site: str = ""
    category: str
    at: datetime


class ReportInput(BaseModel):
    org: str


class ReportRequest(BaseModel):
    org: str
    since: datetime
    until: datetime


class TicketRow(BaseModel):
    """One ticket-table row as the monthly report reads it."""

    ticket_id: str = ""
    site: str = ""
    category: str = ""
    location: str = ""
    asset_id: str = ""
    reported_at: datetime | None = None
    notified_at: datetime | None = None
    accepted_at: datetime | None = None
    done_at: datetime | None = None
    sla_met: bool | None = None
    reopened: int = 0
