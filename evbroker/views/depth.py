"""Queue depth over time: how many copies wait in each queue, read from the trace."""

from __future__ import annotations

from typing import Any

from evbroker.core.trace import Trace
from evbroker.errors import EvbrokerError, did_you_mean
from evbroker.views import style
from evbroker.views.sources import actor_roles, as_trace

#: Line styles cycled per queue, so the lines differ without colour.
LINESTYLES = ("-", "--", ":", "-.")


def depths(trace: Trace) -> dict[str, list[tuple[float, int]]]:
    """For every queue, ``[(time, copies waiting), ...]`` at each change, starting at ``(0, 0)``.

    A copy waits from the moment it is routed (or published straight to the queue, or sent
    back by a redelivery, or dead-lettered into it) until a worker is handed it. Copies in
    flight (delivered, not yet acked) do not count, like the "messages available" of an SQS
    queue or the "ready" count of a RabbitMQ queue.
    """
    roles = actor_roles(trace)
    series: dict[str, list[tuple[float, int]]] = {q: [(0.0, 0)] for q, r in roles.items() if r == "queue"}
    level = dict.fromkeys(series, 0)

    def step(q: str | None, t: float, delta: int) -> None:
        if q not in series:
            return
        level[q] += delta
        points = series[q]
        if points[-1][0] == t:
            points[-1] = (t, level[q])
        else:
            points.append((t, level[q]))

    for e in trace:
        if e.kind == "route" or (e.kind == "publish" and roles.get(e.to or "") == "queue"):
            step(e.to, e.time, +1)
        elif e.kind == "dead-letter" and e.to:
            step(e.to, e.time, +1)
        elif e.kind == "deliver":
            step(e.actor, e.time, -1)
        elif e.kind == "redeliver":
            step(e.actor, e.time, +1)
    return series


def queue_depth(
    source: Any,
    ax: Any = None,
    *,
    queues: list[str] | None = None,
    label: str | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Any:
    """Plot how many copies wait in each queue over time; return the ``Axes``.

    ``queues`` picks some queues (default: all). ``label`` prefixes the legend entries, so two
    runs can share one ``ax`` (``queue_depth(b1, ax, label="1 worker")`` then
    ``queue_depth(b3, ax, label="3 workers")``): the line with more workers drops to zero sooner.
    ``legend=False`` leaves the legend out (the lines carry their labels).
    """
    import matplotlib.pyplot as plt

    trace = as_trace(source, "eb.plot.queue_depth")
    series = depths(trace)
    if queues is not None:
        for q in queues:
            if q not in series:
                raise EvbrokerError(
                    f"queue_depth: no queue named {q!r} in this run{did_you_mean(q, series)}; "
                    f"queues are {', '.join(series) or '(none)'}"
                )
        series = {q: series[q] for q in queues}
    if ax is None:
        _, ax = plt.subplots(figsize=(style.NOTEBOOK_WIDTH, 3.0), layout="constrained")
    end = max((e.time for e in trace), default=0.0)
    already = len(ax.get_lines())
    for i, (q, points) in enumerate(series.items()):
        k = already + i
        xs = [t for t, _ in points] + [end]
        ys = [n for _, n in points] + [points[-1][1]]
        name = f"{label}: {q}" if label else q
        ax.step(
            xs,
            ys,
            where="post",
            color=style.message_colour(k),
            linestyle=LINESTYLES[k % len(LINESTYLES)],
            linewidth=2,
            label=name,
        )
    ax.set_xlabel("virtual time", fontsize=9)
    ax.set_ylabel("copies waiting", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if series and legend:
        ax.legend(fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    return ax
