"""The seven behaviours every scenario keeps, for the handover plugin (one test each, named in its docstring)."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from handover_helpers import DAY, GROUP, HEAD, HOLIDAY, NIGHT, PATIENTS, RECORDS, card, handover_settings
from test_handover_flow import at, finished_result, state_of, table

import plugins.handover as handover
from engine.feishu.standin import events as standin_events
from engine.feishu.standin.faults import Fault
from engine.sdk import WorkCalendar
from engine.templates import TemplateEngine
from engine.testing import moments
from engine.testing.contract import foreign_text
from engine.testing.events import message
from engine.testing.kit import org_config
from plugins.handover import models as m
from plugins.handover import rules
from plugins.handover.workflows import TOASTS

ZONE = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HEAD_B, GIVER_B, RECEIVER_B, GROUP_B = "ou_head_ber", "ou_dr_ber_night", "ou_dr_ber_day", "oc_ber_icu"
_runs = itertools.count(1)
ENTRY = {"bed": "12", "name": "张三", "category": "critically_ill", "severity": "unstable",
         "summary": "重症肺炎，呼吸机辅助通气", "actions": "02:00 复查血气", "contingency": "SpO2<88% 上调 FiO2"}


async def drive(env: Any, department: str, change: str, site: str | None = None) -> m.ShiftPlan:
    """Run the department's rota driver as its schedule would, and return the plan of the shift it started."""
    driver_id = env.workflow_id("handover", f"schedule:rota-{department}-{change.replace(':', '')}:{next(_runs)}")
    request = m.RotaRequest(org=env.org.id, department=department, change=change, site=site)
    handle = await env.start_workflow("handover.RotaDriver", request, "zh_CN", id=driver_id)
    await env.settle()
    outcome = await finished_result(env, handle)
    assert outcome["started"], outcome
    env.started.append(outcome["started"])  # the kit settles the workflows it knows of
    key = outcome["started"].split(":", 2)[2]
    return m.ShiftPlan.model_validate(await env.handle("handover", key).query("plan"))


def ask(text: str, now: datetime, *, message_id: str, event_id: str | None = None) -> Any:
    """A question to the bot in the department's group chat, sent at ``now``."""
    return message(text, sender=HEAD, chat_id=GROUP, chat_type="group", message_id=message_id,
                   event_id=event_id, create_time=now)


def replies_to(env: Any, message_id: str) -> list[Any]:
    return [msg for msg in env.messages() if msg.reply_to == message_id]


async def test_site_settings_zone_and_locale(scenario_harness: Any) -> None:
    """Behaviour 1: overridable settings, zone and locale take effect per site.

    A Berlin hospital of the group (its own zone, English, its own department and a 30-minute lead) gets a
    plan at 08:00 Berlin time, its form 30 minutes before, cards and toasts in English; the group's ICU
    keeps Shanghai, Chinese and the group's 45 minutes.
    """
    berlin = {"name": "Charité", "timezone": "Europe/Berlin", "locale": "en_US", "settings": {"handover": {
        "lead_minutes": 30, "departments": {"ber-icu": {
            "name": "ICU Berlin", "site": "berlin", "head": HEAD_B, "group_chat": GROUP_B,
            "workday_rota": {"08:00": {"giver": GIVER_B, "receiver": RECEIVER_B}},
            "holiday_rota": {"08:00": {"giver": GIVER_B, "receiver": RECEIVER_B}}}}}}}
    config = org_config(plugins=["handover"], settings={"handover": handover_settings()}, sites={"berlin": berlin})
    async with scenario_harness({"handover": handover}, config=config) as env:
        await env.begin_at(moments.next_time(time(7, 15)), site="berlin")
        plan = await drive(env, "ber-icu", "08:00", site="berlin")
        assert plan.timezone == "Europe/Berlin" and plan.locale == "en_US" and plan.site == "berlin"
        assert plan.change_at.astimezone(BERLIN).time() == time(8, 0) and plan.shift.endswith("T08:00")
        assert plan.change_at - plan.form_at == timedelta(minutes=30)  # the site's lead time
        await at(env, plan.form_at)
        (form,) = env.messages(to=GIVER_B)
        assert form.card is not None and "Fill in before the shift change" in form.text
        # times on the card in the site's zone: the change at 08:00 Berlin, not at Shanghai's hour
        assert plan.change_at.astimezone(BERLIN).strftime("%H:%M") in form.text
        assert plan.change_at.astimezone(ZONE).strftime("%H:%M") not in form.text
        saved = await env.deliver(card(GIVER_B, "handover.entry", plan.key, {"bed": "7", "severity": "stable"}))
        assert saved.toast == "Saved bed 7 (1 patients)"

        group = await drive(env, "icu", "20:00")
        assert group.timezone == "Asia/Shanghai" and group.locale == "zh_CN" and group.site is None
        assert group.change_at.astimezone(ZONE).time() == time(20, 0)
        assert group.change_at - group.form_at == timedelta(minutes=45)


async def test_working_days_choose_the_rota_and_the_ladder_runs_on_days_off(scenario_harness: Any) -> None:
    """Behaviour 2: the ladders run on the organization's working-day calendar.

    The calendar is the site context's (China's holidays plus the organization's own ``holidays`` and
    make-up ``workdays``): it decides which rota covers a shift and marks the handover a holiday one. A
    ward works every day, so a handover's minutes-long ladder escalates on a day off too: a missing
    handover on the hospital's own day off still reaches the head of department 30 minutes after the change.
    """
    day_off = moments.ahead(moments.ordinary_workday(time(7, 0)), WorkCalendar(ZONE)).date()
    make_up = day_off + timedelta(days=(5 - day_off.weekday()) % 7 or 7)  # the next Saturday: worked this time
    config = org_config(plugins=["handover"], settings={"handover": handover_settings()},
                        extra={"holidays": [day_off.isoformat()], "workdays": [make_up.isoformat()]})
    async with scenario_harness({"handover": handover}, config=config) as env:
        await env.begin_at(moments.at(datetime.combine(day_off, time(7, 0), tzinfo=ZONE)))
        plan = await drive(env, "icu", "08:00")
        assert plan.change_at.astimezone(ZONE).date() == day_off
        assert (plan.giver, plan.receiver, plan.holiday, plan.rota_source) == (NIGHT, HOLIDAY, True, "holiday_rota")
        await at(env, plan.change_at + timedelta(minutes=31))
        state = await state_of(env, plan.key)
        assert state.escalations == ["missing-1"]
        assert len(env.messages(to=HEAD)) == 1

        await env.begin_at(moments.at(datetime.combine(make_up, time(7, 0), tzinfo=ZONE)))
        worked = await drive(env, "icu", "08:00")
        assert worked.change_at.astimezone(ZONE).date() == make_up and make_up.weekday() == 5
        assert (worked.giver, worked.receiver, worked.holiday, worked.rota_source) == \
            (NIGHT, DAY, False, "workday_rota")


async def test_a_press_is_answered_while_the_open_api_is_slow(scenario_harness: Any) -> None:
    """Behaviour 3: a card press is answered at once while the Open API is slow, and nothing is lost.

    The submit press, over real HTTP, gets the plugin's own toast while every Open API call takes 4 s;
    once the API recovers, the records, the receiver's card and the group's status go out exactly once.
    """
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        await env.begin_at(moments.next_time(time(19, 5)))
        plan = await drive(env, "icu", "20:00")
        await at(env, plan.form_at)
        await env.deliver(card(plan.giver, "handover.entry", plan.key, ENTRY))
        slow = env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        event = standin_events.card_action_event({"op": "handover.submit", "key": plan.key}, plan.giver,
                                                 "om_form", "oc_p2p", form_value={})
        delivery = asyncio.create_task(env.push(standin_events.EVENT_CARD_ACTION, event))
        while not env.standin.deliveries or not env.standin.deliveries[-1].attempts:
            await asyncio.sleep(0.05)  # the press's answer (the push itself waits for the workflows)
        answer = env.standin.deliveries[-1]
        assert answer.status == 200, answer.attempts
        assert (answer.response_json or {}).get("toast", {}).get("content") == "交班已提交给接班医生"
        while not slow.hits:
            await asyncio.sleep(0.05)  # the I/O the press decided on is under way, on the slow API
        env.standin.clear_faults()
        await delivery
        await env.settle()

        assert len(env.messages(to=plan.receiver)) == 1 and "重症肺炎" in env.messages(to=plan.receiver)[0].text
        assert len(env.messages(chat_id=GROUP)) == 1
        records = table(env, RECORDS)
        assert len(records) == 1 and records[0]["状态"] == "submitted"
        assert [p["床号"] for p in table(env, PATIENTS)] == ["12"]
        assert (await state_of(env, plan.key)).status == "submitted"


async def test_status_is_answered_in_the_askers_locale(scenario_harness: Any) -> None:
    """Behaviour 4: "@bot icu 状态" / "@bot icu status" answer with the current state in the asker's locale.

    The reply goes to the group chat, so it carries counts and statuses, never a patient's details.
    """
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        await env.begin_at(moments.next_time(time(19, 5)))
        plan = await drive(env, "icu", "20:00")
        await at(env, plan.form_at)
        await env.deliver(card(plan.giver, "handover.submit", plan.key, ENTRY))

        await env.deliver(ask("icu 状态", await env.now(), message_id="om_zh"))
        (zh,) = replies_to(env, "om_zh")
        assert "ICU" in zh.text and "已提交，待接班确认" in zh.text and "患者 1 位，危重 1 位" in zh.text
        await env.deliver(ask("icu status?", await env.now(), message_id="om_en"))
        (en,) = replies_to(env, "om_en")
        assert "submitted, awaiting confirmation" in en.text and "1 patients, 1 critical" in en.text
        assert not foreign_text(en.text, {"department": "ICU"})
        for reply in (zh, en):
            for detail in ("张三", "重症肺炎", "复查血气", "12 床", "Bed 12", "bed 12"):
                assert detail not in reply.text, (detail, reply.text)

        await env.deliver(ask(f"{plan.key} 状态", await env.now(), message_id="om_key"))  # a shift's own key
        assert "已提交" in replies_to(env, "om_key")[0].text
        await env.deliver(ask("icu:2000-01-03T08:00 status", await env.now(), message_id="om_old"))
        (missing,) = replies_to(env, "om_old")
        assert "has not started" in missing.text and "2000-01-03 08:00" in missing.text
        await env.deliver(ask("交班 状态", await env.now(), message_id="om_none"))
        # no department named: not a status question (the engine's own "not understood" answers it)
        assert all("交班：" not in reply.text for reply in replies_to(env, "om_none"))


async def test_a_message_pushed_again_is_answered_once(scenario_harness: Any) -> None:
    """Behaviour 5: a message redelivered under a new event id (same message_id) is handled once."""
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        await env.begin_at(moments.next_time(time(19, 5)))
        plan = await drive(env, "icu", "20:00")
        await at(env, plan.form_at)
        now = await env.now()
        await env.deliver(ask("icu 状态", now, message_id="om_again", event_id="ev-first"))
        await env.deliver(ask("icu 状态", now, message_id="om_again", event_id="ev-second"))
        assert len(replies_to(env, "om_again")) == 1
        # a card press redelivered under the same event id is applied once and answered the same
        first = await env.deliver(card(plan.giver, "handover.entry", plan.key, {"bed": "3"}, event_id="ev-card"))
        again = await env.deliver(card(plan.giver, "handover.entry", plan.key, {"bed": "4"}, event_id="ev-card"))
        assert first.toast == again.toast == "已保存 3 床（共 1 位患者）"
        entries = await env.handle("handover", plan.key).query("entries")
        assert [entry["bed"] for entry in entries] == ["3"]


async def test_users_see_no_internal_reason_or_other_language(scenario_harness: Any) -> None:
    """Behaviour 6: users see no internal reason or untranslated text.

    A refused form answers with a translated toast and keeps the reason in the shift's log; every toast
    exists in both locales, English ones without Chinese and Chinese ones without English words; every
    template renders its sample in English without Chinese that is not data.
    """
    assert set(TOASTS["zh_CN"]) == set(TOASTS["en_US"])
    cjk = re.compile(r"[\u4e00-\u9fff]")
    for key, text in TOASTS["en_US"].items():
        assert not cjk.search(text), key
    for key, text in TOASTS["zh_CN"].items():
        assert not re.search(r"[A-Za-z]{3,}", re.sub(r"\{\w+\}", "", text)), key
    templates = TemplateEngine({"handover": Path(handover.__file__).parent / "templates"})
    for name in templates.names():
        sample = templates.sample_context(name)
        assert not foreign_text(templates.render(name, sample, locale="en_US"), sample), name

    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        await env.begin_at(moments.next_time(time(19, 5)))
        plan = await drive(env, "icu", "20:00")
        await at(env, plan.form_at)
        refused = await env.deliver(card(plan.giver, "handover.entry", plan.key, {"bed": "5", "category": "vip"}))
        assert refused.toast == "未保存：请从列表中选择患者性质"
        no_bed = await env.deliver(card(plan.giver, "handover.entry", plan.key, {"summary": "x"}))
        assert no_bed.toast == "未保存：请填写床号"
        refusals = [item.detail for item in (await state_of(env, plan.key)).log if item.what == "entry refused"]
        assert refusals == ["unknown category 'vip'", "bed is required"]  # the reasons: in the log only


async def test_the_business_clock_drives_the_ladder(scenario_harness: Any) -> None:
    """Behaviour 7: the business clock (the site context's ``BusinessClock``) drives the shift's timers.

    At 60 business seconds per real one, a missing handover's form, reminder and escalation come at their
    business moments while the real clock is still hours before the shift change.
    """
    # the business clock starts at 09:00: the 20:00 shift's form, reminder and escalation all lie ahead (from the
    # wall clock's own time of day, between the form's time and 20:00 the form would already be due)
    origin = moments.ahead(moments.next_time(time(9, 0)), WorkCalendar(ZONE))
    scale = 60
    config = org_config(plugins=["handover"], settings={"handover": handover_settings()},
                        extra={"clock": {"scale": scale, "origin": origin.isoformat()}})
    async with scenario_harness({"handover": handover}, config=config) as env:
        await env.begin_at(moments.at(origin))
        plan = await drive(env, "icu", "20:00")
        assert plan.clock.scale == scale
        business_now = origin + (await env.now() - origin) * scale
        assert plan.form_at > business_now and plan.change_at - business_now <= timedelta(hours=24, minutes=1)
        real = (plan.change_at + timedelta(minutes=31) - business_now) / scale
        await env.advance(seconds=real.total_seconds() + 5)
        state = await state_of(env, plan.key)
        assert state.escalations == ["missing-1"]
        assert await env.now() < plan.change_at  # real time is hours before the (business) shift change
        moments_of = {item.what: item.at for item in state.log}
        assert plan.form_at <= moments_of["form"] < plan.form_at + timedelta(minutes=10)
        assert plan.change_at + timedelta(minutes=30) <= moments_of["escalate"] < \
            plan.change_at + timedelta(minutes=40)
        assert [bool(x.card) for x in env.messages(to=plan.giver)] == [True, False]  # the form, the reminder
        assert len(env.messages(to=HEAD)) == 1


def test_current_change_is_the_one_whose_form_is_out() -> None:
    """The department's handover under way, for status questions: the next change once its form is out."""
    at_19 = datetime(2026, 11, 23, 19, 0, tzinfo=ZONE)
    assert rules.current_change(at_19, ["08:00", "20:00"], 45, ZONE) == datetime(2026, 11, 23, 8, 0, tzinfo=ZONE)
    at_1920 = at_19 + timedelta(minutes=20)
    assert rules.current_change(at_1920, ["08:00", "20:00"], 45, ZONE) == \
        datetime(2026, 11, 23, 20, 0, tzinfo=ZONE)
    assert rules.current_change(datetime(2026, 11, 23, 3, 0, tzinfo=ZONE), ["08:00", "20:00"], 45, ZONE) == \
        datetime(2026, 11, 22, 20, 0, tzinfo=ZONE)
