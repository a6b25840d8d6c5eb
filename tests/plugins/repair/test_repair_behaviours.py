"""The seven behaviours every plugin has, for repair (one test each; the docstring names which)."""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from repair_helpers import (
    FAC_LEAD,
    FAC_TECH,
    IT_TECH,
    REPORTER,
    SEED,
    SETTINGS,
    press,
    replies_to,
    report,
    rows,
    state,
    ticket_of,
)

import plugins.repair as repair
from engine.feishu.standin.faults import Fault
from engine.sdk import WorkCalendar
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.repair import rules

SHANGHAI, URUMQI = ZoneInfo("Asia/Shanghai"), ZoneInfo("Asia/Urumqi")
CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e]")


def near(actual: datetime | None, expected: datetime) -> bool:
    """``actual`` at ``expected`` or up to a minute after (the SLA starts when the card went out)."""
    return actual is not None and timedelta(0) <= actual - expected < timedelta(minutes=1)


async def test_1_a_sites_settings_zone_and_locale_take_effect(scenario_harness: Any) -> None:
    """Behaviour 1: overridable settings, zone and locale take effect per site."""
    config = org_config(plugins=["repair"], settings={"repair": SETTINGS}, sites={
        "xj": {"name": "新疆分院", "timezone": "Asia/Urumqi", "locale": "en_US",
               "settings": {"repair": {"sla": {"accept_minutes_normal": 60}}}}})
    async with scenario_harness({"repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday(time(17, 20)))  # 17:20 Shanghai = 15:20 Urumqi
        await env.deliver(report("报修 新疆分院 2楼走廊灯不亮", message_id="om_xj", at=start))
        await env.deliver(report("报修 2楼走廊灯不亮", message_id="om_sh", at=start))
        xj, sh = await state(env, ticket_of(env, "om_xj")), await state(env, ticket_of(env, "om_sh"))
        assert xj.site == "xj" and sh.site == ""
        assert xj.accept_due is not None and sh.accept_due is not None
        # the site's 60 minutes within its own working hours (until 17:30 Urumqi): 16:20 there, the same day
        assert near(xj.accept_due, datetime.combine(start.date(), time(16, 20), tzinfo=URUMQI))
        # the group's 30 minutes: 10 before 17:30 Shanghai, 20 on the next working day from 08:00
        next_day = env.calendar().next_workday(start.date(), include_today=False)
        assert near(sh.accept_due, datetime.combine(next_day, time(8, 20), tzinfo=SHANGHAI))
        cards = env.messages(to=FAC_TECH)
        assert len(cards) == 2
        english = [c for c in cards if xj.ticket_id in str(c.card)]
        assert english and "New repair ticket" in str(english[0].card)  # the site's locale for its technician
        assert "新报修工单" in str(next(c for c in cards if sh.ticket_id in str(c.card)).card)


async def test_2_the_accept_ladder_waits_for_the_next_working_day(scenario_harness: Any) -> None:
    """Behaviour 2: every ladder (the accept SLA's escalation) runs on the site's working days."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.eve_of_days_off(time(17, 25), min_days=2))
        await env.deliver(report("报修 库房门锁坏了", message_id="om_eve", at=start))
        ticket = await state(env, ticket_of(env, "om_eve"))
        back = env.calendar().next_workday(start.date(), include_today=False)
        assert back - start.date() >= timedelta(days=3)  # days off in between
        due = datetime.combine(back, time(8, 25), tzinfo=SHANGHAI)  # 5 minutes on the eve, 25 after the days off
        assert near(ticket.accept_due, due)
        await env.advance_to(due - timedelta(minutes=1))
        assert env.messages(to=FAC_LEAD) == []  # nothing on the days off
        await env.advance_to(due + timedelta(minutes=2))
        assert len(env.messages(to=FAC_LEAD)) == 1


async def test_3_a_press_is_answered_at_once_while_feishu_is_slow(scenario_harness: Any) -> None:
    """Behaviour 3: a card press is answered within 1 s even while the Open API is slow, nothing lost."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 护士站电脑开不了机", message_id="om_slow", at=start))
        number = ticket_of(env, "om_slow")
        told = len(env.messages(to=REPORTER))
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        event = {"operator": {"open_id": IT_TECH}, "token": "c-test",
                 "action": {"tag": "button", "value": {"scenario": "repair", "op": "accept", "ticket": number}},
                 "context": {"open_message_id": "om_card", "open_chat_id": "oc_tech"}}
        delivery = await env.push("card.action.trigger", event, event_id="ev-slow-accept")
        answer = json.loads(delivery.attempts[-1].body)
        assert answer["toast"]["content"] == f"已接单：{number}"  # the plugin's own toast, not a busy answer
        env.standin.clear_faults()
        await env.settle()
        assert (await state(env, number)).status == "accepted"
        progress = env.messages(to=REPORTER)[told:]
        assert len(progress) == 1 and "已接单" in progress[0].text
        (row,) = rows(env)
        assert row["状态"] == "已接单"
        assert [h["动作"] for h in rows(env, "tblTicketHistory")].count("accept") == 1


async def test_4_status_is_answered_in_the_askers_language(scenario_harness: Any) -> None:
    """Behaviour 4: "@bot <ticket> 状态" / "@bot <ticket> status" answers with the state in the asker's locale."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 收费处打印机卡纸", message_id="om_st", at=start))
        number = ticket_of(env, "om_st")
        await env.deliver(press("accept", number, IT_TECH))
        await env.deliver(report(f"{number} 状态", message_id="om_q_zh"))
        (zh,) = replies_to(env, "om_q_zh")
        assert zh.text.startswith(f"工单 {number}：已接单") and "维修人：王工" in zh.text
        await env.deliver(report(f"{number.lower()} status", message_id="om_q_en"))
        (en,) = replies_to(env, "om_q_en")
        assert en.text.startswith(f"Ticket {number}: accepted") and "Technician: 王工" in en.text
        assert not CJK.search(en.text.replace("王工", "").replace("收费处打印机卡纸", ""))  # only the data is Chinese
        await env.deliver(report("BX-261130-ZZZZZ status", message_id="om_q_none"))
        (missing,) = replies_to(env, "om_q_none")
        assert missing.text.startswith("No ticket BX-261130-ZZZZZ found")


async def test_5_a_report_pushed_again_under_a_new_event_id_opens_one_ticket(scenario_harness: Any) -> None:
    """Behaviour 5: a message redelivered under a new event id (same message_id) is handled once."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 5楼空调不制冷", message_id="om_twice", event_id="ev-1", at=start))
        await env.deliver(report("报修 5楼空调不制冷", message_id="om_twice", event_id="ev-2", at=start))
        assert len(replies_to(env, "om_twice")) == 1
        assert len(env.messages(to=FAC_TECH)) == 1 and len(rows(env)) == 1
        # a press pushed twice is applied once too
        number = ticket_of(env, "om_twice")
        await env.deliver(press("accept", number, FAC_TECH, event_id="ev-press"))
        again = await env.deliver(press("accept", number, FAC_TECH, event_id="ev-press"))
        assert again.toast in ("已处理", f"已接单：{number}")
        assert [h["动作"] for h in rows(env, "tblTicketHistory")].count("accept") == 1


async def test_6_users_see_their_language_and_no_internal_reason(scenario_harness: Any) -> None:
    """Behaviour 6: users see no internal reason or untranslated text (reasons go to the history rows)."""
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("repair the printer in room 12 is down", message_id="om_en", at=start))
        number = ticket_of(env, "om_en")
        (reply,) = replies_to(env, "om_en")
        assert reply.text.startswith(f"Your repair request is in: ticket {number}")
        for op in ("accept", "done"):
            await env.deliver(press(op, number, IT_TECH))
        refused = await env.deliver(press("rate", number, REPORTER, score=9))
        assert refused.toast == "Choose 1 to 5 stars"
        wrong = await env.deliver(press("accept", number, REPORTER))
        assert wrong.toast == "This is not your ticket"
        seen_by_reporter = [m.text or json.dumps(m.card, ensure_ascii=False) for m in env.messages(to=REPORTER)]
        seen_by_reporter.append(reply.text)
        for text in seen_by_reporter:
            assert not CJK.search(text.replace("王工", "")), text  # the technician's name is data
            assert "keyword" not in text and "urgent location" not in text
        notes = " ".join(h["说明"] for h in rows(env, "tblTicketHistory"))
        assert "keyword 'printer'" in notes and "urgent keyword 'down'" in notes  # the reason, for the audit
        assert all(not CJK.search(rules.text(k, "en_US", ticket="X", status="s")) for k in rules.TEXTS)


async def test_7_the_business_clock_drives_the_accept_ladder(scenario_harness: Any) -> None:
    """Behaviour 7: the business clock (``BusinessClock`` of the site context) drives the ticket's timers."""
    # the business clock starts at 10:00 on a working day, inside working hours with the technician on duty,
    # not at the wall clock's time of day
    origin = moments.ahead(moments.workday(time(10, 0)), WorkCalendar(SHANGHAI))
    config = org_config(plugins=["repair"], settings={"repair": SETTINGS},
                        extra={"clock": {"scale": 60, "origin": origin.isoformat()}})  # a business minute a second
    async with scenario_harness({"repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        await env.begin_at(moments.at(origin))
        await env.deliver(report("报修 ICU 监护仪停机", message_id="om_clock", at=origin))
        ticket = await state(env, ticket_of(env, "om_clock"))
        assert (ticket.category, ticket.priority) == ("medical", "urgent")
        assert ticket.accept_due is not None and ticket.notified_at is not None
        assert ticket.accept_due - ticket.notified_at < timedelta(minutes=10, seconds=30)
        await env.advance(seconds=15)  # 15 real seconds: 15 business minutes, past the urgent 10
        assert len(env.messages(to="ou_rp_lead_med")) == 1
        escalated = next(h for h in (await state(env, ticket.ticket_id)).history if h.action == "escalated")
        # at the business moment the SLA ran out (a real second of task latency is a business minute)
        assert timedelta(0) <= escalated.at - ticket.accept_due < timedelta(minutes=3)
