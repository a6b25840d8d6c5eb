"""A hospital's (site's) locale, zone and settings apply to its devices' cycles, through the SDK's site context."""

from __future__ import annotations

from datetime import timedelta

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.sdk import add_months
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState


async def test_a_hospitals_locale_and_zone_apply_to_its_devices(scenario_harness: object) -> None:
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        sites={"hosp_b": {"name": "B院", "locale": "en_US", "timezone": "Asia/Urumqi",
                                          "settings": {"device_calibration": {"reminders": {"before_days": [45, 7]}}}}},
                        extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today + timedelta(days=40)
        h.seed(env.standin, {"recA": h.device_row("CT-0201", last=add_months(due, -12)),
                             "recB": h.device_row("CT-0202", last=add_months(due, -12), 院区="B院")})
        await env.deliver(h.record_event("recB", "CT-0202"))
        await env.advance(days=3)  # past a weekend, if any: the catch-up goes on a working day
        english = [m for m in env.messages(to=h.CUSTODIAN) if m.card and "CT-0202" in str(m.card)]
        assert english, "the hospital's 45-day reminder went out"
        header = english[0].card["header"]["title"]["content"]
        assert "calibration" in header and "due soon" in header  # the site's locale, not the group's zh_CN
        state = CycleState.model_validate(await env.query("device_calibration", "CT-0202"))
        # the row names the hospital by its name: its own ladder (45 days ahead) applies
        assert [e.detail["step"] for e in h.history(state, "remind")] == ["before:45"]
        await env.deliver(h.record_event("recA", "CT-0201"))  # a device of the group: Chinese, 30 days ahead
        await env.advance(days=1)
        assert not [m for m in env.messages(to=h.CUSTODIAN) if m.card and "CT-0201" in str(m.card)]


async def test_status_is_answered_in_the_askers_language(scenario_harness: object) -> None:
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        extra=h.ORG_EXTRA)  # the organization speaks zh_CN
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"recA": h.device_row("CT-0301", last=add_months(today + timedelta(days=90), -12))})
        await env.deliver(h.record_event("recA", "CT-0301"))
        english, chinese, missing = h.mention("CT-0301 status"), h.mention("CT-0301 状态"), h.mention("XX-9999 status")
        for question in (english, chinese, missing):
            await env.deliver(question)
        replies = {m.reply_to: m.text for m in env.messages() if m.reply_to}
        assert "Status" in replies[english.message_id] and "状态" not in replies[english.message_id]
        assert "状态" in replies[chinese.message_id]
        assert replies[missing.message_id].startswith("No calibration cycle for device XX-9999")
