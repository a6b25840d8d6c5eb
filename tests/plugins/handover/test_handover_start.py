"""`engine handover start`: a department's next shift started on demand, its form out at once."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from handover_helpers import DAY, NIGHT, handover_settings

import plugins.handover as handover
from engine.sdk import Services
from engine.sdk.feishu import open_client
from engine.testing import moments
from engine.testing.kit import TASK_QUEUE
from plugins.handover import models as m
from plugins.handover.commands import start_next_shift


async def test_the_next_shift_starts_now_with_its_form_out(scenario_harness: Any) -> None:
    """At 14:00 on a workday the next change is 20:00 (the day doctor hands over to the night doctor): started
    now, the day doctor gets the form at once, the change is the lead time later; a second start (or the
    shift's own schedule) starts nothing."""
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        now = await env.begin_at(moments.ordinary_workday(time(14, 0)))
        async with open_client(env.config) as feishu:  # the command's services, on the test's server
            services = Services(config=env.config, feishu=feishu, temporal=env.client, task_queue=TASK_QUEUE)
            plan, started = await start_next_shift(services, env.org.id, "icu", None, now)
            again, started_again = await start_next_shift(services, env.org.id, "icu", 10, now)
        env.started.append(env.workflow_id("handover", plan.key))
        await env.settle()
        assert started and plan.shift.endswith("T20:00") and (plan.giver, plan.receiver) == (DAY, NIGHT)
        assert plan.form_at == now and plan.change_at == now + timedelta(minutes=45)
        form = env.messages(to=DAY)
        assert len(form) == 1 and form[0].card is not None
        running = m.ShiftPlan.model_validate(await env.handle("handover", plan.key).query("plan"))
        assert running.change_at == plan.change_at
        assert not started_again and again.key == plan.key
        assert len(env.messages(to=DAY)) == 1
