"""Push dispatch, for queues where some worker has a prefetch other than 1.

With prefetch 1 (fair dispatch, the broker's default path) a copy goes only to a free worker.
With a larger prefetch, or none (``prefetch=None``, RabbitMQ's default when a consumer never
sets ``basic.qos``), the broker pushes each copy, round-robin, to the next worker that holds
fewer unacked copies than its prefetch, whether that worker is busy or not; the copy waits in
the worker's own buffer. A slow worker then builds a backlog while the fast ones idle: RabbitMQ's
Work Queues tutorial shows exactly this before it introduces ``prefetch_count=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evbroker.core.broker import Broker


class UNSET:
    """A default that was not passed: ``UNSET(5.0)`` shows as ``5.0`` in a signature.

    It lets a preset (``like=``) fill in only what the caller left out: arguments passed
    explicitly, even equal to the default, win over the preset.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def holding(w: Any) -> int:
    """How many copies a worker holds: the one it is processing and those in its buffer."""
    return len(w.backlog) + (w.state == "busy")


def has_room(w: Any) -> bool:
    """A live worker below its prefetch (None: no limit) may be handed another copy."""
    if w.state == "down":
        return False
    return w.prefetch is None or holding(w) < w.prefetch


def push_dispatch(broker: Broker, q: Any) -> None:
    """Push ready copies, FIFO, round-robin to workers with room under their prefetch."""
    workers = q.workers
    n = len(workers)
    ready = q.ready
    while ready:
        rr = q.rr
        for i in range(n):
            w = workers[(rr + i) % n]
            if has_room(w):
                q.rr = (rr + i + 1) % n
                broker._deliver(ready.popleft(), w)
                break
        else:  # every worker is down or full: the copies wait in the queue
            return
