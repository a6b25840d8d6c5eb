"""Settings of the device_calibration scenario: the device table, schedule kinds, ladders, labels.

Every key has a documented default (README.md, "Settings"), so an organization can enable the plugin with
an empty table and change only what differs from its procedure. Unknown keys are errors at every depth
(:class:`engine.scenario.PluginSettings`).
"""

from __future__ import annotations

import re
from datetime import time

from pydantic import Field, field_validator, model_validator

from engine.sdk import EscalationStep, LadderSettings, PluginSettings, validate_cron

PRIMARY_KIND = "calibration"


def default_ladder() -> LadderSettings:
    """30/7/1 days before due on working days at 09:00; after due, daily to the manager, weekly to the head."""
    return LadderSettings(
        before_days=[30, 7, 1],
        on_due=True,
        after=[EscalationStep(every_days=1, to="manager"), EscalationStep(every_days=7, to="department_head")],
        working_days_only=True,
        send_at=time(9, 0),
    )


class BitableSettings(PluginSettings):
    """Where the device table (and the optional calibration log table) live."""

    app_token: str = "bascnDeviceLedger"
    table_id: str = "tblDevices"
    # Every decision and confirmation is appended here (one row each); empty switches the log off.
    log_table_id: str = "tblCalibrationLog"
    # Feishu's Bitable events name fields by id, not by name. Give the id of the device-id field
    # ({"device_id": "fldXXXX"}) so an event can be routed to its device at once; without it, events go
    # through a one-record reconciliation that reads the row first.
    field_ids: dict[str, str] = Field(default_factory=dict)


class DeviceFields(PluginSettings):
    """Field names of the device table that every schedule kind shares."""

    device_id: str = "设备编号"
    name: str = "设备名称"
    model: str = "型号"
    department: str = "使用科室"
    site: str = "院区"  # the hospital (site id of the config) the device belongs to; empty: the group's
    location: str = "存放位置"
    custodian: str = "保管人"  # person field ([{"id": "ou_..."}]) or an open_id as text
    manager: str = "设备管理员"  # person field
    department_head: str = "科室负责人"  # person field
    status: str = "状态"  # usage status: 合格 / 准用 / 停用 (written by the engine), 报废 / 维修中 (by people)
    vendor: str = "送检单位"
    sent_on: str = "送检日期"


class LogFields(PluginSettings):
    """Field names of the calibration log table (the audit trail, one row per decision or confirmation)."""

    key: str = "日志编号"
    device_id: str = "设备编号"
    kind: str = "类别"
    cycle: str = "周期"
    action: str = "动作"
    actor: str = "操作人"
    at: str = "时间"
    reason: str = "原因"
    detail: str = "详情"


class ScheduleKind(PluginSettings):
    """One independent due date a device can carry (calibration, electrical safety test, 强检...).

    ``interval_field`` / ``last_field`` / ``due_field`` / ``certificate_field`` name the device table's
    columns for this kind. With ``always=False`` the kind applies only to devices whose row has an
    interval, a last date or a due date for it.
    """

    enabled: bool = True
    always: bool = False
    interval_months: int = Field(12, ge=1)  # when the row gives none
    interval_field: str = ""
    last_field: str
    due_field: str = ""
    certificate_field: str = ""
    state_field: str = ""  # what this kind's cycle is doing: 正常 / 超期 / 送检中 ... (written by the engine)
    ladder: LadderSettings | None = None  # None: the scenario's `reminders`
    grace_days: int | None = Field(None, ge=0)  # None: the scenario's `grace_days`


def default_schedules() -> dict[str, ScheduleKind]:
    return {
        PRIMARY_KIND: ScheduleKind(always=True, interval_months=12, interval_field="校准周期(月)",
                                   last_field="上次校准日期", due_field="有效期至", certificate_field="证书编号",
                                   state_field="校准状态"),
        "electrical_safety": ScheduleKind(interval_months=12, interval_field="电气安全检测周期(月)",
                                          last_field="上次电气安全检测", due_field="电气安全检测到期",
                                          certificate_field="电气安全报告编号", state_field="电气安全状态"),
        "mandatory_verification": ScheduleKind(interval_months=12, interval_field="强检周期(月)",
                                               last_field="上次强检日期", due_field="强检到期",
                                               certificate_field="检定证书编号", state_field="强检状态"),
    }


class StatusLabels(PluginSettings):
    """Usage status written into the status field: the familiar 合格 / 准用 / 停用."""

    in_service: str = "合格"
    limited: str = "准用"  # overdue but inside the grace period
    out_of_service: str = "停用"


class CycleStateLabels(PluginSettings):
    """What the cycle is doing, written into the cycle-state field."""

    ok: str = "正常"
    grace: str = "超期(宽限期)"
    overdue: str = "超期"
    sent_out: str = "送检中"
    quarantined: str = "隔离待评估"
    paused: str = "暂停"
    retired: str = "已退役"


class OutcomeSettings(PluginSettings):
    """The assumptions behind the monthly card's "manual steps avoided" estimate (stated on the card).

    The defaults are assumptions, not measurements: with them a ledger of 48 devices on yearly cycles and
    two reminders each comes to 48 × 20 + 96 × 2 = 1,152 minutes a year, the saving one hospital's device
    management reported. Set what your own staff spent before.
    """

    minutes_per_reminder: float = Field(2, ge=0)  # looking up a due date and telling its custodian by hand
    minutes_per_device_cycle: float = Field(20, ge=0)  # keeping one device's ledger line for one cycle by hand


class DeviceCalibrationSettings(PluginSettings):
    """The whole settings model (``[organizations.X.settings.device_calibration]``)."""

    bitable: BitableSettings = Field(default_factory=BitableSettings)
    fields: DeviceFields = Field(default_factory=DeviceFields)
    log_fields: LogFields = Field(default_factory=LogFields)
    schedules: dict[str, ScheduleKind] = Field(default_factory=default_schedules)
    reminders: LadderSettings = Field(default_factory=default_ladder)
    grace_days: int = Field(0, ge=0)
    sent_out_reminder_days: int = Field(14, ge=1)  # remind when the device is away longer than this
    sent_out_repeat_days: int = Field(7, ge=1)
    assessment_reminder_days: int = Field(3, ge=1)  # how often the manager hears of an open assessment
    status_labels: StatusLabels = Field(default_factory=StatusLabels)
    cycle_state_labels: CycleStateLabels = Field(default_factory=CycleStateLabels)
    # Status values people type into the table that end or pause a device's cycles.
    retired_values: list[str] = Field(default_factory=lambda: ["报废", "退役", "retired"])
    paused_values: list[str] = Field(default_factory=lambda: ["维修中", "暂停", "paused"])
    # Who hears when a device has no manager in its row (open_ids); also gets reconciliation reports.
    default_managers: list[str] = Field(default_factory=list)
    report_reconciliation: bool = True
    # "CT-0012 状态": how a device id looks in a message that mentions the bot.
    device_id_pattern: str = r"[A-Za-z]{1,6}-?\d{2,6}"
    reconcile_cron: str = "30 6 * * *"
    digest_cron: str = "0 9 * * mon"
    digest_window_days: int = Field(30, ge=1)
    history_limit: int = Field(200, ge=10)  # history entries a cycle carries over continue-as-new
    # the monthly outcome card: recipients (open ids) per site id ("" for the whole group), the hour it
    # goes out on the month's first working day, and the assumptions of its one estimate
    report_recipients: dict[str, list[str]] = Field(default_factory=dict)
    report_hour: int = Field(9, ge=0, le=23)
    outcome: OutcomeSettings = Field(default_factory=OutcomeSettings)

    @field_validator("reminders", mode="before")
    @classmethod
    def _over_the_default_ladder(cls, value: object) -> object:
        # `reminders = { before_days = [14, 3] }` changes the lead times and keeps the default escalations
        if isinstance(value, dict):
            return {**default_ladder().model_dump(), **value}
        return value

    @field_validator("device_id_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value

    @field_validator("reconcile_cron", "digest_cron")
    @classmethod
    def _crons(cls, value: str) -> str:
        # a typo must fail `engine config check`, not the worker when it registers the schedules
        return validate_cron(value)

    @field_validator("schedules")
    @classmethod
    def _kind_names(cls, value: dict[str, ScheduleKind]) -> dict[str, ScheduleKind]:
        for name in value:
            # the kind is part of the workflow key ({device_id}:{kind}) and of step ids
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"schedule kind {name!r}: use lower-case letters, digits and '_'")
        return value

    @model_validator(mode="after")
    def _primary_kind(self) -> DeviceCalibrationSettings:
        if PRIMARY_KIND not in self.schedules:
            raise ValueError(f"schedules must keep the {PRIMARY_KIND!r} kind (it owns the key {{device_id}})")
        return self

    def kind(self, name: str) -> ScheduleKind:
        return self.schedules[name]

    def ladder_for(self, kind: str) -> LadderSettings:
        return self.schedules[kind].ladder or self.reminders

    def grace_for(self, kind: str) -> int:
        grace = self.schedules[kind].grace_days
        return self.grace_days if grace is None else grace


# Keys a site (one hospital of the group) may override by default.
SITE_OVERRIDABLE = ("reminders", "grace_days", "sent_out_reminder_days", "sent_out_repeat_days",
                    "assessment_reminder_days", "default_managers", "digest_window_days")
