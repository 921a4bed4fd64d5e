"""Ready-made runs the lessons and explorers share: the queue demo and the payment scenario.

Each function builds a :class:`~evbroker.Broker` on the public API, runs it and returns it, so
``b.trace``, ``b.stats(...)`` and ``b.effects(...)`` are there to read. Nothing here plots.

>>> import evbroker as eb
>>> b = eb.scenarios.payments("at-least-once", "crash before ack")
>>> len(b.effects("charge"))        # four orders, one charged twice
5
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from evbroker.core.broker import GUARANTEES, Broker
from evbroker.core.faults import Faults
from evbroker.core.message import Context, Message
from evbroker.core.presets import PRESETS
from evbroker.errors import EvbrokerError, check_positive, one_of

QUEUE_MODES = ("queue", "pub/sub", "stacked")
#: Subscribing services, in the order pub/sub and stacked modes add them.
SERVICES = ("email", "billing", "analytics", "crm", "search", "audit")
QUEUE_TOPIC = "user.signed_up"

FAULTS = (
    "none",
    "crash before processing",
    "crash before ack",
    "lost ack",
    "lost delivery",
    "slow consumer",
    "producer retry",
)
#: What each fault mirrors in a real system, for docstrings, widgets and lessons.
FAULT_STORIES: dict[str, str] = {
    "none": "nothing goes wrong",
    "crash before processing": "the worker dies as the payment arrives, before charging (a pod killed)",
    "crash before ack": "the worker charges the card, then dies before its ack leaves",
    "lost ack": "the worker charges and acks, but the ack never reaches the broker",
    "lost delivery": "the payment never reaches the worker (a dropped connection)",
    "slow consumer": "the worker takes longer than the ack timeout: the broker takes it for dead",
    "producer retry": "checkout never hears the broker's confirmation and publishes the order again",
}
PAYMENTS_QUEUE = "payments"
PAYMENTS_PRODUCER = "checkout"


def _check_count(what: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EvbrokerError(f"{what} must be a whole number from {low} to {high} (got {value!r})")
    return value


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EvbrokerError(f"seed must be an int such as 0 or 42 (got {seed!r})")
    return seed


def queue_demo(
    mode: str = "queue",
    workers: int = 2,
    messages: int = 4,
    seed: int = 0,
    *,
    service_time: float = 1.0,
    interval: float = 0.0,
    jitter: float = 0.0,
) -> Broker:
    """One taker or every subscriber its own copy: the three shapes of delivery, run.

    - ``"queue"``: ``producer`` publishes ``messages`` jobs to the queue ``jobs``, read by
      ``workers`` competing consumers (``jobs-1``, ...): each job goes to one of them, round
      robin among free workers (RabbitMQ with ``prefetch_count=1``, an SQS queue polled by a
      worker pool).
    - ``"pub/sub"``: ``producer`` publishes ``messages`` events to the topic
      ``user.signed_up``; ``workers`` services (email, billing, analytics, ...) each bind their
      own queue with one worker, so every one of them gets every event (a fanout exchange,
      SNS, a Kafka topic read by several consumer groups).
    - ``"stacked"``: the topic fans out to three services, and each service's queue spreads
      its copies over ``workers`` workers of its own.

    ``interval`` spaces the publishes (0: a burst at t=0); ``jitter`` > 0 varies each job's
    service time by up to that fraction, drawn from ``random.Random(seed)``.
    """
    if mode not in QUEUE_MODES:
        raise one_of("queue_demo: mode", mode, QUEUE_MODES)
    _check_count("queue_demo: workers", workers, 1, len(SERVICES))
    _check_count("queue_demo: messages", messages, 1, 10_000)
    _check_seed(seed)
    check_positive("queue_demo: service_time", service_time)
    check_positive("queue_demo: interval", interval, allow_zero=True)
    check_positive("queue_demo: jitter", jitter, allow_zero=True)
    b = Broker(seed=seed)
    rng = random.Random(seed)
    times: dict[str, float] = {}

    def took(msg: Message) -> float:
        return times.get(msg.id, service_time)

    def handle(msg: Message, ctx: Context) -> None:
        pass

    if mode == "queue":
        b.queue("jobs")
        b.worker("jobs", handle, count=workers, service_time=took)
        dest = "jobs"
    else:
        b.topic(QUEUE_TOPIC)
        services = SERVICES[:workers] if mode == "pub/sub" else SERVICES[:3]
        for service in services:
            b.queue(service, bind=QUEUE_TOPIC)
            b.worker(service, handle, count=1 if mode == "pub/sub" else workers, service_time=took)
        dest = QUEUE_TOPIC
    for i in range(messages):
        payload = {"job": i + 1} if mode == "queue" else {"user": f"user-{i + 1}"}
        mid = b.publish(dest, payload, at=i * interval)
        times[mid] = service_time * (1 + jitter * rng.random()) if jitter else service_time
    b.run()
    return b


def backlog_demo(prefetch: int | None = None, messages: int = 8, *, slow_time: float = 5.0) -> Broker:
    """A fast and a slow worker share the queue ``jobs``: fair dispatch, or a backlog?

    ``producer`` publishes ``messages`` jobs at t=0; worker ``fast`` takes 1 time unit per job,
    ``slow`` takes ``slow_time``. With ``prefetch=None`` (RabbitMQ's default: no limit) the
    broker pushes the jobs round-robin as they arrive, so half of them queue up in the slow
    worker's own buffer while the fast one runs out of work; with ``prefetch=1`` (fair
    dispatch, ``basic.qos(prefetch_count=1)``) a job goes only to a free worker. The ack
    timeout is long (100), so nothing times out.
    """
    _check_count("backlog_demo: messages", messages, 1, 1000)
    check_positive("backlog_demo: slow_time", slow_time)
    b = Broker(seed=0)
    b.queue("jobs", ack_timeout=100.0)
    b.worker("jobs", _do_job, name="fast", service_time=1.0, prefetch=prefetch)
    b.worker("jobs", _do_job, name="slow", service_time=slow_time, prefetch=prefetch)
    for i in range(messages):
        b.publish("jobs", {"job": i + 1})
    b.run()
    return b


def _do_job(msg: Message, ctx: Context) -> None:
    pass


def payments(
    guarantee: str = "at-least-once",
    fault: str = "none",
    seed: int = 0,
    orders: int = 4,
    *,
    workers: int = 2,
    ack_timeout: float = 3.0,
    rate: float | None = None,
    handler: Callable[[Message, Context], Any] | None = None,
    like: str | None = None,
    slow_by: float | None = None,
    handler_errors: str = "warn",
) -> Broker:
    """The payment scenario: ``checkout`` publishes orders, ``payments`` workers charge cards.

    Orders ``order-1``, ``order-2``, ... are published every half time unit to the queue
    ``payments`` (with ``guarantee`` and ``ack_timeout``), read by ``workers`` workers that each
    take 1 time unit and record one ``charge`` effect per order.

    ``fault`` is one of :data:`FAULTS` (see :data:`FAULT_STORIES`). With ``rate=None`` the fault
    strikes one order, on its first delivery (or first publish, for ``"producer retry"``):
    ``order-2`` for ``seed=0``, the next order for each next seed. With ``rate`` in [0, 1) it
    strikes every delivery with that probability instead, drawn from the broker's seeded RNG.

    ``handler(msg, ctx)`` replaces the default charging handler, so a learner can try their
    own consumer (an idempotent one, say) under every guarantee and fault.

    ``like`` declares the queue with a broker preset (``"rabbitmq"``, ``"sqs"``, ...), whose
    own ack timeout then replaces ``ack_timeout``; ``slow_by`` is how much longer the slow
    consumer takes (default: ``ack_timeout + 1``, just past the timeout). ``handler_errors`` is
    the broker's (``"record"`` keeps a handler that fails on purpose out of the warnings).
    """
    if guarantee not in GUARANTEES:
        raise one_of("payments: guarantee", guarantee, GUARANTEES)
    if fault not in FAULTS:
        raise one_of("payments: fault", fault, FAULTS)
    _check_seed(seed)
    _check_count("payments: orders", orders, 1, 10_000)
    _check_count("payments: workers", workers, 1, 16)
    check_positive("payments: ack_timeout", ack_timeout, hint="; it is how long the broker waits for an ack")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1):
        raise EvbrokerError(
            f"payments: rate must be None (one order hit) or a probability in [0, 1) (got {rate!r}); "
            "at 1 every delivery fails and the payment can never settle"
        )
    if handler is not None and not callable(handler):
        raise EvbrokerError(f"payments: handler must be a function handler(msg, ctx) (got {handler!r})")
    chance: Any = payment_strikes(seed, orders) if rate is None else float(rate)
    b = Broker(seed=seed, handler_errors=handler_errors)
    set_up_payments(
        b,
        guarantee,
        fault,
        chance,
        orders=orders,
        workers=workers,
        ack_timeout=ack_timeout,
        handler=handler,
        like=like,
        slow_by=slow_by,
    )
    b.run()
    return b


def payment_strikes(seed: int, orders: int) -> Callable[[Message], bool]:
    """The payment scenario's one-order fault: true for one order's first delivery (or publish).

    That order is ``order-2`` for ``seed=0``, the next order for each next seed.
    """
    victim = f"order-{(seed + 1) % orders + 1}"

    def strikes(msg: Message) -> bool:
        return msg.key == victim and msg.attempt == 1

    return strikes


def set_up_payments(
    b: Any,
    guarantee: str,
    fault: str,
    chance: Any,
    *,
    orders: int = 4,
    workers: int = 2,
    ack_timeout: float = 3.0,
    handler: Callable[[Message, Context], Any] | None = None,
    like: str | None = None,
    slow_by: float | None = None,
) -> None:
    """Declare the payment scenario on ``b``, any broker with the kit's public set-up API.

    The ``payments`` queue, its workers (with ``fault`` striking when ``chance`` says so) and
    the orders' publishes; the caller runs it. Arguments are as for :func:`payments`, already
    checked; :func:`payments` and :func:`evbroker.real.conformance.payments` both build on it,
    so the simulator and a real broker run the very same scenario.
    """
    worker_faults = {
        "none": None,
        "crash before processing": Faults(crash_before_process=chance),
        "crash before ack": Faults(crash_before_ack=chance),
        "lost ack": Faults(lose_ack=chance),
        "lost delivery": Faults(lose_delivery=chance),
        "slow consumer": Faults(slow=chance, slow_by=ack_timeout + 1.0 if slow_by is None else slow_by),
        "producer retry": None,
    }[fault]
    publish_faults = Faults(lose_confirm=chance) if fault == "producer retry" else None
    if like is None:
        b.queue(PAYMENTS_QUEUE, guarantee=guarantee, ack_timeout=ack_timeout)
    else:
        b.queue(PAYMENTS_QUEUE, guarantee=guarantee, like=like)
    b.worker(PAYMENTS_QUEUE, handler or charge, count=workers, service_time=1.0, faults=worker_faults)
    for i in range(1, orders + 1):
        order = f"order-{i}"
        b.publish(
            PAYMENTS_QUEUE,
            {"order": order, "amount": 10 * i},
            at=0.5 * (i - 1),
            key=order,
            by=PAYMENTS_PRODUCER,
            faults=publish_faults,
        )


def charge(msg: Message, ctx: Context) -> None:
    """The payment scenario's plain handler: charge the card, nothing else (not idempotent).

    The charge is a call to the payment provider (``ctx.call``): it happens when the handler
    runs and no transaction of the consumer can take it back; it sends no idempotency key, so
    the provider charges every call it gets.
    """
    ctx.call("charge", order=msg.payload["order"], amount=msg.payload["amount"])


def payment_summary(b: Broker) -> dict[str, int]:
    """What happened to the money in a :func:`payments` run, from its stats, effects and trace.

    ``orders`` placed (publishes that were not retries), ``charges`` made, orders
    ``charged_twice`` (or more) and ``never_charged``; and the broker's own counts for the
    ``payments`` queue: ``lost``, ``duplicates`` (deliveries of one message id processed more
    than once), ``redeliveries``, ``dead_lettered``.
    """
    stats = b.stats(PAYMENTS_QUEUE)
    placed = [
        e.msg for e in b.trace.where(kind="publish", actor=PAYMENTS_PRODUCER) if not e.detail.startswith("retry of")
    ]
    charges = b.effects("charge")
    per_order: dict[Any, int] = {}
    for c in charges:
        per_order[c.key] = per_order.get(c.key, 0) + 1
    return {
        "orders": len(placed),
        "charges": len(charges),
        "charged_twice": sum(1 for n in per_order.values() if n > 1),
        "never_charged": len(placed) - len(per_order),
        "lost": stats["lost"],
        "duplicates": stats["duplicates"],
        "redeliveries": stats["redeliveries"],
        "dead_lettered": stats["dead_lettered"],
    }


#: The faults of the preset table: the payment faults, and a message whose handler always fails.
PRESET_FAULTS = (*FAULTS[1:], "poison message")
#: How long the preset table's slow consumer takes beyond its usual 1: a minute (a hung call).
PRESET_SLOW_BY = 60.0


def preset_run(like: str, fault: str, seed: int = 0) -> Broker | str:
    """One cell of :func:`preset_table`: the payment scenario on a queue declared ``like=``.

    ``"poison message"`` is order-2 whose handler raises on every delivery. Returns the
    finished broker, or ``"never settles"`` when a copy would be redelivered forever.
    """
    if fault not in PRESET_FAULTS:
        raise one_of("preset_run: fault", fault, PRESET_FAULTS)
    if fault != "poison message":
        return payments("at-least-once", fault, seed, like=like, slow_by=PRESET_SLOW_BY)

    def poisoned(msg: Message, ctx: Context) -> None:
        if msg.key == "order-2":
            raise ValueError("card number unreadable")
        charge(msg, ctx)

    try:
        return payments("at-least-once", "none", seed, like=like, handler=poisoned, handler_errors="record")
    except EvbrokerError:
        return "never settles"


def preset_verdict(b: Broker | str) -> str:
    """A :func:`preset_run` in a few words: what happened to the money, how soon a copy came back.

    ``"1 twice, back +30"``: one order charged twice, the copy redelivered 30 after it was sent;
    ``"ok, back +0"``: nothing lost, nothing doubled, the copy requeued at once;
    ``"dead letter at 20"``: set aside after 20 deliveries; ``"forever"``: never settles.
    """
    if isinstance(b, str):
        return "forever"
    s = payment_summary(b)
    if s["dead_lettered"]:
        return f"dead letter at {max(e.attempt for e in b.trace.where(kind='dead-letter'))}"
    parts = []
    if s["never_charged"]:
        parts.append(f"{s['never_charged']} lost")
    if s["charged_twice"]:
        parts.append(f"{s['charged_twice']} twice")
    back = b.trace.where(kind="redeliver")
    if back:
        sent = b.trace.where(kind="deliver", msg=back[0].msg)[0].time
        parts.append(f"back +{back[0].time - sent:g}")
    if not parts or parts[0].startswith("back"):
        parts.insert(0, "ok")
    return ", ".join(parts)


def preset_table(seed: int = 0) -> str:
    """Every fault under every broker preset, at-least-once: a plain-text table to check the docs by.

    Each cell (see :func:`preset_verdict`) says what happened to the four orders (``ok``,
    ``1 twice``: one charged twice, ...) and how long after the delivery the broker took the
    copy back (``back +1``: requeued as the consumer's connection dropped; ``back +30``: only
    once the timeout ran out); ``forever``: a poison message is redelivered without end.
    """
    presets = list(PRESETS)
    width = max(len(f) for f in PRESET_FAULTS) + 2
    cells = {(f, p): preset_verdict(preset_run(p, f, seed)) for f in PRESET_FAULTS for p in presets}
    col = max(max(len(c) for c in cells.values()), *(len(p) for p in presets)) + 2
    lines = [f"{'fault':{width}}" + "".join(f"{p:{col}}" for p in presets).rstrip()]
    for f in PRESET_FAULTS:
        lines.append(f"{f:{width}}" + "".join(f"{cells[f, p]:{col}}" for p in presets).rstrip())
    return "\n".join(lines)
