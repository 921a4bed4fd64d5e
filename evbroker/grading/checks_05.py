"""Checks for exercise 05 · idempotent consumers (``solutions/05_idempotent_consumers.ipynb``).

Five questions, 12 points:

- ``05-predict-charges`` (2, predict): the charges of a consumer that dedupes by message id,
  when one worker crashes before its ack and checkout retries one publish.
- ``05-payment-handler`` (3, build): ``charge_card(msg, ctx)`` charges every installment of
  every order exactly once, whatever crashes, lost acks, slow workers and producer retries do.
- ``05-fix-shipping`` (3, debug): ``ship(msg, ctx)``, a fixed version of a shipping handler
  that prints two labels for one parcel.
- ``05-idempotent-refund`` (2, build): ``refund(msg, ctx)`` gives back what was charged, once,
  and nothing for a charge that never happened.
- ``05-provider-charge`` (2, build): ``charge_at_provider(msg, ctx)`` charges every installment
  once through the payment provider (``ctx.call``), on an exactly-once queue, whatever the
  faults: only an idempotency key makes an outside call safe to repeat.

Each scenario is a function here; :func:`replay` rebuilds the run a failure message names, to
read its trace. The order stories come from :mod:`evbroker.grading.checks_04`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import evbroker as eb
from evbroker.grading.authoring import count_times, expect_callable, expect_equal, expect_number, pick
from evbroker.grading.checks_04 import (
    SEEDS,
    SETTLE_LIMIT,
    Run,
    expect_each_order_charged,
    fail_unless_settled,
    replay_from,
    settled,
)
from evbroker.grading.outcome import CheckFailed
from evbroker.grading.registry import register
from evbroker.grading.search import Search, expect_every_sample, replay_schedule_from

PRODUCER = "checkout"
CUSTOMERS = ("ada", "grace", "alan", "edsger")
#: Each fault schedule: (worker faults, producer faults), each struck with this chance.
CHANCE = 0.3
#: The faults every searched check of this exercise places: each a consumer meets, and a producer's retry.
SEARCHED_FAULTS = ("crash_during_process", "crash_before_ack", "lose_ack", "slow", "lose_confirm")


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

PAYMENT_ORDERS = 6
PAYMENT_FAULTS = _schedules(slow_by=3.0)
#: The second installment of an order is published this long after the first.
INSTALLMENT_GAP = 2.0


def installments(seed: int) -> list[tuple[str, int, str, int, float]]:
    """The payments of one seed: (order, installment, customer, amount, publish time).

    Every order has an installment 1; some (at least one) are paid in two installments. With
    four customers and six orders, some customer always orders twice.
    """
    rng = random.Random(seed)
    split = {seed % PAYMENT_ORDERS + 1}
    plan = []
    for i in range(1, PAYMENT_ORDERS + 1):
        order, customer, at = f"order-{i}", rng.choice(CUSTOMERS), 0.5 * (i - 1)
        plan.append((order, 1, customer, rng.randrange(10, 100, 5), at))
        if i in split or rng.random() < 0.4:
            plan.append((order, 2, customer, rng.randrange(10, 100, 5), at + INSTALLMENT_GAP))
    return plan


def installment_label(order: str, installment: Any) -> str:
    """How a failure names one payment: "order-3 installment 2"."""
    return f"{order} installment {installment}"


def paid_installments(charge_card: Callable[[eb.Message, eb.Context], Any], seed: int, fault: str) -> Run:
    """The run of ``05-payment-handler``: lesson 05's checkout, with orders paid in installments.

    ``checkout`` publishes ``{"order", "installment", "customer", "amount"}`` with
    ``key=<order>`` to ``payments`` (at-least-once, ``ack_timeout=3``), read by three workers
    running ``charge_card`` (1 time unit each), as :func:`installments` says; ``fault`` is a
    key of :data:`PAYMENT_FAULTS`.
    """
    worker_faults, producer_faults = pick(PAYMENT_FAULTS, fault)
    return settled(_checkout(charge_card, "at-least-once", seed, 3, installments(seed), worker_faults, producer_faults))


def _checkout(
    handler: Callable[[eb.Message, eb.Context], Any],
    guarantee: str,
    seed: int,
    workers: int,
    payments: Iterable[tuple[str, int, str, int, float]],
    worker_faults: eb.Faults | None,
    producer_faults: eb.Faults | None,
) -> Run:
    """Checkout's payments, set up and not run: ``payments`` (as :func:`installments` gives them) to
    ``payments`` (``guarantee``, ``ack_timeout=3``), ``workers`` workers running ``handler``."""
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    b.queue("payments", guarantee=guarantee, ack_timeout=3)
    b.worker("payments", handler, count=workers, service_time=1, faults=worker_faults)
    run = Run(b)
    for order, installment, customer, amount, at in payments:
        payload = {"order": order, "installment": installment, "customer": customer, "amount": amount}
        mid = b.publish("payments", payload, at=at, key=order, by=PRODUCER, faults=producer_faults)
        run.place(mid, installment_label(order, installment), amount)
    return run


#: The searched scenario: (order, installment, customer, amount, publish time). order-1 is paid in two
#: installments of the same amount, and ada orders twice: a dedupe key too broad shows at once.
SEARCHED_PAYMENTS = (
    ("order-1", 1, "ada", 30, 0.0),
    ("order-2", 1, "ada", 30, 0.5),
    ("order-1", 2, "ada", 30, INSTALLMENT_GAP),
)


def searched_installments(charge_card: Callable[[eb.Message, eb.Context], Any], faults: eb.Faults) -> Run:
    """The searched run of ``05-payment-handler``, set up and not run: :data:`SEARCHED_PAYMENTS` to
    ``payments`` (at-least-once, ``ack_timeout=3``), two workers running ``charge_card``, ``faults``
    on the workers and on checkout's publishes."""
    return _checkout(charge_card, "at-least-once", 0, 2, SEARCHED_PAYMENTS, faults, faults)


def _judge_payments(run: Run) -> None:
    _fail_on_handler_error(run, "charge_card")
    fail_unless_settled(run)
    _expect_charges_name_their_payment(run.broker)
    expect_each_order_charged(run, at_most_once=True, work_of=lambda e: installment_label(e["order"], e["installment"]))


PAYMENT_SEARCH = Search(searched_installments, _judge_payments, SEARCHED_FAULTS, max_faults=2, slow_by=3.0)


@register("05-payment-handler", points=3, title="an idempotent payment handler")
def check_payment_handler(charge_card: Any) -> None:
    expect_callable(charge_card, "charge_card", params=2)
    expect_every_sample(
        "05-payment-handler",
        "charge_card",
        PAYMENT_SEARCH,
        charge_card,
        sampled=paid_installments,
        faults=PAYMENT_FAULTS,
        seeds=SEEDS,
    )


def _expect_charges_name_their_payment(b: eb.Broker) -> None:
    for e in b.effects("charge"):
        if any(field not in e.data for field in ("order", "installment", "amount")):
            raise CheckFailed(
                f"charge_card recorded a charge with {e.data}: say which payment it is and how much, "
                "ctx.effect('charge', order=..., installment=..., amount=...), from the message's payload."
            )
        if e.data["order"] != e.key:
            raise CheckFailed(
                f"charge_card charged order {e.data['order']!r} while handling {e.key} ({e.msg}); "
                "the charge should name the order of the message being handled."
            )


def _fail_on_handler_error(run: Run, name: str) -> None:
    errors = run.broker.trace.where(kind="handler-error")
    if errors:
        e = errors[0]
        raise CheckFailed(
            f"{name} raised an error on {e.msg} (delivery {e.attempt}): {e.detail.removeprefix('handler raised ')}. "
            "A handler that raises is a processing failure: the broker redelivers the message, again and again."
        )


# ---------------------------------------------------------------------------- 05-fix-shipping

SHIPPING_ORDERS = 8
SHIPPING_FAULTS = _schedules(slow_by=3.0)
ADDRESSES = ("1 Loop Road", "22 Queue Street", "3 Ack Avenue", "40 Topic Lane")


def send_email(msg: eb.Message, ctx: eb.Context) -> None:
    """The email service: one "your parcel is on its way" mail per ``order.shipped`` event."""
    payload = msg.payload if isinstance(msg.payload, dict) else {}
    ctx.effect("email", order=payload.get("order", msg.key))


def shipped_orders(ship: Callable[[eb.Message, eb.Context], Any], seed: int, fault: str) -> Run:
    """The run of ``05-fix-shipping``: eight paid orders to the ``shipping`` queue.

    ``payments`` publishes ``{"order", "address"}`` with ``key=<order>`` every half time unit
    to ``shipping`` (at-least-once, ``ack_timeout=3``), read by three workers running ``ship``
    (1 time unit each). ``ship`` prints a label and publishes ``order.shipped``, which the
    ``email`` service turns into one mail each. ``fault`` is a key of :data:`SHIPPING_FAULTS`.
    """
    worker_faults, producer_faults = pick(SHIPPING_FAULTS, fault)
    rng = random.Random(seed)
    addresses = [rng.choice(ADDRESSES) for _ in range(SHIPPING_ORDERS)]
    return settled(_shipping(ship, seed, 3, addresses, worker_faults, producer_faults))


def _shipping(
    ship: Callable[[eb.Message, eb.Context], Any],
    seed: int,
    workers: int,
    addresses: Iterable[str],
    worker_faults: eb.Faults | None,
    producer_faults: eb.Faults | None,
) -> Run:
    """Paid orders to ``shipping``, one per address, set up and not run: ``workers`` workers running
    ``ship``, the ``email`` service behind ``order.shipped``."""
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    b.topic("order.shipped")
    b.queue("shipping", guarantee="at-least-once", ack_timeout=3)
    b.queue("email", bind="order.shipped")
    b.worker("shipping", ship, count=workers, service_time=1, faults=worker_faults)
    b.worker("email", send_email, service_time=0.1)
    run = Run(b)
    for i, address in enumerate(addresses):
        order = f"order-{i + 1}"
        payload = {"order": order, "address": address}
        mid = b.publish("shipping", payload, at=0.5 * i, key=order, by="payments", faults=producer_faults)
        run.placed[mid] = order
    return run


def _judge_shipping(run: Run) -> None:
    _fail_on_handler_error(run, "ship")
    fail_unless_settled(run)
    for e in run.broker.effects("label"):
        if e.data.get("order") != e.key:
            raise CheckFailed(
                f"ship printed a label with {e.data} while handling {e.key} ({e.msg}); keep the label as "
                "it was: ctx.effect('label', order=msg.key, address=...)."
            )
    expect_each_order_charged(run, at_most_once=True, effect="label", verb="given a label")
    mails = Counter(e["order"] for e in run.broker.effects("email"))
    for order in run.messages():
        n = mails[order]
        if n != 1:
            raise CheckFailed(
                f"{order}'s order.shipped event was published {count_times(n)}, so the customer got "
                f"{n} 'on its way' email{'s' if n != 1 else ''}.\n" + run.story(order)
            )


def searched_shipping(ship: Callable[[eb.Message, eb.Context], Any], faults: eb.Faults) -> Run:
    """The searched run of ``05-fix-shipping``, set up and not run: two paid orders to ``shipping``
    (two workers running ``ship``), the ``email`` service behind ``order.shipped``; the search
    places its faults in the shipping service and on the publishes to it, never in the email
    service."""
    return _shipping(ship, 0, 2, ADDRESSES[:2], faults, None)


SHIPPING_SEARCH = Search(
    searched_shipping,
    _judge_shipping,
    SEARCHED_FAULTS,
    max_faults=2,
    slow_by=3.0,
    queues=("shipping",),
)


@register("05-fix-shipping", points=3, title="fix the double label")
def check_fix_shipping(ship: Any) -> None:
    expect_callable(ship, "ship", params=2)
    expect_every_sample(
        "05-fix-shipping", "ship", SHIPPING_SEARCH, ship, sampled=shipped_orders, faults=SHIPPING_FAULTS, seeds=SEEDS
    )


# ---------------------------------------------------------------------------- 05-idempotent-refund

REFUND_ORDERS = 6
REFUND_FAULTS = _schedules(slow_by=3.0)
ORCHESTRATOR = "orchestrator"
REFUNDS_FROM = 12.0
LATE_CHARGE_AT = 30.0


def charge_for_order(msg: eb.Message, ctx: eb.Context) -> None:
    """The payment service's charge: once per order, and not at all once that order was refunded."""
    order = msg.key
    if ctx.seen((order, "charge")) or ctx.seen((order, "refund")):
        return
    ctx.effect("charge", order=order, amount=msg.payload["amount"])
    ctx.remember((order, "charge"))


def payment_service(refund: Callable[[eb.Message, eb.Context], Any]) -> Callable[[eb.Message, eb.Context], None]:
    """The payment service's handler: ``charge`` commands to :func:`charge_for_order`, ``refund`` ones to ``refund``."""

    def handle(msg: eb.Message, ctx: eb.Context) -> None:
        if msg.payload["command"] == "charge":
            charge_for_order(msg, ctx)
        else:
            refund(msg, ctx)

    return handle


def refund_plan(seed: int) -> list[tuple[str, int, bool, bool]]:
    """For each order of one seed: (order, amount, charge command sent, refund command sent).

    Some orders are refunded after a charge, some are refunded though no charge was ever sent
    (an orchestrator in doubt), some are not refunded at all.
    """
    rng = random.Random(seed)
    plan = [(f"order-{i}", 10 * i, rng.random() < 0.7, rng.random() < 0.7) for i in range(1, REFUND_ORDERS + 1)]
    doubt, undo = seed % REFUND_ORDERS, (seed + 2) % REFUND_ORDERS
    plan[doubt] = (plan[doubt][0], plan[doubt][1], False, True)
    plan[undo] = (plan[undo][0], plan[undo][1], True, True)
    return plan


#: The order whose charge command arrives after its refund (an orchestrator's command held up).
def _overtaken(seed: int) -> str:
    return f"order-{(seed + 4) % REFUND_ORDERS + 1}"


@dataclass
class RefundRun(Run):
    """A run of ``05-idempotent-refund``: a :class:`Run` that also knows which messages are refund
    commands, and ``late``, the order whose charge command comes after its refund."""

    refunds: set[str] = field(default_factory=set)
    late: str = ""

    def command(self, mid: str, command: str, order: str) -> None:
        self.placed[mid] = order
        if command == "refund":
            self.refunds.add(mid)

    def asked(self) -> set[str]:
        """The orders whose refund command was sent."""
        return {self.placed[mid] for mid in self.refunds}


def refunded_orders(refund: Callable[[eb.Message, eb.Context], Any], seed: int, fault: str) -> Run:
    """The run of ``05-idempotent-refund``: charges, then refunds, through one payment service.

    The ``orchestrator`` sends ``{"command": "charge" | "refund", "order", "amount"}`` with
    ``key=<order>`` to ``payment`` (at-least-once, ``ack_timeout=3``, three workers running
    :func:`payment_service`): charges from t = 0, refunds from t = 12, as :func:`refund_plan`
    says; one order's charge is held up and arrives long after its refund, at t = 30.
    """
    worker_faults, producer_faults = pick(REFUND_FAULTS, fault)
    b = eb.Broker(seed=seed, settle_limit=SETTLE_LIMIT)
    b.queue("payment", guarantee="at-least-once", ack_timeout=3)
    b.worker("payment", payment_service(refund), count=3, service_time=1, faults=worker_faults)
    late = _overtaken(seed)
    run = RefundRun(b, late=late)
    for i, (order, amount, charged, refunded) in enumerate(refund_plan(seed)):
        run.amounts[order] = amount
        sends = []
        if charged or order == late:
            sends.append(("charge", LATE_CHARGE_AT if order == late else 0.5 * i))
        if refunded or order == late:
            sends.append(("refund", REFUNDS_FROM + 0.5 * i))
        for command, at in sends:
            payload = {"command": command, "order": order, "amount": amount}
            mid = b.publish("payment", payload, at=at, key=order, by=ORCHESTRATOR, faults=producer_faults)
            run.command(mid, command, order)
    return settled(run)


#: The searched refunds: (order, amount, its commands and when they are sent). order-1 is charged
#: then refunded (late enough that two faults on the charge cannot hold it up past the refund);
#: order-2 is refunded though never charged (an orchestrator in doubt); order-3's charge is held
#: up and arrives after its refund.
SEARCHED_REFUNDS = (
    ("order-1", 10, (("charge", 0.0), ("refund", REFUNDS_FROM))),
    ("order-2", 20, (("refund", REFUNDS_FROM + 0.5),)),
    ("order-3", 30, (("refund", REFUNDS_FROM + 1.0), ("charge", LATE_CHARGE_AT))),
)


def searched_refunds(refund: Callable[[eb.Message, eb.Context], Any], faults: eb.Faults) -> Run:
    """The searched run of ``05-idempotent-refund``, set up and not run: :data:`SEARCHED_REFUNDS`
    to ``payment`` (at-least-once, ``ack_timeout=3``), two workers running :func:`payment_service`."""
    b = eb.Broker(seed=0, settle_limit=SETTLE_LIMIT)
    b.queue("payment", guarantee="at-least-once", ack_timeout=3)
    b.worker("payment", payment_service(refund), count=2, service_time=1, faults=faults)
    run = RefundRun(b, late="order-3")
    for order, amount, commands in SEARCHED_REFUNDS:
        run.amounts[order] = amount
        for command, at in commands:
            payload = {"command": command, "order": order, "amount": amount}
            run.command(b.publish("payment", payload, at=at, key=order, by=ORCHESTRATOR, faults=faults), command, order)
    return run


REFUND_SEARCH = Search(searched_refunds, lambda run: _judge_refunds(run), SEARCHED_FAULTS, max_faults=2, slow_by=3.0)


@register("05-idempotent-refund", points=2, title="an idempotent refund")
def check_refund(refund: Any) -> None:
    expect_callable(refund, "refund", params=2)
    expect_every_sample(
        "05-idempotent-refund",
        "refund",
        REFUND_SEARCH,
        refund,
        sampled=refunded_orders,
        faults=REFUND_FAULTS,
        seeds=SEEDS,
    )


def _raced(run: Run, order: str) -> bool:
    """Was ``order``'s refund handled while its charge was being made, each unseen by the other?

    A handler sees only what is committed: a refund that started before the charge committed finds
    no charge, and the charge, started before the refund's note committed, finds no refund. No refund
    handler can win that race (the charge handler is the shop's, not the learner's), so it is not
    held against the answer. It takes a charge held up by crash after crash until refunds begin."""
    b = run.broker
    refunds = run.refunds if isinstance(run, RefundRun) else set()
    mids = run.messages().get(order, [])
    retried = {e.msg: e.detail.removeprefix("retry of ") for e in b.trace.where(kind="publish", msg=mids)}
    refund_ids = {m for m in mids if m in refunds or retried.get(m, "") in refunds}
    started = {(e.msg, e.attempt): e.time for e in b.trace.where(kind="process", msg=mids)}
    done = {(e.msg, e.attempt): e.time for e in b.trace.where(kind="complete", msg=mids)}
    for charge in b.effects("charge"):
        if charge.key != order or (charge.msg, charge.attempt) not in started:
            continue
        charge_from = started[(charge.msg, charge.attempt)]
        for (mid, attempt), finished in done.items():
            began = started.get((mid, attempt))
            if mid in refund_ids and began is not None and began < charge.time and charge_from < finished:
                return True
    return False


def _judge_refunds(run: RefundRun) -> None:
    """Fail on a handler error, a run that did not settle, or a refund nobody asked for, twice, of a
    charge that never happened, or missing."""
    _fail_on_handler_error(run, "refund")
    fail_unless_settled(run)
    asked, late = run.asked(), run.late
    b = run.broker
    for e in b.effects("refund"):
        if e.data.get("order") != e.key or "amount" not in e.data:
            raise CheckFailed(
                f"refund recorded {e.data} while handling {e.key} ({e.msg}); record each refund as "
                "ctx.effect('refund', order=..., amount=...), from the command's payload."
            )
    charges = Counter(e.key for e in b.effects("charge"))
    refunds = Counter(e.key for e in b.effects("refund"))
    for order, amount in run.amounts.items():
        charged, refunded = charges[order], refunds[order]
        if refunded and order not in asked:
            raise CheckFailed(f"{order} was refunded though nobody asked for its refund.\n" + run.story(order))
        if refunded > 1:
            raise CheckFailed(f"{order} was refunded {count_times(refunded)}.\n" + run.story(order))
        if refunded > charged:
            raise CheckFailed(
                f"{order} was refunded {amount}, but it was never charged: the customer got money the shop never "
                "took.\n" + run.story(order)
            )
        if order in asked and charged > refunded and not _raced(run, order):
            overtaken = order == late
            raise CheckFailed(
                f"{order} was charged {amount} and its refund command came, yet the customer never got the money "
                "back."
                + (
                    " Its charge command was held up: the refund was handled first, and the charge went "
                    "through after it."
                    if overtaken
                    else ""
                )
                + "\n"
                + run.story(order)
            )
    for e in b.effects("refund"):
        if e.data["amount"] != run.amounts[e.key]:
            raise CheckFailed(
                f"{e.key} was refunded {e.data['amount']!r}, but it was charged {run.amounts[e.key]!r}.\n"
                + run.story(e.key)
            )


# ---------------------------------------------------------------------------- 05-provider-charge

PROVIDER_FAULTS = _schedules(slow_by=3.0)


def provider_charges(charge: Callable[[eb.Message, eb.Context], Any], seed: int, fault: str) -> Run:
    """The run of ``05-provider-charge``: question 2's installments, on an exactly-once queue.

    The same payments as :func:`paid_installments` (``fault`` a key of :data:`PROVIDER_FAULTS`),
    but the queue has ``guarantee="exactly-once"`` (exactly-once processing: a dedupe record of
    message ids, committed with the handler's own database writes) and the handler charges the
    card at the payment provider with ``ctx.call``, which that record cannot take back.
    """
    worker_faults, producer_faults = pick(PROVIDER_FAULTS, fault)
    return settled(_checkout(charge, "exactly-once", seed, 3, installments(seed), worker_faults, producer_faults))


def searched_provider_charges(charge: Callable[[eb.Message, eb.Context], Any], faults: eb.Faults) -> Run:
    """The searched run of ``05-provider-charge``, set up and not run: :data:`SEARCHED_PAYMENTS` to
    ``payments`` (exactly-once, ``ack_timeout=3``), two workers running ``charge``, ``faults`` on the
    workers and on checkout's publishes. order-1 is paid in two installments of the same amount and
    ada orders twice, so an idempotency key too broad (the order, the amount) shows without a fault,
    and one too narrow (the message id, none) under a single fault."""
    return _checkout(charge, "exactly-once", 0, 2, SEARCHED_PAYMENTS, faults, faults)


def _judge_provider(run: Run) -> None:
    _fail_on_handler_error(run, "charge_at_provider")
    fail_unless_settled(run)
    _expect_provider_calls(run.broker)
    try:
        expect_each_order_charged(
            run, at_most_once=True, work_of=lambda e: installment_label(e["order"], e["installment"])
        )
    except CheckFailed as failure:
        if any(e.idempotency_key is None for e in run.broker.effects("charge")):
            raise CheckFailed(
                failure.reason + "\nYour calls to the provider carry no idempotency key, so it charges "
                "every call it gets; exactly-once processing cannot take back a call that already happened."
            ) from None
        raise


PROVIDER_SEARCH = Search(searched_provider_charges, _judge_provider, SEARCHED_FAULTS, max_faults=2, slow_by=3.0)


@register("05-provider-charge", points=2, title="a card charge safe to repeat")
def check_provider_charge(charge_at_provider: Any) -> None:
    expect_callable(charge_at_provider, "charge_at_provider", params=2)
    expect_every_sample(
        "05-provider-charge",
        "charge_at_provider",
        PROVIDER_SEARCH,
        charge_at_provider,
        sampled=provider_charges,
        faults=PROVIDER_FAULTS,
        seeds=SEEDS,
    )


def _expect_provider_calls(b: eb.Broker) -> None:
    for e in b.effects("charge"):
        if e.kind != "call":
            raise CheckFailed(
                "charge_at_provider recorded the charge with ctx.effect, a write to the shop's own database; "
                "here the card is charged by the payment provider: ctx.call('charge', idempotency_key=..., "
                "order=..., installment=..., amount=...)."
            )
        if any(field not in e.data for field in ("order", "installment", "amount")) or e.data["order"] != e.key:
            raise CheckFailed(
                f"charge_at_provider called the provider with {e.data} while handling {e.key} ({e.msg}): say "
                "which payment it is and how much, from the message being handled."
            )


# ---------------------------------------------------------------------------- replay

_REPLAYS = {
    "05-payment-handler": (paid_installments, PAYMENT_FAULTS),
    "05-fix-shipping": (shipped_orders, SHIPPING_FAULTS),
    "05-idempotent-refund": (refunded_orders, REFUND_FAULTS),
    "05-provider-charge": (provider_charges, PROVIDER_FAULTS),
}


_SEARCHES = {
    "05-payment-handler": PAYMENT_SEARCH,
    "05-fix-shipping": SHIPPING_SEARCH,
    "05-idempotent-refund": REFUND_SEARCH,
    "05-provider-charge": PROVIDER_SEARCH,
}


def replay_schedule(check_id: str, answer: Callable[..., Any], faults: list[tuple]) -> eb.Broker:
    """Rebuild one fault schedule a searched check names, with your answer; returns the broker (already run).

    >>> b = replay_schedule("05-payment-handler", charge_card, [("lose_ack", "m1", 1)])  # doctest: +SKIP
    >>> print(b.trace.table())                                                         # doctest: +SKIP
    """
    return replay_schedule_from(_SEARCHES, check_id, answer, faults)


def replay(check_id: str, answer: Callable[..., Any], *, seed: int, fault: str) -> eb.Broker:
    """Rebuild the run a failed check names, with your answer, and return its broker (already run).

    >>> b = replay("05-payment-handler", charge_card, seed=3, fault="producer retries")  # doctest: +SKIP
    >>> print(b.trace.table())                                                          # doctest: +SKIP

    A run that could not settle stops where the broker gave up.
    """
    return replay_from(_REPLAYS, check_id, answer, seed, fault)
