"""The README's example: a check-up due in 45 days gets reminders 30, 7 and 1 days before, on the due
date, then escalations to the manager, each on a working morning."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import checkup_plugin
from checkup_plugin.workflows import CheckupSettings

from engine.events import EngineEvent
from engine.rules import all_notices
from engine.testing import moments


def checkup_registered(device: str, *, owner: str, due: date) -> EngineEvent:
    return EngineEvent(event_id=f"reg-{device}", event_type="checkup.registered", create_time=datetime.now(UTC),
                       payload={"device": device, "owner": owner, "due": due.isoformat()})


async def _past_the_plan(env: Any, due: date) -> None:
    """Advance an hour past the ladder's last notice, wherever holidays moved it."""
    plan = all_notices(due, CheckupSettings().ladder, env.calendar())
    await env.advance_to(max(n.at for n in plan if n.at is not None) + timedelta(hours=1))


async def _a_working_due_day_with_no_holiday_before(env: Any) -> date:
    """45 days ahead, a working day, with no holiday in between: no two notices fall on one day."""
    today = (await env.begin_at(moments.ordinary_workday(clear_days=50))).date()
    return env.calendar().next_workday(today + timedelta(days=45))


async def test_reminders_then_escalation(scenario_harness: Any) -> None:
    async with scenario_harness({"checkup": checkup_plugin}) as env:
        due = await _a_working_due_day_with_no_holiday_before(env)
        await env.deliver(checkup_registered("MRI-7", owner="ou_alice", due=due))
        await _past_the_plan(env, due)
        to_owner = env.messages(to="ou_alice")
        assert len(to_owner) == 4  # 30, 7, 1 days before, and on the due date
        assert all("MRI-7" in m.text for m in to_owner)
        assert env.messages(to="ou_manager")  # escalated after the due date
        assert (await env.query("checkup", "MRI-7"))["sent"][:4] == ["before:30", "before:7", "before:1", "due"]


async def test_reminders_land_on_working_mornings(scenario_harness: Any) -> None:
    async with scenario_harness({"checkup": checkup_plugin}) as env:
        due = await _a_working_due_day_with_no_holiday_before(env)
        await env.deliver(checkup_registered("CT-1", owner="ou_bob", due=due))
        await _past_the_plan(env, due)
        calendar = env.calendar()
        sent = env.messages()
        assert len(sent) == 7  # 4 to the owner, 3 escalations
        for message in sent:
            # under the kit the stand-in stamps messages with the (skipped) workflow clock
            local = datetime.fromtimestamp(message.create_time / 1000, ZoneInfo("Asia/Shanghai"))
            assert calendar.is_workday(local.date()), local
            assert (local.hour, local.minute) == (9, 0), local
