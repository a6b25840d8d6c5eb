"""asset_loan end to end on time-skipping Temporal with the Feishu stand-in: borrow, reminders, the overdue
ladder, extend, return, a borrowing race, lost, and "what do I have"."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import plugins.asset_loan as asset_loan
from engine.events import CardAction, MessageReceived
from engine.testing import moments
from plugins.asset_loan.models import LoanState

ZONE = ZoneInfo("Asia/Shanghai")
SEED = json.loads((Path(__file__).parents[3] / "examples" / "asset_loan" / "inventory.json").read_text("utf-8"))
SETTINGS = {
    "manager_open_id": "ou_al_zhao",
    "categories": {
        "default": {},
        "instrument": {"default_loan_days": 7, "max_loan_days": 14, "max_extensions": 1, "extension_days": 7},
        "phantom": {"needs_keeper_approval": True},
    },
}
KEEPER, BORROWER, OTHER, MANAGER = "ou_al_zhang", "ou_al_li", "ou_al_wang", "ou_al_zhao"
_ids = itertools.count(1)


def press(op: str, asset: str, who: str, **extra: Any) -> CardAction:
    return CardAction(event_id=f"ev-{next(_ids)}", event_type="card.action.trigger", create_time=datetime.now(UTC),
                      operator_open_id=who, action_value={"scenario": "asset_loan", "op": op, "asset": asset, **extra})


async def loan_state(env: Any, asset_id: str) -> LoanState:
    return LoanState.model_validate(await env.query("asset_loan", asset_id))


def asset_row(env: Any, record_id: str) -> dict[str, Any]:
    return env.standin.state.table("bascnAssetLoan", "tblAssets")["records"][record_id]["fields"]


def history(env: Any) -> list[dict[str, Any]]:
    return [r["fields"] for r in env.standin.state.table("bascnAssetLoan", "tblAssetHistory")["records"].values()]


async def at_local(env: Any, day: date, hour: int, minute: int = 1) -> None:
    await env.advance_to(datetime.combine(day, time(hour, minute), tzinfo=ZONE))


def harness(scenario_harness: Any) -> Any:
    return scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS})


async def test_borrow_remind_escalate_extend_return(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        # borrowed on a Monday with no holiday in the next three weeks: every step below is on a working day
        today = (await env.begin_at(moments.ordinary_workday(clear_days=21, weekday=0))).date()
        result = await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        assert result.toast and "RD-OSC-001" not in result.toast and "示波器" in result.toast
        state = await loan_state(env, "RD-OSC-001")
        assert state.status == "on_loan" and state.loan.borrower_name == "李娜"
        assert state.loan.due == today + timedelta(days=7)
        row = asset_row(env, "recAsset001")
        assert row["状态"] == "借出" and row["借用人"][0]["id"] == BORROWER and row["应还日期"]
        assert [h["动作"] for h in history(env)] == ["borrow"]
        assert env.messages(to=BORROWER)[-1].card is not None  # the confirmation card with its actions

        due = state.loan.due
        await at_local(env, due - timedelta(days=1), 9)
        reminders = env.messages(to=BORROWER)
        assert "到期" in reminders[-1].text and len(reminders) == 2
        await at_local(env, due, 9)
        assert "今天到期" in env.messages(to=BORROWER)[-1].text
        # the ladder: +1 day borrower only; +3 keeper too (status turns overdue first)
        await at_local(env, due + timedelta(days=1), 9)
        assert "逾期" in env.messages(to=BORROWER)[-1].text and not env.messages(to=KEEPER)
        assert asset_row(env, "recAsset001")["状态"] == "逾期"
        await at_local(env, due + timedelta(days=3), 9)
        assert len(env.messages(to=KEEPER)) == 1 and not env.messages(to=MANAGER)

        # the keeper reminds now (logged), then the borrower extends once, within the category's 14 days
        result = await env.deliver(press("remind_now", "RD-OSC-001", KEEPER))
        assert "李娜" in (result.toast or "")
        result = await env.deliver(press("extend", "RD-OSC-001", BORROWER))
        state = await loan_state(env, "RD-OSC-001")
        assert state.loan.due == due + timedelta(days=7) and state.loan.extensions == 1
        again = await env.deliver(press("extend", "RD-OSC-001", BORROWER))
        assert "续借" in (again.toast or "")  # refused: at most one extension
        assert (await loan_state(env, "RD-OSC-001")).loan.due == due + timedelta(days=7)
        # a stranger can neither return nor remind
        stranger = await env.deliver(press("return", "RD-OSC-001", OTHER))
        assert "借用人" in (stranger.toast or "")

        # overdue again: +7 days reaches the manager
        new_due = due + timedelta(days=7)
        await at_local(env, new_due + timedelta(days=7), 9)
        assert env.messages(to=MANAGER), "the last rung goes to the manager"

        # the keeper confirms the return: history, row cleared, next loan in a fresh run
        result = await env.deliver(press("return", "RD-OSC-001", KEEPER))
        assert "归还" in (result.toast or "")
        await env.settle()
        state = await loan_state(env, "RD-OSC-001")
        assert state.status == "available" and state.loan is None and state.cycle == 1
        row = asset_row(env, "recAsset001")
        assert row["状态"] == "在库" and not row.get("借用人") and row["归还时间"]
        actions = [h["动作"] for h in history(env)]
        assert actions[0] == "borrow" and actions[-1] == "return"
        assert {"reminder", "escalation", "remind_now", "extend"} <= set(actions)
        actors = {h["动作"]: h.get("操作人") for h in history(env)}
        assert actors["remind_now"][0]["id"] == KEEPER
        assert "逾期" in env.messages(to=BORROWER)[-1].text or "归还" in env.messages(to=BORROWER)[-1].text


async def test_a_press_delivered_again_after_the_return_changes_nothing(scenario_harness: Any) -> None:
    """Regression (issue 9, the reliability suite): Temporal dedupes an update id within one run only, so a
    borrow press redelivered after the return (a new run) lent the asset again, with a card and a row write."""
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        borrow = press("borrow", "RD-OSC-002", BORROWER)
        returned = press("return", "RD-OSC-002", BORROWER)
        await env.deliver(borrow)
        await env.deliver(returned)
        await env.settle()
        assert (await loan_state(env, "RD-OSC-002")).cycle == 1  # the return began the next run
        cards = len(env.messages(to=BORROWER))
        for again in (borrow, returned):
            result = await env.deliver(again)
            assert result.toast == "这个操作已经处理过了"
        await env.settle()
        state = await loan_state(env, "RD-OSC-002")
        assert (state.status, state.cycle) == ("available", 1)
        assert len(env.messages(to=BORROWER)) == cards
        assert asset_row(env, "recAsset002")["状态"] == "在库"
        assert [h["动作"] for h in history(env)] == ["borrow", "return"]


async def test_concurrent_borrow_exactly_one_wins(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-DMM-003", KEEPER))  # starts the workflow, then return it
        await env.deliver(press("return", "RD-DMM-003", KEEPER))
        await env.settle()
        org = env.org
        results = await asyncio.gather(
            env.router.dispatch(press("borrow", "RD-DMM-003", BORROWER), org),
            env.router.dispatch(press("borrow", "RD-DMM-003", OTHER), org))
        await env.settle()
        state = await loan_state(env, "RD-DMM-003")
        assert state.status == "on_loan"
        winner = state.loan.borrower_open_id
        assert winner in (BORROWER, OTHER)
        toasts = [r.toast or "" for r in results]
        assert sum("请于" in t for t in toasts) == 1, toasts  # one "borrowed, return by..."
        loser = next(t for t in toasts if "请于" not in t)
        # the other is told it is taken, by name once known (a card press carries no name: the name is
        # looked up after the answer), never by open_id
        assert "借" in loser and (state.loan.borrower_name in loser or "其他同事" in loser), loser
        assert winner not in loser
        assert [h["动作"] for h in history(env)].count("borrow") == 2  # the keeper's loan and the winner's


async def test_lost_stops_reminders_and_keeper_restores(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-CAM-010", BORROWER))
        denied = await env.deliver(press("mark_lost", "RD-CAM-010", BORROWER))
        assert "保管人" in (denied.toast or "")
        result = await env.deliver(press("mark_lost", "RD-CAM-010", KEEPER))
        assert "遗失" in (result.toast or "")
        state = await loan_state(env, "RD-CAM-010")
        assert state.status == "lost" and state.loan is None
        assert asset_row(env, "recAsset010")["状态"] == "遗失"
        sent = len(env.messages(to=BORROWER))
        await env.advance(days=20)
        assert len(env.messages(to=BORROWER)) == sent, "no reminders after the item was marked lost"
        refused = await env.deliver(press("borrow", "RD-CAM-010", OTHER))
        assert "不可借用" in (refused.toast or "")
        await env.deliver(press("return", "RD-CAM-010", KEEPER))
        await env.settle()
        assert (await loan_state(env, "RD-CAM-010")).status == "available"
        assert [h["动作"] for h in history(env)][-2:] == ["lost", "restore"]


async def test_keeper_approval_and_what_do_i_have(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        keeper = "ou_al_chen"
        result = await env.deliver(press("borrow", "RD-PHN-005", BORROWER))
        assert "审批" in (result.toast or "")
        assert (await loan_state(env, "RD-PHN-005")).status == "requested"
        assert env.messages(to=keeper)[-1].card is not None
        assert "保管人" in ((await env.deliver(press("approve", "RD-PHN-005", BORROWER))).toast or "")
        await env.deliver(press("approve", "RD-PHN-005", keeper))
        state = await loan_state(env, "RD-PHN-005")
        assert state.status == "on_loan" and state.loan.approved_by == keeper
        await env.deliver(press("borrow", "RD-OSC-002", BORROWER))

        ask = MessageReceived(event_id="ev-ask", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                              message_id="om_ask", chat_id="oc_p2p_li", chat_type="p2p", text="我借了什么",
                              sender_open_id=BORROWER)
        await env.deliver(ask)
        replies = [m for m in env.messages() if m.reply_to == "om_ask"]
        assert len(replies) == 1
        assert "RD-PHN-005" in replies[0].text and "RD-OSC-002" in replies[0].text
        assert "RD-OSC-001" not in replies[0].text


async def test_weekly_summary_per_keeper(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        await env.advance(days=9)
        await env.deliver(press("borrow", "RD-DBG-007", OTHER))
        handle = await env.start_workflow("asset_loan.WeeklySummary", {"org": env.org.id},
                                          id="acme:asset_loan:schedule:weekly_summary-test")
        assert await handle.result() == 1
        summary = env.messages(to=KEEPER)[-1].text
        assert "借出 2 件，逾期 1 件" in summary and "借用最久：示波器" in summary
