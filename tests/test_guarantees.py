"""Delivery guarantees: what a crash, a lost ack or a slow consumer does under each of them.

- at-most-once: the broker forgets a copy as soon as it sends it (auto-ack). Whatever goes
  wrong afterwards, the copy is lost; it is never redelivered.
- at-least-once: the consumer acks after the work. No ack within ``ack_timeout`` and the
  broker redelivers (attempt + 1, to the head of the queue), because it cannot tell a dead
  consumer from a slow one. Nothing is lost; work may happen twice.
- exactly-once: at-least-once delivery plus a per-queue dedupe store of message ids,
  committed atomically with the handler's effects. A redelivered copy that was already
  processed is acked without running the handler again.
"""

import pytest

import evbroker as eb


def charge(msg, ctx):
    ctx.effect("charge", order=msg.payload)


def payments(guarantee, faults, **queue):
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee=guarantee, **queue)
    b.worker("payments", charge, faults=faults)
    return b


def timeline(b, skip=("process",)):
    return [(e.time, e.kind, e.actor, e.msg, e.attempt) for e in b.trace if e.kind not in skip]


# ---------------------------------------------------------------- the seed scenarios


def test_at_least_once_crash_after_charging_before_the_ack_charges_twice():
    """The seed's double charge, step by step.

    1. the broker delivers m1; 2. the worker charges the card; 3. it crashes before the ack;
    4. the broker hears nothing for ack_timeout (5) and redelivers, attempt 2; 5. the
    restarted worker charges the card again, and this time the ack arrives.
    """
    b = payments("at-least-once", eb.Faults(crash_before_ack=lambda m: m.attempt == 1))
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (1, "effect", "payments-1", "m1", 1),
        (1, "complete", "payments-1", "m1", 1),
        (1, "crash", "payments-1", "m1", 1),
        (3, "restart", "payments-1", None, None),
        (5, "timeout", "payments", "m1", 1),
        (5, "redeliver", "payments", "m1", 2),
        (5, "deliver", "payments", "m1", 2),
        (6, "effect", "payments-1", "m1", 2),
        (6, "complete", "payments-1", "m1", 2),
        (6, "ack", "payments-1", "m1", 2),
    ]
    assert [(e.msg, e.attempt) for e in b.effects("charge")] == [("m1", 1), ("m1", 2)]
    assert b.stats("payments") == {
        "copies": 1,
        "deliveries": 2,
        "processed": 2,
        "unique_processed": 1,
        "duplicates": 1,
        "lost": 0,
        "dead_lettered": 0,
        "acked": 1,
        "redeliveries": 1,
        "pending": 0,
    }


def test_at_most_once_crash_before_processing_loses_the_order_for_good():
    """Auto-ack: the broker forgot m1 when it sent it. The worker dies before the handler
    runs, so nobody charges, and nobody ever retries."""
    b = payments("at-most-once", eb.Faults(crash_before_process=lambda m: m.id == "m1"))
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (0, "crash", "payments-1", "m1", 1),
        (0, "lost", "payments", "m1", 1),
        (2, "restart", "payments-1", None, None),
    ]
    assert b.effects("charge") == []
    stats = b.stats("payments")
    assert (stats["lost"], stats["redeliveries"], stats["processed"], stats["pending"]) == (1, 0, 0, 0)


def test_at_most_once_crash_after_charging_charges_once():
    """Same crash, later: the card was charged before the worker died. With nothing to
    redeliver, the charge happens exactly once (by luck, not by design)."""
    b = payments("at-most-once", eb.Faults(crash_before_ack=lambda m: m.id == "m1"))
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (1, "effect", "payments-1", "m1", 1),
        (1, "complete", "payments-1", "m1", 1),
        (1, "crash", "payments-1", "m1", 1),
        (3, "restart", "payments-1", None, None),
    ]
    assert [e.msg for e in b.effects("charge")] == ["m1"]
    assert b.stats("payments")["redeliveries"] == 0


def test_exactly_once_crash_before_the_ack_charges_once():
    """At-least-once delivery plus dedupe. The charge and the record "m1 done" commit
    together; the worker crashes before the ack, the broker redelivers (it must), and the
    redelivery is recognised and acked without charging again."""
    b = payments("exactly-once", eb.Faults(crash_before_ack=lambda m: m.attempt == 1))
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (1, "effect", "payments-1", "m1", 1),
        (1, "complete", "payments-1", "m1", 1),
        (1, "crash", "payments-1", "m1", 1),
        (3, "restart", "payments-1", None, None),
        (5, "timeout", "payments", "m1", 1),
        (5, "redeliver", "payments", "m1", 2),
        (5, "deliver", "payments", "m1", 2),
        (5, "dedup", "payments-1", "m1", 2),
        (5, "ack", "payments-1", "m1", 2),
    ]
    assert [(e.msg, e.attempt) for e in b.effects("charge")] == [("m1", 1)]
    stats = b.stats("payments")
    assert (stats["deliveries"], stats["processed"], stats["duplicates"], stats["acked"]) == (2, 1, 0, 1)


# ---------------------------------------------------------------- acks and timeouts


def test_a_lost_ack_looks_like_a_crash_to_the_broker():
    """The worker is fine and sends its ack; the network drops it. The broker cannot tell
    the difference and redelivers: the work happens twice under at-least-once."""
    b = payments("at-least-once", eb.Faults(lose_ack=lambda m: m.attempt == 1))
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (1, "effect", "payments-1", "m1", 1),
        (1, "complete", "payments-1", "m1", 1),
        (1, "ack-lost", "payments-1", "m1", 1),
        (5, "timeout", "payments", "m1", 1),
        (5, "redeliver", "payments", "m1", 2),
        (5, "deliver", "payments", "m1", 2),
        (6, "effect", "payments-1", "m1", 2),
        (6, "complete", "payments-1", "m1", 2),
        (6, "ack", "payments-1", "m1", 2),
    ]


def test_a_slow_consumer_is_taken_for_dead_and_its_late_ack_is_ignored():
    """The broker cannot tell slow from dead. payments-1 needs 6 for m1 (slow by 5) but the
    ack timeout is 5: at t=5 the broker redelivers m1 to payments-2 while payments-1 is still
    working. Both charge. payments-1's ack arrives at t=6 for a delivery that already timed
    out: it is recorded as a late ack and ignored; payments-2's ack settles the copy."""
    b = eb.Broker(seed=0)
    b.queue("payments", ack_timeout=5.0)
    b.worker("payments", charge, count=2, faults=eb.Faults(slow=lambda m: m.attempt == 1, slow_by=5.0))
    b.publish("payments", "order-1")
    b.run()
    assert [(e.time, e.kind, e.actor, e.attempt, e.detail) for e in b.trace if e.msg == "m1"] == [
        (0, "publish", "producer", None, ""),
        (0, "deliver", "payments", 1, ""),
        (0, "process", "payments-1", 1, "slow: takes 6 (ack_timeout 5)"),
        (
            5,
            "timeout",
            "payments",
            1,
            "no ack within 5 (processing takes 6: longer than ack_timeout, so it can never ack in time)",
        ),
        (5, "redeliver", "payments", 2, "back to the head of the queue"),
        (5, "deliver", "payments", 2, ""),
        (5, "process", "payments-2", 2, "takes 1"),
        (6, "effect", "payments-1", 1, "charge order=order-1"),
        (6, "complete", "payments-1", 1, ""),
        (6, "late-ack", "payments-1", 1, "this delivery already timed out: ignored"),
        (6, "effect", "payments-2", 2, "charge order=order-1"),
        (6, "complete", "payments-2", 2, ""),
        (6, "ack", "payments-2", 2, ""),
    ]
    assert b.stats("payments")["acked"] == 1
    # Each charge is stamped with the delivery that made it, even though payments-1 finished
    # after the copy had been redelivered.
    assert [(e.worker, e.attempt) for e in b.effects("charge")] == [("payments-1", 1), ("payments-2", 2)]


def test_an_ack_that_arrives_exactly_at_the_timeout_wins():
    """Same-instant order is fixed: work finishing (and its ack) settles before a timeout
    fires, so processing that takes exactly ack_timeout is not redelivered."""
    b = eb.Broker(seed=0)
    b.queue("payments", ack_timeout=2.0)
    b.worker("payments", charge, service_time=2.0)
    b.publish("payments", "order-1")
    b.run()
    assert [e.kind for e in b.trace] == ["publish", "deliver", "process", "effect", "complete", "ack"]
    assert b.now == 2


def test_a_redelivered_copy_goes_to_the_head_of_the_queue():
    """m1's ack is lost; while it waits, m2 and m3 queue up behind the busy worker. When m1
    times out it is redelivered ahead of them, not behind."""
    b = eb.Broker(seed=0)
    b.queue("payments", ack_timeout=1.5)
    b.worker("payments", charge, faults=eb.Faults(lose_ack=lambda m: m.id == "m1" and m.attempt == 1))
    b.publish("payments", "a")
    b.publish("payments", "b", at=0.5)
    b.publish("payments", "c", at=0.6)
    b.run()
    assert [(e.time, e.msg, e.attempt) for e in b.trace.where(kind="deliver")] == [
        (0, "m1", 1),
        (1, "m2", 1),
        (2, "m1", 2),
        (3, "m3", 1),
    ]


def test_always_too_slow_is_a_redelivery_storm_stopped_by_max_deliveries():
    """Every delivery takes longer than the ack timeout, so no ack ever counts. With
    max_deliveries=3 the broker gives up after the third delivery and dead-letters the copy,
    meanwhile the work was done three times."""
    b = eb.Broker(seed=0)
    b.queue("payments", ack_timeout=1.0, max_deliveries=3)
    b.worker("payments", charge, count=3, service_time=2.5)
    b.publish("payments", "order-1")
    b.run()
    assert [(e.time, e.kind, e.attempt) for e in b.trace.where(kind=("timeout", "redeliver", "dead-letter"))] == [
        (1, "timeout", 1),
        (1, "redeliver", 2),
        (2, "timeout", 2),
        (2, "redeliver", 3),
        (3, "timeout", 3),
        (3, "dead-letter", 3),
    ]
    assert [(e.time, e.worker) for e in b.effects("charge")] == [
        (2.5, "payments-1"),
        (3.5, "payments-2"),
        (4.5, "payments-3"),
    ]
    assert [e.kind for e in b.trace.where(kind="late-ack")] == ["late-ack"] * 3
    assert b.dead_letters("payments") == [eb.Message("m1", "order-1", None, "payments", "payments", 3)]
    stats = b.stats("payments")
    assert (stats["dead_lettered"], stats["acked"], stats["pending"], stats["duplicates"]) == (1, 0, 0, 2)


def test_dead_letters_can_go_to_a_dead_letter_queue():
    """With ``dead_letter=`` a copy that runs out of deliveries is moved to that queue (a DLQ),
    same message id, where another worker can inspect or repair it."""
    b = eb.Broker(seed=0)
    b.queue("parking")
    b.queue("payments", max_deliveries=2, dead_letter="parking")

    def broken(msg, ctx):
        raise ValueError("card declined")

    b.worker("payments", broken)
    parked = []
    b.worker("parking", lambda msg, ctx: parked.append((ctx.now, msg.id, msg.topic, msg.queue, msg.attempt)))
    b.publish("payments", "order-1")
    b.run()
    assert [
        (e.time, e.kind, e.actor, e.attempt, e.detail) for e in b.trace.where(kind=("handler-error", "dead-letter"))
    ] == [
        (1, "handler-error", "payments-1", 1, "handler raised ValueError: card declined"),
        (2, "handler-error", "payments-1", 2, "handler raised ValueError: card declined"),
        (2, "dead-letter", "payments", 2, "after 2 deliveries (handler raised ValueError: card declined)"),
    ]
    assert parked == [(2, "m1", "payments", "parking", 1)]
    assert b.stats("parking")["copies"] == 1
    assert b.dead_letters("payments") == [eb.Message("m1", "order-1", None, "payments", "payments", 2)]


def test_a_handler_that_raises_is_redelivered_at_once_under_at_least_once():
    """A handler exception is a processing failure: the consumer nacks, so the broker does
    not wait for the timeout; the copy goes back to the head of the queue as attempt 2."""
    b = eb.Broker(seed=0)
    b.queue("payments")

    def flaky(msg, ctx):
        if msg.attempt == 1:
            raise ConnectionError("database unavailable")
        ctx.effect("charge")

    b.worker("payments", flaky)
    b.publish("payments", "order-1")
    b.run()
    assert timeline(b) == [
        (0, "publish", "producer", "m1", None),
        (0, "deliver", "payments", "m1", 1),
        (1, "handler-error", "payments-1", "m1", 1),
        (1, "redeliver", "payments", "m1", 2),
        (1, "deliver", "payments", "m1", 2),
        (2, "effect", "payments-1", "m1", 2),
        (2, "complete", "payments-1", "m1", 2),
        (2, "ack", "payments-1", "m1", 2),
    ]


def test_a_handler_that_raises_under_at_most_once_loses_the_copy():
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="at-most-once")
    b.worker("payments", lambda msg, ctx: 1 / 0)
    b.publish("payments", "order-1")
    b.run()
    assert [(e.kind, e.detail) for e in b.trace.where(kind=("handler-error", "lost", "redeliver"))] == [
        ("handler-error", "handler raised ZeroDivisionError: division by zero"),
        ("lost", "handler raised ZeroDivisionError: division by zero"),
    ]


def test_a_mistake_in_using_the_kit_inside_a_handler_stops_the_run():
    """An EvbrokerError raised inside a handler (here: publishing to a topic that does not
    exist) is a programming error, not a processing failure: it propagates out of run()
    instead of being retried forever."""
    b = eb.Broker(seed=0)
    b.topic("invoices")
    b.queue("billing")
    b.worker("billing", lambda msg, ctx: ctx.publish("invoice", msg.payload))
    b.publish("billing", 1)
    with pytest.raises(
        eb.EvbrokerError, match=r"ctx.publish: no topic or queue named 'invoice'; did you mean 'invoices'\?"
    ):
        b.run()


def test_retry_delay_and_backoff_space_out_redeliveries():
    """``retry_delay * retry_backoff ** (n - 1)`` before the n-th redelivery: 1, then 2, then 4."""
    b = eb.Broker(seed=0)
    b.queue("payments", retry_delay=1.0, retry_backoff=2.0)
    b.worker("payments", charge, faults=eb.Faults(crash_before_process=lambda m: m.attempt <= 3), restart_after=0.5)
    b.publish("payments", "order-1")
    b.run()
    assert [(e.time, e.kind, e.attempt) for e in b.trace.where(kind=("timeout", "redeliver"))] == [
        (5, "timeout", 1),
        (6, "redeliver", 2),
        (11, "timeout", 2),
        (13, "redeliver", 3),
        (18, "timeout", 3),
        (22, "redeliver", 4),
    ]
    assert [(e.time, e.attempt) for e in b.effects("charge")] == [(23, 4)]
    assert b.stats("payments")["pending"] == 0


def test_pending_counts_copies_waiting_to_be_retried():
    """Between a failure and its delayed redelivery the copy is neither ready nor in flight,
    but the broker still holds it: ``pending`` counts it."""
    b = eb.Broker(seed=0)
    b.queue("payments", retry_delay=10.0)
    b.worker("payments", lambda msg, ctx: 1 / 0 if msg.attempt == 1 else None)
    b.publish("payments", "order-1")
    b.run(until=5)
    assert b.stats("payments")["pending"] == 1
    b.run()
    assert b.stats("payments")["pending"] == 0
    assert b.now == 12


# ---------------------------------------------------------------- exactly-once and idempotence


def test_exactly_once_rolls_back_the_second_of_two_concurrent_deliveries():
    """A slow first delivery and its redelivery run at the same time on two workers. Whichever
    commits first wins; the other finds m1 already in the dedupe store and rolls back, so the
    card is charged once, though the handler ran twice."""
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="exactly-once", ack_timeout=5.0)
    b.worker("payments", charge, count=2, faults=eb.Faults(slow=lambda m: m.attempt == 1, slow_by=5.5))
    b.publish("payments", "order-1")
    b.run()
    assert [(e.time, e.kind, e.actor, e.attempt) for e in b.trace if e.kind != "process"] == [
        (0, "publish", "producer", None),
        (0, "deliver", "payments", 1),
        (5, "timeout", "payments", 1),
        (5, "redeliver", "payments", 2),
        (5, "deliver", "payments", 2),
        (6, "effect", "payments-2", 2),
        (6, "complete", "payments-2", 2),
        (6, "ack", "payments-2", 2),
        (6.5, "dedup", "payments-1", 1),
        (6.5, "late-ack", "payments-1", 1),
    ]
    assert (
        b.trace.where(kind="dedup")[0].detail
        == "m1 was committed by another delivery meanwhile: rolled back, nothing applied"
    )
    assert len(b.effects("charge")) == 1
    stats = b.stats("payments")
    assert (stats["processed"], stats["duplicates"]) == (1, 0)


def test_exactly_once_dedupes_by_message_id_per_queue():
    """The store belongs to a queue: billing and email each process their own copy of m1."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    for service in ("billing", "email"):
        b.queue(service, bind="orders", guarantee="exactly-once")
        b.worker(service, lambda msg, ctx: ctx.effect("done", q=msg.queue))
    b.publish("orders", 1)
    b.run()
    assert [(e.msg, e.data["q"]) for e in b.effects("done")] == [("m1", "billing"), ("m1", "email")]


@pytest.mark.parametrize(
    ("when", "charges", "why"),
    [
        ("commit", 1, "the key commits with the charge: the redelivery sees it and skips"),
        ("after-ack", 2, "the crash came before the ack, so the key was never written"),
    ],
)
def test_remembering_a_business_key_at_the_right_moment(when, charges, why):
    """An idempotent consumer under at-least-once: check ``ctx.seen(key)``, do the work,
    ``ctx.remember(key)``. Where the record is written decides whether a crash before the ack
    leads to a second charge."""
    b = eb.Broker(seed=0)
    b.queue("payments")

    def idempotent_charge(msg, ctx):
        if ctx.seen(msg.key):
            ctx.effect("skipped", order=msg.key)
            return
        ctx.effect("charge", order=msg.key)
        ctx.remember(msg.key, when=when)

    b.worker("payments", idempotent_charge, faults=eb.Faults(crash_before_ack=lambda m: m.attempt == 1))
    b.publish("payments", {"amount": 10}, key="order-7")
    b.run()
    assert len(b.effects("charge")) == charges, why
    assert len(b.effects("skipped")) == 2 - charges


def test_remembering_too_early_loses_the_work():
    """``when="start"`` writes the record before the work commits. The worker dies halfway;
    the redelivery finds the key and skips: the order is never charged."""
    b = eb.Broker(seed=0)
    b.queue("payments")

    def premature(msg, ctx):
        if ctx.seen(msg.key):
            ctx.effect("skipped")
            return
        ctx.remember(msg.key, when="start")
        ctx.effect("charge")

    b.worker("payments", premature, faults=eb.Faults(crash_during_process=lambda m: m.attempt == 1))
    b.publish("payments", None, key="order-7")
    b.run()
    assert [e.name for e in b.effects()] == ["skipped"]
    assert b.trace.where(kind="crash")[0].detail == "during processing: the work was never committed"


def test_a_key_committed_by_a_concurrent_delivery_rolls_back_the_other():
    """Two deliveries of the same order race (the first is slow). Both check ``seen`` before
    either has committed; the unique key makes the second commit fail and roll back."""
    b = eb.Broker(seed=0)
    b.queue("payments", ack_timeout=5.0)

    def idempotent_charge(msg, ctx):
        if not ctx.seen(msg.key):
            ctx.effect("charge")
            ctx.remember(msg.key)

    b.worker("payments", idempotent_charge, count=2, faults=eb.Faults(slow=lambda m: m.attempt == 1, slow_by=5.5))
    b.publish("payments", None, key="order-7")
    b.run()
    assert [(e.time, e.worker) for e in b.effects("charge")] == [(6, "payments-2")]
    assert b.trace.where(kind="dedup")[0].detail == "key 'order-7' was already recorded: rolled back, nothing applied"
