"""Widget latency: from a control change to a finished redraw, for each explorer.

For each explorer the benchmark sets one control at a time (``w.fault.value = ...``) through
a fixed sequence of settings and times the assignment: the explorer's observer recomputes the
run, redraws its figure and encodes the PNG the notebook shows, all before the assignment
returns, so the time is "click to picture ready" (the canvas drawn and encoded).

Beside each explorer runs the naive way to build the same thing: ``ipywidgets.interactive``
over a function that runs the same scenario, makes a new pyplot figure, draws the same plots
with ``eb.plot`` and saves it the way the inline backend shows a figure (PNG, tight bounding
box), then closes it.

    .venv/bin/python benchmarks/widgets.py          # each sequence 3 times
    .venv/bin/python benchmarks/widgets.py 5        # repeats

Prints, per explorer, the median and 95th percentile wall-clock milliseconds per update (and
the median CPU milliseconds of this process, which other load on the machine disturbs less),
the same for the naive version, and the ratio of the medians. Target: median <= 150 ms.
The workflow explorer keeps runs it has computed (runs are deterministic), so settings seen
again are cheaper: the first pass is reported apart as "first visit".
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt

import evbroker as eb
from evbroker import scenarios as sc
from evbroker.views.queue_explorer import INTERVAL
from evbroker.views.workflow_explorer import FAULTS_ON

TARGET_MS = 150.0

# One control change per step: (control name, value).
DELIVERY_STEPS = [
    ("fault", "crash before ack"),
    ("guarantee", "at-most-once"),
    ("guarantee", "exactly-once"),
    ("fault", "lost ack"),
    ("guarantee", "at-least-once"),
    ("fault", "slow consumer"),
    ("seed", 1),
    ("fault", "producer retry"),
    ("guarantee", "exactly-once"),
    ("fault", "crash before processing"),
    ("guarantee", "at-most-once"),
    ("seed", 0),
]
QUEUE_STEPS = [
    ("mode", "queue"),
    ("workers", 3),
    ("messages", 8),
    ("mode", "pub/sub"),
    ("workers", 2),
    ("mode", "stacked"),
    ("messages", 4),
    ("workers", 3),
    ("mode", "queue"),
    ("workers", 2),
]
WORKFLOW_STEPS = [
    ("style", "choreography"),
    ("failure", "payment declined"),
    ("style", "orchestration"),
    ("failure", "shipping unavailable"),
    ("faults", True),
    ("style", "choreography"),
    ("seed", 3),
    ("faults", False),
    ("failure", "none"),
    ("style", "orchestration"),
    ("seed", 0),
]


def timed(step: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def drive(explorer: Any, steps: Sequence[tuple[str, Any]], repeats: int) -> tuple[list, list, list]:
    """Walk the steps ``repeats`` times; (all wall times, all CPU times, first-pass wall times)."""
    walls, cpus, first = [], [], []
    for r in range(repeats):
        for name, value in steps:
            control = getattr(explorer, name)
            before = explorer.updates
            wall, cpu = timed(lambda c=control, v=value: setattr(c, "value", v))
            if explorer.error is not None:
                raise SystemExit(f"{type(explorer).__name__} failed on {name}={value!r}: {explorer.error}")
            if explorer.updates == before:
                continue  # the value was already set: nothing to time
            walls.append(wall)
            cpus.append(cpu)
            if r == 0:
                first.append(wall)
    return walls, cpus, first


def naive(function: Callable[..., None], options: dict[str, Any], steps: Sequence, repeats: int) -> tuple[list, list]:
    """The same steps through ``ipywidgets.interactive`` over a rebuild-everything function."""
    quiet = contextlib.ExitStack()
    # without a kernel, interactive's clear_output writes terminal escapes: keep them out
    quiet.enter_context(contextlib.redirect_stdout(io.StringIO()))
    quiet.enter_context(contextlib.redirect_stderr(io.StringIO()))
    with quiet:
        w = widgets.interactive(function, **options)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    walls, cpus = [], []
    for _ in range(repeats):
        for name, value in steps:
            control = controls[name]
            if control.value == value:
                continue
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                wall, cpu = timed(lambda c=control, v=value: setattr(c, "value", v))
            walls.append(wall)
            cpus.append(cpu)
    w.close()
    return walls, cpus


def _show(fig: Any) -> None:
    """What the inline backend does with a figure at the end of a cell: PNG, tight, then close."""
    fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    plt.close(fig)


def naive_delivery(guarantee: str, fault: str, seed: int) -> None:
    b = sc.payments(guarantee, fault, seed)
    sc.payment_summary(b)
    ax = eb.plot.timeline(b, title=f"{guarantee} \u00b7 {fault} \u00b7 seed {seed}")
    _show(ax.figure)


def naive_queue(mode: str, workers: int, messages: int) -> None:
    b = sc.queue_demo(mode, workers, messages, interval=INTERVAL)
    fig, axes = plt.subplot_mosaic([["t", "t"], ["c", "d"]], figsize=(10, 7), layout="constrained")
    eb.plot.timeline(b, ax=axes["t"])
    counts: dict[str, int] = {}
    for e in b.trace.where(kind="complete"):
        counts[e.actor] = counts.get(e.actor, 0) + 1
    axes["c"].barh(list(counts), list(counts.values()))
    eb.plot.queue_depth(b, axes["d"])
    _show(fig)


def naive_workflow(style: str, failure: str, faults: bool, seed: int) -> None:
    run = eb.workflows.run_orders(
        style=style, failure=failure, orders=2, faults=FAULTS_ON if faults else None, seed=seed
    )
    other = "choreography" if style == "orchestration" else "orchestration"
    eb.workflows.run_orders(style=other, failure=failure, orders=2, faults=FAULTS_ON if faults else None, seed=seed)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9), height_ratios=[2, 1], layout="constrained")
    eb.plot.timeline(run, ax=top)
    eb.plot.flow(run, ax=bottom)
    run.table()
    _show(fig)


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def main(repeats: int = 3) -> None:
    cases = [
        (
            "DeliveryExplorer",
            eb.widgets.DeliveryExplorer,
            DELIVERY_STEPS,
            naive_delivery,
            {"guarantee": list(eb.GUARANTEES), "fault": list(sc.FAULTS), "seed": (0, 20)},
        ),
        (
            "QueueExplorer",
            eb.widgets.QueueExplorer,
            QUEUE_STEPS,
            naive_queue,
            {"mode": list(sc.QUEUE_MODES), "workers": (1, 4), "messages": (1, 20, 1)},
        ),
        (
            "WorkflowExplorer",
            eb.widgets.WorkflowExplorer,
            WORKFLOW_STEPS,
            naive_workflow,
            {
                "style": list(eb.workflows.STYLES),
                "failure": list(eb.workflows.FAILURES),
                "faults": False,
                "seed": (0, 20),
            },
        ),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"widget latency: control change -> redraw finished (PNG encoded); {repeats} passes; load {load:.1f}")
    print(
        f"{'':18} {'updates':>7} {'median':>8} {'p95':>8} {'cpu med':>8} {'1st visit':>9}   "
        f"{'naive med':>9} {'naive p95':>9} {'naive cpu':>9}  {'speed-up':>8}"
    )
    verdicts = []
    for name, make, steps, naive_fn, options in cases:
        explorer = make()
        walls, cpus, first = drive(explorer, steps, repeats)
        explorer.close()
        n_walls, n_cpus = naive(naive_fn, options, steps, repeats)
        med, p95 = summary(walls)
        n_med, n_p95 = summary(n_walls)
        print(
            f"{name:18} {len(walls):7d} {med:8.1f} {p95:8.1f} {statistics.median(cpus):8.1f} "
            f"{statistics.median(first):9.1f}   {n_med:9.1f} {n_p95:9.1f} {statistics.median(n_cpus):9.1f}  "
            f"{n_med / med:7.1f}x"
        )
        verdicts.append((name, med))
    print("(milliseconds; median and p95 are wall clock, cpu is this process's CPU time)")
    for name, med in verdicts:
        status = "meets" if med <= TARGET_MS else "MISSES"
        print(f"{name}: median {med:.0f} ms {status} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
