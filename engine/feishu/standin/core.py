"""``FeishuStandIn``: a local Feishu Open Platform that lark-oapi talks to over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from . import routes_approval
from .app import Call, build_app
from .delivery import FEISHU_RETRY_DELAYS, DeliveryError, DeliveryResult, EventSender
from .faults import DEFAULT_RATE_RULES, Fault, FaultBook, RateLimiter, RateRule
from .gateway import REDELIVERY_DELAYS, Gateway, LongConnDelivery
from .runner import ServerRunner
from .state import App, State, now_ms

log = logging.getLogger("engine.feishu.standin")


@dataclass
class SentMessage:
    """A message the bot actually sent, with its content decoded."""

    message_id: str
    chat_id: str
    msg_type: str
    content: Any  # text: the string; interactive/post/...: the decoded JSON object
    raw: str
    to: str | None
    receive_id_type: str | None
    reply_to: str | None
    root_id: str | None
    updated: bool
    deleted: bool
    create_time: int
    app_id: str
    history: list[str] = field(default_factory=list)  # earlier contents of an updated card
    uuid: str = ""  # the ``uuid`` the sender gave (Feishu dedupes sends by it for an hour)

    @property
    def text(self) -> str:
        """Readable text: the text itself, or every string a post or card displays, joined by newlines."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(_strings(self.content))

    @property
    def card(self) -> dict[str, Any] | None:
        return self.content if self.msg_type == "interactive" and isinstance(self.content, dict) else None


def _strings(obj: Any) -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict):
        markdown = obj.get("tag") in ("markdown", "lark_md")
        for key, value in obj.items():
            if key in ("content", "text", "title") and isinstance(value, str):
                # card markdown shows character references (&#91; and the like) as the characters
                out.append(html.unescape(value) if markdown else value)
            elif key not in ("tag", "type", "behaviors", "value", "url", "img_key", "icon"):
                out.extend(_strings(value))
    elif isinstance(obj, list):
        for item in obj:
            out.extend(_strings(item))
    return out


def _decode(msg_type: str, raw: str) -> Any:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if msg_type == "text" and isinstance(data, dict):
        return data.get("text", "")
    return data


class FeishuStandIn:
    """A fake Feishu: the HTTP API (tokens, IM, Bitable, contact, OAuth), faults, and event delivery.

    Typical test use::

        standin = FeishuStandIn()
        await standin.start()
        client = lark.Client.builder().app_id(standin.app_id).app_secret(standin.app_secret) \\
            .domain(standin.base_url).build()
        ...
        assert standin.messages(to="ou_x")[0].text == "hello"
        await standin.stop()

    lark-oapi's synchronous calls (and the token fetch inside its async ones) block the calling thread;
    when the stand-in runs on that same event loop, call lark from a worker thread
    (``asyncio.to_thread``) or start the stand-in with ``start(in_thread=True)``.
    """

    def __init__(self, state_file: Path | None = None, app_id: str = "cli_standin",
                 app_secret: str = "standin-secret", tenant_key: str = "t_standin",
                 bot_open_id: str = "ou_bot_standin", encrypt_key: str | None = None,
                 verification_token: str | None = "standin-token", *, bot_name: str = "Stand-in Bot",
                 bitable_write_latency: float = 0.02, enforce_rate_limits: bool = False,
                 rate_rules: Sequence[RateRule] = DEFAULT_RATE_RULES, strict_ids: bool = False,
                 token_ttl: float = 7200, oauth_default_user: str | None = None,
                 event_url: str | None = None) -> None:
        self.state_file = Path(state_file) if state_file else None
        self.app_id, self.app_secret, self.tenant_key = app_id, app_secret, tenant_key
        self.bot_open_id, self.bot_name = bot_open_id, bot_name
        self.encrypt_key, self.verification_token = encrypt_key, verification_token
        self.bitable_write_latency = bitable_write_latency
        self.enforce_rate_limits = enforce_rate_limits
        self.strict_ids = strict_ids
        self.token_ttl = token_ttl
        self.oauth_default_user = oauth_default_user
        self.event_url = event_url
        self.state = State()
        self.calls: list[Call] = []
        self.deliveries: list[DeliveryResult] = []
        self.approval_payloads: list[dict[str, Any]] = []  # every approval_instance event, in order
        self.approval_task_payloads: list[dict[str, Any]] = []  # every approval_task event, in order
        self.faults = FaultBook()
        self.rate_limiter = RateLimiter(tuple(rate_rules))
        self.busy_tables: set[tuple[str, str]] = set()
        self.log = log
        self.add_app(app_id, app_secret, tenant_key, bot_open_id=bot_open_id, bot_name=bot_name)
        self.gateway = Gateway(self)  # the long connection (``ingress.mode = "long_connection"``)
        self.app = build_app(self)
        self._runner = ServerRunner(self.app)
        self._host = "127.0.0.1"
        self._background: set[asyncio.Task[Any]] = set()
        if self.state_file and self.state_file.exists():
            self.load(self.state_file)

    # ---- apps and users ----------------------------------------------------------------------------
    def add_app(self, app_id: str, app_secret: str, tenant_key: str, *, bot_open_id: str | None = None,
                bot_name: str = "Stand-in Bot", encrypt_key: str | None = None,
                verification_token: str | None = None) -> App:
        """Register another app (its own tokens, bot, tenant); events default to the stand-in's keys."""
        app = App(app_id=app_id, app_secret=app_secret, tenant_key=tenant_key,
                  bot_open_id=bot_open_id or f"ou_bot_{app_id}", bot_name=bot_name,
                  encrypt_key=encrypt_key, verification_token=verification_token)
        self.state.apps[app_id] = app
        return app

    def add_tenant(self, tenant_key: str, *, name: str = "", timezone: str = "Asia/Shanghai",
                   plugins: Sequence[str] = ()) -> dict[str, Any]:
        """Name an organization: the outbox shows its messages under ``name``, in its ``timezone``."""
        return self.state.add_tenant(tenant_key, name=name, timezone=timezone, plugins=tuple(plugins))

    def _learn_tenant(self, open_id: str, tenant_key: str | None) -> None:
        """A user who acted in another organization belongs to it (the outbox files their messages there)."""
        user = self.state.users.get(open_id)
        if tenant_key and user is not None and not user.get("tenant_key"):
            user["tenant_key"] = tenant_key

    def add_user(self, open_id: str | None = None, *, name: str = "", email: str | None = None,
                 mobile: str | None = None, user_id: str | None = None, department: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        """Add a user to the directory (contact lookups, OAuth login, message recipients)."""
        return self.state.add_user(open_id, name=name, email=email, mobile=mobile, user_id=user_id,
                                   department=department, **extra)

    # ---- lifecycle ---------------------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        return self._runner.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash): what ``lark.Client.builder().domain()`` takes."""
        if self._runner.port is None:
            return ""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._runner.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, in_thread: bool = False) -> None:
        """Serve on ``host:port`` (0 = any free port) as a task on this loop, or on its own thread."""
        self._host = host
        if in_thread:
            await asyncio.to_thread(self._runner.start_in_thread, host, port)
        else:
            await self._runner.start(host, port)
        log.info("Feishu stand-in serving at %s", self.base_url)

    async def stop(self) -> None:
        """Stop serving, cancel pending event retries, and save the state file if there is one."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._runner.stop()
        if self.state_file:
            self.save(self.state_file)

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0,
                      announce: Callable[[str], None] | None = None) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (``python -m engine.feishu.standin``).

        ``announce`` receives :attr:`base_url` once the port is bound (useful with ``port=0``).
        """
        self._host = host
        try:
            self._runner.serve_forever(host, port, (lambda _: announce(self.base_url)) if announce else None)
        finally:
            if self.state_file:
                self.save(self.state_file)

    # ---- state -------------------------------------------------------------------------------------
    def load(self, path: Path) -> None:
        """Merge a saved state (or a hand-written seed) into this stand-in."""
        self.state.load(Path(path))

    def save(self, path: Path) -> None:
        self.state.save(Path(path))

    # ---- calls, messages ---------------------------------------------------------------------------
    def record(self, call: Call) -> None:
        self.calls.append(call)

    def calls_to(self, path_prefix: str, method: str | None = None) -> list[Call]:
        """Recorded calls whose path starts with ``path_prefix`` (and with ``method``, if given)."""
        return [c for c in self.calls if c.path.startswith(path_prefix) and (method is None or c.method == method)]

    def _sent(self, msg: dict[str, Any]) -> SentMessage:
        to = msg.get("_to") or {}
        raw = msg["body"]["content"]
        return SentMessage(
            message_id=msg["message_id"], chat_id=msg["chat_id"], msg_type=msg["msg_type"],
            content=_decode(msg["msg_type"], raw), raw=raw, to=to.get("id"), receive_id_type=to.get("id_type"),
            reply_to=msg.get("parent_id") or None, root_id=msg.get("root_id") or None,
            updated=bool(msg.get("updated")), deleted=bool(msg.get("deleted")),
            create_time=int(msg["create_time"]), app_id=msg.get("_app_id", ""),
            history=list(msg.get("_history", [])), uuid=msg.get("_uuid", ""))

    def _addressed_to(self, msg: dict[str, Any], to: str) -> bool:
        target = msg.get("_to") or {}
        ids = {target.get("id"), target.get("open_id")}
        if to in ids:
            return True
        user = self.state.find_user(to)
        return user is not None and user["open_id"] in ids

    def messages(self, to: str | None = None, chat_id: str | None = None, *,
                 app_id: str | None = None, include_deleted: bool = False) -> list[SentMessage]:
        """Messages the bot sent (oldest first), optionally to one user (any of their ids) or chat."""
        out = []
        for msg in list(self.state.messages.values()):
            if msg.get("_origin") != "bot" or (msg.get("deleted") and not include_deleted):
                continue
            if to is not None and not self._addressed_to(msg, to):
                continue
            if chat_id is not None and msg.get("chat_id") != chat_id:
                continue
            if app_id is not None and msg.get("_app_id") != app_id:
                continue
            out.append(self._sent(msg))
        return out

    def outbox(self) -> list[dict[str, Any]]:
        """The sent messages as plain dicts for people (the admin page and ``GET /_standin/outbox``), oldest
        first; the keys are described in :mod:`.outbox`."""
        from .outbox import Outbox

        return [row for _, row in Outbox(self).rows()]

    # ---- faults ------------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> Fault:
        """Make matching API calls misbehave (see :class:`Fault`)."""
        return self.faults.inject(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_tokens(self) -> int:
        """Invalidate every issued token (clients then get 99991663 until they fetch a new one)."""
        count = 0
        for token in self.state.tokens.values():
            if not token.revoked:
                token.revoked = True
                count += 1
        return count

    # ---- events ------------------------------------------------------------------------------------
    def _app(self, app_id: str | None) -> App:
        return self.state.apps[app_id or self.app_id]

    def sender(self, app_id: str | None = None) -> EventSender:
        app = self._app(app_id)
        return EventSender(app.encrypt_key or self.encrypt_key,
                           app.verification_token or self.verification_token)

    def envelope(self, event_type: str, event: dict[str, Any], *, event_id: str | None = None,
                 tenant_key: str | None = None, app_id: str | None = None, schema: str = "2.0",
                 create_time_ms: int | None = None) -> dict[str, Any]:
        """The payload Feishu would push for an event: v2 (``schema="2.0"``) or v1 (anything else)."""
        app = self._app(app_id)
        token = app.verification_token or self.verification_token
        if schema == "2.0":
            return ev.envelope_v2(event_type, event, app_id=app.app_id, tenant_key=tenant_key or app.tenant_key,
                                  token=token, event_id=event_id, create_time_ms=create_time_ms)
        return ev.envelope_v1(event_type, event, app_id=app.app_id, tenant_key=tenant_key or app.tenant_key,
                              token=token, event_id=event_id)

    async def deliver_event(self, url: str, event_type: str, event: dict[str, Any], *,
                            event_id: str | None = None, tenant_key: str | None = None,
                            app_id: str | None = None, schema: str = "2.0",
                            retries: Sequence[float] = FEISHU_RETRY_DELAYS, timestamp: str | None = None,
                            nonce: str | None = None, tamper: str | Iterable[str] | None = None,
                            timeout: float = 3.0) -> DeliveryResult:
        """Push an event like Feishu: envelope, encrypt (with an Encrypt Key), sign, POST, retry.

        Retries on non-2xx or timeout after each delay in ``retries`` (Feishu: 15 s, 5 min, 1 h, 6 h);
        each retry carries the same ``event_id``. ``tamper`` forges a bad request: ``"bad_signature"``,
        ``"no_signature"``, ``"wrong_token"``, ``"stale_timestamp"``, ``"wrong_key"`` (or several).
        """
        event_id = event_id or uuid.uuid4().hex
        payload = self.envelope(event_type, event, event_id=event_id, tenant_key=tenant_key, app_id=app_id,
                                schema=schema)
        return await self.deliver_payload(url, payload, event_id=event_id, app_id=app_id, retries=retries,
                                          timestamp=timestamp, nonce=nonce, tamper=tamper, timeout=timeout)

    async def deliver_payload(self, url: str, payload: dict[str, Any], *, event_id: str | None = None,
                              app_id: str | None = None, retries: Sequence[float] = FEISHU_RETRY_DELAYS,
                              timestamp: str | None = None, nonce: str | None = None,
                              tamper: str | Iterable[str] | None = None, timeout: float = 3.0) -> DeliveryResult:
        """Push an already-built payload (e.g. a v1 approval from :meth:`approval_event`)."""
        event_id = event_id or payload.get("header", {}).get("event_id") or payload.get("uuid") or ""
        result = DeliveryResult(url=url, event_id=event_id, payload=payload)
        self.deliveries.append(result)
        return await self.sender(app_id).deliver(url, payload, event_id=event_id, retries=retries,
                                                 timeout=timeout, timestamp=timestamp, nonce=nonce,
                                                 tamper=tamper, result=result)

    async def deliver_long(self, event_type: str, event: dict[str, Any], *, event_id: str | None = None,
                           app_id: str | None = None, schema: str = "2.0",
                           retries: Sequence[float] = REDELIVERY_DELAYS, timeout: float = 3.0,
                           parts: int = 1, tenant_key: str | None = None) -> LongConnDelivery:
        """Push an event over the long connection (see :mod:`.gateway`) instead of to a webhook URL."""
        payload = self.envelope(event_type, event, event_id=event_id or uuid.uuid4().hex, app_id=app_id,
                                schema=schema, tenant_key=tenant_key)
        return await self.gateway.deliver(payload, app_id=app_id, retries=retries, timeout=timeout, parts=parts)

    def deliver_in_background(self, url: str, event_type: str, event: dict[str, Any],
                              **kwargs: Any) -> asyncio.Task[DeliveryResult]:
        """:meth:`deliver_event` as a task (Feishu's real retry schedule takes hours); cancelled on stop."""
        task = asyncio.create_task(self.deliver_event(url, event_type, event, **kwargs))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def url_verification(self, url: str, challenge: str | None = None, *,
                               app_id: str | None = None) -> DeliveryResult:
        """Feishu's ``url_verification`` handshake; the endpoint must echo ``challenge`` (within 1 s)."""
        app = self._app(app_id)
        payload = {"challenge": challenge or uuid.uuid4().hex, "type": "url_verification",
                   "token": app.verification_token or self.verification_token or ""}
        return await self.deliver_payload(url, payload, event_id="", app_id=app_id, retries=(), timeout=1.0)

    async def card_action(self, url: str | None, value: dict[str, Any], operator_open_id: str, message_id: str, *,
                          chat_id: str | None = None, form_value: dict[str, Any] | None = None,
                          tag: str = "button", name: str | None = None, input_value: str | None = None,
                          option: str | None = None, app_id: str | None = None, event_id: str | None = None,
                          tamper: str | Iterable[str] | None = None, timeout: float = 3.0,
                          apply_card: bool = True, tenant_key: str | None = None) -> dict[str, Any]:
        """A user presses a card button: push ``card.action.trigger`` and return the endpoint's JSON answer.

        ``url`` None pushes it over the long connection instead. Feishu does not retry card callbacks
        (the user sees an error toast), so a non-2xx answer raises :class:`DeliveryError` (over the long
        connection, a RuntimeError). With ``apply_card``, a replacement card in the answer
        (``{"card": {"type": "raw", "data": {...}}}``) updates the stored message, as Feishu would.
        ``tenant_key``: the pressing user's organization (default: the app's own tenant).
        """
        app = self._app(app_id)
        self._learn_tenant(operator_open_id, tenant_key)
        tenant_key = tenant_key or app.tenant_key
        stored = self.state.messages.get(message_id)
        chat = chat_id or (stored or {}).get("chat_id") or ""
        event = ev.card_action_event(value, operator_open_id, message_id, chat, form_value=form_value, tag=tag,
                                     name=name, tenant_key=tenant_key, input_value=input_value,
                                     option=option)
        if url is None:
            pushed = await self.deliver_long(ev.EVENT_CARD_ACTION, event, event_id=event_id, app_id=app_id,
                                             retries=(), timeout=timeout, tenant_key=tenant_key)
            if not pushed.acknowledged:
                last = pushed.attempts[-1]
                raise RuntimeError(f"card callback over the long connection failed: code={last.code} "
                                   f"error={last.error}")
            answer = pushed.answer if isinstance(pushed.answer, dict) else {}
        else:
            result = await self.deliver_event(url, ev.EVENT_CARD_ACTION, event, event_id=event_id, app_id=app_id,
                                              retries=(), tamper=tamper, timeout=timeout, tenant_key=tenant_key)
            if not result.acknowledged:
                raise DeliveryError(result)
            answer = result.response_json if isinstance(result.response_json, dict) else {}
        card = answer.get("card")
        if apply_card and stored is not None and isinstance(card, dict) and card.get("type") == "raw":
            stored.setdefault("_history", []).append(stored["body"]["content"])
            stored["body"] = {"content": json.dumps(card.get("data"), ensure_ascii=False)}
            stored["updated"] = True
            stored["update_time"] = str(now_ms())
        return answer

    # ---- event builders bound to this stand-in's bot and tenant ------------------------------------
    def file_message_event(self, file_name: str, sender_open_id: str, chat_id: str = "", size: int = 1024,
                           tenant_key: str | None = None) -> dict[str, Any]:
        """An ``im.message.receive_v1`` event of a file ``sender_open_id`` sends the bot in their direct chat
        (the file's metadata is kept, its content is ``size`` zero bytes); the message is stored too."""
        file_key = self.state.add_file(file_name, bytes(size), sender_open_id=sender_open_id)
        event = self.message_event("", chat_id or f"oc_p2p_{sender_open_id}", sender_open_id, mentions_bot=False,
                                   chat_type="p2p", tenant_key=tenant_key)
        content = json.dumps({"file_key": file_key, "file_name": file_name}, ensure_ascii=False)
        event["message"].update(message_type="file", content=content)
        stored = self.state.messages[event["message"]["message_id"]]
        stored["msg_type"], stored["body"] = "file", {"content": content}
        return event

    def message_event(self, text: str, chat_id: str, sender_open_id: str, mentions_bot: bool = True,
                      chat_type: str = "group", tenant_key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """An ``im.message.receive_v1`` event from a user (of ``tenant_key``'s organization, default the
        stand-in's own); the message is also stored, so replies work."""
        self._learn_tenant(sender_open_id, tenant_key)
        tenant_key = tenant_key or self.tenant_key
        event = ev.message_event(text, chat_id, sender_open_id, mentions_bot=mentions_bot, chat_type=chat_type,
                                 bot_open_id=self.bot_open_id, bot_name=self.bot_name,
                                 tenant_key=tenant_key, **kwargs)
        m = event["message"]
        self.state.messages[m["message_id"]] = {
            "message_id": m["message_id"], "root_id": m["root_id"], "parent_id": m["parent_id"],
            "thread_id": "", "msg_type": "text", "create_time": m["create_time"], "update_time": m["update_time"],
            "deleted": False, "updated": False, "chat_id": chat_id,
            "sender": {"id": sender_open_id, "id_type": "open_id", "sender_type": "user",
                       "tenant_key": tenant_key},
            "body": {"content": m["content"]}, "upper_message_id": "",
            # as the get-message API lists them: who each ``@_user_N`` key in the text is
            "mentions": [{"key": x["key"], "id": x["id"]["open_id"], "id_type": "open_id", "name": x["name"],
                          "tenant_key": x.get("tenant_key", tenant_key)} for x in m["mentions"]],
            "_origin": "user", "_to": {"id_type": "chat_id", "id": chat_id}, "_app_id": self.app_id,
        }
        if chat_id not in self.state.chats:
            self.state.chats[chat_id] = {"chat_id": chat_id, "name": "", "chat_mode": "group",
                                         "chat_type": "p2p" if chat_type == "p2p" else "private",
                                         "tenant_key": tenant_key, "_members": [sender_open_id],
                                         "_bots": [self.app_id]}
        return event

    def bitable_record_changed(self, app_token: str, table_id: str, record_id: str, *, operator_open_id: str,
                               action: str = "record_edited", before: dict[str, Any] | None = None,
                               after: dict[str, Any] | None = None) -> dict[str, Any]:
        """A ``drive.file.bitable_record_changed_v1`` event; ``after`` defaults to the record's fields."""
        if after is None and action != "record_deleted":
            table = self.state.table(app_token, table_id) or {"records": {}}
            after = (table["records"].get(record_id) or {}).get("fields")
        return ev.bitable_record_changed(app_token, table_id, record_id, operator_open_id=operator_open_id,
                                         action=action, before=before, after=after)

    def bot_added(self, chat_id: str, operator_open_id: str, name: str = "") -> dict[str, Any]:
        return ev.bot_added(chat_id, operator_open_id, name=name, tenant_key=self.tenant_key)

    def user_created(self, open_id: str, name: str, *, email: str = "", mobile: str = "",
                     add: bool = True) -> dict[str, Any]:
        """A ``contact.user.created_v3`` event; with ``add`` the user also joins the directory."""
        if add:
            self.add_user(open_id, name=name, email=email or None, mobile=mobile or None)
        user = self.state.users.get(open_id)
        return ev.user_created(open_id, name, email=email, mobile=mobile,
                               user_id=user["user_id"] if user else None)

    def user_deleted(self, open_id: str, *, remove: bool = True) -> dict[str, Any]:
        """A ``contact.user.deleted_v3`` event for a directory user; with ``remove`` the user also leaves the
        directory (no longer listed by department). Raises ``KeyError`` for an unknown user."""
        user = self.state.users[open_id]
        if remove:
            del self.state.users[open_id]
        return ev.user_deleted(open_id, user["name"], user_id=user["user_id"],
                               department_ids=list(user.get("department_ids") or []))

    def approval_event(self, approval_code: str, instance_code: str, status: str, *,
                       event_id: str | None = None, app_id: str | None = None) -> dict[str, Any]:
        """A complete v1 ``approval_instance`` payload; push it with :meth:`deliver_payload`."""
        app = self._app(app_id)
        return ev.approval_v1(approval_code, instance_code, status, app_id=app.app_id, tenant_key=app.tenant_key,
                              token=app.verification_token or self.verification_token, event_id=event_id)

    # ---- approvals ---------------------------------------------------------------------------------
    def add_approval_definition(self, approval_code: str, name: str = "",
                                nodes: list[dict[str, Any]] | None = None, tenant_key: str = "") -> dict[str, Any]:
        """An approval definition the create call accepts (see :meth:`State.add_approval`)."""
        return self.state.add_approval(approval_code, name, nodes, tenant_key)

    def approval_changed(self, event: dict[str, Any], *, app_id: str | None = None,
                         event_type: str = ev.EVENT_APPROVAL) -> dict[str, Any]:
        """Record the v1 ``approval_instance`` payload of a status change (``approval_payloads``) and, with an
        ``event_url`` and the app subscribed to the definition, push it there in the background like Feishu.
        Returns the payload. ``event_type`` ``approval_task``: a task's change (``approval_task_payloads``)."""
        app = self._app(app_id)
        # the organization the definition belongs to (one app may serve several)
        tenant_key = self.state.approvals.get(event["approval_code"], {}).get("tenant_key") or app.tenant_key
        payload = ev.envelope_v1(event_type, event, app_id=app.app_id, tenant_key=tenant_key,
                                 token=app.verification_token or self.verification_token)
        kept = self.approval_task_payloads if event_type == ev.EVENT_APPROVAL_TASK else self.approval_payloads
        kept.append(payload)
        if self.event_url and event["approval_code"] in self.state.approval_subscriptions.get(app.app_id, []):
            task = asyncio.create_task(self.deliver_payload(self.event_url, payload, app_id=app_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return payload

    def decide_approval(self, instance_code: str, action: str, *, open_id: str = "", to: str = "",
                        comment: str = "") -> dict[str, Any] | None:
        """Act on an approval instance as its approver (``approve``/``reject``/``transfer`` to ``to``) or its
        applicant (``cancel``), or ``delete`` it. Returns the ``approval_instance`` payload when its status
        changed (also pushed to ``event_url``), ``None`` otherwise (a transfer, a node passed on).
        Raises ``ValueError`` for an action the instance's state refuses.

        The acting approver's task also changes (approved, rejected, transferred): that ``approval_task``
        event is recorded and pushed like Feishu's, before the instance's own."""
        instance = self.state.approval_instances.get(instance_code) or {}
        before = {t.get("id"): t.get("status") for t in instance.get("task_list") or []}
        event = routes_approval.decide(self.state, instance_code, action, open_id=open_id, to=to, comment=comment)
        for task in instance.get("task_list") or []:
            if task.get("id") in before and task.get("status") != before[task.get("id")] and task.get("open_id") \
                    == open_id:
                self.approval_changed(ev.approval_task_event(instance["approval_code"], instance_code, task),
                                      event_type=ev.EVENT_APPROVAL_TASK)
        return self.approval_changed(event) if event else None

    # ---- admin -------------------------------------------------------------------------------------
    async def deliver_from_admin(self, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /_standin/deliver``: ``{"url"?, "event_type", "event"}``, or ``{"message": {"text",
        "chat_id", "sender_open_id", ...}}``, or ``{"card_action": {"value", "operator_open_id",
        "message_id", ...}}``, or ``{"record_changed": {"app_token", "table_id", "record_id", "action"?,
        "operator_open_id"?}}`` (the row's fields from the stand-in's state), or ``{"file_message": {"file_name",
        "sender_open_id", ...}}`` (a file sent to the bot in a direct chat). ``"wait": true`` waits for the
        outcome, ``"retries": [...]`` sets delays; ``"tenant_key"`` pushes it as a user of that organization
        (one app serves several tenants). Without a url and an ``event_url``, the event goes over the long
        connection (when the engine has one open)."""
        url = data.get("url") or self.event_url
        tenant_key = data.get("tenant_key")
        if tenant_key is not None and (not isinstance(tenant_key, str) or not tenant_key):
            raise ValueError("tenant_key must be a non-empty string")
        long = not url and bool(self.gateway.open_connections())
        if not url and not long:
            raise ValueError("no url given, the stand-in has no event_url and no long connection is open")
        if "card_action" in data:
            press = {"tenant_key": tenant_key, **data["card_action"]}
            return {"answer": await self.card_action(url or None, **press)}
        if "message" in data:
            event_type, event = ev.EVENT_MESSAGE, self.message_event(**{"tenant_key": tenant_key, **data["message"]})
        elif "file_message" in data:
            event_type, event = ev.EVENT_MESSAGE, self.file_message_event(**{"tenant_key": tenant_key,
                                                                              **data["file_message"]})
        elif "record_changed" in data:
            change = data["record_changed"]
            event_type = ev.EVENT_BITABLE_RECORD_CHANGED
            event = self.bitable_record_changed(change["app_token"], change["table_id"], change["record_id"],
                                                operator_open_id=change.get("operator_open_id", "ou_standin"),
                                                action=change.get("action", "record_edited"))
        else:
            event_type, event = data["event_type"], data["event"]
        event_id = data.get("event_id") or uuid.uuid4().hex
        retries = tuple(data.get("retries", FEISHU_RETRY_DELAYS))
        if long and not data.get("wait"):
            task = asyncio.create_task(self.deliver_long(event_type, event, event_id=event_id, retries=retries,
                                                         tenant_key=tenant_key))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return {"event_id": event_id, "via": "long_connection", "scheduled": True}
        if long:
            pushed = await self.deliver_long(event_type, event, event_id=event_id, retries=retries,
                                             tenant_key=tenant_key)
            return {"event_id": event_id, "via": "long_connection", "acknowledged": pushed.acknowledged,
                    "attempts": [a.__dict__ for a in pushed.attempts]}
        if data.get("wait"):
            result = await self.deliver_event(url, event_type, event, event_id=event_id, retries=retries,
                                              tenant_key=tenant_key)
            return result.to_json()
        self.deliver_in_background(url, event_type, event, event_id=event_id, retries=retries, tenant_key=tenant_key)
        return {"event_id": event_id, "scheduled": True}
