"""Queues: competing consumers take turns, one copy to one worker, first in first out.

A queue is a line of work. Several identical workers read it; the broker hands each copy to
one free worker (prefetch 1: a worker holds one unacknowledged copy at a time), and free
workers take turns in the order they were registered.
"""

import evbroker as eb


def hops(b, *kinds):
    """The trace as (time, kind, actor, msg, to) rows, keeping only ``kinds``."""
    return [(e.time, e.kind, e.actor, e.msg, e.to) for e in b.trace if e.kind in kinds]


def test_four_messages_on_two_workers_split_m1_m3_and_m2_m4():
    """The seed scenario: two identical workers split a line of four messages between them.

    At t=0 the first worker takes m1 and the second m2; m3 and m4 wait. When both finish at
    t=1, the first worker (free first) takes m3 and the second m4. No message is handled twice.
    """
    b = eb.Broker(seed=0)
    b.queue("jobs")
    log = []
    b.worker("jobs", lambda msg, ctx: log.append((ctx.now, ctx.worker, msg.id)), count=2)
    for n in range(4):
        b.publish("jobs", n)
    b.run()

    assert log == [(0, "jobs-1", "m1"), (0, "jobs-2", "m2"), (1, "jobs-1", "m3"), (1, "jobs-2", "m4")]
    assert hops(b, "deliver") == [
        (0, "deliver", "jobs", "m1", "jobs-1"),
        (0, "deliver", "jobs", "m2", "jobs-2"),
        (1, "deliver", "jobs", "m3", "jobs-1"),
        (1, "deliver", "jobs", "m4", "jobs-2"),
    ]
    assert b.stats("jobs") == {
        "copies": 4,
        "deliveries": 4,
        "processed": 4,
        "unique_processed": 4,
        "duplicates": 0,
        "lost": 0,
        "dead_lettered": 0,
        "acked": 4,
        "redeliveries": 0,
        "pending": 0,
    }
    assert b.now == 2


def test_a_third_worker_drains_the_line_faster():
    """Scaling a queue means adding workers to it: six messages take 3 time units on two
    workers and 2 on three."""

    def finish_time(workers):
        b = eb.Broker(seed=0)
        b.queue("jobs")
        b.worker("jobs", lambda msg, ctx: None, count=workers)
        for n in range(6):
            b.publish("jobs", n)
        b.run()
        return b.now

    assert [finish_time(2), finish_time(3)] == [3, 2]


def test_one_copy_is_processed_by_each_message_and_the_whole_timeline_is_recorded():
    """One message on one worker: publish, deliver, process, complete, ack, in that order.

    Hops take no time: the copy is delivered and processing starts at the instant it is
    published; it completes service_time later, and the ack is back at the same instant.
    """
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done", n=msg.payload), service_time=2.5)
    b.publish("jobs", 7)
    b.run()
    assert [(e.time, e.kind, e.actor, e.msg, e.attempt, e.to) for e in b.trace] == [
        (0, "publish", "producer", "m1", None, "jobs"),
        (0, "deliver", "jobs", "m1", 1, "jobs-1"),
        (0, "process", "jobs-1", "m1", 1, None),
        (2.5, "effect", "jobs-1", "m1", 1, None),
        (2.5, "complete", "jobs-1", "m1", 1, None),
        (2.5, "ack", "jobs-1", "m1", 1, "jobs"),
    ]
    assert [(e.time, e.name, e.worker, e.data) for e in b.effects()] == [(2.5, "done", "jobs-1", {"n": 7})]


def test_copies_wait_in_order_for_a_busy_worker():
    """FIFO with prefetch 1: one worker takes the copies one at a time, in publish order."""
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"))
    for at in (0, 0.2, 0.4):
        b.publish("jobs", None, at=at)
    b.run()
    assert [(e.time, e.msg) for e in b.effects("done")] == [(1, "m1"), (2, "m2"), (3, "m3")]


def test_free_workers_take_turns_in_registration_order():
    """Round robin among free workers: with three idle workers and copies spaced out in time,
    each new copy goes to the next worker in turn, not always to the first one."""
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None, count=3, service_time=0.5)
    for at in range(5):
        b.publish("jobs", None, at=at)
    b.run()
    assert [e.to for e in b.trace.where(kind="deliver")] == ["jobs-1", "jobs-2", "jobs-3", "jobs-1", "jobs-2"]


def test_a_busy_worker_is_skipped_and_the_next_free_one_takes_the_copy():
    """jobs-1 is stuck on a long job; the following copies alternate between jobs-2 and jobs-3."""
    b = eb.Broker(seed=0)
    b.queue("jobs", ack_timeout=20.0)
    b.worker("jobs", lambda msg, ctx: None, count=3, service_time=lambda m: 10.0 if m.id == "m1" else 1.0)
    for at in (0, 0, 2, 4, 6):
        b.publish("jobs", None, at=at)
    b.run()
    assert [(e.time, e.msg, e.to) for e in b.trace.where(kind="deliver")] == [
        (0, "m1", "jobs-1"),
        (0, "m2", "jobs-2"),
        (2, "m3", "jobs-3"),
        (4, "m4", "jobs-2"),
        (6, "m5", "jobs-3"),
    ]


def test_service_time_can_depend_on_the_message():
    """``service_time`` may be a function of the message: here big orders take longer."""
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"), service_time=lambda m: m.payload["size"])
    b.publish("jobs", {"size": 3})
    b.publish("jobs", {"size": 0.5})
    b.run()
    assert [(e.time, e.msg) for e in b.effects("done")] == [(3, "m1"), (3.5, "m2")]


def test_workers_get_default_and_chosen_names():
    """Default names are '<queue>-1', '<queue>-2'...; ``name=`` names one worker, or prefixes several."""
    b = eb.Broker(seed=0)
    b.queue("billing")
    assert b.worker("billing", lambda m, c: None, count=2) == ["billing-1", "billing-2"]
    assert b.worker("billing", lambda m, c: None) == ["billing-3"]
    assert b.worker("billing", lambda m, c: None, name="ledger") == ["ledger"]
    assert b.worker("billing", lambda m, c: None, name="pod", count=2) == ["pod-1", "pod-2"]
    assert b.workers == ["billing-1", "billing-2", "billing-3", "ledger", "pod-1", "pod-2"]
    assert b.trace.actors == {
        "billing": "queue",
        "billing-1": "worker",
        "billing-2": "worker",
        "billing-3": "worker",
        "ledger": "worker",
        "pod-1": "worker",
        "pod-2": "worker",
    }


def test_a_worker_added_later_drains_what_waited():
    """Copies published to a queue with no worker wait (nothing is dropped); a worker started
    later takes them in order."""
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.publish("jobs", "a")
    b.publish("jobs", "b")
    b.run(until=5)
    assert b.stats("jobs")["pending"] == 2
    seen = []
    b.worker("jobs", lambda msg, ctx: seen.append((ctx.now, msg.payload)))
    b.run()
    assert seen == [(5, "a"), (6, "b")]
    assert b.stats("jobs")["pending"] == 0


def test_the_handler_sees_the_message_as_delivered():
    """A handler gets ``msg`` (id, payload, key, topic, queue, attempt) and ``ctx`` (worker, now)."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.queue("billing", bind="orders")
    got = []
    b.worker("billing", lambda msg, ctx: got.append((msg, ctx.worker, ctx.queue, ctx.now)))
    b.publish("orders", {"order": 42}, at=1.5, key="order-42")
    b.run()
    assert got == [(eb.Message("m1", {"order": 42}, "order-42", "orders", "billing", 1), "billing-1", "billing", 1.5)]


def test_a_handler_that_publishes_into_its_own_queue_acks_before_taking_the_next_copy():
    """A handler's publications are committed with its work. When one of them lands in the
    worker's own queue, the worker first settles its current copy (ack, or crash before the
    ack) and only then takes the new one: nothing is delivered to a worker still holding a copy.

    Here the worker crashes after m1's work, before the ack, under at-most-once. The copy m2 that
    m1's work published must wait for the restart, not vanish with the crash.
    """
    b = eb.Broker(seed=0)
    b.queue("steps", guarantee="at-most-once")

    def step(msg, ctx):
        ctx.effect("step", n=msg.payload)
        if msg.payload < 2:
            ctx.publish("steps", msg.payload + 1)

    b.worker("steps", step, faults=eb.Faults(crash_before_ack=lambda m: m.id == "m1"), restart_after=2.0)
    b.publish("steps", 0)
    b.run()
    assert [(e.time, e.kind, e.msg) for e in b.trace if e.kind not in ("effect", "process")] == [
        (0, "publish", "m1"),
        (0, "deliver", "m1"),
        (1, "complete", "m1"),
        (1, "publish", "m2"),
        (1, "crash", "m1"),
        (3, "restart", None),
        (3, "deliver", "m2"),
        (4, "complete", "m2"),
        (4, "publish", "m3"),
        (4, "deliver", "m3"),
        (5, "complete", "m3"),
    ]
    assert [e.data["n"] for e in b.effects("step")] == [0, 1, 2]
    assert b.stats("steps")["lost"] == 0


def test_under_at_least_once_a_self_published_copy_follows_the_ack():
    """The same rule with an ack: complete, publish (the outbox), ack, then the next delivery."""
    b = eb.Broker(seed=0)
    b.queue("steps")
    b.worker("steps", lambda msg, ctx: ctx.publish("steps", 1) if msg.payload == 0 else None)
    b.publish("steps", 0)
    b.run()
    assert [(e.time, e.kind, e.msg) for e in b.trace if e.kind != "process"] == [
        (0, "publish", "m1"),
        (0, "deliver", "m1"),
        (1, "complete", "m1"),
        (1, "publish", "m2"),
        (1, "ack", "m1"),
        (1, "deliver", "m2"),
        (2, "complete", "m2"),
        (2, "ack", "m2"),
    ]
