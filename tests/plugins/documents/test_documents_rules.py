"""documents' pure parts: who may answer, lateness, the summary's moment, routing, and every template."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path

import plugins.documents as plugin
from engine.sdk import CardAction, WorkCalendar
from engine.sdk import actions as act
from engine.templates import TemplateEngine
from engine.testing.events import card_press, message, record_changed
from plugins.documents import rules
from plugins.documents.models import AnswerRequest, Hospital, Round

SHANGHAI = WorkCalendar("Asia/Shanghai")


def a_round(kind: str = "read") -> Round:
    return Round(round_id="DOC-1", kind=kind, title="T", deadline=date(2026, 12, 15), status="open",  # type: ignore[arg-type]
                 hospitals=[Hospital(site="a", responsible=["ou_a"], head="ou_head"), Hospital(site="b")])


def test_who_may_answer_and_what_is_refused() -> None:
    r = a_round()
    a = r.hospital("a")
    ok = AnswerRequest(op="acknowledge", site="a", actor_open_id="ou_a")
    assert rules.check_answer(r, a, ok) is None
    assert rules.check_answer(r, a, ok.model_copy(update={"actor_open_id": "ou_head"})) is None  # the head may
    assert rules.check_answer(r, a, ok.model_copy(update={"actor_open_id": "ou_x"})) == "not_yours"
    assert rules.check_answer(r, a, ok.model_copy(update={"op": "submit"})) == "wrong_kind"
    assert rules.check_answer(r, None, ok) == "closed"
    upload = a_round("upload")
    submit = AnswerRequest(op="submit", site="a", actor_open_id="ou_a", link="see the drive")
    assert rules.check_answer(upload, upload.hospital("a"), submit) == "need_link"
    assert rules.check_answer(upload, upload.hospital("a"),
                              submit.model_copy(update={"link": "https://x.feishu.cn/drive/1"})) is None


def test_late_is_judged_in_the_hospitals_zone_and_the_summary_waits_for_a_working_morning() -> None:
    deadline = date(2026, 12, 11)  # a Friday
    assert not rules.late(deadline, datetime(2026, 12, 11, 15, 59, tzinfo=UTC), SHANGHAI)  # 23:59 in Shanghai
    assert rules.late(deadline, datetime(2026, 12, 11, 16, 0, tzinfo=UTC), SHANGHAI)
    summary = rules.summary_moment(deadline, SHANGHAI, time(9, 0))
    assert SHANGHAI.local(summary).replace(tzinfo=None) == datetime(2026, 12, 14, 9, 0)  # Monday morning


def test_routing_presses_files_questions_and_rows() -> None:
    from engine.config import parse_config
    from engine.plugins import load_plugins
    from engine.testing.kit import org_config

    plugin_set = load_plugins(modules={"documents": plugin}, entry_points=False)
    org = parse_config(org_config(plugins=["documents"]), Path("t.toml"), plugin_set.scenarios).orgs["acme"]
    press = card_press({"scenario": "documents", "op": "submit", "round": "doc-1", "site": "a"}, "ou_a",
                       form={"link": "https://x"}, event_id="e1")
    (update,) = plugin.route_event(event=press, org=org)
    assert isinstance(update, act.UpdateWorkflow) and update.key == "DOC-1" and update.arg.link == "https://x"
    other = CardAction(event_id="e2", event_type="card.action.trigger", create_time=datetime.now(UTC),
                       operator_open_id="ou_a", action_value={"scenario": "repair", "op": "accept"})
    assert plugin.route_event(event=other, org=org) is None
    file = message("", chat_type="p2p", message_id="om_f").model_copy(update={
        "message_type": "file", "raw": {"message": {"content": json.dumps(
            {"file_key": "file_v3_x", "file_name": "DOC-12-仁诺A院.xlsx"})}}})
    (signal,) = plugin.route_event(event=file, org=org)
    assert isinstance(signal, act.SignalWorkflow) and signal.key == "DOC-12" and signal.arg.message_id == "om_f"
    unnamed = file.model_copy(update={"raw": {"message": {"content": json.dumps(
        {"file_key": "file_v3_y", "file_name": "报表.xlsx"})}}})
    (ask,) = plugin.route_event(event=unnamed, org=org)
    assert isinstance(ask, act.Reply) and ask.template == "documents:name_the_round"
    (status,) = plugin.route_event(event=message("DOC-12 状态", chat_type="group", message_id="om_q"), org=org)
    assert isinstance(status, act.QueryWorkflow) and status.key == "DOC-12" and status.reply.locale == "zh_CN"
    assert plugin.route_event(event=message("hello", chat_type="group"), org=org) is None
    row = record_changed("bascnDocuments", "tblRounds", "recAbc", action="record_added", after={"标题": "x"})
    (start,) = plugin.route_event(event=row, org=org)
    assert isinstance(start, act.StartWorkflow) and start.key == "DOC-RECABC" and start.once
    named = record_changed("bascnDocuments", "tblRounds", "recAbd", action="record_added",
                           after={"轮次编号": "DOC-2612-Q"})
    assert plugin.route_event(event=named, org=org)[0].key == "DOC-2612-Q"
    # a real event names the field by its id: found with field_ids, else the round takes the record id
    by_id = record_changed("bascnDocuments", "tblRounds", "recAbe", action="record_added",
                           after={"fldRound": "DOC-2612-R"})
    assert plugin.route_event(event=by_id, org=org)[0].key == "DOC-RECABE"
    settings = {"documents": {"field_ids": {"round_id": "fldRound"}}}
    org_ids = parse_config(org_config(plugins=["documents"], settings=settings), Path("t.toml"),
                           plugin_set.scenarios).orgs["acme"]
    assert plugin.route_event(event=by_id, org=org_ids)[0].key == "DOC-2612-R"
    assert plugin.route_event(event=record_changed("bascnDocuments", "tblRounds", "recAbc"), org=org) is None


def test_every_template_renders_in_both_locales() -> None:
    engine = TemplateEngine({"documents": Path(plugin.__file__).parent / "templates"})
    assert engine.check_all() == []
    for name in engine.names():
        for locale in ("zh_CN", "en_US"):
            assert engine.render_message(name, engine.sample_context(name), locale=locale).content


def test_a_round_sent_late_skips_the_reminders_already_past() -> None:
    from plugins.documents.config import default_ladder

    deadline = date(2026, 12, 11)  # a Friday: reminders on Tuesday (3 days) and Thursday (1 day), Friday itself
    sent = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)  # Thursday 10:00 in Shanghai
    assert rules.passed_notices(deadline, sent, default_ladder(), SHANGHAI) == ["before:3", "before:1"]
    assert rules.passed_notices(deadline, datetime(2026, 12, 1, tzinfo=UTC), default_ladder(), SHANGHAI) == []
