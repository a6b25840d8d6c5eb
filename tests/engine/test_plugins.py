"""Loading plugins: entry points, allowlists, broken plugins reported by name, clashes refused."""

from __future__ import annotations

import pytest
from sample_plugins import BrokenScenarioPlugin, EchoPlugin, MisspeltPlugin, OtherPlugin

from engine.plugins import PluginSetupError, load_plugins


def test_direct_plugins_load_with_their_hooks_and_scenarios() -> None:
    plugins = load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()}, entry_points=False)
    assert plugins.failures == {}
    assert set(plugins.scenarios) == {"echo", "other"}
    assert plugins.records["echo"].hooks == sorted(
        ["register_scenarios", "route_event", "schedules", "template_filters", "register_commands", "ingress_routes"])
    assert [w.__name__ for w in plugins.workflows()] == ["Conversation", "Timer"]


def test_a_broken_plugin_is_reported_and_the_others_still_load() -> None:
    plugins = load_plugins(modules={"echo": EchoPlugin(), "misspelt": MisspeltPlugin(),
                                    "broken": BrokenScenarioPlugin()}, entry_points=False)
    assert set(plugins.scenarios) == {"echo"}
    assert "route_events" in plugins.failures["misspelt"]
    assert "boom" in plugins.failures["broken"]


def test_shipped_plugins_come_from_the_entry_point_group() -> None:
    plugins = load_plugins()
    assert {"device_calibration", "asset_loan", "handover", "recruiting", "project_delivery"} <= set(plugins.records)


def test_allowlist_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "echo")
    plugins = load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()})
    assert set(plugins.records) == {"echo"}


def test_allowlist_argument_narrows_further(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "echo,other")
    plugins = load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()}, allow=["other"])
    assert set(plugins.records) == {"other"}


def test_duplicate_scenario_names_stop_the_start_up() -> None:
    with pytest.raises(PluginSetupError, match="'echo' is registered by plugins 'a' and 'b'"):
        load_plugins(modules={"a": EchoPlugin(), "b": EchoPlugin()}, entry_points=False)


def test_subset_hook_reaches_only_enabled_scenarios() -> None:
    plugins = load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()}, entry_points=False)
    from datetime import UTC, datetime

    from engine.events import EngineEvent

    event = EngineEvent(event_id="e1", event_type="engine.test", create_time=datetime.now(UTC))
    only_other = plugins.hook_for("route_event", ["other"])(event=event, org=None)
    assert [a.scenario for result in only_other if result for a in result] == ["other"]
    assert plugins.hook_for("route_event", ["echo"])(event=event, org=None) == []  # echo ignores this event
    both = plugins.hook_for("route_event", ["echo", "other"])(event=event, org=None)
    assert [a.scenario for result in both for a in result] == ["other"]


def test_template_filters_are_collected() -> None:
    plugins = load_plugins(modules={"echo": EchoPlugin()}, entry_points=False)
    assert plugins.template_filters()["shout"]("hi") == "HI!"


def test_plugin_modules_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_PLUGIN_MODULES", "sample_plugins:EchoPlugin, sample_plugins:NoSuchThing")
    plugins = load_plugins(entry_points=False)
    assert set(plugins.scenarios) == {"echo"}
    assert "NoSuchThing" in plugins.failures["NoSuchThing"]
