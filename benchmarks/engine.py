"""Engine throughput: evbroker against SimPy and against a bare heapq loop.

The workload is the same on all three: N messages published 0.1 apart to one queue, four
workers taking them in turn (FIFO, one at a time), each message taking 1.0 to process. On
evbroker the queue is at-least-once (every delivery arms an ack timeout, every completion
sends an ack) and the trace is on, as in every lesson. The other two keep a plain log of
who processed what and when, the least a timeline could be drawn from.

    .venv/bin/python benchmarks/engine.py            # N = 20000, best of 5
    .venv/bin/python benchmarks/engine.py 100000 3   # N, repeats

Prints messages per second for each engine, the ratios evbroker/SimPy and evbroker/heapq,
and evbroker's peak memory per message (measured in a separate pass with tracemalloc, so
the timing runs are not slowed by it). Times are CPU seconds of this process.

What limits it (Python 3.11, a busy 2-core machine, ``benchmarks/engine.py 20000 5``, the
range over several runs):

    =========================================  ==============  ==================
    version                                    evbroker/SimPy  bytes per message
    =========================================  ==============  ==================
    trace as a list of nine-field tuples       1.13-1.20x      704
    trace as one flat list, nine cells a row   1.37-1.43x      501-503
    =========================================  ==============  ==================

Memory: of the 704 bytes per message, 600 were the trace: five rows per message (publish,
deliver, process, complete, ack), each a 112-byte tuple plus the list's 8-byte pointer;
the rest is the message id string (54) and the completion time (24). The trace is now one
flat list holding the nine fields of each row in turn (``Trace`` hands out the same
``TraceEvent`` objects), 72 bytes a row plus the list's spare room. That also sped the run
up: the row tuples were kept alive and scanned by Python's garbage collector (about 16% of
``run()`` went to collections), while the flat list is one object.

Speed, profiled with py-spy and cProfile: a message costs about 4.8 microseconds on
evbroker against 6.7 on SimPy. What is left is Python-level work per message: a publish
(its checks and a scheduled item), a dispatch, a delivery (a Message tuple, an ack
deadline), the handler call with its Context, a completion, its commit and its ack, about
a dozen Python calls with five trace rows written. A 3x target would need about 2.2
microseconds per message, which this design (a Python call per hop) does not reach.
Measured and left out: pausing automatic garbage collection during ``run()`` (it took
1.14x to 1.24x while rows were tuples, but the flat trace measures 1.40-1.43x with or
without it), ``gc.freeze()`` around the run (no better than pausing), Context lists made
only at their first entry (no change within the noise). At N = 100000
the ratio swings by 0.3 from one run to the next on this machine: compare at 20000, best
of 5.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable

import simpy

import evbroker as eb

GAP = 0.1  # time between two publishes
SERVICE = 1.0  # processing time of one message
WORKERS = 4


def run_evbroker(n: int) -> int:
    """The workload on evbroker; returns how many messages were processed."""
    b = eb.Broker(seed=0)
    b.queue("orders", guarantee="at-least-once", ack_timeout=5.0)
    b.worker("orders", _noop, count=WORKERS, service_time=SERVICE)
    for i in range(n):
        b.publish("orders", i, at=i * GAP)
    b.run()
    return b.stats("orders")["processed"]


def _noop(msg: eb.Message, ctx: eb.Context) -> None:
    pass


def run_simpy(n: int) -> int:
    """The workload on SimPy: a ``simpy.Store`` read by four worker processes."""
    env = simpy.Environment()
    store = simpy.Store(env)
    log: list[tuple] = []

    def producer():
        for i in range(n):
            yield store.put(i)
            log.append((env.now, "publish", i))
            yield env.timeout(GAP)

    def worker(name: str):
        while True:
            item = yield store.get()
            log.append((env.now, "deliver", name, item))
            yield env.timeout(SERVICE)
            log.append((env.now, "complete", name, item))

    env.process(producer())
    for k in range(WORKERS):
        env.process(worker(f"w{k + 1}"))
    env.run()
    return sum(1 for e in log if e[1] == "complete")


def run_heapq(n: int) -> int:
    """The workload as a bare event loop: a heap of (time, seq, kind, item), a deque, a free list."""
    heap: list[tuple] = []
    seq = itertools.count()
    for i in range(n):
        heap.append((i * GAP, next(seq), "publish", i))
    heapq.heapify(heap)
    ready: deque = deque()
    free = deque(range(WORKERS))
    log: list[tuple] = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        now, _, kind, item = pop(heap)
        if kind == "publish":
            log.append((now, "publish", item))
            ready.append(item)
        else:
            w, msg = item
            log.append((now, "complete", w, msg))
            free.append(w)
        while ready and free:
            msg, w = ready.popleft(), free.popleft()
            log.append((now, "deliver", w, msg))
            push(heap, (now + SERVICE, next(seq), "complete", (w, msg)))
    return sum(1 for e in log if e[1] == "complete")


ENGINES: dict[str, Callable[[int], int]] = {"evbroker": run_evbroker, "simpy": run_simpy, "heapq": run_heapq}


def best_rates(n: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` messages per second for each engine.

    The engines take turns within each round, so a burst of load elsewhere on the machine
    hits all of them alike, and each is timed by this process's CPU clock
    (``time.process_time``), which other processes do not advance. The best round is the
    least disturbed one.
    """
    best = dict.fromkeys(ENGINES, float("inf"))
    for _ in range(repeats):
        for name, run in ENGINES.items():
            gc.collect()
            start = time.process_time()
            done = run(n)
            best[name] = min(best[name], time.process_time() - start)
            if done != n:
                raise SystemExit(f"{name} processed {done} of {n} messages")
    return {name: n / seconds for name, seconds in best.items()}


def peak_bytes_per_message(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    run_evbroker(n)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / n


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 20_000
    repeats = int(argv[2]) if len(argv) > 2 else 5
    print(f"workload: {n} messages, {GAP} apart, {WORKERS} workers, service time {SERVICE}; best of {repeats}")
    rates = best_rates(n, repeats)
    for name, rate in rates.items():
        print(f"  {name:<9} {rate:>12,.0f} messages/s")
    print(f"evbroker / SimPy : {rates['evbroker'] / rates['simpy']:5.2f}x   (target >= 3)")
    print(f"evbroker / heapq : {rates['evbroker'] / rates['heapq']:5.2f}x   (target >= 0.33)")
    print(f"evbroker peak memory: {peak_bytes_per_message(n):,.0f} bytes per message (trace on)")


if __name__ == "__main__":
    main(sys.argv)
