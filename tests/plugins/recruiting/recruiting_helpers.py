"""Shared config, seed and event builders of the recruiting plugin tests (a two-hospital group)."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import BitableRecordChanged, CardAction
from engine.testing import events
from engine.testing.kit import org_config

ZONE = ZoneInfo("Asia/Shanghai")
APP = "bascnRecruiting"
SEED = json.loads((Path(__file__).parents[3] / "examples" / "recruiting" / "sample.json").read_text("utf-8"))
GROUP_ROLES = {"group_hr": "ou_group_hr", "manager": "ou_rc_mgr", "it": "ou_it", "admin": "ou_admin",
               "trainer": "ou_trainer", "hr": "ou_hr_a"}
SITES = {
    "hosp_a": {"name": "A院", "settings": {"recruiting": {"roles": {
        "recruiter": "ou_rc_a", "hospital_head": "ou_head_a", "interviewer": "ou_interviewer_a", "hr": "ou_hr_a"}}}},
    "hosp_b": {"name": "B院", "settings": {"recruiting": {"roles": {
        "recruiter": "ou_rc_b", "hospital_head": "ou_head_b", "interviewer": "ou_interviewer_b", "hr": "ou_hr_b"}}}},
}


def config(**settings: Any) -> dict[str, Any]:
    group = {"roles": dict(GROUP_ROLES), **settings}
    return org_config(plugins=["recruiting"], settings={"recruiting": group}, sites=copy.deepcopy(SITES))


def seed(env: Any, *, applications: bool = True) -> None:
    data = copy.deepcopy(SEED)
    if not applications:
        data["bitable"][APP]["tblApplications"]["records"] = []
    env.standin.state.merge_json(data)


def rows(env: Any, table: str) -> dict[str, dict[str, Any]]:
    return {rid: r["fields"] for rid, r in env.standin.state.table(APP, table)["records"].items()}


def add_row(env: Any, table: str, record_id: str, fields: dict[str, Any]) -> None:
    env.standin.state.merge_json({"bitable": {APP: {table: {"records": [{"record_id": record_id, "fields": fields}]}}}})


def edit_row(env: Any, table: str, record_id: str, **fields: Any) -> None:
    env.standin.state.table(APP, table)["records"][record_id]["fields"].update(fields)


def record_event(table: str, record_id: str, action: str = "record_added", operator: str = "ou_rc_a"
                 ) -> BitableRecordChanged:
    return events.record_changed(APP, table, record_id, action=action, operator=operator)


def press(operator: str, op: str, form: dict[str, Any] | None = None, **value: Any) -> CardAction:
    return events.card_press({"scenario": "recruiting", "op": op, **value}, operator, form=form)


def track(env: Any, key: str) -> None:
    """Let the harness wait for a workflow another workflow started (it tracks only what it touched)."""
    wid = env.workflow_id("recruiting", key)
    if wid not in env.started:
        env.started.append(wid)


async def local_now(env: Any) -> datetime:
    return (await env.now()).astimezone(ZONE)


async def advance_to_local(env: Any, day: date, clock: time) -> None:
    await env.advance_to(datetime.combine(day, clock, tzinfo=ZONE))


def next_weekday(start: date, weekday: int, calendar: Any) -> date:
    """The first ``weekday`` (0 = Monday) after ``start`` that is a workday followed by a weekend day."""
    day = start + timedelta(days=1)
    while not (day.weekday() == weekday and calendar.is_workday(day) and not calendar.is_workday(
            day + timedelta(days=1))):
        day += timedelta(days=1)
    return day


async def state(env: Any, key: str) -> Any:
    """A workflow's ``state`` query as its typed model (the client returns plain JSON)."""
    from plugins.recruiting.models import ApplicationState, OnboardingState, RequisitionState

    model = {"req": RequisitionState, "app": ApplicationState, "onb": OnboardingState}[key.split(":", 1)[0]]
    return model.model_validate(await env.query("recruiting", key))
