"""The router and the test kit on the real time-skipping server, with the Feishu stand-in over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sample_plugins import EchoPlugin, OtherPlugin

from engine.actions import StartWorkflow
from engine.events import CardAction, MessageReceived
from engine.runtime.router import RoutingError
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
