"""The rules' cron times equal a Temporal schedule's, daylight saving changes included.

For each expression, zone and starting moment, a paused schedule with ``start_at`` is created on the dev
server and its ``describe().info.next_action_times`` (the server lists 10) are compared with
``engine.rules.cron_iter`` from the same moment. The moments are next year's (a future ``start_at`` is
honoured), so the test means the same on any day it runs: the evening before each daylight saving
change of Berlin and New York, the end of February and the turn of the year. 336 schedules: ~25 s, most
of it the server answering ``describe``.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError

from engine.rules import cron_iter, validate_cron
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect

ZONES = ("Asia/Shanghai", "UTC", "Europe/Berlin", "America/New_York")
EXPRESSIONS = (
    "0 9 * * *",
    "30 2 * * *",  # skipped in spring, repeated in autumn (Berlin)
    "0 2 * * *",
    "30 1 * * *",  # repeated in autumn (New York)
    "0 3 * * *",
    "59 1 * * *",
    "30 * * * *",
    "0 * * * *",
    "*/20 1-3 * * *",
    "15 0-4 * * *",
    "5/15 * * * *",
    "0 8-18/2 * * 1-5",
    "0 9 * * mon-fri",
    "0 1-3 * * 0",
    "30 6 * * sun",
    "0 9 * * 7",
    "45 23 * * 6",
    "0 9 1 * *",
    "0 9 31 * *",
    "0 9 28-31 * *",
    "0 9 29 2 *",
    "0 0 1 jan,jul *",
    "0 12 15 * *",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
)
COUNT = 10  # what the server lists


def change_days(zone: ZoneInfo, year: int) -> list[date]:
    """The days of ``year`` whose noon has another UTC offset than the day before's (DST changes)."""
    def offset(day: date) -> timedelta | None:
        return datetime.combine(day, time(12), zone).utcoffset()

    days = [date(year, 1, 1) + timedelta(days=n) for n in range(366)]
    return [day for day in days if day.year == year and offset(day) != offset(day - timedelta(days=1))]


def starting_moments(zone: ZoneInfo, year: int) -> list[datetime]:
    """Local 22:00:30 the evening before each DST change of ``zone``, and the first minute of 27 February
    (leap days, month ends) and of 30 December (the turn of the year). No cron fires at 30 seconds."""
    evenings = [datetime.combine(day - timedelta(days=1), time(22, 0, 30), zone) for day in change_days(zone, year)]
    return [*evenings, datetime(year, 2, 27, 0, 0, 30, tzinfo=zone), datetime(year, 12, 30, 0, 0, 30, tzinfo=zone)]


async def server_times(client: Client, schedule_id: str, expr: str, zone: str, start: datetime) -> list[datetime]:
    handle = await client.create_schedule(schedule_id, Schedule(
        action=ScheduleActionStartWorkflow("cron.Check", id=schedule_id, task_queue="cron-check"),
        spec=ScheduleSpec(cron_expressions=[expr], time_zone_name=zone, start_at=start),
        state=ScheduleState(paused=True)))  # paused: nothing runs, the times are still listed
    try:
        return list((await handle.describe()).info.next_action_times)
    finally:
        await handle.delete()


def year_ahead() -> int:
    # a start_at in the past would make the server list times from now; next year is always ahead
    return datetime.now(UTC).year + 1


async def test_rules_list_the_times_the_server_lists(dev_server: EmbeddedTemporal) -> None:
    client = await connect(dev_server.address, "default")
    year = year_ahead()
    cases = [(zone_name, start, expr) for zone_name in ZONES
             for start, expr in itertools.product(starting_moments(ZoneInfo(zone_name), year), EXPRESSIONS)]
    assert len(cases) == len(EXPRESSIONS) * (4 + 4 + 2 + 2)  # two DST changes in Berlin and New York
    gate = asyncio.Semaphore(4)  # a few calls at once (the server answers them mostly one by one)

    async def listed(index: int, zone_name: str, start: datetime, expr: str) -> list[datetime]:
        async with gate:
            return await server_times(client, f"cron-check-{index}", validate_cron(expr), zone_name, start)

    listings = await asyncio.gather(*(listed(i, *case) for i, case in enumerate(cases)))
    mismatches = []
    near_a_change = 0
    for (zone_name, start, expr), expected in zip(cases, listings, strict=True):
        zone = ZoneInfo(zone_name)
        assert len(expected) == COUNT, (expr, zone_name, start)
        # the server searches from one second before start_at (spec.go), so do the rules
        ours = list(cron_iter(expr, start - timedelta(seconds=1), zone, COUNT))
        if ours != expected:
            mismatches.append((expr, zone_name, start.isoformat(),
                               sorted(t.astimezone(zone).isoformat() for t in set(ours) ^ set(expected))))
        changes = set(change_days(zone, year))
        near_a_change += any(t.astimezone(zone).date() in changes for t in expected)
    assert not mismatches, mismatches
    # the corpus does reach the changes: many lists hold times on a day the clocks change
    assert near_a_change >= 2 * len(EXPRESSIONS)


async def test_start_at_in_the_future_is_honoured(dev_server: EmbeddedTemporal) -> None:
    client = await connect(dev_server.address, "default")
    start = datetime(year_ahead(), 6, 1, 0, 0, 30, tzinfo=UTC)
    times = await server_times(client, "cron-check-start", "0 9 * * *", "UTC", start)
    assert times[0] == start.replace(hour=9, second=0) and times[-1] == start.replace(day=10, hour=9, second=0)


@pytest.mark.parametrize("expr", ["0 9 L * *", "0 9 1W * *", "0 9 ? * *", "0 9 * * 5L"])
async def test_what_the_dialect_refuses_the_server_refuses(dev_server: EmbeddedTemporal, expr: str) -> None:
    client = await connect(dev_server.address, "default")
    with pytest.raises(ValueError):
        validate_cron(expr)
    with pytest.raises(RPCError, match="is not in range"):
        await server_times(client, f"cron-check-refused-{expr}", expr, "UTC",
                           datetime(year_ahead(), 1, 1, tzinfo=UTC))


async def test_or_reads_differently_from_classic_cron(dev_server: EmbeddedTemporal) -> None:
    client = await connect(dev_server.address, "default")
    start = datetime(year_ahead(), 1, 1, tzinfo=UTC)
    # "1#1" (first Monday in classic cron) fires every Monday: "#" starts a comment
    mondays = await server_times(client, "cron-check-hash", "0 9 * * 1#1", "UTC", start)
    assert all(t.isoweekday() == 1 for t in mondays) and any(t.day > 7 for t in mondays)
    # "1 * 1" (the 1st or a Monday in classic cron) fires only on a Monday the 1st
    both = await server_times(client, "cron-check-and", "0 9 1 * 1", "UTC", start)
    assert all(t.day == 1 and t.isoweekday() == 1 for t in both)
    for expr in ("0 9 * * 1#1", "0 9 1 * 1"):
        with pytest.raises(ValueError):
            validate_cron(expr)
