"""Who talks to whom: the graph of producers, topics and services, derived from the trace.

A service is a queue together with its workers (``billing`` with ``billing-1``, ``billing-2``):
a message a worker publishes is drawn leaving its service. Edges carry the number of distinct
messages that went along them, so a busy path is a thick arrow.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

from evbroker.core.trace import Trace
from evbroker.views import style
from evbroker.views.sources import actor_roles, as_trace, worker_queues

#: Node shape per role (shapes, not only colours, tell roles apart).
NODE_SHAPES = {"producer": ">", "topic": "h", "queue": "s", "worker": "o"}
NODE_COLOURS = {"producer": "#E69F00", "topic": "#56B4E9", "queue": "#009E73", "worker": "#CC79A7"}
ROLE_NAMES = {
    "producer": "producer",
    "topic": "topic (pub/sub)",
    "queue": "service (queue + workers)",
    "worker": "worker",
}


class Flow(NamedTuple):
    """What :func:`flow` returns: the ``ax`` it drew on and the ``graph`` it drew."""

    ax: Any
    graph: Any

    def __repr__(self) -> str:
        g = self.graph
        return f"<Flow: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges>"


def graph(trace: Trace, workers: bool = False) -> Any:
    """The ``networkx.DiGraph`` of who sent messages to whom in ``trace``.

    Nodes are producers, topics and services (a queue with its workers; with ``workers=True``
    each worker is a node of its own, fed by its queue). Node attribute ``role``; for a
    service, ``workers`` (how many). Edge attributes: ``messages`` (distinct message ids that
    travelled it), ``kind`` (``"publish"``, ``"route"`` or ``"deliver"``). Insertion order is
    the order things first happened, so the graph is the same on every run.
    """
    import networkx as nx

    roles = actor_roles(trace)
    owners = worker_queues(trace)

    def node(actor: str) -> str:
        if not workers and roles.get(actor) == "worker" and actor in owners:
            return owners[actor]
        return actor

    g = nx.DiGraph()
    crew: dict[str, set[str]] = {}
    for w, q in owners.items():
        crew.setdefault(q, set()).add(w)
    seen: dict[tuple[str, str], set[str]] = {}

    def add_node(name: str) -> None:
        if name not in g:
            role = roles.get(name, "queue")
            g.add_node(name, role=role, workers=len(crew.get(name, ())) if role == "queue" else 0)

    for e in trace:
        if e.kind not in ("publish", "route", "deliver") or e.to is None:
            continue
        if e.kind == "deliver" and not workers:
            add_node(e.actor)
            continue
        a, b = node(e.actor), node(e.to)
        add_node(a)
        add_node(b)
        msgs = seen.setdefault((a, b), set())
        msgs.add(e.msg or "")
        if g.has_edge(a, b):
            g.edges[a, b]["messages"] = len(msgs)
        else:
            g.add_edge(a, b, messages=len(msgs), kind=e.kind)
    return g


def layers(g: Any) -> dict[str, int]:
    """Column of each node, left to right: distance from the producers (breadth first).

    Deterministic: ties keep the graph's insertion order. Nodes no producer reaches start
    their own walk from column 0.
    """
    column: dict[str, int] = {}
    starts = [n for n, r in g.nodes(data="role") if r == "producer"] or [n for n in g if g.in_degree(n) == 0]
    for root in [*starts, *g.nodes]:
        if root in column:
            continue
        column[root] = 0
        todo = deque([root])
        while todo:
            n = todo.popleft()
            for m in g.successors(n):
                if m not in column:
                    column[m] = column[n] + 1
                    todo.append(m)
    return column


def positions(g: Any) -> dict[str, tuple[float, float]]:
    """x = column, y spread evenly and centred within each column.

    Column 0 keeps first-seen order, top down; each next column is ordered by the mean row of
    each node's senders in earlier columns (ties: first seen first), which keeps arrows from
    crossing where it can.
    """
    column = layers(g)
    by_col: dict[int, list[str]] = {}
    for n in g:
        by_col.setdefault(column[n], []).append(n)
    row: dict[str, float] = {}
    pos = {}
    for c in sorted(by_col):
        names = by_col[c]
        if c > 0:
            names = sorted(names, key=lambda n, c=c: (_mean_row(g, n, row, column, c), names.index(n)))
        k = len(names)
        for i, n in enumerate(names):
            row[n] = i - (k - 1) / 2
            pos[n] = (float(c), -row[n])
    return pos


def _mean_row(g: Any, n: str, row: dict[str, float], column: dict[str, int], c: int) -> float:
    senders = [row[p] for p in g.predecessors(n) if p in row and column[p] < c]
    return sum(senders) / len(senders) if senders else float("inf")


def flow(source: Any, ax: Any = None, *, workers: bool = False, title: str | None = None) -> Flow:
    """Draw who talks to whom, left to right, and return ``Flow(ax, graph)``.

    ``source`` is a Broker, a Trace or a workflow run. Each service (a queue and its workers)
    is one box, each topic a hexagon, each producer a triangle; an arrow is a publish (or a
    topic's route), as thick as the number of messages it carried, and labelled with it. The
    layout is by distance from the producers, so it is the same on every run: a choreography
    reads as a chain of services passing events on, an orchestration as one hub (the
    orchestrator) with every service talking only to it. ``workers=True`` draws each worker
    as its own node fed by its queue.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch

    trace = as_trace(source, "eb.plot.flow")
    g = graph(trace, workers=workers)
    pos = positions(g)
    if ax is None:
        rows = max((sum(1 for p in pos.values() if p[0] == c) for c in {p[0] for p in pos.values()}), default=1)
        _, ax = plt.subplots(figsize=(style.NOTEBOOK_WIDTH, max(2.4, 1.0 + 0.8 * rows)), layout="constrained")
    column = layers(g)
    most = max((m for _, _, m in g.edges(data="messages")), default=1)
    for a, b, data in g.edges(data=True):
        back = column[b] <= column[a]
        both = g.has_edge(b, a)
        rad = -0.3 if back and not both else 0.12 if both else 0.0
        width = 0.8 + 2.4 * (data["messages"] / most) ** 0.5
        arrow = FancyArrowPatch(
            pos[a],
            pos[b],
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>",
            mutation_scale=12,
            linewidth=width,
            color=style.INK,
            alpha=0.55,
            shrinkA=16,
            shrinkB=16,
            zorder=2,
        )
        ax.add_patch(arrow)
        (xa, ya), (xb, yb) = pos[a], pos[b]
        mx, my = (xa + xb) / 2, (ya + yb) / 2
        # the label sits on the arc: offset the midpoint perpendicular to the chord by rad
        dx, dy = xb - xa, yb - ya
        mx, my = mx + rad * dy / 2 * 1.0, my - rad * dx / 2 * 1.0
        ax.text(
            mx,
            my,
            str(data["messages"]),
            fontsize=8,
            ha="center",
            va="center",
            color=style.INK,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9),
            zorder=3,
        )
    roles_present = []
    for role, shape in NODE_SHAPES.items():
        names = [n for n, r in g.nodes(data="role") if r == role]
        if not names:
            continue
        roles_present.append(role)
        ax.scatter(
            [pos[n][0] for n in names],
            [pos[n][1] for n in names],
            marker=shape,
            s=420,
            c=NODE_COLOURS[role],
            edgecolors=style.INK,
            linewidths=1.0,
            zorder=4,
        )
    for n, data in g.nodes(data=True):
        text = n
        if data.get("workers", 0) > 1:
            text += f"\n({data['workers']} workers)"
        ax.annotate(
            text,
            pos[n],
            xytext=(0, -13),
            textcoords="offset points",
            fontsize=8.5,
            ha="center",
            va="top",
            zorder=5,
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75),
        )
    others = sorted({r for _, r in g.nodes(data="role")} - set(NODE_SHAPES))
    for role in others:
        names = [n for n, r in g.nodes(data="role") if r == role]
        ax.scatter(
            [pos[n][0] for n in names],
            [pos[n][1] for n in names],
            marker="D",
            s=380,
            c="#F0E442",
            edgecolors=style.INK,
            zorder=4,
        )
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.75, max(ys) + 0.5)
    ax.set_axis_off()
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=NODE_SHAPES[r],
            markersize=10,
            markerfacecolor=NODE_COLOURS[r],
            markeredgecolor=style.INK,
            label=ROLE_NAMES[r],
        )
        for r in roles_present
    ]
    handles += [
        Line2D(
            [],
            [],
            linestyle="none",
            marker="D",
            markersize=9,
            markerfacecolor="#F0E442",
            markeredgecolor=style.INK,
            label=r,
        )
        for r in others
    ]
    handles.append(Line2D([], [], color=style.INK, alpha=0.55, lw=2.5, label="messages sent (count)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    return Flow(ax, g)
