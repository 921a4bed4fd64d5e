"""The lanes of a swimlane diagram: one per actor, producers first, each queue above its workers."""

from __future__ import annotations

from dataclasses import dataclass

from evbroker.core.trace import Trace
from evbroker.views.sources import actor_roles, worker_queues


@dataclass(frozen=True, slots=True)
class Lane:
    """One horizontal lane: the actor's name, its role, and the group (queue) it belongs to."""

    name: str
    role: str
    group: str


def lanes(trace: Trace) -> list[Lane]:
    """Lanes top to bottom: producers, topics, then each queue followed by its own workers.

    Any other role (an orchestrator, say) comes after the producers. Workers that never got a
    message are placed under the queue their default name points at (``billing-2`` under
    ``billing``), else at the end.
    """
    roles = actor_roles(trace)
    owners = worker_queues(trace)
    queues = [n for n, r in roles.items() if r == "queue"]
    for name, role in roles.items():
        if role == "worker" and name not in owners:
            base = name.rsplit("-", 1)[0]
            if base in queues:
                owners[name] = base
    out: list[Lane] = []
    for name, role in roles.items():
        if role == "producer":
            out.append(Lane(name, role, name))
    for name, role in roles.items():
        if role not in ("producer", "topic", "queue", "worker"):
            out.append(Lane(name, role, name))
    for name, role in roles.items():
        if role == "topic":
            out.append(Lane(name, role, name))
    for q in queues:
        out.append(Lane(q, "queue", q))
        out.extend(Lane(w, "worker", q) for w, r in roles.items() if r == "worker" and owners.get(w) == q)
    for name, role in roles.items():
        if role == "worker" and owners.get(name) not in queues:
            out.append(Lane(name, role, name))
    return out
