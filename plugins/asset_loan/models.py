"""Typed facts of the asset_loan scenario: assets, loans, requests to the Loan workflow, its state."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.sdk import SiteContext

Status = Literal["available", "requested", "on_loan", "lost", "damaged"]
Via = Literal["scan", "card", "keeper", "system"]


class AssetInfo(BaseModel):
    """One asset as the asset table describes it."""

    asset_id: str
    name: str = ""
    category: str = ""
    location: str = ""
    keeper_open_id: str = ""
    keeper_name: str = ""
    site: str = ""  # the hospital (a site id or name of the config) the asset belongs to; "": the group's
    record_id: str | None = None  # the Bitable record (None: not in the table)


class AssetRow(AssetInfo):
    """An asset table row with its loan columns, as the views and the weekly summary read them."""

    status: str = ""
    borrower_open_id: str = ""
    borrower_name: str = ""
    borrowed_at: datetime | None = None
    due_back: date | None = None


class LoanContext(BaseModel):
    """What the Loan workflow loads at the start of each run (an activity: settings may change).

    ``settings``, ``timezone`` and ``locale`` are those of the asset's site (the group's for an asset
    without one); ``site`` is the whole site context (working-day calendar included), absent in runs
    recorded before it was added.
    """

    settings: dict[str, Any]
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    asset: AssetInfo | None = None
    calibration_enabled: bool = False
    site: SiteContext | None = None


class UserProfile(BaseModel):
    open_id: str
    name: str = ""
    department_ids: list[str] = Field(default_factory=list)


class GuardResult(BaseModel):
    """Whether another scenario keeps the asset from being borrowed, and why."""

    blocked: bool = False
    source: str = ""
    status: str = ""
    reason: str = ""


class Loan(BaseModel):
    borrower_open_id: str
    borrower_name: str = ""
    requested_at: datetime
    borrowed_at: datetime | None = None
    plan_since: datetime  # reminders due before this moment (loan start or last extension) never fire
    due: date
    extensions: int = 0
    approved_by: str | None = None
    via: Via = "scan"
    # reminders already sent (or skipped) in this loan: Notice.step ids
    notices: list[str] = Field(default_factory=list)
    manual_reminders: int = 0
    overdue_written: bool = False  # the asset row's status already says overdue


class HistoryEntry(BaseModel):
    """One recorded decision or confirmation: who did what, when."""

    at: datetime
    action: str
    actor_open_id: str = ""
    borrower_open_id: str = ""
    detail: str = ""
    scanned_at: datetime | None = None  # the scan page's press that led to it (None: not from the page)


class LoanInput(BaseModel):
    """The Loan workflow's input; carried over continue-as-new after each loan."""

    asset_id: str
    cycle: int = 0
    status: Status = "available"
    asset: AssetInfo | None = None
    seen: list[str] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)  # the last entries only
    condition_note: str = ""


class BorrowRequest(BaseModel):
    borrower_open_id: str
    borrower_name: str = ""
    due: date | None = None  # default: the category's default loan days
    event_id: str | None = None
    via: Via = "scan"
    scanned_at: datetime | None = None  # when the scan page's button was pressed (business clock)


class ActorRequest(BaseModel):
    """A request by one person (return, approve, reject, remind now)."""

    actor_open_id: str
    event_id: str | None = None
    note: str = ""
    via: Via = "scan"
    scanned_at: datetime | None = None  # when the scan page's button was pressed (business clock)


class ExtendRequest(ActorRequest):
    days: int | None = None  # default: the category's extension_days


class MarkRequest(ActorRequest):
    condition: Literal["lost", "damaged"]


class CardRequest(BaseModel):
    """Send the asset's action card to a user (the chat alternative to scanning)."""

    open_id: str
    event_id: str | None = None


class LoanState(BaseModel):
    """The ``state`` query: what the scan page, the CLI and bot replies show."""

    asset_id: str
    loaded: bool
    cycle: int
    status: Status
    overdue: bool = False
    asset: AssetInfo | None = None
    loan: Loan | None = None
    borrowing_in_progress: str | None = None
    default_due: date | None = None
    max_due: date | None = None
    condition_note: str = ""
    history: list[HistoryEntry] = Field(default_factory=list)


class MyLoansInput(BaseModel):
    org: str
    open_id: str
    message_id: str
    locale: str | None = None  # the language asked in (None: the organization's)


class SummaryInput(BaseModel):
    org: str


class AssetRef(BaseModel):
    """Argument of the scenario's activities: one asset (or, with ``asset_id`` empty, the whole table)."""

    org: str
    asset_id: str = ""
    open_id: str = ""


class OutcomeInput(BaseModel):
    org: str


class OutcomeRequest(BaseModel):
    """The history rows recorded before ``until``."""

    org: str
    until: datetime


class HistoryRow(BaseModel):
    """One history-table row as the monthly outcome card reads it."""

    asset_id: str
    action: str
    at: datetime
    borrower_open_id: str = ""
    due: date | None = None
    scanned_at: datetime | None = None


class AssetMeta(BaseModel):
    """What the card needs of an asset: its name (shown) and its site (whose card counts it)."""

    name: str = ""
    site: str = ""


class OutcomeData(BaseModel):
    rows: list[HistoryRow] = Field(default_factory=list)
    assets: dict[str, AssetMeta] = Field(default_factory=dict)
