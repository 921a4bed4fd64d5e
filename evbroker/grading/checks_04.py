"""Checks for exercise 04 · delivery guarantees (``solutions/04_delivery_guarantees.ipynb``).

Four questions, 10 points:

- ``04-predict-charges`` (2, predict): the charges when one order's worker crashes before its
  ack and another order's ack is lost twice, under at-least-once.
- ``04-predict-storm`` (2, predict): the charges by t = 12 when every payment takes longer
  than the ack timeout.
- ``04-no-order-lost`` (3, build): ``declare_payments(b)`` declares a queue that loses no
  order whatever crashes, never takes a slow but healthy worker for dead, and notices a dead
  one quickly.
- ``04-fix-double-charge`` (3, debug): ``setup_payments(b, faults)`` must stop charging
  twice when acks are lost, without losing any order.

Each scenario is a function here, so a notebook cell can run the very simulation a check
compares with; :func:`replay` rebuilds the run a failure message names, to read its trace.
The helpers that tell an order's story (:func:`order_messages`, :func:`order_story`) are shared
with the checks of exercise 05.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import evbroker as eb
from evbroker.core.explore import inject_faults
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
from evbroker.grading.outcome import CheckFailed
from evbroker.grading.registry import register
from evbroker.grading.search import Search, expect_every_sample, replay_schedule_from

QUEUE = "payments"
PRODUCER = "checkout"
#: A check's broker gives up on a copy after this many deliveries (a redelivery storm).
SETTLE_LIMIT = 25
SEEDS = range(20)
#: Trace kinds shown when a failure tells what happened to one order (route rows are noise).
STORY_KINDS = tuple(k for k in eb.KINDS if k not in ("route", "unroutable"))
STORY_ROWS = 30


def charge(msg: eb.Message, ctx: eb.Context) -> None:
    """The payments worker of this exercise: record the charge, nothing else (not idempotent).

    The charge is a row in the shop's own payments table (``ctx.effect``), so it commits with
    the work and exactly-once processing can dedupe it; a card charged at a payment provider is
    an outside call (``ctx.call``), which needs an idempotency key instead (exercise 05).
    """
    ctx.effect("charge", order=msg.payload["order"], amount=msg.payload["amount"])


# ---------------------------------------------------------------------------- predictions


def crash_and_lost_acks() -> eb.Broker:
    """The run of ``04-predict-charges``: three orders, two faults, at-least-once.

    ``checkout`` publishes order-1, order-2 and order-3 one time unit apart to ``payments``
    (at-least-once, ``ack_timeout=3``), read by two workers that take 1 time unit each.
    order-2's worker crashes after charging and before its ack, on its first delivery;
    order-3's ack is lost on its first two deliveries.
    """
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="at-least-once", ack_timeout=3.0)
    faults = eb.Faults(
        crash_before_ack=lambda m: m.key == "order-2" and m.attempt == 1,
        lose_ack=lambda m: m.key == "order-3" and m.attempt <= 2,
    )
    b.worker("payments", charge, count=2, service_time=1.0, faults=faults)
    for i in (1, 2, 3):
        order = f"order-{i}"
        b.publish("payments", {"order": order, "amount": 10 * i}, at=i - 1, key=order, by="checkout")
    b.run()
    return b


def slower_than_the_timeout() -> eb.Broker:
    """The run of ``04-predict-storm``: one order, every payment slower than the ack timeout.

    Two healthy workers, each payment takes 4 time units, the broker waits 3 for an ack. The
    run cannot settle on its own, so it stops at t = 12.
    """
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="at-least-once", ack_timeout=3.0)
    b.worker("payments", charge, count=2, service_time=4.0)
    b.publish("payments", {"order": "order-1", "amount": 25}, key="order-1", by="checkout")
    b.run(until=12)
    return b


@register("04-predict-charges", points=2, title="predict the charges")
def check_predict_charges(charges: Any) -> None:
    predicted = expect_number(charges, "charges")
    expect_equal(
        predicted,
        len(crash_and_lost_acks().effects("charge")),
        what="your predicted number of charges",
        hint="Count each order on its own: how many deliveries does it get before the broker hears an ack, "
        "and does every one of them charge?",
    )


@register("04-predict-storm", points=2, title="predict a redelivery storm")
def check_predict_storm(charges_by_12: Any) -> None:
    predicted = expect_number(charges_by_12, "charges_by_12")
    expect_equal(
        predicted,
        len(slower_than_the_timeout().effects("charge")),
        what="your predicted number of charges by t = 12",
        hint="A delivery that times out is not cancelled: the worker keeps going and still charges. "
        "Write down, for each delivery, when it starts and when its charge happens.",
    )


# ---------------------------------------------------------------------------- order stories


def order_messages(b: eb.Broker, first: Mapping[str, str]) -> dict[str, list[str]]:
    """Each order's message ids: the ones the check published (``first``: id -> order) and
    every producer retry of them (a publish whose detail says ``retry of mN``)."""
    owner = dict(first)
    for e in b.trace.where(kind="publish"):
        if e.detail.startswith("retry of "):
            source = e.detail.removeprefix("retry of ")
            if source in owner:
                owner[e.msg] = owner[source]
    result: dict[str, list[str]] = {}
    for mid, order in owner.items():
        result.setdefault(order, []).append(mid)
    return result


def order_story(b: eb.Broker, msgs: Iterable[str]) -> str:
    """What went wrong around these messages (each kind of fault once), then their rows of the trace."""
    msgs = list(msgs)
    events = b.trace.where(msg=msgs)
    seen: dict[str, list[str]] = {}
    for e in events:
        cause = _cause(e)
        if cause:
            seen.setdefault(cause[0], []).append(cause[1])
    causes = [_cause_text(text, wheres) for text, wheres in seen.items()]
    parts = []
    if causes:
        parts.append("What went wrong around it: " + "; ".join(causes) + ".")
    parts.append(f"Its message{'s' if len(msgs) > 1 else ''} ({', '.join(msgs)}) in the trace:")
    parts.append(events.where(kind=STORY_KINDS).table(limit=STORY_ROWS))
    return "\n".join(parts)


def _cause_text(text: str, wheres: list[str]) -> str:
    where = [w for w in wheres if w]
    if not where:
        return text
    more = f", and {len(where) - 1} more time{'s' if len(where) > 2 else ''}" if len(where) > 1 else ""
    return f"{text} ({where[0]}{more})"


def _cause(e: eb.TraceEvent) -> tuple[str, str] | None:
    """A fault in the learner's terms, and where it struck ("m3, delivery 2"); None for an ordinary event."""
    where = f"{e.msg}, delivery {e.attempt}"
    if e.kind == "confirm-lost":
        return f"{e.actor} never heard the broker confirm {e.msg}, so it published the same order again", ""
    if e.kind == "publish" and e.detail.startswith("retry of "):
        return f"the retry got a new message id, {e.msg}", ""
    if e.kind == "crash":
        what = {
            "before processing": "crashed as it arrived, before any work",
            "during processing": "crashed halfway through the work",
            "after processing": "crashed after the work, before its ack left",
            "outage": "was taken down",
        }
        said = next((v for k, v in what.items() if e.detail.startswith(k)), f"crashed ({e.detail})")
        return f"{e.actor} {said}", where
    if e.kind == "ack-lost":
        return f"{e.actor}'s ack was lost on the way back", where
    if e.kind == "delivery-lost":
        return f"a delivery never reached {e.to}", where
    if e.kind == "late-ack":
        return f"{e.actor} was still working when the broker gave up on it and redelivered", where
    if e.kind == "handler-error":
        return f"the handler raised {e.detail.removeprefix('handler raised ')}", where
    if e.kind == "dead-letter":
        return f"the broker set {e.msg} aside in dead letters {e.detail}", ""
    if e.kind == "lost":
        return f"the broker dropped {e.msg} for good ({e.detail})", ""
    return None


def run_settling(b: eb.Broker) -> str:
    """Run ``b``; return the broker's explanation if the run could not settle, else ""."""
    try:
        b.run()
    except EvbrokerError as exc:
        return str(exc)
    return ""


@dataclass
class Run:
    """One run of a check's scenario: the broker, the orders the check placed, and whether it settled.

    ``placed`` maps each message id the check published to its order, ``amounts`` each order to
    its amount; ``stuck`` is the broker's explanation when the run could not settle ("" when it did).
    """

    broker: eb.Broker
    placed: dict[str, str] = field(default_factory=dict)
    amounts: dict[str, Any] = field(default_factory=dict)
    stuck: str = ""

    def place(self, mid: str, order: str, amount: Any) -> None:
        """Note that the check published ``order`` (for ``amount``) as message ``mid``."""
        self.placed[mid] = order
        self.amounts[order] = amount

    def messages(self) -> dict[str, list[str]]:
        """Each order's message ids, producer retries included."""
        return order_messages(self.broker, self.placed)

    def story(self, order: str) -> str:
        return order_story(self.broker, self.messages()[order])


def settled(run: Run) -> Run:
    """Run ``run``'s broker; ``run.stuck`` says why, if it could not settle. Returns ``run``."""
    run.stuck = run_settling(run.broker)
    return run


def fail_unless_settled(run: Run) -> None:
    """Fail with the broker's explanation if the run could not settle."""
    if run.stuck:
        raise CheckFailed(f"The run did not finish: {run.stuck}")


def expect_each_order_charged(
    run: Run,
    *,
    at_most_once: bool,
    effect: str = "charge",
    verb: str = "charged",
    work_of: Callable[[eb.Effect], Any] | None = None,
) -> None:
    """Fail naming the first order charged never (or, with ``at_most_once``, more than once) or charged
    the wrong amount, with its story.

    An "order" is whatever :attr:`Run.placed` names; ``work_of(effect)`` says which one an effect
    did (default: the message's business key).
    """
    work_of = work_of or (lambda e: e.key)
    done = Counter(work_of(e) for e in run.broker.effects(effect))
    for order, msgs in run.messages().items():
        n = done[order]
        if n == 0:
            skipped = run.broker.trace.where(kind="complete", msg=msgs)
            why = (
                " A delivery of it was processed to the end without one: the handler found nothing to do."
                if skipped
                else ""
            )
            raise CheckFailed(f"{order} was never {verb}.{why}\n" + order_story(run.broker, msgs))
        if at_most_once and n > 1:
            raise CheckFailed(f"{order} was {verb} {count_times(n)}.\n" + order_story(run.broker, msgs))
    for e in run.broker.effects(effect):
        order = work_of(e)
        want = run.amounts.get(order)
        if want is not None and e.data.get("amount") != want:
            raise CheckFailed(
                f"{order} was {verb} {e.data.get('amount')!r}, but its message asks for {want!r}.\n" + run.story(order)
            )


# ---------------------------------------------------------------------------- 04-no-order-lost

#: How long the biggest orders take to charge (fraud checks); small ones take less.
BIGGEST_ORDER_TIME = 4.0
#: A dead worker's order must be back in the queue within this long of its delivery.
RETRY_WITHIN = 10.0
CONFIG_ORDERS = 8
CONFIG_FAULTS: dict[str, eb.Faults | None] = {
    "no faults, big orders": None,
    "crashes before processing": eb.Faults(crash_before_process=0.3),
    "crashes during processing": eb.Faults(crash_during_process=0.3),
    "crashes before the ack": eb.Faults(crash_before_ack=0.3),
    "lost deliveries": eb.Faults(lose_delivery=0.3),
}


def charge_time(msg: eb.Message) -> float:
    """How long charging an order takes: 1 for a small amount, 2 for a medium one, 4 for a big one."""
    amount = msg.payload["amount"]
    return 1.0 if amount < 100 else 2.0 if amount < 300 else BIGGEST_ORDER_TIME


def _amounts(seed: int, n: int) -> list[int]:
    """``n`` order amounts drawn from the seed, at least two of them big."""
    rng = random.Random(seed)
    amounts = [rng.choice([25, 60, 150, 320, 480]) for _ in range(n)]
    for i in (seed % n, (seed + 3) % n):
        amounts[i] = 400 + 10 * i
    return amounts


def configured_payments(declare_payments: Callable[[eb.Broker], Any], seed: int, fault: str) -> Run:
    """The run of ``04-no-order-lost``: the learner's ``declare_payments(b)`` declares the queue;
    two workers charge orders that take 1 to 4 time units; ``checkout`` places eight orders,
    one per time unit; ``fault`` (a key of :data:`CONFIG_FAULTS`) strikes the workers."""
    faults = pick(CONFIG_FAULTS, fault)
    return settled(_orders(_declared(declare_payments, seed, faults), _amounts(seed, CONFIG_ORDERS), every=1.0))


def searched_configured(declare_payments: Callable[[eb.Broker], Any], faults: eb.Faults) -> Run:
    """The searched run of ``04-no-order-lost``, set up and not run: the learner's queue, two workers,
    three orders one time unit apart, the middle one big (4 time units to charge)."""
    return _orders(_declared(declare_payments, 0, faults), (25, 480, 60), every=1.0)


def _declared(declare_payments: Callable[[eb.Broker], Any], seed: int, faults: eb.Faults | None) -> eb.Broker:
    """A broker with the learner's queue, and the check's two workers on it, struck by ``faults``."""
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    call_answer(declare_payments, b, what="declare_payments(b)")
    expect(
        QUEUE in b.queues,
        f"declare_payments(b) should declare the queue {QUEUE!r}; it declared "
        f"{', '.join(map(repr, b.queues)) or 'no queue'}.",
    )
    expect(
        not b.workers,
        "declare_payments(b) should only declare the queue: the check starts the workers itself "
        f"(yours started {', '.join(b.workers)}).",
    )
    b.worker(QUEUE, charge, count=2, service_time=charge_time, faults=faults)
    return b


def _orders(b: eb.Broker, amounts: Iterable[int], *, every: float) -> Run:
    """``checkout`` places one order per amount in ``QUEUE``, ``every`` time units apart; not yet run."""
    run = Run(b)
    for i, amount in enumerate(amounts):
        order = f"order-{i + 1}"
        mid = b.publish(QUEUE, {"order": order, "amount": amount}, at=every * i, key=order, by=PRODUCER)
        run.place(mid, order, amount)
    return run


CONFIG_SEARCH = Search(
    searched_configured,
    lambda run: _judge_configured(run),
    ("lose_delivery", "crash_before_process", "crash_during_process", "crash_before_ack"),
    max_faults=2,
)


@register("04-no-order-lost", points=3, title="a queue that loses no order")
def check_no_order_lost(declare_payments: Any) -> None:
    expect_callable(declare_payments, "declare_payments", params=1)
    expect_every_sample(
        "04-no-order-lost",
        "declare_payments",
        CONFIG_SEARCH,
        declare_payments,
        sampled=configured_payments,
        faults=CONFIG_FAULTS,
        seeds=SEEDS,
    )


def _judge_configured(run: Run) -> None:
    b = run.broker
    late = b.trace.where(kind="late-ack")
    if late:
        e = late[0]
        took = next((p.detail for p in b.trace.where(kind="process", msg=e.msg) if p.attempt == e.attempt), "")
        raise CheckFailed(
            f"A healthy worker was taken for dead: {e.actor} was still charging {e.msg} (delivery {e.attempt}, "
            f"which {took}) when the broker stopped waiting for its ack and handed the order out again. "
            f"Its ack arrived at t={e.time:g}, too late to count.\n" + order_story(b, [e.msg])
        )
    fail_unless_settled(run)
    expect_each_order_charged(run, at_most_once=False)
    for order, msgs in run.messages().items():
        for mid in msgs:
            if b.trace.where(kind="dead-letter", msg=mid):
                raise CheckFailed(f"{order} ended in dead letters instead of being charged.\n" + run.story(order))
    delivered = {(e.msg, e.attempt): e.time for e in b.trace.where(kind="deliver")}
    for e in b.trace.where(kind="redeliver"):
        since = delivered.get((e.msg, e.attempt - 1))
        if since is not None and e.time - since > RETRY_WITHIN:
            raise CheckFailed(
                f"Customers waited too long: delivery {e.attempt - 1} of {e.msg} went to a worker at t={since:g} "
                f"and never got through, but the broker only put the order back for another try at "
                f"t={e.time:g}, {e.time - since:g} time units later. The team wants it back within "
                f"{RETRY_WITHIN:g}.\n" + order_story(b, [e.msg])
            )


# ---------------------------------------------------------------------------- 04-fix-double-charge

FIX_ORDERS = 8
FIX_FAULTS: dict[str, eb.Faults] = {
    "lost acks": eb.Faults(lose_ack=0.3),
    "crashes before the ack": eb.Faults(crash_before_ack=0.3),
    "crashes before processing": eb.Faults(crash_before_process=0.3),
    "crashes during processing": eb.Faults(crash_during_process=0.3),
    "lost deliveries": eb.Faults(lose_delivery=0.3),
}


def fixed_payments(setup_payments: Callable[[eb.Broker, eb.Faults], Any], seed: int, fault: str) -> Run:
    """The run of ``04-fix-double-charge``: ``setup_payments(b, faults)`` declares the queue and
    starts its workers; the check then puts ``faults`` (a value of :data:`FIX_FAULTS`) on every
    worker itself, whatever the set-up handed them; ``checkout`` places eight orders half a time
    unit apart."""
    faults = pick(FIX_FAULTS, fault)
    return settled(_orders(_set_up(setup_payments, seed, faults), _amounts(seed, FIX_ORDERS), every=0.5))


def _set_up(setup_payments: Callable[[eb.Broker, eb.Faults], Any], seed: int, faults: eb.Faults) -> eb.Broker:
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    call_answer(setup_payments, b, faults, what="setup_payments(b, faults)")
    expect(
        QUEUE in b.queues,
        f"setup_payments(b, faults) should declare the queue {QUEUE!r}; it declared "
        f"{', '.join(map(repr, b.queues)) or 'no queue'}.",
    )
    expect(b.workers, f"setup_payments(b, faults) should start the workers of {QUEUE!r}; it started none.")
    inject_faults(b, faults)  # the check breaks the workers itself: it does not rely on faults=faults
    return b


def searched_payments(setup_payments: Callable[[eb.Broker, eb.Faults], Any], faults: eb.Faults) -> Run:
    """The searched run of ``04-fix-double-charge``, set up and not run: three orders one time unit
    apart through ``setup_payments``; ``faults`` go on its workers (put there by the search)."""
    return _orders(_set_up(setup_payments, 0, faults), (25, 25, 60), every=1.0)


def _judge_fixed(run: Run) -> None:
    fail_unless_settled(run)
    expect_each_order_charged(run, at_most_once=True)


FIX_SEARCH = Search(
    searched_payments,
    _judge_fixed,
    ("lose_delivery", "crash_before_process", "crash_during_process", "crash_before_ack", "lose_ack"),
    max_faults=2,
)


@register("04-fix-double-charge", points=3, title="fix the double charge")
def check_fix_double_charge(setup_payments: Any) -> None:
    expect_callable(setup_payments, "setup_payments", params=2)
    expect_every_sample(
        "04-fix-double-charge",
        "setup_payments",
        FIX_SEARCH,
        setup_payments,
        sampled=fixed_payments,
        faults=FIX_FAULTS,
        seeds=SEEDS,
    )


# ---------------------------------------------------------------------------- replay

_REPLAYS: dict[str, tuple[Callable[[Any, int, str], Run], Mapping[str, Any]]] = {
    "04-no-order-lost": (configured_payments, CONFIG_FAULTS),
    "04-fix-double-charge": (fixed_payments, FIX_FAULTS),
}


_SEARCHES = {"04-no-order-lost": CONFIG_SEARCH, "04-fix-double-charge": FIX_SEARCH}


def replay_schedule(check_id: str, answer: Callable[..., Any], faults: list[tuple]) -> eb.Broker:
    """Rebuild one fault schedule a searched check names, with your answer; returns the broker (already run).

    >>> b = replay_schedule("04-fix-double-charge", setup_payments, [("lose_ack", "m1", 1)])  # doctest: +SKIP
    """
    return replay_schedule_from(_SEARCHES, check_id, answer, faults)


def replay(check_id: str, answer: Callable[..., Any], *, seed: int, fault: str) -> eb.Broker:
    """Rebuild the run a failed check names, with your answer, and return its broker (already run).

    >>> b = replay("04-no-order-lost", declare_payments, seed=3, fault="crashes during processing")  # doctest: +SKIP
    >>> print(b.trace.table())                                                                       # doctest: +SKIP

    A run that could not settle stops where the broker gave up.
    """
    return replay_from(_REPLAYS, check_id, answer, seed, fault)


def replay_from(
    table: Mapping[str, tuple[Callable[[Any, int, str], Run], Mapping[str, Any]]],
    check_id: str,
    answer: Callable[..., Any],
    seed: int,
    fault: str,
) -> eb.Broker:
    """:func:`replay` for the checks in ``table`` (check id -> (scenario, its faults))."""
    if check_id not in table:
        raise one_of("replay: check_id", check_id, table)
    scenario, faults = table[check_id]
    pick(faults, fault)
    return scenario(answer, seed, fault).broker
