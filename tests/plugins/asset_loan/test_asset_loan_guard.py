"""The calibration guard: an asset device_calibration put out of service cannot be borrowed (and the
scan page and the card say why); with no calibration workflow for the asset there is no guard."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

import plugins.asset_loan as asset_loan
from engine.events import CardAction
from engine.hookspecs import hookimpl
from engine.scenario import Scenario

SEED = json.loads((Path(__file__).parents[3] / "examples" / "asset_loan" / "inventory.json").read_text("utf-8"))
_ids = itertools.count(1)


class FakeSettings(BaseModel):
    pass


@workflow.defn(name="device_calibration.CalibrationCycle", sandboxed=False)
class FakeCycle:
    """Stands in for device_calibration's cycle: holds a phase and answers the ``state`` query like it."""

    def __init__(self) -> None:
        self.phase = "active"

    @workflow.run
    async def run(self, phase: str) -> None:
        self.phase = phase
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {"phase": self.phase, "history": [{"reason": "calibration 14 days overdue"}]}


class FakeCalibration:
    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="device_calibration", version="0", settings_model=FakeSettings, workflows=[FakeCycle]))


def press(op: str, asset: str, who: str) -> CardAction:
    return CardAction(event_id=f"guard-{next(_ids)}", event_type="card.action.trigger", create_time=datetime.now(UTC),
                      operator_open_id=who, action_value={"scenario": "asset_loan", "op": op, "asset": asset})


async def test_out_of_service_device_cannot_be_borrowed(scenario_harness: Any) -> None:
    plugins = {"asset_loan": asset_loan, "device_calibration": FakeCalibration()}
    async with scenario_harness(plugins) as env:
        env.standin.state.merge_json(SEED)
        await env.start_workflow("device_calibration.CalibrationCycle", "overdue",
                                 id=env.workflow_id("device_calibration", "RD-OSC-001"))
        await env.start_workflow("device_calibration.CalibrationCycle", "active",
                                 id=env.workflow_id("device_calibration", "RD-OSC-002"))
        refused = await env.deliver(press("borrow", "RD-OSC-001", "ou_al_li"))
        assert "暂停使用" in (refused.toast or "") and "超期未校准" in (refused.toast or "")
        assert "overdue" not in (refused.toast or "")  # the calibration phase, in the person's language
        state = await env.query("asset_loan", "RD-OSC-001")
        assert state["status"] == "available" and state["history"][-1]["action"] == "borrow_refused"
        # in service, and an asset with no calibration workflow at all: both lend normally
        assert "请于" in ((await env.deliver(press("borrow", "RD-OSC-002", "ou_al_li"))).toast or "")
        assert "请于" in ((await env.deliver(press("borrow", "RD-DBG-007", "ou_al_li"))).toast or "")
        for wid in list(env.started):
            await env.client.get_workflow_handle(wid).terminate()
