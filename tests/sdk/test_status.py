"""Status questions ("@bot <key> 状态" / "status") and the reply action they become."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.sdk import (
    MessageReceived,
    QueryWorkflow,
    StatusQuestion,
    message_key,
    question_locale,
    status_question,
    status_reply,
)

KEY = r"RD-[A-Z]+-\d{3}"


@pytest.mark.parametrize(("text", "expected"), [
    ("RD-OSC-001 状态", StatusQuestion("RD-OSC-001", "zh_CN")),
    ("状态 RD-OSC-001", StatusQuestion("RD-OSC-001", "zh_CN")),
    ("RD-OSC-001 status", StatusQuestion("RD-OSC-001", "en_US")),
    ("Status RD-OSC-001?", StatusQuestion("RD-OSC-001", "en_US")),
    ("@_user_1 RD-OSC-001 状态？", StatusQuestion("RD-OSC-001", "zh_CN")),
    ("RD-OSC-001", StatusQuestion("RD-OSC-001", None)),
    ("借 RD-OSC-001", None),  # another command about the same key
    ("RD-OSC-001 RD-OSC-002 状态", None),  # which one?
    ("建群 协和医院 CT128 华北", None),
    ("状态", None),
])
def test_status_question(text: str, expected: StatusQuestion | None) -> None:
    assert status_question(text, KEY) == expected


def _message(message_id: str = "om_1") -> MessageReceived:
    return MessageReceived(event_id="ev-1", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id=message_id, chat_id="oc_1", text="RD-OSC-001 status")


def test_status_reply_queries_the_key_and_replies_in_the_locale() -> None:
    action = status_reply(_message(), scenario="asset_loan", key="RD-OSC-001", template="asset_loan:status",
                          missing_template="asset_loan:unknown_asset", locale="en_US", context={"x": 1})
    assert isinstance(action, QueryWorkflow) and (action.scenario, action.key, action.query) == (
        "asset_loan", "RD-OSC-001", "state")
    assert action.reply is not None and action.reply_missing is not None
    assert (action.reply.template, action.reply.locale, action.reply.message_id) == (
        "asset_loan:status", "en_US", "om_1")
    assert action.reply.context == {"key": "RD-OSC-001", "x": 1}
    assert action.reply_missing.template == "asset_loan:unknown_asset"


def test_message_key_is_the_same_for_a_redelivered_message() -> None:
    assert message_key("my_loans", _message("om_dup_1")) == "my_loans:om_dup_1"
    with pytest.raises(ValueError, match="message_id"):
        message_key("my_loans", _message(""))


def test_question_locale_reads_the_language_around_the_key() -> None:
    assert question_locale("CT-0012 有效期？", "CT-0012") == "zh_CN"
    assert question_locale("@_user_1 when is CT-0012 due?", "CT-0012") == "en_US"
    assert question_locale("ct-0012 ?", "CT-0012") is None  # only the key: the caller's default
