"""A hospital in Europe/Berlin: reminders keep 09:00 local time across a daylight-saving change."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState

BERLIN = ZoneInfo("Europe/Berlin")


def berlin_ms(day: object) -> int:
    """A Bitable date cell as the Berlin organization's table holds it: midnight in its zone."""
    return int(datetime.combine(day, time(0), tzinfo=BERLIN).timestamp() * 1000)  # type: ignore[arg-type]


async def test_reminders_keep_nine_oclock_local_across_a_daylight_saving_change(scenario_harness: object) -> None:
    settings = {**h.SETTINGS, "reminders": {"before_days": [3, 1], "on_due": True}}
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": settings},
                        timezone="Europe/Berlin", locale="en_US")
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        # three days before the clocks change; the device is due two days after the change
        start = await env.begin_at(moments.before_offset_change(3 * 24 * 60))
        change = start + timedelta(days=3)
        before, after = start.utcoffset(), (change + timedelta(hours=2)).astimezone(BERLIN).utcoffset()
        assert before != after
        due = (change + timedelta(days=2)).astimezone(BERLIN).date()
        h.seed(env.standin, {"recDE": h.device_row("MRT-0001", last=None, 有效期至=berlin_ms(due))})
        await env.deliver(h.record_event("recDE", "MRT-0001"))
        await env.advance_to(datetime.combine(due, time(12, 0), tzinfo=BERLIN))
        state = CycleState.model_validate(await env.query("device_calibration", "MRT-0001"))
        sent = [e for e in state.history if e.action == "remind"]
        assert [e.detail["step"] for e in sent][-1] == "due" and len(sent) >= 2
        for entry in sent:
            local = entry.at.astimezone(BERLIN)
            # 09:00 on the wall clock, before the change and after it (a tenth of a second of task latency)
            assert (local.hour, local.minute) == (9, 0), entry
            assert local.utcoffset() == (before if local < change else after), entry
        assert any(e.at.astimezone(BERLIN) > change for e in sent)
