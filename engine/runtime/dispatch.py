"""The contract between the Feishu ingress and the router that turns events into workflow actions.

The ingress (webhook and long connection) hands every normalized event to a :class:`Dispatcher` and
acknowledges it to Feishu only once ``dispatch`` returned. ``dispatch`` raises
:class:`engine.runtime.errors.TemporalUnavailable` when Temporal cannot be reached.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from engine.config import OrgContext
from engine.events import FeishuEvent

__all__ = ["DispatchResult", "Dispatcher"]


class DispatchResult(BaseModel):
    """What dispatching one event produced.

    ``toast`` and ``card`` answer a card callback (a toast text, and a rendered card that replaces the
    pressed one); ``effects`` counts the workflow actions executed (0: nothing routed the event, or only signals to
    workflows that do not run).
    """

    toast: str | None = None
    card: dict | None = None
    effects: int = 0


class Dispatcher(Protocol):
    """Routes one event of one organization; implemented by the router (``engine.runtime.router``)."""

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult: ...
