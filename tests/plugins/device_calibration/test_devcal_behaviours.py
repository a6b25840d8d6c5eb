"""The seven behaviours of device_calibration, one test each (the docstring names which).

1 a hospital's settings, zone and locale; 2 the ladder on working days; 3 a card press answered at once
while the Open API is slow, nothing lost; 4 status in the asker's locale; 5 a message pushed again answered
once; 6 no internal reason or text of the other language; 7 the business clock drives the ladder.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.events import MessageReceived
from engine.feishu.standin.events import card_action_event
from engine.feishu.standin.faults import Fault
from engine.sdk import WorkCalendar, add_months
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState

SCALE = 1440  # a business day per real minute
CONFIG = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS}, extra=h.ORG_EXTRA)


def card_value(device_id: str, op: str, cycle: int = 1) -> dict[str, Any]:
    return {"scenario": "device_calibration", "org": "acme", "device": device_id, "kind": "calibration",
            "cycle": cycle, "op": op}


async def push_press(env: Any, value: dict[str, Any], who: str, form: dict[str, Any] | None = None) -> str:
    """Press a card button through the ingress over HTTP, as Feishu does; the toast it is answered with."""
    event = card_action_event(value, who, "om_card_dc", "oc_dc", form_value=form,
                              tenant_key=env.org.tenant_key or "t_standin")
    result = await env.push("card.action.trigger", event, settle=False)
    answer = result.response_json or {}
    assert result.acknowledged, answer  # not the ingress's 503 "dispatch timed out"
    return str((answer.get("toast") or {}).get("content") or "")


def asked(text: str, *, message_id: str, event_id: str) -> MessageReceived:
    return MessageReceived(event_id=event_id, event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id=message_id, chat_id="oc_chat", chat_type="group", text=text,
                           sender_open_id=h.CUSTODIAN, mentions_bot=True)


def card_text(message: Any) -> str:
    return str(message.card if message.card is not None else message.text)


# --------------------------------------------------------------------------------- 1 per-site settings


async def test_a_hospitals_locale_and_zone_apply_to_its_devices(scenario_harness: object) -> None:
    """Behaviour 1: a hospital's (site's) locale, zone and settings apply to its devices; the group's elsewhere."""
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


# ------------------------------------------------------------------------------------- 2 working days


async def test_a_reminder_due_on_a_day_off_goes_out_on_the_workday_before(scenario_harness: Any) -> None:
    """Behaviour 2: the ladder runs on working days: a "1 day before" that falls on a day off goes out on the
    last working day before it, at 09:00, and nothing goes out on the days off."""
    settings = {**h.SETTINGS, "reminders": {"before_days": [1]}}
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": settings},
                        extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration}, config=config) as env:
        calendar = env.calendar()
        today = (await env.begin_at(moments.ordinary_workday())).date()
        # due on the first working day after days off: its day before is off
        due = next(today + timedelta(days=n) for n in range(3, 40)
                   if calendar.is_workday(today + timedelta(days=n))
                   and not calendar.is_workday(today + timedelta(days=n - 1)))
        reminder_day = calendar.previous_workday(due - timedelta(days=1))
        h.seed(env.standin, {"rec1": h.device_row("CT-0401", last=None, 有效期至=h.ms(due))})
        await env.deliver(h.record_event("rec1", "CT-0401"))
        await env.advance_to(h.at_local(reminder_day, 8) + timedelta(minutes=59))
        assert not env.messages(to=h.CUSTODIAN)
        await env.advance_to(h.at_local(reminder_day, 9) + timedelta(minutes=1))
        assert len(env.messages(to=h.CUSTODIAN)) == 1
        await env.advance_to(h.at_local(due, 8))
        assert len(env.messages(to=h.CUSTODIAN)) == 1  # nothing on the days off
        state = CycleState.model_validate(await env.query("device_calibration", "CT-0401"))
        (sent,) = h.history(state, "remind")
        assert sent.detail["step"] == "before:1" and h.local(sent.at).date() == reminder_day


# ------------------------------------------------------------------------- 3 answered while the API is slow


async def test_a_press_is_answered_while_the_open_api_is_slow_and_nothing_is_lost(scenario_harness: Any) -> None:
    """Behaviour 3: an out-of-tolerance result is answered with the plugin's toast while every Open API call
    takes 4 s; a second press meanwhile sees the quarantine; the row, the audit rows and both notices happen
    exactly once afterwards."""
    async with scenario_harness({"device_calibration": device_calibration}, config=CONFIG) as env:
        # no skip of the clock: activities run with the wall clock frozen at the workflow's time, and the
        # presses below are signed (and checked by the ingress) while they run
        today = h.local(await env.now()).date()
        h.seed(env.standin, {"rec1": h.device_row("CT-0501", last=add_months(today + timedelta(days=60), -12))})
        await env.deliver(h.record_event("rec1", "CT-0501"))
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        result = {"performed_on": today.isoformat(), "performed_by": "省计量院", "certificate": "JL-F-1",
                  "as_found": "fail", "as_left": "fail"}
        first = await push_press(env, card_value("CT-0501", "result"), h.MANAGER, result)
        second = await push_press(env, card_value("CT-0501", "sent_out"), h.CUSTODIAN, {"vendor": "省计量院"})
        assert first == "已记录：设备停用隔离，已通知设备管理员进行超差评估", first
        assert second == "当前状态（停用隔离）不能执行此操作", second
        env.standin.clear_faults()
        await env.settle()
        assert h.row(env.standin, "rec1")["状态"] == "停用" and "送检单位" not in h.row(env.standin, "rec1")
        actions = [r["动作"] for r in h.log_rows(env.standin)]
        assert actions.count("result") == 1 and actions.count("quarantined") == 1
        assert len([m for m in env.messages(to=h.MANAGER) if m.card]) == 1  # the assessment card
        assert len(env.messages(to=h.CUSTODIAN)) == 1  # "quarantined, stop using it"


# ------------------------------------------------------------------------------------------- 4 status


async def test_status_is_answered_in_the_askers_language(scenario_harness: object) -> None:
    """Behaviour 4: "<device> status" / "<device> 状态" answers with the state in the asker's language."""
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


# ---------------------------------------------------------------------------------------- 5 redelivery


async def test_a_question_pushed_again_under_a_new_event_id_is_answered_once(scenario_harness: Any) -> None:
    """Behaviour 5: a status question pushed again under a new event id (same message_id) is answered once."""
    async with scenario_harness({"device_calibration": device_calibration}, config=CONFIG) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec1": h.device_row("CT-0601", last=add_months(today + timedelta(days=90), -12))})
        await env.deliver(h.record_event("rec1", "CT-0601"))
        await env.deliver(asked("CT-0601 状态", message_id="om_dup", event_id="ev-first"))
        await env.deliver(asked("CT-0601 状态", message_id="om_dup", event_id="ev-again"))
        (reply,) = [m for m in env.messages() if m.reply_to == "om_dup"]
        assert "CT-0601" in reply.text and "状态" in reply.text


# ------------------------------------------------------------------------ 6 what users see, both locales


async def test_users_see_no_internal_reason_in_either_language(scenario_harness: Any) -> None:
    """Behaviour 6: reminder cards, form toasts, the quarantine notice and the reconciliation report say
    what happened in the reader's language; the reasons (lead times, catch-ups, parse errors, why a cycle
    started) stay in the audit log."""
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        sites={"hosp_b": {"name": "B院", "locale": "en_US"}}, extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration}, config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today + timedelta(days=25)  # inside the 30-day lead time: a catch-up reminder at once
        h.seed(env.standin, {"recA": h.device_row("CT-0701", last=add_months(due, -12)),
                             "recB": h.device_row("CT-0702", last=add_months(due, -12), 院区="B院")})
        handle = await env.start_workflow("device_calibration.Reconcile", {"org": "acme"},
                                          id="acme:device_calibration:schedule:reconcile-b6")
        await handle.result()
        env.started.extend(env.workflow_id("device_calibration", k) for k in ("CT-0701", "CT-0702"))
        await env.settle()
        await env.advance(days=3)  # past a weekend, if any: the catch-up goes on a working day
        chinese = next(card_text(m) for m in env.messages(to=h.CUSTODIAN) if m.card and "CT-0701" in str(m.card))
        english = next(card_text(m) for m in env.messages(to=h.CUSTODIAN) if m.card and "CT-0702" in str(m.card))
        assert "到期前 30 天提醒" in chinese and "Reminder 30 days before the due date" in english
        for text in (chinese, english):
            assert "lead times" not in text and "catching up" not in text and "reminder: due" not in text
        (report,) = [m.text for m in env.messages(to=h.MANAGER) if m.text and "设备台账对账" in m.text]
        assert "CT-0701 已启动" in report and "no cycle was running" not in report
        assert "部分周期本次未能核对" in report and "could not be listed" not in report
        # a status question in English: the phase in English, not the table's Chinese status cell
        question = asked("CT-0702 status", message_id="om_b6_status", event_id="ev-b6-status")
        await env.deliver(question)
        (status,) = [m.text for m in env.messages() if m.reply_to == "om_b6_status"]
        assert "Status: in service" in status and "合格" not in status, status
        # toasts: what to fix, in the person's language
        empty = await env.deliver(h.card(card_value("CT-0701", "result"), h.MANAGER, {}))
        assert empty.toast == "填写有误：请填写校准日期"
        english_empty = await env.deliver(h.card(card_value("CT-0702", "result"), h.MANAGER, {}))
        assert english_empty.toast == "Please check the form: the calibration date is required"
        # out of tolerance: the results as people read them
        failed = {"performed_on": h.local(await env.now()).date().isoformat(), "performed_by": "省计量院",
                  "certificate": "JL-F-2", "as_found": "fail", "as_left": "fail"}
        await env.deliver(h.card(card_value("CT-0701", "result"), h.MANAGER, failed))
        notice = next(m.text for m in env.messages(to=h.CUSTODIAN) if m.card is None and "CT-0701" in m.text)
        assert "校准前 不合格，校准后 不合格" in notice and "fail" not in notice
        assessment = next(card_text(m) for m in env.messages(to=h.MANAGER)
                          if m.card and "CT-0701" in str(m.card) and "超差评估" in str(m.card))
        assert "校准后仍超差" in assessment and "as-left" not in assessment
        wrong = await env.deliver(h.card(card_value("CT-0701", "sent_out"), h.CUSTODIAN, {"vendor": "x"}))
        assert wrong.toast == "当前状态（停用隔离）不能执行此操作"


# ----------------------------------------------------------------------------------- 7 business clock


async def test_a_ladder_in_minutes(scenario_harness: object) -> None:
    """Behaviour 7: on a compressed business clock the ladder runs in minutes, each notice at its business moment."""
    # the origin must be fixed in the config: the business clock starts at 10:00 on a working day (not at the
    # wall clock's time of day), after that day's 09:00 send time, so the five notices (days 3, 9, 10, 11 and 12
    # at 09:00) all lie ahead and within the 13 business days driven
    calendar = WorkCalendar(h.SHANGHAI, holidays=[date.fromisoformat(d) for d in h.ORG_EXTRA["holidays"]])
    origin = moments.ahead(moments.workday(time(10, 0)), calendar)
    settings = {**h.SETTINGS, "reminders": {"before_days": [7, 1], "on_due": True, "working_days_only": False,
                                            "after": [{"every_days": 1, "to": "manager", "times": 2}]}}
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": settings},
                        extra={**h.ORG_EXTRA, "clock": {"scale": SCALE, "origin": origin.isoformat()}})
    async with scenario_harness({"device_calibration": device_calibration}, config=config) as env:  # type: ignore[operator]
        await env.begin_at(moments.at(origin))
        due = h.local(origin).date() + timedelta(days=10)
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
