"""repair with the other scenarios of one organization, through engine events (``engine.sdk.raise_event``):
a measuring device in repair pauses its calibration cycle until the fix is confirmed, and a loaned item
marked damaged opens a ticket."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from repair_helpers import MED_TECH, REPORTER, SEED, SETTINGS, press, report, rows, state, ticket_of

import plugins.asset_loan as asset_loan
import plugins.device_calibration as device_calibration
import plugins.repair as repair
from engine.testing import moments
from engine.testing.events import card_press, record_changed
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState

sys.path.insert(0, str(Path(__file__).parents[1] / "device_calibration"))
import devcal_helpers as devcal

DEVICE_REPORTER = REPORTER  # a nurse types the CT's fault into the ticket table
ASSETS = json.loads((Path(__file__).parents[3] / "examples" / "asset_loan" / "inventory.json").read_text("utf-8"))
KEEPER = "ou_al_zhang"


async def _cycle(env: Any, device: str = "CT-0012") -> CycleState:
    return CycleState.model_validate(await env.query("device_calibration", device))


async def _ticket_row_added(env: Any, record_id: str, asset: str, text: str) -> str:
    """A fault typed into the ticket table by the device's custodian; the ticket number the engine gave it."""
    env.standin.state.merge_json({"bitable": {"bascnRepair": {"tblTickets": {"records": [{
        "record_id": record_id, "fields": {"报修内容": text, "设备编号": asset, "位置": "CT室",
                                           "报修人": [{"id": DEVICE_REPORTER, "name": "李护士"}]}}]}}}})
    await env.deliver(record_changed("bascnRepair", "tblTickets", record_id, action="record_added",
                                     after={"报修内容": text}, operator=DEVICE_REPORTER))
    (row,) = [r for r in rows(env) if r.get("设备编号") == asset]
    return str(row["工单号"])


async def test_a_device_in_repair_pauses_its_calibration_cycle_until_the_fix_is_confirmed(
        scenario_harness: Any) -> None:
    config = org_config(plugins=["device_calibration", "repair"], extra=devcal.ORG_EXTRA,
                        settings={"device_calibration": devcal.SETTINGS, "repair": SETTINGS})
    async with scenario_harness({"device_calibration": device_calibration, "repair": repair},
                                config=config) as env:
        env.standin.state.merge_json(SEED)
        today = (await env.begin_at(moments.ordinary_workday())).date()
        # due in 20 days: the 7-day and 1-day reminders would come while the device is away for repair
        devcal.seed(env.standin, {"rec1": devcal.device_row("CT-0012", last=today + timedelta(days=20 - 365),
                                                            interval=12)})
        await env.deliver(devcal.record_event("rec1", "CT-0012"))
        before = await _cycle(env)
        assert before.phase == "active" and before.due is not None

        number = await _ticket_row_added(env, "recFault1", "CT-0012", "CT 停机，无法开机")
        ticket = await state(env, number)
        assert ticket.asset_id == "CT-0012" and ticket.priority == "urgent"  # "停机" makes it urgent
        paused = await _cycle(env)
        assert paused.phase == "paused" and not paused.paused_by_table
        assert paused.paused_reason == f"repair ticket {number}"
        assert [h.action for h in ticket.history][-1] == "asset.in_repair"
        assert ticket.history[-1].note == "CT-0012: 1 action(s) in other scenarios"

        # the repair takes past the device's reminders: none is sent while it is paused
        reminders = len(env.messages(to=devcal.CUSTODIAN))
        for op in ("accept", "working", "waiting_parts"):
            assert (await env.deliver(press(op, number, MED_TECH))).toast
        await env.advance(days=18)
        assert len(env.messages(to=devcal.CUSTODIAN)) == reminders
        assert (await _cycle(env)).phase == "paused"

        await env.deliver(press("working", number, MED_TECH))
        await env.deliver(press("done", number, MED_TECH))
        assert (await _cycle(env)).phase == "paused", "fixed is not back in service until the reporter confirms"
        await env.deliver(press("confirm", number, DEVICE_REPORTER))
        await env.settle()
        resumed = await _cycle(env)
        assert resumed.phase in ("active", "overdue") and resumed.paused_reason == ""
        assert [h.action for h in resumed.history if h.action in ("paused", "resumed")] == ["paused", "resumed"]
        actions = [h.action for h in (await state(env, number)).history]
        assert actions.count("asset.in_repair") == 1 and actions.count("asset.repaired") == 1

        # an asset named in a message report links its ticket too; one that is no measuring device touches
        # no cycle, and its ticket's history says so
        await env.deliver(report("报修 PC-0301 电脑蓝屏", message_id="om_pc"))
        other = await state(env, ticket_of(env, "om_pc"))
        assert other.asset_id == "PC-0301"
        assert [h.note for h in other.history if h.action == "asset.in_repair"] == \
            ["PC-0301: 0 action(s) in other scenarios"]


async def test_a_loaned_item_marked_damaged_opens_a_repair_ticket_once(scenario_harness: Any) -> None:
    loan_settings = {"manager_open_id": "ou_al_zhao", "categories": {"default": {}, "instrument": {}}}
    config = org_config(plugins=["asset_loan", "repair"], settings={"asset_loan": loan_settings, "repair": SETTINGS})
    async with scenario_harness({"asset_loan": asset_loan, "repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        env.standin.state.merge_json(ASSETS)
        await env.begin_at(moments.ordinary_workday())
        value = {"scenario": "asset_loan", "op": "mark_damaged", "asset": "RD-CAM-010"}
        marked = await env.deliver(card_press(value, KEEPER, form={"note": "镜头裂了"}, event_id="ev-dmg-1"))
        assert "损坏" in (marked.toast or "")
        await env.settle()
        (row,) = [r for r in rows(env) if r.get("设备编号") == "RD-CAM-010"]
        number = str(row["工单号"])
        ticket = await state(env, number)
        assert (ticket.source, ticket.reporter_open_id, ticket.status) == ("event", KEEPER, "dispatched")
        assert ticket.text.startswith("热成像仪 FLIR E8") and "损坏" in ticket.text
        assert row["来源"] == "场景联动"
        # the technician on duty got the ticket's card, naming the asset
        cards = [m for m in env.messages() if m.card and number in str(m.card)]
        assert cards and "RD-CAM-010" in str(cards[0].card)
        # the same press delivered again changes nothing and opens no second ticket
        again = await env.deliver(card_press(value, KEEPER, form={"note": "镜头裂了"}, event_id="ev-dmg-1"))
        await env.settle()
        assert again.toast and len([r for r in rows(env) if r.get("设备编号") == "RD-CAM-010"]) == 1
        # marking it lost is no repair
        await env.deliver(card_press({**value, "op": "return"}, KEEPER, event_id="ev-restore"))
        await env.deliver(card_press({**value, "op": "mark_lost"}, KEEPER, event_id="ev-lost"))
        await env.settle()
        assert len([r for r in rows(env) if r.get("设备编号") == "RD-CAM-010"]) == 1
