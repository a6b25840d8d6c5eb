"""Approval time, measured: a month's decided Feishu approvals reduced to the figures of the monthly card.

Pure functions over :class:`DecidedApproval` (one recorded instance, see :mod:`engine.approval_report`):
no I/O and no clock, so they run in a workflow or an activity alike and are tested without Temporal.

Definitions used throughout (times are seconds, floats, from Feishu's epoch-millisecond stamps):

* *time to decision*: the instance's ``end_time - start_time``, for approved and rejected instances only
  (a withdrawn or deleted instance was never decided, so it has no time to decision);
* *a hold*: one approver task's ``end_time - start_time`` for a task the approver acted on (``APPROVED``,
  ``REJECTED`` or ``TRANSFERRED``). Tasks Feishu closed by itself (``DONE``: another approver of the same
  "或签" node decided first, or the applicant withdrew) and tasks still ``PENDING`` count for nobody;
* *percentiles*: the nearest-rank method: the p-th percentile of n sorted values is the value at rank
  ``ceil(p * n)`` (1-based; rank 1 for p = 0). It is always one of the measured values, never an
  interpolation, so a card's p90 is a time some request really took. The median is the p50 the same way
  (for an even count: the lower of the two middle values).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

ACTED = frozenset({"APPROVED", "REJECTED", "TRANSFERRED"})
DECIDED = frozenset({"APPROVED", "REJECTED"})
OUTCOMES = {"APPROVED": "approved", "REJECTED": "rejected", "CANCELED": "withdrawn", "DELETED": "deleted"}


class HeldTask(BaseModel):
    """One approver task of a recorded instance: ``approver`` is the open id (grouping only, never shown),
    ``name``/``en_name`` what the card shows, ``node`` the node's name, ``end`` ``None`` while pending."""

    node: str = ""
    approver: str = ""
    name: str = ""
    en_name: str = ""
    status: str
    start: datetime
    end: datetime | None = None

    @property
    def held_seconds(self) -> float | None:
        """The hold (see the module docstring), ``None`` for a task that counts for nobody."""
        if self.status not in ACTED or self.end is None or self.end < self.start:
            return None
        return (self.end - self.start).total_seconds()


class DecidedApproval(BaseModel):
    """One recorded instance: ``definition`` is the approval code, ``definition_name`` its name, ``site``
    the site id (``""``: the group's own), ``status`` Feishu's final status."""

    instance_code: str
    definition: str
    definition_name: str = ""
    site: str = ""
    site_name: str = ""
    scenario: str = ""
    title: str = ""
    status: str
    started: datetime
    ended: datetime
    tasks: list[HeldTask] = Field(default_factory=list)

    @property
    def decision_seconds(self) -> float | None:
        if self.status not in DECIDED or self.ended < self.started:
            return None
        return (self.ended - self.started).total_seconds()


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank ``share`` percentile (0-1) of ``values``; ``None`` when there are none.

    ``percentile([10, 20, 30, 40], 0.5) == 20``, ``percentile([10, 20, 30, 40], 0.9) == 40``.
    Raises ``ValueError`` for a share outside 0-1.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be within 0 and 1, got {share}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _counts(items: list[DecidedApproval]) -> dict[str, Any]:
    outcomes = [OUTCOMES.get(a.status, "") for a in items]
    times = [s for a in items if (s := a.decision_seconds) is not None]
    return {"count": len(items), "approved": outcomes.count("approved"), "rejected": outcomes.count("rejected"),
            "withdrawn": outcomes.count("withdrawn"), "p50": percentile(times, 0.5), "p90": percentile(times, 0.9)}


def _names(task: HeldTask) -> dict[str, str]:
    return {"name_zh": task.name, "name_en": task.en_name or task.name}


def month_figures(approvals: list[DecidedApproval], *, top_steps: int = 5, top_approvers: int = 10) -> dict[str, Any]:
    """The card's figures for ``approvals`` (one month, one organization or site); JSON values only.

    Returns ``{"count", "approved", "rejected", "withdrawn", "p50", "p90"`` (seconds to decision, ``None``
    without a decided instance), ``"definitions"``: the same per definition (most used first, then by
    name), ``"approvers"``: per approver ``{"name_zh", "name_en", "tasks", "held_total", "held_median"}``
    (the ``top_approvers`` who held approvals longest in total first), ``"slowest"``: the ``top_steps``
    longest holds ``{"definition", "node", "name_zh", "name_en", "title", "site", "held"}`` (longest
    first; ties by definition, node and name)``}``.
    """
    figures = _counts(approvals)
    by_definition: dict[str, list[DecidedApproval]] = {}
    for approval in approvals:
        by_definition.setdefault(approval.definition, []).append(approval)
    definitions = [{"name": items[0].definition_name or code, **_counts(items)}
                   for code, items in by_definition.items()]
    figures["definitions"] = sorted(definitions, key=lambda d: (-d["count"], d["name"]))

    holds: dict[str, list[float]] = {}
    names: dict[str, dict[str, str]] = {}
    steps: list[dict[str, Any]] = []
    for approval in approvals:
        for task in approval.tasks:
            held = task.held_seconds
            if held is None:
                continue
            who = task.approver or task.name
            holds.setdefault(who, []).append(held)
            names[who] = _names(task)  # the latest recorded name wins
            steps.append({"definition": approval.definition_name or approval.definition, "node": task.node,
                          **_names(task), "title": approval.title, "site": approval.site_name, "held": held})
    approvers = [{**names[who], "tasks": len(values), "held_total": sum(values),
                  "held_median": percentile(values, 0.5)} for who, values in holds.items()]
    approvers.sort(key=lambda a: (-a["held_total"], a["name_zh"]))
    figures["approvers"] = approvers[:top_approvers]
    steps.sort(key=lambda s: (-s["held"], s["definition"], s["node"], s["name_zh"]))
    figures["slowest"] = steps[:top_steps]
    return figures


def site_figures(approvals: list[DecidedApproval], site: str, **top: int) -> dict[str, Any]:
    """:func:`month_figures` of the approvals asked at ``site`` (a site id)."""
    return month_figures([a for a in approvals if a.site == site], **top)
