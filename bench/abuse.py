"""Ingress under abuse: 20,000 idle connections, then a 300-message flood from one chat, on loopback.

Issue 16's two attacks, at their size, against the ingress as ``engine ingress`` serves it (the guard of
``engine/feishu/guard.py``, the per-chat fairness of ``engine/runtime/fairness.py``, the router's help
reply sent through the real Feishu client), each party in its own OS process on loopback:

* the **server** (``--serve``): the ingress with its ``[ingress]`` limits, replying through the Feishu
  stand-in; the router has no Temporal behind it (no scenario is enabled: a mention of the bot gets the
  help reply, any other message routes to nothing), so the figures are the ingress, the fairness and the
  reply path;
* the **holder** (``--hold``): opens the idle connections of the attack (headers and one byte of body,
  then nothing) and reports how each was closed;
* this process: the Feishu stand-in (it records the replies and enforces Feishu's 5/s per chat) and the
  genuine pushes, signed and encrypted as Feishu sends them.

Steps: (1) one mention to warm the reply path (first template render, first imports, the
tenant token), then ``BASELINE`` genuine pushes with no attack; (2) the holder opens the idle connections;
(3) ``PUSHES`` genuine pushes while they are held (acknowledgement latency); (4) ``FLOOD`` mentions from one
chat at ``FLOOD_RATE`` per second (from a process of its own; ``BENCH_ABUSE_FLOOD_RATE=0`` sends them
all at once), and meanwhile ``QUIET`` mentions from other chats, one every 0.1 s (a push is acknowledged
once its reply is sent, so its latency is the reply's); (5) the body timeout closes every idle connection.

How many idle connections: one process may hold at most ``RLIMIT_NOFILE``'s hard limit of descriptors;
both the holder and the server raise their soft limit to it. On a machine whose hard limit is 20,000
the server's connection cap is 20,000 - 256 (``guard.FD_RESERVE``), so the holder opens that minus
``ROOM`` (left for the genuine pushes and the flood) and the run says so. The body timeout is set to
``BODY_TIMEOUT_S`` (the default is 15 s) so that every idle connection is held through steps 3-4 even
when opening them all takes a while; step 5 waits for it.

``python -m bench.abuse`` runs it (about 2 minutes; stops by itself within ``RUN_DEADLINE_S``);
``BENCH_ABUSE_IDLE=2000 BENCH_ABUSE_BODY_TIMEOUT=20`` runs it smaller.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, summary

ROOT = Path(__file__).resolve().parents[1]
TARGET_IDLE = 20_000
ROOM = 400  # connections left under the server's cap for the genuine pushes and the flood
BODY_TIMEOUT_S = float(os.environ.get("BENCH_ABUSE_BODY_TIMEOUT", "60"))
BASELINE = 100
PUSHES = 300
FLOOD = 300
FLOOD_RATE = float(os.environ.get("BENCH_ABUSE_FLOOD_RATE", "100"))  # pushes/s; 0: all at once
QUIET = 40
RUN_DEADLINE_S = 240.0
OPEN_PARALLEL = 256  # connections being opened at once by the holder

APP_ID = "cli_bench_abuse"
APP_SECRET = "bench-abuse-secret"
TOKEN = "bench-abuse-token"
ENCRYPT_KEY = "bench-abuse-encrypt-key"
TENANT = "t_bench_abuse"
BOT = "ou_bot_bench_abuse"
HEAD = (b"POST /feishu/events HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{")


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------- the server


def serve(standin_url: str) -> None:
    """Child process: the ingress as ``engine ingress`` builds it, announcing its port and cap on stdout."""
    import logging

    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from engine.config import parse_config
    from engine.feishu.guard import GuardLimits, GuardStats, raise_file_limit, uvicorn_config
    from engine.feishu.ingress import build_ingress
    from engine.plugins import load_plugins
    from engine.runtime.app import EngineApp
    from engine.runtime.fairness import FairDispatcher
    from engine.runtime.router import Router, feishu_reply_sender

    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(name)s: %(message)s")
    if os.environ.get("BENCH_ABUSE_GC"):
        import gc
        gc.set_threshold(*map(int, os.environ["BENCH_ABUSE_GC"].split(",")))
    logging.getLogger("engine").setLevel(logging.INFO)
    feishu = {"app_id": APP_ID, "app_secret": {"env": "BENCH_ABUSE_SECRET"},
              "verification_token": {"env": "BENCH_ABUSE_TOKEN"}, "encrypt_key": {"env": "BENCH_ABUSE_KEY"},
              "bot_open_id": BOT, "base_url": standin_url}
    data = {"feishu": feishu, "ingress": {"body_timeout_seconds": BODY_TIMEOUT_S, "max_connections": 100_000},
            "organizations": {"bench": {"name": "Bench", "tenant_key": TENANT, "locale": "en_US"}}}
    config = parse_config(data, Path("bench-abuse.toml"), {})
    app = EngineApp(config=config, plugins=load_plugins(entry_points=False))
    ingress = config.ingress
    router = FairDispatcher(Router(None, app.plugins, task_queue="bench",  # type: ignore[arg-type]
                                   send_reply=feishu_reply_sender(app)),
                            per_chat=ingress.dispatches_per_chat, per_user=ingress.dispatches_per_user,
                            max_waiting=ingress.dispatch_queue)
    stats = GuardStats()
    limits = GuardLimits.from_settings(ingress, file_limit=raise_file_limit())
    server: uvicorn.Server | None = None

    async def bench_stats(request: Request) -> JSONResponse:
        connections = len(server.server_state.connections) if server else -1
        return JSONResponse({"refused_or_closed": stats.total, "connections": connections})

    asgi = build_ingress(config, router, extra_routes=[Route("/bench/stats", bench_stats)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]} CAP {limits.max_connections}", flush=True)
    server = uvicorn.Server(uvicorn_config(asgi, limits, stats=stats, backlog=ingress.backlog,
                                           timeout_graceful_shutdown=2))
    server.run(sockets=[sock])


# ---------------------------------------------------------------------------------- the holder


async def hold(port: int, count: int, deadline_s: float) -> None:
    """Child process: open ``count`` idle connections, say how many are open, then how each was closed."""
    limit = _raise_nofile()
    gate = asyncio.Semaphore(OPEN_PARALLEL)
    opened: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []
    failed = 0

    async def open_one() -> None:
        nonlocal failed
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(HEAD)
                await writer.drain()
            except OSError:
                failed += 1
                return
            opened.append(reader)
            writers.append(writer)

    started = time.monotonic()
    await asyncio.gather(*(open_one() for _ in range(count)))
    print(f"OPEN {len(opened)} FAILED {failed} IN {time.monotonic() - started:.1f} LIMIT {limit}", flush=True)

    async def closing(reader: asyncio.StreamReader) -> str:
        try:
            answer = await reader.read()
        except OSError:
            return "reset"
        return "408" if answer.startswith(b"HTTP/1.1 408 ") else ("closed" if not answer else "other")

    tasks = [asyncio.create_task(closing(r)) for r in opened]
    done, pending = await asyncio.wait(tasks, timeout=deadline_s) if tasks else (set(), set())
    outcomes: dict[str, int] = {}
    for task in done:
        outcomes[task.result()] = outcomes.get(task.result(), 0) + 1
    for task in pending:
        task.cancel()
    for writer in writers:
        writer.close()
    print(f"CLOSED {json.dumps(outcomes)} STILL_OPEN {len(pending)} AFTER {time.monotonic() - started:.1f}",
          flush=True)


async def flood(url: str, path: str) -> None:
    """Child process: send the pushes in ``path`` (``[[body, headers], ...]``) at ``FLOOD_RATE`` per second."""
    pushes = json.loads(Path(path).read_text())
    limits = httpx.Limits(max_connections=len(pushes), max_keepalive_connections=len(pushes))
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        print("SENDING", flush=True)
        sending = []
        for body, headers in pushes:
            sending.append(asyncio.create_task(client.post(url, content=body.encode(), headers=headers)))
            if FLOOD_RATE:
                await asyncio.sleep(1 / FLOOD_RATE)
        answers = await asyncio.gather(*sending, return_exceptions=True)
    statuses: dict[str, int] = {}
    for answer in answers:
        name = str(answer.status_code) if isinstance(answer, httpx.Response) else type(answer).__name__
        statuses[name] = statuses.get(name, 0) + 1
    print(f"ANSWERS {json.dumps(statuses)}", flush=True)


# ---------------------------------------------------------------------------------- this process


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEISHU_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(BENCH_ABUSE_SECRET=APP_SECRET, BENCH_ABUSE_TOKEN=TOKEN, BENCH_ABUSE_KEY=ENCRYPT_KEY)
    return env


async def _child(*args: str, log: Any = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.abuse", *args, env=_child_env(),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=log or asyncio.subprocess.DEVNULL)


async def _line(process: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    assert process.stdout is not None
    while True:
        raw = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not raw:
            raise RuntimeError(f"child {process.pid} ended before saying {prefix!r}")
        line = raw.decode().strip()
        if line.startswith(prefix):
            return line


async def _stop(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _pushes(client: httpx.AsyncClient, url: str, standin: Any, count: int, tag: str) -> list[float]:
    """``count`` genuine pushes (plain messages: acknowledged once dispatched), two at a time."""
    from engine.feishu.standin import events as ev

    sender = standin.sender()
    latencies: list[float] = []
    failures: dict[int, int] = {}

    async def one(i: int) -> None:
        event = standin.message_event(f"{tag} {i}", f"oc_{tag}_{i % 50}", f"ou_{tag}_{i % 50}", mentions_bot=False)
        body, headers = sender.build(standin.envelope(ev.EVENT_MESSAGE, event, event_id=uuid.uuid4().hex))
        started = time.perf_counter()
        response = await client.post(url, content=body, headers=headers)
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
        else:
            failures[response.status_code] = failures.get(response.status_code, 0) + 1

    for i in range(0, count, 2):
        await asyncio.gather(one(i), one(i + 1))
    if failures:
        print(f"   not acknowledged: {failures}")
    return latencies


async def _flood(client: httpx.AsyncClient, url: str, standin: Any) -> tuple[list[float], dict[str, int]]:
    """``FLOOD`` mentions from one chat at once; meanwhile ``QUIET`` mentions from other chats."""
    from engine.feishu.standin import events as ev

    sender = standin.sender()

    def mention(chat: str, user: str) -> tuple[bytes, dict[str, str]]:
        event = standin.message_event("hello", chat, user)
        return sender.build(standin.envelope(ev.EVENT_MESSAGE, event, event_id=uuid.uuid4().hex))

    flood = [mention("oc_noisy", f"ou_noisy_{i % 30}") for i in range(FLOOD)]
    quiet = [mention(f"oc_quiet_{i}", f"ou_quiet_{i}") for i in range(QUIET)]
    # the flood is sent by a process of its own, so that sending it does not slow this process's
    # measurements (nor the stand-in answering the replies)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump([[body.decode(), headers] for body, headers in flood], file)
    flooder = await _child("--flood", url, file.name)
    await _line(flooder, "SENDING", 30)
    await asyncio.sleep(0.2)
    latencies: list[float] = []
    reply_lags: list[float] = []  # from the push to the reply's arrival at the stand-in
    refused: dict[int, int] = {}

    async def one(body: bytes, headers: dict[str, str], chat: str) -> None:
        started, wall = time.perf_counter(), time.time()
        response = await client.post(url, content=body, headers=headers)
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
            sent = [m.create_time for m in standin.messages(chat_id=chat)]
            if sent:
                reply_lags.append(sent[0] / 1000 - wall)
        else:
            refused[response.status_code] = refused.get(response.status_code, 0) + 1

    quieting = []
    for i, (body, headers) in enumerate(quiet):
        quieting.append(asyncio.create_task(one(body, headers, f"oc_quiet_{i}")))
        await asyncio.sleep(0.1)
    await asyncio.gather(*quieting)
    statuses = json.loads((await _line(flooder, "ANSWERS", 60)).split(" ", 1)[1])
    await flooder.wait()
    os.unlink(file.name)
    if refused:
        print(f"   quiet chats not acknowledged: {refused}")
    print(f"   (from a quiet push to its reply reaching the stand-in: {summary(reply_lags)})")
    return latencies, statuses


def _max_per_second(times_ms: list[int]) -> int:
    ordered = sorted(times_ms)
    return max((sum(1 for t in ordered if start <= t < start + 1000) for start in ordered), default=0)


async def run() -> None:
    from engine.feishu.errors import RATE_LIMIT_CODES
    from engine.feishu.standin import FeishuStandIn
    from engine.feishu.standin.events import EVENT_MESSAGE

    _raise_nofile()
    standin = FeishuStandIn(app_id=APP_ID, app_secret=APP_SECRET, tenant_key=TENANT, bot_open_id=BOT,
                            encrypt_key=ENCRYPT_KEY, verification_token=TOKEN, enforce_rate_limits=True)
    await standin.start()
    server = holder = None
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with tempfile.TemporaryFile() as server_log:
        try:
            server = await _child("--serve", standin.base_url, log=server_log)
            words = (await _line(server, "PORT", 60)).split()
            port, cap = int(words[1]), int(words[3])
            url = f"http://127.0.0.1:{port}/feishu/events"
            idle = min(TARGET_IDLE, cap - ROOM, int(os.environ.get("BENCH_ABUSE_IDLE", TARGET_IDLE)))
            forbids = cap - ROOM < TARGET_IDLE
            print(f"open-file hard limit {hard} per process; server connection cap {cap}; idle connections "
                  f"{idle}" + (f" (the hard limit forbids {TARGET_IDLE:,}: the most it allows)" if forbids else ""))
            limits = httpx.Limits(max_connections=QUIET + 10, max_keepalive_connections=QUIET + 10)
            async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
                # warm the reply path (first template render, first imports, the tenant token) once
                warm = standin.message_event("hello", "oc_warm", "ou_warm")
                body, headers = standin.sender().build(standin.envelope(EVENT_MESSAGE, warm))
                assert (await client.post(url, content=body, headers=headers)).status_code == 200
                baseline = await _pushes(client, url, standin, BASELINE, "base")
                print(f"  genuine pushes, no attack ({len(baseline)}):      {summary(baseline)}")

                holder = await _child("--hold", str(port), str(idle), str(BODY_TIMEOUT_S + 60))
                line = await _line(holder, "OPEN", 120)
                print(f"  idle connections: {line.lower()}")
                stats = (await client.get(f"http://127.0.0.1:{port}/bench/stats")).json()
                print(f"  server: {stats['connections']} connections open")

                held = await _pushes(client, url, standin, PUSHES, "held")
                print(f"  genuine pushes, {idle} idle held ({len(held)}): {summary(held)}")

                quiet, flood_statuses = await _flood(client, url, standin)
                noisy = standin.messages(chat_id="oc_noisy")
                rate = f"{FLOOD_RATE:g}/s" if FLOOD_RATE else "all at once"
                print(f"  flood of {FLOOD} from one chat ({rate}): answers {flood_statuses}; "
                      f"{len(noisy)} replied so far, "
                      f"at most {_max_per_second([m.create_time for m in noisy])} in any second")
                print(f"  other chats' replies during the flood ({len(quiet)}): {summary(quiet)}")

                line = await _line(holder, "CLOSED", BODY_TIMEOUT_S + 90)
                print(f"  idle connections after the body timeout: {line.lower()}")
                stats = (await client.get(f"http://127.0.0.1:{port}/bench/stats")).json()
                print(f"  server counted: {stats['refused_or_closed']}; {stats['connections']} connections open")
            refused = [c for c in standin.calls if c.code in RATE_LIMIT_CODES]
            print(f"  Feishu rate-limit refusals seen by the stand-in: {len(refused)}")
            held_p99, quiet_p99 = percentile(held, 99), percentile(quiet, 99)
            print(f"RESULT idle {idle}: genuine push p99 {held_p99 * 1000:.0f} ms; other chat's reply p99 during "
                  f"a {FLOOD}-message flood {quiet_p99 * 1000:.0f} ms "
                  f"({'both under' if max(held_p99, quiet_p99) < 1.0 else 'NOT both under'} 1 s)")
        finally:
            await _stop(holder)
            await _stop(server)
            await standin.stop()
            server_log.seek(0, os.SEEK_END)
            size = server_log.tell()
            server_log.seek(0)
            lines = server_log.read().decode(errors="replace").splitlines()
            tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
            print(f"  server log: {size:,} bytes, {len(lines)} lines, {tracebacks} tracebacks")


def main() -> None:
    asyncio.run(asyncio.wait_for(run(), RUN_DEADLINE_S))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
    elif sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood(sys.argv[2], sys.argv[3]))
    elif sys.argv[1:2] == ["--hold"]:
        asyncio.run(hold(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    else:
        main()
