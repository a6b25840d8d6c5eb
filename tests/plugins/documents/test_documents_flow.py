"""documents end to end on time-skipping Temporal with the Feishu stand-in: a document round where one
hospital is late and its head is told, and an upload round answered by file and by the card's link."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from documents_helpers import (
    A_RESP,
    B_HEAD,
    B_RESP,
    C_HEAD,
    C_RESP,
    HQ,
    a_round,
    card_text,
    config,
    file_message,
    press,
    rows,
    send,
    state,
)

import plugins.documents as documents
from engine.sdk import all_notices
from engine.testing import moments
from plugins.documents.config import default_ladder


async def test_a_document_round_with_one_hospital_late_and_escalated(scenario_harness: Any) -> None:
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())  # 10:00 on a working day, far from days off
        calendar = env.calendar()
        deadline = calendar.next_workday(start.date() + timedelta(days=6))
        await send(env, a_round("DOC-2612-IPC", deadline))
        # each hospital's responsible person has a card in the hospital's language; headquarters a status card
        (a_card,), (c_card,) = env.messages(to=A_RESP), env.messages(to=C_RESP)
        assert "总部下发：院感防控新规" in card_text(a_card) and "已阅知" in card_text(a_card)
        assert "From headquarters" in card_text(c_card) and "I have read it" in card_text(c_card)
        (status_card,) = env.messages(to=HQ)
        assert "3 家医院已回复 0 家" in card_text(status_card)
        assert {k: r["状态"] for k, r in rows(env).items()} == {
            "DOC-2612-IPC/hosp_a": "待回复", "DOC-2612-IPC/hosp_b": "待回复", "DOC-2612-IPC/hosp_c": "待回复"}

        answered = await env.deliver(press("acknowledge", "DOC-2612-IPC", "hosp_a", A_RESP))
        assert answered.toast == "已确认阅知：院感防控新规"
        english = await env.deliver(press("acknowledge", "DOC-2612-IPC", "hosp_c", C_RESP))
        assert english.toast == "Acknowledged: 院感防控新规"
        (status_card,) = env.messages(to=HQ)  # the same card, filled in
        assert status_card.updated and "3 家医院已回复 2 家" in card_text(status_card)
        assert "已回复：院感防控新规" in card_text(env.messages(to=A_RESP)[0])  # the pressed card says so

        # B's ladder on its working days: 3 and 1 days before, on the deadline, then late
        plan = {d.step: d.at for d in all_notices(deadline, default_ladder(), calendar)}
        await env.advance_to(plan["due"] + timedelta(minutes=1))
        # the card, the reminders and the deadline's (two that a weekend puts on one day are one message)
        assert len(env.messages(to=B_RESP)) == 1 + len([s for s in plan if not s.startswith("after:")])
        assert "今日截止" in card_text(env.messages(to=B_RESP)[-1])
        assert len(env.messages(to=A_RESP)) == 1 and env.messages(to=B_HEAD) == []  # A answered: no reminders

        await env.advance_to(plan["after:responsible:1"] + timedelta(minutes=1))  # the next working morning
        assert "已逾期" in card_text(env.messages(to=B_RESP)[-1])
        summary = env.messages(to=HQ)[-1]
        assert "已过截止日期" in card_text(summary) and "未回复：仁诺B院" in card_text(summary)
        assert env.messages(to=B_HEAD) == []
        await env.advance_to(plan["after:head:1"] + timedelta(minutes=1))
        (escalation,) = env.messages(to=B_HEAD)
        assert "仁诺B院 尚未回复" in card_text(escalation) and env.messages(to=C_HEAD) == []
        assert (await state(env, "DOC-2612-IPC")).hospital("hosp_b").escalated  # type: ignore[union-attr]

        late = await env.deliver(press("acknowledge", "DOC-2612-IPC", "hosp_b", B_RESP))
        assert late.toast == "已确认阅知：院感防控新规"
        final = await state(env, "DOC-2612-IPC")
        assert final.status == "all_in"
        b = final.hospital("hosp_b")
        assert b is not None and b.late and b.answered_by == B_RESP
        assert "全部医院已回复" in card_text(env.messages(to=HQ)[-1])
        row = rows(env)["DOC-2612-IPC/hosp_b"]
        assert row["状态"] == "已阅知" and row["逾期"] is True and row["已上报院长"] is True and row["提醒次数"] >= 4
        assert rows(env)["DOC-2612-IPC/hosp_a"]["逾期"] is False


async def test_an_upload_round_answered_by_file_and_by_link(scenario_harness: Any) -> None:
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        deadline = env.calendar().next_workday(start.date() + timedelta(days=3))
        await send(env, a_round("DOC-2612-QUALITY", deadline, kind="upload", title="11月医疗质量月报"))
        assert "材料链接" in card_text(env.messages(to=A_RESP)[0])

        await env.deliver(file_message("DOC-2612-QUALITY 仁诺A院.xlsx", A_RESP, message_id="om_file_a", at=start))
        (thanks,) = [m for m in env.messages(to=None) if m.reply_to == "om_file_a"]
        assert thanks.text.startswith("已收到仁诺A院的「DOC-2612-QUALITY 仁诺A院.xlsx」")
        refused = await env.deliver(press("submit", "DOC-2612-QUALITY", "hosp_b", B_RESP, link="not a link"))
        assert refused.toast == "请填写材料链接（以 http 开头）"
        await env.deliver(press("submit", "DOC-2612-QUALITY", "hosp_b", B_RESP,
                                link="https://example.feishu.cn/drive/file/b-quality"))
        # a file without the round in its name: the sender is told how to name it
        await env.deliver(file_message("质量月报.xlsx", C_RESP, message_id="om_file_c0", at=start))
        (ask,) = [m for m in env.messages() if m.reply_to == "om_file_c0"]
        assert "DOC-" in ask.text
        # C's file comes the whole way: Feishu's push of the file message, through the ingress
        pushed = env.standin.file_message_event("doc-2612-quality Rennuo C.pdf", C_RESP)
        await env.push("im.message.receive_v1", pushed)
        (thanks_c,) = [m for m in env.messages() if m.reply_to == pushed["message"]["message_id"]]
        assert thanks_c.text.startswith('Received "doc-2612-quality Rennuo C.pdf" for Rennuo C')

        final = await state(env, "DOC-2612-QUALITY")
        assert final.status == "all_in" and [h.status for h in final.hospitals] == ["uploaded"] * 3
        assert final.hospital("hosp_a").files[0].file_key == "file_v3_om_file_a"  # type: ignore[union-attr]
        table = rows(env)
        assert table["DOC-2612-QUALITY/hosp_b"]["材料"] == "https://example.feishu.cn/drive/file/b-quality"
        assert table["DOC-2612-QUALITY/hosp_a"]["材料"] == "DOC-2612-QUALITY 仁诺A院.xlsx"
        assert "全部医院已回复" in card_text(env.messages(to=HQ)[-1])
        assert env.messages(to=B_RESP)[1:] == []  # answered before any reminder (none for days already past)


async def test_a_row_added_to_the_rounds_table_sends_the_round(scenario_harness: Any) -> None:
    from engine.sdk import cells
    from engine.testing.events import record_changed

    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        deadline = start.date() + timedelta(days=8)
        rounds = env.standin.state.table("bascnDocuments", "tblRounds", create=True)["records"]
        rounds["recR1"] = {"record_id": "recR1", "fields": {
            "轮次编号": "DOC-2612-FORM", "标题": "设备安全承诺书", "类型": "上报", "说明": "院长签字后上传",
            "截止日期": cells.encode_date(deadline, "Asia/Shanghai"), "医院": ["仁诺A院", "hosp_c"],
            "发起人": [{"id": "ou_doc_sender"}]}}
        await env.deliver(record_changed("bascnDocuments", "tblRounds", "recR1", action="record_added",
                                         after=rounds["recR1"]["fields"], create_time=start))
        sent = await state(env, "DOC-2612-FORM")
        assert (sent.kind, sent.title, sent.deadline) == ("upload", "设备安全承诺书", deadline)
        assert [h.site for h in sent.hospitals] == ["hosp_a", "hosp_c"] and env.messages(to=B_RESP) == []
        assert "Link to the material" in card_text(env.messages(to=C_RESP)[0])
        assert len(env.messages(to="ou_doc_sender")) == 1 and len(env.messages(to=HQ)) == 1  # status cards
        # a row naming a hospital the organization does not have sends nothing, and says why in the history
        rounds["recR2"] = {"record_id": "recR2", "fields": {"标题": "x", "截止日期": cells.encode_date(
            deadline, "Asia/Shanghai"), "医院": ["仁诺Z院"], "发起人": [{"id": HQ}]}}
        await env.deliver(record_changed("bascnDocuments", "tblRounds", "recR2", action="record_added",
                                         after=rounds["recR2"]["fields"], create_time=start))
        refused = await state(env, "DOC-RECR2")
        assert refused.status == "refused" and "unknown site" in refused.history[-1].note
        assert "轮次 DOC-RECR2（x）未下发：其中的医院不在本集团的配置中" in env.messages(to=HQ)[-1].text
        # a row without a round id is sent under DOC-<record id>, written into the row
        rounds["recR3"] = {"record_id": "recR3", "fields": {"标题": "通知", "截止日期": cells.encode_date(
            deadline, "Asia/Shanghai")}}
        await env.deliver(record_changed("bascnDocuments", "tblRounds", "recR3", action="record_added",
                                         after=rounds["recR3"]["fields"], create_time=start))
        assert (await state(env, "DOC-RECR3")).status == "open" and rounds["recR3"]["fields"]["轮次编号"] == "DOC-RECR3"
        assert rounds["recR1"]["fields"]["轮次编号"] == "DOC-2612-FORM"  # kept as written
