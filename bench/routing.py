"""Routing throughput and latency: events through the router into workflows on the embedded server.

Each event is a bot mention that the sample `echo` plugin turns into a signal-with-start of one
workflow per chat. The baseline is raw `temporalio` client starts (signal-with-start with the same
payload), measured on the same server in the same run, so the ratio shows what the router costs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.common import WorkflowIDConflictPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from sample_plugins import EchoPlugin, Ping

from bench.common import embedded_server, summary
from engine.config import parse_config
from engine.events import MessageReceived
from engine.plugins import load_plugins
from engine.runtime.router import Router
from engine.runtime.worker import connect
from engine.testing.kit import org_config

EVENTS = 600
CONCURRENCY = 32
TASK_QUEUE = "bench-routing"


async def _run(label: str, count: int, send: object) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await send(i)  # type: ignore[operator]
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    print(f"  {label:<28} {count / elapsed:8.1f} events/s   {summary(latencies)}")
    return [count / elapsed]


async def bench() -> None:
    plugins = load_plugins(modules={"echo": EchoPlugin()}, entry_points=False)
    config = parse_config(org_config(plugins=["echo"], org_id="bench"), Path("bench.toml"), plugins.scenarios)
    org = config.org("bench")
    async with embedded_server() as server:
        client = await connect(server.address, "default")
        # no worker: we measure the durable hand-off (what the ingress waits for), not the processing
        router = Router(client, plugins, task_queue=TASK_QUEUE)

        def event(i: int, prefix: str) -> MessageReceived:
            return MessageReceived(event_id=f"{prefix}-{i}", event_type="im.message.receive_v1",
                                   create_time=datetime.now(UTC), message_id=f"om_{i}",
                                   chat_id=f"oc_{prefix}_{i % 200}", text=f"hello {i}", mentions_bot=True,
                                   sender_open_id="ou_bench")

        async def raw(i: int) -> None:
            e = event(i, "raw")
            await client.start_workflow(
                "echo.Conversation", args=[e.chat_id], id=f"bench:echo:{e.chat_id}", task_queue=TASK_QUEUE,
                start_signal="ping", start_signal_args=[Ping(event_id=e.event_id, text=e.text, sender="ou")],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)

        async def routed(i: int) -> None:
            await router.dispatch(event(i, "routed"), org)

        await _run("warm-up", 50, raw)
        (raw_rate,) = await _run("raw temporalio client", EVENTS, raw)
        (routed_rate,) = await _run("engine router", EVENTS, routed)
        print(f"  router / raw throughput: {routed_rate / raw_rate:.2f}x "
              f"({EVENTS} events, {CONCURRENCY} concurrent, 200 workflows, embedded server with SQLite WAL)")


def main() -> None:
    asyncio.run(bench())
