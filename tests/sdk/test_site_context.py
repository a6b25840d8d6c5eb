"""The organization/site context: one engine activity, run by a workflow on the time-skipping server."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import probe_plugin
import pytest
from temporalio.client import WorkflowFailureError

from engine.sdk import SiteContext, resolve_site_context
from engine.testing.kit import TASK_QUEUE, org_config

CONFIG = org_config(
    plugins=["probe"], settings={"probe": {"reminder_days": 7, "label": "仁诺标准"}},
    sites={"xian": {"name": "西安仁诺", "timezone": "Asia/Urumqi", "locale": "en_US",
                    "settings": {"probe": {"reminder_days": 2}}},
           "beijing": {"name": "北京仁诺"}},
    extra={"holidays": ["2026-12-01"], "workdays": ["2026-10-10"]})


async def _context(env: Any, site: str, wid: str) -> SiteContext:
    return await env.client.execute_workflow("probe.Context", site, id=wid, task_queue=TASK_QUEUE,
                                             result_type=SiteContext)


async def test_a_workflow_holds_the_site_context(scenario_harness: Any) -> None:
    async with scenario_harness({"probe": probe_plugin}, config=CONFIG) as env:
        xian = await _context(env, "xian", "acme:probe:ctx-xian")
        # the site's override where site_overridable allows it, the group's value elsewhere
        assert xian.settings_as(probe_plugin.ProbeSettings) == probe_plugin.ProbeSettings(
            reminder_days=2, label="仁诺标准")
        assert (xian.site, xian.site_name, xian.timezone, xian.locale) == ("xian", "西安仁诺", "Asia/Urumqi", "en_US")
        assert xian.zone.key == "Asia/Urumqi"
        calendar = xian.calendar()
        assert not calendar.is_workday(date(2026, 10, 1))  # National Day
        assert not calendar.is_workday(date(2026, 12, 1))  # the organization's own holiday
        assert calendar.is_workday(date(2026, 10, 10))  # and its own make-up Saturday
        assert xian.enabled("probe") and not xian.enabled("asset_loan")

        by_name = await _context(env, "西安仁诺", "acme:probe:ctx-by-name")  # a table cell holds the name
        assert by_name.site == "xian"
        group = await _context(env, "", "acme:probe:ctx-group")
        assert (group.site, group.timezone, group.locale) == (None, "Asia/Shanghai", "zh_CN")
        assert group.settings["reminder_days"] == 7
        beijing = await _context(env, "beijing", "acme:probe:ctx-beijing")  # a site without own settings
        assert (beijing.site, beijing.settings["reminder_days"], beijing.locale) == ("beijing", 7, "zh_CN")
        unknown = await _context(env, "上海", "acme:probe:ctx-unknown")
        assert unknown.site is None and unknown.settings == group.settings


async def test_an_unknown_organization_fails_at_once(scenario_harness: Any) -> None:
    async with scenario_harness({"probe": probe_plugin}, config=CONFIG) as env:
        with pytest.raises(WorkflowFailureError) as caught:
            await _context(env, "", "nowhere:probe:ctx")
        assert "nowhere" in str(caught.value.cause.cause)  # the activity's error, not retried for hours


def test_the_context_survives_serialization() -> None:
    from engine.config import parse_config
    from engine.plugins import load_plugins

    plugins = load_plugins(modules={"probe": probe_plugin}, entry_points=False)
    config = parse_config(CONFIG, Path("engine-test.toml"), plugins.scenarios)
    context = resolve_site_context(config.org("acme"), "probe", "xian")
    again = SiteContext.model_validate_json(context.model_dump_json())
    assert again == context and again.holidays == [date(2026, 12, 1)]
