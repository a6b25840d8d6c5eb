"""The kit's event builders: normalized events with fresh ids, routed like the ingress's."""

from __future__ import annotations

from engine.sdk import BitableRecordChanged, CardAction, MessageReceived, UserCreated
from engine.testing.events import card_press, message, record_changed, user_created


def test_each_builder_gives_the_normalized_event_with_fresh_ids() -> None:
    first, second = message("我借了什么", sender="ou_li"), message("我借了什么", sender="ou_li")
    assert isinstance(first, MessageReceived) and first.event_type == "im.message.receive_v1"
    assert first.event_id != second.event_id and first.message_id != second.message_id
    assert (first.chat_type, first.mentions_bot, first.sender_open_id) == ("p2p", False, "ou_li")
    assert message("CT-0012 状态", chat_type="group").mentions_bot is True
    again = message("我借了什么", message_id=first.message_id)  # a redelivery: same message, new event
    assert again.message_id == first.message_id and again.event_id != first.event_id

    press = card_press({"op": "borrow", "asset": "RD-1"}, "ou_li", form={"due": "2026-12-24"})
    assert isinstance(press, CardAction) and press.action_value["op"] == "borrow"
    assert press.form_value == {"due": "2026-12-24"} and press.operator_open_id == "ou_li"

    changed = record_changed("bascnX", "tblX", "rec1", after={"设备编号": "CT-0012"})
    assert isinstance(changed, BitableRecordChanged) and changed.action == "record_edited"
    assert changed.after == {"设备编号": "CT-0012"}

    user = user_created("ou_new", name="王伟", department_ids=["od_1"])
    assert isinstance(user, UserCreated) and user.department_ids == ["od_1"]
