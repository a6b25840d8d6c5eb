"""Calibration cycles of BENCH_DEVICES devices (10,000 by default) started, held and reconciled.

A device table of ``BENCH_DEVICES`` rows (default 10,000; due dates 60 to 425 days ahead, so no reminder
is due) sits in the Feishu stand-in (in this process). ``engine worker`` runs as its own process, so its
memory is its own. The figures:

* baseline: the server's floor for starting workflows, raw ``client.start_workflow`` of the same number
  of workflows of a type no worker polls (32 in flight), measured first in the same run;
* start: the first reconciliation over the table, which starts one cycle per device (its wall time,
  and the ratio to the baseline), then the time until every cycle has registered (its "registered" row in
  the audit-log table, and asleep: dormant until its first reminder, or on its timer after its first
  workflow task), with the worker's and the server's CPU per cycle and one cycle's history;
* held: the worker's resident memory idle before, and while it holds every cycle (now and peak);
* reconcile: the daily run over the whole table with nothing to change, twice (the first lists every cycle
  the registration started; the second, as each later day, only the cycles changed since), then with 1% of
  the rows edited. With ``BENCH_WORKERS`` above 1 a run may land on a worker without a listing: it lists all.

It runs twice in one go, on a fresh server each time: payloads in plain text, then encrypted by the
payload codec (engine/codec.py), so the codec's cost shows side by side (``BENCH_CODEC=plain`` or
``encrypted`` runs only one). ``BENCH_WORKERS=N`` (default 1) runs N ``engine worker`` processes on the
one server, as a scaled-out deployment does; memory and CPU are then the sum over them.

The stand-in writes one Bitable table at a time, 20 ms a write, as Feishu does (concurrent writes to one
table are refused); the reconciliation writes the registration rows 500 to a call. ``BENCH_DEVICES=100000``
is the size of a hospital group's or a device maker's installed base (40 to 50 minutes on two
cores; README "Sizing").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.client import Client

from bench.common import cpu_seconds, embedded_server
from engine.codec import EncryptionCodec, new_key_text
from engine.feishu.standin import FeishuStandIn
from engine.runtime.server import free_port
from engine.runtime.worker import connect

DEVICES = int(os.environ.get("BENCH_DEVICES", "10000"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
IN_FLIGHT = 32
ORG = "bench"
APP, TABLE, LOG = "bascnDeviceLedger", "tblDevices", "tblCalibrationLog"
ZONE = ZoneInfo("Asia/Shanghai")
DEPARTMENTS = ["放射科", "检验科", "ICU", "心内科", "超声科"]
REGISTER_DEADLINE_S = max(3600.0, DEVICES * 0.1)


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=ZONE).timestamp() * 1000)


def device_rows(count: int, today: date) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        due = today + timedelta(days=60 + i % 365)
        rows.append({"record_id": f"recBench{i:05d}", "fields": {
            "设备编号": f"DEV-{i:05d}", "设备名称": f"设备 {i}", "型号": "M-1",
            "使用科室": DEPARTMENTS[i % len(DEPARTMENTS)], "存放位置": f"{i % 9 + 1} 楼",
            "保管人": [{"id": f"ou_custodian_{i % 400}"}], "设备管理员": [{"id": "ou_bench_manager"}],
            "校准周期(月)": 12, "有效期至": _ms(due), "状态": "合格"}})
    return rows


KEYS_ENV = "BENCH_PAYLOAD_KEYS"


def config_text(temporal_address: str, encrypted: bool = False) -> str:
    keys = f'payload_keys = {{ env = "{KEYS_ENV}" }}' if encrypted else ""
    return f"""
[temporal]
mode = "cluster"
address = "{temporal_address}"
{keys}

[organizations.{ORG}]
timezone = "Asia/Shanghai"
tenant_key = "t_standin"
plugins = ["device_calibration"]

[organizations.{ORG}.settings.device_calibration]
default_managers = ["ou_bench_manager"]
report_reconciliation = false
"""


def rss_mib(*pids: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pids`` together in MiB, from /proc."""
    values: dict[str, float] = {"VmRSS": 0.0, "VmHWM": 0.0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] += int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


async def start_floor(client: Client, count: int) -> float:
    """Seconds to start ``count`` workflows that no worker runs: what the server alone costs."""
    run = uuid.uuid4().hex[:6]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def starter() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            await client.start_workflow("bench.Nothing", id=f"floor-{run}-{i}", task_queue="bench-nobody")

    began = time.perf_counter()
    await asyncio.gather(*(starter() for _ in range(IN_FLIGHT)))
    return time.perf_counter() - began


async def reconcile(client: Client) -> tuple[float, dict[str, int]]:
    """Run the reconciliation workflow as the schedule would; its wall time and its changes by action."""
    from plugins.device_calibration.models import RECONCILE_WORKFLOW, ReconcileInput, ReconcileReport

    began = time.perf_counter()
    report = await client.execute_workflow(
        RECONCILE_WORKFLOW, ReconcileInput(org=ORG), id=f"{ORG}:device_calibration:bench-reconcile-{uuid.uuid4().hex}",
        task_queue="engine", result_type=ReconcileReport)
    elapsed = time.perf_counter() - began
    counts = dict(report.counts)
    if report.errors:
        counts["errors"] = len(report.errors)
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.phases.items())
    print(f"  (the run below, in its activity: {phases}; the listing runs while the table is read)")
    return elapsed, counts


def logged(standin: FeishuStandIn) -> int:
    """Cycles whose "registered" row is in the calibration log table."""
    table = standin.state.table(APP, LOG)
    if table is None:
        return 0
    return sum(1 for record in table["records"].values() if record["fields"].get("动作") == "registered")


def cycle_ids(count: int) -> list[str]:
    """The cycles' workflow ids, in the order the reconciliation starts them (by device id)."""
    return [f"{ORG}:device_calibration:DEV-{i:05d}" for i in range(count)]


async def asleep(client: Client, ids: list[str]) -> tuple[int, int]:
    """How many of ``ids`` are asleep, and how many of those dormant. Asleep: running, no workflow task
    pending, and either dormant (started with a delay that has not ended: no workflow task until it does)
    or after its first workflow task, a timer started (a history of at least five events)."""
    from engine.dormant import is_dormant

    limit = asyncio.Semaphore(IN_FLIGHT)

    async def state(wid: str) -> tuple[bool, bool]:
        async with limit:
            description = await client.get_workflow_handle(wid).describe()
        raw = description.raw_description
        if raw.HasField("pending_workflow_task"):
            return False, False
        length = raw.workflow_execution_info.history_length
        dormant = is_dormant(description)
        return dormant or length >= 5, dormant

    states = await asyncio.gather(*(state(wid) for wid in ids))
    return sum(a for a, _ in states), sum(d for _, d in states)


def type_name(event: Any) -> str:
    """A history event's type, as the Web UI names it (``TimerStarted``)."""
    from temporalio.api.enums.v1 import EventType

    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").title().replace("_", "")


def storage_mib(server: Any) -> float:
    """The server's SQLite database with its write-ahead log, in MiB."""
    files = [server.db_file, server.db_file.with_name(server.db_file.name + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


async def bench() -> None:
    only = os.environ.get("BENCH_CODEC")
    for encrypted in (False, True):
        if only in (None, "encrypted" if encrypted else "plain"):
            print(f"  -- payloads {'encrypted (AES-256-GCM codec)' if encrypted else 'in plain text'}")
            await run(encrypted)


async def run(encrypted: bool) -> None:
    today = datetime.now(ZONE).date()
    keys = new_key_text("bench")
    with tempfile.TemporaryDirectory(prefix="engine-bench-devices-") as folder:
        standin = FeishuStandIn()
        standin.state.merge_json({"bitable": {APP: {TABLE: {"name": "设备台账", "records": device_rows(DEVICES, today)},
                                                    LOG: {"name": "校准记录", "records": []}}}})
        await standin.start(port=free_port())
        async with embedded_server() as server:
            config = Path(folder) / "engine.toml"
            config.write_text(config_text(server.address, encrypted), encoding="utf-8")
            env = {**os.environ, "ENGINE_LOAD_PLUGINS": "device_calibration", "FEISHU_APP_ID": standin.app_id,
                   "FEISHU_APP_SECRET": standin.app_secret, "FEISHU_BASE_URL": standin.base_url, KEYS_ENV: keys}
            workers = []
            for n in range(WORKERS):
                with (Path(folder) / f"worker-{n}.log").open("w") as log:
                    workers.append(subprocess.Popen(
                        [sys.executable, "-m", "engine.cli", "--config", str(config), "worker"],
                        env=env, stdout=log, stderr=subprocess.STDOUT))
            worker_pids = [w.pid for w in workers]
            try:
                client = await connect(server.address, "default",
                                       codec=EncryptionCodec.from_text(keys) if encrypted else None)
                print(f"  {DEVICES:,} devices, {WORKERS} worker process(es), pid {', '.join(map(str, worker_pids))}")
                assert server.process is not None
                server_cpu = cpu_seconds(server.process.pid)
                floor = await start_floor(client, DEVICES)
                server_cpu = cpu_seconds(server.process.pid) - server_cpu
                print(f"  baseline: raw start of {DEVICES:,} workflows   {floor:7.1f} s   "
                      f"{DEVICES / floor:7.1f} starts/s   (Temporal server {server_cpu / DEVICES * 1000:.1f} ms "
                      f"CPU/start)")
                await asyncio.sleep(3)  # let the worker finish starting (schedules synced, pollers up)
                idle_rss, _ = rss_mib(*worker_pids)

                def cpu() -> dict[str, float]:
                    return {"worker": sum(cpu_seconds(pid) for pid in worker_pids),
                            "server": cpu_seconds(server.process.pid)}  # type: ignore[union-attr]

                cpu_before = cpu()
                first, changes = await reconcile(client)
                print(f"  reconcile #1 (starts every cycle)      {first:7.1f} s   {DEVICES / first:7.1f} rows/s   "
                      f"{first / floor:5.2f}x baseline   {changes}")
                began = time.perf_counter()
                # registered: its "registered" audit row in the log table, and asleep on its first timer. The
                # last cycles started are watched until they sleep; then every cycle is checked (not timed),
                # and if one was still awake the wait goes on and that is the time printed.
                ids = cycle_ids(DEVICES)
                watched = ids[-IN_FLIGHT:]
                while (done := logged(standin)) < DEVICES or (await asleep(client, watched))[0] < len(watched):
                    exits = [w.poll() for w in workers]
                    if any(code is not None for code in exits) or time.perf_counter() - began > REGISTER_DEADLINE_S:
                        raise RuntimeError(f"{done} of {DEVICES} cycles logged; worker exits {exits}")
                    await asyncio.sleep(1)
                settle = time.perf_counter() - began
                checking = time.perf_counter()
                while (sleeping := await asleep(client, ids))[0] < DEVICES:
                    print(f"  ({DEVICES - sleeping[0]} cycles still in their first workflow task; waiting)")
                    settle = time.perf_counter() - began
                print(f"  (every cycle checked asleep in {time.perf_counter() - checking:.1f} s, not counted; "
                      f"{sleeping[1]:,} of them dormant until an hour before their first reminder)")
                spent = {name: seconds - cpu_before[name] for name, seconds in cpu().items()}
                print(f"  all cycles registered                  {first + settle:7.1f} s after reconcile began   "
                      f"({settle:.1f} s after it ended; {DEVICES / (first + settle):.1f} cycles/s; "
                      f"{(first + settle) / floor:.2f}x baseline)")
                history = await client.get_workflow_handle(ids[-1]).fetch_history()
                kinds = [type_name(event) for event in history.events]
                started = history.events[0].workflow_execution_started_event_attributes
                delay = started.first_workflow_task_backoff.ToTimedelta()
                how = f"dormant for {delay.days} days" if delay else \
                    f"eager start {'taken' if started.eager_execution_accepted else 'not taken'}"
                print(f"  a registered cycle's history: {len(kinds)} events ({', '.join(kinds)}); {how}")
                print(f"  CPU for it: worker(s) {spent['worker']:6.1f} s "
                      f"({spent['worker'] / DEVICES * 1000:.1f} ms/cycle)   "
                      f"Temporal server {spent['server']:6.1f} s ({spent['server'] / DEVICES * 1000:.1f} ms/cycle)")
                await asyncio.sleep(5)
                held_rss, peak_rss = rss_mib(*worker_pids)
                print(f"  worker memory: idle {idle_rss:6.1f} MiB   holding {DEVICES:,} cycles {held_rss:6.1f} MiB   "
                      f"peak {peak_rss:6.1f} MiB   ({held_rss / idle_rss:.2f}x idle)")

                # the worker keeps its last listing and then lists only cycles started, changed or closed since:
                # the day after registration that is every cycle, a later day only what changed
                steady, changes = await reconcile(client)
                print(f"  reconcile #2 (nothing to change)       {steady:7.1f} s   {DEVICES / steady:7.1f} rows/s   "
                      f"{changes}   (the day after registration: every cycle started since the last listing)")
                steady, changes = await reconcile(client)
                print(f"  reconcile #3 (nothing to change)       {steady:7.1f} s   {DEVICES / steady:7.1f} rows/s   "
                      f"{changes}   (a later day: the cycles changed since the last listing)")
                records = standin.state.table(APP, TABLE)["records"]  # type: ignore[index]
                edited = max(1, DEVICES // 100)
                for i in range(edited):
                    fields = records[f"recBench{i:05d}"]["fields"]
                    fields["有效期至"] = _ms(today + timedelta(days=500 + i % 30))
                drift, changes = await reconcile(client)
                print(f"  reconcile #4 ({edited} rows edited)        {drift:7.1f} s   {DEVICES / drift:7.1f} rows/s   "
                      f"{changes}")
                _, peak_rss = rss_mib(*worker_pids)
                print(f"  worker peak memory over the run        {peak_rss:6.1f} MiB")
                server_rss, server_peak = rss_mib(server.process.pid)
                print(f"  Temporal server memory {server_rss:6.1f} MiB (peak {server_peak:6.1f} MiB)   "
                      f"database {storage_mib(server):7.1f} MiB ({storage_mib(server) * 1024 / DEVICES:.1f} KiB "
                      f"per device, with the baseline's {DEVICES:,} workflows)")
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        worker.wait(timeout=20)
                    if worker.poll() is None:
                        worker.kill()
                await standin.stop()


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    main()
