"""Running: a virtual clock that jumps from one event to the next, stops where asked, and
refuses to hang.

``run()`` processes everything scheduled; ``run(until=t)`` stops the clock at ``t`` and a
later ``run`` carries on from there. A copy that can never settle, or a handler that keeps
publishing, stops the run with an error that says what is going on and how to get out.
"""

import re

import pytest

import evbroker as eb


def test_the_clock_starts_at_zero_and_stops_at_the_last_thing_that_happened():
    """The last ack is at t=2. The ack timeouts armed for each delivery were never needed:
    they do not move the clock."""
    b = eb.Broker(seed=0)
    assert b.now == 0
    b.queue("jobs", ack_timeout=30.0)
    b.worker("jobs", lambda msg, ctx: None)
    b.publish("jobs", 1)
    b.publish("jobs", 2)
    b.run()
    assert b.now == 2
    assert b.trace[-1].time == 2


def test_run_until_stops_the_clock_and_a_later_run_resumes():
    """Stopping at t=1.5 leaves m2 half-processed; resuming finishes it. The two halves
    together are exactly one uninterrupted run."""

    def setup():
        b = eb.Broker(seed=0)
        b.queue("jobs")
        b.worker("jobs", lambda msg, ctx: ctx.effect("done"))
        for n in range(3):
            b.publish("jobs", n)
        return b

    whole = setup()
    whole.run()

    halves = setup()
    halves.run(until=1.5)
    assert halves.now == 1.5
    assert [e.msg for e in halves.effects()] == ["m1"]
    assert halves.stats("jobs")["pending"] == 2
    halves.run()
    assert halves.trace == whole.trace
    assert halves.now == whole.now == 3


def test_events_at_exactly_until_are_processed():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"))
    b.publish("jobs", 1)
    b.run(until=1.0)
    assert [e.time for e in b.effects()] == [1]


def test_run_until_beyond_the_last_event_moves_the_clock_there():
    b = eb.Broker(seed=0)
    b.run(until=10)
    assert b.now == 10
    b.run(until=10)  # until == now is allowed: nothing to do
    assert b.now == 10


def test_publishing_after_a_run_starts_at_the_current_time():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None)
    b.run(until=7)
    b.publish("jobs", 1)
    b.publish("jobs", 2, at=9)
    b.run()
    assert [(e.time, e.msg) for e in b.trace.where(kind="publish")] == [(7, "m1"), (9, "m2")]


def test_a_copy_that_can_never_be_acked_stops_the_run_with_a_way_out():
    """Processing takes 2 but the ack timeout is 1: every delivery times out and is
    redelivered, forever. After ``settle_limit`` deliveries the run stops and says why, naming
    the queue, the message, and both ways out."""
    b = eb.Broker(seed=0, settle_limit=5)
    b.queue("payments", ack_timeout=1.0)
    b.worker("payments", lambda msg, ctx: ctx.effect("charge"), service_time=2.0)
    b.publish("payments", "order-1")
    with pytest.raises(eb.EvbrokerError) as err:
        b.run()
    assert str(err.value) == (
        "queue 'payments' cannot settle: message m1 has been delivered 5 times and never acknowledged "
        "(last failure: no ack within 1 (processing takes 2: longer than ack_timeout, so it can never ack in time)). "
        "Give the queue a limit, e.g. b.queue('payments', ..., max_deliveries=3), so the copy goes to dead letters, "
        "fix the handler or the ack_timeout, or stop earlier with b.run(until=...)."
    )
    # The broker still holds the copy: nothing was silently dropped.
    assert b.stats("payments")["deliveries"] == 5
    assert b.stats("payments")["pending"] == 1


def test_each_way_out_of_a_run_that_cannot_settle_works():
    def setup(**queue):
        b = eb.Broker(seed=0, settle_limit=5)
        b.queue("payments", ack_timeout=1.0, **queue)
        b.worker("payments", lambda msg, ctx: ctx.effect("charge"), service_time=2.0)
        b.publish("payments", "order-1")
        return b

    limited = setup(max_deliveries=3)
    limited.run()
    assert limited.stats("payments")["dead_lettered"] == 1

    stopped = setup()
    stopped.run(until=3.5)
    assert stopped.stats("payments")["deliveries"] == 2  # at t=0 and, after the first late ack, t=2


def test_a_handler_that_fails_every_time_cannot_settle_either():
    b = eb.Broker(seed=0, settle_limit=3)
    b.queue("payments")
    b.worker("payments", lambda msg, ctx: {}["card"])
    b.publish("payments", "order-1")
    with pytest.raises(eb.EvbrokerError, match=re.escape("(last failure: handler raised KeyError: 'card')")):
        b.run()


def test_a_handler_that_publishes_forever_stops_at_max_events():
    """Each message publishes the next: the run would never end. ``max_events`` bounds one
    ``run()`` call: once that many events have happened, one more means it is not settling
    (here the 51st, at t=50). The error says where the clock got to and how to proceed."""
    b = eb.Broker(seed=0, max_events=50)
    b.queue("echo")
    b.worker("echo", lambda msg, ctx: ctx.publish("echo", msg.payload + 1))
    b.publish("echo", 0)
    with pytest.raises(eb.EvbrokerError) as err:
        b.run()
    assert str(err.value) == (
        "run did not settle after 50 events (now t=50); a handler may be publishing messages forever. "
        "Stop at a time with b.run(until=...), or raise Broker(max_events=...) if the workload really is that large. "
        "The likely loop: worker echo-1 (handler <lambda>) published into 'echo' 50 times."
    )
    b.run(until=60)  # stopping at a time is the way out: the loop goes on, but the call returns
    assert b.now == 60


def test_max_events_counts_what_happens_not_what_was_cancelled():
    """Two messages make four events (two publishes, two completions); their ack deadlines
    pass with nothing to do (the acks came) and do not count. Four is enough; with three, the
    fourth (m2's completion at t=6) is the one too many."""

    def setup(max_events):
        b = eb.Broker(seed=0, max_events=max_events)
        b.queue("jobs")
        b.worker("jobs", lambda msg, ctx: None)
        b.publish("jobs", 1)
        b.publish("jobs", 2, at=5)
        return b

    enough = setup(4)
    enough.run()
    assert enough.now == 6
    with pytest.raises(eb.EvbrokerError, match=r"run did not settle after 3 events \(now t=6\)"):
        setup(3).run()


def test_effects_from_start_give_only_what_is_new_to_a_reader_that_keeps_its_place():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done", n=msg.payload))
    for n in range(3):
        b.publish("jobs", n)
    b.run(until=1.5)
    seen = b.effects()
    b.run()
    new = b.effects(start=len(seen))
    assert [e["n"] for e in seen] + [e["n"] for e in new] == [e["n"] for e in b.effects()] == [0, 1, 2]
    assert new and b.effects("done", start=len(b.effects())) == []
    with pytest.raises(eb.EvbrokerError, match=r"effects: start must be a whole number >= 0 \(got -1\)"):
        b.effects(start=-1)
