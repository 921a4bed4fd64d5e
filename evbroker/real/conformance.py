"""Does the simulator tell the truth? The payment scenario on both brokers, side by side.

:func:`payments` sets up the scenario of :func:`evbroker.scenarios.payments` with the very same
set-up code (:func:`evbroker.scenarios.set_up_payments`: four orders half a time unit apart,
two workers taking 1 each, ``ack_timeout`` 3, the fault striking one order on its first
delivery) on any broker with the kit's set-up API, and runs it.
:func:`table` runs every fault under every guarantee on the simulator and on a RedisBroker
and compares what happened to the money: the verdict (ok / lost / charged twice) and the
number of charges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evbroker.core.broker import GUARANTEES, Broker
from evbroker.errors import one_of
from evbroker.scenarios import FAULTS, payment_strikes, payment_summary, set_up_payments

#: Cells where Redis may legitimately differ from the simulator, with why; empty when none does.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {}


def payments(
    b: Any,
    guarantee: str = "at-least-once",
    fault: str = "none",
    seed: int = 0,
    orders: int = 4,
    *,
    workers: int = 2,
    ack_timeout: float = 3.0,
    handler: Callable | None = None,
) -> Any:
    """Set up and run the payment scenario on ``b`` (an ``eb.Broker`` or a ``RedisBroker``); return ``b``."""
    if guarantee not in GUARANTEES:
        raise one_of("payments: guarantee", guarantee, GUARANTEES)
    if fault not in FAULTS:
        raise one_of("payments: fault", fault, FAULTS)
    set_up_payments(
        b,
        guarantee,
        fault,
        payment_strikes(seed, orders),
        orders=orders,
        workers=workers,
        ack_timeout=ack_timeout,
        handler=handler,
    )
    b.run()
    return b


def verdict(b: Any) -> str:
    """What happened to the money: "lost" (an order never charged), "charged twice", or "ok"."""
    s = payment_summary(b)
    if s["never_charged"]:
        return "lost"
    if s["charged_twice"]:
        return "charged twice"
    return "ok"


def outcome(b: Any) -> tuple[str, int]:
    """``(verdict, charges)`` of a finished payment run."""
    return verdict(b), len(b.effects("charge"))


def table(
    make_real: Callable[[], Any] | None = None,
    guarantees: tuple[str, ...] = GUARANTEES,
    faults: tuple[str, ...] = FAULTS,
) -> list[dict[str, Any]]:
    """One row per (guarantee, fault): the outcome on the simulator and on Redis, and whether they agree.

    ``make_real()`` returns a fresh real broker (default: ``RedisBroker(time_unit=0.05)``
    sharing one embedded server for the whole table); each is closed after its run.
    """
    own = None
    if make_real is None:
        from evbroker.real.broker import RedisBroker

        own = RedisBroker(time_unit=0.05)  # one embedded server; each run gets its own key prefix

        def make_real() -> Any:
            return RedisBroker(url=own.server_url, time_unit=0.05)

    rows = []
    try:
        for g in guarantees:
            for f in faults:
                sim = outcome(payments(Broker(seed=0), g, f))
                with make_real() as rb:
                    real = outcome(payments(rb, g, f))
                rows.append(
                    {
                        "guarantee": g,
                        "fault": f,
                        "simulator": sim[0],
                        "sim charges": sim[1],
                        "redis": real[0],
                        "redis charges": real[1],
                        "same": sim == real,
                    }
                )
    finally:
        if own is not None:
            own.close()
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The conformance table as plain text (counts and verdicts only: stable from run to run)."""
    cols = ["guarantee", "fault", "simulator", "sim charges", "redis", "redis charges", "same"]
    cells = [cols] + [[("yes" if r[c] else "NO") if c == "same" else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
