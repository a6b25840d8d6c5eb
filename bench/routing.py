"""Routing throughput and latency: events through the router into workflows on the embedded server.

Each event is a bot mention that the sample `echo` plugin turns into a signal-with-start of one
workflow per chat. The baseline is raw `temporalio` client starts (signal-with-start with the same
payload), measured on the same server in the same run, so the ratio shows what the router costs.
The router then runs again with the payload codec (engine/codec.py) on its client, alternating with
plain runs, so the codec's cost is measured in the same run.
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
from engine.codec import EncryptionCodec, new_key_text
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
        sealed = await connect(server.address, "default", codec=EncryptionCodec.from_text(new_key_text("bench")))
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

        encrypted_router = Router(sealed, plugins, task_queue=TASK_QUEUE)

        def routed_as(router_: Router, prefix: str) -> object:
            async def send(i: int) -> None:  # a fresh prefix: new workflows, as in the first routed run
                await router_.dispatch(event(i, prefix), org)
            return send

        await _run("warm-up", 50, raw)
        (raw_rate,) = await _run("raw temporalio client", EVENTS, raw)
        (routed_rate,) = await _run("engine router", EVENTS, routed)
        print(f"  router / raw throughput: {routed_rate / raw_rate:.2f}x "
              f"({EVENTS} events, {CONCURRENCY} concurrent, 200 workflows, embedded server with SQLite WAL)")
        # alternating, so a server that slows as its file grows weighs on both alike
        rates: dict[str, list[float]] = {"plain": [], "codec": []}
        for round_ in range(2):
            rates["plain"] += await _run(f"router, plain #{round_ + 1}", EVENTS // 2,
                                         routed_as(router, f"plain{round_}"))
            rates["codec"] += await _run(f"router, encrypted #{round_ + 1}", EVENTS // 2,
                                         routed_as(encrypted_router, f"sealed{round_}"))
        plain_rate, codec_rate = (sum(v) / len(v) for v in (rates["plain"], rates["codec"]))
        print(f"  encrypted / plain router throughput: {codec_rate / plain_rate:.2f}x")
    codec_cpu()


def codec_cpu(rounds: int = 2000) -> None:
    """The codec's own CPU per payload, without the server's noise: a signal's payload and a 20 KB one."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    codec = EncryptionCodec.from_text(new_key_text("bench"))
    converter = pydantic_data_converter.payload_converter
    small = converter.to_payloads([Ping(event_id="ev-1", text="hello 1", sender="ou_bench")])[0]
    rows = [{"bed": str(i), "summary": "重症肺炎，呼吸机辅助通气"} for i in range(400)]
    large = converter.to_payloads([{"rows": rows}])[0]
    for label, payload in (("signal payload", small), ("card-sized context", large)):
        began = time.perf_counter()
        for _ in range(rounds):
            sealed = codec.encrypt(payload)
        encode_us = (time.perf_counter() - began) / rounds * 1e6
        began = time.perf_counter()
        for _ in range(rounds):
            codec.decrypt(sealed)
        decode_us = (time.perf_counter() - began) / rounds * 1e6
        print(f"  codec CPU, {label} ({payload.ByteSize():,} B -> {sealed.ByteSize():,} B stored): "
              f"encode {encode_us:6.1f} us   decode {decode_us:6.1f} us")


def main() -> None:
    asyncio.run(bench())
