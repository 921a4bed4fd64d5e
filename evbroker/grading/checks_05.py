"""Checks for exercise 05 · idempotent consumers (``solutions/05_idempotent_consumers.ipynb``).

Four questions, 10 points:

- ``05-predict-charges`` (2, predict): the charges of a consumer that dedupes by message id,
  when one worker crashes before its ack and checkout retries one publish.
- ``05-payment-handler`` (3, build): ``charge_once(msg, ctx)`` charges every order exactly
  once, whatever crashes, lost acks, slow workers and producer retries do.
- ``05-fix-shipping`` (3, debug): ``ship(msg, ctx)``, a fixed version of a shipping handler
  that prints two labels for one parcel.
- ``05-idempotent-refund`` (2, build): ``refund(msg, ctx)`` gives back what was charged, once,
  and nothing for a charge that never happened.

Each scenario is a function here; :func:`replay` rebuilds the run a failure message names, to
read its trace. The order stories come from :mod:`evbroker.grading.checks_04`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import evbroker as eb
from evbroker.errors import one_of
from evbroker.grading.authoring import call_answer, expect_callable, expect_equal, expect_number, trials
from evbroker.grading.checks_04 import (
    SEEDS,
    SETTLE_LIMIT,
    Run,
    count_times,
    expect_each_order_charged,
    fail_unless_settled,
    pick,
    replay_line,
    run_settling,
)
from evbroker.grading.outcome import CheckFailed
from evbroker.grading.registry import register

PRODUCER = "checkout"
CUSTOMERS = ("ada", "grace", "alan", "edsger")
#: Each fault schedule: (worker faults, producer faults), each struck with this chance.
CHANCE = 0.3


def _schedules(*, slow_by: float) -> dict[str, tuple[eb.Faults | None, eb.Faults | None]]:
    return {
        "no faults": (None, None),
        "producer retries": (None, eb.Faults(lose_confirm=CHANCE)),
        "crashes during processing": (eb.Faults(crash_during_process=CHANCE), None),
        "crashes before the ack": (eb.Faults(crash_before_ack=CHANCE), None),
        "lost acks": (eb.Faults(lose_ack=CHANCE), None),
        "slow workers": (eb.Faults(slow=CHANCE, slow_by=slow_by), None),
    }


# ---------------------------------------------------------------------------- 05-predict-charges


def charge_once_per_message(msg: eb.Message, ctx: eb.Context) -> None:
    """Lesson 05's first try: dedupe by message id."""
    if ctx.seen(msg.id):
        return
    ctx.effect("charge", order=msg.payload["order"], amount=msg.payload["amount"])
    ctx.remember(msg.id)


def id_dedupe_under_two_faults() -> eb.Broker:
    """The run of ``05-predict-charges``: lesson 05's checkout, four orders, two faults.

    Two workers run ``charge_once_per_message``. order-1's worker crashes after charging and
    before its ack (first delivery only); checkout never hears the broker confirm order-3's
    first publish, so it publishes order-3 again one time unit later.
    """
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="at-least-once", ack_timeout=3)
    crash = eb.Faults(crash_before_ack=lambda m: m.key == "order-1" and m.attempt == 1)
    b.worker("payments", charge_once_per_message, count=2, service_time=1, faults=crash)
    retry = eb.Faults(lose_confirm=lambda m: m.key == "order-3" and m.attempt == 1)
    for i in range(1, 5):
        order = f"order-{i}"
        b.publish(
            "payments", {"order": order, "amount": 10 * i}, at=0.5 * (i - 1), key=order, by="checkout", faults=retry
        )
    b.run()
    return b


@register("05-predict-charges", points=2, title="predict the charges")
def check_predict_charges(charges: Any) -> None:
    predicted = expect_number(charges, "charges")
    expect_equal(
        predicted,
        len(id_dedupe_under_two_faults().effects("charge")),
        what="your predicted number of charges",
        hint="Take the two faults one at a time: which message id does each delivery carry, and has the "
        "store seen that id before?",
    )


# ---------------------------------------------------------------------------- 05-payment-handler

PAYMENT_ORDERS = 8
PAYMENT_FAULTS = _schedules(slow_by=3.0)


def _amounts(seed: int, n: int) -> list[tuple[str, int]]:
    """``n`` (customer, amount) pairs drawn from the seed; with 4 customers, some order twice."""
    rng = random.Random(seed)
    return [(rng.choice(CUSTOMERS), rng.randrange(10, 100, 5)) for _ in range(n)]


def paid_orders(charge_once: Callable[[eb.Message, eb.Context], Any], seed: int, fault: str) -> Run:
    """The run of ``05-payment-handler``: lesson 05's checkout with eight orders and three workers.

    ``checkout`` publishes ``{"order", "customer", "amount"}`` with ``key=<order>`` every half
    time unit to ``payments`` (at-least-once, ``ack_timeout=3``), read by three workers running
    ``charge_once`` (1 time unit each); ``fault`` is a key of :data:`PAYMENT_FAULTS`.
    """
    worker_faults, producer_faults = pick(PAYMENT_FAULTS, fault)
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    b.queue("payments", guarantee="at-least-once", ack_timeout=3)
    b.worker("payments", charge_once, count=3, service_time=1, faults=worker_faults)
    run = Run(b)
    for i, (customer, amount) in enumerate(_amounts(seed, PAYMENT_ORDERS)):
        order = f"order-{i + 1}"
        payload = {"order": order, "customer": customer, "amount": amount}
        mid = b.publish("payments", payload, at=0.5 * i, key=order, by=PRODUCER, faults=producer_faults)
        run.place(mid, order, amount)
    run.stuck = run_settling(b)
    return run


@register("05-payment-handler", points=3, title="an idempotent payment handler")
def check_payment_handler(charge_once: Any) -> None:
    expect_callable(charge_once, "charge_once", params=2)
    for t in trials(seeds=SEEDS, fault=PAYMENT_FAULTS):
        fault = t.labels["fault"]
        try:
            run = paid_orders(charge_once, t.seed, fault)
            _fail_on_handler_error(run, "charge_once")
            fail_unless_settled(run)
            _expect_charges_name_their_order(run.broker, "charge", "charge_once")
            expect_each_order_charged(run, at_most_once=True)
        except CheckFailed as failure:
            raise failure.with_replay(replay_line("05-payment-handler", "charge_once", t.seed, fault)) from None


def _fail_on_handler_error(run: Run, name: str) -> None:
    errors = run.broker.trace.where(kind="handler-error")
    if errors:
        e = errors[0]
        raise CheckFailed(
            f"{name} raised an error on {e.msg} (delivery {e.attempt}): {e.detail.removeprefix('handler raised ')}. "
            "A handler that raises is a processing failure: the broker redelivers the message, again and again."
        )


def _expect_charges_name_their_order(b: eb.Broker, effect: str, name: str) -> None:
    for e in b.effects(effect):
        if "order" not in e.data or "amount" not in e.data:
            raise CheckFailed(
                f"{name} recorded a {effect!r} effect with {e.data}: say which order and how much, "
                f"e.g. ctx.effect({effect!r}, order=..., amount=...), using the message's payload."
            )
        if e.data["order"] != e.key:
            raise CheckFailed(
                f"{name} recorded a {effect!r} for order {e.data['order']!r} while handling {e.key} ({e.msg}); "
                "the effect should name the order of the message being handled."
            )


