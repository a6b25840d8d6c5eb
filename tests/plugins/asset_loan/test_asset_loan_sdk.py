"""asset_loan on the SDK: a lookup due date, the working-day ladder's plan and its recorded history.

The seven behaviours every plugin has are in test_asset_loan_behaviours.py."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from test_asset_loan_flow import BORROWER, SEED, SETTINGS

import plugins.asset_loan as asset_loan
from engine.sdk import CardAction, MessageReceived, WorkCalendar
from engine.testing import moments
from engine.testing.events import card_press
from engine.testing.events import message as build_message
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.asset_loan.bitable import read_asset
from plugins.asset_loan.config import AssetLoanSettings, ReminderSettings
from plugins.asset_loan.models import LoanState
from plugins.asset_loan.rules import reminder_plan
from plugins.asset_loan.workflows import WORKFLOWS

ZONE = ZoneInfo("Asia/Shanghai")
NOV_24_MS = 1795449600000  # 2026-11-24 00:00 in Asia/Shanghai


def press(op: str, asset: str, who: str, **form: Any) -> CardAction:
    return card_press({"scenario": "asset_loan", "op": op, "asset": asset}, who, form=form or None)


def message(text: str, *, event_id: str, message_id: str, chat_type: str = "p2p",
            mentions_bot: bool = False) -> MessageReceived:
    return build_message(text, sender=BORROWER, chat_type=chat_type, mentions_bot=mentions_bot,
                         message_id=message_id, event_id=event_id)


def replies_to(env: Any, message_id: str) -> list[Any]:
    return [m for m in env.messages() if m.reply_to == message_id]


def rows(env: Any) -> dict[str, Any]:
    return env.standin.state.table("bascnAssetLoan", "tblAssets")["records"]


# ------------------------------------------------------------------------------------- cells


def test_a_lookup_due_date_column_gives_the_due_date() -> None:
    fields = {"资产编号": [{"type": "text", "text": "RD-OSC-001"}], "名称": "示波器",
              "保管人": [{"id": "ou_al_zhang", "name": "张伟", "en_name": "Zhang Wei", "email": "z@example.com"}],
              "借用人": {"type": 11, "value": [{"id": BORROWER, "name": "李娜"}]},
              "应还日期": {"type": 5, "value": [NOV_24_MS]}, "院区": "西安仁诺"}
    row = read_asset("rec1", fields, AssetLoanSettings(), ZONE)
    assert row.due_back == date(2026, 11, 24)
    assert (row.asset_id, row.keeper_open_id, row.keeper_name) == ("RD-OSC-001", "ou_al_zhang", "张伟")
    assert (row.borrower_open_id, row.borrower_name, row.site) == (BORROWER, "李娜", "西安仁诺")


def test_a_keeper_typed_as_a_name_and_an_odd_date_still_read() -> None:
    row = read_asset("rec1", {"资产编号": "RD-1", "保管人": "张伟", "应还日期": "next week"}, AssetLoanSettings(), ZONE)
    assert (row.keeper_open_id, row.keeper_name, row.due_back) == ("", "张伟", None)


async def test_what_do_i_have_reads_a_lookup_due_date(scenario_harness: Any) -> None:
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today - timedelta(days=6)  # a lookup column's date, as Feishu wraps it: overdue by now
        due_ms = int(datetime.combine(due, time(0), tzinfo=ZONE).timestamp() * 1000)
        row = rows(env)["recAsset004"]["fields"]
        row.update({"状态": "借出", "借用人": [{"id": BORROWER, "name": "李娜"}],
                    "应还日期": {"type": 5, "value": [due_ms]}})
        await env.deliver(message("我借了什么", event_id="ev-mine", message_id="om_mine"))
        (reply,) = replies_to(env, "om_mine")
        assert f"{due:%Y年%m月%d日}" in reply.text and "已逾期" in reply.text


# ---------------------------------------------------------------------------- working days


def test_a_loan_due_on_national_day_is_reminded_and_escalated_on_working_days() -> None:
    calendar = WorkCalendar(ZONE)
    settings = ReminderSettings(repeat_every_days=0)
    plan = reminder_plan(date(2026, 10, 4), settings, ZONE, calendar)
    days = {d.step: d.at.astimezone(ZONE).date() for d in plan if d.at is not None}
    # before the holiday: the last workday before it (never on 1-7 October), not a day late
    assert days["2026-10-04:before:1"] == date(2026, 9, 30)
    assert days["2026-10-04:due"] == date(2026, 9, 30)
    due_notice = next(d for d in plan if d.step == "2026-10-04:due")
    assert due_notice.data["kind"] == "before_due" and due_notice.data["days"] == 4  # "due in 4 days", not "today"
    # escalations on the first workday after the holiday (8 October), not on a Sunday
    assert days["2026-10-04:overdue:1"] == days["2026-10-04:overdue:3"] == date(2026, 10, 8)
    assert days["2026-10-04:overdue:7"] == date(2026, 10, 12)  # 11 October is a Sunday
    assert all(calendar.is_workday(day) for day in days.values())
    # the calendar-day plan (loans recorded before) is unchanged
    old = {d.step: d.at.astimezone(ZONE).date() for d in reminder_plan(date(2026, 10, 4), settings, ZONE)}
    assert old["2026-10-04:due"] == date(2026, 10, 4) and old["2026-10-04:overdue:1"] == date(2026, 10, 5)


# ------------------------------------------------------------------------------------------ replay

WORKDAYS_HISTORY = Path(__file__).parent / "histories" / "loan_workdays.json"


async def test_a_loan_on_the_working_day_ladder_replays(scenario_harness: Any) -> None:
    """Records (once) a loan that reminded on the working-day ladder: later changes must replay it too."""
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-DMM-003", BORROWER))
        first_run = (await env.handle("asset_loan", "RD-DMM-003").describe()).run_id
        state = LoanState.model_validate(await env.query("asset_loan", "RD-DMM-003"))
        assert state.loan is not None
        await env.advance_to(datetime.combine(state.loan.due + timedelta(days=2), time(12), tzinfo=ZONE))
        await env.deliver(press("return", "RD-DMM-003", BORROWER))
        history = await env.client.get_workflow_handle("acme:asset_loan:RD-DMM-003", run_id=first_run).fetch_history()
        assert "EVENT_TYPE_MARKER_RECORDED" in history.to_json()  # the working-day ladder's patch marker
        await assert_replays(history, WORKFLOWS)
        keep_history(history, WORKDAYS_HISTORY, "ASSET_LOAN_RECORD_HISTORY")


async def test_the_recorded_working_day_loan_replays() -> None:
    await assert_replays(load_history(WORKDAYS_HISTORY, "acme:asset_loan:RD-DMM-003"), WORKFLOWS)
