"""Schedule sync on the dev server: one refused schedule never blocks the others."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from engine.config import parse_config
from engine.hookspecs import hookimpl
from engine.plugins import load_plugins
from engine.runtime.schedules import sync_schedules
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect
from engine.scenario import Scenario, ScheduleSpec
from engine.testing.kit import org_config


class TallySettings(BaseModel):
    # not checked on purpose: this plugin stands for one whose cron reaches the sync unchecked
    summary_cron: str = "0 9 * * 1"
    long_ids: bool = False


class TallyPlugin:
    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="tally", version="0.1", settings_model=TallySettings))

    @hookimpl
    def schedules(self, org: Any) -> list[ScheduleSpec]:
        settings: TallySettings = org.settings("tally")
        specs = [
            ScheduleSpec(id="morning", cron="0 8 * * *", workflow="tally.Count"),
            ScheduleSpec(id="summary", cron=settings.summary_cron, workflow="tally.Summary",
                         setting="summary_cron"),
            ScheduleSpec(id="evening", cron="0 18 * * *", workflow="tally.Count"),
        ]
        if settings.long_ids:  # the server refuses ids over 1,000 characters: a refusal of its own
            specs.insert(1, ScheduleSpec(id="x" * 1000, cron="0 12 * * *", workflow="tally.Count"))
        return specs


def two_orgs(summary_cron: str, *, long_ids: bool = False) -> dict[str, Any]:
    document = org_config(plugins=["tally"], org_id="ward",
                          settings={"tally": {"summary_cron": summary_cron, "long_ids": long_ids}})
    other = org_config(plugins=["tally"], org_id="lab", timezone="Europe/Berlin")
    document["organizations"].update(other["organizations"])
    return document


async def test_one_refused_schedule_does_not_block_the_others(
        dev_server: EmbeddedTemporal, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plugins = load_plugins(modules={"tally": TallyPlugin()}, entry_points=False)
    client = await connect(dev_server.address, "default")
    good = parse_config(two_orgs("0 9 * * 1"), tmp_path / "engine.toml", plugins.scenarios)
    first = await sync_schedules(client, good, plugins, task_queue="q")
    assert len(first["created"]) == 6 and not first["refused"]

    # "L" is outside the dialect (the server refuses it too); before, the sync stopped at the first refusal
    bad = parse_config(two_orgs("0 9 L * *", long_ids=True), tmp_path / "engine.toml", plugins.scenarios)
    with caplog.at_level(logging.ERROR, logger="engine.runtime.schedules"):
        report = await sync_schedules(client, bad, plugins, task_queue="q")
    long_id = f"ward:tally:schedule:{'x' * 1000}"
    assert report["refused"] == [long_id, "ward:tally:schedule:summary"]
    assert sorted(report["updated"]) == sorted(
        f"{org}:tally:schedule:{name}" for org in ("ward", "lab") for name in ("morning", "summary", "evening")
        if (org, name) != ("ward", "summary"))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2  # one line per refused schedule
    summary_line = next(line for line in lines if "summary" in line)
    assert "organization ward, organizations.ward.settings.tally.summary_cron, cron '0 9 L * *'" in summary_line
    assert "28-31" in summary_line and "the other schedules go on" in summary_line
    long_line = next(line for line in lines if "summary" not in line)
    assert "of plugin tally" in long_line and "exceeds maximum allowed length" in long_line

    # the refused schedule keeps its last good version; the others were updated
    summary = await client.get_schedule_handle("ward:tally:schedule:summary").describe()
    (calendar,) = summary.schedule.spec.calendars
    assert [r.start for r in calendar.day_of_week] == [1]  # still Mondays
    evening = await client.get_schedule_handle("ward:tally:schedule:evening").describe()
    assert [r.start for r in evening.schedule.spec.calendars[0].hour] == [18]

    # a schedule an operator paused stays paused, with its note, when a worker syncs again
    await client.get_schedule_handle("lab:tally:schedule:morning").pause(note="lab closed for renovation")
    again = await sync_schedules(client, good, plugins, task_queue="q")
    assert "lab:tally:schedule:morning" in again["updated"]
    paused = (await client.get_schedule_handle("lab:tally:schedule:morning").describe()).schedule.state
    assert paused.paused and paused.note == "lab closed for renovation"
    assert not (await client.get_schedule_handle("lab:tally:schedule:evening").describe()).schedule.state.paused

    # nothing left behind for other tests: both organizations switch the plugin off
    off = two_orgs("0 9 * * 1")
    for org in off["organizations"].values():
        org["plugins"], org["settings"] = [], {}
    gone = await sync_schedules(client, parse_config(off, tmp_path / "engine.toml", plugins.scenarios),
                                plugins, task_queue="q")
    assert len(gone["deleted"]) == 6
