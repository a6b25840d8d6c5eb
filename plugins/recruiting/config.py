"""Settings of the recruiting scenario: the group's standard, with what each hospital (site) may override.

Everything has a documented default, so an organization can enable the plugin with only its Bitable app
token and the people behind the roles. Sites may override the people (``roles``), SLA days and timing,
checklist owners and risk lead times; the stage list, the approval thresholds, the pool rules and the
table schema are the group's (one pipeline, one pool, one report across hospitals).
"""

from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator, model_validator

from engine.sdk import ApprovalSettings as FeishuApprovalSettings
from engine.sdk import PluginSettings, SecretSpec, validate_cron

# The organization's secret that keys contact hashes (HMAC-SHA256): without it a phone number's hash is
# found by trying every number of a mobile prefix, so production refuses to start without it.
CONTACT_SECRET = SecretSpec(
    name="contact", env="RECRUITING_CONTACT_KEY", env_setting="contact_key_env",
    description="recruiting: the key of candidates' contact hashes",
    # the public salt earlier versions fell back to
    public_values=("recruiting-dev-salt-change-me",))
CONTACT_HASH = "contact_hash"  # the purpose its key is derived for

SITE_OVERRIDABLE = ["roles", "sla_workdays", "sla", "checklist_owners", "risk", "approval.feishu", "directory"]


class Tables(PluginSettings):
    """Table ids inside ``app_token``."""

    requisitions: str = "tblRequisitions"
    applications: str = "tblApplications"
    pool: str = "tblTalentPool"
    onboarding: str = "tblOnboarding"
    report: str = "tblHrReport"
    staff: str = "tblStaffSnapshot"  # the monthly snapshot of the contact directory (written by the engine)
    development: str = "tblTalentDevelopment"  # trainings and promotions (kept by the group)
    operations: str = "tblOperations"  # a hospital's monthly operating figures (kept by the group)
    cases: str = "tblRiskCases"  # labour-dispute and compliance cases (kept by the group)
    hr_monthly: str = "tblHrMonthly"  # the HR monthly report's rows (written by the engine)
    leavers: str = "tblLeavers"  # accounts removed from the directory (contact.user.deleted_v3; by the engine)


class RequisitionFields(PluginSettings):
    req_id: str = "职位编号"
    site: str = "医院"
    department: str = "科室"
    title: str = "职位"
    headcount: str = "人数"
    grade: str = "职级"
    tags: str = "标签"
    recruiter: str = "招聘负责人"
    status: str = "状态"
    opened_at: str = "发起时间"
    approved_at: str = "批准时间"
    closed_at: str = "关闭时间"
    approvals: str = "审批记录"
    hired: str = "已录用"
    reason: str = "申请理由"


class ApplicationFields(PluginSettings):
    app_id: str = "投递编号"
    name: str = "姓名"
    phone: str = "手机"
    email: str = "邮箱"
    req_id: str = "职位编号"
    site: str = "医院"
    department: str = "科室"
    title: str = "职位"
    tags: str = "标签"
    stage: str = "阶段"
    consent: str = "同意入库"
    start_date: str = "预计入职日期"
    candidate_id: str = "候选人ID"
    contact_hash: str = "联系方式哈希"
    applied_at: str = "投递时间"
    stage_at: str = "阶段时间"
    sla_due: str = "SLA截止"
    offer_at: str = "Offer时间"
    accepted_at: str = "接受时间"
    onboarded_at: str = "入职时间"
    ended_at: str = "结束时间"
    exited_from: str = "结束前阶段"
    from_pool: str = "人才库复用"
    linked: str = "关联投递"
    history: str = "流转记录"


class PoolFields(PluginSettings):
    candidate_id: str = "候选人ID"
    contact_hash: str = "联系方式哈希"
    name: str = "姓名"
    site: str = "来源医院"
    department: str = "科室"
    title: str = "职位"
    tags: str = "标签"
    last_stage: str = "最后阶段"
    last_application: str = "最后投递"
    added_at: str = "入库时间"
    retain_until: str = "保留至"


class OnboardingFields(PluginSettings):
    key: str = "入职编号"
    app_id: str = "投递编号"
    name: str = "姓名"
    site: str = "医院"
    department: str = "科室"
    title: str = "职位"
    contact_hash: str = "联系方式哈希"
    open_id: str = "飞书账号"
    status: str = "状态"
    start_date: str = "入职日期"
    probation_end: str = "试用期满"
    contract_end: str = "合同到期"
    left_at: str = "离职日期"
    checklist: str = "清单"
    overdue_items: str = "逾期事项"
    risk: str = "风险提示"


class ReportFields(PluginSettings):
    key: str = "报表键"
    month: str = "月份"
    site: str = "医院"
    open_positions: str = "在招岗位"
    applications: str = "投递数"
    hires: str = "录用数"
    time_to_hire_days: str = "平均招聘周期(天)"
    offer_acceptance_rate: str = "Offer接受率"
    joined: str = "入职人数"
    left: str = "离职人数"
    net_headcount: str = "净增人数"
    pool_reuse: str = "人才库复用"
    overdue_slas: str = "超期SLA"
    open_risks: str = "风险预警"


class StaffFields(PluginSettings):
    """人员快照: one row per person in post at a month's end, keyed ``{month}:{user_id}``."""

    key: str = "快照键"
    month: str = "月份"
    user_id: str = "用户ID"
    name: str = "姓名"
    site: str = "医院"
    department: str = "科室"


class LeaverFields(PluginSettings):
    """离职记录: one row per account removed from the directory, keyed by its open id."""

    user_id: str = "用户ID"
    name: str = "姓名"
    site: str = "医院"
    department: str = "科室"
    left_at: str = "离职时间"


class DevelopmentFields(PluginSettings):
    """人才发展: one row per training attended or promotion granted."""

    day: str = "日期"
    site: str = "医院"
    name: str = "姓名"
    kind: str = "类型"  # 培训 / 晋升 (training / promotion)
    hours: str = "学时"


class OperationsFields(PluginSettings):
    """经营数据: one row per hospital and month; the figures' columns are ``report.metrics``."""

    month: str = "月份"
    site: str = "医院"


class CaseFields(PluginSettings):
    """风险事件: labour-dispute and compliance cases."""

    site: str = "医院"
    kind: str = "类型"  # 劳动纠纷 / 合规 (labour_dispute / compliance)
    subject: str = "事项"
    opened: str = "登记日期"
    closed: str = "结案日期"


class HrMonthlyFields(PluginSettings):
    """人力资源月报: one row per hospital and month, and the group's (医院 = 集团), keyed ``{month}:{site}``."""

    key: str = "报表键"
    month: str = "月份"
    site: str = "医院"
    headcount_start: str = "期初人数"
    headcount_end: str = "期末人数"
    joiners: str = "入职"
    leavers: str = "离职"
    transfers_in: str = "调入"
    transfers_out: str = "调出"
    turnover_rate: str = "离职率"
    open_positions: str = "在招岗位"
    filled: str = "到岗岗位"
    time_to_fill_days: str = "平均招聘周期(天)"
    pool_size: str = "人才库"
    pool_moves: str = "人才库跨院流转"
    trainings: str = "培训人次"
    training_hours: str = "培训学时"
    promotions: str = "晋升"
    operations: str = "人均经营"
    probation_ending: str = "试用期到期"
    contract_ending: str = "合同到期"
    overdue_onboarding: str = "入职逾期"
    labour_disputes: str = "劳动纠纷"
    compliance_cases: str = "合规事件"


class Fields(PluginSettings):
    requisitions: RequisitionFields = Field(default_factory=RequisitionFields)
    applications: ApplicationFields = Field(default_factory=ApplicationFields)
    pool: PoolFields = Field(default_factory=PoolFields)
    onboarding: OnboardingFields = Field(default_factory=OnboardingFields)
    report: ReportFields = Field(default_factory=ReportFields)
    staff: StaffFields = Field(default_factory=StaffFields)
    development: DevelopmentFields = Field(default_factory=DevelopmentFields)
    operations: OperationsFields = Field(default_factory=OperationsFields)
    cases: CaseFields = Field(default_factory=CaseFields)
    hr_monthly: HrMonthlyFields = Field(default_factory=HrMonthlyFields)
    leavers: LeaverFields = Field(default_factory=LeaverFields)


class Roles(PluginSettings):
    """Who plays each role (open ids). A site overrides its own people; empty means "nobody"."""

    recruiter: str = ""
    interviewer: str = ""
    manager: str = ""  # the recruiting manager: SLA escalations
    hospital_head: str = ""
    hr: str = ""  # the site's HR: onboarding, risk warnings
    group_hr: str = ""  # the group HR office: second approval, monthly report
    it: str = ""
    admin: str = ""
    trainer: str = ""

    def get(self, role: str) -> str:
        return str(getattr(self, role, "") or "")


class ApprovalForm(PluginSettings):
    """The widget ids of the Feishu approval definition's form (its admin page shows each widget's id)."""

    position: str = "position"  # input: the department and title
    headcount: str = "headcount"  # number
    hospital: str = "hospital"  # input: the hospital's name
    reason: str = "reason"  # textarea: the row's 申请理由 (else the department and title)


class ApprovalSettings(PluginSettings):
    """The requisition approval chain: hospital head first; group HR too above a threshold.

    By card buttons, unless ``feishu.approval_code`` names a Feishu approval definition: then one instance
    of it, whose nodes named like the chain's roles (``hospital_head``, ``group_hr``) get the role
    holders as approvers; ``feishu.approvers`` replaces a node's (open ids or role names) and
    ``feishu.escalate_to`` (open ids or role names) hears of an overdue approval.
    """

    first_role: str = "hospital_head"
    second_role: str = "group_hr"
    # group HR approves too when the headcount reaches this, or the grade is one of `group_grades`
    group_headcount_threshold: int = Field(default=3, ge=1)
    group_grades: list[str] = Field(default_factory=lambda: ["主任", "副主任", "高级"])
    feishu: FeishuApprovalSettings = Field(default_factory=FeishuApprovalSettings)
    form: ApprovalForm = Field(default_factory=ApprovalForm)


class StageSpec(PluginSettings):
    name: str = Field(pattern=r"^[a-z_]+$")
    label: str = ""  # the Bitable value (Chinese); the name is accepted too
    owner: str = "recruiter"  # the role nudged while the candidate waits in this stage
    escalate_to: str = "manager"


def _default_stages() -> list[StageSpec]:
    return [
        StageSpec(name="applied", label="已投递", owner="recruiter"),
        StageSpec(name="screened", label="已筛选", owner="recruiter"),
        StageSpec(name="interview", label="面试", owner="interviewer"),
        StageSpec(name="offer", label="Offer", owner="recruiter"),
        StageSpec(name="accepted", label="已接受", owner="hr"),
        StageSpec(name="onboarded", label="已入职", owner="hr"),
    ]


class SlaSettings(PluginSettings):
    """When SLA notices go out: nudge the owner on the last working day, escalate after it lapsed."""

    send_at: time = time(9, 0)
    deadline_at: time = time(18, 0)  # an SLA of N working days ends at this time on the N-th workday
    escalate_every_workdays: int = Field(default=1, ge=1)
    escalate_times: int = Field(default=2, ge=0)


class PoolSettings(PluginSettings):
    enabled: bool = True
    require_consent: bool = True
    retention_days: int = Field(default=730, ge=1)
    # department and title count 2 each, each shared tag 1; a match needs at least `min_score`
    min_score: int = Field(default=2, ge=1)
    max_matches: int = Field(default=5, ge=1)


class ChecklistItem(PluginSettings):
    id: str = Field(pattern=r"^[a-z_]+$")
    label: str
    owner: str
    due_offset_workdays: int = 0  # relative to the start date (offboarding: the last day)


def _onboarding_items() -> list[ChecklistItem]:
    return [
        ChecklistItem(id="account", label="开通飞书账号", owner="it", due_offset_workdays=-1),
        ChecklistItem(id="badge", label="制作工牌", owner="admin", due_offset_workdays=0),
        ChecklistItem(id="contract", label="签订劳动合同", owner="hr", due_offset_workdays=0),
        ChecklistItem(id="training", label="岗前培训", owner="trainer", due_offset_workdays=5),
    ]


def _offboarding_items() -> list[ChecklistItem]:
    return [
        ChecklistItem(id="handover", label="工作交接", owner="manager", due_offset_workdays=-2),
        ChecklistItem(id="badge_return", label="归还工牌", owner="admin", due_offset_workdays=0),
        ChecklistItem(id="account_disable", label="停用账号", owner="it", due_offset_workdays=0),
        ChecklistItem(id="exit_interview", label="离职面谈", owner="hr", due_offset_workdays=0),
    ]


class ChecklistTiming(PluginSettings):
    remind_workdays_before: int = Field(default=1, ge=0)
    escalate_to: str = "hr"
    escalate_every_workdays: int = Field(default=1, ge=1)
    escalate_times: int = Field(default=3, ge=0)


class RiskSettings(PluginSettings):
    """Lead times (calendar days) of the warnings to HR before probation ends and a contract expires."""

    probation_months: int = Field(default=6, ge=0)
    contract_months: int = Field(default=36, ge=1)
    probation_lead_days: list[int] = Field(default_factory=lambda: [30, 7])
    contract_lead_days: list[int] = Field(default_factory=lambda: [60, 30])
    to: str = "hr"

    @field_validator("probation_lead_days", "contract_lead_days")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(days < 1 for days in value):
            raise ValueError("lead times are whole days, at least 1")
        return sorted(set(value), reverse=True)


class ReportSettings(PluginSettings):
    enabled: bool = True
    # runs daily; the workflow goes on only on the first working day of the month (cron cannot say that)
    cron: str = "0 9 * * *"
    to: str = "group_hr"
    hospital_to: str = "hr"  # each hospital's own card of the HR monthly report goes to this role (its site's)
    # probation and contract ends within this many days of the report count as risk warnings
    risk_window_days: int = Field(default=30, ge=1)
    # the operations table's figures reported per head: key → column (经营: revenue, outpatient visits...)
    metrics: dict[str, str] = Field(default_factory=lambda: {"revenue": "营业收入", "outpatient_visits": "门诊人次"})

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # a cron Temporal would read differently must fail `engine config check`, not the schedule sync
        return validate_cron(value)


class DirectorySettings(PluginSettings):
    """Where a hospital's staff are in Feishu's contact directory (a site sets its own)."""

    # the hospital's department (open_department_id): everyone in it and its sub-departments is its staff
    department_id: str = ""


class HireSettings(PluginSettings):
    """Feishu Hire: its stage ids (or names) → our stages, for ``hire.application.stage_changed_v1``."""

    stage_map: dict[str, str] = Field(default_factory=dict)
    offer_accepted_statuses: list[str] = Field(default_factory=lambda: ["accepted", "6"])
    offer_declined_statuses: list[str] = Field(default_factory=lambda: ["rejected", "declined", "7"])


class RecruitingSettings(PluginSettings):
    """The recruiting scenario's settings (``[organizations.X.settings.recruiting]``)."""

    app_token: str = "bascnRecruiting"
    tables: Tables = Field(default_factory=Tables)
    fields: Fields = Field(default_factory=Fields)
    roles: Roles = Field(default_factory=Roles)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    stages: list[StageSpec] = Field(default_factory=_default_stages)
    exits: list[str] = Field(default_factory=lambda: ["rejected", "withdrawn"])
    exit_labels: dict[str, str] = Field(default_factory=lambda: {"rejected": "未录用", "withdrawn": "已撤回"})
    sla_workdays: dict[str, int] = Field(
        default_factory=lambda: {"applied": 2, "screened": 2, "interview": 1, "offer": 3})
    sla: SlaSettings = Field(default_factory=SlaSettings)
    pool: PoolSettings = Field(default_factory=PoolSettings)
    onboarding_checklist: list[ChecklistItem] = Field(default_factory=_onboarding_items)
    offboarding_checklist: list[ChecklistItem] = Field(default_factory=_offboarding_items)
    checklist_owners: dict[str, str] = Field(default_factory=dict)  # item id → role, a site's override
    checklist: ChecklistTiming = Field(default_factory=ChecklistTiming)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    hire: HireSettings = Field(default_factory=HireSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    # an accepted offer without a planned start date starts this many working days later
    default_start_after_workdays: int = Field(default=10, ge=0)
    contact_key_env: str = "RECRUITING_CONTACT_KEY"  # the variable holding this organization's contact key
    use_china_calendar: bool = True
    # what "@bot <key> 状态" accepts as a key: requisition and application ids (Bitable record ids, hire_..., pool_...,
    # and a form-opened requisition's R + the last 10 hex digits of its event id); not any word starting with R,
    # which other scenarios' ids do ("RD-OSC-001 状态" would be answered twice)
    status_key_pattern: str = r"(?:rec|hire_|pool_)[A-Za-z0-9_\-]+|R[0-9a-f]{10}"

    @model_validator(mode="after")
    def _consistent(self) -> RecruitingSettings:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"stages need at least two distinct names, got {names}")
        for key in ("accepted", "onboarded", "offer"):
            if key not in names:
                raise ValueError(f"stages must include {key!r} (onboarding and the report rely on it)")
        if set(self.exits) & set(names):
            raise ValueError("an exit cannot also be a stage")
        unknown = set(self.sla_workdays) - set(names)
        if unknown:
            raise ValueError(f"sla_workdays names unknown stages: {sorted(unknown)}")
        if any(days < 1 for days in self.sla_workdays.values()):
            raise ValueError("SLA days are at least 1 working day")
        roles = set(Roles.model_fields)
        used = {s.owner for s in self.stages} | {s.escalate_to for s in self.stages}
        used |= {i.owner for i in self.onboarding_checklist + self.offboarding_checklist}
        used |= set(self.checklist_owners.values()) | {self.approval.first_role, self.approval.second_role}
        used |= {self.checklist.escalate_to, self.risk.to, self.report.to, self.report.hospital_to}
        feishu = self.approval.feishu
        used |= {p for p in [*feishu.escalate_to, *(p for ps in feishu.approvers.values() for p in ps)]
                 if not p.startswith("ou_")}
        if used - roles:
            raise ValueError(f"unknown roles {sorted(used - roles)}; roles are {sorted(roles)}")
        return self

    # ------------------------------------------------------------------------------------- helpers

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> StageSpec | None:
        return next((s for s in self.stages if s.name == name), None)

    def stage_label(self, name: str) -> str:
        spec = self.stage(name)
        if spec is not None:
            return spec.label or spec.name
        return self.exit_labels.get(name, name)

    def item_owner(self, item: ChecklistItem) -> str:
        return self.checklist_owners.get(item.id, item.owner)

