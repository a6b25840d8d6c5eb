"""The seven behaviours every plugin has, for documents (one test each; the docstring names which)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from documents_helpers import (
    A_RESP,
    B_HEAD,
    B_RESP,
    C_RESP,
    HQ,
    SITES,
    a_round,
    card_text,
    config,
    file_message,
    people,
    press,
    question,
    rows,
    send,
    state,
)

import plugins.documents as documents
from engine.feishu.standin.faults import Fault
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.documents import rules

URUMQI = ZoneInfo("Asia/Urumqi")
CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e]")


def next_weekday(after: date, weekday: int) -> date:
    """The first ``weekday`` (0 = Monday) after ``after``."""
    return after + timedelta(days=(weekday - after.weekday() - 1) % 7 + 1)


async def test_1_a_sites_people_ladder_zone_and_locale_take_effect(scenario_harness: Any) -> None:
    """Behaviour 1: overridable settings (people, ladder), zone and locale take effect per site."""
    sites = {**SITES, "xj": {"name": "新疆分院", "timezone": "Asia/Urumqi", "locale": "en_US", "settings": {
        "documents": {**people("ou_doc_xj", "ou_doc_xj_head")["documents"],
                      "ladder": {"before_days": [2], "on_due": False, "after": [], "send_at": "09:00"}}}}}
    async with scenario_harness({"documents": documents}, config=org_config(
            plugins=["documents"], settings={"documents": {"hq_open_ids": [HQ]}}, sites=sites)) as env:
        start = await env.begin_at(moments.ordinary_workday())
        calendar = env.calendar("xj")
        deadline = calendar.next_workday(start.date() + timedelta(days=5))
        await send(env, a_round("DOC-XJ-1", deadline).model_copy(update={"sites": ["xj", "仁诺A院"]}))
        (xj_card,) = env.messages(to="ou_doc_xj")
        assert "From headquarters" in card_text(xj_card)  # the site's locale
        assert "总部下发" in card_text(env.messages(to=A_RESP)[0]) and env.messages(to=B_RESP) == []  # only those named
        reminder_day = calendar.previous_workday(deadline - timedelta(days=2))
        nine_there = datetime.combine(reminder_day, time(9, 0), tzinfo=URUMQI)  # 11:00 in Shanghai
        await env.advance_to(nine_there - timedelta(minutes=2))
        assert len(env.messages(to="ou_doc_xj")) == 1
        await env.advance_to(nine_there + timedelta(minutes=2))
        assert "Reminder" in card_text(env.messages(to="ou_doc_xj")[-1])  # its own ladder, at 09:00 in its zone
        await env.advance_to(datetime.combine(deadline + timedelta(days=3), time(12, 0), tzinfo=URUMQI))
        assert len(env.messages(to="ou_doc_xj")) == 2 and env.messages(to="ou_doc_xj_head") == []  # no after rungs


async def test_2_reminders_and_escalations_keep_to_working_days(scenario_harness: Any) -> None:
    """Behaviour 2: the ladder runs on the site's working days: a Saturday deadline is announced on Friday
    and is late on Monday, nothing goes out over the weekend."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday(weekday=0))  # a Monday far from holidays
        saturday = next_weekday(start.date(), 5)
        await send(env, a_round("DOC-WEEKEND", saturday).model_copy(update={"sites": ["hosp_b"]}))
        shanghai = env.calendar().zone
        friday_nine = datetime.combine(saturday - timedelta(days=1), time(9, 0), tzinfo=shanghai)
        await env.advance_to(friday_nine + timedelta(minutes=2))
        assert "今日截止" in card_text(env.messages(to=B_RESP)[-1])  # the deadline's notice, on the last workday
        told = len(env.messages(to=B_RESP))
        monday_nine = datetime.combine(saturday + timedelta(days=2), time(9, 0), tzinfo=shanghai)
        await env.advance_to(monday_nine - timedelta(minutes=2))
        assert len(env.messages(to=B_RESP)) == told and len(env.messages(to=HQ)) == 1  # a quiet weekend
        await env.advance_to(monday_nine + timedelta(minutes=2))
        assert "已逾期" in card_text(env.messages(to=B_RESP)[-1])
        assert "已过截止日期" in card_text(env.messages(to=HQ)[-1])
        assert len(env.messages(to=B_HEAD)) == 1  # the head's rung, two days after Saturday, is Monday too


async def test_3_a_press_is_answered_at_once_while_feishu_is_slow(scenario_harness: Any) -> None:
    """Behaviour 3: a card press is answered within the callback's time even while the Open API is slow."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        await send(env, a_round("DOC-SLOW", start.date() + timedelta(days=7)))
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        event = {"operator": {"open_id": A_RESP}, "token": "c-test",
                 "action": {"tag": "button", "value": {"scenario": "documents", "op": "acknowledge",
                                                       "round": "DOC-SLOW", "site": "hosp_a"}},
                 "context": {"open_message_id": "om_card", "open_chat_id": "oc_a"}}
        delivery = await env.push("card.action.trigger", event, event_id="ev-slow-ack")
        answer = json.loads(delivery.attempts[-1].body)
        assert answer["toast"]["content"] == "已确认阅知：院感防控新规"  # the plugin's own toast
        env.standin.clear_faults()
        await env.settle()
        assert (await state(env, "DOC-SLOW")).hospital("hosp_a").status == "acknowledged"  # type: ignore[union-attr]
        assert rows(env)["DOC-SLOW/hosp_a"]["状态"] == "已阅知"
        assert "1 家" in card_text(env.messages(to=HQ)[0])


async def test_4_status_is_answered_in_the_askers_language(scenario_harness: Any) -> None:
    """Behaviour 4: "@bot <round> 状态" / "@bot <round> status" answers in the asker's locale."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        await send(env, a_round("DOC-ST-1", start.date() + timedelta(days=9)))
        await env.deliver(press("acknowledge", "DOC-ST-1", "hosp_a", A_RESP))
        await env.deliver(question("DOC-ST-1 状态", message_id="om_q_zh"))
        (zh,) = [m for m in env.messages() if m.reply_to == "om_q_zh"]
        assert zh.text.startswith("轮次 DOC-ST-1：院感防控新规") and "3 家医院已回复 1 家" in zh.text
        assert "待回复：仁诺B院、Rennuo C" in zh.text
        await env.deliver(question("doc-st-1 status", message_id="om_q_en"))
        (en,) = [m for m in env.messages() if m.reply_to == "om_q_en"]
        assert en.text.startswith("Round DOC-ST-1: 院感防控新规") and "1 of 3 hospitals answered" in en.text
        assert not CJK.search(en.text.replace("院感防控新规", "").replace("仁诺B院", ""))  # only the data is Chinese
        await env.deliver(question("DOC-NONE-9 status", message_id="om_q_none"))
        (missing,) = [m for m in env.messages() if m.reply_to == "om_q_none"]
        assert missing.text.startswith("No round DOC-NONE-9 found")


async def test_5_a_file_or_press_pushed_again_is_handled_once(scenario_harness: Any) -> None:
    """Behaviour 5: a file message redelivered under a new event id (same message_id) counts once; a press
    pushed twice is applied once."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        await send(env, a_round("DOC-TWICE", start.date() + timedelta(days=7), kind="upload"))
        for event_id in ("ev-file-1", "ev-file-2"):
            await env.deliver(file_message("DOC-TWICE A院.pdf", A_RESP, message_id="om_twice", event_id=event_id,
                                           at=start))
        assert len([m for m in env.messages() if m.reply_to == "om_twice"]) == 1
        a = (await state(env, "DOC-TWICE")).hospital("hosp_a")
        assert a is not None and len(a.files) == 1
        link = "https://example.feishu.cn/drive/file/b"
        await env.deliver(press("submit", "DOC-TWICE", "hosp_b", B_RESP, event_id="ev-press", link=link))
        again = await env.deliver(press("submit", "DOC-TWICE", "hosp_b", B_RESP, event_id="ev-press", link=link))
        assert again.toast in ("本院已回复，无需重复操作", "已提交材料：院感防控新规")
        b = (await state(env, "DOC-TWICE")).hospital("hosp_b")
        assert b is not None and [f.link for f in b.files] == [link]
        assert [h.action for h in (await state(env, "DOC-TWICE")).history].count("uploaded") == 2


async def test_6_users_see_their_language_and_no_internal_reason(scenario_harness: Any) -> None:
    """Behaviour 6: an English hospital sees English only (the data aside), refusals included; the ladder's
    reasons go to the round's history, not to cards."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        deadline = env.calendar().next_workday(start.date() + timedelta(days=4))
        await send(env, a_round("DOC-EN", deadline, kind="upload", title="Quality sheet"))
        wrong = await env.deliver(press("submit", "DOC-EN", "hosp_c", A_RESP, link="https://x.example/a"))
        assert wrong.toast == "You are not responsible for this"
        bad = await env.deliver(press("submit", "DOC-EN", "hosp_c", C_RESP, link="later"))
        assert bad.toast == "Give the material's link (starting with http)"
        await env.advance_to(datetime.combine(deadline, time(9, 5), tzinfo=env.calendar().zone))
        seen = [card_text(m) for m in env.messages(to=C_RESP)]
        assert len(seen) >= 3  # the card and its reminders
        for text in seen:
            assert not CJK.search(text.replace("请各院组织学习并确认。", "")), text  # the body is headquarters' data
            assert "lead times" not in text and "escalation" not in text
        notes = " ".join(h.note for h in (await state(env, "DOC-EN")).history)
        assert "lead times 3/1" in notes  # the reason, for the audit
        assert all(not CJK.search(rules.text(k, "en_US", title="T")) for k in rules.TEXTS)


async def test_7_the_business_clock_drives_the_ladder(scenario_harness: Any) -> None:
    """Behaviour 7: the business clock (``BusinessClock`` of the site context) drives the round's timers."""
    origin = datetime.now(UTC).replace(microsecond=0)  # wall clock: the business clock's origin, not an expectation
    cfg = config(extra={"clock": {"scale": 1440, "origin": origin.isoformat()}})  # a business day a real minute
    async with scenario_harness({"documents": documents}, config=cfg) as env:
        business_today = origin.astimezone(env.calendar().zone).date()
        deadline = env.calendar().next_workday(business_today + timedelta(days=5))
        await send(env, a_round("DOC-CLOCK", deadline).model_copy(update={"sites": ["hosp_b"]}))
        await env.advance(minutes=12)  # 12 real minutes: 12 business days, past the deadline and the head's rung
        assert len(env.messages(to=B_RESP)) >= 4 and len(env.messages(to=B_HEAD)) >= 1
        fired = [h for h in (await state(env, "DOC-CLOCK")).history if h.action in ("remind", "escalate")]
        assert fired
        for entry in fired:  # each on a working morning from 09:00 business time (a real second of latency is
            # 24 business minutes; a loaded machine takes a few)
            local = entry.at.astimezone(env.calendar().zone)
            assert env.calendar().is_workday(local.date()) and time(9, 0) <= local.time() < time(12, 0), local
