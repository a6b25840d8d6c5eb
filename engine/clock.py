"""An organization's business clock: real time, or real time sped up for drills and reliability runs.

Scenarios think in days and months (a calibration due in 30 days, a loan due back next week). To watch
a year of that happen in minutes against real processes, an organization may run on a *compressed*
clock: from ``origin`` on, ``scale`` business seconds pass per real second (``scale = 1440``: a business
day per real minute). Workflows that honour it ask :meth:`BusinessClock.now` instead of
``workflow.now()`` and sleep :meth:`BusinessClock.real_delay` of a business delay.

With the default ``scale = 1`` the clock is the real one and nothing changes. A compressed clock is for
test organizations only: it is deterministic (a pure function of the real time), so workflows replay.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BusinessClock(BaseModel):
    """``[organizations.X.clock]``: ``origin`` (an aware date-time) and ``scale`` (business seconds per real one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float = Field(1.0, gt=0)
    origin: datetime | None = None

    @model_validator(mode="after")
    def _origin_for_a_compressed_clock(self) -> BusinessClock:
        if self.scale != 1 and self.origin is None:
            raise ValueError("a clock with scale != 1 needs an origin, e.g. origin = 2026-11-23T09:00:00+08:00")
        if self.origin is not None and self.origin.utcoffset() is None:
            raise ValueError("origin needs a UTC offset, e.g. 2026-11-23T09:00:00+08:00")
        return self

    @property
    def compressed(self) -> bool:
        return self.scale != 1

    def now(self, real: datetime) -> datetime:
        """The business time at the real moment ``real`` (aware)."""
        if not self.compressed:
            return real
        assert self.origin is not None
        return self.origin + (real - self.origin) * self.scale

    def real_delay(self, business: timedelta) -> timedelta:
        """How long to really wait for ``business`` to pass on this clock."""
        return business if not self.compressed else business / self.scale
