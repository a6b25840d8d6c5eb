"""Plugin activities as a class the worker builds with the engine's services (no process-wide global)."""

from __future__ import annotations

import dataclasses
from typing import Any

import probe_plugin
import pytest
from test_site_context import CONFIG

from engine.plugins import PluginSetupError, load_plugins
from engine.testing.kit import TASK_QUEUE


async def test_the_worker_builds_activity_classes_with_its_services(scenario_harness: Any) -> None:
    async with scenario_harness({"probe": probe_plugin}, config=CONFIG) as env:
        label = await env.client.execute_workflow("probe.Label", "xian", id="acme:probe:label",
                                                  task_queue=TASK_QUEUE)
        assert label == f"西安仁诺/en_US/{TASK_QUEUE}"


def test_activity_classes_are_checked_at_load_and_need_services() -> None:
    plugins = load_plugins(modules={"probe": probe_plugin}, entry_points=False)
    assert not plugins.failures
    with pytest.raises(PluginSetupError, match="needs the engine's services"):
        plugins.activities()
    built = plugins.activities(services=object())
    assert [fn.__name__ for fn in built] == ["site_label", "slow_write"]
    assert built[0].__self__.services is not None


def test_a_misnamed_activity_method_stops_the_plugin() -> None:
    from temporalio import activity

    from engine.hookspecs import hookimpl
    from engine.scenario import Scenario

    class Wrong:
        def __init__(self, services: Any) -> None:
            self.services = services

        @activity.defn(name="other.thing")
        async def thing(self) -> None:
            return None

    class Plugin:
        @hookimpl
        def register_scenarios(self, register: Any) -> None:
            register(Scenario(name="wrongly", version="1", settings_model=probe_plugin.ProbeSettings,
                              activities=[Wrong]))

    with pytest.raises(PluginSetupError, match=r"'other\.thing'.*must be named 'wrongly\.<Name>'"):
        load_plugins(modules={"wrongly": Plugin()}, entry_points=False)


async def test_command_services_reach_the_configured_temporal_and_feishu(scenario_harness: Any) -> None:
    from engine.sdk import command_services

    async with scenario_harness({"probe": probe_plugin}, config=CONFIG) as env:
        label = await env.client.execute_workflow("probe.Label", "", id="acme:probe:label-cmd", task_queue=TASK_QUEUE)
        # the command's config names the harness's Temporal server, as engine.toml names a cluster
        temporal = env.config.temporal.model_copy(update={"address": env.client.service_client.config.target_host})
        config = dataclasses.replace(env.config, file=env.config.file.model_copy(update={"temporal": temporal}))
        env.standin.state.merge_json({"bitable": {"bascnX": {"tblX": {"name": "x", "records": [
            {"record_id": "rec1", "fields": {"名称": "one"}}]}}}})
        async with command_services(config) as services:
            assert await services.temporal.get_workflow_handle("acme:probe:label-cmd").result() == label
            records = await services.feishu.bitable_search("bascnX", "tblX")
            assert [r.record_id for r in records] == ["rec1"]
            assert services.context("acme", "probe", "xian").locale == "en_US"
