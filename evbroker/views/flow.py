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
OTHER_SHAPE, OTHER_COLOUR = "D", "#F0E442"
#: How far (points) an arrow stops short of the node it leaves or reaches.
NODE_GAP = 15
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


def flow(source: Any, ax: Any = None, *, workers: bool = False, title: str | None = None, legend: bool = True) -> Flow:
    """Draw who talks to whom, left to right, and return ``Flow(ax, graph)``.

    ``source`` is a Broker, a Trace or a workflow run. Each service (a queue and its workers)
    is one box, each topic a hexagon, each producer a triangle; an arrow is a publish (or a
    topic's route), as thick as the number of messages it carried, and labelled with it. The
    layout is by distance from the producers, so it is the same on every run: a choreography
    reads as a chain of services passing events on, an orchestration as one hub (the
    orchestrator) with every service talking only to it. ``workers=True`` draws each worker
    as its own node fed by its queue. ``legend=False`` leaves the legend out
    (:func:`legend_handles` gives its entries).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    trace = as_trace(source, "eb.plot.flow")
    g = graph(trace, workers=workers)
    pos = positions(g)
    if ax is None:
        rows = max((sum(1 for p in pos.values() if p[0] == c) for c in {p[0] for p in pos.values()}), default=1)
        _, ax = plt.subplots(figsize=(style.NOTEBOOK_WIDTH, max(2.4, 1.0 + 0.8 * rows)), layout="constrained")
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    ax.set_ylim(min(ys) - 0.75, max(ys) + 0.5)
    ax.set_axis_off()
    column = layers(g)
    most = max((m for _, _, m in g.edges(data="messages")), default=1)
    to_screen, to_data = ax.transData, ax.transData.inverted()
    gap = NODE_GAP * ax.figure.dpi / 72
    for a, b, data in g.edges(data=True):
        back = column[b] <= column[a]
        both = g.has_edge(b, a)
        rad = -0.3 if back and not both else 0.12 if both else 0.0
        width = 0.8 + 2.4 * (data["messages"] / most) ** 0.5
        # stop short of both nodes (computed once here: matplotlib's own shrinking is slow)
        (sxa, sya), (sxb, syb) = to_screen.transform([pos[a], pos[b]])
        length = max(((sxb - sxa) ** 2 + (syb - sya) ** 2) ** 0.5, 1e-9)
        ux, uy = (sxb - sxa) / length * gap, (syb - sya) / length * gap
        start, end = to_data.transform([(sxa + ux, sya + uy), (sxb - ux, syb - uy)])
        arrow = FancyArrowPatch(
            tuple(start),
            tuple(end),
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>",
            mutation_scale=12,
            linewidth=width,
            color=style.INK,
            alpha=0.55,
            shrinkA=0,
            shrinkB=0,
            zorder=2,
        )
        ax.add_patch(arrow)
        # the label sits on the arc: arc3 bends the chord's midpoint by rad / 2 of it, on screen
        dx, dy = sxb - sxa, syb - sya
        mx, my = to_data.transform(((sxa + sxb) / 2 + rad * dy / 2, (sya + syb) / 2 - rad * dx / 2))
        ax.text(
            mx,
            my,
            str(data["messages"]),
            fontsize=8,
            ha="center",
            va="center",
            color=style.INK,
            bbox=dict(boxstyle="square,pad=0.15", fc="white", ec="none", alpha=0.9),
            zorder=3,
        )
    roles = dict(g.nodes(data="role"))
    for role in dict.fromkeys(roles.values()):
        names = [n for n, r in roles.items() if r == role]
        shape, colour = NODE_SHAPES.get(role, OTHER_SHAPE), NODE_COLOURS.get(role, OTHER_COLOUR)
        ax.scatter(
            [pos[n][0] for n in names],
            [pos[n][1] for n in names],
            marker=shape,
            s=420,
            c=colour,
            edgecolors=style.INK,
            linewidths=1.0,
            zorder=4,
        )
    for n, data in g.nodes(data=True):
        text = n
        if data.get("workers", 0) > 1:
            text += f"\n({data['workers']} workers)"
        ax.annotate(text, pos[n], xytext=(0, -13), textcoords="offset points", fontsize=8.5, ha="center", va="top")
    if legend:
        ax.legend(handles=legend_handles(g), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    return Flow(ax, g)


def legend_handles(g: Any) -> list[Any]:
    """The legend entries of :func:`flow` for graph ``g``: one per role present, and the arrows."""
    from matplotlib.lines import Line2D

    handles = []
    for role in dict.fromkeys(r for _, r in g.nodes(data="role")):
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=NODE_SHAPES.get(role, OTHER_SHAPE),
                markersize=10,
                markerfacecolor=NODE_COLOURS.get(role, OTHER_COLOUR),
                markeredgecolor=style.INK,
                label=ROLE_NAMES.get(role, role),
            )
        )
    handles.append(Line2D([], [], color=style.INK, alpha=0.55, lw=2.5, label="messages sent (count)"))
    return handles
