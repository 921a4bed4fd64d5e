"""Virtual time: a clock and a queue of things to do, with deterministic tie-breaking.

Items are ordered by ``(time, priority, sequence)``; the sequence number is a counter, so
two items are never compared beyond it and two runs of the same set-up do the same things in
the same order. Nothing here knows about brokers; it only calls callbacks at virtual times.

An item can be cancelled (a worker's pending completion once it has crashed), and a callback
that finds nothing left to do (an ack deadline whose ack has come) returns ``SKIP``. Either
way the clock does not move and no event is counted, so ``now`` after a run is the time of
the last thing that really happened.

Items live in two places, merged on the way out: a plain FIFO for items that arrive in time
order (such as publishes scheduled up front) and a heap for the rest. The FIFO takes an item
only if it sorts after the FIFO's last one, so both stay sorted and items come out in
exactly the heap order; the heap just stays small.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

# Same-time order: work finishing (and its ack) settles before timeouts fire, timeouts before
# restarts, restarts before new publishes. The order is a modelling choice, fixed for determinism.
COMPLETE, TIMEOUT, RESTART, PUBLISH = 0, 1, 2, 3

#: A scheduled item: ``[time, priority, seq, callback or None when cancelled, args]``.
Entry = list
#: Returned by a callback that turned out to have nothing to do: as if it had been cancelled.
SKIP = object()


class Scheduler:
    """A virtual clock with pending ``[time, priority, seq, callback, args]`` items."""

    __slots__ = ("now", "_heap", "_fifo", "_seq")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[Entry] = []
        self._fifo: deque[Entry] = deque()
        self._seq = itertools.count()

    def at(self, time: float, priority: int, callback: Callable[..., Any], *args: Any) -> Entry:
        """Call ``callback(*args)`` at virtual ``time`` (never earlier than now); returns the item."""
        entry = [time, priority, next(self._seq), callback, args]
        fifo = self._fifo
        if not fifo or entry > fifo[-1]:
            fifo.append(entry)
        else:
            heapq.heappush(self._heap, entry)
        return entry

    def reserve(self) -> int:
        """A sequence number for an item to be scheduled later with :meth:`at_seq`: it will sort
        among same-time, same-priority items as if it had been scheduled now."""
        return next(self._seq)

    def at_seq(self, time: float, priority: int, seq: int, callback: Callable[..., Any], *args: Any) -> Entry:
        """Like :meth:`at` (same body, kept apart as `at` is called for every message), with a
        sequence number from :meth:`reserve`."""
        entry = [time, priority, seq, callback, args]
        fifo = self._fifo
        if not fifo or entry > fifo[-1]:
            fifo.append(entry)
        else:
            heapq.heappush(self._heap, entry)
        return entry

    @staticmethod
    def cancel(entry: Entry) -> None:
        """Forget a scheduled item: it will be skipped and will not move the clock."""
        entry[3] = None

    def _next(self) -> Entry | None:
        """The earliest item not cancelled, left in place (cancelled ones in front are dropped)."""
        heap, fifo = self._heap, self._fifo
        while True:
            if heap and (not fifo or heap[0] < fifo[0]):
                if heap[0][3] is not None:
                    return heap[0]
                heapq.heappop(heap)
            elif fifo:
                if fifo[0][3] is not None:
                    return fifo[0]
                fifo.popleft()
            else:
                return None

    def next_time(self) -> float | None:
        """Time of the next item not cancelled (it may still find nothing to do), or ``None``."""
        entry = self._next()
        return None if entry is None else entry[0]

    def step(self) -> bool:
        """Run items up to and including the next one that does something; False if none did."""
        return self.run(limit=1) == 1

    def run(self, until: float | None = None, limit: int = -1) -> int:
        """Run items in order, up to and including time ``until``, until ``limit`` of them have
        done something (no limit when negative). Returns how many did."""
        heap, fifo = self._heap, self._fifo
        heappop = heapq.heappop
        popleft = fifo.popleft
        end = float("inf") if until is None else until
        done = 0
        while done != limit:
            if heap and (not fifo or heap[0] < fifo[0]):
                if heap[0][0] > end:
                    break
                time, _, _, callback, args = heappop(heap)
            elif fifo:
                if fifo[0][0] > end:
                    break
                time, _, _, callback, args = popleft()
            else:
                break
            if callback is None:
                continue
            before, self.now = self.now, time
            if callback(*args) is SKIP:
                self.now = before
                continue
            done += 1
        return done

    def __len__(self) -> int:
        """How many items are scheduled, cancelled ones included until they are dropped."""
        return len(self._heap) + len(self._fifo)
