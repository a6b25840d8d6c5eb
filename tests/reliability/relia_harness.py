"""Processes of the reliability suite: each part of the engine as its own OS process, on loopback.

* the Temporal dev server (``temporal server start-dev`` on a SQLite state file, the command line of
  :class:`engine.runtime.server.EmbeddedTemporal`);
* the local Feishu stand-in, ``engine standin --port P --state FILE``;
* ``engine worker --config FILE`` and ``engine ingress --config FILE --port P``, pointed at the stand-in
  through the documented ``FEISHU_*`` overrides (what ``engine dev`` does in-process).

Every process runs in its own session, so a stop or a SIGKILL reaches its children too, and appends
its output to one log file per part (a marker line per start), which the suite reads for tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from engine.runtime.server import EmbeddedTemporal, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
ENGINE = str(Path(sys.executable).parent / "engine")
START_MARKER = "=== reliability suite: start #"

# The stand-in's app as `engine standin` creates it (FeishuStandIn's defaults); the suite's seed gives it
# an Encrypt Key and its own Verification Token, so pushes are encrypted and signed like Feishu's.
APP_ID = "cli_standin"
APP_SECRET = "standin-secret"
TENANT = "t_standin"
BOT_OPEN_ID = "ou_bot_standin"
VERIFICATION_TOKEN = "reliability-token"
ENCRYPT_KEY = "reliability-encrypt-key"
RECRUITING_CONTACT_KEY = "reliability-contact-key-0123456789abcdef0123456789"


class Proc:
    """One OS process of the stack, restartable; its output goes to ``log_path`` across restarts."""

    def __init__(self, name: str, args: list[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = dict(env or os.environ)
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_offset = 0  # where the current run's output begins in the log file

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n{START_MARKER}{self.starts} ({self.name}) at {time.strftime('%H:%M:%S')} ===\n".encode())
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                          cwd=ROOT, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        """What the current run has written so far."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode("utf-8", "replace")

    def _signal(self, sig: int) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    async def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.popen is None:
            return
        self._signal(signal.SIGKILL)
        await asyncio.to_thread(self.popen.wait)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean stop), then SIGKILL if it does not exit in time."""
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self._signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return await asyncio.to_thread(self.popen.wait)

    def stop_now(self) -> None:
        """Synchronous last resort for fixture teardown: SIGKILL whatever is still running."""
        if self.popen is not None and self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(10)


async def wait_until(probe: Any, what: str, timeout: float, proc: Proc | None = None, every: float = 0.1) -> Any:
    """Poll the async ``probe`` until it returns something truthy; fail with the process's output."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            result = await probe()
            if result:
                return result
        if proc is not None and proc.popen is not None and proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode} before {what}:\n"
                                 f"{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            tail = f":\n{proc.output()[-3000:]}" if proc is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        await asyncio.sleep(every)


@dataclass
class Stack:
    """The four processes and what they need to find each other."""

    dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"temporal": free_port(), "standin": free_port(), "ingress": free_port()}
        self.config_path = self.dir / "engine.toml"
        self.standin_state = self.dir / "standin.json"
        self.temporal = EmbeddedTemporal(self.dir / "temporal", port=self.ports["temporal"], ui=False)

    @property
    def standin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['standin']}"

    @property
    def ingress_url(self) -> str:
        return self.ingress_url_of("ingress")

    @property
    def events_url(self) -> str:
        return self.events_url_of("ingress")

    def ingress_url_of(self, name: str) -> str:
        """The base URL of the ingress process ``name`` (a port of its own, chosen on first use)."""
        return f"http://127.0.0.1:{self.ports.setdefault(name, free_port())}"

    def events_url_of(self, name: str) -> str:
        return f"{self.ingress_url_of(name)}/feishu/events"

    def engine_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "ENGINE_"))}
        env.update({"FEISHU_APP_ID": APP_ID, "FEISHU_APP_SECRET": APP_SECRET,
                    "FEISHU_VERIFICATION_TOKEN": VERIFICATION_TOKEN, "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
                    "FEISHU_BASE_URL": self.standin_url, "PYTHONUNBUFFERED": "1",
                    # recruiting hashes candidates' contacts with the organization's key
                    "RECRUITING_CONTACT_KEY": RECRUITING_CONTACT_KEY,
                    # repair's Alertmanager webhook token is derived from it (the suite sends no alert)
                    "REPAIR_ALERT_SECRET": RECRUITING_CONTACT_KEY[::-1],
                    # and its labels' report links from this one (the suite scans no label)
                    "REPAIR_SIGNING_KEY": RECRUITING_CONTACT_KEY[1:] + "r"})
        return env

    # -- the parts

    async def start_temporal(self) -> None:
        proc = self.procs.get("temporal")
        if proc is None:
            self.temporal.state_dir.mkdir(parents=True, exist_ok=True)
            proc = self.procs["temporal"] = Proc("temporal", self.temporal.command(), self.dir / "temporal.log")
        await wait_until(self._port_free("temporal"), "the Temporal port to be free", 30)
        proc.start()
        await wait_until(self._temporal_ready, "Temporal to answer", 60, proc, every=0.2)

    async def _temporal_ready(self) -> bool:
        from temporalio.client import Client

        if not port_open("127.0.0.1", self.ports["temporal"]):
            return False
        client = await Client.connect(self.temporal.address)
        await client.service_client.check_health()
        return True

    def _port_free(self, name: str) -> Any:
        async def probe() -> bool:
            return not port_open("127.0.0.1", self.ports[name])
        return probe

    async def start_standin(self) -> None:
        proc = self.procs.get("standin")
        if proc is None:
            proc = self.procs["standin"] = Proc(
                "standin", [ENGINE, "standin", "--port", str(self.ports["standin"]), "--state",
                            str(self.standin_state)], self.dir / "standin.log", self.engine_env())
        proc.start()

        async def ready() -> bool:
            async with httpx.AsyncClient(trust_env=False) as client:
                return (await client.get(f"{self.standin_url}/_standin/faults", timeout=2)).status_code == 200

        await wait_until(ready, "the stand-in to answer", 60, proc, every=0.2)

    async def start_worker(self, name: str = "worker") -> None:
        """Start (or restart) the worker process ``name``; several names: several workers on one config."""
        proc = self.procs.get(name)
        if proc is None:
            proc = self.procs[name] = Proc(
                name, [ENGINE, "worker", "--config", str(self.config_path)], self.dir / f"{name}.log",
                self.engine_env())
        proc.start()

        async def ready() -> bool:
            return "worker running on" in proc.output()

        await wait_until(ready, "the worker to run", 90, proc, every=0.1)

    async def start_ingress(self, name: str = "ingress") -> None:
        """Start (or restart) the ingress process ``name`` on its own port (:meth:`ingress_url_of`)."""
        url = self.ingress_url_of(name)
        proc = self.procs.get(name)
        if proc is None:
            proc = self.procs[name] = Proc(
                name, [ENGINE, "ingress", "--config", str(self.config_path), "--port",
                       str(self.ports[name])], self.dir / f"{name}.log", self.engine_env())
        await wait_until(self._port_free(name), "the ingress port to be free", 30)
        proc.start()

        async def ready() -> bool:
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"{url}/healthz", timeout=2)
                return response.status_code == 200 and response.json().get("temporal") is True

        await wait_until(ready, "the ingress to answer", 90, proc, every=0.1)

    async def stop_all(self) -> None:
        """Ingresses first, then workers, the stand-in and Temporal (each kind in the order started)."""
        for kind in ("ingress", "worker", "standin", "temporal"):
            for name, proc in list(self.procs.items()):
                if name.startswith(kind):
                    await proc.stop()

    def kill_all(self) -> None:
        for proc in self.procs.values():
            proc.stop_now()


# ------------------------------------------------------------------------------------------ the logs

_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def exception_chains(text: str) -> list[tuple[str, str]]:
    """Every logged traceback, chained ones as one: ``(the whole chain, its final exception line)``."""
    lines = text.splitlines()
    chains: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != _TRACEBACK:
            i += 1
            continue
        start, last = i, ""
        while True:
            i += 1
            # a frame is indented; the exception line is the first line that is not
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                i += 1
            last = lines[i] if i < len(lines) else ""
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].startswith(_CHAINED):
                k = j + 1
                while k < len(lines) and lines[k].strip() != _TRACEBACK:
                    k += 1
                i = k
                if i < len(lines):
                    continue
            break
        chains.append(("\n".join(lines[start:i + 1]), last))
        i += 1
    return chains
