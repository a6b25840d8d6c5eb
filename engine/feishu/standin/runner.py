"""Serving the stand-in with uvicorn: as a task on the caller's event loop, in a thread, or as a process.

The socket is bound before uvicorn starts so that ``port=0`` yields a known free port immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (pytest, ``engine dev``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without it every
    # answer (written in two parts) waited ~40 ms for the client's delayed acknowledgement
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # listening at once means a client that learns the port early queues instead of being refused
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          timeout_graceful_shutdown=2)


class ServerRunner:
    """Owns one uvicorn server for an ASGI app, in one of three modes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None
        self.port: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    async def start(self, host: str, port: int) -> int:
        """Serve as a task on the running loop; returns the bound port once it accepts connections."""
        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        self.server = _EmbeddedServer(_config(self.app, host, self.port))
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]), name="feishu-standin")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises the startup error
                raise RuntimeError("the stand-in server stopped during startup")
            await asyncio.sleep(0.01)
        return self.port

    def start_in_thread(self, host: str, port: int) -> int:
        """Serve on a private event loop in a daemon thread (safe for callers that block their own loop)."""
        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        server = self.server = _EmbeddedServer(_config(self.app, host, self.port))
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name="feishu-standin", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    def stop_thread(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def serve_forever(self, host: str, port: int, announce: Callable[[int], None] | None = None) -> None:
        """Block serving, with uvicorn's own SIGINT/SIGTERM handling (for ``python -m``)."""
        sock = bind(host, port)
        self.port = sock.getsockname()[1]
        if announce is not None:
            announce(self.port)
        self.server = uvicorn.Server(_config(self.app, host, self.port))
        self.server.run(sockets=[sock])
