"""Approval time, measured: every decided Feishu approval recorded, and a monthly card of how long they took.

Configured per organization in ``[organizations.<id>.approvals.report]``
(:class:`engine.config.ApprovalReportSettings`):

* **Recording.** When the approval follower (:mod:`engine.approvals`) reads a final decision, it runs
  :data:`RECORD` once, which writes the instance to the organization's Bitable table: one row per
  instance, upserted on the instance code, so a retried or repeated record leaves one row. The row holds
  the definition, organization, site, scenario, title, status, start and end, the month it ended in (the
  site's zone) and the approver tasks of Feishu's ``task_list`` (node, approver's name, status, start and
  end), names looked up in the contact directory when recorded. See :data:`FIELDS`.
* **The card.** A schedule (``{org}:engine:schedule:approval_report``, cron ``0 <send_hour> 1-12 * *`` in
  the organization's zone) starts :class:`ApprovalReport` each morning of the month's first twelve days;
  the run on the first working day of the month (the organization's calendar: a cron cannot know the
  holidays) reads last month's rows and sends the group's card to the group's recipients and each site's
  card to that site's, in their locales (template ``engine:approval_report.card``); the others end at once.
  The figures are :func:`engine.rules.approval_times.month_figures`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.exceptions import ActivityError, ApplicationError

from engine.context import SiteContext
from engine.feishu import requests as rq
from engine.rules.approval_times import DecidedApproval, HeldTask, month_figures, site_figures
from engine.rules.recurrence import report_month
from engine.workflow_support import FEISHU_RETRY, FEISHU_START_TO_CLOSE, activity_options, feishu_call

if TYPE_CHECKING:
    from engine.config import ApprovalReportSettings, EngineConfig, OrgContext
    from engine.feishu.client import FeishuClient
    from engine.scenario import ScheduleSpec

log = logging.getLogger(__name__)

REPORT_WORKFLOW = "engine.ApprovalReport"
"""The Temporal type name of the monthly report workflow (permanent)."""
RECORD = "engine.approval_report.record"
PLAN = "engine.approval_report.plan"
FIGURES = "engine.approval_report.figures"
TEMPLATE = "engine:approval_report.card"
SCHEDULE_ID = "approval_report"
RECORD_WITHIN = timedelta(minutes=15)
"""How long a decided instance's record is retried before the follower gives up on it (and logs it)."""
RECORD_PATCH = "approval-report-record"
"""The ``workflow.patched`` id of the follower's record step (followers started before it record nothing)."""

# The table's columns (names are the table's contract: permanent). Dates are date-time cells (epoch ms).
INSTANCE = "审批实例"
FIELDS = {
    "instance_code": INSTANCE,  # the key of the upsert
    "definition": "审批定义",  # the approval code
    "definition_name": "审批名称",
    "org": "组织",
    "site": "院区",  # the site id; empty: the group's own
    "site_name": "院区名称",
    "scenario": "场景",
    "title": "事项",
    "status": "结果",  # Feishu's APPROVED / REJECTED / CANCELED / DELETED
    "started": "发起时间",
    "ended": "完成时间",
    "month": "月份",  # YYYY-MM of the end, in the site's zone: what the monthly card selects on
    "tasks": "审批环节",  # JSON: [{"node", "approver", "name", "en_name", "status", "start", "end"}], ms
}


# ------------------------------------------------------------------------------------- recording


class RecordApproval(BaseModel):
    """A decided instance to record, with where it was asked (the follower's site context)."""

    org: str
    scenario: str = ""
    site: str | None = None
    site_name: str = ""
    timezone: str = "Asia/Shanghai"
    title: str = ""
    instance: rq.ApprovalInstance


def approval_row(request: RecordApproval, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The table row of ``request`` (``names``: open id → (name, English name)); pure."""
    from zoneinfo import ZoneInfo

    instance = request.instance
    end = datetime.fromtimestamp(instance.end_time / 1000, ZoneInfo(request.timezone))
    tasks = [{"node": t.node_name or t.custom_node_id or t.node_id, "approver": t.open_id,
              "name": names.get(t.open_id, ("", ""))[0], "en_name": names.get(t.open_id, ("", ""))[1],
              "status": t.status, "start": t.start_time, "end": t.end_time} for t in instance.tasks]
    values = {"instance_code": instance.instance_code, "definition": instance.approval_code,
              "definition_name": instance.approval_name, "org": request.org, "site": request.site or "",
              "site_name": request.site_name, "scenario": request.scenario, "title": request.title,
              "status": instance.status, "started": instance.start_time, "ended": instance.end_time,
              "month": f"{end:%Y-%m}", "tasks": json.dumps(tasks, ensure_ascii=False)}
    return {FIELDS[key]: value for key, value in values.items()}


def read_row(fields: dict[str, Any]) -> DecidedApproval:
    """A table row as :class:`DecidedApproval`; raises ``ValueError`` for a row that cannot be read."""
    from engine.sdk import cells

    def text(key: str) -> str:
        return cells.text(fields.get(FIELDS[key]))

    started, ended = cells.moment(fields.get(FIELDS["started"])), cells.moment(fields.get(FIELDS["ended"]))
    if started is None or ended is None:
        raise ValueError("a recorded approval without its start or end time")
    tasks = []
    for task in json.loads(text("tasks") or "[]"):
        start = cells.moment(task.get("start"))
        if start is None:
            continue
        tasks.append(HeldTask(node=task.get("node", ""), approver=task.get("approver", ""),
                              name=task.get("name", ""), en_name=task.get("en_name", ""),
                              status=task.get("status", ""), start=start,
                              end=cells.moment(task.get("end")) if task.get("end") else None))
    return DecidedApproval(instance_code=text("instance_code"), definition=text("definition"),
                           definition_name=text("definition_name"), site=text("site"),
                           site_name=text("site_name"), scenario=text("scenario"), title=text("title"),
                           status=text("status"), started=started, ended=ended, tasks=tasks)


async def record_decision(site: SiteContext, title: str, instance: rq.ApprovalInstance) -> None:
    """Record a decided instance (in workflow code: the follower, behind :data:`RECORD_PATCH`).

    Retried like every Feishu call, but for at most :data:`RECORD_WITHIN`: the decision waits for the
    record no longer than that. A record Feishu keeps refusing (a wrong table in the config, an outage
    that long) is logged as a warning with the instance code, and the decision goes on to the workflow
    that asked.
    """
    request = RecordApproval(org=site.org, scenario=site.scenario, site=site.site, site_name=site.site_name,
                             timezone=site.timezone, title=title, instance=instance)
    try:
        await workflow.execute_activity(RECORD, request, result_type=bool, **activity_options(
            FEISHU_START_TO_CLOSE, schedule_to_close=RECORD_WITHIN, retry=FEISHU_RETRY))
    except ActivityError as error:
        workflow.logger.warning("approval %s decided but not recorded for the report: %s",
                                instance.instance_code, error)


# ------------------------------------------------------------------------------------- the card


class ReportInput(BaseModel):
    org: str


class Audience(BaseModel):
    """One card's readers: ``site`` empty for the group's card; ``name`` the organization's or site's."""

    site: str = ""
    name: str
    locale: str
    timezone: str
    recipients: list[rq.Recipient] = Field(default_factory=list)


class ReportPlan(BaseModel):
    """What the report workflow needs from the config: the calendar (``context``) and the audiences."""

    context: SiteContext
    audiences: list[Audience] = Field(default_factory=list)
    top_steps: int = 5
    top_approvers: int = 10


class FiguresRequest(BaseModel):
    org: str
    month: str  # YYYY-MM
    sites: list[str] = Field(default_factory=list)
    top_steps: int = 5
    top_approvers: int = 10


class ReportFigures(BaseModel):
    """The group's figures and each requested site's (:func:`month_figures` shapes); ``unreadable`` rows
    were skipped (logged with their record ids)."""

    group: dict[str, Any]
    sites: dict[str, dict[str, Any]] = Field(default_factory=dict)
    unreadable: int = 0


def _recipients(open_ids: list[str], chat_id: str) -> list[rq.Recipient]:
    out = [rq.Recipient(id=open_id) for open_id in open_ids]
    if chat_id:
        out.append(rq.Recipient(id_type="chat_id", id=chat_id))
    return out


def report_plan(org: OrgContext) -> ReportPlan:
    """The plan of ``org``'s report from its config (no audiences when it sends no card)."""
    import datetime as dt

    config = org.config
    report = config.approvals.report
    context = SiteContext(org=org.id, scenario="engine", timezone=org.timezone, locale=org.locale,
                          holidays=[dt.date.fromisoformat(d) for d in config.holidays],
                          workdays=[dt.date.fromisoformat(d) for d in config.workdays], clock=config.clock)
    audiences = []
    if report.recording and (report.recipients or report.chat_id):
        audiences.append(Audience(name=org.name, locale=org.locale, timezone=org.timezone,
                                  recipients=_recipients(report.recipients, report.chat_id)))
    for site_id, audience in sorted(report.sites.items()) if report.recording else ():
        site = config.sites[site_id]
        if audience.recipients or audience.chat_id:
            audiences.append(Audience(site=site_id, name=site.name or site_id, locale=site.locale or org.locale,
                                      timezone=site.timezone or org.timezone,
                                      recipients=_recipients(audience.recipients, audience.chat_id)))
    return ReportPlan(context=context, audiences=audiences, top_steps=report.top_steps,
                      top_approvers=report.top_approvers)


def report_schedule(org: OrgContext) -> ScheduleSpec | None:
    """The schedule of ``org``'s monthly card, ``None`` when it sends none."""
    from engine.scenario import ScheduleSpec

    report = org.config.approvals.report
    if not report_plan(org).audiences:
        return None
    return ScheduleSpec(id=SCHEDULE_ID, cron=f"0 {report.send_hour} 1-12 * *", workflow=REPORT_WORKFLOW,
                        args=[{"org": org.id}],
                        description="last month's approval times, on the first working day of the month")


@workflow.defn(name=REPORT_WORKFLOW)
class ApprovalReport:
    """Sends last month's approval cards on the first working day of the month (see the module docstring).

    Returns the number of cards sent (0 on any other day, or when nobody is configured to get one).
    """

    @workflow.run
    async def run(self, params: ReportInput) -> int:
        plan = await workflow.execute_activity(PLAN, params, result_type=ReportPlan,
                                               **activity_options(timedelta(seconds=30)))
        if not plan.audiences:
            return 0
        calendar = plan.context.calendar()
        now = plan.context.clock.now(workflow.now())
        report = report_month(now, calendar)
        if report is None:
            return 0
        month = report.month
        figures = await workflow.execute_activity(
            FIGURES, FiguresRequest(org=params.org, month=month, sites=[a.site for a in plan.audiences if a.site],
                                    top_steps=plan.top_steps, top_approvers=plan.top_approvers),
            result_type=ReportFigures, **activity_options(timedelta(minutes=5)))
        sent = 0
        for audience in plan.audiences:
            mine = figures.sites.get(audience.site, {}) if audience.site else figures.group
            context = {"month": month, "scope": audience.name, "figures": mine}
            for to in audience.recipients:
                await feishu_call(rq.SEND_MESSAGE, rq.SendMessage(
                    org=params.org, to=to, template=TEMPLATE, context=context, locale=audience.locale,
                    timezone=audience.timezone,
                    idempotency_key=f"approval-report:{month}:{audience.site or '-'}:{to.id}"),
                    result_type=rq.SentMessage)
                sent += 1
        return sent


WORKFLOWS: list[type] = [ApprovalReport]


# ------------------------------------------------------------------------------------- activities


class ApprovalReportActivities:
    """The report's activities, bound to the engine's config and Feishu client (the worker passes them in)."""

    def __init__(self, config: EngineConfig, feishu: FeishuClient) -> None:
        self.config = config
        self.feishu = feishu

    def all(self) -> list[Any]:
        return [self.record, self.plan, self.figures]

    def _org(self, org_id: str) -> OrgContext:
        try:
            return self.config.org(org_id)
        except KeyError as error:
            raise ApplicationError(str(error).strip("'\""), type="UnknownOrganization",
                                   non_retryable=True) from error

    def _report(self, org_id: str) -> ApprovalReportSettings:
        return self._org(org_id).config.approvals.report

    async def _feishu(self, call: str, org: str, work: Any) -> Any:
        from engine.feishu.errors import FeishuError

        try:
            return await work
        except FeishuError as error:
            log.warning("approval report: %s for %s failed: %s", call, org, error)
            raise error.to_application_error() from error

    @activity.defn(name=RECORD)
    async def record(self, request: RecordApproval) -> bool:
        """Upsert the instance's row (keyed by its code); ``False`` when the organization records none."""
        report = self._report(request.org)
        if not report.recording:
            return False
        names: dict[str, tuple[str, str]] = {}
        for task in request.instance.tasks:
            if task.open_id and task.open_id not in names:
                user = await self._feishu("contact.v3.user.get", request.org, self.feishu.get_user(task.open_id))
                names[task.open_id] = (str((user or {}).get("name") or ""), str((user or {}).get("en_name") or ""))
        code = request.instance.instance_code
        await self._feishu("bitable.upsert", request.org, self.feishu.bitable_upsert(
            report.app_token, report.table_id, INSTANCE, [approval_row(request, names)],
            client_token=f"approval-record:{code}"))
        log.info("approval %s of %s recorded for the report", code, request.org)
        return True

    @activity.defn(name=PLAN)
    async def plan(self, request: ReportInput) -> ReportPlan:
        """The organization's calendar and the cards' audiences (:func:`report_plan`)."""
        return report_plan(self._org(request.org))

    @activity.defn(name=FIGURES)
    async def figures(self, request: FiguresRequest) -> ReportFigures:
        """Read ``month``'s rows and compute the group's and the sites' figures."""
        report = self._report(request.org)
        query = {"conjunction": "and",
                 "conditions": [{"field_name": FIELDS["month"], "operator": "is", "value": [request.month]},
                                {"field_name": FIELDS["org"], "operator": "is", "value": [request.org]}]}
        records = await self._feishu("bitable.search", request.org,
                                     self.feishu.bitable_search(report.app_token, report.table_id, query))
        approvals, unreadable = [], 0
        for record in records:
            try:
                approvals.append(read_row(record.fields))
            except ValueError as error:  # pydantic's ValidationError and a bad JSON cell are ValueErrors
                unreadable += 1
                log.warning("approval report of %s: row %s skipped: %s", request.org, record.record_id,
                            type(error).__name__)
        top = {"top_steps": request.top_steps, "top_approvers": request.top_approvers}
        return ReportFigures(group=month_figures(approvals, **top),
                             sites={site: site_figures(approvals, site, **top) for site in request.sites},
                             unreadable=unreadable)

