"""The seven behaviours every plugin has, for recruiting: one test each (the docstring names which)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from recruiting_helpers import (
    GROUP_ROLES,
    SITES,
    add_row,
    advance_to_local,
    config,
    press,
    record_event,
    rows,
    seed,
    state,
    track,
)

import plugins.recruiting as recruiting
from engine.feishu.standin.faults import Fault
from engine.sdk import BusinessClock, WorkCalendar
from engine.testing import moments
from engine.testing.contract import check_plugin
from engine.testing.events import message
from engine.testing.kit import org_config
from plugins.recruiting import rules, texts
from plugins.recruiting.config import RecruitingSettings
from plugins.recruiting.models import ApplicationState

PLUGINS = {"recruiting": recruiting}
SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")
CJK = re.compile(r"[\u4e00-\u9fff]")
CONTACTS = ("13800000001", "138-0000-0001", "li.lei@example.com")  # recAppA01's phone and email in the seed


def berlin_sites() -> dict[str, Any]:
    """Hospital B in Berlin, in English, with its own applied-stage SLA of one working day."""
    sites = {k: dict(v) for k, v in SITES.items()}
    sites["hosp_b"] = {**SITES["hosp_b"], "timezone": "Europe/Berlin", "locale": "en_US",
                       "settings": {"recruiting": {**SITES["hosp_b"]["settings"]["recruiting"],
                                                   "sla_workdays": {"applied": 1}}}}
    return sites


def berlin_config() -> dict[str, Any]:
    return org_config(plugins=["recruiting"], settings={"recruiting": {"roles": dict(GROUP_ROLES)}},
                      sites=berlin_sites())


def replies_to(env: Any, message_id: str) -> list[Any]:
    return [m for m in env.messages() if m.reply_to == message_id]


def card_event(operator: str, value: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A ``card.action.trigger`` body as Feishu posts it."""
    return {"operator": {"open_id": operator, "tenant_key": "t_standin"}, "token": f"c-{message_id}",
            "action": {"value": {"scenario": "recruiting", **value}, "tag": "button"}, "host": "im_message",
            "context": {"open_message_id": message_id, "open_chat_id": "oc_hr"}}


async def test_a_sites_settings_zone_and_locale_apply_to_its_applications(scenario_harness: Any) -> None:
    """Behaviour 1: overridable settings, zone and locale take effect per site."""
    async with scenario_harness(PLUGINS, config=berlin_config()) as env:
        seed(env)
        start = await env.begin_at(moments.ordinary_workday(time(10, 0)))  # 10:00 Shanghai, 03:00 Berlin
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))

        shanghai, berlin = env.calendar("hosp_a"), env.calendar("hosp_b")
        a, b = await state(env, "app:recAppA01"), await state(env, "app:recAppB03")
        # hospital A: the group's two working days, 18:00 in Shanghai; B: its own one day, 18:00 in Berlin
        day_a = shanghai.add_workdays(start.astimezone(SHANGHAI).date(), 2)
        day_b = berlin.add_workdays(start.astimezone(BERLIN).date(), 1)
        assert a.sla_due == datetime.combine(day_a, time(18, 0), tzinfo=SHANGHAI)
        assert b.sla_due == datetime.combine(day_b, time(18, 0), tzinfo=BERLIN)

        # B's recruiter reads English (the duplicate notice), A's press is answered in Chinese
        notice = env.messages(to="ou_rc_b")[-1].text
        assert "same person" in notice and "同一人" not in notice
        moved_b = await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="screened"))
        moved_a = await env.deliver(press("ou_rc_a", "move", app="recAppA01", to="screened"))
        assert moved_b.toast == "李雷: screened"
        assert moved_a.toast == "李雷：已筛选"


async def test_the_sla_ladder_waits_over_days_off(scenario_harness: Any) -> None:
    """Behaviour 2: every ladder (SLA nudge and escalations, checklist and risk notices) runs on working days."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        cal = env.calendar()
        eve = await env.begin_at(moments.eve_of_days_off(time(10, 0), min_days=2))
        await env.deliver(record_event("tblApplications", "recAppA01"))
        due_day = cal.add_workdays(eve.date(), 2)
        day = eve.date() + timedelta(days=1)
        while day < due_day:  # every day in between: nothing at 09:01
            await advance_to_local(env, day, time(9, 1))
            assert not env.messages(to="ou_rc_a") and not env.messages(to="ou_rc_mgr")
            day += timedelta(days=1)
        await advance_to_local(env, due_day, time(9, 1))
        assert len(env.messages(to="ou_rc_a")) == 1
        escalate_day = cal.add_workdays(due_day, 1)
        await advance_to_local(env, escalate_day, time(9, 1))
        assert len(env.messages(to="ou_rc_mgr")) == 1
        history = (await state(env, "app:recAppA01")).history
        for entry in history:
            if entry.action in ("nudge", "escalate"):
                assert cal.is_workday(entry.at.astimezone(SHANGHAI).date()), entry

    # the onboarding ladders: every checklist reminder and risk warning falls on a working day
    settings = RecruitingSettings()
    calendar = WorkCalendar("Asia/Shanghai")
    start = eve.date() + timedelta(days=1)  # a day off: due dates must still move onto working days
    entries = rules.checklist(settings.onboarding_checklist, cal.add_workdays(start, 0), settings, calendar)
    plan = rules.checklist_notices("onb", entries, settings, calendar)
    plan += rules.risk_notices(rules.probation_end(start, 3), rules.contract_end(start, 36), settings, calendar)
    assert plan and all(calendar.is_workday(n.at.astimezone(SHANGHAI).date()) for n in plan)


async def test_a_press_is_answered_at_once_while_the_open_api_is_slow(scenario_harness: Any) -> None:
    """Behaviour 3: a card press is answered within 1 s even while the Open API is slow; nothing is lost."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(press("ou_hr_a", "move", app="recAppA01", to="accepted"))
        track(env, "onb:recAppA01")
        await env.settle()
        checklists_before = [m for m in env.messages(to="ou_hr_a") if "离职清单" in m.text]
        assert not checklists_before

        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        pushed = asyncio.create_task(env.push("card.action.trigger", card_event(
            "ou_hr_a", {"op": "leave", "app": "recAppA01"}, "om_checklist")))
        while not (env.standin.deliveries and env.standin.deliveries[-1].attempts):
            await asyncio.sleep(0.05)  # the ingress's answer to the press (the writes are still slow)
        answer = env.standin.deliveries[-1]
        env.standin.clear_faults()
        await pushed  # settles: the deferred write and card go out now
        await env.settle()

        assert answer.status == 200
        assert answer.response_json["toast"]["content"] == "李雷：已开始离职流程"  # ours, not "busy"
        assert len([m for m in env.messages(to="ou_hr_a") if "离职清单" in m.text]) == 1
        person = next(r for r in rows(env, "tblOnboarding").values() if r["投递编号"] == "recAppA01")
        assert person["状态"] == "offboarding" and person["离职日期"]


async def test_status_is_answered_in_the_askers_language_without_contacts(scenario_harness: Any) -> None:
    """Behaviour 4: "@bot <key> 状态" / "<key> status" answers the current state in the asker's locale."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(record_event("tblRequisitions", "recReqA002"))

        for text, message_id in (("recAppA01 状态", "om_zh"), ("recAppA01 status", "om_en"),
                                 ("recReqA002 状态", "om_req"), ("recNOPE404 status", "om_none")):
            await env.deliver(message(text, chat_type="group", message_id=message_id))
            track(env, f"status:{message_id}")
            await env.settle()
        zh, en = replies_to(env, "om_zh")[0].text, replies_to(env, "om_en")[0].text
        assert "李雷" in zh and "当前阶段：已投递" in zh
        assert "Stage: applied" in en and not CJK.search(en.replace("李雷", "").replace("A院", ""))
        requisition = replies_to(env, "om_req")[0].text
        assert "审批中" in requisition and "等待审批：院长" in requisition
        assert replies_to(env, "om_none")[0].text.startswith("No requisition or application recNOPE404")
        for reply in (zh, en, requisition):  # a group may read it: no phone number, no email
            assert not any(contact in reply for contact in CONTACTS)
        # a bare key in a group is no question to recruiting (the engine's own "not understood" may answer)
        await env.deliver(message("recAppA01", chat_type="group", message_id="om_bare"))
        assert env.workflow_id("recruiting", "status:om_bare") not in env.router.touched


async def test_a_message_pushed_again_under_a_new_event_id_is_answered_once(scenario_harness: Any) -> None:
    """Behaviour 5: a message redelivered under a new event id (same message_id) is handled once."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        for event_id in ("ev-status-1", "ev-status-2"):
            await env.deliver(message("recAppA01 状态", chat_type="group", message_id="om_twice", event_id=event_id))
            track(env, "status:om_twice")
            await env.settle()
        assert len(replies_to(env, "om_twice")) == 1


async def test_people_read_their_own_language_and_no_internal_reason(scenario_harness: Any) -> None:
    """Behaviour 6: users see no internal reason or untranslated text (toasts and templates in both locales)."""
    # every toast exists in both languages; the English ones have no Chinese, the Chinese ones no English words
    assert texts.locales() == ["zh_CN", "en_US"]  # the same keys in both: Texts checked it at import
    values = {"req": "R1", "name": "N", "role": "X", "stage": "S", "item": "I"}
    for key in texts.text_keys():
        assert not CJK.search(texts.say("en_US", key, **values)), key
        assert not re.search(r"[A-Za-z]{2,}", texts.say("zh_CN", key, **values)), key
    assert check_plugin(recruiting) == []  # templates render in en_US without Chinese that is not data

    async with scenario_harness(PLUGINS, config=berlin_config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
        await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="interview"))
        back_b = await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="applied"))
        await env.deliver(press("ou_rc_a", "move", app="recAppA01", to="interview"))
        back_a = await env.deliver(press("ou_rc_a", "move", app="recAppA01", to="applied"))
        assert back_b.toast == "李雷 cannot go back to stage applied"
        assert back_a.toast == "李雷 不能退回「已投递」阶段"
        for toast in (back_b.toast, back_a.toast):  # the rules' reason names both stages; people see neither name
            assert "interview" not in toast and "from" not in toast

        # the reason stays where it belongs: a Bitable edit that cannot apply is recorded with it
        add_row(env, "tblApplications", "recAppB03", {"阶段": "已投递"})
        await env.deliver(record_event("tblApplications", "recAppB03", action="record_edited", operator="ou_rc_b"))
        history = (await state(env, "app:recAppB03")).history
        assert any(t.action == "ignored_edit" and "cannot go back from interview to applied" in t.detail
                   for t in history)


async def test_the_business_clock_drives_the_sla_timers(scenario_harness: Any) -> None:
    """Behaviour 7: the business clock (the site context's ``BusinessClock``) drives the SLA timers."""
    scale = 1440  # a business day per real minute
    # the origin must be fixed in the config, before the server's clock starts: 10:00 on an ordinary working day,
    # not the wall clock's time of day, so the stage begins that morning and the nudge at 09:00 on its SLA's due
    # day (2 working days on, no holiday between) and the escalation after it are known from the origin
    origin = moments.ahead(moments.ordinary_workday(time(10, 0)), WorkCalendar(SHANGHAI))
    clock = BusinessClock(scale=scale, origin=origin)
    document = org_config(plugins=["recruiting"], settings={"recruiting": {"roles": dict(GROUP_ROLES)}},
                          sites=SITES, extra={"clock": {"scale": scale, "origin": origin.isoformat()}})
    async with scenario_harness(PLUGINS, config=document) as env:
        seed(env)
        cal = env.calendar()
        await env.begin_at(moments.at(origin))
        before = await env.now()
        await env.deliver(record_event("tblApplications", "recAppA01"))
        after = await env.now()
        st = ApplicationState.model_validate(await env.query("recruiting", "app:recAppA01"))
        # the stage began at the business time of the delivery, not at the workflow clock's
        assert clock.now(before) <= st.stage_at <= clock.now(after) and st.stage_at > after
        due_day = cal.add_workdays(origin.date(), 2)
        assert st.stage_at.astimezone(SHANGHAI).date() == origin.date()
        assert st.sla_due == datetime.combine(due_day, time(18, 0), tzinfo=SHANGHAI)

        nudge = datetime.combine(due_day, time(9, 0), tzinfo=SHANGHAI)
        business_now = clock.now(await env.now())
        await env.advance(seconds=(nudge - business_now).total_seconds() / scale + 3)  # 3 s: 72 business minutes
        assert len(env.messages(to="ou_rc_a")) == 1 and not env.messages(to="ou_rc_mgr")
        sent = next(t for t in (await state(env, "app:recAppA01")).history if t.action == "nudge")
        # recorded at business 09:00 on the due day (a tenth of a real second is 2.4 business minutes)
        assert timedelta(0) <= sent.at - nudge < timedelta(minutes=75)
