"""Workflow cost: the order workflow in both styles at 100, 1,000 and 10,000 orders.

Both styles run the same orders (``run_orders``, no failure, no faults). A style whose cost
grows linearly with the number of orders keeps a flat time per order; one that grows with
the square of it (an orchestrator re-reading the whole log on every message) shows the time
per order growing tenfold with every tenfold step.

    .venv/bin/python benchmarks/workflows.py                 # 100, 1000, 10000 orders
    .venv/bin/python benchmarks/workflows.py 100 1000        # chosen sizes

Prints, for each size and style, CPU seconds and microseconds per order; then, per style,
how the time per order grew from the smallest size to the largest (1.0x is linear), and the
ratio orchestration / choreography at each size.
"""

from __future__ import annotations

import sys
import time
import warnings

from evbroker.workflows import run_orders

STYLES = ("orchestration", "choreography")


def timed(style: str, orders: int) -> float:
    """CPU seconds one run of ``orders`` orders takes in ``style``."""
    start = time.process_time()
    run = run_orders(style, orders=orders)
    elapsed = time.process_time() - start
    done = sum(1 for outcome in run.outcomes.values() if outcome == "completed")
    if done != orders:
        raise SystemExit(f"{style} with {orders} orders completed only {done}")
    return elapsed


def main(sizes: list[int]) -> None:
    warnings.simplefilter("error")
    seconds: dict[tuple[str, int], float] = {}
    print(f"{'orders':>8}  {'style':<14}{'seconds':>9}{'us/order':>11}")
    for n in sizes:
        for style in STYLES:
            seconds[style, n] = timed(style, n)
            print(f"{n:>8,}  {style:<14}{seconds[style, n]:>9.2f}{seconds[style, n] / n * 1e6:>11,.0f}")
    small, large = sizes[0], sizes[-1]
    print()
    for style in STYLES:
        growth = (seconds[style, large] / large) / (seconds[style, small] / small)
        print(f"{style:<14} time per order, {large:,} vs {small:,} orders: {growth:5.2f}x   (linear: about 1x)")
    for n in sizes:
        ratio = seconds["orchestration", n] / seconds["choreography", n]
        print(f"orchestration / choreography at {n:>6,} orders: {ratio:5.2f}x")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1_000, 10_000])
