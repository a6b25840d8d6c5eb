"""A compressed business clock: a device's ladder runs in minutes, each notice at its business moment."""

from __future__ import annotations

from datetime import timedelta

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState

SCALE = 1440  # a business day per real minute


async def test_a_ladder_in_minutes(scenario_harness: object) -> None:
    # the origin must be fixed in the config, so take it from the (real-time) start of the server's clock
    from datetime import UTC, datetime

    origin = datetime.now(UTC).replace(microsecond=0)  # wall clock: the business clock's origin, not an expectation
    settings = {**h.SETTINGS, "reminders": {"before_days": [7, 1], "on_due": True, "working_days_only": False,
                                            "after": [{"every_days": 1, "to": "manager", "times": 2}]}}
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": settings},
                        extra={**h.ORG_EXTRA, "clock": {"scale": SCALE, "origin": origin.isoformat()}})
    async with scenario_harness({"device_calibration": device_calibration}, config=config) as env:  # type: ignore[operator]
        business_now = origin + (await env.now() - origin) * SCALE
        due = h.local(business_now).date() + timedelta(days=10)
        h.seed(env.standin, {"rec1": h.device_row("CT-0012", last=None, 有效期至=h.ms(due))})
        await env.deliver(h.record_event("rec1", "CT-0012"))

        await env.advance(minutes=13)  # 13 business days
        state = CycleState.model_validate(await env.query("device_calibration", "CT-0012"))
        steps = [(e.action, e.detail.get("step")) for e in state.history if e.action in ("remind", "escalate")]
        assert steps == [("remind", "before:7"), ("remind", "before:1"), ("remind", "due"),
                         ("escalate", "after:manager:1"), ("escalate", "after:manager:2")]
        for entry in state.history:
            if entry.action in ("remind", "escalate"):
                # at business 09:00; a tenth of a real second of timer and task latency is 2.4 business minutes
                nine = h.local(entry.at).replace(hour=9, minute=0, second=0, microsecond=0)
                assert timedelta(0) <= h.local(entry.at) - nine < timedelta(minutes=30), entry
        assert state.phase == "overdue" and h.row(env.standin, "rec1")["状态"] == "停用"
        assert len(env.messages(to=h.CUSTODIAN)) == 3
        assert len(env.messages(to=h.MANAGER)) == 3  # the due-day notice and two escalations
