"""The bot's identity comes from Feishu (issue 15, item 1), and a mention of the bot never goes unanswered.

With the ``[feishu]`` table exactly as README documents it (no ``bot_open_id``), an "@bot 建群 ..." was
acknowledged and dropped: the engine did not know which mention was its own. Start-up now asks Feishu
(``GET /open-apis/bot/v3/info``, here the stand-in over real HTTP); an unmatched mention gets help.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import plugins.project_delivery as project_delivery
from engine.config import EngineConfig, parse_config
from engine.feishu.standin import FeishuStandIn
from engine.feishu.standin import events as ev
from engine.feishu.standin.faults import Fault
from engine.plugins import load_plugins
from engine.runtime.app import EngineApp
from engine.runtime.identity import BotIdentityError, learn_bot_open_id
from engine.runtime.server import free_port
from engine.testing.kit import org_config

BOT = "ou_bot_x"
KEY = "encrypt-key-identity"
TOKEN = "v-token-identity"
STAFFING = Path(__file__).resolve().parents[2] / "examples" / "project_delivery" / "staffing.json"


@pytest.fixture
async def standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FeishuStandIn]:
    # a fresh app id per test: lark-oapi caches tenant tokens process-wide by app id
    server = FeishuStandIn(app_id=f"cli_identity_{uuid.uuid4().hex[:10]}", bot_open_id=BOT, bot_name="bot",
                           encrypt_key=KEY, verification_token=TOKEN)
    await server.start()
    for name in ("FEISHU_APP_ID", "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # what README's [feishu] table refers to
    monkeypatch.setenv("FEISHU_APP_SECRET", server.app_secret)
    monkeypatch.setenv("FEISHU_VERIFICATION_TOKEN", TOKEN)
    monkeypatch.setenv("FEISHU_ENCRYPT_KEY", KEY)
    try:
        yield server
    finally:
        await server.stop()


def readme_feishu_table(standin: FeishuStandIn, **extra: Any) -> dict[str, Any]:
    """``[feishu]`` as README.md documents it, pointed at the stand-in."""
    return {"app_id": standin.app_id, "app_secret": {"env": "FEISHU_APP_SECRET"},
            "verification_token": {"env": "FEISHU_VERIFICATION_TOKEN"},
            "encrypt_key": {"env": "FEISHU_ENCRYPT_KEY"}, "base_url": standin.base_url, **extra}


def engine_app(tmp_path: Path, feishu: dict[str, Any] | None) -> EngineApp:
    document = org_config(plugins=[])
    if feishu is not None:
        document["feishu"] = feishu
    config: EngineConfig = parse_config(document, tmp_path / "engine.toml", {})
    return EngineApp(config=config, plugins=load_plugins(modules={}, entry_points=False))


def bot_info_calls(standin: FeishuStandIn) -> int:
    return len(standin.calls_to("/open-apis/bot/v3/info", "GET"))


# ------------------------------------------------------------------------------------ learning it


async def test_the_bot_identity_is_asked_of_feishu_once(standin: FeishuStandIn, tmp_path: Path) -> None:
    app = engine_app(tmp_path, readme_feishu_table(standin))
    said: list[str] = []
    try:
        assert await learn_bot_open_id(app, say=said.append) == BOT
        assert await learn_bot_open_id(app) == BOT
    finally:
        await app.feishu.aclose()
    assert bot_info_calls(standin) == 1
    assert app.extras["bot_open_id"] == BOT
    assert said == [f"  bot               bot ({BOT})"]


async def test_the_config_key_overrides_feishu(standin: FeishuStandIn, tmp_path: Path) -> None:
    app = engine_app(tmp_path, readme_feishu_table(standin, bot_open_id="ou_bot_override"))
    assert await learn_bot_open_id(app) == "ou_bot_override"
    assert bot_info_calls(standin) == 0


async def test_a_passing_feishu_failure_is_waited_out(standin: FeishuStandIn, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    standin.faults.inject(Fault("server_error", path_prefix="/open-apis/bot/v3/info", times=2, status=503,
                                html=False))
    app = engine_app(tmp_path, readme_feishu_table(standin))
    caplog.set_level(logging.WARNING, logger="engine.runtime.identity")
    try:
        assert await learn_bot_open_id(app, patience=10.0) == BOT
    finally:
        await app.feishu.aclose()
    assert bot_info_calls(standin) == 3
    assert len(caplog.records) == 2 and all("asking again" in r.getMessage() for r in caplog.records)


async def test_a_wrong_app_secret_stops_start_up_naming_the_fix(standin: FeishuStandIn, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEISHU_APP_SECRET", "not-the-secret")
    app = engine_app(tmp_path, readme_feishu_table(standin))
    try:
        with pytest.raises(BotIdentityError, match="bot/v3/info") as raised:
            await learn_bot_open_id(app, patience=1.0)
    finally:
        await app.feishu.aclose()
    assert str(tmp_path / "engine.toml") in raised.value.hint
    assert "app_secret" in raised.value.hint and "bot_open_id" in raised.value.hint
    assert "not-the-secret" not in str(raised.value) + raised.value.hint


async def test_no_feishu_app_at_all_stops_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BotIdentityError, match="no Feishu app configured") as raised:
        await learn_bot_open_id(engine_app(tmp_path, None))
    assert "bot_open_id" in raised.value.hint


# ------------------------------------------------------------- the issue, end to end over HTTP

def issue_message(text: str) -> dict[str, Any]:
    """The event of the report: the mention holds the bot by open_id only (no ``mentioned_type``)."""
    event = ev.message_event(text, "oc_sales", "ou_sales_east", mentions_bot=False, tenant_key="t_standin")
    event["message"]["mentions"] = [{"key": "@_user_1", "id": {"open_id": BOT}, "name": "bot"}]
    event["message"]["content"] = json.dumps({"text": text}, ensure_ascii=False)
    return event


def created_groups(standin: FeishuStandIn) -> list[str]:
    return [c["name"] for c in standin.state.chats.values() if c.get("_created_by")]


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
async def test_an_at_bot_command_with_the_documented_config_is_carried_out(
        scenario_harness: Any, standin: FeishuStandIn, locale: str, caplog: pytest.LogCaptureFixture) -> None:
    config = org_config(plugins=["project_delivery"], locale=locale)
    config["feishu"] = readme_feishu_table(standin)
    async with scenario_harness({"project_delivery": project_delivery}, config=config, standin=standin) as env:
        env.standin.load(STAFFING)
        env.app.extras.clear()  # the kit hands the stand-in's identity over; production has to ask for it
        result = await env.push(ev.EVENT_MESSAGE, issue_message("@_user_1 建群 华山医院 MRI3 华东"))
        assert result.status == 200
        assert bot_info_calls(standin) == 1 and env.app.extras["bot_open_id"] == BOT
        [group] = created_groups(standin)
        assert "华东-华山医院-MRI3" in group

        # item 2 through the same path: "@所有人" in the text, nothing for it in mentions
        result = await env.push(ev.EVENT_MESSAGE, issue_message("@_user_1 @_all 建群 协和医院 CT128 华北"))
        assert result.status == 200
        assert len(created_groups(standin)) == 2 and "华北-协和医院-CT128" in created_groups(standin)[1]

        # a mention that matches no command: a short help in the organization's language, and a trace
        caplog.set_level(logging.DEBUG, logger="engine.runtime.router")
        before = len(env.messages())
        event = issue_message("@_user_1 帮我看看 13800138000")
        result = await env.push(ev.EVENT_MESSAGE, event, event_id="evt-unmatched")
        assert result.status == 200
        [help_reply] = env.messages()[before:]
        assert help_reply.reply_to == event["message"]["message_id"]
        if locale == "zh_CN":
            assert help_reply.text.startswith("没有看懂这条消息。可以 @我 发送：\n• 建群 客户 产品 区域")
        else:
            assert help_reply.text.startswith("Sorry, I did not understand that. Mention me with one of:\n"
                                              "• create project CUSTOMER PRODUCT REGION")
        [trace] = [r for r in caplog.records if "routes to nothing" in r.getMessage()]
        assert trace.levelno == logging.DEBUG
        assert "a mention of the bot that matches no command" in trace.getMessage()
        assert "13800138000" not in caplog.text and "帮我看看" not in caplog.text

        # Feishu pushes it again: answered, and no second help
        assert (await env.push(ev.EVENT_MESSAGE, event, event_id="evt-unmatched")).status == 200
        assert len(env.messages()) == before + 1


async def test_engine_ingress_refused_by_feishu_stops_with_the_fix(standin: FeishuStandIn, tmp_path: Path) -> None:
    """The command itself: exit 2, the reason and the hint, no traceback, before it waits for Temporal."""
    config = tmp_path / "engine.toml"
    config.write_text(f"""
[temporal]
mode = "cluster"
address = "127.0.0.1:{free_port()}"

[feishu]
app_id = "{standin.app_id}"
app_secret = {{ env = "FEISHU_APP_SECRET" }}
verification_token = {{ env = "FEISHU_VERIFICATION_TOKEN" }}
encrypt_key = {{ env = "FEISHU_ENCRYPT_KEY" }}
base_url = "{standin.base_url}"

[organizations.h]
tenant_key = "t_standin"
""", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "ENGINE_"))}
    env.update({"FEISHU_APP_SECRET": "not-the-secret", "FEISHU_VERIFICATION_TOKEN": TOKEN,
                "FEISHU_ENCRYPT_KEY": KEY, "ENGINE_LOAD_PLUGINS": ""})  # no plugins: a quick start
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "engine"), "ingress", "--config", str(config), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode == 2, output
    assert "Feishu did not say who the bot is (GET /open-apis/bot/v3/info" in output
    assert f"hint: check [feishu] app_id and app_secret in {config}" in output
    assert "Traceback" not in output and "not reachable" not in output and "not-the-secret" not in output
