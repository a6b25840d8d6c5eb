"""The typed facts of a round: what starts it, what the workflow keeps per hospital, what answers carry."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from engine.sdk import SiteContext

Kind = Literal["read", "upload"]
AnswerStatus = Literal["waiting", "acknowledged", "uploaded", "missing"]


class RoundInput(BaseModel):
    """A round headquarters sends: a document to read and acknowledge, or material to upload.

    ``sites`` are site ids or names (empty: every hospital with responsible people); ``deadline`` is the
    last day an answer is on time, in each hospital's own zone. ``record_id``: the rounds-table row that
    started it (the workflow re-reads it; the other fields are then ignored).
    """

    round_id: str
    kind: Kind = "read"
    title: str = ""
    body: str = ""
    link: str = ""
    deadline: date | None = None
    sites: list[str] = Field(default_factory=list)
    sender_open_id: str = ""
    record_id: str = ""


class PlanRequest(BaseModel):
    org: str
    round: RoundInput


class Plan(BaseModel):
    """The round as it goes out: its facts (re-read from the table row when it came from there), the
    group's context and each hospital's; ``problem`` (internal, English) when it cannot go out."""

    round: RoundInput
    group: SiteContext | None = None
    hospitals: list[SiteContext] = Field(default_factory=list)
    problem: str = ""
    problem_kind: Literal["", "no_deadline", "unknown_site", "nobody_responsible"] = ""  # what the sender is told
    row_has_id: bool = True  # the rounds-table row carries the round id already (or there is no row)


class UploadedFile(BaseModel):
    """A file sent to the bot (Feishu ``file_key``), or a link given in the card's form."""

    file_key: str = ""
    name: str = ""
    link: str = ""
    message_id: str = ""


class Hospital(BaseModel):
    """One hospital's part of a round."""

    site: str
    name: str = ""
    locale: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    responsible: list[str] = Field(default_factory=list)
    head: str = ""
    status: AnswerStatus = "waiting"
    answered_by: str = ""
    answered_at: datetime | None = None
    late: bool = False
    files: list[UploadedFile] = Field(default_factory=list)
    fired: list[str] = Field(default_factory=list)  # ladder steps sent
    reminders: int = 0
    escalated: bool = False
    cards: dict[str, str] = Field(default_factory=dict)  # open id → the request card's message id


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    site: str = ""
    actor_open_id: str = ""
    note: str = ""  # internal reason: logs and the status query, never cards


class Round(BaseModel):
    """What the workflow keeps of a round (also the ``state`` query's answer)."""

    round_id: str
    kind: Kind = "read"
    title: str = ""
    body: str = ""
    link: str = ""
    deadline: date | None = None
    sender_open_id: str = ""
    status: Literal["new", "open", "all_in", "closed", "refused"] = "new"
    sent_at: datetime | None = None
    summary_at: datetime | None = None  # when the summary goes (the deadline passed) unless all are in first
    summarized: bool = False
    hospitals: list[Hospital] = Field(default_factory=list)
    status_cards: dict[str, str] = Field(default_factory=dict)  # HQ open id → the status card's message id
    history: list[HistoryEntry] = Field(default_factory=list)

    def hospital(self, site: str) -> Hospital | None:
        return next((h for h in self.hospitals if h.site == site), None)

    @property
    def answered(self) -> int:
        return sum(1 for h in self.hospitals if h.status in ("acknowledged", "uploaded"))


class AnswerRequest(BaseModel):
    """A press on a hospital's card: acknowledge (a document), or submit the form's link (material)."""

    op: Literal["acknowledge", "submit"]
    site: str
    actor_open_id: str
    event_id: str = ""
    link: str = ""


class FileNote(BaseModel):
    """A file message to the bot whose name names the round."""

    sender_open_id: str
    message_id: str
    file_key: str
    file_name: str
    sent_at: datetime | None = None
