"""The space of fault schedules an ``eb.explore`` search ran, as a grid picture.

``schedule_grid(res)`` draws every schedule of up to two faults as one cell: the fault on the
row, the fault on the column (the diagonal holds the one-fault schedules), green where the
invariant held, vermillion (and crossed) where it broke, blank where the two faults are not a
schedule of their own: they cannot both happen (a lost delivery is never also processed), or
the second only exists after another fault, or the run is the very same as a schedule already
drawn. (``eb.widgets.ScheduleExplorer`` walks the violating ones on the timeline.)
"""

from __future__ import annotations

from typing import Any

from evbroker.core.explore import Exploration, FaultPoint
from evbroker.errors import EvbrokerError
from evbroker.views import style

HOLDS = "#009E73"  # bluish green
BREAKS = style.BAD
SHORT = {
    "lose_delivery": "delivery lost",
    "crash_before_process": "crash before work",
    "slow": "slow",
    "crash_during_process": "crash mid-work",
    "crash_before_ack": "crash before ack",
    "lose_ack": "ack lost",
    "lose_confirm": "confirm lost",
}


def point_label(p: FaultPoint) -> str:
    """``"m2·1 ack lost"``: message, delivery and fault, short enough for a tick label."""
    if p.kind == "lose_confirm":
        return f"{p.msg} publish: {SHORT[p.kind]}"
    return f"{p.msg}·{p.attempt} {SHORT[p.kind]}"


def _points(res: Exploration) -> list[FaultPoint]:
    seen: dict[FaultPoint, None] = {}
    for o in res.outcomes:
        for p in o.faults:
            seen.setdefault(p, None)

    def order(p: FaultPoint) -> tuple:
        number = int(p.msg[1:]) if p.msg[1:].isdigit() else 0
        return (number, p.attempt, p.kind != "lose_confirm", list(SHORT).index(p.kind))

    return sorted(seen, key=order)


def schedule_grid(res: Exploration, ax: Any = None, *, title: str | None = None, legend: bool = True) -> Any:
    """Draw the schedules of up to two faults of ``res`` as a grid coloured by outcome; returns the Axes."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if not isinstance(res, Exploration):
        raise EvbrokerError(f"schedule_grid needs the result of eb.explore(...) (got {type(res).__name__})")
    points = _points(res)
    n = len(points)
    index = {p: i for i, p in enumerate(points)}
    cells = np.full((max(n, 1), max(n, 1)), np.nan)
    for o in res.outcomes:
        if len(o.faults) == 1:
            i = j = index[o.faults[0]]
        elif len(o.faults) == 2:
            i, j = sorted((index[o.faults[0]], index[o.faults[1]]), reverse=True)
        else:
            continue
        cells[i, j] = 1.0 if o.ok else 0.0
    if ax is None:
        side = min(10.0, 2.5 + 0.22 * n)
        _, ax = plt.subplots(figsize=(side + 1.5, side), layout="constrained")
    ax.imshow(cells, cmap=ListedColormap([BREAKS, HOLDS]), vmin=0, vmax=1, interpolation="nearest")
    bad = np.argwhere(cells == 0.0)
    if len(bad):
        ax.scatter(bad[:, 1], bad[:, 0], marker="x", s=12 if n > 20 else 30, color="white", linewidths=0.8)
    labels = [point_label(p) for p in points]
    size = 6 if n > 24 else 8
    ax.set_xticks(range(n), labels, rotation=90, fontsize=size)
    ax.set_yticks(range(n), labels, fontsize=size)
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    free = next((o for o in res.outcomes if not o.faults), None)
    base = "the fault-free run holds" if free is None or free.ok else "even the fault-free run breaks"
    broken = sum(not o.ok for o in res.outcomes)
    ax.set_title(
        title or f"{res.schedules} schedules, up to {min(res.max_faults, 2)} faults: {broken} break ({base})",
        loc="left",
        fontsize=10,
    )
    if not legend:
        return ax
    ax.legend(
        handles=[
            Patch(color=HOLDS, label="invariant holds"),
            Patch(color=BREAKS, label="invariant breaks"),
            Patch(facecolor="white", edgecolor=style.FAINT, label="not a schedule of its own"),
        ],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    return ax
