"""A message Feishu pushes again under a new event id is handled once (deduplicated on its message_id),
and a reply speaks the locale its action asks for."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sample_plugins import EchoPlugin

from engine import actions
from engine.events import MessageReceived
from engine.hookspecs import hookimpl
from engine.testing.events import message as build_message


def message(text: str, event_id: str, message_id: str) -> MessageReceived:
    return build_message(text, event_id=event_id, message_id=message_id, chat_id="oc_ward3", chat_type="group",
                         sender="ou_alice")


class OncePlugin(EchoPlugin):
    """"timer" starts one Timer per message (``once``); "status en" asks for an English reply."""

    @hookimpl
    def route_event(self, event: Any, org: Any) -> list[actions.Action] | None:
        if isinstance(event, MessageReceived) and event.text == "timer":
            return [actions.StartWorkflow(scenario="echo", key=f"timer:{event.message_id}", workflow="echo.Timer",
                                          args=[0, event.sender_open_id], once=True)]
        if isinstance(event, MessageReceived) and event.text == "status en":
            return [actions.Reply(template="echo:missing", message_id=event.message_id, locale="en_US")]
        return super().route_event(event, org)


async def test_a_reply_to_a_message_pushed_again_under_a_new_event_id_is_sent_once(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": EchoPlugin()}) as env:
        await env.deliver(message("status", "ev-first", "om_dup_1"))
        await env.deliver(message("status", "ev-second", "om_dup_1"))
        assert [m.text for m in env.messages() if m.reply_to] == ["本群还没有对话"]
        await env.deliver(message("status", "ev-third", "om_other"))  # another message is answered
        assert len([m for m in env.messages() if m.reply_to]) == 2


async def test_a_workflow_started_once_per_message_does_not_run_again(scenario_harness: Any,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.runtime.router")
    async with scenario_harness({"echo": OncePlugin()}) as env:
        await env.deliver(message("timer", "ev-first", "om_dup_1"))
        result = await env.client.get_workflow_handle("acme:echo:timer:om_dup_1").result()
        assert result and len(env.messages(to="ou_alice")) == 1  # the first run sent and finished
        await env.deliver(message("timer", "ev-second", "om_dup_1"))
        # refused by Temporal: no second run of the finished workflow
        assert "acme:echo:timer:om_dup_1 already started: not started again" in caplog.text
        assert len(env.messages(to="ou_alice")) == 1


async def test_a_reply_speaks_the_locale_its_action_asks_for(scenario_harness: Any) -> None:
    async with scenario_harness({"echo": OncePlugin()}) as env:  # the organization speaks zh_CN
        await env.deliver(message("status en", "ev-en", "om_en"))
        assert [m.text for m in env.messages() if m.reply_to] == ["No conversation in this chat yet"]
