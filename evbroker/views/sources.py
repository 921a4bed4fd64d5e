"""What a view can read: a Broker, a Trace, or any run result that carries a ``.trace``."""

from __future__ import annotations

from typing import Any

from evbroker.core.trace import Trace
from evbroker.errors import EvbrokerError

ROLES = ("producer", "topic", "queue", "worker")


def as_trace(source: Any, where: str) -> Trace:
    """The trace behind ``source``: a :class:`~evbroker.Trace` itself, or ``source.trace``.

    A ``Broker`` and a workflow run result both have ``.trace``; views never look further in.
    """
    if isinstance(source, Trace):
        return source
    trace = getattr(source, "trace", None)
    if isinstance(trace, Trace):
        return trace
    raise EvbrokerError(
        f"{where} needs a Broker, a Trace or a run result with a .trace (got {type(source).__name__}: "
        f"{source!r:.80}); e.g. {where}(b) after b.run(), or {where}(run) for a workflow run"
    )


def actor_roles(trace: Trace) -> dict[str, str]:
    """Every actor of the run with its role, in declaration order.

    Starts from ``trace.actors`` and adds any name that only appears in events (a trace built
    by hand), inferring its role from the events it takes part in.
    """
    roles = dict(trace.actors)
    for e in trace:
        if e.kind == "publish":
            roles.setdefault(e.actor, "producer")
        elif e.kind == "route":
            roles.setdefault(e.actor, "topic")
            if e.to:
                roles.setdefault(e.to, "queue")
        elif e.kind == "deliver":
            roles.setdefault(e.actor, "queue")
            if e.to:
                roles.setdefault(e.to, "worker")
        elif e.kind in ("process", "complete", "crash", "restart", "effect", "handler-error"):
            roles.setdefault(e.actor, "worker")
        elif e.kind in ("timeout", "redeliver", "lost", "dead-letter"):
            roles.setdefault(e.actor, "queue")
        elif e.kind == "unroutable":
            roles.setdefault(e.actor, "topic")
    return roles


def worker_queues(trace: Trace) -> dict[str, str]:
    """Which queue each worker consumes from, as seen in the trace (first seen wins)."""
    owners: dict[str, str] = {}
    for e in trace:
        if e.kind == "deliver" and e.to is not None:
            owners.setdefault(e.to, e.actor)
        elif e.kind in ("process", "complete", "crash", "restart") and e.queue is not None:
            owners.setdefault(e.actor, e.queue)
    return owners


def message_order(trace: Trace) -> dict[str, int]:
    """Each message id with its index in first-seen order (for stable colours)."""
    order: dict[str, int] = {}
    for e in trace:
        if e.msg is not None and e.msg not in order:
            order[e.msg] = len(order)
    return order


def chains(trace: Trace) -> dict[str, str]:
    """Each message id with the id of the message that started its chain of causes.

    A message a worker publishes is caused by the message that worker just finished (the core
    commits a handler's publications the instant its processing completes). Following causes
    back leads to a message published by a producer: an order placed, say, whose commands,
    replies and events all belong to it.
    """
    root: dict[str, str] = {}
    finished: dict[str, tuple[float, str]] = {}
    for e in trace:
        if e.msg is None:
            continue
        if e.kind == "complete":
            finished[e.actor] = (e.time, e.msg)
        elif e.kind == "publish" and e.msg not in root:
            cause = finished.get(e.actor)
            if cause is not None and cause[0] == e.time:
                root[e.msg] = root.get(cause[1], cause[1])
            else:
                root[e.msg] = e.msg
        else:
            root.setdefault(e.msg, e.msg)
    return root
