"""Settings of project_delivery (``[organizations.<id>.settings.project_delivery]``).

Every default is the one documented in README.md. A project's site is its region (README.md "Sites"):
a site may override the keys in ``SITE_OVERRIDABLE`` (when and how its people are reminded and escalated
to, its digest's time, its warranty), never the naming, stages or tables, which the organization's
registry and portfolio share.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.sdk import EscalationStep, PluginSettings, validate_cron

Role = Literal["project_manager", "sales", "service_engineer", "regional_manager"]
ROLES: tuple[str, ...] = ("project_manager", "sales", "service_engineer", "regional_manager")

# Placeholders a naming rule may use; customer and product must always be present.
NAME_PLACEHOLDERS = {"region", "customer", "product", "yyyymm", "yyyy", "mm", "yyyymmdd", "project_id"}
REQUIRED_PLACEHOLDERS = ("customer", "product")
FEISHU_CHAT_NAME_MAX = 60

SITE_OVERRIDABLE = ("reminder_lead_days", "slip_ladder", "working_days_only", "send_at", "digest_cron",
                    "warranty_months", "warranty_reminder_days", "close_at_warranty_end")


class NamingRule(PluginSettings):
    """How a project group is named: a ``str.format`` template over the request's parts and the month."""

    template: str = "【交付】{region}-{customer}-{product}-{yyyymm}"
    # Removed from every part before formatting (Feishu accepts them, but they break search and exports).
    forbidden_chars: str = "/\\:*?\"<>|#@'`"
    max_length: int = Field(default=FEISHU_CHAT_NAME_MAX, ge=10, le=FEISHU_CHAT_NAME_MAX)
    closed_marker: str = "【已结项】"
    cancelled_marker: str = "【已取消】"

    @field_validator("template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        unknown = names - NAME_PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholders {sorted(unknown)}; use {sorted(NAME_PLACEHOLDERS)}")
        missing = [p for p in REQUIRED_PLACEHOLDERS if p not in names]
        if missing:
            raise ValueError(f"the naming rule must contain {', '.join('{' + p + '}' for p in missing)}")
        return value

    @property
    def placeholders(self) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(self.template) if name}


class StageSpec(PluginSettings):
    """One stage: ``offset_days`` after contract signing it is planned to be reached; ``role`` drives it."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_zh: str
    name_en: str
    offset_days: int = Field(ge=0)
    role: Role = "project_manager"
    note_zh: str = ""
    note_en: str = ""


def _default_stages() -> list[StageSpec]:
    rows = [
        ("contract_signed", "合同签订", "Contract signed", 0, "sales", "", ""),
        ("site_survey", "现场勘察", "Site survey", 14, "service_engineer", "", ""),
        ("site_readiness", "场地准备", "Site readiness", 45, "project_manager",
         "供电、屏蔽、图纸审批", "power, shielding, drawings approved"),
        ("shipped", "设备发货", "Shipped", 60, "project_manager", "", ""),
        ("installed", "安装完成", "Installed", 75, "service_engineer", "", ""),
        ("acceptance_testing", "验收测试", "Acceptance testing", 85, "service_engineer", "", ""),
        ("training", "操作培训", "Training", 95, "service_engineer", "", ""),
        ("warranty", "保修期", "Warranty", 100, "service_engineer", "", ""),
        ("closed", "项目结项", "Closed", 100, "project_manager", "", ""),
    ]
    return [StageSpec(key=k, name_zh=zh, name_en=en, offset_days=o, role=r, note_zh=nz, note_en=ne)  # type: ignore[arg-type]
            for k, zh, en, o, r, nz, ne in rows]


class StaffingTable(PluginSettings):
    """The Bitable staffing table: one row per region, one column per role (open ids or person cells)."""

    app_token: str = "bascnDelivery"
    table_id: str = "tblStaffing"
    region_field: str = "区域"
    role_fields: dict[Role, str] = Field(default_factory=lambda: {
        "project_manager": "项目经理", "sales": "销售", "service_engineer": "服务工程师",
        "regional_manager": "区域经理"})
    # Roles invited into the project group (the regional manager follows through digests and escalations).
    invite_roles: list[Role] = Field(default_factory=lambda: ["project_manager", "sales", "service_engineer"])


class ProjectFields(PluginSettings):
    """Column names of the projects table."""

    project_id: str = "项目编号"
    name: str = "群名称"
    customer: str = "客户"
    product: str = "产品"
    region: str = "区域"
    stage: str = "阶段"
    status: str = "状态"
    chat_id: str = "群ID"
    project_manager: str = "项目经理"
    next_milestone: str = "下一里程碑"
    next_due: str = "计划日期"
    slipped_days: str = "延期天数"
    warranty_end: str = "保修截止"
    stage_log: str = "阶段记录"
    created: str = "创建时间"
    closed: str = "结项时间"


class ProjectsTable(PluginSettings):
    app_token: str = "bascnDelivery"
    table_id: str = "tblProjects"
    fields: ProjectFields = Field(default_factory=ProjectFields)
    status_open: str = "进行中"
    status_closed: str = "已结项"
    status_cancelled: str = "已取消"


def _default_slip_ladder() -> list[EscalationStep]:
    # First the project manager (the day after the slip, twice), then the regional manager.
    return [EscalationStep(to="project_manager", every_days=1, times=2),
            EscalationStep(to="regional_manager", every_days=2, start_after_days=2, times=3)]


class ProjectDeliverySettings(PluginSettings):
    """Everything a delivery organization tunes: naming, stages, staffing, reminders, digests, closing."""

    trigger_words: list[str] = Field(default_factory=lambda: ["建群", "create project"])
    naming: NamingRule = Field(default_factory=NamingRule)
    default_region: str = ""
    stages: list[StageSpec] = Field(default_factory=_default_stages)
    acceptance_stage: str = "acceptance_testing"
    warranty_stage: str = "warranty"
    staffing: StaffingTable = Field(default_factory=StaffingTable)
    projects: ProjectsTable = Field(default_factory=ProjectsTable)
    reminder_lead_days: list[int] = Field(default_factory=lambda: [3, 1])
    slip_ladder: list[EscalationStep] = Field(default_factory=_default_slip_ladder)
    working_days_only: bool = True
    send_at: dt.time = dt.time(9, 0)
    digest_cron: str = "0 9 * * 1"
    portfolio_cron: str = "30 9 * * 1"
    warranty_months: int = Field(default=12, ge=1, le=120)
    warranty_reminder_days: list[int] = Field(default_factory=lambda: [60, 30, 7])
    close_at_warranty_end: bool = True
    close_action: Literal["rename", "dissolve"] = "rename"
    # the monthly outcome card: recipients (open ids) per region ("" for every region), sent at report_hour
    # on the month's first working day
    report_recipients: dict[str, list[str]] = Field(default_factory=dict)
    report_hour: int = Field(9, ge=0, le=23)

    @field_validator("digest_cron", "portfolio_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("reminder_lead_days", "warranty_reminder_days")
    @classmethod
    def _leads(cls, value: list[int]) -> list[int]:
        if any(d < 1 for d in value) or len(set(value)) != len(value):
            raise ValueError("lead days are distinct whole days, at least 1")
        return sorted(value, reverse=True)

    @field_validator("trigger_words")
    @classmethod
    def _triggers(cls, value: list[str]) -> list[str]:
        words = [w.strip() for w in value if w.strip()]
        if not words:
            raise ValueError("at least one trigger word")
        return words

    @model_validator(mode="after")
    def _stages_consistent(self) -> ProjectDeliverySettings:
        keys = [s.key for s in self.stages]
        if len(self.stages) < 2:
            raise ValueError("at least two stages (a first and a closing one)")
        if len(set(keys)) != len(keys):
            raise ValueError(f"stage keys must be unique, got {keys}")
        offsets = [s.offset_days for s in self.stages]
        if offsets != sorted(offsets):
            raise ValueError("stage offsets must not decrease along the stages")
        for name in ("acceptance_stage", "warranty_stage"):
            value = getattr(self, name)
            if value and value not in keys:
                raise ValueError(f"{name} {value!r} is not one of the stages {keys}")
        if self.warranty_stage and self.warranty_stage == keys[-1]:
            raise ValueError("the warranty stage cannot be the closing (last) stage")
        return self

    def stage(self, key: str) -> StageSpec | None:
        return next((s for s in self.stages if s.key == key), None)

    def stage_index(self, key: str) -> int:
        return next((i for i, s in enumerate(self.stages) if s.key == key), -1)

    @property
    def closing_stage(self) -> str:
        return self.stages[-1].key
