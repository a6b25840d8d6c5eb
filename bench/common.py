"""Shared helpers: percentiles, an embedded server in a temporary folder, a printed table."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from engine.runtime.server import EmbeddedTemporal, free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies_s: Sequence[float]) -> str:
    ms = [v * 1000 for v in latencies_s]
    return (f"p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
            f"mean {statistics.fmean(ms):7.1f} ms")


@contextlib.asynccontextmanager
async def embedded_server() -> AsyncIterator[EmbeddedTemporal]:
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as folder:
        server = EmbeddedTemporal(Path(folder), port=free_port(), ui=False)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
