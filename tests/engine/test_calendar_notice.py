"""The admin hears once per organization and year that its work calendar is provisional (engine/notices).

Real pieces: the time-skipping Temporal server, the engine's worker and Feishu activity, the local Feishu
stand-in over HTTP. ``now`` is explicit, so the test means the same on any day it runs.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sample_plugins import EchoPlugin

from engine.calendar_gaps import calendar_gaps
from engine.config import parse_config
from engine.notices.calendar import announce_calendar_gaps, notices_for, start_calendar_notices
from engine.plugins import load_plugins
from engine.testing.kit import TASK_QUEUE, ScenarioHarness, org_config

ADMIN_ZH = "ou_admin_rennuo"
ADMIN_EN = "ou_admin_global"
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # 2026-11-30 09:00 in Shanghai: 2027 is within 12 months


def document() -> dict:
    doc = org_config(plugins=["echo"], org_id="rennuo", extra={"admin_open_id": ADMIN_ZH})
    doc["organizations"]["global"] = {"plugins": ["echo"], "locale": "en_US", "timezone": "Asia/Singapore",
                                      "admin_open_id": ADMIN_EN}
    doc["organizations"]["quiet"] = {"plugins": ["echo"]}  # no admin contact: logs only
    return doc


async def test_each_admin_hears_once_per_year_in_their_language(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    async with ScenarioHarness.start({"echo": EchoPlugin()}, config=document(), config_dir=tmp_path) as h:
        gaps = calendar_gaps(h.config, NOW)
        assert [gap.org for gap in gaps] == ["rennuo", "global", "quiet"]
        started = await start_calendar_notices(h.client, h.config, gaps, task_queue=TASK_QUEUE)
        assert started == ["rennuo:engine:calendar-provisional:2027", "global:engine:calendar-provisional:2027"]
        await h.settle()

        (zh,) = h.messages(to=ADMIN_ZH)
        assert zh.msg_type == "text"
        assert "尚未收录 2027 年国务院公布的放假安排" in zh.content
        assert "2027-01-01 至 2027-11-29" in zh.content and "holidays / workdays" in zh.content
        (en,) = h.messages(to=ADMIN_EN)
        assert "does not include the State Council's 2027 holiday plan yet" in en.content
        assert "from 2027-01-01 to 2027-11-29" in en.content
        assert len(h.messages()) == 2  # nobody else: "quiet" has no admin

        # Another worker starting, or this one restarting: the same ids are refused, nothing is sent again.
        assert await start_calendar_notices(h.client, h.config, gaps, task_queue=TASK_QUEUE) == []
        # The start-up path logs one warning per organization and starts nothing new either.
        with caplog.at_level(logging.INFO, logger="engine.notices.calendar"):
            assert await announce_calendar_gaps(h.client, h.config, task_queue=TASK_QUEUE, now=NOW) == gaps
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert [w.split(":")[0] for w in warnings] == [f"organizations.{org}" for org in ("rennuo", "global", "quiet")]
        assert all("2027-01-01..2027-11-29" in w and "upgrade chinese-calendar" in w for w in warnings)
        assert not any("started" in r.getMessage() for r in caplog.records)
        await h.settle()
        assert len(h.messages(to=ADMIN_ZH)) == 1 and len(h.messages(to=ADMIN_EN)) == 1


async def test_no_gap_no_notice(tmp_path: Path) -> None:
    async with ScenarioHarness.start({"echo": EchoPlugin()}, config=document(), config_dir=tmp_path) as h:
        gaps = calendar_gaps(h.config, datetime(2026, 1, 1, 1, 0, tzinfo=UTC))  # the window is all 2026
        assert gaps == []
        assert await start_calendar_notices(h.client, h.config, gaps, task_queue=TASK_QUEUE) == []
        assert h.messages() == []


def test_one_notice_per_uncovered_year_open_until_that_year_ends() -> None:
    scenarios = load_plugins(modules={"echo": EchoPlugin()}, entry_points=False).scenarios
    config = parse_config(document(), Path("/srv/engine/engine.toml"), scenarios)
    # From 2027-03-15 the next 12 months reach into 2028 as well: two notices for each admin.
    due = notices_for(config, calendar_gaps(config, datetime(2027, 3, 15, 1, 0, tzinfo=UTC)))
    assert [wid for wid, _ in due] == [
        "rennuo:engine:calendar-provisional:2027", "rennuo:engine:calendar-provisional:2028",
        "global:engine:calendar-provisional:2027", "global:engine:calendar-provisional:2028",
    ]
    first = due[2][1]
    assert (first.org, first.admin_open_id, first.year) == ("global", ADMIN_EN, 2027)
    assert (first.first, first.last) == (date(2027, 3, 15), date(2027, 12, 31))
    assert first.until == datetime(2028, 1, 1, tzinfo=ZoneInfo("Asia/Singapore"))
    assert (due[3][1].first, due[3][1].last) == (date(2028, 1, 1), date(2028, 3, 14))
