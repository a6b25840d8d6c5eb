"""Errors the runtime raises across module boundaries (ingress, router, worker)."""

from __future__ import annotations

__all__ = ["TemporalUnavailable"]


class TemporalUnavailable(Exception):
    """Temporal could not be reached, so an event was not durably handed over.

    The ingress answers 503 to it, which makes Feishu push the event again later.
    """
