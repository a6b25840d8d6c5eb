"""The business clock: real time by default, compressed for drills, and its config mistakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.clock import BusinessClock
from engine.config import ConfigError, parse_config
from engine.testing.kit import org_config


def test_the_default_clock_is_real_time() -> None:
    clock = BusinessClock()
    moment = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
    assert not clock.compressed
    assert clock.now(moment) == moment and clock.real_delay(timedelta(days=3)) == timedelta(days=3)


def test_a_compressed_clock_runs_a_day_per_minute_from_its_origin() -> None:
    origin = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    clock = BusinessClock(scale=1440, origin=origin)
    assert clock.now(origin) == origin
    assert clock.now(origin + timedelta(minutes=1)) == origin + timedelta(days=1)
    assert clock.real_delay(timedelta(days=30)) == timedelta(minutes=30)


def test_clock_mistakes_are_refused() -> None:
    with pytest.raises(ValidationError, match="needs an origin"):
        BusinessClock(scale=60)
    with pytest.raises(ValidationError, match="UTC offset"):
        BusinessClock(scale=60, origin=datetime(2026, 11, 23))
    with pytest.raises(ValidationError):
        BusinessClock(scale=0, origin=datetime(2026, 11, 23, tzinfo=UTC))


def test_the_config_names_the_clock_key(tmp_path: Path) -> None:
    document = org_config(plugins=[], extra={"clock": {"scale": 60}})
    with pytest.raises(ConfigError) as raised:
        parse_config(document, tmp_path / "engine.toml", {})
    (issue,) = raised.value.issues
    assert "clock" in str(issue) and "origin" in str(issue) and "engine.toml" in str(issue)
