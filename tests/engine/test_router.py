"""The router and the test kit on the real time-skipping server, with the Feishu stand-in over HTTP."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sample_plugins import EchoPlugin, OtherPlugin

from engine.actions import QueryWorkflow, Reply, StartWorkflow
from engine.events import CardAction, Mention, MessageReceived
from engine.hookspecs import hookimpl
from engine.runtime.router import RoutingError
from engine.scenario import PluginSettings, Scenario
from engine.testing.kit import org_config


def mention(text: str, event_id: str, chat: str = "oc_ward3", sender: str = "ou_alice") -> MessageReceived:
    return MessageReceived(event_id=event_id, event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id=f"om_{event_id}", chat_id=chat, chat_type="group", text=text,
                           sender_open_id=sender, mentions_bot=True)


def texts(messages: list[Any]) -> list[str]:
    return [m.text for m in messages]


async def test_event_reaches_a_workflow_whose_activity_sends_through_the_standin(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        result = await env.deliver(mention("hello", "ev-1"))
        assert result.effects == 1
        assert texts(env.messages(to="ou_alice")) == ["收到第 1 条：hello"]
        state = await env.query("echo", "oc_ward3")
        assert state == {"pings": ["hello"], "count": 1}


async def test_the_same_event_twice_has_one_effect(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        await env.deliver(mention("once", "ev-dup"))
        await env.deliver(mention("once", "ev-dup"))
        assert (await env.query("echo", "oc_ward3"))["count"] == 1
        assert len(env.messages(to="ou_alice")) == 1


async def test_query_action_replies_at_once_and_missing_workflow_gets_its_own_reply(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        await env.deliver(mention("status", "ev-q0", chat="oc_empty"))
        await env.deliver(mention("a", "ev-a"))
        await env.deliver(mention("b", "ev-b"))
        await env.deliver(mention("status", "ev-q1"))
        replies = [m.text for m in env.messages() if m.reply_to]
        assert replies == ["本群还没有对话", "已收到 2 条消息"]


async def test_card_update_answers_with_its_toast(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        await env.deliver(mention("x", "ev-x"))
        press = CardAction(event_id="ev-card", event_type="card.action.trigger", create_time=datetime.now(UTC),
                           operator_open_id="ou_alice", action_value={"op": "stop", "chat": "oc_ward3"})
        result = await env.deliver(press)
        assert result.toast == "stopped after 1"
        assert await env.handle("echo", "oc_ward3").result() == ["x"]


async def test_an_organization_reaches_only_what_it_enabled(scenario_harness: Any, tmp_path: Any) -> None:
    config = org_config(plugins=["echo"])
    async with scenario_harness({"echo": EchoPlugin(), "other": OtherPlugin()}, config=config) as env:
        with pytest.raises(RoutingError, match="has not enabled scenario 'other'"):
            await env.router.execute(StartWorkflow(scenario="other", key="k", workflow="other.Nothing"),
                                     mention("x", "e"), env.org)
        # the `other` plugin's route_event is not even called for this organization
        assert [a.scenario for a in env.router.actions_for(mention("x", "e2"), env.org)] == ["echo"]


async def test_time_skips_and_the_wall_clock_follows_in_activities(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        start = await env.now()
        handle = await env.start_workflow("echo.Timer", 30, "ou_bob", id=env.workflow_id("echo", "timer"))
        await env.advance(days=31)
        assert texts(env.messages(to="ou_bob")) == ["收到第 0 条：30 days passed"]
        assert await env.now() - start >= timedelta(days=31)
        # an activity scheduled 30 skipped days later reads a wall clock 30 days ahead, not today
        seen = datetime.fromisoformat(await handle.result())
        assert timedelta(days=30) <= seen - start < timedelta(days=30, minutes=5)


async def test_without_the_frozen_clock_activities_read_real_time(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}, freeze_wall_clock=False) as env:
        handle = await env.start_workflow("echo.Timer", 30, "ou_bob", id=env.workflow_id("echo", "timer"))
        await env.advance(days=31)
        seen = datetime.fromisoformat(await handle.result())
        assert seen - datetime.now(UTC) < timedelta(minutes=5)


async def test_advance_to_refuses_the_past(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        with pytest.raises(ValueError, match="in the past"):
            await env.advance_to(await env.now() - timedelta(days=1))


async def test_what_routes_to_nothing_leaves_a_trace_without_personal_data(scenario_harness: Any,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Issue 15: an event that no enabled scenario takes was dropped without a word in the log."""
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        caplog.set_level(logging.DEBUG, logger="engine.runtime.router")
        now = datetime.now(UTC)
        group = MessageReceived(event_id="ev-g", event_type="im.message.receive_v1", create_time=now,
                                message_id="om_g", chat_id="oc_ward3", chat_type="group", text="张三 13800138000",
                                sender_open_id="ou_alice", mentions=[Mention(key="@_user_1", open_id="ou_bob")])
        direct = group.model_copy(update={"event_id": "ev-d", "chat_type": "p2p", "mentions": []})
        press = CardAction(event_id="ev-c", event_type="card.action.trigger", create_time=now,
                           operator_open_id="ou_alice", action_value={"op": "unknown"})
        for event in (group, direct, press):
            assert (await env.deliver(event)).effects == 0
        assert env.messages() == []
        traces = [r for r in caplog.records if "routes to nothing" in r.getMessage()]
        assert [r.levelno for r in traces] == [logging.DEBUG, logging.DEBUG, logging.WARNING]  # our card, a fault
        assert "ev-g (im.message.receive_v1) of acme routes to nothing: a group message that does not mention " \
               "the bot (1 other mention(s)) (enabled scenarios: echo)" in traces[0].getMessage()
        assert "a direct message that matches no command" in traces[1].getMessage()
        assert "ev-c (card.action.trigger) of acme routes to nothing: no enabled scenario acts on it" \
               in traces[2].getMessage()
        assert "13800138000" not in caplog.text and "张三" not in caplog.text


@pytest.mark.parametrize(("locale", "text"), [
    ("zh_CN", "没有看懂这条消息。请检查格式后重新 @我 发送，或联系管理员。\n"),
    ("en_US", "Sorry, I did not understand that. Check the wording and mention me again, or ask your "
              "administrator.\n"),
])
async def test_a_mention_no_scenario_takes_gets_a_short_help(scenario_harness: Any, locale: str, text: str) -> None:
    # echo is installed but not enabled, and ships no _help partial: the generic help, once per event
    config = org_config(plugins=[], locale=locale)
    async with scenario_harness({"echo": EchoPlugin()}, config=config) as env:
        result = await env.deliver(mention("anything", "ev-help"))
        assert result.effects == 1
        await env.deliver(mention("anything", "ev-help"))  # redelivered: the reply's uuid absorbs it
        [reply] = env.messages()
        assert (reply.text, reply.reply_to) == (text, "om_ev-help")


class AskerPlugin:
    """A second scenario that asks after the same key as echo's "status" (as two plugins may)."""

    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="asker", version="0.1", settings_model=PluginSettings))

    @hookimpl
    def route_event(self, event: Any, org: Any) -> list[Any] | None:
        if isinstance(event, MessageReceived) and event.text.strip() == "status":
            return [QueryWorkflow(scenario="asker", key=event.chat_id, query="state",
                                  reply_missing=Reply(template="echo:pong", context={"text": "asker", "count": 0},
                                                      message_id=event.message_id))]
        return None


async def test_the_scenario_that_knows_the_key_answers_and_not_found_is_said_once(scenario_harness: Any) -> None:
    plugins = {"echo": EchoPlugin(), "asker": AskerPlugin()}
    async with scenario_harness(plugins, config=org_config(plugins=["echo", "asker"])) as env:
        await env.deliver(mention("hello", "ev-h"))
        await env.deliver(mention("status", "ev-s"))
        replies = [m for m in env.messages() if m.reply_to == "om_ev-s"]
        assert len(replies) == 1 and "asker" not in replies[0].text  # echo knows the chat: only it answers
        await env.deliver(mention("status", "ev-n", chat="oc_nobody"))
        replies = [m for m in env.messages() if m.reply_to == "om_ev-n"]
        assert len(replies) == 1  # nobody knows it: one "not found", not one per scenario


async def test_a_press_on_a_closed_items_card_is_answered_in_the_users_language(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        press = CardAction(event_id="ev-old", event_type="card.action.trigger", create_time=datetime.now(UTC),
                           operator_open_id="ou_alice", action_value={"op": "stop", "chat": "oc_gone"})
        result = await env.deliver(press)
        assert result.toast == "这张卡片已失效，请以最新消息为准。"
