"""The engine's outbound Feishu client: lark-oapi's typed API, called without stalling the event loop.

How calls are made, and why
---------------------------
lark-oapi 1.7.5 offers an ``a``-prefixed async twin of every method, but it is unfit for a busy worker:

* it fetches the tenant token with synchronous ``requests`` on the event loop (a stall of over a second
  was measured, FEISHU_NOTES.md), and
* it opens a new ``httpx.AsyncClient`` per call, whose construction alone (an SSL context loaded from
  certifi) took ~49 ms of event-loop CPU per call on this machine: a ceiling of ~20 calls/s for the
  whole worker, all of it blocking activities and heartbeats.

So this client (1) fetches and caches the tenant token itself, over one pooled ``httpx.AsyncClient`` made
once, single-flight under an ``asyncio.Lock`` (a 2,000-message burst on a cold cache costs one token
request, not 2,000), and hands it to lark with ``RequestOption.tenant_access_token``
(``enable_set_token``); and (2) runs lark's *synchronous* methods in a dedicated thread pool, where their
blocking I/O costs a thread, never the loop. Owning the token also fixes lark's global token cache, which
is keyed by app_id only and never dropped when Feishu answers 99991663: here an expired token is dropped,
re-fetched, and the call retried once.

Every call first passes the app's :class:`~engine.feishu.ratelimit.RateLimiter`; failures become
:class:`~engine.feishu.errors.FeishuError`. ``lark_oapi`` is imported in the constructor and in methods,
never at module level (it costs ~2 s and 175 MB).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from engine.feishu.errors import (
    CODE_BAD_RESPONSE,
    CODE_CONNECTION,
    CODE_HTTP,
    CODE_TIMEOUT,
    FeishuError,
    error_from_body,
    rate_limit_from,
    retry_after_from,
)
from engine.feishu.ratelimit import MESSAGE_SEND, RateLimiter
from engine.feishu.requests import (
    ApprovalInstance,
    ApprovalTask,
    BitableRecord,
    ChatCreated,
    UpsertResult,
    UserRef,
)

if TYPE_CHECKING:
    import httpx

    from engine.config import EngineConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://open.feishu.cn"
TOKEN_CALL = "auth.v3.tenant_access_token.internal"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"

CHAT_MEMBERS_PER_CALL = 50  # Feishu: at most 50 users per chat create / add-members call
BITABLE_RECORDS_PER_CALL = 500  # Feishu: at most 500 records per batch call (1254104 beyond)
BITABLE_PAGE_SIZE = 500  # Feishu's largest search page
CHAT_NAME_MAX = 60  # Feishu rejects longer chat names
CHAT_NOT_FOUND = 232006  # "invalid chat id": also what a second delete of a dissolved chat answers
LOOKUP_PER_CALL = 50  # contact batch_get_id: at most 50 emails and 50 mobiles per call
CONTACT_PAGE_SIZE = 50  # contact v3 department children and users by department: at most 50 a page
NO_USER_AUTHORITY = 41050  # contact user get: the user is unknown or outside the app's contact scope
UPSERT_KEYS_PER_SEARCH = 20  # keys OR-ed into one search filter when matching upsert keys
# Refresh the tenant token this long before Feishu says it expires (it lives 7,200 s).
TOKEN_REFRESH_MARGIN = 300.0


def derived_token(base: str, *parts: object) -> str:
    """A stable UUIDv4-shaped token from ``base`` and ``parts``.

    Feishu wants Bitable ``client_token`` values in UUIDv4 form; deriving them from the caller's token
    and the chunk index gives each 500-record chunk its own token that is identical on every retry.
    """
    digest = hashlib.sha256("\x1f".join([base, *map(str, parts)]).encode()).digest()
    return str(uuid_module.UUID(bytes=digest[:16], version=4))


def key_text(value: Any) -> str:
    """A Bitable cell as comparable text: search returns text cells as ``[{"text": ..., "type": "text"}]``.

    Used to match upsert keys, whatever shape the cell comes back in (plain value, rich-text segments,
    a link or person object with ``text``/``name``).
    """
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(key_text(item) for item in value)
    if isinstance(value, dict):
        for name in ("text", "name", "value", "link"):
            if name in value:
                return key_text(value[name])
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class FeishuNotConfigured(ValueError):
    """No Feishu app to talk to: a development config with no `engine dev` running beside it."""

    def __init__(self, config_path: Path) -> None:
        super().__init__(f"{config_path}: no Feishu app configured (neither [feishu] app_id / app_secret nor "
                         "FEISHU_APP_ID / FEISHU_APP_SECRET, and no `engine dev` of this config running)")
        self.hint = ("start `engine dev` (make dev) and run the command again, or set [feishu] app_id and "
                     "app_secret (or FEISHU_APP_ID / FEISHU_APP_SECRET)")


class FeishuClient:
    """One Feishu app's outbound API: messages, chats, images, Bitable and contacts.

    ``base_url`` is ``https://open.feishu.cn`` in production and the stand-in's ``http://127.0.0.1:port``
    in tests (no trailing slash). All methods are coroutines and safe to call concurrently.
    """

    def __init__(
        self,
        base_url: str,
        app_id: str,
        app_secret: str,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        *,
        max_workers: int = 16,
    ) -> None:
        import lark_oapi as lark

        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._app_secret = app_secret
        self.timeout = timeout
        self.limiter = limiter or RateLimiter.for_feishu()
        self._lark = (
            lark.Client.builder()
            .app_id(app_id)
            .app_secret(app_secret)
            .domain(self.base_url)
            .timeout(timeout)
            .enable_set_token(True)  # we pass the tenant token ourselves (see the module docstring)
            .log_level(lark.LogLevel.ERROR)
            .build()
        )
        # A pool of our own, so slow Feishu calls never starve asyncio's default executor (used by
        # others, e.g. DNS). 16 threads: at Feishu's 50 sends/s a call would need to take 300 ms to fill it.
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"feishu-{app_id}")
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = asyncio.Lock()
        # One writer per Bitable table (Feishu answers 1254291 to concurrent writes).
        self._table_locks: dict[tuple[str, str], asyncio.Lock] = {}

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: EngineConfig) -> FeishuClient:
        """The client for ``config``'s Feishu app (``FEISHU_*`` environment variables take precedence)."""
        if config.feishu is None:  # a development config: the stand-in of a running `engine dev`, if any
            from engine.runtime.devsession import adopt

            adopt(config)
        base_url = config.secret("base_url") or DEFAULT_BASE_URL
        app_id = config.secret("app_id")
        app_secret = config.secret("app_secret")
        if not app_id or not app_secret:
            raise FeishuNotConfigured(config.path)
        settings = config.feishu
        limiter = RateLimiter.for_feishu(
            messages_per_second=settings.messages_per_second if settings else 50.0,
            messages_per_second_per_chat=settings.messages_per_second_per_chat if settings else 5.0,
            calls_per_second=settings.calls_per_second if settings else 40.0,
        )
        timeout = settings.timeout_seconds if settings else 10.0
        return cls(base_url, app_id, app_secret, timeout, limiter)

    async def aclose(self) -> None:
        """Release the HTTP pool, the threads and the limiter's dispatchers."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.limiter.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> FeishuClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---------------------------------------------------------------------------------- the token
    async def tenant_token(self) -> str:
        """The cached tenant access token, fetched once (single-flight) when missing or near expiry."""
        if self._token and time.monotonic() < self._token_expires_at:
            return self._token
        async with self._token_lock:
            if self._token and time.monotonic() < self._token_expires_at:
                return self._token
            token, expire = await self._fetch_token()
            self._token = token
            self._token_expires_at = time.monotonic() + max(60.0, expire - TOKEN_REFRESH_MARGIN)
            return token

    def drop_token(self, token: str | None = None) -> None:
        """Forget the cached token (only if it is still ``token``: a concurrent call may have renewed it)."""
        if token is None or self._token == token:
            self._token = None
            self._token_expires_at = 0.0

    async def _fetch_token(self) -> tuple[str, float]:
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout)
        try:
            response = await self._http.post(
                TOKEN_PATH, json={"app_id": self.app_id, "app_secret": self._app_secret})
        except httpx.TimeoutException as exc:
            raise FeishuError(TOKEN_CALL, CODE_TIMEOUT, f"{type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:
            raise FeishuError(TOKEN_CALL, CODE_CONNECTION, f"{type(exc).__name__}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("code") == 0 and body.get("tenant_access_token"):
            return str(body["tenant_access_token"]), float(body.get("expire") or 7200)
        raise error_from_body(TOKEN_CALL, response.status_code, dict(response.headers), response.content)

    # ------------------------------------------------------------------------------- the plumbing
    def _option(self, token: str) -> Any:
        import lark_oapi as lark

        return lark.RequestOption.builder().tenant_access_token(token).build()

    async def _in_thread(self, call: str, fn: Callable[[], T]) -> T:
        """Run one blocking lark call in the pool, turning transport failures into FeishuError."""
        import requests

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except requests.exceptions.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            raise FeishuError(call, CODE_TIMEOUT, f"no answer within {self.timeout:g}s ({exc})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise FeishuError(call, CODE_CONNECTION, str(exc)) from exc
        except json.JSONDecodeError as exc:
            # lark parses every body as JSON; a gateway's HTML error page (502/503) ends up here.
            raise FeishuError(call, CODE_BAD_RESPONSE,
                              "the answer was not JSON (a gateway error page?)") from exc

    @staticmethod
    def _error(call: str, response: Any) -> FeishuError:
        raw = getattr(response, "raw", None)
        status = getattr(raw, "status_code", None)
        headers = getattr(raw, "headers", None) or {}
        if not isinstance(response.code, int) and raw is not None:
            # a raw lark request (``bot_info``) leaves a failed body unparsed (lark looks its Content-Type
            # header up case-sensitively): read Feishu's code from the body, so an expired token is
            # re-fetched and a 5xx is retried like any other call's
            return error_from_body(call, status, headers, getattr(raw, "content", None))
        code = response.code if isinstance(response.code, int) else CODE_HTTP
        return FeishuError(call, code, response.msg or "", status, retry_after_from(headers),
                           log_id=response.get_log_id(), rate_limit=rate_limit_from(headers))

    async def _call(
        self,
        call: str,
        invoke: Callable[[Any], Any],
        *,
        limit: str | None = None,
        key: str | None = None,
    ) -> Any:
        """Rate-limit, authenticate and run ``invoke(option)`` (a lark call) in the pool.

        ``invoke`` must build its lark request afresh on every call: lark mutates requests (token types,
        multipart bodies that can be read once), and a call may run twice after a token refresh.
        """
        api = limit or call
        for attempt in range(2):
            # The call holds its place in the limiter's windows until its answer is back (see slot).
            async with self.limiter.slot(api, key):
                token = await self.tenant_token()
                option = self._option(token)
                response = await self._in_thread(call, lambda option=option: invoke(option))
            if response.success():
                return response
            error = self._error(call, response)
            if error.is_token_error and attempt == 0:
                # The token expired or was revoked early: fetch a new one and try once more.
                log.info("feishu %s: tenant token refused (code %s), re-fetching", call, error.code)
                self.drop_token(token)
                continue
            if error.is_rate_limit:
                # Feishu still said "slow down" (another process on this app, or lower limits than
                # configured): pause this API, or just this receiver for a per-chat limit, for as long as
                # Feishu asked, so the calls queued behind this one do not hit the same wall.
                per_receiver = error.code == 230020 and key is not None
                # a receiver's limit must not be taken for the app's when the call named no receiver
                known_scope = per_receiver or error.code != 230020
                self.limiter.penalize(api, error.retry_after or 1.0, key if per_receiver else None,
                                      limit=error.rate_limit if known_scope else None)
            raise error
        raise AssertionError("unreachable")  # the loop either returns or raises

    # ------------------------------------------------------------------------------------ messages
    async def send_message(
        self, receive_id_type: str, receive_id: str, msg_type: str, content: str, uuid: str | None = None,
    ) -> tuple[str, str | None]:
        """Send a message; returns ``(message_id, chat_id)``. ``uuid`` dedupes resends for an hour."""
        from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

        def invoke(option: Any) -> Any:
            body = CreateMessageRequestBody.builder().receive_id(receive_id).msg_type(msg_type).content(content)
            if uuid:
                body = body.uuid(uuid)
            request = (CreateMessageRequest.builder().receive_id_type(receive_id_type)
                       .request_body(body.build()).build())
            return self._lark.im.v1.message.create(request, option)

        response = await self._call("im.v1.message.create", invoke, limit=MESSAGE_SEND,
                                    key=f"{receive_id_type}:{receive_id}")
        return response.data.message_id, response.data.chat_id

    async def reply_message(
        self, message_id: str, msg_type: str, content: str, uuid: str | None = None,
        *, reply_in_thread: bool = False, chat_id: str | None = None,
    ) -> tuple[str, str | None]:
        """Reply to ``message_id``; returns ``(message_id, chat_id)`` of the reply.

        ``chat_id``, the chat of ``message_id`` when the caller knows it, puts the reply under that chat's
        own limit (Feishu: 5 messages/s per chat), in the same lane as :meth:`send_message` to the chat, so
        a chat at its limit waits alone. Without it only the app-wide budget applies.
        """
        from lark_oapi.api.im.v1 import ReplyMessageRequest, ReplyMessageRequestBody

        def invoke(option: Any) -> Any:
            body = ReplyMessageRequestBody.builder().msg_type(msg_type).content(content)
            if uuid:
                body = body.uuid(uuid)
            if reply_in_thread:
                body = body.reply_in_thread(True)
            request = ReplyMessageRequest.builder().message_id(message_id).request_body(body.build()).build()
            return self._lark.im.v1.message.reply(request, option)

        response = await self._call("im.v1.message.reply", invoke, limit=MESSAGE_SEND,
                                    key=f"chat_id:{chat_id}" if chat_id else None)
        return response.data.message_id, response.data.chat_id

    async def update_card(self, message_id: str, content: str) -> None:
        """Replace the card of a sent message (``content`` is the card JSON)."""
        from lark_oapi.api.im.v1 import PatchMessageRequest, PatchMessageRequestBody

        def invoke(option: Any) -> Any:
            request = (PatchMessageRequest.builder().message_id(message_id)
                       .request_body(PatchMessageRequestBody.builder().content(content).build()).build())
            return self._lark.im.v1.message.patch(request, option)

        await self._call("im.v1.message.patch", invoke)

    async def pin_message(self, message_id: str) -> None:
        """Pin a message in its chat."""
        from lark_oapi.api.im.v1 import CreatePinRequest, CreatePinRequestBody

        def invoke(option: Any) -> Any:
            request = (CreatePinRequest.builder()
                       .request_body(CreatePinRequestBody.builder().message_id(message_id).build()).build())
            return self._lark.im.v1.pin.create(request, option)

        await self._call("im.v1.pin.create", invoke)

    async def upload_image(self, content: bytes, filename: str = "image.png") -> str:
        """Upload an image for messages and cards; returns its ``image_key``."""
        import mimetypes

        from lark_oapi.api.im.v1 import CreateImageRequest, CreateImageRequestBody

        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"

        def invoke(option: Any) -> Any:
            # A (filename, file, type) tuple names the multipart part; a fresh BytesIO per attempt
            # because the multipart encoder consumes it.
            image: Any = (filename, io.BytesIO(content), mime)
            request = (CreateImageRequest.builder()
                       .request_body(CreateImageRequestBody.builder().image_type("message").image(image)
                                     .build()).build())
            return self._lark.im.v1.image.create(request, option)

        response = await self._call("im.v1.image.create", invoke)
        return response.data.image_key

    # --------------------------------------------------------------------------------------- chats
    async def create_chat(
        self,
        name: str,
        description: str = "",
        owner_open_id: str | None = None,
        member_open_ids: Sequence[str] = (),
        uuid: str | None = None,
    ) -> ChatCreated:
        """Create a group chat with the bot in it; ``uuid`` dedupes a retried create for 10 h.

        Feishu takes at most 50 users per call: the chat is created with the first 50 and the rest are
        added in further calls (adding a member twice is harmless, so a retry after a partial failure
        is safe).
        """
        from lark_oapi.api.im.v1 import CreateChatRequest, CreateChatRequestBody

        members = list(dict.fromkeys(member_open_ids))  # de-duplicated, order kept
        first, rest = members[:CHAT_MEMBERS_PER_CALL], members[CHAT_MEMBERS_PER_CALL:]
        # Feishu rejects names beyond ~60 characters; a long device or project name should not fail
        # the whole workflow step, so it is shortened.
        chat_name = name if len(name) <= CHAT_NAME_MAX else name[:CHAT_NAME_MAX - 1] + "…"

        def invoke(option: Any) -> Any:
            body = CreateChatRequestBody.builder().name(chat_name).chat_mode("group").chat_type("private")
            if description:
                body = body.description(description)
            if owner_open_id:
                body = body.owner_id(owner_open_id)
            if first:
                body = body.user_id_list(list(first))
            request = CreateChatRequest.builder().user_id_type("open_id").request_body(body.build())
            if uuid:
                request = request.uuid(uuid[:50])
            return self._lark.im.v1.chat.create(request.build(), option)

        response = await self._call("im.v1.chat.create", invoke)
        chat_id = response.data.chat_id
        invalid = _raw_data(response).get("invalid_id_list") or []
        if rest:
            invalid += await self.add_chat_members(chat_id, rest)
        return ChatCreated(chat_id=chat_id, invalid_member_ids=list(invalid))

    async def add_chat_members(self, chat_id: str, member_open_ids: Sequence[str]) -> list[str]:
        """Add users (in calls of 50); returns the ids Feishu reported invalid or unknown."""
        from lark_oapi.api.im.v1 import CreateChatMembersRequest, CreateChatMembersRequestBody

        invalid: list[str] = []
        for chunk in _chunks(list(dict.fromkeys(member_open_ids)), CHAT_MEMBERS_PER_CALL):

            def invoke(option: Any, chunk: Sequence[str] = chunk) -> Any:
                request = (CreateChatMembersRequest.builder().chat_id(chat_id).member_id_type("open_id")
                           .request_body(CreateChatMembersRequestBody.builder().id_list(list(chunk)).build())
                           .build())
                return self._lark.im.v1.chat_members.create(request, option)

            response = await self._call("im.v1.chat_members.create", invoke)
            data = response.data
            if data is not None:
                invalid += list(data.invalid_id_list or []) + list(data.not_existed_id_list or [])
        return invalid

    async def update_chat(self, chat_id: str, name: str | None = None, description: str | None = None) -> None:
        """Rename a chat and/or change its description (``None`` leaves a value as it is)."""
        from lark_oapi.api.im.v1 import UpdateChatRequest, UpdateChatRequestBody

        if name is None and description is None:
            return

        def invoke(option: Any) -> Any:
            body = UpdateChatRequestBody.builder()
            if name is not None:
                body = body.name(name if len(name) <= CHAT_NAME_MAX else name[:CHAT_NAME_MAX - 1] + "…")
            if description is not None:
                body = body.description(description)
            request = UpdateChatRequest.builder().chat_id(chat_id).request_body(body.build()).build()
            return self._lark.im.v1.chat.update(request, option)

        await self._call("im.v1.chat.update", invoke)

    async def delete_chat(self, chat_id: str) -> bool:
        """Dissolve a group chat; ``False`` when it was already gone (so a retry is harmless)."""
        from lark_oapi.api.im.v1 import DeleteChatRequest

        def invoke(option: Any) -> Any:
            return self._lark.im.v1.chat.delete(DeleteChatRequest.builder().chat_id(chat_id).build(), option)

        try:
            await self._call("im.v1.chat.delete", invoke)
        except FeishuError as error:
            if error.code == CHAT_NOT_FOUND:
                return False
            raise
        return True

    # ------------------------------------------------------------------------------------- bitable
    def table_lock(self, app_token: str, table_id: str) -> asyncio.Lock:
        """The lock that serializes this engine's writes to one table (Feishu allows one writer)."""
        return self._table_locks.setdefault((app_token, table_id), asyncio.Lock())

    async def bitable_search(
        self,
        app_token: str,
        table_id: str,
        filter: dict[str, Any] | None = None,
        field_names: Sequence[str] | None = None,
        page_size: int = BITABLE_PAGE_SIZE,
    ) -> list[BitableRecord]:
        """All records matching ``filter`` (Feishu's ``{"conjunction", "conditions"}`` object), every page."""
        records: list[BitableRecord] = []
        async for page in self.bitable_pages(app_token, table_id, filter, field_names, page_size):
            records.extend(page)
        return records

    async def bitable_pages(
        self,
        app_token: str,
        table_id: str,
        filter: dict[str, Any] | None = None,
        field_names: Sequence[str] | None = None,
        page_size: int = BITABLE_PAGE_SIZE,
    ) -> AsyncIterator[list[BitableRecord]]:
        """The records matching ``filter``, a page (up to ``page_size``, at most 500) at a time.

        The next page is already being fetched while the caller handles this one, so a large table's read
        overlaps with its decoding. Leaving the loop early cancels the fetch in flight.
        """
        from lark_oapi.api.bitable.v1 import (
            FilterInfo,
            SearchAppTableRecordRequest,
            SearchAppTableRecordRequestBody,
        )

        size = max(1, min(page_size, BITABLE_PAGE_SIZE))

        async def fetch(page_token: str | None) -> Any:
            def invoke(option: Any) -> Any:
                body = SearchAppTableRecordRequestBody.builder()
                if filter:
                    body = body.filter(FilterInfo(filter))
                if field_names is not None:
                    body = body.field_names(list(field_names))
                request = (SearchAppTableRecordRequest.builder().app_token(app_token).table_id(table_id)
                           .page_size(size).request_body(body.build()))
                if page_token:
                    request = request.page_token(page_token)
                return self._lark.bitable.v1.app_table_record.search(request.build(), option)

            return (await self._call("bitable.v1.app_table_record.search", invoke)).data

        pending: asyncio.Future[Any] = asyncio.ensure_future(fetch(None))
        try:
            while True:
                data = await pending
                more = bool(data and data.has_more and data.page_token)
                if more:
                    pending = asyncio.ensure_future(fetch(data.page_token))
                yield [BitableRecord(record_id=item.record_id, fields=item.fields or {})
                       for item in ((data.items or []) if data else [])]
                if not more:
                    return
        finally:
            if not pending.done():
                pending.cancel()

    async def bitable_get(self, app_token: str, table_id: str, record_id: str) -> BitableRecord:
        """One record by id."""
        from lark_oapi.api.bitable.v1 import GetAppTableRecordRequest

        def invoke(option: Any) -> Any:
            request = (GetAppTableRecordRequest.builder().app_token(app_token).table_id(table_id)
                       .record_id(record_id).build())
            return self._lark.bitable.v1.app_table_record.get(request, option)

        response = await self._call("bitable.v1.app_table_record.get", invoke)
        record = response.data.record
        return BitableRecord(record_id=record.record_id, fields=record.fields or {})

    async def bitable_create(
        self, app_token: str, table_id: str, records: Sequence[dict[str, Any]], client_token: str,
    ) -> list[BitableRecord]:
        """Create records in batches of 500, serialized with other writes to the table.

        Chunk ``i`` carries ``derived_token(client_token, "create", i)``, so a retried call creates
        nothing twice. Returns the created records in input order.
        """
        async with self.table_lock(app_token, table_id):
            return await self._batch_create(app_token, table_id, records, client_token)

    async def _batch_create(
        self, app_token: str, table_id: str, records: Sequence[dict[str, Any]], client_token: str,
    ) -> list[BitableRecord]:
        from lark_oapi.api.bitable.v1 import (
            AppTableRecord,
            BatchCreateAppTableRecordRequest,
            BatchCreateAppTableRecordRequestBody,
        )

        created: list[BitableRecord] = []
        for index, chunk in enumerate(_chunks(list(records), BITABLE_RECORDS_PER_CALL)):
            token = derived_token(client_token, "create", index)

            def invoke(option: Any, chunk: Sequence[dict[str, Any]] = chunk, token: str = token) -> Any:
                body = BatchCreateAppTableRecordRequestBody.builder().records(
                    [AppTableRecord.builder().fields(dict(fields)).build() for fields in chunk]).build()
                request = (BatchCreateAppTableRecordRequest.builder().app_token(app_token).table_id(table_id)
                           .client_token(token).request_body(body).build())
                return self._lark.bitable.v1.app_table_record.batch_create(request, option)

            response = await self._call("bitable.v1.app_table_record.batch_create", invoke,
                                        limit="bitable.record.write")
            for item in response.data.records or []:
                created.append(BitableRecord(record_id=item.record_id, fields=item.fields or {}))
        return created

    async def bitable_update(
        self, app_token: str, table_id: str, record_id: str, fields: dict[str, Any],
    ) -> BitableRecord:
        """Update one record's fields (serialized with other writes to the table)."""
        from lark_oapi.api.bitable.v1 import AppTableRecord, UpdateAppTableRecordRequest

        def invoke(option: Any) -> Any:
            request = (UpdateAppTableRecordRequest.builder().app_token(app_token).table_id(table_id)
                       .record_id(record_id).request_body(AppTableRecord.builder().fields(dict(fields)).build())
                       .build())
            return self._lark.bitable.v1.app_table_record.update(request, option)

        async with self.table_lock(app_token, table_id):
            response = await self._call("bitable.v1.app_table_record.update", invoke,
                                        limit="bitable.record.write")
        record = response.data.record
        return BitableRecord(record_id=record.record_id or record_id, fields=record.fields or {})

    async def bitable_batch_update(
        self, app_token: str, table_id: str, records: Sequence[BitableRecord], client_token: str | None = None,
    ) -> list[BitableRecord]:
        """Update many records (``record_id`` + ``fields``) in batches of 500, serialized per table."""
        async with self.table_lock(app_token, table_id):
            return await self._batch_update(app_token, table_id, records, client_token)

    async def _batch_update(
        self, app_token: str, table_id: str, records: Sequence[BitableRecord], client_token: str | None,
    ) -> list[BitableRecord]:
        from lark_oapi.api.bitable.v1 import (
            AppTableRecord,
            BatchUpdateAppTableRecordRequest,
            BatchUpdateAppTableRecordRequestBody,
        )

        updated: list[BitableRecord] = []
        for index, chunk in enumerate(_chunks(list(records), BITABLE_RECORDS_PER_CALL)):
            token = derived_token(client_token, "update", index) if client_token else None

            def invoke(option: Any, chunk: Sequence[BitableRecord] = chunk, token: str | None = token) -> Any:
                body = BatchUpdateAppTableRecordRequestBody.builder().records(
                    [AppTableRecord.builder().record_id(r.record_id).fields(dict(r.fields)).build()
                     for r in chunk]).build()
                request = (BatchUpdateAppTableRecordRequest.builder().app_token(app_token).table_id(table_id)
                           .request_body(body))
                if token:
                    request = request.client_token(token)
                return self._lark.bitable.v1.app_table_record.batch_update(request.build(), option)

            response = await self._call("bitable.v1.app_table_record.batch_update", invoke,
                                        limit="bitable.record.write")
            for item in response.data.records or []:
                updated.append(BitableRecord(record_id=item.record_id, fields=item.fields or {}))
        return updated

    async def bitable_upsert(
        self,
        app_token: str,
        table_id: str,
        key_field: str,
        records: Sequence[dict[str, Any]],
        client_token: str,
    ) -> UpsertResult:
        """Create or update records matched on ``key_field``; the whole upsert holds the table's lock.

        Existing rows are found by searching the key column (ORs of up to 20 keys per search), then
        updated in batches of 500; the others are created in batches of 500 with per-chunk client
        tokens. A retried upsert finds the rows its first attempt created and updates them, so it
        never duplicates rows. Records without the key field are rejected (they could never match).
        If several input records share a key, the last one wins.
        """
        by_key: dict[str, dict[str, Any]] = {}
        for index, fields in enumerate(records):
            if key_field not in fields or key_text(fields[key_field]) == "":
                raise FeishuError("bitable.upsert", 1254000,
                                  f"record {index} has no value for key field {key_field!r}", retryable=False)
            by_key[key_text(fields[key_field])] = dict(fields)

        async with self.table_lock(app_token, table_id):
            existing: dict[str, str] = {}
            keys = list(by_key)
            for chunk in _chunks(keys, UPSERT_KEYS_PER_SEARCH):
                query = {"conjunction": "or",
                         "conditions": [{"field_name": key_field, "operator": "is", "value": [k]} for k in chunk]}
                for record in await self.bitable_search(app_token, table_id, query, [key_field]):
                    found = key_text(record.fields.get(key_field))
                    if found in by_key:
                        existing.setdefault(found, record.record_id)  # first match wins on duplicates

            to_update = [BitableRecord(record_id=existing[k], fields=by_key[k]) for k in keys if k in existing]
            new_keys = [k for k in keys if k not in existing]
            result = UpsertResult()
            if to_update:
                await self._batch_update(app_token, table_id, to_update, client_token)
                result.updated = len(to_update)
                result.record_ids.update({k: existing[k] for k in keys if k in existing})
            if new_keys:
                created = await self._batch_create(app_token, table_id, [by_key[k] for k in new_keys],
                                                   client_token)
                result.created = len(created)
                result.record_ids.update({k: r.record_id for k, r in zip(new_keys, created, strict=False)})
            return result

    # ------------------------------------------------------------------------------------ contacts
    async def lookup_users(self, emails: Sequence[str] = (), mobiles: Sequence[str] = ()) -> list[UserRef]:
        """Open ids for emails and mobiles (50 of each per call); unknown ones come back without an id."""
        from lark_oapi.api.contact.v3 import BatchGetIdUserRequest, BatchGetIdUserRequestBody

        emails, mobiles = list(dict.fromkeys(emails)), list(dict.fromkeys(mobiles))
        users: list[UserRef] = []
        rounds = max(len(_chunks(emails, LOOKUP_PER_CALL)), len(_chunks(mobiles, LOOKUP_PER_CALL)))
        for index in range(rounds):
            some_emails = emails[index * LOOKUP_PER_CALL:(index + 1) * LOOKUP_PER_CALL]
            some_mobiles = mobiles[index * LOOKUP_PER_CALL:(index + 1) * LOOKUP_PER_CALL]

            def invoke(option: Any, some_emails: list[str] = some_emails,
                       some_mobiles: list[str] = some_mobiles) -> Any:
                body = BatchGetIdUserRequestBody.builder().include_resigned(False)
                if some_emails:
                    body = body.emails(some_emails)
                if some_mobiles:
                    body = body.mobiles(some_mobiles)
                request = BatchGetIdUserRequest.builder().user_id_type("open_id").request_body(body.build()).build()
                return self._lark.contact.v3.user.batch_get_id(request, option)

            response = await self._call("contact.v3.user.batch_get_id", invoke)
            for item in (response.data.user_list or []) if response.data else []:
                # With user_id_type=open_id, Feishu puts the open id in ``user_id``.
                users.append(UserRef(open_id=item.user_id or None, email=item.email or None,
                                     mobile=item.mobile or None))
        return users

    async def get_user(self, open_id: str) -> dict[str, Any] | None:
        """A user's contact record (``name``, ``department_ids``, ...), or ``None`` when Feishu says the user
        is unknown or outside the app's contact scope (41050). Other failures raise, like every call."""
        from lark_oapi.api.contact.v3 import GetUserRequest

        def invoke(option: Any) -> Any:
            request = (GetUserRequest.builder().user_id(open_id).user_id_type("open_id")
                       .department_id_type("open_department_id").build())
            return self._lark.contact.v3.user.get(request, option)

        try:
            response = await self._call("contact.v3.user.get", invoke)
        except FeishuError as error:
            if error.code == NO_USER_AUTHORITY:
                return None
            raise
        return dict(_raw_data(response).get("user") or {})

    async def list_departments(self, parent: str = "0", *, recursive: bool = True) -> list[dict[str, Any]]:
        """The sub-departments of ``parent`` (an open_department_id; "0" is the root), every page, as
        Feishu's JSON (``open_department_id``, ``name``, ``parent_department_id``...); with ``recursive``
        all descendants (``fetch_child``). Source: contact v3 "获取子部门列表"
        (GET /open-apis/contact/v3/departments/:department_id/children, at most 50 per page)."""
        from lark_oapi.api.contact.v3 import ChildrenDepartmentRequest

        found: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:

            def invoke(option: Any, page_token: str | None = page_token) -> Any:
                request = (ChildrenDepartmentRequest.builder().department_id(parent)  # type: ignore[arg-type]
                           .department_id_type("open_department_id").user_id_type("open_id")
                           .fetch_child(recursive).page_size(CONTACT_PAGE_SIZE))
                if page_token:
                    request = request.page_token(page_token)
                return self._lark.contact.v3.department.children(request.build(), option)

            response = await self._call("contact.v3.department.children", invoke)
            data = _raw_data(response)
            found.extend(dict(item) for item in data.get("items") or [] if isinstance(item, dict))
            if not data.get("has_more") or not data.get("page_token"):
                return found
            page_token = str(data["page_token"])

    async def users_in_department(self, department_id: str) -> list[dict[str, Any]]:
        """The users directly in a department (an open_department_id), every page, as Feishu's JSON
        (``open_id``, ``user_id``, ``name``, ``department_ids``...). Source: contact v3 "获取部门直属用户列表"
        (GET /open-apis/contact/v3/users/find_by_department, at most 50 per page)."""
        from lark_oapi.api.contact.v3 import FindByDepartmentUserRequest

        found: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:

            def invoke(option: Any, page_token: str | None = page_token) -> Any:
                request = (FindByDepartmentUserRequest.builder().department_id(department_id)
                           .department_id_type("open_department_id").user_id_type("open_id")
                           .page_size(CONTACT_PAGE_SIZE))
                if page_token:
                    request = request.page_token(page_token)
                return self._lark.contact.v3.user.find_by_department(request.build(), option)

            response = await self._call("contact.v3.user.find_by_department", invoke)
            data = _raw_data(response)
            found.extend(dict(item) for item in data.get("items") or [] if isinstance(item, dict))
            if not data.get("has_more") or not data.get("page_token"):
                return found
            page_token = str(data["page_token"])

    # ----------------------------------------------------------------------------------- approvals
    async def create_approval(
        self, approval_code: str, applicant_open_id: str, form: Sequence[dict[str, Any]],
        node_approvers: dict[str, list[str]] | None = None, uuid: str | None = None,
    ) -> str:
        """Create a native approval instance; returns its ``instance_code``. A repeated ``uuid`` gives the
        instance the first call made (Feishu's idempotency), so a retried activity creates one instance."""
        from lark_oapi.api.approval.v4 import CreateInstanceRequest, InstanceCreate, NodeApprover

        def invoke(option: Any) -> Any:
            body = (InstanceCreate.builder().approval_code(approval_code).open_id(applicant_open_id)
                    .form(json.dumps(list(form), ensure_ascii=False)))
            if node_approvers:
                body = body.node_approver_open_id_list(
                    [NodeApprover.builder().key(key).value(list(ids)).build() for key, ids in node_approvers.items()])
            if uuid:
                body = body.uuid(uuid)
            return self._lark.approval.v4.instance.create(
                CreateInstanceRequest.builder().request_body(body.build()).build(), option)

        response = await self._call("approval.v4.instance.create", invoke)
        return str(response.data.instance_code)

    async def subscribe_approval(self, approval_code: str) -> None:
        """Have Feishu push this app the events of a definition's instances (once per app and definition)."""
        from lark_oapi.api.approval.v4 import SubscribeApprovalRequest

        def invoke(option: Any) -> Any:
            request = SubscribeApprovalRequest.builder().approval_code(approval_code).build()
            return self._lark.approval.v4.approval.subscribe(request, option)

        await self._call("approval.v4.approval.subscribe", invoke)

    async def get_approval(self, instance_code: str) -> ApprovalInstance:
        """An approval instance as Feishu has it now (status, applicant, tasks)."""
        from lark_oapi.api.approval.v4 import GetInstanceRequest

        def invoke(option: Any) -> Any:
            request = GetInstanceRequest.builder().instance_id(instance_code).user_id_type("open_id").build()
            return self._lark.approval.v4.instance.get(request, option)

        response = await self._call("approval.v4.instance.get", invoke)
        data = response.data
        # a decision's comment sits in the timeline entry of its task (Feishu's "timeline[].comment")
        comments = {str(e.task_id): e.comment for e in data.timeline or [] if e.task_id and e.comment}
        return ApprovalInstance(
            instance_code=data.instance_code or instance_code, approval_code=data.approval_code or "",
            status=data.status or "", approval_name=data.approval_name or "",
            applicant_open_id=data.open_id or "", uuid=data.uuid or "",
            start_time=int(data.start_time or 0), end_time=int(data.end_time or 0),
            tasks=[ApprovalTask(id=str(t.id or ""), open_id=t.open_id or "", status=t.status or "",
                                node_id=t.node_id or "", custom_node_id=t.custom_node_id or "",
                                node_name=t.node_name or "", start_time=int(t.start_time or 0),
                                end_time=int(t.end_time or 0), comment=comments.get(str(t.id or ""), ""))
                   for t in data.task_list or []])

    async def cancel_approval(self, approval_code: str, instance_code: str, applicant_open_id: str) -> None:
        """Withdraw a pending instance on behalf of its applicant."""
        from lark_oapi.api.approval.v4 import CancelInstanceRequest, InstanceCancel

        def invoke(option: Any) -> Any:
            body = (InstanceCancel.builder().approval_code(approval_code).instance_code(instance_code)
                    .user_id(applicant_open_id).build())
            request = CancelInstanceRequest.builder().user_id_type("open_id").request_body(body).build()
            return self._lark.approval.v4.instance.cancel(request, option)

        await self._call("approval.v4.instance.cancel", invoke)

    async def bot_info(self) -> dict[str, Any]:
        """The bot's identity (``open_id``, ``app_name``, ``activate_status``) from ``/bot/v3/info``."""
        import lark_oapi as lark

        def invoke(option: Any) -> Any:
            request = (lark.BaseRequest.builder().http_method(lark.HttpMethod.GET)
                       .uri("/open-apis/bot/v3/info").token_types({lark.AccessTokenType.TENANT}).build())
            return self._lark.request(request, option)

        response = await self._call("bot.v3.info", invoke)
        try:
            body = json.loads(response.raw.content or b"{}")
        except ValueError:
            raise error_from_body("bot.v3.info", response.raw.status_code, response.raw.headers,
                                  response.raw.content) from None
        return dict(body.get("bot") or {})


def _raw_data(response: Any) -> dict[str, Any]:
    """The ``data`` object of a response as JSON, for fields lark's typed model does not keep."""
    raw = getattr(response, "raw", None)
    try:
        body = json.loads(raw.content) if raw is not None and raw.content else {}
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}
