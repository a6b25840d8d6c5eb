"""The handover, project_delivery, recruiting and repair part of the reliability workload, and what it must
cause.

Both run on the organization's compressed business clock, driven like the others: card presses and
messages through the ingress; a shift's rota driver is started as its schedule would start it. Their
expected effects follow each plugin's documented, fixed flow (plugins/handover/README.md,
plugins/project_delivery/README.md) and idempotency keys, never the engine's own state:

* handover, a *pressed* shift (site ``ward``: no deadline ladders, so the order of presses and timers
  does not matter): form to the giver, then the giver saves a critical patient and submits, the receiver
  confirms the patient and the handover: the receiver's card, the giver's "acknowledged" notice, two
  status lines to the group; one handover row ending ``acknowledged`` (written ``submitted`` first), one
  patient row.
* handover, a *missing* shift (the group's ladders): nobody presses; the form, the reminder at the change,
  the head's escalation 30 business minutes later with the group's "missing" line, the medical affairs
  office's 180 minutes later; one handover row written ``open`` at the escalations and ``missing`` when the
  shift closes 12 business hours after the change.
* project_delivery: "@bot 建群 <customer> <product> 华北" (pushed twice under new event ids), then "完成：现场勘察"
  pressed by the project manager: one group chat, the pinned card, the reply to the request, the stage
  announcement; one project row, written at 合同签订 then 现场勘察. The stages are planned hundreds of days
  out and the digests fall on 29 February, so no reminder or digest falls inside a run.
* recruiting: a requisition row added (its event pushed twice) is approved by the hospital head's press and
  closed by the recruiter's; an application row for it added (pushed twice) is moved to 已筛选, then to
  未录用 by the recruiter's presses: the approval card to the head, the "approved" notice to the
  recruiter; the requisition row written pending_approval, open, closed; the application row written
  已投递, 已筛选, 未录用. Its stage SLAs are 60 working days and the monthly report is off, so no nudge
  or report falls inside a run; the candidate gave no consent, so nothing goes to the talent pool.
* repair: "@bot 报修 <printer fault>" in a group (pushed twice under new event ids) opens a ticket that the
  IT technician on duty (around the clock) accepts and finishes and the reporter rates 5: the reply with the
  ticket number, the technician's card, "accepted" and the confirm card to the reporter, "rated" to the
  technician; one ticket row written 已派单, 已接单, 待确认, 已关闭. Accept and fix SLAs of 70 days and a
  3000-hour auto-close keep every timer outside a run.
* recruiting with Feishu approval: requisition rows of the site ``hosp_fa``, whose ``approval.feishu`` names
  a definition (the hospital head, then group HR passed when nobody is named), pushed twice; each asks the
  stand-in's Approval API v4 for one instance, which the run decides at the stand-in (approved by the head,
  one rejected, one withdrawn by its applicant) and whose ``approval_instance`` events it pushes as Feishu
  would, the decision twice with the stale PENDING news in between: "approved" (or "rejected") to the
  recruiter once, nothing when withdrawn; the row written pending_approval, then open, rejected or closed;
  the decision recorded once in the requisition's history. ``decide_within_days`` of 60 keeps the
  approval's reminders outside a run.
* documents: one upload round, its rounds-table row added (pushed twice) with a deadline two working days
  out, to the hospitals ``hosp_d*``: one card per responsible person; all but the first answer at once (a
  link from the card's form, one a file sent to the bot, pushed again under a new event id, answered by a
  reply); the first, whose site ladder is "on the day, then the responsible people and the head the next
  working day", never answers: its reminders and the head's escalation per the SDK's ladder on working
  days, headquarters' status card (updated as answers come) and the summary at the deadline (one hospital
  still waiting), one answers row per hospital: 已上报 (written 待回复 first), the late one's 待回复 with
  its two reminders counted and its head told. The round stays open (it closes 30 days on).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.feishu.activities import message_uuid
from engine.ids import workflow_id
from engine.rules import WorkCalendar, all_notices
from engine.sdk import LadderSettings
from plugins.project_delivery.rules import project_id_for

ORG = "relia"
HANDOVER, PROJECTS = "handover", "project_delivery"
WARD = "ward"  # the handover site whose shifts are pressed through
CHANGE = "20:00"
CLOSE_AFTER_HOURS = 12  # a missing shift's workflow closes (its row written "missing") this long after the change
ZONE = ZoneInfo("Asia/Shanghai")
HD_APP, HD_TABLE, HD_PATIENTS = "bascnHandover", "tblHandovers", "tblPatientEntries"
HD_OFFICE = "ou_hd_office"
PD_APP, PD_STAFFING, PD_PROJECTS = "bascnDelivery", "tblStaffing", "tblProjects"
PD_REGION = "华北"
PD_STAFF = {"项目经理": "ou_pd_pm", "销售": "ou_pd_sales", "服务工程师": "ou_pd_se", "区域经理": "ou_pd_rm"}
PD_REQUESTS = "oc_pd_requests"  # the chat the requests are made in
PD_FIRST, PD_NEXT = ("contract_signed", "合同签订"), ("site_survey", "现场勘察")
RECRUITING = "recruiting"
RC_APP, RC_REQS, RC_APPS, RC_POOL = "bascnRecruiting", "tblRequisitions", "tblApplications", "tblTalentPool"
RC_ROLES = {"recruiter": "ou_rc_recruiter", "hospital_head": "ou_rc_head", "group_hr": "ou_rc_group_hr",
            "manager": "ou_rc_manager", "hr": "ou_rc_hr"}
REPAIR = "repair"
RP_APP, RP_TICKETS = "bascnRepair", "tblTickets"
RP_TECH, RP_LEAD, RP_HEAD = "ou_rp_tech", "ou_rp_lead", "ou_rp_head"
RP_CHAT = "oc_rp_reports"  # the group the faults are reported in ("@bot 报修 ...")
RP_STEPS = 80  # a progress message's key ends with the length of the ticket's history: looked for up to this
RC_FA_SITE, RC_APPROVAL_CODE = "hosp_fa", "RELIA-REQ-APPROVAL"  # a site approving requisitions in Feishu
APPROVALS = "recruiting (Feishu approval)"  # its own row of the per-plugin table
DOCUMENTS = "documents"
DOC_APP, DOC_ROUNDS, DOC_ANSWERS = "bascnDocuments", "tblRounds", "tblAnswers"
DOC_HQ = "ou_doc_hq"  # headquarters' 质控部, who sends the round
# The row leaves its round id empty: a record-changed event names cells by field id, and the round is then
# DOC-<record id> (the workflow writes it into the row)
DOC_RECORD = "recDocRound01"
DOC_ROUND = f"DOC-{DOC_RECORD.upper()}"
PATIENT = {"bed": "1", "name": "患者甲", "category": "critically_ill", "severity": "unstable",
           "summary": "重症肺炎", "actions": "复查血气", "contingency": "SpO2<88% 上调 FiO2"}


# ------------------------------------------------------------------------------------------- settings


def handover_settings(missing: int) -> dict[str, Any]:
    """The group's handover settings: the missing shifts' departments and the default ladders."""
    return {
        "departments": {d.department: d.config() for d in departments(0, missing) if not d.pressed},
        "shift_changes": [CHANGE], "lead_minutes": 120, "close_after_hours": CLOSE_AFTER_HOURS,
        "handovers_table": {"app_token": HD_APP, "table_id": HD_TABLE},
        "patients_table": {"app_token": HD_APP, "table_id": HD_PATIENTS},
        "medical_affairs": [HD_OFFICE], "stats_cron": "",
    }


def ward_settings(pressed: int) -> dict[str, Any]:
    """The ward's overrides: its pressed departments, the form at once, no ladder, no early close."""
    return {
        "departments": {d.department: d.config() for d in departments(pressed, 0)},
        "lead_minutes": 1440, "ack_escalation": [], "critical_escalation": [], "missing_reminders": [],
        "missing_escalation": [], "close_after_hours": 240,
    }


def project_settings() -> dict[str, Any]:
    stages = [("contract_signed", "合同签订", "Contract signed", 0), ("site_survey", "现场勘察", "Site survey", 300),
              ("acceptance_testing", "验收测试", "Acceptance testing", 320), ("warranty", "保修期", "Warranty", 330),
              ("closed", "项目结项", "Closed", 340)]
    return {
        "stages": [{"key": k, "name_zh": zh, "name_en": en, "offset_days": o} for k, zh, en, o in stages],
        "digest_cron": "0 3 29 2 *", "portfolio_cron": "0 3 29 2 *",
        "staffing": {"app_token": PD_APP, "table_id": PD_STAFFING},
        "projects": {"app_token": PD_APP, "table_id": PD_PROJECTS},
    }


def recruiting_settings() -> dict[str, Any]:
    return {"app_token": RC_APP, "roles": RC_ROLES, "report": {"enabled": False},
            "sla_workdays": {"applied": 60, "screened": 60, "interview": 60, "offer": 60}}


def repair_settings() -> dict[str, Any]:
    team = {"rota": [{"open_id": RP_TECH, "name": "王工"}], "lead_open_id": RP_LEAD, "head_open_id": RP_HEAD}
    return {"teams": {"it": team, "facilities": team, "medical": team},
            "sla": {"accept_minutes_urgent": 100000, "accept_minutes_normal": 100000,
                    "fix_minutes_urgent": 100000, "fix_minutes_normal": 100000},
            "auto_close_hours": 3000, "rating_hours": 3000}


def recruiting_site() -> dict[str, Any]:
    """The site ``hosp_fa``'s recruiting overrides: requisitions approved in Feishu's approval app."""
    return {"approval": {"feishu": {"approval_code": RC_APPROVAL_CODE, "decide_within_days": 60}}}


def approval_definitions() -> list[dict[str, Any]]:
    """The stand-in's approval definition: the hospital head, then group HR (passed when nobody is named)."""
    return [{"approval_code": RC_APPROVAL_CODE, "approval_name": "招聘需求审批", "nodes": [
        {"custom_node_id": "hospital_head", "approvers": []},
        {"custom_node_id": "group_hr", "approvers": [], "if_empty": "pass"}]}]


def doc_ladder(late: bool) -> dict[str, Any]:
    """The late hospital's ladder: on the deadline, then its responsible people and its head the next
    working day; the others' (the organization's): none, they answer at once."""
    after = [{"every_days": 1, "to": "responsible", "times": 1}, {"every_days": 1, "to": "head", "times": 1}]
    return {"before_days": [], "on_due": late, "after": after if late else [], "working_days_only": True,
            "send_at": "09:00:00"}


def documents_settings() -> dict[str, Any]:
    return {"app_token": DOC_APP, "rounds_table_id": DOC_ROUNDS, "answers_table_id": DOC_ANSWERS,
            "hq_open_ids": [DOC_HQ], "ladder": doc_ladder(False)}


# ------------------------------------------------------------------------------------------ the items


@dataclass(frozen=True)
class Department:
    """A handover department with one shift in the run (pressed through, or left missing)."""

    index: int
    pressed: bool

    @property
    def department(self) -> str:
        return f"{'hdp' if self.pressed else 'hdm'}{self.index:02d}"

    @property
    def site(self) -> str | None:
        return WARD if self.pressed else None

    def person(self, role: str) -> str:
        return f"ou_hd_{role}_{self.department}"

    @property
    def group_chat(self) -> str:
        return f"oc_hd_{self.department}"

    def config(self) -> dict[str, Any]:
        slot = {"giver": self.person("giver"), "receiver": self.person("receiver")}
        return {"name": self.department, "head": self.person("head"), "group_chat": self.group_chat,
                "site": self.site, "workday_rota": {CHANGE: slot}} if self.site else \
            {"name": self.department, "head": self.person("head"), "group_chat": self.group_chat,
             "workday_rota": {CHANGE: slot}}

    def people(self) -> set[str]:
        return {self.person(r) for r in ("giver", "receiver", "head")}


def departments(pressed: int, missing: int) -> list[Department]:
    return [Department(i, True) for i in range(pressed)] + [Department(i, False) for i in range(missing)]


@dataclass(frozen=True)
class Project:
    index: int

    @property
    def message_id(self) -> str:
        return f"om_pd_request_{self.index:03d}"

    @property
    def project_id(self) -> str:
        return project_id_for(self.message_id)

    @property
    def wid(self) -> str:
        return workflow_id(ORG, PROJECTS, self.project_id)

    @property
    def requester(self) -> str:
        return f"ou_pd_requester_{self.index:03d}"

    @property
    def text(self) -> str:
        return f"建群 客户{self.index:03d} 设备{self.index:03d} {PD_REGION}"


@dataclass(frozen=True)
class Opening:
    """A requisition and one application to it (recruiting)."""

    index: int

    @property
    def req_record(self) -> str:
        return f"recRcReq{self.index:03d}"

    @property
    def app_record(self) -> str:
        return f"recRcApp{self.index:03d}"

    @property
    def req_wid(self) -> str:
        return workflow_id(ORG, RECRUITING, f"req:{self.req_record}")

    @property
    def app_wid(self) -> str:
        return workflow_id(ORG, RECRUITING, f"app:{self.app_record}")

    def requisition(self) -> dict[str, Any]:
        return {"科室": f"内科{self.index}", "职位": "住院医师", "人数": 1, "职级": "初级", "标签": "内科"}

    def application(self) -> dict[str, Any]:
        return {"姓名": f"候选人{self.index:03d}", "手机": f"+86 139 0000 {self.index:04d}",
                "邮箱": f"candidate{self.index:03d}@example.com", "职位编号": self.req_record,
                "科室": f"内科{self.index}", "职位": "住院医师", "阶段": "已投递"}


@dataclass(frozen=True)
class Report:
    """A fault reported to repair by direct message."""

    index: int

    @property
    def reporter(self) -> str:
        return f"ou_rp_reporter_{self.index:03d}"

    @property
    def message_id(self) -> str:
        return f"om_rp_report_{self.index:03d}"

    @property
    def text(self) -> str:
        return f"报修 门诊{self.index}号诊室打印机卡纸"


@dataclass(frozen=True)
class FeishuOpening:
    """A requisition of ``hosp_fa``, approved in Feishu's approval app; ``outcome``: the stand-in's action."""

    index: int
    outcome: str  # approve / reject / cancel

    @property
    def req_record(self) -> str:
        return f"recRcFa{self.index:03d}"

    @property
    def req_wid(self) -> str:
        return workflow_id(ORG, RECRUITING, f"req:{self.req_record}")

    @property
    def position(self) -> str:
        """The approval form's position widget: how the run finds the instance the requisition asked for."""
        return f"外科{self.index} 住院医师"

    def requisition(self) -> dict[str, Any]:
        return {"医院": RC_FA_SITE, "科室": f"外科{self.index}", "职位": "住院医师", "人数": 1, "职级": "初级",
                "标签": "外科"}


def feishu_openings(count: int) -> list[FeishuOpening]:
    """``count`` requisitions: the first rejected, the second withdrawn, the others approved."""
    return [FeishuOpening(i, "reject" if i == 0 else "cancel" if i == 1 else "approve") for i in range(count)]


@dataclass(frozen=True)
class DocHospital:
    """A hospital of the documents round; the first is left late, the second sends a file."""

    index: int

    @property
    def site(self) -> str:
        return f"hosp_d{self.index}"

    @property
    def name(self) -> str:
        return f"D{self.index}院"

    @property
    def late(self) -> bool:
        return self.index == 0

    @property
    def uploads_file(self) -> bool:
        return self.index == 1

    @property
    def responsible(self) -> list[str]:
        return [f"ou_doc_{self.site}", *([f"ou_doc2_{self.site}"] if self.late else [])]

    @property
    def head(self) -> str:
        return f"ou_doc_head_{self.site}"

    def settings(self) -> dict[str, Any]:
        own: dict[str, Any] = {"responsible_open_ids": self.responsible, "head_open_id": self.head}
        return {**own, "ladder": doc_ladder(True)} if self.late else own

    def people(self) -> set[str]:
        return {*self.responsible, self.head}


def doc_hospitals(count: int) -> list[DocHospital]:
    return [DocHospital(i) for i in range(count)]


def round_fields(deadline_ms: int | None = None) -> dict[str, Any]:
    """The round's rows-table row (its deadline is set when the run sends it)."""
    fields: dict[str, Any] = {"标题": "11月医疗质量月报", "类型": "上报",
                              "说明": "各院上报本月质量指标", "发起人": [{"id": DOC_HQ}]}
    return fields if deadline_ms is None else {**fields, "截止日期": deadline_ms}


def people(depts: list[Department], projects: list[Project], reports: list[Report] = (),  # type: ignore[assignment]
           hospitals: list[DocHospital] = ()) -> set[str]:  # type: ignore[assignment]
    found = {HD_OFFICE, *PD_STAFF.values(), *RC_ROLES.values(), RP_TECH, RP_LEAD, RP_HEAD, DOC_HQ}
    for d in depts:
        found |= d.people()
    for h in hospitals:
        found |= h.people()
    return found | {p.requester for p in projects} | {r.reporter for r in reports}


def tables(openings: list[Opening] = (), fa_openings: list[FeishuOpening] = ()  # type: ignore[assignment]
           ) -> dict[str, dict[str, Any]]:
    """The stand-in's Bitable for these plugins: empty handover tables, the staffing row, no project yet,
    the requisition and application rows (their record-changed events come during the run), the round's
    row (its deadline comes when it is sent) and an empty answers table."""
    requisitions = [{"record_id": o.req_record, "fields": o.requisition()} for o in openings]
    requisitions += [{"record_id": o.req_record, "fields": o.requisition()} for o in fa_openings]
    return {
        DOC_APP: {DOC_ROUNDS: {"name": "下发轮次", "records": [{"record_id": DOC_RECORD, "fields": round_fields()}]},
                  DOC_ANSWERS: {"name": "各院回复", "records": []}},
        RC_APP: {RC_REQS: {"name": "招聘需求", "records": requisitions},
                 RC_APPS: {"name": "投递", "records": [{"record_id": o.app_record, "fields": o.application()}
                                                     for o in openings]},
                 RC_POOL: {"name": "人才库", "records": []}},
        RP_APP: {RP_TICKETS: {"name": "报修工单", "records": []},
                 "tblTicketHistory": {"name": "工单记录", "records": []}},
        HD_APP: {HD_TABLE: {"name": "交班记录", "records": []}, HD_PATIENTS: {"name": "交班患者", "records": []}},
        PD_APP: {PD_STAFFING: {"name": "区域人员", "records": [
            {"record_id": "recPdStaff01", "fields": {"区域": PD_REGION, **PD_STAFF}}]},
            PD_PROJECTS: {"name": "交付项目", "records": []}},
    }


# ------------------------------------------------------------------------------------ expected effects


@dataclass
class Effects:
    """What one item of these plugins must cause: messages by idempotency key, one row's status history."""

    plugin: str
    label: str
    messages: set[str] = field(default_factory=set)  # idempotency keys
    row_key: str = ""  # the row's key cell value
    # the row's status (or stage) cell, write by write; a write carries the state when it runs, so one
    # that runs after a later press carries the later state: what the stand-in applied (identical
    # consecutive writes collapsed) must be a part of this, in this order, ending with its last
    writes: list[str] = field(default_factory=list)
    patient_rows: int = 0
    chats: int = 0
    table: tuple[str, str, str, str] = ("", "", "", "")  # app token, table id, key column, status column
    done_by: datetime | None = None  # business time by which its timers have all fired (None: no timer)


HD_ROWS = (HD_APP, HD_TABLE, "交班编号", "状态")


def shift_effects(department: Department, wid: str) -> Effects:
    key = wid.split(":", 2)[2]
    if department.pressed:
        steps = ["form", "receive", "group-submitted", "acknowledged", "group-acknowledged"]
        return Effects(HANDOVER, f"{key} (pressed)", {f"{wid}:{s}" for s in steps}, key,
                       ["submitted", "acknowledged"], patient_rows=1, table=HD_ROWS)
    steps = ["form", "missing-remind-1", "missing-1", "group-missing", "missing-2-0"]
    change = datetime.strptime(key.split(":", 1)[1], "%Y-%m-%dT%H:%M").replace(tzinfo=ZONE)
    return Effects(HANDOVER, f"{key} (missing)", {f"{wid}:{s}" for s in steps}, key, ["open", "missing"],
                   table=HD_ROWS, done_by=change + timedelta(hours=CLOSE_AFTER_HOURS))


def project_effects(project: Project) -> Effects:
    wid = project.wid
    return Effects(PROJECTS, project.project_id, {f"{wid}:0:card", f"{wid}:0:created", f"{wid}:1:announce"},
                   project.project_id, [PD_FIRST[1], PD_NEXT[1]], chats=1,
                   table=(PD_APP, PD_PROJECTS, "项目编号", "阶段"))


def ticket_effects(report: Report, ticket: str) -> Effects:
    wid = workflow_id(ORG, REPAIR, ticket)
    return Effects(REPAIR, f"{ticket} ({report.reporter})",
                   {f"{wid}:dispatch:0", f"{wid}:received", f"{wid}:accept:*", f"{wid}:done:0", f"{wid}:rated:*"},
                   ticket, ["已派单", "已接单", "待确认", "已关闭"], table=(RP_APP, RP_TICKETS, "工单号", "状态"))


def opening_effects(opening: Opening) -> list[Effects]:
    return [Effects(RECRUITING, f"{opening.req_record} (requisition)",
                    {f"{opening.req_wid}:approval:1", f"{opening.req_wid}:approved"}, opening.req_record,
                    ["pending_approval", "open", "closed"], table=(RC_APP, RC_REQS, "职位编号", "状态")),
            Effects(RECRUITING, f"{opening.app_record} (application)", set(), opening.app_record,
                    ["已投递", "已筛选", "未录用"], table=(RC_APP, RC_APPS, "投递编号", "阶段"))]


def feishu_opening_effects(opening: FeishuOpening) -> Effects:
    wid = opening.req_wid
    told, final = {"approve": ({f"{wid}:approved"}, "open"), "reject": ({f"{wid}:rejected"}, "rejected"),
                   "cancel": (set(), "closed")}[opening.outcome]
    return Effects(APPROVALS, f"{opening.req_record} (Feishu approval, {opening.outcome})", told,
                   opening.req_record, ["pending_approval", final], table=(RC_APP, RC_REQS, "职位编号", "状态"))


def round_wid() -> str:
    return workflow_id(ORG, DOCUMENTS, DOC_ROUND)


def late_notices(hospital: DocHospital, deadline: date, calendar: WorkCalendar) -> tuple[list[str], datetime]:
    """The step keys of the late hospital's reminders and escalations, from the SDK's ladder, and the
    moment of the last."""
    ladder = LadderSettings.model_validate(doc_ladder(True))
    keys = []
    notices = all_notices(deadline, ladder, calendar)
    for decision in notices:
        if decision.data.get("to") == "head":
            keys.append(f"{round_wid()}:{hospital.site}:{decision.step}")
        else:
            keys += [f"{round_wid()}:{hospital.site}:{decision.step}:{p}" for p in hospital.responsible]
    return keys, max(d.at for d in notices if d.at is not None)


def document_effects(hospitals: list[DocHospital], deadline: date, calendar: WorkCalendar) -> list[Effects]:
    """Per hospital its cards (and the late one's ladder) and its answers row; headquarters' status card and
    the summary at the deadline (the late hospital still waiting; it is the first working morning after the
    deadline, when the late hospital's escalations go out too)."""
    wid = round_wid()
    found = [Effects(DOCUMENTS, "headquarters", {f"{wid}:status:{DOC_HQ}", f"{wid}:summary:deadline:{DOC_HQ}"})]
    for h in hospitals:
        cards = {f"{wid}:{h.site}:new:{p}" for p in h.responsible}
        last = None
        if h.late:
            ladder, last = late_notices(h, deadline, calendar)
            cards |= set(ladder)
            found[0].done_by = last
        found.append(Effects(DOCUMENTS, f"{DOC_ROUND}/{h.site}", cards, f"{DOC_ROUND}/{h.site}",
                             ["待回复"] if h.late else ["待回复", "已上报"],
                             table=(DOC_APP, DOC_ANSWERS, "编号", "状态"), done_by=last))
    return found


# ----------------------------------------------------------------------------------------- comparison


@dataclass
class Tally:
    """Expected, seen, lost and duplicated effects of one plugin, by kind of effect."""

    expected: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)

    def add(self, kind: str, label: str, want: int, got: int) -> None:
        self.expected[kind] += want
        self.seen[kind] += min(want, got)
        if got < want:
            self.lost.append(f"{kind} {label}: {got} of {want}")
        elif got > want:
            self.duplicated.append(f"{kind} {label}: {got}, {want} expected")


def plugin_of(message: dict[str, Any], depts: list[Department], project_chats: set[str]) -> str | None:
    """Which of these plugins a bot message belongs to, by its recipient or chat (None: neither)."""
    to = (message.get("_to") or {}).get("id")
    chat = message.get("chat_id")
    if str(to).startswith(("ou_doc", "oc_p2p_ou_doc")) or str(chat).startswith("oc_p2p_ou_doc"):
        return DOCUMENTS
    if any(to in d.people() or to == d.group_chat for d in depts) or to == HD_OFFICE:
        return HANDOVER
    if chat in project_chats or chat == PD_REQUESTS or to in project_chats:
        return PROJECTS
    if to in RC_ROLES.values():
        return RECRUITING
    if to in (RP_TECH, RP_LEAD, RP_HEAD) or str(to).startswith("ou_rp_reporter_") or chat == RP_CHAT:
        return REPAIR
    return None


def keyed_writes(calls: list[dict[str, Any]], key_field: str) -> dict[str, list[dict[str, Any]]]:
    """The fields of every successful record create or update the stand-in applied, by the row's key cell
    (an upsert writes the key with every update, so a create and its updates line up)."""
    writes: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        if call["method"] in ("PUT", "POST") and call["status"] == 200 and call["code"] == 0:
            body = call["body"] if isinstance(call["body"], dict) else {}
            for item in body.get("records", [body]):
                fields = item.get("fields") or {}
                if key_field in fields:
                    writes.setdefault(str(fields[key_field]), []).append(fields)
    return writes


def compare(effects: list[Effects], state: dict[str, Any], tallies: dict[str, Tally],
            writes: dict[str, list[dict[str, Any]]], depts: list[Department]) -> set[str]:
    """Count what the stand-in holds against ``effects`` (``writes``: :func:`keyed_writes` of both
    plugins' tables); returns the uuids of the messages these plugins sent."""
    messages = [m for m in state["messages"] if m.get("_origin") == "bot"]
    by_uuid = Counter(m.get("_uuid", "") for m in messages)
    chats = state.get("chats", {})
    project_chats = {cid for cid, c in chats.items() if str(c.get("description", "")).startswith("PD-")}
    known: set[str] = set()
    for item in effects:
        tally = tallies.setdefault(item.plugin, Tally())
        for key in sorted(item.messages):
            # "<...>:*": one message under the key with some number (a progress step) in place of *
            keys = [key.replace("*", str(n)) for n in range(RP_STEPS)] if key.endswith("*") else [key]
            uuids = [message_uuid(ORG, k) for k in keys]
            known.update(uuids)
            tally.add("messages", key, 1, sum(by_uuid.get(uuid, 0) for uuid in uuids))
        if not item.row_key:
            continue
        app, table, key_cell, status_cell = item.table
        rows = [r for r in _records(state, app, table) if _text(r["fields"].get(key_cell)) == item.row_key]
        if item.plugin == HANDOVER:
            patients = [r for r in _records(state, HD_APP, HD_PATIENTS)
                        if r["fields"].get("交班编号") == item.row_key]
            tally.add("patient rows", item.label, item.patient_rows, len(patients))
        if item.plugin == PROJECTS:
            made = [c for c in chats.values() if str(c.get("description", "")).startswith(item.row_key)]
            tally.add("chats created", item.label, item.chats, len(made))
        if item.plugin == RECRUITING and table == RC_APPS:
            pooled = [r for r in _records(state, RC_APP, RC_POOL) if _text(r["fields"].get("最后投递")) == item.row_key]
            tally.add("talent pool rows", item.label, 0, len(pooled))
        tally.add("Bitable rows", item.label, 1, len(rows))
        if len(rows) == 1:
            final = _text(rows[0]["fields"].get(status_cell))
            if final != item.writes[-1]:
                tally.lost.append(f"row {item.label}: {status_cell} {final!r}, not {item.writes[-1]!r}")
            applied = _collapse([_text(w[status_cell]) for w in writes.get(item.row_key, []) if status_cell in w])
            tally.expected["Bitable row writes"] += len(item.writes)
            if applied and applied[-1] == item.writes[-1] and _in_order(applied, item.writes):
                tally.seen["Bitable row writes"] += len(item.writes)
            elif len(applied) > len(item.writes) or not _in_order(applied, item.writes):
                tally.duplicated.append(f"row writes {item.label}: {applied}, not (part of) {item.writes}")
            else:
                tally.lost.append(f"row writes {item.label}: {applied}, not (part of) {item.writes}")
    for message in messages:
        uuid = message.get("_uuid", "")
        plugin = plugin_of(message, depts, project_chats)
        if plugin is not None and uuid not in known:
            tallies.setdefault(plugin, Tally()).duplicated.append(
                f"unexpected message to {(message.get('_to') or {}).get('id')}: "
                f"{message.get('body', {}).get('content', '')[:120]}")
    return {uuid for message in messages if plugin_of(message, depts, project_chats) is not None
            for uuid in [message.get("_uuid", "")]} | known


def _text(value: Any) -> str:
    """A text cell as written (a string) or as Feishu returns it (a list of text segments)."""
    if isinstance(value, list):
        return "".join(str(v.get("text", "")) if isinstance(v, dict) else str(v) for v in value)
    return "" if value is None else str(value)


def _records(state: dict[str, Any], app: str, table: str) -> list[dict[str, Any]]:
    return list(state["bitable"].get(app, {}).get(table, {}).get("records", []))


def _in_order(part: list[str], whole: list[str]) -> bool:
    """Whether ``part`` is ``whole`` with some items left out (order kept)."""
    rest = iter(whole)
    return all(any(item == other for other in rest) for item in part)


def _collapse(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out
