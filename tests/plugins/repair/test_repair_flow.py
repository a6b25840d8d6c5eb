"""repair end to end on time-skipping Temporal with the Feishu stand-in: one ticket from the report to the
rating, the accept SLA's escalation ladder with waiting for parts, and a site's own rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from repair_helpers import (
    FAC_HEAD,
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
from engine.testing import moments
from engine.testing.kit import org_config


async def test_a_ticket_from_the_report_to_the_rating(scenario_harness: Any) -> None:
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 门诊2楼收费处打印机卡纸", message_id="om_flow"))
        number = ticket_of(env, "om_flow")
        (reply,) = replies_to(env, "om_flow")
        lines = reply.text.splitlines()
        assert lines[0] == f"已收到您的报修，工单号 {number}。" and lines[1] == "类别：信息，优先级：一般"
        assert lines[2].startswith("已通知维修人员 王工") and lines[3] == f"查询进度：@机器人 {number} 状态"
        (card,) = env.messages(to=IT_TECH)
        assert card.card and number in str(card.card)
        ticket = await state(env, number)
        assert (ticket.status, ticket.category, ticket.priority) == ("dispatched", "it", "normal")
        assert ticket.notified_at is not None and ticket.reported_at is not None
        (row,) = rows(env)
        assert row["工单号"] == number and row["状态"] == "已派单" and row["维修人"][0]["id"] == IT_TECH

        told = len(env.messages(to=REPORTER))
        for op in ("accept", "on_the_way", "working"):
            result = await env.deliver(press(op, number, IT_TECH))
            assert result.toast, op
        assert len(env.messages(to=REPORTER)) == told + 3  # the reporter hears of each step
        assert "维修人员在路上" in env.messages(to=REPORTER)[told + 1].text

        done = await env.deliver(press("done", number, IT_TECH))
        assert done.toast == "已标记为修复，等待报修人确认"
        confirm_card = env.messages(to=REPORTER)[-1]
        assert confirm_card.card and "已修好" in str(confirm_card.card)
        # only the reporter confirms; the technician is refused in words, nothing changes
        refused = await env.deliver(press("confirm", number, IT_TECH))
        assert refused.toast == "只有报修人可以操作"
        await env.deliver(press("confirm", number, REPORTER))
        rated = await env.deliver(press("rate", number, REPORTER, score=5, comment="很快，谢谢"))
        assert rated.toast == "感谢您的评价"
        ticket = await state(env, number)
        assert (ticket.status, ticket.rating, ticket.comment) == ("closed", 5, "很快，谢谢")
        assert not (ticket.accept_late or ticket.fix_late)
        late = await env.deliver(press("reopen", number, REPORTER))  # a late press on the card, days later
        assert late.toast == "工单已关闭"
        (row,) = rows(env)
        assert row["状态"] == "已关闭" and row["评分"] == 5 and row["SLA达标"] is True
        actions = [h["动作"] for h in rows(env, "tblTicketHistory")]
        assert actions == ["reported", "dispatch", "accept", "on_the_way", "working", "done", "confirm", "rate"]
        assert "rated" not in str(env.messages(to=IT_TECH)[-1].text) and "5" in env.messages(to=IT_TECH)[-1].text


async def test_an_unaccepted_ticket_climbs_to_the_lead_then_the_head_and_parts_pause_the_fix_clock(
        scenario_harness: Any) -> None:
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())  # 10:00 on a working day, far from days off
        await env.deliver(report("报修 3楼开水间漏水", message_id="om_leak"))
        number = ticket_of(env, "om_leak")
        ticket = await state(env, number)
        assert (ticket.category, ticket.priority) == ("facilities", "normal")
        assert ticket.accept_due is not None and ticket.accept_due - start < timedelta(minutes=32)
        await env.advance(minutes=29)
        assert env.messages(to=FAC_LEAD) == []
        await env.advance(minutes=2)  # 30 minutes of working time: the team lead hears
        (lead_card,) = env.messages(to=FAC_LEAD)
        assert "超时未接单" in str(lead_card.card)
        assert env.messages(to=FAC_HEAD) == []
        await env.advance(minutes=30)  # another accept period: the head of department
        assert len(env.messages(to=FAC_HEAD)) == 1
        await env.advance(hours=2)
        assert len(env.messages(to=FAC_LEAD)) == 1 and len(env.messages(to=FAC_HEAD)) == 1  # once each

        await env.deliver(press("accept", number, FAC_TECH))
        accepted = await state(env, number)
        assert accepted.accept_late and accepted.fix_due is not None
        await env.advance(minutes=30)
        await env.deliver(press("waiting_parts", number, FAC_TECH))
        paused = await state(env, number)
        left = paused.fix_due - paused.paused_at  # type: ignore[operator]
        await env.advance(days=3)  # parts take days: no "not fixed in time" while they are awaited
        assert len(env.messages(to=FAC_LEAD)) == 1
        await env.deliver(press("working", number, FAC_TECH))
        resumed = await state(env, number)
        assert resumed.paused_at is None and resumed.fix_due is not None
        assert resumed.fix_due > paused.fix_due + timedelta(days=2)  # type: ignore[operator]
        assert left > timedelta(hours=1)
        await env.deliver(press("done", number, FAC_TECH))
        ticket = await state(env, number)
        assert ticket.status == "done" and not ticket.fix_late and ticket.accept_late
        (row,) = rows(env)
        assert row["SLA达标"] is False  # accepted late


async def test_a_site_makes_its_own_words_urgent_and_has_its_own_technician(scenario_harness: Any) -> None:
    b_team = {"rota": [{"open_id": "ou_rp_b_tech", "name": "B院吴工"}], "lead_open_id": "ou_rp_lead_it"}
    config = org_config(
        plugins=["repair"], settings={"repair": SETTINGS},
        sites={"hosp_b": {"name": "B院", "settings": {"repair": {
            "urgent_keywords": ["停机", "收费"], "teams": {**SETTINGS["teams"], "it": b_team}}}}})
    async with scenario_harness({"repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        await env.begin_at(moments.ordinary_workday())
        await env.deliver(report("报修 B院 门诊收费处电脑蓝屏", message_id="om_b"))
        b_ticket = await state(env, ticket_of(env, "om_b"))
        assert (b_ticket.site, b_ticket.priority, b_ticket.technician.open_id) == ("hosp_b", "urgent", "ou_rp_b_tech")
        assert b_ticket.accept_due is not None and b_ticket.reported_at is not None
        await env.deliver(report("报修 门诊收费处电脑蓝屏", message_id="om_group"))
        group_ticket = await state(env, ticket_of(env, "om_group"))
        assert (group_ticket.site, group_ticket.priority, group_ticket.technician.open_id) == ("", "normal", IT_TECH)


async def test_a_row_added_to_the_table_is_a_ticket_dispatched_from_the_rota_table(scenario_harness: Any) -> None:
    from engine.testing.events import record_changed

    config = org_config(plugins=["repair"], settings={"repair": {
        **SETTINGS, "rota_table_id": "tblRota", "department_sites": {"icu": "hosp_b"}}},
        sites={"hosp_b": {"name": "B院"}})
    async with scenario_harness({"repair": repair}, config=config) as env:
        env.standin.state.merge_json(SEED)
        env.standin.state.merge_json({"bitable": {"bascnRepair": {"tblRota": {"name": "值班表", "records": [
            {"record_id": "recR1", "fields": {"院区": "A院", "类别": "信息", "维修人": [{"id": IT_TECH}]}},
            {"record_id": "recR2", "fields": {"院区": "B院", "类别": "信息", "维修人": [{"id": "ou_rp_night",
                                                                                  "name": "刘工"}],
                                              "星期": ["1", "2", "3", "4", "5", "6", "7"], "开始": "00:00",
                                              "结束": "00:00"}}]}}}})
        start = await env.begin_at(moments.ordinary_workday())
        tickets = env.standin.state.table("bascnRepair", "tblTickets")["records"]
        tickets["recT1"] = {"record_id": "recT1", "fields": {"报修内容": "护士站电脑无法登录HIS",
                                                             "报修人": [{"id": REPORTER}], "位置": "5楼护士站"}}
        await env.deliver(record_changed("bascnRepair", "tblTickets", "recT1", action="record_added",
                                         after=tickets["recT1"]["fields"], create_time=start))
        (told,) = env.messages(to=REPORTER)
        number = told.text.split("工单号 ")[1].split("。")[0]
        ticket = await state(env, number)
        # the reporter's department puts the ticket at B院, whose duty in the rota table is 刘工
        assert (ticket.site, ticket.category, ticket.technician.open_id) == ("hosp_b", "it", "ou_rp_night")
        assert tickets["recT1"]["fields"]["工单号"] == number and len(tickets) == 1  # the same row, kept in step
        # an edit of the row (by anyone) opens nothing new
        await env.deliver(record_changed("bascnRepair", "tblTickets", "recT1", action="record_edited"))
        assert len(env.messages(to="ou_rp_night")) == 1

        for op in ("accept", "done"):
            await env.deliver(press(op, number, "ou_rp_night"))
        await env.deliver(press("reopen", number, REPORTER))
        again = await state(env, number)
        assert (again.status, again.reopened) == ("dispatched", 1)
        assert len(env.messages(to="ou_rp_night")) == 2  # dispatched again
        assert "重新派单" in env.messages(to=REPORTER)[-1].text
        await env.deliver(press("accept", number, "ou_rp_night"))
        await env.deliver(press("done", number, "ou_rp_night"))
        await env.advance(hours=71)
        assert (await state(env, number)).status == "done"
        await env.advance(hours=2)  # 72 hours unconfirmed: it closes itself and says so
        closed = await state(env, number)
        assert closed.status == "closed" and closed.rating is None
        assert "自动关闭" in env.messages(to=REPORTER)[-1].text
        assert tickets["recT1"]["fields"]["状态"] == "已关闭" and tickets["recT1"]["fields"]["返修次数"] == 1


async def test_a_photo_sent_to_the_bot_is_a_report(scenario_harness: Any) -> None:
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        start = await env.begin_at(moments.ordinary_workday())
        # pushed as Feishu pushes it: signed over HTTP, read by the ingress's normalizer
        event = env.standin.message_event("", "oc_p2p_li", REPORTER, mentions_bot=False, chat_type="p2p")
        event["message"].update(message_type="image", content='{"image_key": "img_v3_leak"}')
        assert start <= await env.now()
        await env.push("im.message.receive_v1", event)
        number = ticket_of(env, event["message"]["message_id"])
        ticket = await state(env, number)
        assert ticket.photos == ["img_v3_leak"] and ticket.category == "facilities"
        assert "照片" in str(env.messages(to=FAC_TECH)[0].card)
