"""Tell each organization's admin, once per year, that its work calendar for that year is provisional.

One workflow per organization and uncovered year, ``{org}:engine:calendar-provisional:{year}``, started
by every worker at start-up (:func:`announce_calendar_gaps`). Temporal refuses a second start of the
same id unless the first one failed (``ALLOW_DUPLICATE_FAILED_ONLY``: a send Feishu refused, e.g. a
wrong ``admin_open_id``, is tried again after the config is fixed), and the workflow stays open until
that year is over, so the message goes out once however often or on however many machines workers
start. The send carries an idempotency key derived from the organization and year, so a retried
activity is not sent twice either.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.calendar_gaps import CalendarGap, calendar_gaps, chinese_calendar_version
from engine.config import EngineConfig
from engine.feishu import requests as rq
from engine.ids import workflow_id
from engine.notices import SCENARIO
from engine.workflow_support import feishu_call

log = logging.getLogger(__name__)

TEMPLATE = f"{SCENARIO}:calendar_provisional"


class CalendarNoticeInput(BaseModel):
    """What the notice says (``first``..``last``: the year's dates ahead without an official calendar)."""

    org: str
    admin_open_id: str
    year: int
    first: date
    last: date
    chinese_calendar_version: str
    until: datetime  # the end of ``year`` in the organization's zone: the workflow stays open until then


def notice_key(year: int) -> str:
    """The workflow key and the send's idempotency key of ``year``'s notice."""
    return f"calendar-provisional:{year}"


@workflow.defn(name="engine.CalendarNotice")
class CalendarNotice:
    @workflow.run
    async def run(self, notice: CalendarNoticeInput) -> None:
        await feishu_call(rq.SEND_MESSAGE, rq.SendMessage(
            org=notice.org, to=rq.Recipient(id=notice.admin_open_id), template=TEMPLATE,
            context={"year": notice.year, "first": notice.first.isoformat(), "last": notice.last.isoformat(),
                     "version": notice.chinese_calendar_version},
            idempotency_key=notice_key(notice.year)), result_type=rq.SentMessage)
        # Open until the year is over: while it runs, its id stops any worker from sending again.
        wait = notice.until - workflow.now()
        if wait > timedelta(0):
            await workflow.sleep(wait)


WORKFLOWS: list[type] = [CalendarNotice]


def notices_for(config: EngineConfig, gaps: list[CalendarGap]) -> list[tuple[str, CalendarNoticeInput]]:
    """``(workflow id, input)`` of each notice due: one per gap year of each organization with an admin."""
    due = []
    for gap in gaps:
        org = config.orgs[gap.org]
        admin = org.config.admin_open_id
        if not admin:
            continue
        for first, last in gap.ranges:
            until = datetime.combine(date(first.year + 1, 1, 1), time(0, 0), tzinfo=org.zone)
            due.append((workflow_id(org.id, SCENARIO, notice_key(first.year)), CalendarNoticeInput(
                org=org.id, admin_open_id=admin, year=first.year, first=first, last=last,
                chinese_calendar_version=chinese_calendar_version(), until=until)))
    return due


async def announce_calendar_gaps(client: Client, config: EngineConfig, *, task_queue: str,
                                 now: datetime) -> list[CalendarGap]:
    """At a worker's start-up: log each organization's provisional dates ahead (one warning each), then
    start the admins' notices (:func:`start_calendar_notices`). Returns the gaps.
    """
    gaps = calendar_gaps(config, now)
    for gap in gaps:
        log.warning("%s; %s", gap.warning(), gap.hint())
    await start_calendar_notices(client, config, gaps, task_queue=task_queue)
    return gaps


async def start_calendar_notices(client: Client, config: EngineConfig, gaps: list[CalendarGap], *,
                                 task_queue: str) -> list[str]:
    """Start the admin notice of each gap year; returns the ids started now (one started before, by this
    or another worker, is left alone). A failure to start one is logged with its id and does not stop the
    others; the next start-up tries again.
    """
    started = []
    for wid, notice in notices_for(config, gaps):
        try:
            await client.start_workflow(CalendarNotice.run, notice, id=wid, task_queue=task_queue,
                                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)
        except WorkflowAlreadyStartedError:
            continue
        except Exception:
            log.exception("could not start the calendar notice %s; the next start-up tries again", wid)
            continue
        log.info("calendar notice %s started for the admin of %s", wid, notice.org)
        started.append(wid)
    return started
