"""What a new user meets first: names and words instead of ids, applications seen late, duplicates in any
order, edits that cannot apply, who may tick a checklist item, and seeded requisitions."""

from __future__ import annotations

from typing import Any

from recruiting_helpers import config, edit_row, press, record_event, rows, seed, state, track

import plugins.recruiting as recruiting
from engine.testing.events import message

PLUGINS = {"recruiting": recruiting}


async def test_cards_and_notices_show_names_and_words_not_ids(scenario_harness: Any) -> None:
    """Cards, notices and the status name the hospital, the approvers and the owners in the reader's
    language; no site id, role key, stage name or rule text."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblRequisitions", "recReqA002"))
        approval = env.messages(to="ou_head_a")[-1].text
        assert "A院" in approval and "审批链：院长" in approval
        assert "hosp_a" not in approval and "hospital_head" not in approval and "approves" not in approval

        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
        duplicate = env.messages(to="ou_rc_b")[-1].text
        assert "A院" in duplicate and "B院" in duplicate and "（已投递）" in duplicate
        assert "hosp_" not in duplicate and "applied" not in duplicate

        await env.deliver(press("ou_hr_a", "move", app="recAppA01", to="accepted"))
        track(env, "onb:recAppA01")
        await env.settle()
        checklist = env.messages(to="ou_hr_a")[-1].text
        assert "入职清单" in checklist and "A院" in checklist and "负责：信息科" in checklist
        for key in ("hosp_a", "：it", "：admin", "：hr", "：trainer"):
            assert key not in checklist, key

        await env.deliver(message("recAppA01 状态", chat_type="group", message_id="om_st"))
        track(env, "status:om_st")
        await env.settle()
        reply = next(m for m in env.messages() if m.reply_to == "om_st").text
        assert "A院" in reply and "hosp_a" not in reply


async def test_an_application_first_seen_accepted_starts_its_onboarding(scenario_harness: Any) -> None:
    """A row added (or first edited) at 已接受 with no workflow yet starts the onboarding like a move to it."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppB04", operator="ou_rc_b"))
        track(env, "onb:recAppB04")
        await env.settle()
        onboarding = await state(env, "onb:recAppB04")
        assert onboarding.status == "onboarding" and onboarding.name == "周婷"
        assert any("入职清单：周婷" in m.text for m in env.messages(to="ou_hr_b"))
        history = (await state(env, "app:recAppB04")).history
        assert [h.action for h in history if h.action == "onboarding_started"] == ["onboarding_started"]


async def test_duplicates_are_found_whichever_application_arrives_first(scenario_harness: Any) -> None:
    """李雷's B院 application first, then his A院 one: the later one is linked to the earlier, as in the other
    order, and both carry the same candidate id."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
        assert not env.messages(to="ou_rc_b")
        await env.deliver(record_event("tblApplications", "recAppA01"))
        notice = env.messages(to="ou_rc_a")[-1].text
        assert "同一人" in notice and "B院" in notice
        a, b = await state(env, "app:recAppA01"), await state(env, "app:recAppB03")
        assert [link.application_id for link in a.linked] == ["recAppB03"] and not b.linked
        assert a.candidate_id == b.candidate_id != ""
        table = rows(env, "tblApplications")
        assert table["recAppA01"]["关联投递"] == "recAppB03" and table["recAppA01"]["候选人ID"] == a.candidate_id


async def test_an_edit_going_back_is_written_back_and_the_editor_told(scenario_harness: Any) -> None:
    """已筛选 edited back to 已投递 in Bitable: the row shows 已筛选 again and the editor is told why, in the
    hospital's language; the rules' reason stays in the history."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppB01", operator="ou_rc_b"))
        edit_row(env, "tblApplications", "recAppB01", **{"阶段": "已筛选"})
        await env.deliver(record_event("tblApplications", "recAppB01", action="record_edited", operator="ou_rc_b"))
        before = len(env.messages(to="ou_rc_b"))
        edit_row(env, "tblApplications", "recAppB01", **{"阶段": "已投递"})
        await env.deliver(record_event("tblApplications", "recAppB01", action="record_edited", operator="ou_rc_b"))
        await env.settle()
        assert rows(env, "tblApplications")["recAppB01"]["阶段"] == "已筛选"
        told = env.messages(to="ou_rc_b")[before:]
        assert len(told) == 1
        assert "孙悦 不能退回「已投递」阶段" in told[0].text and "已筛选" in told[0].text
        assert "cannot go back" not in told[0].text
        app = await state(env, "app:recAppB01")
        assert app.stage == "screened"
        assert any(t.action == "ignored_edit" and "cannot go back" in t.detail for t in app.history)


async def test_only_the_items_owner_or_hr_ticks_a_checklist_item(scenario_harness: Any) -> None:
    """Another hospital's recruiter cannot tick A院's contract item; IT ticks the account, A院's HR any item."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(press("ou_hr_a", "move", app="recAppA01", to="accepted"))
        track(env, "onb:recAppA01")
        await env.settle()
        refused = await env.deliver(press("ou_rc_b", "item_done", app="recAppA01", item="contract"))
        assert refused.toast == "李雷 的「签订劳动合同」应由人事完成"
        refused = await env.deliver(press("ou_hr_b", "item_done", app="recAppA01", item="badge"))
        assert refused.toast == "李雷 的「制作工牌」应由行政或人事完成"
        ticked = await env.deliver(press("ou_it", "item_done", app="recAppA01", item="account"))
        assert ticked.toast == "李雷：开通飞书账号 ✓"
        ticked = await env.deliver(press("ou_hr_a", "item_done", app="recAppA01", item="badge"))
        assert ticked.toast == "李雷：制作工牌 ✓"
        done = {e.id: e.done_by for e in (await state(env, "onb:recAppA01")).checklist if e.done_at}
        assert done == {"account": "ou_it", "badge": "ou_hr_a"}


async def test_the_status_of_a_row_no_workflow_follows_is_read_from_the_table(scenario_harness: Any) -> None:
    """A seeded requisition marked open (and an application row never pushed) answer from their rows, saying
    the engine does not follow them, instead of "No requisition … is recorded"."""
    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        for text, message_id in (("recReqA001 状态", "om_req"), ("recAppA02 状态", "om_app"),
                                 ("recReqA001 status", "om_req_en")):
            await env.deliver(message(text, chat_type="group", message_id=message_id))
            track(env, f"status:{message_id}")
            await env.settle()
        replies = {m.reply_to: m.text for m in env.messages() if m.reply_to}
        requisition, application, english = replies["om_req"], replies["om_app"], replies["om_req_en"]
        assert "A院 心内科 护士" in requisition and "招聘中" in requisition and "已录用 0 / 3 人" in requisition
        assert "韩梅梅" in application and "当前阶段：已筛选" in application
        assert "Hired 0 of 3" in english and "open" in english
        for reply in (requisition, application):
            assert "未记录" not in reply and "表格" in reply
        assert "table" in english


async def test_a_row_read_that_a_press_overtook_is_no_edit(scenario_harness: Any) -> None:
    """A row event re-read while the recruiter's press ends the application: the read shows the stage before
    the press (its write is still on its way), which is nobody's edit: no "your edit was undone" notice."""
    import asyncio

    from recruiting_helpers import APP

    from engine.feishu.standin.faults import Fault

    async with scenario_harness(PLUGINS, config=config()) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppB01", operator="ou_rc_b"))
        before = len(env.messages(to="ou_rc_b"))
        # the row's read and then the press's write each take 3 s: the read answers with the old stage
        env.standin.inject(Fault(kind="slow", delay=3, times=2,
                                 path_prefix=f"/open-apis/bitable/v1/apps/{APP}/tables/tblApplications/records"))
        edited = asyncio.create_task(env.deliver(record_event("tblApplications", "recAppB01",
                                                              action="record_edited", operator="ou_rc_b")))
        await asyncio.sleep(1)  # the read is in flight
        ended = await env.deliver(press("ou_rc_b", "move", app="recAppB01", to="rejected"))
        assert ended.toast
        await edited
        await env.settle()
        app = await state(env, "app:recAppB01")
        assert app.stage == "rejected" and rows(env, "tblApplications")["recAppB01"]["阶段"] == "未录用"
        assert not [m.text for m in env.messages(to="ou_rc_b")[before:] if "未生效" in m.text]
        assert any(h.action == "stale_read" for h in app.history)
