"""Checks for exercises 06 · retries and dead letters (``solutions/06_retries_and_dead_letters.ipynb``)
and 08 · backpressure (``solutions/08_backpressure.ipynb``).

Four questions, 10 points; the last two are asked in exercise 08 and keep their ``06-`` ids:

- ``06-fix-poison`` (3, debug): ``declare_payments(b)`` declares a payments queue that a
  poison order can no longer jam: it goes to ``payments.dlq`` after a few tries, while good
  orders survive crashes and lost deliveries.
- ``06-retry-backoff`` (3, build): ``declare_retrying_payments(b)`` rides out card gateway
  outages of up to 8 time units with at most 4 tries per order and no wait longer than 8.
- ``06-predict-depth`` (2, predict): how many orders wait in the queue at t = 5.1 when they
  arrive faster than three workers handle them.
- ``06-fewest-workers`` (2, build): ``fewest_workers(orders_per_unit, service_time)``, the
  smallest number of workers that keeps a queue from growing.

Each scenario is a function here, so a notebook cell can run the very simulation a check
compares with; :func:`replay` rebuilds the run a failure names, and :func:`rush` the queue of
``06-fewest-workers``.

These checks do not search fault schedules (as the checks of exercises 04 and 05 do).
``06-fix-poison``'s fault schedules are already the worst placements of up to two faults: the
first two deliveries of three good orders fail, for each kind of fault, and a queue's answer to
a failed delivery depends only on how many deliveries of that copy failed before (the delivery
limit), so no other placement can set aside a good order these spare. ``06-retry-backoff``'s
trouble is a gateway down for a stretch of time, not a fault placed on a delivery, so there is
no schedule of faults to search; its outages are the longest and the double one the task allows.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import evbroker as eb
from evbroker.errors import EvbrokerError, one_of
from evbroker.grading.authoring import (
    call_answer,
    count_times,
    expect,
    expect_callable,
    expect_equal,
    expect_number,
    pick,
)
from evbroker.grading.checks_02 import replay_hint
from evbroker.grading.checks_04 import order_story
from evbroker.grading.outcome import CheckFailed
from evbroker.grading.registry import register

SEEDS = range(20)
QUEUE = "payments"
DLQ = "payments.dlq"
SUPPORT = "support"
PRODUCER = "checkout"
#: A broker of these checks gives up on a copy after this many deliveries (a jammed queue).
SETTLE_LIMIT = 25


def charge(msg: eb.Message, ctx: eb.Context) -> None:
    """Lesson 06's payments worker: a broken amount makes it raise, every time (a poison message)."""
    amount = msg.payload["amount"]
    if not isinstance(amount, (int, float)):
        raise ValueError(f"amount must be a number, got {amount!r}")
    ctx.effect("charge", order=msg.payload["order"], amount=amount)


def open_ticket(msg: eb.Message, ctx: eb.Context) -> None:
    """Support reads the dead letter queue and opens a ticket for each order in it."""
    ctx.effect("ticket", order=msg.payload["order"])


class Orders:
    """A run of a check: the broker, which message carries which order, and which orders are poison."""

    def __init__(self, broker: eb.Broker) -> None:
        self.broker = broker
        self.placed: dict[str, str] = {}  # message id -> order
        self.poison: set[str] = set()
        self.published: dict[str, float] = {}  # order -> publish time
        self.stuck = ""

    def place(self, order: str, amount: Any, at: float) -> None:
        mid = self.broker.publish(QUEUE, {"order": order, "amount": amount}, at=at, key=order, by=PRODUCER)
        self.placed[mid] = order
        self.published[order] = at
        if not isinstance(amount, (int, float)):
            self.poison.add(order)

    def mid(self, order: str) -> str:
        return next(m for m, o in self.placed.items() if o == order)

    def story(self, order: str) -> str:
        return order_story(self.broker, [self.mid(order)])


def _declare(declare: Callable[[eb.Broker], Any], name: str, seed: int) -> eb.Broker:
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    call_answer(declare, b, what=f"{name}(b)")
    missing = [q for q in (DLQ, QUEUE) if q not in b.queues]
    expect(
        not missing,
        f"{name}(b) should declare the queues {DLQ!r} and {QUEUE!r}; there is no {', '.join(map(repr, missing))} "
        f"(queues: {', '.join(map(repr, b.queues)) or 'none'}).",
    )
    expect(
        not b.workers,
        f"{name}(b) should only declare the queues: the check starts the workers itself "
        f"(yours started {', '.join(b.workers)}).",
    )
    return b


def _run(run: Orders) -> None:
    try:
        run.broker.run()
    except EvbrokerError as exc:
        run.stuck = str(exc)


def _deliveries(run: Orders) -> Counter:
    """How many times each order was handed to a payments worker."""
    return Counter(run.placed[e.msg] for e in run.broker.trace.where(kind="deliver") if e.queue == QUEUE)


def _judge_jam(run: Orders) -> None:
    """Fail if the run stopped because one copy kept failing: a jammed queue, in the learner's terms."""
    if not run.stuck:
        return
    tries = _deliveries(run)
    order, n = tries.most_common(1)[0]
    charged = {e.key for e in run.broker.effects("charge")}
    waiting = [o for o in run.published if o not in charged and o != order]
    behind = f" Meanwhile {', '.join(waiting)} never got charged." if waiting else ""
    raise CheckFailed(
        f"{order} jammed the queue: it was handed to a worker {n} times and failed every time, and nothing "
        f"ever stopped it.{behind}\n" + run.story(order)
    )


def _judge_outcomes(run: Orders, *, max_tries: int) -> None:
    """Good orders charged once and never set aside; poison ones in the DLQ with one ticket; few tries."""
    b = run.broker
    charges = Counter(e.key for e in b.effects("charge"))
    tickets = Counter(e.key for e in b.effects("ticket"))
    dead = {m.key for m in b.dead_letters(QUEUE)}
    tries = _deliveries(run)
    for order in run.published:
        story = "\n" + run.story(order)
        if order in run.poison:
            if b.trace.where(kind="lost", msg=run.mid(order)):
                raise CheckFailed(
                    f"{order}, whose amount is broken, was dropped for good: nobody will ever look at it and fix "
                    "it." + story
                )
            if order not in dead:
                raise CheckFailed(f"{order}, whose amount is broken, never left the payments queue." + story)
            if tickets[order] != 1:
                where = (
                    f"it was set aside, but not in {DLQ}, where support looks"
                    if not tickets[order]
                    else f"support opened {count_times(tickets[order])} tickets for it"
                )
                raise CheckFailed(f"{order}, whose amount is broken: {where}." + story)
        else:
            if order in dead:
                n = tries[order]
                raise CheckFailed(
                    f"{order} is a good order, yet it was set aside in dead letters after {n} "
                    f"deliver{'y' if n == 1 else 'ies'}: what failed it would have passed." + story
                )
            if charges[order] != 1:
                raise CheckFailed(f"{order} was charged {count_times(charges[order])}." + story)
            if tickets[order]:
                raise CheckFailed(f"Support opened a ticket for {order}, a good order." + story)
        if tries[order] > max_tries:
            raise CheckFailed(
                f"{order} was handed to a worker {tries[order]} times; the team allows at most {max_tries} tries "
                "per order." + story
            )


# ---------------------------------------------------------------------------- 06-fix-poison

POISON_ORDERS = 8
POISON_MAX_TRIES = 5


def _unlucky(seed: int) -> tuple[set[str], set[str]]:
    """The poison orders and the good orders that the faults strike, for one seed."""
    rng = random.Random(seed)
    orders = [f"order-{i}" for i in range(1, POISON_ORDERS + 1)]
    poison = set(rng.sample(orders, rng.choice([1, 2])))
    good = [o for o in orders if o not in poison]
    return poison, set(rng.sample(good, 3))


def _poison_faults(seed: int) -> dict[str, eb.Faults | None]:
    _, hit = _unlucky(seed)
    return {
        "no faults": None,
        "a crash as an order arrives": eb.Faults(crash_before_process=lambda m: m.key in hit and m.attempt == 1),
        "two crashes in a row": eb.Faults(crash_before_process=lambda m: m.key in hit and m.attempt <= 2),
        "crashes halfway through": eb.Faults(crash_during_process=lambda m: m.key in hit and m.attempt <= 2),
        "lost deliveries": eb.Faults(lose_delivery=lambda m: m.key in hit and m.attempt <= 2),
    }


POISON_FAULTS = tuple(_poison_faults(0))


def poisoned_orders(declare_payments: Callable[[eb.Broker], Any], seed: int, fault: str) -> Orders:
    """The run of ``06-fix-poison``: the learner's queues; two ``charge`` workers and ``support``
    on the DLQ; eight orders half a time unit apart, one or two with a broken amount."""
    faults = pick(_poison_faults(seed), fault, "fault")
    b = _declare(declare_payments, "declare_payments", seed)
    b.worker(QUEUE, charge, count=2, faults=faults)
    b.worker(DLQ, open_ticket, name=SUPPORT)
    poison, _ = _unlucky(seed)
    rng = random.Random(seed)
    run = Orders(b)
    for i in range(1, POISON_ORDERS + 1):
        order = f"order-{i}"
        amount = rng.choice(["ten", None, "12,50"]) if order in poison else rng.randrange(10, 100, 5)
        run.place(order, amount, 0.5 * (i - 1))
    _run(run)
    return run


@register("06-fix-poison", points=3, title="a queue a poison order cannot jam")
def check_fix_poison(declare_payments: Any) -> None:
    expect_callable(declare_payments, "declare_payments", params=1)
    for fault in POISON_FAULTS:
        for seed in SEEDS:
            try:
                run = poisoned_orders(declare_payments, seed, fault)
                _judge_jam(run)
                _judge_outcomes(run, max_tries=POISON_MAX_TRIES)
            except CheckFailed as failure:
                raise failure.with_replay(
                    replay_hint("06-fix-poison", "declare_payments", seed, "fault", fault)
                ) from None


# ---------------------------------------------------------------------------- 06-retry-backoff

BACKOFF_ORDERS = 8
BACKOFF_MAX_TRIES = 4
#: The longest a failed order may wait before it goes back in line.
LONGEST_WAIT = 8.0
#: When the card gateway is down: [start, end) windows.
OUTAGES: dict[str, tuple[tuple[float, float], ...]] = {
    "gateway down from t = 0 to t = 6": ((0.0, 6.0),),
    "gateway down from t = 2 to t = 10": ((2.0, 10.0),),
    "gateway down twice: t = 1 to 4 and t = 6 to 9": ((1.0, 4.0), (6.0, 9.0)),
}


def gateway_charge(outages: tuple[tuple[float, float], ...]) -> Callable[[eb.Message, eb.Context], None]:
    """``charge``, through a card gateway that is down during ``outages``."""

    def charge_via_gateway(msg: eb.Message, ctx: eb.Context) -> None:
        if any(start <= ctx.now < end for start, end in outages):
            raise ConnectionError("card gateway unavailable")
        charge(msg, ctx)

    return charge_via_gateway


def retried_at_once() -> eb.Broker:
    """``order-1`` during a gateway outage from t = 0 to t = 6, on a queue that retries a failed
    order at once and gives up after 4 tries (the start of question ``06-retry-backoff``)."""
    b = eb.Broker(seed=0)
    b.queue(DLQ)
    b.queue(QUEUE, max_deliveries=BACKOFF_MAX_TRIES, dead_letter=DLQ)
    b.worker(QUEUE, gateway_charge(((0.0, 6.0),)), count=2)
    b.worker(DLQ, open_ticket, name=SUPPORT)
    b.publish(QUEUE, {"order": "order-1", "amount": 25}, key="order-1", by=PRODUCER)
    b.run()
    return b


def gateway_orders(declare_retrying_payments: Callable[[eb.Broker], Any], seed: int, outage: str) -> Orders:
    """The run of ``06-retry-backoff``: the learner's queues; two workers charging through a gateway
    that is down for a while; support on the DLQ; eight orders, one of them poison."""
    windows = pick(OUTAGES, outage, "outage")
    b = _declare(declare_retrying_payments, "declare_retrying_payments", seed)
    b.worker(QUEUE, gateway_charge(windows), count=2)
    b.worker(DLQ, open_ticket, name=SUPPORT)
    rng = random.Random(seed)
    poison = rng.randrange(BACKOFF_ORDERS)
    run = Orders(b)
    at = 0.0
    for i in range(BACKOFF_ORDERS):
        run.place(f"order-{i + 1}", "ten" if i == poison else rng.randrange(10, 100, 5), at)
        at += rng.choice([0.25, 0.5, 1.0])
    _run(run)
    return run


@register("06-retry-backoff", points=3, title="retries that ride out an outage")
def check_retry_backoff(declare_retrying_payments: Any) -> None:
    expect_callable(declare_retrying_payments, "declare_retrying_payments", params=1)
    for outage in OUTAGES:
        for seed in SEEDS:
            try:
                run = gateway_orders(declare_retrying_payments, seed, outage)
                _judge_jam(run)
                _judge_waits(run)
                _judge_outcomes(run, max_tries=BACKOFF_MAX_TRIES)
            except CheckFailed as failure:
                raise failure.with_replay(
                    replay_hint("06-retry-backoff", "declare_retrying_payments", seed, "outage", outage)
                ) from None


def _judge_waits(run: Orders) -> None:
    b = run.broker
    failed_at: dict[tuple[str, int], float] = {}
    for e in b.trace:
        if e.queue != QUEUE or e.msg not in run.placed:
            continue
        if e.kind in ("handler-error", "timeout"):
            failed_at[(e.msg, e.attempt)] = e.time
        elif e.kind == "redeliver":
            since = failed_at.get((e.msg, e.attempt - 1))
            if since is not None and e.time - since > LONGEST_WAIT + 1e-9:
                order = run.placed[e.msg]
                raise CheckFailed(
                    f"{order} waited {e.time - since:g} time units after its try {e.attempt - 1} failed (t={since:g}) "
                    f"before it went back in line (t={e.time:g}); the customer is waiting, and the team allows at "
                    f"most {LONGEST_WAIT:g}.\n" + run.story(order)
                )


# ---------------------------------------------------------------------------- 06-predict-depth

DEPTH_AT = 5.1


def arrivals_faster_than_workers() -> eb.Broker:
    """The run of ``06-predict-depth``: 24 orders every 0.25 from t = 0, three workers at 1 each."""
    b = eb.Broker(seed=0)
    b.queue("payments")
    b.worker("payments", charge, count=3, service_time=1.0)
    for i in range(24):
        b.publish("payments", {"order": f"order-{i + 1}", "amount": 10}, at=0.25 * i, by=PRODUCER)
    b.run()
    return b


def waiting_at(trace: eb.Trace, queue: str, t: float) -> int:
    """How many copies wait in ``queue`` (not yet handed to a worker) at time ``t``, read from the trace."""
    level = 0
    for e in trace:
        if e.time > t:
            break
        if e.queue != queue and e.to != queue:
            continue
        if e.kind == "publish" and e.to == queue:
            level += 1
        elif e.kind in ("route", "redeliver") or (e.kind == "dead-letter" and e.to == queue):
            level += 1
        elif e.kind == "deliver" and e.actor == queue:
            level -= 1
    return level


@register("06-predict-depth", points=2, title="predict the queue depth", exercise="08")
def check_predict_depth(waiting: Any) -> None:
    predicted = expect_number(waiting, "waiting")
    expect_equal(
        predicted,
        waiting_at(arrivals_faster_than_workers().trace, "payments", DEPTH_AT),
        what=f"your number of orders waiting at t = {DEPTH_AT:g}",
        hint="Count the orders that have arrived by then, and the orders the workers have taken by then (each "
        "worker takes a new one as soon as it finishes the last); the rest are waiting.",
    )


# ---------------------------------------------------------------------------- 06-fewest-workers

#: How long each load lasts; a queue that grows by a steady rate has grown visibly by then.
RUSH_LENGTH = 30.0
#: A queue with more orders waiting than this when arrivals stop is growing, not bounded.
BOUNDED = 2
RATES = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
SERVICE_TIMES = (0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5)


def loads(seed: int) -> tuple[float, float]:
    """One (orders per time unit, service time) pair per seed, never close to a whole number of workers."""
    rng = random.Random(seed)
    while True:
        rate, service_time = rng.choice(RATES), rng.choice(SERVICE_TIMES)
        busy = rate * service_time
        if 0.3 <= busy - math.floor(busy) <= 0.8 and busy <= 8:
            return rate, service_time


#: Loads that need a whole number of workers exactly (each product exact in binary floating point):
#: ``int(x) + 1`` hires one too many here, while ``ceil`` does not.
WHOLE_LOADS = ((2.0, 1.0), (5.0, 0.6), (4.0, 0.75), (1.0, 1.0))


def rush(workers: int, orders_per_unit: float, service_time: float) -> eb.Broker:
    """``workers`` workers taking ``service_time`` each, orders arriving evenly at ``orders_per_unit``
    for :data:`RUSH_LENGTH` time units. Run it and return the broker."""
    b = eb.Broker(seed=0)
    b.queue("payments")
    b.worker("payments", charge, count=workers, service_time=service_time)
    for i in range(round(orders_per_unit * RUSH_LENGTH)):
        b.publish("payments", {"order": f"order-{i + 1}", "amount": 10}, at=round(i / orders_per_unit, 6), by=PRODUCER)
    b.run()
    return b


def _waiting_when_arrivals_stop(b: eb.Broker) -> int:
    return waiting_at(b.trace, "payments", RUSH_LENGTH)


@register("06-fewest-workers", points=2, title="the fewest workers", exercise="08")
def check_fewest_workers(fewest_workers: Any) -> None:
    expect_callable(fewest_workers, "fewest_workers", params=2)
    for rate, service_time in [*(loads(seed) for seed in SEEDS), *WHOLE_LOADS]:
        call = f"fewest_workers({rate:g}, {service_time:g})"
        n = call_answer(fewest_workers, rate, service_time, what=call)
        load = f"With {rate:g} orders per time unit, each taking {service_time:g}"
        replay = (
            f"b = ex06.rush(workers=..., orders_per_unit={rate:g}, service_time={service_time:g}); "
            "ax = eb.plot.queue_depth(b)"
        )
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, int):
            raise CheckFailed(f"{call} returned {n!r}; a number of workers is a whole number such as 3.")
        if n < 1:
            raise CheckFailed(f"{call} returned {n}: with no worker, no order is ever charged.")
        grown = _waiting_when_arrivals_stop(rush(n, rate, service_time))
        if grown > BOUNDED:
            raise CheckFailed(
                f"{load}: your {n} worker{'s' if n > 1 else ''} let the queue grow. When arrivals stopped at "
                f"t = {RUSH_LENGTH:g}, {grown} orders were waiting, and the longer the load lasts, the more there are.",
                replay=replay.replace("...", str(n)),
            )
        if n > 1 and _waiting_when_arrivals_stop(rush(n - 1, rate, service_time)) <= BOUNDED:
            raise CheckFailed(
                f"{load}: your {n} workers keep the queue from growing, but fewer would too: the team pays for a "
                "worker it does not need.",
                replay=replay.replace("...", str(n - 1)),
            )


# ---------------------------------------------------------------------------- replay

_REPLAYS: dict[str, tuple[Callable[[Any, int, str], Orders], Callable[[int], Mapping[str, Any]], str]] = {
    "06-fix-poison": (poisoned_orders, _poison_faults, "fault"),
    "06-retry-backoff": (gateway_orders, lambda seed: OUTAGES, "outage"),
}


def replay(check_id: str, answer: Callable[..., Any], *, seed: int, **scenario: str) -> eb.Broker:
    """Rebuild the run a failed check names, with your answer, and return its broker (already run).

    >>> b = replay("06-fix-poison", declare_payments, seed=3, fault="lost deliveries")   # doctest: +SKIP
    >>> b = replay("06-retry-backoff", declare_retrying_payments, seed=3,
    ...            outage="gateway down from t = 0 to t = 6")                           # doctest: +SKIP
    >>> print(b.trace.table())                                                          # doctest: +SKIP

    A run that could not finish stops where the broker gave up.
    """
    if check_id not in _REPLAYS:
        raise one_of("replay: check_id", check_id, _REPLAYS)
    scenario_fn, options, knob = _REPLAYS[check_id]
    if set(scenario) != {knob}:
        raise EvbrokerError(f"replay({check_id!r}, ...) takes seed= and {knob}= (got {', '.join(scenario) or 'none'})")
    pick(options(seed), scenario[knob], knob)
    return scenario_fn(answer, seed, scenario[knob]).broker
