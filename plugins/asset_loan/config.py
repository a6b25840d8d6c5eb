"""Settings of the asset_loan scenario: the Bitable schema, category rules, reminder cadence, signing.

Every key has a documented default, so an organization can enable the plugin with an empty table and
adjust only what differs. Unknown keys are errors (:class:`engine.scenario.PluginSettings`).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from engine.sdk import PluginSettings, SecretSpec, validate_cron

# The organization's secret for scan links, sessions, login state and CSRF tokens (engine.secrets).
SIGNING_SECRET = SecretSpec(
    name="signing", env="ASSET_LOAN_SIGNING_KEY", env_setting="signing_key_env",
    description="asset_loan: scan links, sessions and CSRF tokens of the scan page",
    # the development key earlier versions fell back to: it is public, so links signed with it are forgeable
    public_values=("asset-loan-dev-signing-key-not-for-production",))

RECIPIENTS = ("borrower", "keeper", "manager")
LOCALES = ("zh_CN", "en_US")


class AssetFields(PluginSettings):
    """Field names of the asset table (one record per asset)."""

    asset_id: str = "资产编号"
    name: str = "名称"
    category: str = "类别"
    location: str = "位置"
    site: str = "院区"  # the hospital (site id or name of the config) whose overrides apply; empty: the group's
    keeper: str = "保管人"  # a person field ([{"id": "ou_..."}]) or an open_id as text
    status: str = "状态"
    borrower: str = "借用人"  # person field, written by the engine
    borrowed_at: str = "借出时间"  # date field (ms), written by the engine
    due_back: str = "应还日期"  # a date column, or a lookup/formula giving a date
    returned_at: str = "归还时间"


class HistoryFields(PluginSettings):
    """Field names of the history table (one record per borrow, return, extension, mark, reminder)."""

    asset_id: str = "资产编号"
    action: str = "动作"
    actor: str = "操作人"
    borrower: str = "借用人"
    at: str = "时间"
    due_back: str = "应还日期"
    note: str = "说明"
    # When the person pressed the scan page's button (a date column), on the rows of actions taken there: the
    # monthly card's "scan to record" time. "" (the default) leaves it out, since Feishu refuses a row naming a
    # column the table lacks: add the column, then set its name here.
    scanned_at: str = ""


class StatusLabels(PluginSettings):
    """How each status is written into the asset table's status field."""

    available: str = "在库"
    requested: str = "待审批"
    on_loan: str = "借出"
    overdue: str = "逾期"
    lost: str = "遗失"
    damaged: str = "损坏"


class CategoryRule(PluginSettings):
    """Loan rules of one category of assets."""

    default_loan_days: int = Field(7, ge=1)
    max_loan_days: int = Field(14, ge=1)  # the due date may be at most this many days after borrowing
    max_extensions: int = Field(2, ge=0)
    extension_days: int = Field(7, ge=1)  # what one press of "extend" adds (capped by max_loan_days)
    needs_keeper_approval: bool = False
    # Who may borrow: empty lists mean everyone. Departments are Feishu department ids (or names in the
    # stand-in); users are open_ids (a "role" is a named list of open_ids in ``roles``).
    allowed_departments: list[str] = Field(default_factory=list)
    allowed_users: list[str] = Field(default_factory=list)
    allowed_roles: list[str] = Field(default_factory=list)
    manager_open_id: str | None = None  # overrides the scenario's manager for this category
    # what people see for the category, per locale ({"zh_CN": "仪器", "en_US": "instruments"}); without
    # one, the category as the asset table writes it
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _locales(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LOCALES))
        if unknown:
            raise ValueError(f"labels are per locale ({', '.join(LOCALES)}), got {', '.join(unknown)}")
        return value


class EscalationStep(PluginSettings):
    """One rung of the overdue ladder: ``after_days`` past the due date, notify ``to``."""

    after_days: int = Field(ge=1)
    to: list[str] = Field(default_factory=lambda: ["borrower"])

    @field_validator("to")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in RECIPIENTS]
        if unknown or not value:
            raise ValueError(f"recipients must be among {', '.join(RECIPIENTS)}, got {value}")
        return value


def _default_ladder() -> list[EscalationStep]:
    return [EscalationStep(after_days=1, to=["borrower"]),
            EscalationStep(after_days=3, to=["borrower", "keeper"]),
            EscalationStep(after_days=7, to=["borrower", "keeper", "manager"])]


class ReminderSettings(PluginSettings):
    """The reminder cadence: before the due date, on it, then the escalation ladder."""

    hour: int = Field(9, ge=0, le=23)  # local hour (organization timezone) at which reminders go out
    before_due_days: list[int] = Field(default_factory=lambda: [1])
    on_due_date: bool = True
    escalation: list[EscalationStep] = Field(default_factory=_default_ladder)
    # After the last rung, repeat it every N days (0: stop after the last rung), at most ``max_repeats``.
    repeat_every_days: int = Field(7, ge=0)
    max_repeats: int = Field(26, ge=0)

    @field_validator("before_due_days")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError("before_due_days must be whole days >= 1")
        return sorted(set(value), reverse=True)

    @field_validator("escalation")
    @classmethod
    def _ordered(cls, value: list[EscalationStep]) -> list[EscalationStep]:
        days = [step.after_days for step in value]
        if days != sorted(set(days)):
            raise ValueError("escalation steps need strictly increasing after_days")
        return value


class AssetLoanSettings(PluginSettings):
    """Everything an organization (or a site) configures for asset loans."""

    app_token: str = "bascnAssetLoan"  # the Bitable base holding both tables
    asset_table_id: str = "tblAssets"
    history_table_id: str = "tblAssetHistory"
    fields: AssetFields = Field(default_factory=AssetFields)
    history_fields: HistoryFields = Field(default_factory=HistoryFields)
    status_labels: StatusLabels = Field(default_factory=StatusLabels)
    categories: dict[str, CategoryRule] = Field(default_factory=lambda: {"default": CategoryRule()})
    default_category: str = "default"  # rules for assets whose category is not listed
    roles: dict[str, list[str]] = Field(default_factory=dict)  # role name -> open_ids
    manager_open_id: str | None = None  # top of the escalation ladder
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    signing_key_env: str = "ASSET_LOAN_SIGNING_KEY"  # the variable holding this organization's secret
    session_hours: int = Field(12, ge=1)  # lifetime of the scan page's login cookie
    # device_calibration statuses that put an asset out of service (checked when both plugins run)
    guard_statuses: list[str] = Field(default_factory=lambda: ["overdue", "quarantined", "sent_out", "retired",
                                                                  "out_of_service"])
    summary_cron: str = "0 9 * * 1"  # weekly keeper summary, organization timezone
    # the monthly outcome card: recipients (open ids) per site id ("" for the whole group), and the local
    # hour it goes out on the month's first working day
    report_recipients: dict[str, list[str]] = Field(default_factory=dict)
    report_hour: int = Field(9, ge=0, le=23)
    my_loans_phrases: list[str] = Field(default_factory=lambda: ["我借了什么", "what do i have", "my loans"])
    # what an asset id looks like in "@bot <asset id> 状态" / "status" (the whole word must match)
    asset_id_pattern: str = r"[A-Za-z]{2,}(?:-[A-Za-z0-9]+)+"

    @field_validator("summary_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return validate_cron(value)

    @field_validator("asset_id_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value

    def category_rule(self, category: str | None) -> CategoryRule:
        """The rules of ``category``, else of ``default_category``, else the built-in defaults."""
        if category and category in self.categories:
            return self.categories[category]
        return self.categories.get(self.default_category, CategoryRule())

    def category_label(self, category: str | None, locale: str) -> str:
        """What people reading ``locale`` see for ``category``: its label, else the category as written."""
        name = category or self.default_category
        rule = self.categories.get(name)
        return (rule.labels.get(locale) if rule is not None else None) or name


SITE_OVERRIDABLE = ("categories", "reminders", "manager_open_id", "roles")
