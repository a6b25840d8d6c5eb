"""One shift's handover through the kit: time-skipping Temporal, the router, the Feishu stand-in."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handover_helpers import DAY, GROUP, HEAD, NIGHT, OFFICE, PATIENTS, RECORDS, card, handover_settings
from temporalio.client import WorkflowExecutionStatus

import plugins.handover as handover
from engine.rules.workdays import WorkCalendar
from engine.testing import moments
from plugins.handover import models as m
from plugins.handover import rules

ZONE = ZoneInfo("Asia/Shanghai")


async def finished_result(env, handle) -> Any:
    """A finished workflow's result, read from its history: awaiting ``result()`` lets the server skip time."""
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    events = [e async for e in handle.fetch_history_events()]
    payloads = events[-1].workflow_execution_completed_event_attributes.result.payloads
    return (await env.client.data_converter.decode(payloads))[0]


async def start_shift(env, change: str, lead: int = 45, *, before_form: bool = True) -> m.ShiftPlan:
    """Start the department's rota driver for ``change`` as its schedule would; return the shift's plan.

    With ``before_form``, the clock first moves to 10 minutes before the shift's form is due, so the test
    sees the shift from its start whatever time of day the suite runs at.
    """
    if before_form:
        change_clock = datetime.combine(date(2000, 1, 2), time.fromisoformat(change))
        await env.begin_at(moments.next_time((change_clock - timedelta(minutes=lead + 10)).time()))
    change_local = rules.next_change(await env.now() - timedelta(minutes=lead), [change], ZONE)
    key = f"icu:{rules.shift_key(change_local)}"
    driver_id = env.workflow_id("handover", f"schedule:rota-icu-{change.replace(':', '')}:{key}")
    handle = await env.start_workflow("handover.RotaDriver", m.RotaRequest(org=env.org.id, department="icu",
                                                                           change=change), "zh_CN", id=driver_id)
    env.started.append(env.workflow_id("handover", key))  # the kit settles the workflows it knows of
    await env.settle()
    outcome = await finished_result(env, handle)
    assert outcome["started"] == env.workflow_id("handover", key), outcome
    return m.ShiftPlan.model_validate(await env.handle("handover", key).query("plan"))


async def state_of(env, key: str) -> m.ShiftState:
    return m.ShiftState.model_validate(await env.query("handover", key))


async def at(env, moment: datetime) -> None:
    """Advance just past ``moment``: a timer starts when its workflow task completes, a little after now()."""
    await env.advance_to(moment + timedelta(seconds=1))


def table(env, ref: dict) -> list[dict]:
    found = env.standin.state.table(ref["app_token"], ref["table_id"]) or {"records": {}}
    return [r["fields"] for r in found["records"].values()]


async def test_written_in_parts_submitted_questioned_and_acknowledged(scenario_harness):
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        plan = await start_shift(env, "20:00")
        giver, receiver = plan.giver, plan.receiver
        assert {giver, receiver} <= {DAY, NIGHT, "ou_dr_holiday"}
        state = await state_of(env, plan.key)
        assert state.status == "scheduled"
        assert not env.messages(to=giver)

        await at(env, plan.form_at)
        forms = env.messages(to=giver)
        assert len(forms) == 1 and forms[0].card is not None
        assert "提交交班" in forms[0].text

        # first sitting: one critical patient, partly filled in
        result = await env.deliver(card(giver, "handover.entry", plan.key, {
            "bed": "12", "name": "张三", "category": "critically_ill", "severity": "unstable",
            "summary": "重症肺炎，呼吸机辅助通气"}, event_id="ev-entry-1"))
        assert "12" in (result.toast or "")
        # the same delivery again (Feishu retries): absorbed
        await env.deliver(card(giver, "handover.entry", plan.key, {"bed": "99", "summary": "x"},
                               event_id="ev-entry-1"))
        # second sitting: another patient, then the rest of bed 12
        await env.advance(minutes=10)
        await env.deliver(card(giver, "handover.entry", plan.key, {
            "bed": "15", "category": "post_op", "severity": "stable", "summary": "阑尾切除术后第1天",
            "actions": "明晨查血常规", "contingency": "腹痛加重请外科会诊"}))
        await env.deliver(card(giver, "handover.entry", plan.key, {
            "bed": "12", "actions": "02:00 复查血气", "contingency": "SpO2<88% 上调 FiO2",
            "imaging": "胸片 https://pacs.example.org/study/991"}))
        # someone else cannot write into this handover
        refused = await env.deliver(card(HEAD, "handover.entry", plan.key, {"bed": "1"}))
        assert "交班医生" in (refused.toast or "")
        entries = {e.bed: e for e in [m.PatientEntry.model_validate(x) for x in
                                      await env.handle("handover", plan.key).query("entries")]}
        assert set(entries) == {"12", "15"}
        assert entries["12"].critical and entries["12"].fields["actions"] == "02:00 复查血气"
        assert entries["12"].imaging == ["https://pacs.example.org/study/991"]
        assert env.messages(to=giver)[0].updated  # the form card shows what was saved

        await env.deliver(card(giver, "handover.submit", plan.key, {}))
        state = await state_of(env, plan.key)
        assert state.status == "submitted" and state.on_time and state.complete
        assert state.patients == 2 and state.critical == 1
        received = env.messages(to=receiver)
        assert len(received) == 1 and "12 床" in received[0].text and "重症肺炎" in received[0].text
        patients = table(env, PATIENTS)
        assert sorted(p["床号"] for p in patients) == ["12", "15"]
        assert table(env, RECORDS)[0]["状态"] == "submitted"
        group = env.messages(chat_id=GROUP)
        assert len(group) == 1 and "2 位患者" in group[0].text

        # confirming the whole handover before the critical patient is refused
        early = await env.deliver(card(receiver, "handover.ack", plan.key, {"synthesis": "明白"}))
        assert "危重" in (early.toast or "")

        # a question goes to the giver, the answer to the receiver
        await env.deliver(card(receiver, "handover.ask", plan.key, {"question": "12 床今晚要复查胸片吗？"}))
        question = env.messages(to=giver)[-1]
        assert question.card is not None and "复查胸片" in question.text
        await env.deliver(card(giver, "handover.answer", plan.key, {"answer": "不需要，明早复查"}, question="q1"))
        answer = env.messages(to=receiver)[-1]
        assert "不需要，明早复查" in answer.text and "复查胸片" in answer.text

        await at(env, plan.change_at + timedelta(minutes=5))
        await env.deliver(card(receiver, "handover.ack_patient", plan.key, bed="12"))
        done = await env.deliver(card(receiver, "handover.ack", plan.key, {"synthesis": "12 床呼吸机，02:00 血气"}))
        assert done.toast == "已确认接班"
        final = m.ShiftState.model_validate(await env.handle("handover", plan.key).result())
        assert final.status == "acknowledged" and final.synthesis_given and not final.escalations
        assert final.questions == 1 and final.open_questions == 0
        record = table(env, RECORDS)[0]
        assert record["状态"] == "acknowledged" and record["确认用时(分钟)"] == 5.0
        assert all("接班确认时间" in p for p in table(env, PATIENTS))
        assert "已由接班医生确认" in env.messages(to=giver)[-1].text
        assert not env.messages(to=HEAD) and not env.messages(to=OFFICE)
        who = [(item.what, item.by) for item in final.log]
        assert ("acknowledged", receiver) in who and ("critical patient confirmed", receiver) in who


async def test_late_acknowledgement_escalates_critical_sooner(scenario_harness):
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        plan = await start_shift(env, "08:00")
        await at(env, plan.form_at)
        await env.deliver(card(plan.giver, "handover.submit", plan.key, {
            "bed": "3", "category": "critical_value", "severity": "watcher", "summary": "血钾 6.8"}))
        assert not env.messages(to=HEAD)

        await at(env, plan.change_at + timedelta(minutes=16))  # critical deadline: 15 min
        to_head = env.messages(to=HEAD)
        assert len(to_head) == 1 and "危重" in to_head[0].text and "3 床" in to_head[0].text
        state = await state_of(env, plan.key)
        assert state.escalations == ["critical-1"]

        await at(env, plan.change_at + timedelta(minutes=61))  # whole handover: 60 min
        assert "尚未确认接班" in env.messages(to=plan.receiver)[-1].text  # reminder to the receiver
        assert len(env.messages(to=HEAD)) == 2 and "尚未确认交班" in env.messages(to=HEAD)[-1].text
        assert not env.messages(to=OFFICE)

        await at(env, plan.change_at + timedelta(minutes=181))
        office = env.messages(to=OFFICE)
        assert len(office) == 1 and "血钾" not in office[0].text and "3 床" not in office[0].text
        state = await state_of(env, plan.key)
        assert state.escalations == ["critical-1", "ack-2", "ack-3"]

        await env.deliver(card(plan.receiver, "handover.ack_patient", plan.key, bed="3"))
        await env.deliver(card(plan.receiver, "handover.ack", plan.key, {}))
        final = m.ShiftState.model_validate(await env.handle("handover", plan.key).result())
        assert final.status == "acknowledged"
        record = table(env, RECORDS)[0]
        assert record["升级次数"] == 3 and record["确认用时(分钟)"] > 180


async def test_missing_handover_reminds_then_escalates(scenario_harness):
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        plan = await start_shift(env, "20:00")
        await at(env, plan.change_at + timedelta(seconds=30))
        reminders = env.messages(to=plan.giver)
        assert [bool(x.card) for x in reminders] == [True, False]  # the form, then the reminder
        assert "尚未提交" in reminders[-1].text
        assert not env.messages(to=HEAD)

        await at(env, plan.change_at + timedelta(minutes=31))
        assert "尚未提交交班记录" in env.messages(to=HEAD)[0].text
        assert "尚未提交" in env.messages(chat_id=GROUP)[-1].text
        await at(env, plan.close_at)
        final = m.ShiftState.model_validate(await env.handle("handover", plan.key).result())
        assert final.status == "missing" and final.escalations == ["missing-1", "missing-2"]
        record = table(env, RECORDS)[0]
        assert record["状态"] == "missing" and "提交时间" not in record and record["按时提交"] is False
        assert len(env.messages(to=OFFICE)) == 1


async def test_rota_from_a_file_and_a_bitable_table_or_none(scenario_harness, tmp_path):
    import json

    from engine.testing.kit import DEFAULT_ORG, org_config

    # both shifts of the day the run begins on are ahead: it begins at 03:00
    night = moments.ahead(moments.next_time(time(3, 0)), WorkCalendar(ZONE))
    morning = rules.next_change(night, ["08:00"], ZONE)
    evening = rules.next_change(night, ["20:00"], ZONE)
    (tmp_path / "rota.json").write_text(json.dumps({"department": "icu", "entries": [
        {"date": morning.date().isoformat(), "shift": "08:00", "giver": "ou_file_a", "receiver": "ou_file_b"}]}))
    settings = handover_settings()
    icu = settings["departments"]["icu"]
    icu.update(rota_file="rota.json", workday_rota={}, holiday_rota={},
               rota_table={"app_token": "bascnRota", "table_id": "tblRota"})
    settings["departments"]["er"] = {"head": HEAD}  # no rota at all
    config = org_config(plugins=["handover"], settings={"handover": settings})
    async with scenario_harness({"handover": handover}, config=config, config_dir=tmp_path) as env:
        await env.begin_at(moments.at(night))
        millis = int(datetime.combine(evening.date(), datetime.min.time(), ZONE).timestamp() * 1000)
        env.standin.state.merge_json({"bitable": {"bascnRota": {"tblRota": {"records": [
            {"日期": millis, "交班时间": "20:00", "交班医生": [{"id": "ou_table_a"}], "接班医生": "ou_table_b",
             "科室": "icu"}]}}}})
        from_file = await start_shift(env, "08:00", before_form=False)
        assert (from_file.giver, from_file.receiver, from_file.rota_source) == ("ou_file_a", "ou_file_b", "table")
        from_table = await start_shift(env, "20:00", before_form=False)
        assert (from_table.giver, from_table.receiver) == ("ou_table_a", "ou_table_b")

        handle = await env.start_workflow("handover.RotaDriver", m.RotaRequest(
            org=DEFAULT_ORG, department="er", change="08:00"), "zh_CN", id="acme:handover:schedule:rota-er-0800")
        outcome = await finished_result(env, handle)
        assert outcome["started"] is None and "no rota" in outcome["reason"]
        # a repeated schedule run (with the plain JSON args a schedule carries) starts nothing new
        again = await env.start_workflow("handover.RotaDriver", {"org": DEFAULT_ORG, "department": "icu",
                                                                 "change": "08:00", "site": None},
                                         "zh_CN", id="acme:handover:schedule:again")
        assert (await finished_result(env, again))["started"] == env.workflow_id("handover", from_file.key)


async def test_a_press_whose_message_fails_for_good_is_logged_and_the_shift_goes_on(scenario_harness):
    from engine.feishu.standin.faults import Fault

    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()}) as env:
        plan = await start_shift(env, "20:00")
        await at(env, plan.form_at)
        # the receiver's card is refused for good (a 4xx with a code retrying cannot fix)
        env.standin.inject(Fault(kind="server_error", status=400, code=230002, html=False,
                                 path_prefix="/open-apis/im/v1/messages"))
        submitted = await env.deliver(card(plan.giver, "handover.submit", plan.key, {"bed": "8", "severity": "stable"}))
        assert submitted.toast == "交班已提交给接班医生"
        state = await state_of(env, plan.key)
        assert state.status == "submitted"
        failed = [item.detail for item in state.log if item.what == "delivery failed"]
        assert len(failed) == 1 and failed[0].startswith("send_receive:")
        assert not env.messages(to=plan.receiver)
        assert table(env, RECORDS)[0]["状态"] == "submitted" and len(env.messages(chat_id=GROUP)) == 1
        await at(env, plan.change_at + timedelta(minutes=61))  # the ladder still runs
        assert "尚未确认接班" in env.messages(to=plan.receiver)[-1].text
