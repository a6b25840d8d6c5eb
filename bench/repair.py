"""Repair reports: seconds from a report pushed at the ingress to the technician's card at the stand-in.

The figure the Rennuo case is about (report → technician's phone, which replaced a patrol twice a day),
measured under a burst: ``BENCH_REPAIR_REPORTS`` (default 200) "@bot 报修 ..." messages pushed at once,
signed, to ``engine ingress`` (its own OS process), routed to ``engine worker`` (its own process) on the
embedded Temporal server, each opening a ticket whose workflow triages it, asks the rota who is on duty and
sends the technician's card through the Feishu stand-in (this process), which enforces Feishu's rate limits
(5 messages/s per user, 50/s per app). Reports are spread over ``SITES`` sites with one IT technician each,
as a hospital group's reports are; so one technician gets ``REPORTS / SITES`` cards in the burst.

Per report: the push's start (this process' clock) to the card's ``create_time`` at the stand-in (the same
clock). Printed: p50/p90/p99/max, and the acknowledgement latency of the pushes. ``BENCH_REPAIR_REPORTS=50``
runs it smaller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import embedded_server, percentile
from engine.feishu.standin import FeishuStandIn
from engine.runtime.server import free_port

REPORTS = int(os.environ.get("BENCH_REPAIR_REPORTS", "200"))
SITES = 20
ORG = "bench"
DEADLINE_S = 300.0
VERIFICATION_TOKEN = "bench-repair-token"


def config_text(temporal_address: str) -> str:
    sites = "\n".join(f"""
[organizations.{ORG}.sites.s{i:02d}]
name = "S{i:02d}院"
[organizations.{ORG}.sites.s{i:02d}.settings.repair.teams.it]
rota = [{{ open_id = "ou_bench_tech_{i:02d}" }}]
lead_open_id = "ou_bench_lead"
""" for i in range(SITES))
    return f"""
[temporal]
mode = "cluster"
address = "{temporal_address}"

[organizations.{ORG}]
timezone = "Asia/Shanghai"
tenant_key = "t_standin"
plugins = ["repair"]

[organizations.{ORG}.settings.repair.teams.it]
rota = [{{ open_id = "ou_bench_tech_group" }}]
{sites}"""


async def bench() -> None:
    with tempfile.TemporaryDirectory(prefix="engine-bench-repair-") as folder:
        standin = FeishuStandIn(verification_token=VERIFICATION_TOKEN, enforce_rate_limits=True)
        standin.state.merge_json({"bitable": {"bascnRepair": {"tblTickets": {"name": "报修工单", "records": []},
                                                              "tblTicketHistory": {"name": "历史", "records": []}}}})
        await standin.start(port=free_port())
        procs: list[subprocess.Popen[bytes]] = []
        async with embedded_server() as server:
            config = Path(folder) / "engine.toml"
            config.write_text(config_text(server.address), encoding="utf-8")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "ENGINE_"))}
            env.update({"ENGINE_LOAD_PLUGINS": "repair", "FEISHU_APP_ID": standin.app_id,
                        "FEISHU_APP_SECRET": standin.app_secret, "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN,
                        "FEISHU_BASE_URL": standin.base_url, "REPAIR_ALERT_SECRET": "bench-" + "x" * 40})
            port = free_port()
            try:
                for name, args in (("worker", ["worker"]), ("ingress", ["ingress", "--port", str(port)])):
                    with (Path(folder) / f"{name}.log").open("w") as log:
                        procs.append(subprocess.Popen([sys.executable, "-m", "engine.cli", "--config", str(config),
                                                       *args], env=env, stdout=log, stderr=subprocess.STDOUT))
                url = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient() as http:
                    for _ in range(300):
                        with contextlib.suppress(httpx.HTTPError):
                            if (await http.get(f"{url}/healthz", timeout=1)).status_code == 200:
                                break
                        await asyncio.sleep(0.2)
                await asyncio.sleep(3)  # the worker's pollers up
                await measure(standin, f"{url}/feishu/events", warmup=True)
                await measure(standin, f"{url}/feishu/events", warmup=False)
            finally:
                for proc in procs:
                    proc.terminate()
                for proc in procs:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=20)
                    if proc.poll() is None:
                        proc.kill()
                await standin.stop()


async def measure(standin: FeishuStandIn, url: str, *, warmup: bool) -> None:
    count = 3 if warmup else REPORTS
    tag = "warm" if warmup else "run"
    sent: dict[str, float] = {}
    acks: list[float] = []

    async def push(i: int) -> None:
        text = f"报修 S{i % SITES:02d}院 收费处电脑蓝屏 {tag}-{i:04d}"
        event = standin.message_event(text, f"oc_bench_{i % SITES:02d}", f"ou_bench_nurse_{i:04d}",
                                      mentions_bot=True, message_id=f"om_{tag}_{i:04d}")
        sent[f"{tag}-{i:04d}"] = time.time()
        began = time.perf_counter()
        result = await standin.deliver_event(url, "im.message.receive_v1", event, retries=(), timeout=30)
        acks.append(time.perf_counter() - began)
        if not result.acknowledged:
            raise RuntimeError(f"report {i} not acknowledged: {result.status}")

    began = time.perf_counter()
    await asyncio.gather(*(push(i) for i in range(count)))
    latencies: dict[str, float] = {}
    while len(latencies) < count and time.perf_counter() - began < DEADLINE_S:
        for message in standin.messages():
            if message.msg_type == "interactive" and message.to and message.to.startswith("ou_bench_tech"):
                for key in sent:
                    if key not in latencies and key in str(message.card):
                        latencies[key] = message.create_time / 1000 - sent[key]
        await asyncio.sleep(0.5)
    if warmup:
        return
    values = sorted(latencies.values())
    print(f"  {count} reports pushed at once to {SITES} sites' technicians; {len(values)} cards arrived")
    print(f"  report → technician's card: p50 {percentile(values, 50):6.2f} s   p90 {percentile(values, 90):6.2f} s"
          f"   p99 {percentile(values, 99):6.2f} s   max {values[-1]:6.2f} s")
    print(f"  push acknowledged by the ingress: p50 {percentile(acks, 50) * 1000:6.0f} ms   "
          f"p99 {percentile(acks, 99) * 1000:6.0f} ms")
    print("  the twice-daily patrol it replaced: ~6 h on average (an assumption, not measured)")


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    main()
