"""Virtual time: a clock and a heap of things to do, with deterministic tie-breaking.

Items are ordered by ``(time, priority, sequence)``; the sequence number is a counter, so
two items are never compared and two runs of the same set-up do the same things in the same
order. Nothing here knows about brokers; it only calls callbacks at virtual times.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

# Same-time order: work finishing (and its ack) settles before timeouts fire, timeouts before
# restarts, restarts before new publishes. The order is a modelling choice, fixed for determinism.
COMPLETE, TIMEOUT, RESTART, PUBLISH = 0, 1, 2, 3


class Scheduler:
    """A virtual clock with a heap of ``(time, priority, seq, callback, args)``."""

    __slots__ = ("now", "_heap", "_seq")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()

    def at(self, time: float, priority: int, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` at virtual ``time`` (never earlier than now)."""
        heapq.heappush(self._heap, (time, priority, next(self._seq), callback, args))

    def next_time(self) -> float | None:
        """Time of the next scheduled item, or ``None`` when nothing is left."""
        return self._heap[0][0] if self._heap else None

    def step(self) -> None:
        """Advance the clock to the next item and run it."""
        time, _, _, callback, args = heapq.heappop(self._heap)
        self.now = time
        callback(*args)

    def __len__(self) -> int:
        return len(self._heap)
