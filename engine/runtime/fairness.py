"""Per-chat and per-user fairness for inbound events: one noisy chat delays only itself.

:class:`FairDispatcher` wraps the router (any :class:`~engine.runtime.dispatch.Dispatcher`): each chat,
and each sender, has at most ``per_chat`` (``per_user``) events being dispatched at once; the next ones
of that chat or sender wait in their own first-come queue, and events of other chats never wait for
them. Without it, a chat flooding the bot had every one of its events in flight at once, each holding a
request slot and a share of the Temporal client and of the Feishu send budget; with it, the flood holds
``per_chat`` of them, ``max_waiting`` more wait (answered 503 past the ingress's 2.5 s budget), and the
rest is refused at once with :class:`~engine.runtime.errors.DispatchBusy` (503: Feishu pushes those
again later), so the flood does not sit on the ingress's request slots either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from engine.config import OrgContext
from engine.events import FeishuEvent
from engine.runtime.dispatch import Dispatcher, DispatchResult
from engine.runtime.errors import DispatchBusy

__all__ = ["FairDispatcher", "KeyedGate", "fairness_keys"]


class KeyedGate:
    """At most ``per_key`` holders per key at once; the others of a key queue first come, first served.

    With ``max_waiting``, a key that already has that many waiting refuses the next with
    :class:`~engine.runtime.errors.DispatchBusy` instead of queueing it.

    Keys with no holder and no waiter are forgotten, so the gate's size follows the keys in use.
    """

    def __init__(self, per_key: int, max_waiting: int | None = None) -> None:
        if per_key < 1:
            raise ValueError(f"per_key must be >= 1, got {per_key}")
        self.per_key = per_key
        self.max_waiting = max_waiting
        self._held: dict[str, int] = {}
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    def holding(self, key: str) -> int:
        return self._held.get(key, 0)

    def waiting(self, key: str) -> int:
        return len(self._waiters.get(key, ()))

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, key: str) -> None:
        if self._held.get(key, 0) < self.per_key and not self._waiters.get(key):
            self._held[key] = self._held.get(key, 0) + 1
            return
        waiters = self._waiters.setdefault(key, deque())
        if self.max_waiting is not None and len(waiters) >= self.max_waiting:
            if not waiters:
                del self._waiters[key]
            raise DispatchBusy(f"{self.per_key} under way and {len(waiters)} waiting for {key}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await future  # _release hands its slot over: the count stays as it was
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(key)  # handed a slot just as it was cancelled: pass it on
            else:
                self._forget(key, future)
            raise

    def _release(self, key: str) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)
                if not waiters:
                    del self._waiters[key]
                return
        self._waiters.pop(key, None)
        left = self._held.get(key, 0) - 1
        if left > 0:
            self._held[key] = left
        else:
            self._held.pop(key, None)

    def _forget(self, key: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters:
                del self._waiters[key]


def fairness_keys(event: FeishuEvent, org: OrgContext) -> tuple[str | None, str | None]:
    """``(chat key, user key)`` of an event, each ``None`` when the event has no such party."""
    chat = getattr(event, "chat_id", None) or getattr(event, "open_chat_id", None)
    user = getattr(event, "sender_open_id", None) or getattr(event, "operator_open_id", None)
    return (f"{org.id}/{chat}" if chat else None, f"{org.id}/{user}" if user else None)


class FairDispatcher:
    """A :class:`Dispatcher` that dispatches through ``inner`` under per-chat and per-user gates.

    Other attributes (``healthy``...) are ``inner``'s.
    """

    def __init__(self, inner: Dispatcher, *, per_chat: int = 4, per_user: int = 4,
                 max_waiting: int | None = 16) -> None:
        self.inner = inner
        self.chats = KeyedGate(per_chat, max_waiting)
        self.users = KeyedGate(per_user, max_waiting)

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        chat, user = fairness_keys(event, org)
        async with contextlib.AsyncExitStack() as stack:
            # always the user's gate first, then the chat's: one order, so no two events wait on each other
            if user is not None:
                await stack.enter_async_context(self.users.hold(user))
            if chat is not None:
                await stack.enter_async_context(self.chats.hold(chat))
            return await self.inner.dispatch(event, org)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
