"""asset_loan on the SDK: a lookup due date, and per-site settings, locale and zone."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from test_asset_loan_flow import BORROWER, SEED, SETTINGS

import plugins.asset_loan as asset_loan
from engine.sdk import CardAction, MessageReceived
from engine.testing.kit import org_config
from plugins.asset_loan.bitable import read_asset
from plugins.asset_loan.config import AssetLoanSettings
from plugins.asset_loan.models import LoanState

ZONE = ZoneInfo("Asia/Shanghai")
NOV_24_MS = 1795449600000  # 2026-11-24 00:00 in Asia/Shanghai
_ids = itertools.count(1)


def press(op: str, asset: str, who: str, **form: Any) -> CardAction:
    return CardAction(event_id=f"ev-sdk-{next(_ids)}", event_type="card.action.trigger",
                      create_time=datetime.now(UTC), operator_open_id=who,
                      action_value={"scenario": "asset_loan", "op": op, "asset": asset}, form_value=form or None)


def message(text: str, *, event_id: str, message_id: str, chat_type: str = "p2p",
            mentions_bot: bool = False) -> MessageReceived:
    return MessageReceived(event_id=event_id, event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id=message_id, chat_id="oc_li", chat_type=chat_type, text=text,
                           sender_open_id=BORROWER, mentions_bot=mentions_bot)


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
        row = rows(env)["recAsset004"]["fields"]
        row.update({"状态": "借出", "借用人": [{"id": BORROWER, "name": "李娜"}],
                    "应还日期": {"type": 5, "value": [NOV_24_MS]}})
        await env.deliver(message("我借了什么", event_id="ev-mine", message_id="om_mine"))
        (reply,) = replies_to(env, "om_mine")
        assert "2026年11月24日" in reply.text and "已逾期" in reply.text


# -------------------------------------------------------------------------- per-site settings


async def test_a_sites_overrides_locale_and_zone_apply_to_its_assets(scenario_harness: Any) -> None:
    config = org_config(
        plugins=["asset_loan"], settings={"asset_loan": SETTINGS},
        sites={"xian": {"name": "西安仁诺", "locale": "en_US", "timezone": "Asia/Urumqi",
                        "settings": {"asset_loan": {"categories": {"default": {}, "instrument": {
                            "default_loan_days": 3, "max_loan_days": 5}}}}}})
    async with scenario_harness({"asset_loan": asset_loan}, config=config) as env:
        env.standin.state.merge_json(SEED)
        rows(env)["recAsset001"]["fields"]["院区"] = "西安仁诺"  # the asset belongs to the Xi'an hospital
        result = await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        assert result.toast and result.toast.startswith("You borrowed")  # the site's locale
        state = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-001"))
        today = (await env.now()).astimezone(ZoneInfo("Asia/Urumqi")).date()
        assert state.loan is not None and state.loan.due == today + timedelta(days=3)  # the site's rule
        group = await env.deliver(press("borrow", "RD-OSC-002", BORROWER))  # no site: the group's rule
        assert group.toast and "请于" in group.toast
        other = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-002"))
        assert other.loan is not None and other.loan.due == (await env.now()).astimezone(ZONE).date() + timedelta(7)
