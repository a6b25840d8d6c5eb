"""Fault injection and optional rate limits: how the stand-in misbehaves on purpose.

A :class:`Fault` applies to API calls whose path starts with ``path_prefix`` (``""`` = every API), for the
next ``times`` matching calls and/or for ``duration`` seconds after injection. Token endpoints under
``/open-apis/auth/`` are exempt unless the prefix names them, because lark-oapi fetches a token before
the first call and a test that injects "the next call fails" means the API call, not the token fetch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal["rate_limit", "server_error", "slow", "expired_token"]

# Feishu's own codes for the situations the faults imitate.
RATE_LIMITED = 99991400
TOKEN_INVALID = 99991663
TOKEN_MISSING = 99991661
MESSAGE_RATE_LIMITED = 230020  # message send: too many messages to one chat/user


@dataclass
class Fault:
    """One injected misbehaviour.

    ``kind``:
      * ``rate_limit``: HTTP ``status`` (429) with code 99991400 and the ``x-ogw-ratelimit-limit`` /
        ``x-ogw-ratelimit-reset`` headers (``limit`` and ``reset`` seconds).
      * ``server_error``: HTTP ``status`` (500/502/503/504). ``html=True`` answers a gateway's HTML error page
        (lark-oapi raises ``JSONDecodeError`` on it), ``False`` a JSON error, ``None`` alternates, starting
        with HTML: a real gateway does both.
      * ``slow``: waits ``delay`` seconds, then answers normally (to trip client timeouts).
      * ``expired_token``: HTTP 400 with code 99991663, as if the tenant token had expired.
    """

    kind: FaultKind
    path_prefix: str = ""
    times: int | None = 1
    duration: float | None = None
    status: int | None = None
    delay: float = 1.0
    html: bool | None = None
    limit: int = 50
    reset: int = 1
    code: int | None = None
    app_id: str | None = None
    # bookkeeping
    hits: int = 0
    created_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.kind not in ("rate_limit", "server_error", "slow", "expired_token"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.times is None and self.duration is None:
            raise ValueError("a fault needs `times`, `duration` or both, or it would never end")

    def expired(self, now: float) -> bool:
        if self.times is not None and self.hits >= self.times:
            return True
        return self.duration is not None and now - self.created_at >= self.duration

    def matches(self, path: str, app_id: str | None) -> bool:
        if self.app_id is not None and app_id != self.app_id:
            return False
        if path.startswith("/open-apis/auth/") and not (
            self.path_prefix.startswith("/open-apis/auth") and self.kind != "expired_token"
        ):
            return False
        return path.startswith(self.path_prefix or "/open-apis/")

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "created_at"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = {"kind", "path_prefix", "times", "duration", "status", "delay", "html", "limit", "reset",
                   "code", "app_id"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


class FaultBook:
    """The active faults, consumed in injection order. Thread-safe: tests inject from other threads."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            fault.created_at = time.monotonic()
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired(now)]
            return list(self._faults)

    def take(self, path: str, app_id: str | None) -> Fault | None:
        """The first live fault matching this call, counting the hit."""
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired(now)]
            for fault in self._faults:
                if fault.matches(path, app_id):
                    fault.hits += 1
                    return fault
        return None


@dataclass(frozen=True)
class RateRule:
    """At most ``limit`` calls per ``window`` seconds for calls named ``api``, per app or per receiver."""

    api: str
    limit: int
    window: float
    per: Literal["app", "receiver"] = "app"
    code: int = RATE_LIMITED
    status: int = 429


# Feishu's documented message-send limits: 50/s and 1,000/min per app, 5/s into one chat or to one user.
DEFAULT_RATE_RULES: tuple[RateRule, ...] = (
    RateRule("im.message.send", 50, 1.0),
    RateRule("im.message.send", 1000, 60.0),
    RateRule("im.message.send", 5, 1.0, per="receiver", code=MESSAGE_RATE_LIMITED, status=400),
    RateRule("im.chat.create", 10, 1.0),
    RateRule("bitable.record.write", 50, 1.0),
)


class RateLimiter:
    """Sliding-window counters; only consulted when the stand-in runs with ``enforce_rate_limits``."""

    def __init__(self, rules: tuple[RateRule, ...] = DEFAULT_RATE_RULES) -> None:
        self.rules = rules
        self._hits: dict[tuple[Any, ...], deque[float]] = {}
        self._peaks: dict[tuple[Any, ...], int] = {}  # the most calls one window ever counted
        self._lock = threading.Lock()

    def check(self, api: str, app_id: str, receiver: str | None = None) -> tuple[RateRule, float] | None:
        """Count a call; return the broken rule and the seconds until it clears, or None if allowed.

        A refused call is not counted, like Feishu's gateway: backing off and retrying eventually succeeds.
        """
        now = time.monotonic()
        rules = [r for r in self.rules if r.api == api and (r.per == "app" or receiver)]
        with self._lock:
            windows = []
            for rule in rules:
                key = (rule.api, rule.limit, rule.window, app_id, receiver if rule.per == "receiver" else None)
                hits = self._hits.setdefault(key, deque())
                while hits and now - hits[0] >= rule.window:
                    hits.popleft()
                if len(hits) >= rule.limit:
                    return rule, rule.window - (now - hits[0])
                windows.append((key, hits))
            for key, hits in windows:
                hits.append(now)
                self._peaks[key] = max(self._peaks.get(key, 0), len(hits))
        return None

    def peak(self, rule: RateRule, app_id: str) -> int:
        """The most calls ``rule`` counted in one window for ``app_id`` (any receiver's, for a per-receiver rule).

        Counted at each allowed call over the window ending at it, so this is the sliding-window maximum.
        """
        with self._lock:
            return max((n for (api, limit, window, app, _), n in self._peaks.items()
                        if (api, limit, window, app) == (rule.api, rule.limit, rule.window, app_id)), default=0)
