"""Settings of the repair scenario: triage rules, teams and their rota, SLAs, the ticket table, the report.

Every key has a default, so an organization can enable the plugin with an empty table and adjust only
what differs; a site overrides what ``SITE_OVERRIDABLE`` allows (its own keywords, teams, SLAs).
Unknown keys are errors (:class:`engine.sdk.PluginSettings`).
"""

from __future__ import annotations

import re
from datetime import time

from pydantic import Field, field_validator, model_validator

from engine.sdk import PluginSettings, SecretSpec

# The organization's secret behind the Alertmanager webhook's bearer token (``engine repair alert-token``).
ALERT_SECRET = SecretSpec(
    name="alerts", env="REPAIR_ALERT_SECRET", env_setting="alert_secret_env",
    description="repair: the bearer token Prometheus Alertmanager presents to /repair/alertmanager/<org>")

# The organization's secret behind the QR labels' report links and the report page's login (``engine repair
# labels``); its own, so rotating the alert token never voids printed labels.
SIGNING_SECRET = SecretSpec(
    name="signing", env="REPAIR_SIGNING_KEY", env_setting="signing_key_env",
    description="repair: the QR labels' report links, sessions and CSRF tokens of the report page")

CATEGORIES = ("facilities", "it", "medical")
"""总务 (water, power, HVAC, doors, furniture), IT (PCs, printers, network, HIS accounts), 设备科 (medical devices)."""

PRIORITIES = ("urgent", "normal")


def _default_keywords() -> dict[str, list[str]]:
    return {
        "it": ["电脑", "打印机", "网络", "断网", "网线", "WiFi", "HIS", "账号", "密码", "系统", "显示器", "扫码枪",
               "computer", "printer", "network", "account", "password"],
        "medical": ["监护仪", "呼吸机", "输液泵", "注射泵", "除颤仪", "CT", "DR", "超声", "麻醉机", "设备",
                    "monitor", "ventilator", "infusion pump", "defibrillator", "ultrasound"],
        "facilities": ["水", "漏水", "电", "灯", "空调", "门", "锁", "桌", "椅", "床", "马桶", "暖气",
                       "water", "leak", "power", "light", "air conditioning", "door", "lock", "chair"],
    }


class RotaEntry(PluginSettings):
    """One technician's duty: on ``weekdays`` (1 = Monday ... 7 = Sunday; empty: every day), local
    ``start`` to ``end`` (an ``end`` before ``start`` runs past midnight; equal: around the clock)."""

    open_id: str
    name: str = ""
    weekdays: list[int] = Field(default_factory=list)
    start: time = time(0, 0)
    end: time = time(0, 0)

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(not 1 <= day <= 7 for day in value):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return value


class Team(PluginSettings):
    """The team of one category at a site: its rota, its lead and its head of department."""

    rota: list[RotaEntry] = Field(default_factory=list)
    lead_open_id: str = ""  # first rung of the escalation ladder (班组长)
    head_open_id: str = ""  # second rung (科室主任: 总务科, 信息科, 设备科)


def _default_teams() -> dict[str, Team]:
    return {category: Team() for category in CATEGORIES}


class SlaSettings(PluginSettings):
    """Minutes to accept and to fix, per priority. Urgent tickets count around the clock, normal ones on
    the site's working hours of its working days; waiting for parts pauses the fix clock."""

    accept_minutes_urgent: int = Field(10, ge=1)
    accept_minutes_normal: int = Field(30, ge=1)
    fix_minutes_urgent: int = Field(240, ge=1)
    fix_minutes_normal: int = Field(1440, ge=1)
    # the head of department hears this long after the team lead did (0: one more accept period)
    head_after_minutes: int = Field(0, ge=0)
    working_start: time = time(8, 0)
    working_end: time = time(17, 30)

    @model_validator(mode="after")
    def _hours(self) -> SlaSettings:
        if self.working_end <= self.working_start:
            raise ValueError("working_end must be after working_start (e.g. 08:00 to 17:30)")
        return self

    def accept_minutes(self, priority: str) -> int:
        return self.accept_minutes_urgent if priority == "urgent" else self.accept_minutes_normal

    def fix_minutes(self, priority: str) -> int:
        return self.fix_minutes_urgent if priority == "urgent" else self.fix_minutes_normal


class TicketFields(PluginSettings):
    """Field names of the ticket table (one record per ticket; a row added by hand opens a ticket)."""

    ticket: str = "工单号"
    description: str = "报修内容"
    reporter: str = "报修人"
    site: str = "院区"
    location: str = "位置"
    asset: str = "设备编号"
    category: str = "类别"
    priority: str = "优先级"
    status: str = "状态"
    technician: str = "维修人"
    source: str = "来源"
    reported_at: str = "报修时间"
    notified_at: str = "通知时间"
    accepted_at: str = "接单时间"
    done_at: str = "完成时间"
    closed_at: str = "关闭时间"
    sla_met: str = "SLA达标"
    rating: str = "评分"
    comment: str = "评价"
    reopened: str = "返修次数"


class HistoryFields(PluginSettings):
    """Field names of the history table (one record per step of a ticket)."""

    ticket: str = "工单号"
    action: str = "动作"
    actor: str = "操作人"
    at: str = "时间"
    note: str = "说明"


class RotaFields(PluginSettings):
    """Field names of the optional rota table (one record per duty; it replaces the config's rota)."""

    site: str = "院区"  # a site id or name; empty: every site
    category: str = "类别"  # facilities / it / medical, or 总务 / 信息 / 设备
    technician: str = "维修人"  # a person cell
    weekdays: str = "星期"  # a multi select or text of 1-7 ("1,2,3,4,5"); empty: every day
    start: str = "开始"  # "08:00"; start = end: around the clock
    end: str = "结束"


class RepairSettings(PluginSettings):
    """Everything an organization (or a site) configures for repair tickets."""

    app_token: str = "bascnRepair"
    tickets_table_id: str = "tblTickets"
    history_table_id: str = "tblTicketHistory"
    fields: TicketFields = Field(default_factory=TicketFields)
    history_fields: HistoryFields = Field(default_factory=HistoryFields)
    # what starts a report in a message: "@bot 报修 <text>" in a group, or a direct message starting so
    report_words: list[str] = Field(default_factory=lambda: ["报修", "repair", "report"])
    # an asset id in a report's text ("报修 CT-0012 停机") links the ticket to that asset (the other
    # scenarios hear of it: device_calibration pauses the device's cycle); "" reads none from the text
    asset_id_pattern: str = r"(?<![A-Za-z0-9])[A-Za-z]{1,6}-\d{2,6}(?![0-9])"
    keywords: dict[str, list[str]] = Field(default_factory=_default_keywords)
    default_category: str = "facilities"
    # any of these in the text or the location makes a ticket urgent (matched case-insensitively)
    urgent_keywords: list[str] = Field(default_factory=lambda: ["停机", "冒烟", "起火", "断电", "停电", "跑水",
                                                                "down", "smoke", "outage"])
    urgent_locations: list[str] = Field(default_factory=lambda: ["ICU", "重症", "手术室", "operating room",
                                                                 "急诊", "emergency", "产房", "NICU"])
    teams: dict[str, Team] = Field(default_factory=_default_teams)
    # a rota table in the same base instead of the teams' rota lists (leads and heads stay in ``teams``)
    rota_table_id: str = ""
    rota_fields: RotaFields = Field(default_factory=RotaFields)
    # the reporter's Feishu department (open department id) → the site whose rules and team apply
    department_sites: dict[str, str] = Field(default_factory=dict)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    auto_close_hours: int = Field(72, ge=1)  # a done ticket the reporter neither confirms nor reopens closes
    rating_hours: int = Field(24, ge=1)  # after confirming, the rating stays open this long
    # the report card: recipients (open ids) per site id ("" for the group) and when it goes out
    report_recipients: dict[str, list[str]] = Field(default_factory=dict)
    report_hour: int = Field(9, ge=0, le=23)
    # the case's "before": a patrol twice a day finds a fault 6 h after it happens on average (an
    # assumption, stated on the card; set what your hospitals measured)
    patrol_baseline_seconds: int = Field(6 * 3600, ge=1)
    alert_secret_env: str = "REPAIR_ALERT_SECRET"
    signing_key_env: str = "REPAIR_SIGNING_KEY"  # the variable holding the labels' signing secret
    session_hours: int = Field(12, ge=1)  # lifetime of the report page's login cookie
    alert_category: str = "it"  # monitoring alerts without a "category" label

    @field_validator("default_category", "alert_category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"categories are {', '.join(CATEGORIES)}, not {value!r}")
        return value

    @field_validator("asset_id_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value

    @field_validator("keywords", "teams")
    @classmethod
    def _known_keys(cls, value: dict[str, object]) -> dict[str, object]:
        unknown = sorted(set(value) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"categories are {', '.join(CATEGORIES)}, not {', '.join(unknown)}")
        return value

    def team(self, category: str) -> Team:
        return self.teams.get(category) or Team()


SITE_OVERRIDABLE = ("keywords", "urgent_keywords", "urgent_locations", "teams", "sla", "auto_close_hours",
                    "rota_table_id")

TICKET_PATTERN = re.compile(r"BX-[0-9A-Z]{2,8}-[0-9A-Z]{4,16}", re.IGNORECASE)
"""What a ticket number looks like ("BX-261130-7Q2KD"; alerts: "BX-AL-<fingerprint>")."""
