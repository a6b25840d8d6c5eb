"""What a rule returns: an action, the reason for it, when it should happen, and a stable step id.

A :class:`Decision` is data. Workflows act on it (sleep until ``at``, then send), log ``reason`` so a
person can see why a message went out, and record ``step`` so the same step never fires twice (it also
makes a good part of an idempotency key). It is a frozen pydantic model, so it travels through the
engine's pydantic data converter unchanged; keep ``data`` to JSON values (dates as ISO strings).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NONE = "none"


class Decision(BaseModel):
    """One pure decision: ``action`` (``"remind"``, ``"escalate"``, ``"wait"``, ``"none"``...) and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str
    reason: str
    at: datetime | None = None
    step: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A naive moment is ambiguous across the org's zone and UTC: refuse it rather than guess.
        if value is not None and value.utcoffset() is None:
            raise ValueError("Decision.at must be timezone-aware")
        return value

    @classmethod
    def nothing(cls, reason: str, **data: Any) -> Decision:
        """A decision to do nothing (``action="none"``), with the reason why and any extra ``data``."""
        return cls(action=NONE, reason=reason, data=data)

    @property
    def is_nothing(self) -> bool:
        """True when there is nothing to do."""
        return self.action == NONE

    def is_due(self, now: datetime) -> bool:
        """True when the action should happen at ``now`` (it has no moment, or its moment has come)."""
        return not self.is_nothing and (self.at is None or self.at <= now)
