"""The approval-time figures: nearest-rank percentiles, holds per approver, the slowest steps (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.rules.approval_times import DecidedApproval, HeldTask, month_figures, percentile, site_figures

T0 = datetime(2026, 10, 12, 1, 0, tzinfo=UTC)


def task(who: str, status: str, start: int, end: int | None, node: str = "审批") -> HeldTask:
    return HeldTask(node=node, approver=who, name=f"名{who}", en_name=f"Name {who}", status=status,
                    start=T0 + timedelta(seconds=start), end=None if end is None else T0 + timedelta(seconds=end))


def approval(code: str, status: str, seconds: int, tasks: list[HeldTask], *, definition: str = "P",
             site: str = "") -> DecidedApproval:
    return DecidedApproval(instance_code=code, definition=definition, definition_name=f"{definition} 审批",
                           site=site, status=status, started=T0, ended=T0 + timedelta(seconds=seconds), tasks=tasks)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([40, 10, 30, 20], 0.5) == 20  # rank ceil(2) = 2: the lower middle value
    assert percentile([40, 10, 30, 20], 0.9) == 40  # rank ceil(3.6) = 4
    assert percentile([40, 10, 30, 20], 0.0) == 10
    assert percentile(list(range(1, 11)), 0.9) == 9  # rank 9 of 10: a measured value, no interpolation
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="share"):
        percentile([1], 1.5)


def test_month_figures_count_outcomes_decisions_and_holds() -> None:
    approvals = [
        approval("A", "APPROVED", 3600, [task("u1", "APPROVED", 0, 600), task("u2", "APPROVED", 600, 3600)]),
        approval("B", "REJECTED", 7200, [task("u1", "REJECTED", 0, 7200)], site="west"),
        approval("C", "CANCELED", 300, [task("u1", "DONE", 0, 300)], definition="Q"),  # withdrawn: no hold
        approval("D", "DELETED", 100, [task("u3", "PENDING", 0, None)], definition="Q"),
        approval("E", "APPROVED", 1800, [task("u1", "TRANSFERRED", 0, 900), task("u3", "APPROVED", 900, 1800),
                                         task("u4", "DONE", 0, 900)], site="west"),
    ]
    figures = month_figures(approvals, top_steps=2, top_approvers=2)
    assert {k: figures[k] for k in ("count", "approved", "rejected", "withdrawn", "p50", "p90")} == {
        "count": 5, "approved": 2, "rejected": 1, "withdrawn": 1, "p50": 3600, "p90": 7200}  # of 1800/3600/7200
    assert figures["definitions"] == [
        {"name": "P 审批", "count": 3, "approved": 2, "rejected": 1, "withdrawn": 0, "p50": 3600, "p90": 7200},
        {"name": "Q 审批", "count": 2, "approved": 0, "rejected": 0, "withdrawn": 1, "p50": None, "p90": None}]
    # u1 held 600 + 7200 + 900 (the transfer counts: they held it that long); u2 3000; u3 900; u4 nothing
    assert figures["approvers"] == [
        {"name_zh": "名u1", "name_en": "Name u1", "tasks": 3, "held_total": 8700, "held_median": 900},
        {"name_zh": "名u2", "name_en": "Name u2", "tasks": 1, "held_total": 3000, "held_median": 3000}]
    assert [(s["name_zh"], s["held"]) for s in figures["slowest"]] == [("名u1", 7200), ("名u2", 3000)]

    west = site_figures(approvals, "west")
    assert (west["count"], west["p50"], west["p90"]) == (2, 1800, 7200)
    assert [a["name_zh"] for a in west["approvers"]] == ["名u1", "名u3"]


def test_an_empty_month() -> None:
    assert month_figures([]) == {"count": 0, "approved": 0, "rejected": 0, "withdrawn": 0, "p50": None,
                                 "p90": None, "definitions": [], "approvers": [], "slowest": []}
