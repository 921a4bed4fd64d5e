"""Faults: what goes wrong between a producer, the broker and its consumers.

Each fault is a probability drawn from the broker's seeded RNG (same seed, same faults) or
a predicate ``callable(msg) -> bool`` that picks exactly the delivery to hit. Producers have
one fault of their own: a lost publish confirmation, which makes them publish again.
"""

import pytest

import evbroker as eb


def kinds(b, *only):
    return [(e.time, e.kind, e.actor, e.msg, e.attempt) for e in b.trace if not only or e.kind in only]


def test_a_lost_delivery_leaves_the_worker_free_and_the_copy_in_flight():
    """The copy never reaches the worker, so the worker stays free and takes m2 at once; the
    broker still waits for an ack of m1, and redelivers it when ack_timeout runs out."""
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=3.0)
    b.worker(
        "orders",
        lambda msg, ctx: ctx.effect("done"),
        faults=eb.Faults(lose_delivery=lambda m: m.attempt == 1 and m.id == "m1"),
    )
    b.publish("orders", 1)
    b.publish("orders", 2)
    b.run()
    assert kinds(b, "deliver", "delivery-lost", "timeout", "redeliver", "ack") == [
        (0, "deliver", "orders", "m1", 1),
        (0, "delivery-lost", "orders", "m1", 1),
        (0, "deliver", "orders", "m2", 1),
        (1, "ack", "orders-1", "m2", 1),
        (3, "timeout", "orders", "m1", 1),
        (3, "redeliver", "orders", "m1", 2),
        (3, "deliver", "orders", "m1", 2),
        (4, "ack", "orders-1", "m1", 2),
    ]


def test_a_lost_delivery_under_at_most_once_is_a_lost_message():
    b = eb.Broker(seed=0)
    b.queue("orders", guarantee="at-most-once")
    b.worker("orders", lambda msg, ctx: ctx.effect("done"), faults=eb.Faults(lose_delivery=1.0))
    b.publish("orders", 1)
    b.run()
    assert kinds(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "orders", "m1", 1),
        (0, "delivery-lost", "orders", "m1", 1),
        (0, "lost", "orders", "m1", 1),
    ]
    assert b.stats("orders")["lost"] == 1


def test_a_crash_during_processing_commits_nothing():
    """The worker dies halfway (t=0.5): the handler ran, but its effects were never
    committed, so nothing happened. The redelivery does the work once, for real."""
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=3.0)
    b.worker(
        "orders", lambda msg, ctx: ctx.effect("charge"), faults=eb.Faults(crash_during_process=lambda m: m.attempt == 1)
    )
    b.publish("orders", 1)
    b.run()
    assert kinds(b, "crash", "restart", "timeout", "redeliver", "effect") == [
        (0.5, "crash", "orders-1", "m1", 1),
        (2.5, "restart", "orders-1", None, None),
        (3, "timeout", "orders", "m1", 1),
        (3, "redeliver", "orders", "m1", 2),
        (4, "effect", "orders-1", "m1", 2),
    ]
    assert b.now == 4  # the abandoned delivery's completion at t=1 never happens


def test_a_crashed_worker_comes_back_after_restart_after():
    b = eb.Broker(seed=0)
    b.queue("orders")
    b.worker(
        "orders",
        lambda msg, ctx: None,
        faults=eb.Faults(crash_before_process=lambda m: m.attempt == 1),
        restart_after=0.25,
    )
    b.publish("orders", 1)
    b.run()
    assert kinds(b, "crash", "restart") == [
        (0, "crash", "orders-1", "m1", 1),
        (0.25, "restart", "orders-1", None, None),
    ]


def test_a_crashed_worker_leaves_the_line_to_its_colleague():
    """While orders-1 is down (t=0 to 5), orders-2 takes every copy; m1 comes back when its
    ack timeout runs out, by which time orders-1 is up again and it is orders-1's turn."""
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=10.0)
    b.worker(
        "orders",
        lambda msg, ctx: None,
        count=2,
        faults=eb.Faults(crash_before_process=lambda m: m.id == "m1" and m.attempt == 1),
        restart_after=5,
    )
    for _ in range(3):
        b.publish("orders", None)
    b.run()
    assert [(e.time, e.msg, e.to) for e in b.trace.where(kind="deliver")] == [
        (0, "m1", "orders-1"),
        (0, "m2", "orders-2"),
        (1, "m3", "orders-2"),
        (10, "m1", "orders-1"),
    ]


def test_the_slow_fault_adds_slow_by_to_the_service_time():
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=10.0)
    b.worker(
        "orders",
        lambda msg, ctx: ctx.effect("done"),
        service_time=2.0,
        faults=eb.Faults(slow=lambda m: m.id == "m2", slow_by=3.0),
    )
    b.publish("orders", 1)
    b.publish("orders", 2)
    b.run()
    assert [(e.msg, e.detail) for e in b.trace.where(kind="process")] == [
        ("m1", "takes 2"),
        ("m2", "slow: takes 5 (ack_timeout 10)"),
    ]
    assert [e.time for e in b.effects("done")] == [2, 7]


def test_probabilities_come_from_the_seed():
    """Same seed, same faults: two brokers set up alike make the same choices. Over many
    deliveries a probability of 0.3 hits about 30% of them."""

    def run(seed):
        b = eb.Broker(seed=seed)
        b.queue("orders", guarantee="at-most-once")
        b.worker(
            "orders",
            lambda msg, ctx: ctx.effect("done"),
            count=4,
            faults=eb.Faults(crash_before_process=0.3),
            restart_after=0.01,
        )
        for i in range(400):
            b.publish("orders", i, at=i * 1.0)
        b.run()
        return [e.msg for e in b.trace.where(kind="lost")]

    first, again, other = run(7), run(7), run(8)
    assert first == again
    assert first != other
    assert 0.2 < len(first) / 400 < 0.4


def test_probability_zero_never_and_one_always():
    b = eb.Broker(seed=0)
    b.queue("never", guarantee="at-most-once")
    b.queue("always", guarantee="at-most-once")
    b.worker("never", lambda msg, ctx: None, faults=eb.Faults(lose_delivery=0))
    b.worker("always", lambda msg, ctx: None, faults=eb.Faults(lose_delivery=1))
    for i in range(5):
        b.publish("never", i, at=i)
        b.publish("always", i, at=i)
    b.run()
    assert (b.stats("never")["lost"], b.stats("always")["lost"]) == (0, 5)


def test_a_predicate_sees_the_message_with_its_attempt():
    seen = []

    def predicate(m):
        seen.append((m.id, m.attempt, m.queue))
        return m.attempt == 1

    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=2.0)
    b.worker("orders", lambda msg, ctx: None, faults=eb.Faults(lose_ack=predicate))
    b.publish("orders", 1)
    b.run()
    assert seen == [("m1", 1, "orders"), ("m1", 2, "orders")]


# ---------------------------------------------------------------- producer retries


def test_a_producer_whose_confirmation_is_lost_publishes_again_under_a_new_id():
    """The broker got m1, but the producer never heard so. After ``retry_after`` it publishes
    the same payload and key again: the broker sees a new message, m2. Deduping by message id
    cannot catch this duplicate; deduping by the business key can."""
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="exactly-once")
    b.worker("payments", lambda msg, ctx: ctx.effect("charge", order=msg.key))
    mid = b.publish(
        "payments",
        {"amount": 10},
        key="order-7",
        faults=eb.Faults(lose_confirm=lambda m: m.attempt == 1, retry_after=2.0),
    )
    b.run()
    assert mid == "m1"
    assert [
        (e.time, e.kind, e.actor, e.msg, e.detail, e.to) for e in b.trace.where(kind=("publish", "confirm-lost"))
    ] == [
        (0, "publish", "producer", "m1", "", "payments"),
        (0, "confirm-lost", "producer", "m1", "will publish again in 2", "payments"),
        (2, "publish", "producer", "m2", "retry of m1", "payments"),
    ]
    assert [(e.msg, e.key) for e in b.effects("charge")] == [("m1", "order-7"), ("m2", "order-7")]


def test_deduping_by_business_key_survives_producer_retries():
    b = eb.Broker(seed=0)
    b.queue("payments")

    def charge_once(msg, ctx):
        if ctx.seen(msg.key):
            return
        ctx.effect("charge", order=msg.key)
        ctx.remember(msg.key)

    b.worker("payments", charge_once)
    b.publish("payments", {"amount": 10}, key="order-7", faults=eb.Faults(lose_confirm=1.0))
    b.run()
    assert [e.msg for e in b.trace.where(kind="publish")] == ["m1", "m2", "m3", "m4"]
    assert [(e.msg, e.key) for e in b.effects("charge")] == [("m1", "order-7")]


def test_a_producer_gives_up_retrying_after_three_retries():
    """A producer retries a lost confirmation at most three times (four publishes)."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.publish("orders", 1, by="shop", faults=eb.Faults(lose_confirm=1.0, retry_after=0.5))
    b.run()
    assert [(e.time, e.kind, e.msg) for e in b.trace.where(kind=("publish", "confirm-lost"))] == [
        (0, "publish", "m1"),
        (0, "confirm-lost", "m1"),
        (0.5, "publish", "m2"),
        (0.5, "confirm-lost", "m2"),
        (1.0, "publish", "m3"),
        (1.0, "confirm-lost", "m3"),
        (1.5, "publish", "m4"),
    ]
    assert b.trace.actors["shop"] == "producer"


def test_a_handler_publication_is_retried_with_the_worker_faults():
    """A worker is a producer too: its ``lose_confirm`` applies to what its handler publishes."""
    b = eb.Broker(seed=0)
    b.queue("orders")
    b.queue("invoices")
    b.worker(
        "orders",
        lambda msg, ctx: ctx.publish("invoices", msg.payload, key=msg.key),
        faults=eb.Faults(lose_confirm=lambda m: m.attempt == 1),
    )
    b.worker("invoices", lambda msg, ctx: ctx.effect("invoice", key=msg.key))
    b.publish("orders", 1, key="o-1")
    b.run()
    assert [(e.time, e.actor, e.msg, e.detail) for e in b.trace.where(kind="publish")] == [
        (0, "producer", "m1", ""),
        (1, "orders-1", "m2", ""),
        (2, "orders-1", "m3", "retry of m2"),
    ]
    assert [(e.msg, e.key) for e in b.effects("invoice")] == [("m2", "o-1"), ("m3", "o-1")]


# ---------------------------------------------------------------- outages


def test_an_outage_abandons_work_in_progress_and_messages_wait_for_the_worker():
    """Outage from t=0.5 to t=4: m1's work is abandoned (never committed), m2 waits in the
    queue. When the worker is back, m1 is redelivered (its ack never came) and m2 follows."""
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=3.0)
    b.worker("orders", lambda msg, ctx: ctx.effect("done"))
    b.outage("orders-1", start=0.5, end=4.0)
    b.publish("orders", 1)
    b.publish("orders", 2, at=1.0)
    b.run()
    assert kinds(b, "crash", "restart", "timeout", "redeliver", "deliver", "effect") == [
        (0, "deliver", "orders", "m1", 1),
        (0.5, "crash", "orders-1", "m1", 1),
        (3, "timeout", "orders", "m1", 1),
        (3, "redeliver", "orders", "m1", 2),
        (4, "restart", "orders-1", None, None),
        (4, "deliver", "orders", "m1", 2),
        (5, "effect", "orders-1", "m1", 2),
        (5, "deliver", "orders", "m2", 1),
        (6, "effect", "orders-1", "m2", 1),
    ]
    assert b.trace.where(kind="crash")[0].detail == "outage: work in progress abandoned"


def test_an_outage_of_a_queue_takes_down_all_its_workers():
    b = eb.Broker(seed=0)
    b.queue("orders")
    b.worker("orders", lambda msg, ctx: None, count=2)
    b.outage("orders", 1.0, 2.0)
    b.run()
    assert kinds(b) == [
        (1, "crash", "orders-1", None, None),
        (1, "crash", "orders-2", None, None),
        (2, "restart", "orders-1", None, None),
        (2, "restart", "orders-2", None, None),
    ]


def test_a_worker_that_crashed_stays_down_until_its_outage_ends():
    """A crash at t=0 would restart the worker at t=2, but an outage from t=1 to t=6 keeps it
    down: one restart, at t=6."""
    b = eb.Broker(seed=0)
    b.queue("orders", ack_timeout=20.0)
    b.worker("orders", lambda msg, ctx: None, faults=eb.Faults(crash_before_process=lambda m: m.attempt == 1))
    b.outage("orders-1", 1.0, 6.0)
    b.publish("orders", 1)
    b.run()
    assert kinds(b, "crash", "restart") == [(0, "crash", "orders-1", "m1", 1), (6, "restart", "orders-1", None, None)]


def test_overlapping_outages_keep_the_worker_down_until_the_last_one_ends():
    b = eb.Broker(seed=0)
    b.queue("orders")
    b.worker("orders", lambda msg, ctx: ctx.effect("done"))
    b.outage("orders-1", 1.0, 4.0)
    b.outage("orders-1", 2.0, 6.0)
    b.publish("orders", 1, at=3.0)
    b.run()
    assert kinds(b, "crash", "restart", "deliver") == [
        (1, "crash", "orders-1", None, None),
        (6, "restart", "orders-1", None, None),
        (6, "deliver", "orders", "m1", 1),
    ]


def test_an_outage_under_at_most_once_loses_the_work_in_progress():
    b = eb.Broker(seed=0)
    b.queue("orders", guarantee="at-most-once")
    b.worker("orders", lambda msg, ctx: ctx.effect("done"))
    b.outage("orders", 0.5, 1.0)
    b.publish("orders", 1)
    b.run()
    assert [(e.time, e.kind, e.detail) for e in b.trace.where(kind="lost")] == [
        (0.5, "lost", "worker taken down during processing")
    ]
    assert b.effects() == []


# ---------------------------------------------------------------- the Faults value


def test_faults_lists_what_can_happen():
    assert eb.Faults().active() == []
    assert not eb.Faults()
    assert eb.Faults(lose_ack=0.2, slow=lambda m: True).active() == ["lose_ack", "slow"]
    assert eb.Faults(lose_ack=0.2)


@pytest.mark.parametrize(
    "field",
    [
        "crash_before_process",
        "crash_during_process",
        "crash_before_ack",
        "lose_ack",
        "lose_delivery",
        "slow",
        "lose_confirm",
    ],
)
def test_every_fault_accepts_a_probability_or_a_predicate(field):
    assert getattr(eb.Faults(**{field: 0.25}), field) == 0.25
    assert eb.Faults(**{field: 1}).active() == [field]
    assert eb.Faults(**{field: lambda m: False}).active() == [field]
