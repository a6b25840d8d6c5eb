"""The handover scenario's typed facts: plans, patient entries, card inputs, state and statistics.

Everything here is a pydantic model so it travels through Temporal's pydantic data converter.
Datetimes are aware (UTC inside workflows); shift keys are local wall-clock strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.sdk import BusinessClock, SiteContext
from plugins.handover.config import Category, EscalationStep, Structure, TableRef

SCENARIO = "handover"
SEVERITIES = ("stable", "watcher", "unstable")

# Bitable field names. Handover records (one per shift, no patient data): the statistics source.
H_KEY = "交班编号"
H_DEPARTMENT = "科室"
H_SITE = "院区"
H_SHIFT = "交班时间"
H_GIVER = "交班医生"
H_RECEIVER = "接班医生"
H_STATUS = "状态"
H_SUBMITTED = "提交时间"
H_ON_TIME = "按时提交"
H_COMPLETE = "内容完整"
H_PATIENTS = "患者数"
H_CRITICAL = "危重患者数"
H_ACKED = "接班确认时间"
H_ACK_MINUTES = "确认用时(分钟)"
H_ESCALATIONS = "升级次数"
H_HOLIDAY = "节假日"
H_MONTH = "月份"

# Patient entries (restricted table): one per patient per handover.
P_KEY = "条目编号"
P_HANDOVER = "交班编号"
P_DEPARTMENT = "科室"
P_SHIFT = "交班时间"
P_BED = "床号"
P_NAME = "患者姓名"
P_CATEGORY = "患者性质"
P_SEVERITY = "病情分级"
P_IMAGING = "摄片"
P_GIVER = "交班医生"
P_RECEIVER = "接班医生"
P_CRITICAL = "危重"
P_ACKED = "接班确认时间"
# content fields are stored under their structure field id's label
P_FIELD_LABELS = {
    "summary": "病情摘要", "actions": "待办事项", "contingency": "注意事项与预案",
    "situation": "现状", "background": "背景", "assessment": "评估", "recommendation": "建议",
}

Status = Literal["scheduled", "open", "submitted", "acknowledged", "missing", "unacknowledged"]


class ShiftPlan(BaseModel):
    """Everything one shift's workflow needs, resolved from settings and the rota before it starts.

    ``shift`` is the local wall-clock moment of the shift change (``2026-11-23T20:00``), when ``giver``
    hands over to ``receiver``; ``change_at`` is the same moment, aware.
    """

    org: str
    department: str
    department_name: str = ""
    site: str | None = None
    shift: str
    change_at: datetime
    form_at: datetime
    close_at: datetime
    timezone: str = "Asia/Shanghai"
    giver: str
    receiver: str
    head: str
    group_chat: str | None = None
    medical_affairs: list[str] = Field(default_factory=list)
    structure: Structure = "ipass"
    fields: list[str] = Field(default_factory=list)
    required_fields: list[str] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    ack_minutes: int = 60
    critical_ack_minutes: int = 15
    ack_escalation: list[EscalationStep] = Field(default_factory=list)
    critical_escalation: list[EscalationStep] = Field(default_factory=list)
    missing_reminders: list[int] = Field(default_factory=list)
    missing_escalation: list[EscalationStep] = Field(default_factory=list)
    handovers_table: TableRef | None = None
    patients_table: TableRef | None = None
    holiday: bool = False
    rota_source: str = ""
    locale: str | None = None  # the site's (None: the locale the shift was started with)
    clock: BusinessClock = Field(default_factory=BusinessClock)  # the organization's business clock

    @property
    def key(self) -> str:
        """The workflow key: ``{department}:{shift}``."""
        return f"{self.department}:{self.shift}"


class PatientEntry(BaseModel):
    """One patient in a handover; filled in over one or more form submissions."""

    bed: str
    name: str = ""
    category: str = ""
    severity: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    imaging: list[str] = Field(default_factory=list)
    critical: bool = False
    updated_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None


class CardInput(BaseModel):
    """A card button press or form submission, as the router hands it to an update."""

    event_id: str
    operator: str
    value: dict[str, Any] = Field(default_factory=dict)
    form: dict[str, Any] = Field(default_factory=dict)
    message_id: str = ""


class Question(BaseModel):
    id: str
    text: str
    asked_at: datetime
    answer: str | None = None
    answered_at: datetime | None = None


class LogItem(BaseModel):
    """Who did what, when: every press, decision and notice of the workflow (no patient content)."""

    at: datetime
    what: str
    by: str | None = None
    detail: str = ""


class ShiftState(BaseModel):
    """The ``state`` query: statuses and counts, never patient content (``entries`` has that)."""

    department: str
    shift: str
    status: Status
    giver: str
    receiver: str
    head: str
    holiday: bool
    rota_source: str
    change_at: datetime
    patients: int
    critical: int
    critical_acknowledged: int
    complete: bool
    on_time: bool | None
    submitted_at: datetime | None
    acknowledged_at: datetime | None
    synthesis_given: bool
    questions: int
    open_questions: int
    escalations: list[str]
    log: list[LogItem]


class RotaRequest(BaseModel):
    """The rota driver's input: one department's shift change (from a schedule)."""

    org: str
    department: str
    change: str  # "20:00"
    site: str | None = None


class PlanRequest(BaseModel):
    """Plan ``department``'s shift change at ``change`` on or after ``as_of`` (business time).

    ``context`` is the site context the rota driver loaded (effective settings, zone, locale, calendar,
    clock); without it (a run recorded before it loaded one) the activity resolves the department's own.
    """

    org: str
    department: str
    change: str
    as_of: datetime
    context: SiteContext | None = None


class PlanResult(BaseModel):
    plan: ShiftPlan | None = None
    reason: str = ""


class StartShift(BaseModel):
    plan: ShiftPlan
    locale: str = "zh_CN"


class ShiftStarted(BaseModel):
    workflow_id: str
    run_id: str = ""
    started: bool = True  # False: it had already run to its end


class StatsRequest(BaseModel):
    org: str
    month: str | None = None  # "2026-11"; default: the month before ``as_of``
    as_of: datetime


class StatsRow(BaseModel):
    """Monthly numbers of one department, one site (``department == "*"``) or the organization."""

    month: str
    site: str
    department: str
    # what the card shows: the site's and department's names, and which kind of row it is (the card must not
    # compare ids such as "*", which reach a card template markdown-escaped)
    site_name: str = ""
    department_name: str = ""
    whole: bool = False  # the organization's row
    site_total: bool = False  # a site's row (every department)
    shifts: int = 0
    written: int = 0
    on_time: int = 0
    complete: int = 0
    acknowledged: int = 0
    median_ack_minutes: float | None = None
    escalations: int = 0
    missing: int = 0


class StatsReport(BaseModel):
    org: str
    month: str
    rows: list[StatsRow] = Field(default_factory=list)


class OutcomeInput(BaseModel):
    """The monthly outcome card's run (the schedule's argument)."""

    org: str


class OutcomeRequest(BaseModel):
    org: str
    month: str  # "2026-10": the month whose handovers are counted (by their shift key)


class OutcomeRow(BaseModel):
    """One department's month: handovers due, written, on time, minutes to acknowledge, unacknowledged."""

    department: str  # id
    name: str  # the department's name as configured (the id when it has none)
    handovers: int = 0
    written: int = 0
    on_time: int = 0
    ack_p50: float | None = None  # minutes from the start of the acknowledgement clock
    ack_p90: float | None = None
    acknowledged: int = 0
    unacknowledged: int = 0
    missing: int = 0
