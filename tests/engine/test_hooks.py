"""One test per hook of engine/hookspecs.py, each through the engine code that calls it.

test_every_hook_is_documented_and_tested checks that this file keeps up with the hookspecs and README.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import httpx
from click.testing import CliRunner
from sample_plugins import EchoPlugin, OtherPlugin
from starlette.applications import Starlette

from engine import hookspecs
from engine.cli import CliState, cli
from engine.config import parse_config
from engine.plugins import load_plugins
from engine.runtime.app import EngineApp
from engine.runtime.pages import plugin_routes
from engine.runtime.schedules import declared_schedules, sync_schedules
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect
from engine.testing.kit import org_config

ROOT = Path(__file__).resolve().parents[2]
HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "engine_spec")}


def plugin_set() -> object:
    return load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()}, entry_points=False)


def test_every_hook_is_documented_and_tested() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    this_file = Path(__file__).read_text(encoding="utf-8")
    assert HOOKS, "no hookspecs found"
    for name, function in HOOKS.items():
        assert function.__doc__ and len(function.__doc__) > 80, f"hook {name} needs a docstring"
        signature = f"### `{name}({', '.join(inspect.signature(function).parameters)})`"
        assert signature in readme, f"README.md must document {signature}"
        assert re.search(rf"def test_hook_{name}\b", this_file), f"hook {name} needs test_hook_{name}"


def test_hook_register_scenarios() -> None:
    plugins = plugin_set()
    assert plugins.scenarios["echo"].version == "1.0"
    assert plugins.scenarios["echo"].site_overridable == ["greeting"]


def test_hook_route_event() -> None:
    # through the router's pure half; the Temporal half is in test_router.py
    from datetime import UTC, datetime

    from engine.events import MessageReceived
    from engine.runtime.router import Router

    plugins = plugin_set()
    config = parse_config(org_config(plugins=["echo"]), ROOT / "x.toml", plugins.scenarios)
    router = Router(client=None, plugins=plugins, task_queue="q")  # type: ignore[arg-type]
    event = MessageReceived(event_id="e1", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                            message_id="om_1", chat_id="oc_1", text="hello", mentions_bot=True)
    actions = router.actions_for(event, config.org("acme"))
    assert [a.scenario for a in actions] == ["echo"]  # `other` is installed but not enabled


def test_hook_template_filters() -> None:
    from engine.templates import TemplateEngine

    plugins = plugin_set()
    templates = TemplateEngine(plugins.template_dirs(), plugins.template_filters())
    assert templates.render("echo:pong", {"text": "hi", "count": 1}, locale="en_US") == "Got #1: hi"
    assert templates.render("echo:shout", {"text": "ok"}, locale="zh_CN") == "OK!"


def test_hook_register_commands() -> None:
    state = CliState()
    state._plugins = plugin_set()  # type: ignore[assignment]
    result = CliRunner().invoke(cli, ["echo-hello"], obj=state)
    assert result.exit_code == 0, result.output
    assert "hello from echo" in result.output


def test_plugin_commands_follow_each_invocations_plugins() -> None:
    # The command line is a module-level group: commands from one invocation's plugins must not stick
    # to it and hide (or leak into) the next invocation's.
    echo_only = CliState()
    echo_only._plugins = plugin_set()  # type: ignore[assignment]
    assert CliRunner().invoke(cli, ["echo-hello"], obj=echo_only).exit_code == 0
    bundled = CliRunner().invoke(cli, ["--help"], obj=CliState())
    assert "handover" in bundled.output and "echo-hello" not in bundled.output
    assert CliRunner().invoke(cli, ["handover", "--help"], obj=CliState()).exit_code == 0


async def test_hook_ingress_routes(tmp_path: Path) -> None:
    plugins = plugin_set()
    config = parse_config(org_config(plugins=["echo"]), tmp_path / "x.toml", plugins.scenarios)
    app = EngineApp(config=config, plugins=plugins)
    asgi = Starlette(routes=plugin_routes(app))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(asgi), base_url="http://test") as http:
        response = await http.get("/echo/info")
    assert response.json() == {"orgs": ["acme"]}


async def test_hook_schedules(dev_server: EmbeddedTemporal, tmp_path: Path) -> None:
    plugins = plugin_set()
    document = org_config(plugins=["echo"], org_id="sched")
    config = parse_config(document, tmp_path / "x.toml", plugins.scenarios)
    (declared,) = declared_schedules(config, plugins)
    assert declared.id == "sched:echo:schedule:daily"

    client = await connect(dev_server.address, "default")
    first = await sync_schedules(client, config, plugins, task_queue="q")
    assert first["created"] == ["sched:echo:schedule:daily"]
    description = await client.get_schedule_handle("sched:echo:schedule:daily").describe()
    assert description.schedule.spec.time_zone_name == "Asia/Shanghai"
    # the server stores the cron expression as a calendar: 09:00 every day
    (calendar,) = description.schedule.spec.calendars
    assert [r.start for r in calendar.hour] == [9] and [r.start for r in calendar.minute] == [0]
    again = await sync_schedules(client, config, plugins, task_queue="q")
    assert again["updated"] == ["sched:echo:schedule:daily"] and not again["created"]

    # the organization switches the plugin off: its schedule goes
    document["organizations"]["sched"]["plugins"] = ["other"]
    document["organizations"]["sched"]["settings"] = {}
    off = parse_config(document, tmp_path / "x.toml", plugins.scenarios)
    gone = await sync_schedules(client, off, plugins, task_queue="q")
    assert gone["deleted"] == ["sched:echo:schedule:daily"]
