"""Feishu failures as one exception type, classified retryable or not, and mapped to Temporal errors.

Feishu answers most failures with HTTP 200/400 and a business ``code`` in the JSON body; the HTTP status
alone says little. The table below is ours on purpose: lark-oapi 1.7's ``lark_oapi.channel`` classifies
rate limits (99991400, 230020) wrongly (FEISHU_NOTES.md), so nothing here relies on it.

Failures that never reached a JSON body (timeouts, refused connections, a gateway's HTML error page) get
negative pseudo-codes so they still carry an ``int`` code and a stable Temporal error type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# ------------------------------------------------------------------------------------- pseudo-codes
CODE_TIMEOUT = -1  # the request timed out (requests / httpx timeout)
CODE_CONNECTION = -2  # connection refused, reset, DNS failure
CODE_BAD_RESPONSE = -3  # a body that is not JSON (e.g. a 502 HTML page; lark raises JSONDecodeError)
CODE_HTTP = -4  # an HTTP error status with a JSON body that has no business code

# --------------------------------------------------------------------------------- the code table
# Rate limits and "busy" answers: wait and try again (Temporal retries; ``retry_after`` when known).
RATE_LIMIT_CODES: frozenset[int] = frozenset({
    99991400,  # app/tenant frequency limit on this API (HTTP 429, x-ogw-ratelimit-reset)
    230020,  # message send: too many messages to this chat/user
    1254290,  # Bitable: too many requests
    1254291,  # Bitable: write conflict, another writer on this table
    1470450,  # generic "request too fast" (some APIs answer this instead of 99991400)
})
# Tokens Feishu no longer accepts: fetch a fresh tenant token and retry once inside the call.
TOKEN_CODES: frozenset[int] = frozenset({
    99991661,  # access token missing
    99991663,  # tenant access token invalid or expired
    99991668,  # access token invalid
})
# Transient server-side failures answered with a business code rather than a 5xx.
TRANSIENT_CODES: frozenset[int] = frozenset({
    1254607,  # Bitable: data not ready, try again
    1255001,  # Bitable: internal error
    1255002,  # Bitable: internal error
    1255040,  # Bitable: request timed out
})

# Names for messages and logs; anything not listed is described by Feishu's own ``msg``.
CODE_NAMES: Mapping[int, str] = {
    CODE_TIMEOUT: "timeout",
    CODE_CONNECTION: "connection error",
    CODE_BAD_RESPONSE: "non-JSON response",
    CODE_HTTP: "HTTP error",
    99991400: "rate limited",
    230020: "rate limited",
    1470450: "rate limited",
    1254290: "table busy: too many requests",
    1254291: "table busy: concurrent write",
    99991661: "access token missing",
    99991663: "tenant token expired",
    99991668: "access token invalid",
    99991672: "no permission (missing scope)",
    99991401: "IP not allowed",
    99992402: "bad request: field validation failed",
    99992351: "invalid open_id",
    99992352: "invalid open_id",
    99992353: "invalid user_id",
    99992354: "invalid union_id",
    99992355: "invalid email",
    99992361: "open_id belongs to another app",
    230001: "bad request: invalid parameter",
    230002: "bot is not in the chat",
    230006: "bot ability not enabled",
    230011: "message was recalled",
    230013: "bot cannot reach this user",
    230017: "bot is not the chat owner",
    230025: "message too long",
    230099: "card content invalid",
    232006: "invalid chat id",
    232010: "chat and operator in different tenants",
    232011: "operator cannot manage chat",
    232024: "too many members in one call",
    1254000: "bad request",
    1254001: "bad request body",
    1254040: "Base (app_token) not found",
    1254041: "table not found",
    1254043: "record not found",
    1254045: "field not found",
    1254104: "too many records in one call (max 500)",
    1254607: "data not ready",
    10003: "invalid app_id or app_secret",
    10014: "invalid app_secret",
}


def is_retryable(code: int, http_status: int | None) -> bool:
    """Whether a failure with this business ``code`` / ``http_status`` may succeed when tried again.

    Only codes we know to be transient are retryable, plus any HTTP 5xx: an unknown code on a 2xx/4xx
    is treated as a caller error so a workflow does not retry a bad request for a day.
    """
    if code in RATE_LIMIT_CODES or code in TOKEN_CODES or code in TRANSIENT_CODES:
        return True
    if code in (CODE_TIMEOUT, CODE_CONNECTION, CODE_BAD_RESPONSE):
        return True
    if http_status is not None and http_status >= 500:
        return True
    return http_status == 429


class FeishuError(Exception):
    """One failed Feishu call: which call, Feishu's code and message, and whether to retry it."""

    def __init__(
        self,
        call: str,
        code: int,
        msg: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        log_id: str | None = None,
        rate_limit: int | None = None,
    ) -> None:
        self.call = call
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.retry_after = retry_after
        self.retryable = is_retryable(code, http_status) if retryable is None else retryable
        self.log_id = log_id
        self.rate_limit = rate_limit  # Feishu's x-ogw-ratelimit-limit: the count of the rule that refused
        super().__init__(self._describe())

    @property
    def is_rate_limit(self) -> bool:
        """Feishu (or a Bitable table) asked us to slow down."""
        return self.code in RATE_LIMIT_CODES or self.http_status == 429

    @property
    def is_token_error(self) -> bool:
        """The tenant token was refused: the client re-fetches it and retries once."""
        return self.code in TOKEN_CODES

    def _describe(self) -> str:
        name = CODE_NAMES.get(self.code)
        what = f"code {self.code} ({name})" if name else f"code {self.code}"
        parts = [f"{self.call} failed: {what}"]
        if self.msg:
            parts.append(self.msg)
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g}s")
        parts.append("retryable" if self.retryable else "not retryable")
        if self.log_id:
            parts.append(f"log_id {self.log_id}")
        return parts[0] + ": " + ", ".join(parts[1:])

    def to_application_error(self) -> Any:
        """This failure as a Temporal ``ApplicationError`` (type ``FeishuError.<code>``).

        ``next_retry_delay`` carries Feishu's ``x-ogw-ratelimit-reset`` so the retry waits exactly as
        long as Feishu asked instead of the policy's backoff.
        """
        from datetime import timedelta

        from temporalio.exceptions import ApplicationError

        return ApplicationError(
            str(self),
            {"call": self.call, "code": self.code, "msg": self.msg, "http_status": self.http_status},
            type=f"FeishuError.{self.code}",
            non_retryable=not self.retryable,
            next_retry_delay=timedelta(seconds=self.retry_after) if self.retry_after else None,
        )


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A response header looked up case-insensitively (lark keeps the server's casing in a plain dict)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def retry_after_from(headers: Mapping[str, str] | None) -> float | None:
    """Seconds Feishu asks us to wait, from ``x-ogw-ratelimit-reset`` (or a standard ``Retry-After``)."""
    for name in ("x-ogw-ratelimit-reset", "retry-after"):
        value = header(headers, name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def rate_limit_from(headers: Mapping[str, str] | None) -> int | None:
    """The count of the limit Feishu applied, from ``x-ogw-ratelimit-limit`` (FEISHU_NOTES: sent with 429)."""
    value = header(headers, "x-ogw-ratelimit-limit")
    try:
        count = int(float(value)) if value is not None else None
    except ValueError:
        return None
    return count if count is not None and count >= 1 else None


def error_from_body(
    call: str,
    http_status: int | None,
    headers: Mapping[str, str] | None,
    content: bytes | None,
) -> FeishuError:
    """Classify a failed raw HTTP answer (used for token fetches and bodies lark could not parse)."""
    log_id = header(headers, "x-tt-logid")
    try:
        body = json.loads(content or b"")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        snippet = (content or b"")[:120].decode("utf-8", "replace").strip().replace("\n", " ")
        return FeishuError(call, CODE_BAD_RESPONSE, f"body is not JSON: {snippet!r}", http_status,
                           retry_after_from(headers), log_id=log_id)
    code = body.get("code")
    msg = str(body.get("msg") or "")
    if not isinstance(code, int) or code == 0:
        code = CODE_HTTP
    return FeishuError(call, code, msg, http_status, retry_after_from(headers), log_id=log_id,
                       rate_limit=rate_limit_from(headers))
