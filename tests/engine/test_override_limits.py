"""An organization's hostile override, met by the engine's reply path: the plugin's template goes out instead."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_plugins import EchoPlugin

from engine.events import MessageReceived
from engine.testing.kit import org_config

HUGE_STRING = "收到 {{ 'a' * 200000000 }}"


async def test_a_reply_through_the_engine_uses_the_plugins_template_when_the_override_is_refused(
        scenario_harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "acme-templates"
    (folder / "echo" / "zh_CN").mkdir(parents=True)
    (folder / "echo" / "zh_CN" / "pong.j2").write_text(HUGE_STRING, encoding="utf-8")
    config = org_config(plugins=["echo"], extra={"templates_dir": str(folder)})
    async with scenario_harness({"echo": EchoPlugin()}, config=config) as env:
        await env.deliver(MessageReceived(
            event_id="ev-hostile", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
            message_id="om_hostile", chat_id="oc_ward3", chat_type="group", text="hello",
            sender_open_id="ou_alice", mentions_bot=True))
        assert [m.text for m in env.messages(to="ou_alice")] == ["收到第 1 条：hello"]
