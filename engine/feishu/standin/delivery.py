"""Pushing events to an endpoint the way Feishu does: encrypt, sign, POST, retry until acknowledged.

Feishu wants an HTTP 2xx within 3 s; otherwise it pushes the same event (same ``event_id``) again after
about 15 s, 5 min, 1 h and 6 h. Each push gets a fresh timestamp, nonce and signature. Tests pass short
``retries`` delays to see the whole sequence in milliseconds.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import crypto

FEISHU_RETRY_DELAYS: tuple[float, ...] = (15.0, 300.0, 3600.0, 21600.0)
TAMPERS = frozenset({"bad_signature", "no_signature", "wrong_token", "stale_timestamp", "wrong_key"})
STALE_SECONDS = 3600  # how old a "stale_timestamp" forgery claims to be


@dataclass
class Attempt:
    """One POST of an event."""

    at: float
    status: int | None
    body: str
    error: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class DeliveryResult:
    """The outcome of delivering one event, every attempt included."""

    url: str
    event_id: str
    payload: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None

    @property
    def response_json(self) -> Any:
        """The last answer parsed as JSON (None when it was not JSON)."""
        if not self.attempts:
            return None
        try:
            return json.loads(self.attempts[-1].body)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "event_id": self.event_id, "acknowledged": self.acknowledged,
                "status": self.status, "attempts": [a.__dict__ for a in self.attempts]}


class DeliveryError(RuntimeError):
    """A card callback was not answered with 2xx (Feishu shows the user an error toast)."""

    def __init__(self, result: DeliveryResult) -> None:
        last = result.attempts[-1] if result.attempts else None
        super().__init__(f"callback to {result.url} failed: status={last and last.status} "
                         f"error={last and last.error} body={(last.body if last else '')[:200]!r}")
        self.result = result


def _normalize_tamper(tamper: str | Iterable[str] | None) -> frozenset[str]:
    if tamper is None:
        return frozenset()
    kinds = frozenset([tamper] if isinstance(tamper, str) else tamper)
    unknown = kinds - TAMPERS
    if unknown:
        raise ValueError(f"unknown tamper kinds {sorted(unknown)}; known: {sorted(TAMPERS)}")
    return kinds


class EventSender:
    """Encrypts, signs and POSTs event payloads with one app's Encrypt Key and Verification Token."""

    def __init__(self, encrypt_key: str | None, verification_token: str | None) -> None:
        self.encrypt_key = encrypt_key
        self.verification_token = verification_token

    def build(self, payload: dict[str, Any], *, timestamp: str | None = None, nonce: str | None = None,
              tamper: str | Iterable[str] | None = None) -> tuple[bytes, dict[str, str]]:
        """The exact body bytes and headers of one push of ``payload``."""
        kinds = _normalize_tamper(tamper)
        if "wrong_token" in kinds:
            payload = copy.deepcopy(payload)
            if isinstance(payload.get("header"), dict):
                payload["header"]["token"] = "forged-token"
            else:
                payload["token"] = "forged-token"
        plain = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        key = self.encrypt_key
        if key:
            cipher_key = key + "-wrong" if "wrong_key" in kinds else key
            body = json.dumps({"encrypt": crypto.encrypt(cipher_key, plain)}).encode("utf-8")
        else:
            body = plain.encode("utf-8")
        ts = timestamp or str(int(time.time()) - (STALE_SECONDS if "stale_timestamp" in kinds else 0))
        nonce = nonce or secrets.token_hex(8)
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
                   "User-Agent": "Feishu-Event-Stand-in/1.0"}
        if "no_signature" not in kinds:
            # Feishu signs with the Encrypt Key; without one the header carries the signature of an empty key
            sig = crypto.signature(ts, nonce, key or "", body)
            if "bad_signature" in kinds:
                sig = crypto.signature(ts, nonce, "forged", body)
            headers["X-Lark-Signature"] = sig
        return body, headers

    async def push_once(self, client: httpx.AsyncClient, url: str, payload: dict[str, Any], *,
                        timeout: float, timestamp: str | None = None, nonce: str | None = None,
                        tamper: str | Iterable[str] | None = None,
                        extra_headers: dict[str, str] | None = None) -> Attempt:
        body, headers = self.build(payload, timestamp=timestamp, nonce=nonce, tamper=tamper)
        headers.update(extra_headers or {})
        started = time.monotonic()
        at = time.time()
        try:
            resp = await client.post(url, content=body, headers=headers, timeout=timeout)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            return Attempt(at=at, status=None, body="", error=f"{type(exc).__name__}: {exc}",
                           elapsed=time.monotonic() - started)
        return Attempt(at=at, status=resp.status_code, body=resp.text, elapsed=time.monotonic() - started)

    async def deliver(self, url: str, payload: dict[str, Any], *, event_id: str,
                      retries: Sequence[float] = FEISHU_RETRY_DELAYS, timeout: float = 3.0,
                      timestamp: str | None = None, nonce: str | None = None,
                      tamper: str | Iterable[str] | None = None,
                      extra_headers: dict[str, str] | None = None,
                      result: DeliveryResult | None = None) -> DeliveryResult:
        """Push until a 2xx arrives or the retry schedule is exhausted (1 + len(retries) attempts)."""
        result = result or DeliveryResult(url=url, event_id=event_id, payload=payload)
        delays = [0.0, *retries]
        # trust_env=False: a developer's HTTP(S)_PROXY must not capture loopback deliveries
        async with httpx.AsyncClient(trust_env=False) as client:
            for delay in delays:
                if delay:
                    await asyncio.sleep(delay)
                attempt = await self.push_once(client, url, payload, timeout=timeout, timestamp=timestamp,
                                               nonce=nonce, tamper=tamper, extra_headers=extra_headers)
                result.attempts.append(attempt)
                if attempt.ok:
                    break
        return result
