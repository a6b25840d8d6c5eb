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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.feishu.activities import message_uuid
from engine.ids import workflow_id
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


def people(depts: list[Department], projects: list[Project], reports: list[Report] = ()  # type: ignore[assignment]
           ) -> set[str]:
    found = {HD_OFFICE, *PD_STAFF.values(), *RC_ROLES.values(), RP_TECH, RP_LEAD, RP_HEAD}
    for d in depts:
        found |= d.people()
    return found | {p.requester for p in projects} | {r.reporter for r in reports}


def tables(openings: list[Opening] = ()) -> dict[str, dict[str, Any]]:  # type: ignore[assignment]
    """The stand-in's Bitable for these plugins: empty handover tables, the staffing row, no project yet,
    the requisition and application rows (their record-changed events come during the run)."""
    return {
        RC_APP: {RC_REQS: {"name": "招聘需求", "records": [{"record_id": o.req_record, "fields": o.requisition()}
                                                       for o in openings]},
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
