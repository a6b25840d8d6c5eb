"""Signed scan links and the scan page's session cookie (HMAC-SHA256, compared in constant time).

A link ``/asset_loan/scan/{org}/{asset_id}?sig=...`` carries the HMAC of the organization and asset id,
so nobody can make a link for another asset or alter one. The session cookie carries who logged in
through Feishu, for which organization, until when. Each use has its own key (:data:`LINKS`,
:data:`SESSIONS`, :data:`LOGIN_STATE`, :data:`CSRF`), derived from the organization's secret by
:class:`engine.secrets.Keyring`; verifying functions take every key still accepted (the current one
first, then those of previous secrets during a rotation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

SIG_BYTES = 16  # 128 bits: unguessable, and short enough for a small QR code

# purposes: one derived key each
LINKS = "links"
SESSIONS = "sessions"
LOGIN_STATE = "login_state"
CSRF = "csrf"

Keys = bytes | Sequence[bytes]


def _all(keys: Keys) -> Sequence[bytes]:
    return [keys] if isinstance(keys, bytes) else keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def asset_signature(key: bytes, org: str, asset_id: str) -> str:
    # the separator cannot occur in an org id or be confused with the asset id's characters
    mac = hmac.new(key, f"asset_loan\x1f{org}\x1f{asset_id}".encode(), hashlib.sha256).digest()
    return _b64(mac[:SIG_BYTES])


def verify_asset(keys: Keys, org: str, asset_id: str, signature: str | None) -> bool:
    """Whether ``signature`` was made by one of ``keys`` for this organization and asset."""
    if not signature:
        return False
    # every key is tried, so the time taken does not tell which one matched
    results = [hmac.compare_digest(asset_signature(key, org, asset_id).encode(), signature.encode())
               for key in _all(keys)]
    return any(results)


def scan_path(key: bytes, org: str, asset_id: str) -> str:
    signature = asset_signature(key, org, asset_id)
    return f"/asset_loan/scan/{quote(org, safe='')}/{quote(asset_id, safe='')}?sig={signature}"


def scan_url(public_url: str, key: bytes, org: str, asset_id: str) -> str:
    """The link a label's QR code encodes."""
    return public_url.rstrip("/") + scan_path(key, org, asset_id)


def sign_payload(key: bytes, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(key, f"session\x1f{body}".encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def read_payload(keys: Keys, token: str | None, *, now: float | None = None) -> dict[str, Any] | None:
    """The payload of a token signed by :func:`sign_payload` with one of ``keys``, or None if forged,
    malformed or expired."""
    if not token or token.count(".") != 1:
        return None
    body, mac = token.split(".")
    matches = [hmac.compare_digest(_b64(hmac.new(key, f"session\x1f{body}".encode(), hashlib.sha256).digest())
                                   .encode(), mac.encode()) for key in _all(keys)]
    if not any(matches):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    if float(payload.get("exp", 0)) < (time.time() if now is None else now):
        return None
    return payload
