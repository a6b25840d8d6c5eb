"""What a running ``engine dev`` tells the commands run beside it: where its Temporal and Feishu stand-in are.

``engine dev`` writes ``dev-session.json`` (mode 0600) into its config's state dir (``state_dir`` in the
config, default ``.state`` beside it; ``--state-dir`` does not move it) once everything is up, and removes
it when it stops. A command run against the same development config (one without a ``[feishu]`` table) reads it,
so ``engine workflows list`` or a plugin's command reaches that instance with no environment variables,
also when dev was started on other ports. A production config never reads it: its Feishu app and Temporal
come from the config and its secrets only.

The file holds the stand-in's development credentials, never a real app's: dev starts the stand-in only
when no Feishu app is configured.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SESSION_FILE = "dev-session.json"


@dataclass(frozen=True)
class DevSession:
    """One running ``engine dev``: its pid, Temporal address, ingress URL and the stand-in's app (if any)."""

    pid: int
    config: str
    temporal_address: str | None
    ingress_url: str
    state_dir: str  # where dev keeps Temporal's data and the development payload keys
    # FEISHU_* variables pointing a client at the stand-in (empty when dev talks to a real app)
    feishu_env: dict[str, str] = field(default_factory=dict)
    standin_url: str | None = None

    def alive(self) -> bool:
        """Whether the process that wrote the file still runs (a killed dev leaves its file behind)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process holds the pid: not ours
            return False
        return True


def write(state_dir: Path, session: DevSession) -> Path:
    """Write ``session`` readable by its owner only; returns the file."""
    path = state_dir / SESSION_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(asdict(session), out, indent=2)
    return path


def remove(state_dir: Path, pid: int | None = None) -> None:
    """Remove the file, if it is still the one of ``pid`` (default: this process)."""
    found = read(state_dir)
    if found is not None and found.pid == (pid or os.getpid()):
        (state_dir / SESSION_FILE).unlink(missing_ok=True)


def read(state_dir: Path) -> DevSession | None:
    """The session recorded in ``state_dir``, alive or not; ``None`` without a readable file."""
    try:
        data: dict[str, Any] = json.loads((state_dir / SESSION_FILE).read_text(encoding="utf-8"))
        return DevSession(**data)
    except (OSError, ValueError, TypeError):
        return None


def running(config: Any) -> DevSession | None:
    """The live ``engine dev`` of this development config, or ``None`` (also for every production config)."""
    if config.feishu is not None:
        return None
    session = read(config.state_dir())
    return session if session is not None and session.alive() else None


def adopt(config: Any) -> DevSession | None:
    """Point this command's Feishu client at the running dev's stand-in (unless FEISHU_* are set already).

    Returns the session (its ``temporal_address`` is the one to connect to), or ``None`` when no dev of
    this config runs.
    """
    session = running(config)
    if session is not None and "FEISHU_APP_ID" not in os.environ:
        os.environ.update(session.feishu_env)
    return session
