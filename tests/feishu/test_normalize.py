"""Normalization of realistic Feishu payloads (shapes from the Feishu Open Platform event docs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from engine.events import (
    ApprovalStatusChanged,
    BitableRecordChanged,
    BotAddedToChat,
    CardAction,
    FeishuEvent,
    MessageReceived,
    UserCreated,
    UserDeleted,
)
from engine.feishu.normalize import MalformedEvent, envelope_create_time, normalize, normalize_all
from engine.feishu.standin import events as standin_events

BOT = "ou_bot_0001"
HEADER = {
    "event_id": "5e3702a84e847582be8db7fb73283c02",
    "token": "v-token",
    "create_time": "1608725989000",
    "tenant_key": "t_hospital",
    "app_id": "cli_test",
}


def v2(event_type: str, event: dict, **header: str) -> dict:
    return {"schema": "2.0", "header": {**HEADER, "event_type": event_type, **header}, "event": event}


def message(text: str, mentions: list[dict], *, message_type: str = "text", content: dict | None = None) -> dict:
    return v2("im.message.receive_v1", {
        "sender": {"sender_id": {"union_id": "on_1", "user_id": "u_1", "open_id": "ou_sender"},
                   "sender_type": "user", "tenant_key": "t_hospital"},
        "message": {
            "message_id": "om_5ce6d572455d361153b7cb51da133945",
            "root_id": "om_root", "parent_id": "om_parent", "create_time": "1609073151345",
            "chat_id": "oc_5ce6d572455d361153b7xx51da133945", "chat_type": "group",
            "message_type": message_type,
            "content": json.dumps(content if content is not None else {"text": text}, ensure_ascii=False),
            "mentions": mentions,
        },
    })


def mention(key: str, open_id: str, name: str, **extra: str) -> dict:
    return {"key": key, "id": {"union_id": "on_x", "user_id": "", "open_id": open_id}, "name": name,
            "tenant_key": "t_hospital", **extra}


# ------------------------------------------------------------------------------------- messages


def test_text_message_with_bot_mention() -> None:
    body = message("@_user_1 校准 设备 A-12 ", [mention("@_user_1", BOT, "运维机器人")])
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, MessageReceived)
    assert event.event_id == HEADER["event_id"]
    assert event.event_type == "im.message.receive_v1"
    assert (event.app_id, event.tenant_key) == ("cli_test", "t_hospital")
    assert event.create_time == datetime(2020, 12, 23, 12, 19, 49, tzinfo=UTC)
    assert event.text == "校准 设备 A-12"
    assert event.mentions_bot is True
    assert event.mentions[0].is_bot and event.mentions[0].open_id == BOT
    assert (event.chat_id, event.chat_type, event.message_id) == (
        "oc_5ce6d572455d361153b7xx51da133945", "group", "om_5ce6d572455d361153b7cb51da133945")
    assert (event.sender_open_id, event.sender_user_id) == ("ou_sender", "u_1")
    assert (event.root_id, event.parent_id) == ("om_root", "om_parent")
    assert event.raw["message"]["message_id"] == event.message_id
    assert "token" not in json.dumps(event.raw)  # the verification token stays out of raw


def test_mention_keys_removed_without_eating_longer_keys() -> None:
    mentions = [mention("@_user_1", "ou_a", "A"), mention(f"@_user_{10}", "ou_b", "B")]
    event = normalize(message("hi @_user_1 and @_user_10 ok", mentions), bot_open_id=BOT)
    assert isinstance(event, MessageReceived)
    assert event.text == "hi and ok"
    assert event.mentions_bot is False


def test_mention_of_another_bot_is_not_ours_when_we_know_our_id() -> None:
    other = mention("@_user_1", "ou_other_bot", "Other", mentioned_type="bot")
    assert normalize(message("@_user_1 hi", [other]), bot_open_id=BOT).mentions_bot is False
    # Without our own open_id the bot mention type is the only evidence.
    assert normalize(message("@_user_1 hi", [other]), bot_open_id=None).mentions_bot is True


def test_post_message_text_is_flattened() -> None:
    content = {"title": "交接班", "content": [[{"tag": "at", "user_id": "@_user_1", "user_name": "bot"},
                                              {"tag": "text", "text": " 夜班 3 床"}],
                                             [{"tag": "a", "text": "链接", "href": "https://example.org"}]]}
    event = normalize(message("", [mention("@_user_1", BOT, "bot")], message_type="post", content=content),
                      bot_open_id=BOT)
    assert event.message_type == "post"
    # the mention takes the space after it with it, as in a text message ("@_user_1 夜班" → "夜班")
    assert event.text == "交接班\n夜班 3 床\n链接"
    assert event.mentions_bot


# ------------------------------------------------- the text a scenario sees (issue 15, item 2)

BOT_MENTION = mention("@_user_1", BOT, "bot")


@pytest.mark.parametrize(("typed", "seen"), [
    # "@所有人" writes @_all into the text but nothing into mentions: it was left in, and no command matched
    ("@_user_1 @_all 建群 协和医院 CT128 华北", "建群 协和医院 CT128 华北"),
    ("@_all @_user_1 建群 协和医院 CT128 华北", "建群 协和医院 CT128 华北"),
    ("@_user_1 建群 协和医院 CT128 华北 @_all", "建群 协和医院 CT128 华北"),
    ("@_user_1 请 @_all 注意", "请 注意"),
    ("@_user_1建群 协和医院 CT128", "建群 协和医院 CT128"),
    ("@_user_1", ""),
    ("  @_user_1   校准 A-12  ", "校准 A-12"),
    ("@_user_1 line one\nline two", "line one\nline two"),
])
def test_text_message_is_what_was_typed_without_any_mention(typed: str, seen: str) -> None:
    event = normalize(message(typed, [BOT_MENTION]), bot_open_id=BOT)
    assert event.text == seen
    assert event.mentions_bot and [m.key for m in event.mentions] == ["@_user_1"]


def test_all_mention_alone_is_not_a_mention_of_the_bot() -> None:
    event = normalize(message("@_all 建群 协和医院 CT128 华北", []), bot_open_id=BOT)
    assert event.text == "建群 协和医院 CT128 华北"
    assert event.mentions_bot is False


def post(*paragraphs: list[dict], title: str = "") -> dict:
    return {"title": title, "content": list(paragraphs)}


AT_BOT = {"tag": "at", "user_id": "@_user_1", "user_name": "bot"}


@pytest.mark.parametrize(("element", "seen"), [
    ({"tag": "text", "text": "建群 协和医院 CT128 华北"}, "建群 协和医院 CT128 华北"),
    ({"tag": "text", "text": "加粗", "style": ["bold"]}, "加粗"),
    ({"tag": "a", "text": "设备清单", "href": "https://example.org/list"}, "设备清单"),
    ({"tag": "a", "text": "", "href": "https://example.org/list"}, "https://example.org/list"),
    ({"tag": "at", "user_id": "@_user_2", "user_name": "张三"}, ""),
    ({"tag": "at", "user_id": "@_all", "user_name": "所有人"}, ""),
    ({"tag": "img", "image_key": "img_v2_x", "width": 300, "height": 300}, ""),
    ({"tag": "media", "file_key": "file_v2_x", "image_key": "img_v2_x"}, ""),
    ({"tag": "emotion", "emoji_type": "SMILE"}, ""),
    ({"tag": "hr"}, ""),
    ({"tag": "code_block", "language": "PYTHON", "text": "if x:\n    print(x)\n"}, "if x:\n    print(x)"),
    ({"tag": "md", "text": "**建群** 协和医院 CT128"}, "**建群** 协和医院 CT128"),
    ({"tag": "md", "text": "@_all 建群 协和医院 CT128"}, "建群 协和医院 CT128"),
])
def test_post_element_text_after_a_bot_mention(element: dict, seen: str) -> None:
    """Every rich-text tag (FEISHU_NOTES.md): the text it holds is what the person typed."""
    mentions = [BOT_MENTION, mention("@_user_2", "ou_zhang", "张三")]
    content = post([AT_BOT, {"tag": "text", "text": " "}, element])
    event = normalize(message("", mentions, message_type="post", content=content), bot_open_id=BOT)
    assert event.text == seen
    assert event.mentions_bot


def test_post_with_every_tag_reads_as_typed() -> None:
    content = post(
        [AT_BOT, {"tag": "text", "text": " "}, {"tag": "at", "user_id": "@_all", "user_name": "所有人"},
         {"tag": "text", "text": " 建群 协和医院 CT128 华北"}, {"tag": "emotion", "emoji_type": "OK"}],
        [{"tag": "text", "text": "资料 "}, {"tag": "a", "text": "链接", "href": "https://example.org"},
         {"tag": "text", "text": " 和 "}, {"tag": "at", "user_id": "@_user_2", "user_name": "张三"},
         {"tag": "text", "text": " 请看"}],
        [{"tag": "img", "image_key": "img_v2_x"}],
        [{"tag": "hr"}],
        [{"tag": "code_block", "language": "GO", "text": "a := 1"}],
        [{"tag": "md", "text": "- 第一\n- 第二"}],
        [{"tag": "media", "file_key": "file_v2_x", "image_key": "img_v2_x"}],
        title="新项目",
    )
    mentions = [BOT_MENTION, mention("@_user_2", "ou_zhang", "张三")]
    event = normalize(message("", mentions, message_type="post", content=content), bot_open_id=BOT)
    assert event.text == "新项目\n建群 协和医院 CT128 华北\n资料 链接 和 请看\n\n\na := 1\n- 第一\n- 第二"


def test_post_wrapped_in_a_locale_key_and_broken_elements() -> None:
    content = {"zh_cn": post([AT_BOT, {"tag": "text", "text": " 建群 协和医院 CT128"}, "junk", {"tag": "text"},
                              {"tag": "text", "text": 5}], "not a paragraph")}
    event = normalize(message("", [BOT_MENTION], message_type="post", content=content), bot_open_id=BOT)
    assert event.text == "建群 协和医院 CT128"


@pytest.mark.parametrize(("message_type", "content"), [
    ("image", {"image_key": "img_v2_x"}),
    ("file", {"file_key": "file_v2_x", "file_name": "报告.pdf"}),
    ("audio", {"file_key": "file_v2_x", "duration": 2000}),
    ("media", {"file_key": "file_v2_x", "image_key": "img_v2_x", "file_name": "a.mp4", "duration": 2000}),
    ("sticker", {"file_key": "file_v2_x"}),
    ("share_chat", {"chat_id": "oc_x"}),
    ("share_user", {"user_id": "ou_x"}),
    ("interactive", {"title": "卡片", "elements": [[{"tag": "text", "text": "x"}]]}),
])
def test_message_types_without_typed_text(message_type: str, content: dict) -> None:
    event = normalize(message("", [BOT_MENTION], message_type=message_type, content=content), bot_open_id=BOT)
    assert event.text == "" and event.message_type == message_type


def test_image_message_has_no_text() -> None:
    event = normalize(message("", [], message_type="image", content={"image_key": "img_v2_x"}), bot_open_id=BOT)
    assert event.text == "" and event.message_type == "image"


def test_standin_message_builder_round_trip() -> None:
    event_body = standin_events.message_event("status A-12", "oc_1", "ou_user", bot_open_id=BOT)
    body = standin_events.envelope_v2("im.message.receive_v1", event_body, app_id="cli_test",
                                      tenant_key="t_hospital", token="tok")
    event = normalize(body, bot_open_id=BOT)
    assert event.text == "status A-12" and event.mentions_bot and event.chat_id == "oc_1"


@pytest.mark.parametrize(("mutate", "complaint"), [
    (lambda b: b["event"].pop("message"), "event.message"),
    (lambda b: b["event"]["message"].pop("chat_id"), "event.message.chat_id"),
    (lambda b: b["event"]["message"].__setitem__("content", "{not json"), "event.message.content"),
    (lambda b: b["header"].pop("event_id"), "header.event_id"),
    (lambda b: b["header"].__setitem__("create_time", "yesterday"), "header.create_time"),
    (lambda b: b["event"]["message"].__setitem__("mentions", ["x"]), "event.message.mentions[0]"),
])
def test_malformed_message_says_what_is_wrong(mutate, complaint: str) -> None:
    body = message("hi", [])
    mutate(body)
    with pytest.raises(MalformedEvent, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        normalize(body, bot_open_id=BOT)


# ---------------------------------------------------------------------------------------- cards


def test_card_action_trigger() -> None:
    body = v2("card.action.trigger", {
        "operator": {"tenant_key": "t_hospital", "user_id": "u_9", "open_id": "ou_nurse", "union_id": "on_9"},
        "token": "c-295ee57216a5dc9de90fefd0aadb4b1d7d337dc4",
        "action": {"value": {"op": "confirm", "device": "A-12"}, "tag": "button",
                   "form_value": {"note": "ok"}, "name": "confirm_btn"},
        "host": "im_message",
        "context": {"open_message_id": "om_card", "open_chat_id": "oc_ward"},
    }, create_time="1703224553946000")  # callbacks stamp microseconds
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, CardAction)
    assert event.action_value == {"op": "confirm", "device": "A-12"}
    assert (event.action_tag, event.form_value) == ("button", {"note": "ok"})
    assert (event.operator_open_id, event.operator_user_id) == ("ou_nurse", "u_9")
    assert (event.open_message_id, event.open_chat_id) == ("om_card", "oc_ward")
    assert event.token == "c-295ee57216a5dc9de90fefd0aadb4b1d7d337dc4"
    assert event.create_time.year == 2023


def test_card_action_string_value_and_bad_form() -> None:
    body = v2("card.action.trigger", {"action": {"value": '{"op": "x"}', "tag": "button"}})
    assert normalize(body, bot_open_id=None).action_value == {"op": "x"}
    body["event"]["action"]["value"] = "plain"
    assert normalize(body, bot_open_id=None).action_value == {"value": "plain"}
    body["event"]["action"]["form_value"] = ["not", "an", "object"]
    with pytest.raises(MalformedEvent, match="form_value"):
        normalize(body, bot_open_id=None)
    del body["event"]["action"]
    with pytest.raises(MalformedEvent, match=r"event\.action"):
        normalize(body, bot_open_id=None)


# -------------------------------------------------------------------------------------- bitable


def bitable_body(actions: list[dict]) -> dict:
    return v2("drive.file.bitable_record_changed_v1", {
        "file_type": "bitable", "file_token": "bascnxxxxxx", "table_id": "tblxxxx", "revision": 12,
        "operator_id": {"union_id": "on_op", "user_id": "u_op", "open_id": "ou_op"},
        "action_list": actions, "subscriber_id_list": [], "update_time": 1652677457,
    }, event_id="85ec04b2f6cff27a1bf249b26fbabcef")


def test_bitable_one_record() -> None:
    body = bitable_body([{
        "record_id": "recAAA", "action": "record_edited",
        "before_value": [{"field_id": "fldStatus", "field_value": "\"待校准\""}],
        "after_value": [{"field_id": "fldStatus", "field_value": "\"已校准\""},
                        {"field_id": "fldCount", "field_value": "666"},
                        {"field_id": "fldPlain", "field_value": "not json"}],
    }])
    (event,) = normalize_all(body, bot_open_id=BOT)
    assert isinstance(event, BitableRecordChanged)
    assert event.event_id == "85ec04b2f6cff27a1bf249b26fbabcef"  # no suffix for a single record
    assert (event.app_token, event.table_id, event.record_id, event.action) == (
        "bascnxxxxxx", "tblxxxx", "recAAA", "record_edited")
    assert event.before == {"fldStatus": "待校准"}
    assert event.after == {"fldStatus": "已校准", "fldCount": 666, "fldPlain": "not json"}
    assert event.operator_open_id == "ou_op"
    assert normalize(body, bot_open_id=BOT) == event


def test_bitable_several_records_become_several_events() -> None:
    body = bitable_body([
        {"record_id": "rec1", "action": "record_added", "after_value": [{"field_id": "f", "field_value": "1"}]},
        {"record_id": "rec2", "action": "record_deleted", "before_value": [{"field_id": "f", "field_value": "2"}]},
    ])
    events = normalize_all(body, bot_open_id=BOT)
    assert [e.event_id for e in events] == ["85ec04b2f6cff27a1bf249b26fbabcef:0",
                                            "85ec04b2f6cff27a1bf249b26fbabcef:1"]
    assert [(e.record_id, e.action, e.before, e.after) for e in events] == [
        ("rec1", "record_added", {}, {"f": 1}), ("rec2", "record_deleted", {"f": 2}, {})]
    with pytest.raises(ValueError, match="normalize_all"):
        normalize(body, bot_open_id=BOT)


def test_bitable_from_standin_builder_and_malformed() -> None:
    event_body = standin_events.bitable_record_changed("bas1", "tbl1", "rec1", operator_open_id="ou_1",
                                                       after={"状态": "已校准"})
    body = v2("drive.file.bitable_record_changed_v1", event_body)
    (event,) = normalize_all(body, bot_open_id=None)
    assert list(event.after.values()) == ["已校准"]
    body["event"]["action_list"][0].pop("record_id")
    with pytest.raises(MalformedEvent, match=r"action_list\[0\].record_id"):
        normalize_all(body, bot_open_id=None)
    body["event"]["action_list"] = "nope"
    with pytest.raises(MalformedEvent, match="action_list"):
        normalize_all(body, bot_open_id=None)


# ------------------------------------------------------------------------------ other event types


def test_bot_added_to_chat() -> None:
    body = v2("im.chat.member.bot.added_v1", {
        "chat_id": "oc_9e9619b938c9571c1c3165681cdaead5",
        "operator_id": {"union_id": "on_o", "user_id": "u_o", "open_id": "ou_admin"},
        "external": False, "operator_tenant_key": "t_hospital", "name": "ICU 交接群",
        "i18n_names": {"zh_cn": "ICU 交接群", "en_us": "ICU handover"},
    })
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, BotAddedToChat)
    assert (event.chat_id, event.chat_name, event.operator_open_id) == (
        "oc_9e9619b938c9571c1c3165681cdaead5", "ICU 交接群", "ou_admin")
    body["event"].pop("chat_id")
    with pytest.raises(MalformedEvent, match=r"event\.chat_id"):
        normalize(body, bot_open_id=BOT)


def test_user_created() -> None:
    body = v2("contact.user.created_v3", {"object": {
        "open_id": "ou_7dab8a3d3cdcc9da365777c7ad535d62", "union_id": "on_5", "user_id": "e33ggbyz",
        "name": "张三", "en_name": "San Zhang", "email": "zhangsan@example.com", "mobile": "+8613000000000",
        "department_ids": ["od-4e6ac4d14bcd5071a37a39de902c7141"], "employee_no": "1",
        "status": {"is_frozen": False, "is_resigned": False, "is_activated": True},
    }})
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, UserCreated)
    assert (event.open_id, event.user_id, event.name, event.email, event.mobile, event.employee_no) == (
        "ou_7dab8a3d3cdcc9da365777c7ad535d62", "e33ggbyz", "张三", "zhangsan@example.com", "+8613000000000", "1")
    assert event.department_ids == ["od-4e6ac4d14bcd5071a37a39de902c7141"]
    body["event"]["object"]["department_ids"] = "od-1"
    with pytest.raises(MalformedEvent, match="department_ids"):
        normalize(body, bot_open_id=BOT)


def test_user_deleted() -> None:
    """contact.user.deleted_v3: the departments come from ``old_object`` (the user's before the removal)."""
    body = v2("contact.user.deleted_v3", {
        "object": {"open_id": "ou_left", "union_id": "on_6", "user_id": "f44hh", "name": "李四",
                   "department_ids": [], "status": {"is_resigned": True}},
        "old_object": {"open_id": "ou_left", "department_ids": ["od-ortho"]}})
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, UserDeleted)
    assert (event.open_id, event.user_id, event.name, event.department_ids) == ("ou_left", "f44hh", "李四",
                                                                                ["od-ortho"])
    body["event"]["old_object"] = {"department_ids": "od-1"}
    with pytest.raises(MalformedEvent, match="department_ids"):
        normalize(body, bot_open_id=BOT)
    body["event"].pop("object")
    with pytest.raises(MalformedEvent, match=r"event\.object"):
        normalize(body, bot_open_id=BOT)


def test_v1_approval_instance() -> None:
    body = {
        "ts": "1502199207.7171419", "uuid": "bc447199585340d1f3728d26b1c0297a",
        "token": "v-token", "type": "event_callback",
        "event": {"app_id": "cli_test", "approval_code": "7C468A54-8745-2245-9675-08B7C63E7A85",
                  "instance_code": "81D31358-93AF-92D6-7425-01A5D67C4E71", "instance_operate_time": "1666079207003",
                  "operate_time": "1666079207003", "status": "APPROVED", "tenant_key": "t_hospital",
                  "type": "approval_instance", "uuid": "inner"},
    }
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, ApprovalStatusChanged)
    assert event.event_id == "bc447199585340d1f3728d26b1c0297a"  # dedupe on the envelope's uuid
    assert (event.approval_code, event.instance_code, event.status) == (
        "7C468A54-8745-2245-9675-08B7C63E7A85", "81D31358-93AF-92D6-7425-01A5D67C4E71", "APPROVED")
    assert (event.app_id, event.tenant_key) == ("cli_test", "t_hospital")
    assert event.create_time == datetime.fromtimestamp(1502199207.7171419, tz=UTC)
    assert envelope_create_time(body) == event.create_time
    body["event"].pop("status")
    with pytest.raises(MalformedEvent, match=r"event\.status"):
        normalize(body, bot_open_id=BOT)


def test_v1_approval_task_becomes_a_change_of_its_instance() -> None:
    body = {
        "ts": "1502199207.7171419", "uuid": "task-uuid-1", "token": "v-token", "type": "event_callback",
        "event": {"app_id": "cli_test", "approval_code": "AP-1", "instance_code": "INST-1", "task_id": "T-9",
                  "open_id": "ou_next", "status": "TRANSFERRED", "operate_time": "1666079207003",
                  "tenant_key": "t_hospital", "type": "approval_task"},
    }
    event = normalize(body, bot_open_id=BOT)
    assert isinstance(event, ApprovalStatusChanged)
    assert (event.event_type, event.event_id, event.instance_code, event.task_id, event.status) == (
        "approval_task", "task-uuid-1", "INST-1", "T-9", "TRANSFERRED")
    assert normalize({**body, "schema": "2.0"}, bot_open_id=BOT) is None  # a v1 type in a v2 envelope
    body["event"].pop("instance_code")
    with pytest.raises(MalformedEvent, match=r"event\.instance_code"):
        normalize(body, bot_open_id=BOT)


def test_standin_v1_builder() -> None:
    body = standin_events.approval_v1("AP-1", "INST-1", "REJECTED", app_id="cli_test", tenant_key="t",
                                      token="tok", event_id="uuid-1")
    event = normalize(body, bot_open_id=None)
    assert (event.event_id, event.status, event.instance_code) == ("uuid-1", "REJECTED", "INST-1")


# ------------------------------------------------------------------------------------- unknown


def test_unknown_types_yield_nothing() -> None:
    assert normalize(v2("im.message.reaction.created_v1", {"message_id": "om"}), bot_open_id=BOT) is None
    assert normalize_all(v2("im.message.reaction.created_v1", {}), bot_open_id=BOT) == []
    # A v1 envelope of a type we only know as v2 is not one we subscribed to.
    assert normalize({"uuid": "u", "ts": "1", "event": {"type": "im.message.receive_v1"}}, bot_open_id=BOT) is None
    assert normalize({"uuid": "u", "ts": "1", "event": {"type": "leave_approvalV2"}}, bot_open_id=BOT) is None
    assert normalize({"challenge": "c", "type": "url_verification"}, bot_open_id=BOT) is None


def test_hire_events_keep_their_payload_for_the_scenario() -> None:
    body = v2("hire.application.stage_changed_v1", {"application_id": "6001", "target_stage_id": "7001"})
    (event,) = normalize_all(body, bot_open_id=None)
    assert type(event) is FeishuEvent
    assert event.event_type == "hire.application.stage_changed_v1"
    assert event.raw == {"application_id": "6001", "target_stage_id": "7001"}
    with pytest.raises(MalformedEvent, match="Hire event"):
        normalize_all(v2("hire.offer.status_changed_v1", {}), bot_open_id=None)
