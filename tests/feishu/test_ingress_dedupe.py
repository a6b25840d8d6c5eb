"""The ingress's seen-set of dispatched event ids: bounded, expiring, remembered only when told."""

from __future__ import annotations

import pytest

from engine.feishu.dedupe import SeenEvents


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remembered_ids_expire_after_ttl() -> None:
    clock = Clock()
    seen = SeenEvents(ttl_seconds=60, clock=clock)
    assert not seen.seen("e1")
    seen.remember("e1")
    assert seen.seen("e1") and "e1" in seen
    clock.now += 59
    assert seen.seen("e1")
    clock.now += 2
    assert not seen.seen("e1")
    assert len(seen) == 0


def test_oldest_evicted_past_max_entries() -> None:
    seen = SeenEvents(max_entries=3, clock=Clock())
    for event_id in ("a", "b", "c", "d"):
        seen.remember(event_id)
    assert [e for e in "abcd" if seen.seen(e)] == ["b", "c", "d"]
    seen.remember("b")  # remembering again makes it the youngest
    seen.remember("e")
    assert [e for e in "abcde" if seen.seen(e)] == ["b", "d", "e"]


def test_invalid_limits() -> None:
    with pytest.raises(ValueError):
        SeenEvents(ttl_seconds=0)
    with pytest.raises(ValueError):
        SeenEvents(max_entries=0)
