"""Measures that make the orchestration / choreography trade-off concrete, read from a run.

- how many messages were sent (and delivered) to get the work done;
- in how many places the workflow is defined (one saga, or one set of rules per service);
- who talks to whom: the service-to-service coupling graph, derived from the trace alone.

Everything here reads a trace and the declarations; nothing reaches into the broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

    from evbroker.core.trace import Trace


def coupling_graph(trace: Trace) -> nx.DiGraph:
    """Who sent messages to whom, as a ``networkx.DiGraph`` built from ``trace`` alone.

    Nodes are services (named after their queues) and producers; an edge ``a -> b`` means a
    message published by ``a`` (a producer, or a worker of queue ``a``) was delivered to a
    worker of queue ``b``. Edge attributes: ``messages`` (distinct message ids) and ``via``
    (the topics or queues they were published to). Node attribute ``role``: "producer" or
    "service". Hops from a queue to itself (a dead-lettered command coming back) are left out.
    """
    import networkx as nx

    service_of: dict[str, str] = {}  # worker -> the queue it consumes
    for e in trace:
        if e.kind == "deliver" and e.to is not None:
            service_of[e.to] = e.queue or e.actor
    graph = nx.DiGraph()
    for name, role in trace.actors.items():
        if role == "queue":
            graph.add_node(name, role="service")
        elif role == "producer":
            graph.add_node(name, role="producer")
    sender: dict[str, tuple[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for e in trace:
        if e.kind == "publish" and e.msg is not None:
            sender[e.msg] = (service_of.get(e.actor, e.actor), e.to or "")
        elif e.kind == "deliver" and e.msg in sender:
            src, via = sender[e.msg]
            dst = e.queue or e.actor
            if src == dst:
                continue
            attrs = edges.setdefault((src, dst), {"msgs": {}, "via": {}})
            attrs["msgs"][e.msg] = None
            attrs["via"][via] = None
    for (src, dst), attrs in edges.items():
        graph.add_edge(src, dst, messages=len(attrs["msgs"]), via=list(attrs["via"]))
    return graph


@dataclass
class Measures:
    """The trade-off in numbers for one run.

    ``messages``: publishes (handlers' and producers', retries included); ``deliveries``:
    copies handed to workers (redeliveries included); ``defined_in``: the places holding a
    piece of the workflow's definition; ``rules``: what each place holds; ``coupling``: the
    coupling graph (:func:`coupling_graph`); ``finished_at``: when the last instance settled.
    """

    style: str
    messages: int
    deliveries: int
    defined_in: tuple[str, ...]
    rules: dict[str, list[str]]
    coupling: Any = field(repr=False)
    finished_at: float | None = None

    @property
    def places(self) -> int:
        """How many places hold part of the workflow's definition."""
        return len(self.defined_in)

    def summary(self) -> dict[str, Any]:
        """The measures as plain values (the graph as its edge list), for a table or a check."""
        return {
            "style": self.style,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "places": self.places,
            "defined_in": list(self.defined_in),
            "links": [(a, b, d["messages"]) for a, b, d in self.coupling.edges(data=True)],
            "finished_at": self.finished_at,
        }

    def __repr__(self) -> str:
        links = ", ".join(f"{a}->{b}" for a, b in self.coupling.edges)
        return (
            f"<Measures {self.style}: {self.messages} messages, {self.deliveries} deliveries, "
            f"defined in {self.places} place{'s' if self.places != 1 else ''} ({', '.join(self.defined_in)}); "
            f"links: {links or 'none'}>"
        )


def measure(style: str, trace: Trace, rules: Mapping[str, list[str]], finished_at: float | None = None) -> Measures:
    """Build :class:`Measures` from a run's trace and the declaration's ``rules()``."""
    messages = deliveries = 0
    for e in trace:
        if e.kind == "publish":
            messages += 1
        elif e.kind == "deliver":
            deliveries += 1
    return Measures(
        style=style,
        messages=messages,
        deliveries=deliveries,
        defined_in=tuple(rules),
        rules={k: list(v) for k, v in rules.items()},
        coupling=coupling_graph(trace),
        finished_at=finished_at,
    )
