"""Errors the runtime raises across module boundaries (ingress, router, worker)."""

from __future__ import annotations

__all__ = ["DispatchBusy", "TemporalUnavailable"]


class TemporalUnavailable(Exception):
    """Temporal could not be reached, so an event was not durably handed over.

    The ingress answers 503 to it, which makes Feishu push the event again later.
    """


class DispatchBusy(Exception):
    """An event's chat (or sender) already has as many events queued as it may: nothing was dispatched.

    The ingress answers 503 at once, so one chat's flood does not hold request slots other chats need;
    Feishu pushes the event again later.
    """
