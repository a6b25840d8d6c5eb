"""Long connection vs webhook: acknowledgement latency p50/p99 of the same events, in the same run.

The engine side runs in a *subprocess* (``python -m bench.longconn --serve BASE_URL``): the real webhook
ingress (``build_ingress``, token only, no encryption) served by uvicorn, and a :class:`LongConnection`
(lark-oapi's ws client, in its own thread) dialled to the Feishu stand-in in this process; both hand
events to one dispatcher that records the event and returns at once, so the figures are the ingress
paths themselves, with no Temporal behind them. This process plays Feishu: it pushes each event either
as a POST (httpx, keep-alive) or as a protobuf data frame over the stand-in's gateway, one at a
time, and times from the push to the acknowledgement (the HTTP answer; the ack frame). The modes
alternate in rounds, so whatever else the machine does falls on both alike.

For the long connection, the acknowledgement comes after lark's thread handed the event to the engine's
loop, the pipeline (normalize, dedupe, dispatch) ran there, and the result came back to lark's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, summary
from bench.ingress import bind_loopback

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 300  # measured events per mode
WARMUP = 30  # unmeasured events per mode, first
ROUNDS = 5
STARTUP_DEADLINE_S = 30.0

APP_ID = "cli_bench_longconn"
APP_SECRET = "bench-app-secret"
TOKEN = "bench-verification-token"
TENANT = "t_bench"
BOT = "ou_bot_bench"
MODES = ("webhook", "long_connection")


# ---------------------------------------------------------------------------------- engine side


def serve(base_url: str) -> None:
    """Child process: the webhook ingress on a free port (announced on stdout) and the long connection."""
    import logging

    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from engine.config import parse_config
    from engine.feishu.ingress import build_ingress
    from engine.feishu.longconn import LongConnection
    from engine.runtime.dispatch import DispatchResult
    from engine.testing.kit import org_config

    logging.basicConfig(level=logging.WARNING, format="engine %(levelname)s %(name)s: %(message)s")
    data = org_config(plugins=[], org_id="bench", tenant_key=TENANT)
    data["feishu"] = {"app_id": APP_ID, "app_secret": {"env": "FEISHU_APP_SECRET"},
                      "verification_token": {"env": "FEISHU_VERIFICATION_TOKEN"}, "bot_open_id": BOT,
                      "base_url": base_url}
    config = parse_config(data, Path("bench.toml"), {})
    event_ids: dict[str, list[str]] = {"webhook": [], "long_connection": []}

    class RecordingDispatcher:
        def __init__(self, mode: str) -> None:
            self.mode = mode

        async def dispatch(self, event: Any, org: Any) -> DispatchResult:
            event_ids[self.mode].append(event.event_id)
            return DispatchResult(effects=1)

    async def dispatched(request: Request) -> JSONResponse:
        return JSONResponse({mode: {"count": len(ids), "unique": len(set(ids))} for mode, ids in event_ids.items()})

    app = build_ingress(config, RecordingDispatcher("webhook"), extra_routes=[Route("/bench/dispatched", dispatched)])
    sock = bind_loopback()

    async def run() -> None:
        connection = LongConnection(config, RecordingDispatcher("long_connection"), asyncio.get_running_loop(),
                                    bot_open_id=BOT)
        connection.start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                               timeout_graceful_shutdown=2))
        try:
            await server.serve(sockets=[sock])
        finally:
            await asyncio.to_thread(connection.stop)

    asyncio.run(run())


# ---------------------------------------------------------------------------------- Feishu side


def _env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEISHU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(FEISHU_APP_ID=APP_ID, FEISHU_APP_SECRET=APP_SECRET, FEISHU_VERIFICATION_TOKEN=TOKEN,
               FEISHU_BASE_URL=base_url)
    return env


@contextlib.asynccontextmanager
async def engine(base_url: str, errors: Any) -> Any:
    """Start the engine side; yield its ingress URL; terminate it afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.longconn", "--serve", base_url, cwd=str(ROOT), env=_env(base_url),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=errors)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), STARTUP_DEADLINE_S)).decode().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the engine side did not start (said {line!r}); see its stderr")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_all(errors: Any) -> tuple[dict[str, list[float]], dict[str, dict[int | str, int]], dict[str, Any]]:
    from engine.feishu.standin import FeishuStandIn
    from engine.feishu.standin import events as ev
    from engine.feishu.standin.delivery import EventSender

    standin = FeishuStandIn(app_id=APP_ID, app_secret=APP_SECRET, tenant_key=TENANT, bot_open_id=BOT,
                            verification_token=TOKEN)
    await standin.start()
    sender = EventSender(None, TOKEN)
    run = uuid.uuid4().hex[:8]
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    codes: dict[str, dict[int | str, int]] = {mode: {} for mode in MODES}
    try:
        async with engine(standin.base_url, errors) as ingress, httpx.AsyncClient(trust_env=False,
                                                                                    timeout=10) as http:
            await standin.gateway.wait_connected(timeout=STARTUP_DEADLINE_S)
            url = f"{ingress}/feishu/events"

            async def push(mode: str, tag: str, i: int) -> tuple[float, int | str]:
                event = ev.message_event(f"hello {i}", f"oc_bench_{i % 50}", f"ou_bench_{i % 200}",
                                         bot_open_id=BOT, tenant_key=TENANT)
                payload = ev.envelope_v2(ev.EVENT_MESSAGE, event, app_id=APP_ID, tenant_key=TENANT, token=TOKEN,
                                         event_id=f"{mode}-{tag}-{run}-{i}")
                if mode == "webhook":
                    body, headers = sender.build(payload)
                    started = time.perf_counter()
                    try:
                        response = await http.post(url, content=body, headers=headers)
                        code: int | str = response.status_code
                    except httpx.HTTPError as error:
                        code = type(error).__name__
                    return time.perf_counter() - started, code
                started = time.perf_counter()
                ack = await standin.gateway.push_once(payload)
                return time.perf_counter() - started, ack.code if ack.code is not None else str(ack.error)

            for mode in MODES:
                for i in range(WARMUP):
                    await push(mode, "warm", i)
            for round_no in range(ROUNDS):
                for mode in (MODES if round_no % 2 == 0 else MODES[::-1]):
                    for i in range(EVENTS // ROUNDS):
                        elapsed, code = await push(mode, str(round_no), i)
                        latencies[mode].append(elapsed)
                        codes[mode][code] = codes[mode].get(code, 0) + 1
            counted = (await http.get(f"{ingress}/bench/dispatched")).json()
    finally:
        await standin.stop()
    return latencies, codes, counted


async def bench() -> None:
    print(f"  engine side (webhook ingress + long connection, dispatcher returns at once) in a subprocess; this "
          f"process plays Feishu: {EVENTS} events per mode one at a time after {WARMUP} warm-up ones, in "
          f"{ROUNDS} alternating rounds; latency = push to acknowledgement; {os.cpu_count()} cores")
    with tempfile.TemporaryFile(mode="w+") as errors:
        try:
            latencies, codes, counted = await run_all(errors)
        finally:
            errors.seek(0)
            lines = errors.read().strip().splitlines()
            if lines:
                print(f"  engine stderr ({len(lines)} lines, last 10):")
                for line in lines[-10:]:
                    print(f"    {line}")
    labels = {"webhook": "webhook (POST, token only)", "long_connection": "long connection (ws frame)"}
    for mode in MODES:
        acked = codes[mode].get(200, 0)
        others = {k: v for k, v in codes[mode].items() if k != 200}
        print(f"  {labels[mode]:<27} {summary(latencies[mode])}   {acked}/{len(latencies[mode])} acknowledged 200"
              + (f" (other: {others})" if others else "")
              + f", {counted[mode]['unique'] - WARMUP} distinct events dispatched")
    web, long = latencies["webhook"], latencies["long_connection"]
    print(f"  long connection / webhook: p50 {percentile(long, 50) / percentile(web, 50):.2f}x, "
          f"p99 {percentile(long, 99) / percentile(web, 99):.2f}x")


def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        main()
