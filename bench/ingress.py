"""Ingress: signed events/s and acknowledgement latency p50/p99, with and without encryption.

The real webhook ingress (``build_ingress`` on a config parsed from TOML data whose ``[feishu]`` secrets
come from ``FEISHU_*`` environment variables) is served by uvicorn in a *subprocess*, one per mode, and
loaded from this process with ``httpx.AsyncClient``: on 2 cores a client and a server sharing one event
loop would each slow the other, and the ingress' ``asyncio.to_thread`` hop would compete with the client
for the same loop. The dispatcher records the event and returns at once, so the figures are the ingress
itself: lark-oapi's token check (and, with an encrypt key, AES decryption and the signature check), the
timestamp checks, normalization and the seen-set, with no Temporal behind it.

Modes: ``plain`` (verification token only; the body is signed but lark checks ``X-Lark-Signature`` only
when an encrypt key is configured) and ``encrypted`` (encrypt key: the body is AES-encrypted and signed).
The baseline, on the same server setup and client, is a bare Starlette endpoint that parses the JSON body
and answers 200. The server socket is created with ``proto=IPPROTO_TCP`` so that asyncio sets
``TCP_NODELAY`` on each connection, as it does when uvicorn binds ``host``/``port`` itself (how the engine
serves the ingress); a ``socket.socket()`` (proto 0) would add ~40 ms of Nagle/delayed-ACK to every answer.

``python -m bench.ingress --serve MODE`` is the server side (started by :func:`main`, not by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import cpu_seconds, percentile, summary

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 1_000  # measured requests per mode
WARMUP = 100  # unmeasured requests per server, first
# 4, not 16: measured here, httpx's pool costs ~3 ms of client CPU per request with 16 connections and
# ~1.4 ms with 4, so at 16 the client saturates its core and every mode reads the same ~330/s.
CONCURRENCY = 4
SERIAL_EVENTS = 200  # then one at a time: the acknowledgement latency without queueing
ROUNDS = 5  # each round runs every mode (EVENTS / ROUNDS, SERIAL_EVENTS / ROUNDS), in rotating order
RUN_DEADLINE_S = 20.0  # per load (one mode in one round): no new request is started after this
REQUEST_TIMEOUT_S = 10.0
STARTUP_DEADLINE_S = 30.0

APP_ID = "cli_bench_ingress"
APP_SECRET = "bench-app-secret"
TOKEN = "bench-verification-token"
ENCRYPT_KEY = "bench-encrypt-key"
TENANT = "t_bench"
BOT = "ou_bot_bench"
MODES = ("bare", "plain", "encrypted")
WIRE = {"bare": "plain", "plain": "plain", "encrypted": "encrypted"}  # bare gets the plain envelopes
LABELS = {"bare": "bare Starlette (baseline)", "plain": "ingress, token only", "encrypted": "ingress, encrypted+signed"}


# ---------------------------------------------------------------------------------- server side


def _server_env(mode: str) -> dict[str, str]:
    """The child's environment: every FEISHU_* variable of ours dropped, then the mode's set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEISHU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    if mode != "bare":
        env.update(FEISHU_APP_ID=APP_ID, FEISHU_APP_SECRET=APP_SECRET, FEISHU_VERIFICATION_TOKEN=TOKEN)
    if mode == "encrypted":
        env["FEISHU_ENCRYPT_KEY"] = ENCRYPT_KEY
    return env


def _ingress_app(mode: str) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from engine.config import parse_config
    from engine.feishu.ingress import build_ingress
    from engine.runtime.dispatch import DispatchResult
    from engine.testing.kit import org_config

    feishu: dict[str, Any] = {"app_id": os.environ["FEISHU_APP_ID"], "app_secret": {"env": "FEISHU_APP_SECRET"},
                              "verification_token": {"env": "FEISHU_VERIFICATION_TOKEN"}, "bot_open_id": BOT}
    if mode == "encrypted":
        feishu["encrypt_key"] = {"env": "FEISHU_ENCRYPT_KEY"}
    data = org_config(plugins=[], org_id="bench", tenant_key=TENANT)
    data["feishu"] = feishu
    config = parse_config(data, Path("bench.toml"), {})
    # What the ingress will actually use (env first): the plain server must have no encrypt key at all.
    assert bool(config.secret("encrypt_key")) == (mode == "encrypted")

    class RecordingDispatcher:
        def __init__(self) -> None:
            self.event_ids: list[str] = []

        async def dispatch(self, event: Any, org: Any) -> DispatchResult:
            self.event_ids.append(event.event_id)
            return DispatchResult(effects=1)

    dispatcher = RecordingDispatcher()

    async def dispatched(request: Request) -> JSONResponse:
        return JSONResponse({"count": len(dispatcher.event_ids), "unique": len(set(dispatcher.event_ids))})

    return build_ingress(config, dispatcher, extra_routes=[Route("/bench/dispatched", dispatched)])


def _bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    count = 0

    async def events(request: Request) -> Response:
        nonlocal count
        json.loads(await request.body())
        count += 1
        return JSONResponse({})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def dispatched(request: Request) -> Response:
        return JSONResponse({"count": count, "unique": count})

    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]),
                             Route("/feishu/events", events, methods=["POST"]),
                             Route("/bench/dispatched", dispatched)])


def bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port, created with ``proto=IPPROTO_TCP``.

    asyncio sets ``TCP_NODELAY`` on accepted connections only when the socket's ``proto`` says TCP; a
    ``socket.socket()`` has ``proto`` 0, and then every response written in two parts (h11 writes the head
    and the body separately) waits ~40 ms for the client's delayed ACK. uvicorn's own ``host``/``port``
    binding (how the engine serves the ingress) gets ``proto`` 6 from getaddrinfo, so this matches it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def serve(mode: str) -> None:
    """Child process: bind a free loopback port, announce it on stdout, serve until SIGTERM."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    app = _bare_app() if mode == "bare" else _ingress_app(mode)
    sock = bind_loopback()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


# ---------------------------------------------------------------------------------- client side


@dataclass
class RunResult:
    sent: int
    elapsed: float
    latencies: list[float]
    statuses: dict[int | str, int] = field(default_factory=dict)
    server_cpu_s: float = float("nan")
    client_cpu_s: float = float("nan")
    serial: list[float] = field(default_factory=list)  # latencies one request at a time

    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events/s: the median of the rounds' rates when there are rounds (robust to a busy neighbour)."""
        if self.round_rates:
            return statistics.median(self.round_rates)
        return self.sent / self.elapsed if self.elapsed > 0 else float("nan")

    def per_event_ms(self, cpu_s: float) -> float:
        return cpu_s / self.sent * 1000 if self.sent else float("nan")


def build_requests(client: httpx.AsyncClient, url: str, mode: str, count: int, tag: str) -> list[httpx.Request]:
    """``count`` pushes exactly as Feishu sends them, each with its own event_id, built before timing."""
    from engine.feishu.standin import events as ev
    from engine.feishu.standin.delivery import EventSender

    sender = EventSender(ENCRYPT_KEY if mode == "encrypted" else None, TOKEN)
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        event = ev.message_event(f"hello {i}", f"oc_bench_{i % 50}", f"ou_bench_{i % 200}",
                                 bot_open_id=BOT, tenant_key=TENANT)
        payload = ev.envelope_v2(ev.EVENT_MESSAGE, event, app_id=APP_ID, tenant_key=TENANT, token=TOKEN,
                                 event_id=f"{tag}-{run}-{i}")
        body, headers = sender.build(payload)
        out.append(client.build_request("POST", url, content=body, headers=headers))
    return out


async def load(client: httpx.AsyncClient, requests: Sequence[httpx.Request], concurrency: int) -> RunResult:
    """Send every request, ``concurrency`` at a time, until done or ``RUN_DEADLINE_S`` has passed."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    next_index = 0
    cpu_before = time.process_time()
    began = time.perf_counter()
    deadline = began + RUN_DEADLINE_S

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(requests) and time.perf_counter() < deadline:
            request = requests[next_index]
            next_index += 1
            started = time.perf_counter()
            try:
                response = await client.send(request)
                await response.aread()
                status: int | str = response.status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return RunResult(len(latencies), time.perf_counter() - began, latencies, statuses,
                     client_cpu_s=time.process_time() - cpu_before)


@contextlib.asynccontextmanager
async def server(mode: str, errors: Any) -> Any:
    """Start ``python -m bench.ingress --serve MODE``; yield (base url, pid); terminate it afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingress", "--serve", mode, cwd=str(ROOT), env=_server_env(mode),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=errors)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), STARTUP_DEADLINE_S)).decode().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{mode} server did not start (said {line!r}); see its stderr above")
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as probe:
            give_up = time.monotonic() + STARTUP_DEADLINE_S
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get(f"{base}/healthz")).status_code == 200:
                        break
                if time.monotonic() > give_up or proc.returncode is not None:
                    raise RuntimeError(f"{mode} server is not answering /healthz")
                await asyncio.sleep(0.05)
        yield base, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def run_all(errors: Any) -> tuple[dict[str, RunResult], dict[str, dict[str, int]]]:
    """All three servers up at once; ``ROUNDS`` rounds, each running every mode in a rotating order.

    Interleaving spreads whatever else the machine is doing over all modes alike instead of over one.
    """
    results = {mode: RunResult(0, 0.0, [], server_cpu_s=0.0, client_cpu_s=0.0) for mode in MODES}
    dispatched: dict[str, dict[str, int]] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with contextlib.AsyncExitStack() as stack:
        targets: dict[str, tuple[httpx.AsyncClient, str, int]] = {}
        for mode in MODES:
            base, pid = await stack.enter_async_context(server(mode, errors))
            client = await stack.enter_async_context(
                httpx.AsyncClient(trust_env=False, limits=limits, timeout=REQUEST_TIMEOUT_S))
            targets[mode] = (client, base, pid)
        for mode, (client, base, _) in targets.items():
            await load(client, build_requests(client, f"{base}/feishu/events", WIRE[mode], WARMUP, f"{mode}-warm"),
                       CONCURRENCY)
        for round_no in range(ROUNDS):
            for mode in MODES[round_no % len(MODES):] + MODES[:round_no % len(MODES)]:
                client, base, pid = targets[mode]
                url = f"{base}/feishu/events"
                # built just before their run: the push timestamps must be fresh (±300 s)
                requests = build_requests(client, url, WIRE[mode], EVENTS // ROUNDS, f"{mode}-{round_no}")
                cpu_before = cpu_seconds(pid)
                part = await load(client, requests, CONCURRENCY)
                server_cpu = cpu_seconds(pid) - cpu_before
                serial = await load(client, build_requests(client, url, WIRE[mode], SERIAL_EVENTS // ROUNDS,
                                                           f"{mode}-serial-{round_no}"), 1)
                total = results[mode]
                total.sent += part.sent
                total.elapsed += part.elapsed
                total.latencies += part.latencies
                total.server_cpu_s += server_cpu
                total.client_cpu_s += part.client_cpu_s
                total.serial += serial.latencies
                for status, n in part.statuses.items():
                    total.statuses[status] = total.statuses.get(status, 0) + n
                for status, n in serial.statuses.items():
                    if status != 200:
                        total.statuses[f"serial {status}"] = total.statuses.get(f"serial {status}", 0) + n
                total.round_rates.append(part.rate)
        for mode, (client, base, _) in targets.items():
            dispatched[mode] = (await client.get(f"{base}/bench/dispatched")).json()
    return results, dispatched


def _line(mode: str, result: RunResult, dispatched: dict[str, int]) -> str:
    ok = result.statuses.get(200, 0)
    others = {k: v for k, v in result.statuses.items() if k != 200}
    tail = f"{ok}/{result.sent} answered 200" + (f" (other: {others})" if others else "")
    if mode != "bare":
        tail += f", {dispatched['unique'] - WARMUP - len(result.serial)} distinct events dispatched"
    if result.sent < EVENTS:
        tail += f", {EVENTS - result.sent} not sent: a round hit its {RUN_DEADLINE_S:.0f} s deadline"
    return (f"  {LABELS[mode]:<27} {result.rate:7.1f} events/s   {summary(result.latencies)}\n"
            f"  {'':<27} one at a time: p50 {percentile(result.serial, 50) * 1000:5.2f} ms   "
            f"p99 {percentile(result.serial, 99) * 1000:5.2f} ms   CPU per event: server "
            f"{result.per_event_ms(result.server_cpu_s):5.2f} ms, client "
            f"{result.per_event_ms(result.client_cpu_s):5.2f} ms   {tail}")


async def bench() -> None:
    print(f"  uvicorn (asyncio loop, h11) in its own process per mode, loaded from this process with "
          f"httpx.AsyncClient: {CONCURRENCY} concurrent keep-alive connections, {EVENTS} pre-built pushes "
          f"per mode (unique event_id each) after {WARMUP} warm-up ones, and {SERIAL_EVENTS} one at a time, in "
          f"{ROUNDS} interleaved rounds; "
          f"{os.cpu_count()} cores shared by client and server")
    print("  dispatcher records the event and returns at once: the figures are the ingress itself "
          "(lark-oapi verify/decrypt, timestamp checks, normalization, dedupe), no Temporal; "
          "latency = POST to acknowledgement at the client (under load: queueing included)")
    with tempfile.TemporaryFile(mode="w+") as errors:
        try:
            results, dispatched = await run_all(errors)
            for mode in MODES:
                print(_line(mode, results[mode], dispatched[mode]))
                print(f"  {'':<27} events/s per round (the figure above is their median): "
                      + ", ".join(f"{rate:.0f}" for rate in results[mode].round_rates))
        finally:
            errors.seek(0)
            text = errors.read().strip()
            if text:
                lines = text.splitlines()
                print(f"  server stderr ({len(lines)} lines, last 10):")
                for line in lines[-10:]:
                    print(f"    {line}")
    base = results["bare"]
    for mode in ("plain", "encrypted"):
        r = results[mode]
        print(f"  {LABELS[mode]} / bare: throughput {r.rate / base.rate:.2f}x, "
              f"p50 {percentile(r.latencies, 50) / percentile(base.latencies, 50):.2f}x, "
              f"p99 {percentile(r.latencies, 99) / percentile(base.latencies, 99):.2f}x; one at a time "
              f"p50 {percentile(r.serial, 50) / percentile(base.serial, 50):.2f}x; server CPU per event "
              f"{r.per_event_ms(r.server_cpu_s) / base.per_event_ms(base.server_cpu_s):.2f}x")
    plain, enc = results["plain"], results["encrypted"]
    print(f"  encrypted / token only: throughput {enc.rate / plain.rate:.2f}x, one at a time p50 "
          f"{percentile(enc.serial, 50) / percentile(plain.serial, 50):.2f}x, server CPU per event "
          f"{enc.per_event_ms(enc.server_cpu_s) / plain.per_event_ms(plain.server_cpu_s):.2f}x")
    busy = max(r.client_cpu_s / r.elapsed for r in results.values())
    if busy > 0.8:
        print(f"  note: the client used up to {busy:.0%} of a core during the runs, so events/s under load is "
              "partly the httpx client's ceiling (the server has the other core); the server's own cost is its "
              "CPU per event (uvicorn + app) and the one-at-a-time latency: "
              + ", ".join(f"{LABELS[m]} ~{1000 / results[m].per_event_ms(results[m].server_cpu_s):.0f} events/s "
                          "per core" for m in ("plain", "encrypted")))

def main() -> None:
    asyncio.run(bench())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve" and sys.argv[2] in MODES:
        serve(sys.argv[2])
    else:
        main()
