"""A bounded, expiring memory of event ids already handed to the engine: the fast path for redeliveries.

Feishu delivers at least once: it pushes an event again when the answer was late or not a 200, and
sometimes even after a 200. Answering such a redelivery from this set costs nothing and never touches
Temporal. It is only an optimisation: it lives in one process's memory, forgets after ``ttl_seconds``
and past ``max_entries``, and another ingress replica has its own. Correctness comes from the
workflows, which deduplicate the event ids they are signalled with (``engine.workflow_support``).

An id is remembered only after its dispatch succeeded; a failed or timed-out dispatch must be
retried when Feishu pushes the event again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["SeenEvents"]

# Feishu's last redelivery comes about 6 h 20 min after the first push (15 s, 5 min, 1 h, 6 h).
DEFAULT_TTL_SECONDS = 8 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000


class SeenEvents:
    """Event ids seen recently, oldest evicted first when full; thread-safe.

    ``clock`` returns seconds (monotonic by default); tests pass their own.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        # id -> expiry; insertion order is expiry order because every entry gets the same TTL.
        self._expiry: OrderedDict[str, float] = OrderedDict()
        # The long-connection thread and the event loop may both touch the set.
        self._lock = threading.Lock()

    def _evict_expired(self, now: float) -> None:
        while self._expiry:
            oldest, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[oldest]

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was remembered and has not expired yet."""
        with self._lock:
            now = self._clock()
            self._evict_expired(now)
            expiry = self._expiry.get(event_id)
            return expiry is not None and expiry > now

    def remember(self, event_id: str) -> None:
        """Record ``event_id`` as dispatched (call it only after the dispatch succeeded)."""
        with self._lock:
            now = self._clock()
            self._evict_expired(now)
            self._expiry.pop(event_id, None)  # re-inserting moves it to the young end
            self._expiry[event_id] = now + self.ttl_seconds
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            self._evict_expired(self._clock())
            return len(self._expiry)

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.seen(event_id)
