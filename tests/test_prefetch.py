"""prefetch: how many unacked copies a worker may hold. 1 = fair dispatch (the default);
more, or None, pushes copies round-robin into each worker's own buffer."""

import pytest

import evbroker as eb


def fast_and_slow(prefetch, messages=8):
    b = eb.Broker(seed=0)
    b.queue("jobs", ack_timeout=100.0)
    b.worker("jobs", lambda m, c: None, name="fast", service_time=1.0, prefetch=prefetch)
    b.worker("jobs", lambda m, c: None, name="slow", service_time=5.0, prefetch=prefetch)
    for i in range(messages):
        b.publish("jobs", i)
    b.run()
    return b


def who(b):
    return [(e.time, e.actor, e.msg) for e in b.trace.where(kind="process")]


def test_no_limit_pushes_round_robin_and_the_slow_worker_builds_a_backlog():
    b = fast_and_slow(None)
    assert [e.to for e in b.trace.where(kind="deliver")] == ["fast", "slow"] * 4  # all handed out at t=0
    assert who(b) == [
        (0.0, "fast", "m1"),
        (0.0, "slow", "m2"),
        (1.0, "fast", "m3"),
        (2.0, "fast", "m5"),
        (3.0, "fast", "m7"),
        (5.0, "slow", "m4"),
        (10.0, "slow", "m6"),
        (15.0, "slow", "m8"),
    ]
    assert b.now == 20.0


def test_prefetch_one_is_fair_dispatch_and_the_default():
    fair = fast_and_slow(1)
    assert fair.now == 10.0
    assert [a for _, a, _ in who(fair)].count("fast") == 6
    assert fast_and_slow(1).trace == fast_and_slow(eb.core.broker.UNSET(1)).trace


def test_prefetch_two_caps_what_a_worker_holds():
    b = fast_and_slow(2)
    delivered_at_0 = [e.to for e in b.trace.where(kind="deliver") if e.time == 0.0]
    assert delivered_at_0 == ["fast", "slow", "fast", "slow"]
    assert b.now < fast_and_slow(None).now


def test_a_backlogged_copy_that_times_out_is_redelivered_and_done_twice():
    """The timeout counts from delivery, so copies waiting in a slow worker's buffer expire."""
    b = eb.Broker(seed=0)
    b.queue("jobs", ack_timeout=5.0)
    b.worker("jobs", lambda m, c: c.effect("done"), name="slow", service_time=3.0, prefetch=None)
    for i in range(2):
        b.publish("jobs", i)
    b.run()
    assert [(e.time, e.msg) for e in b.trace.where(kind="timeout")] == [(5.0, "m2")]  # waited 3, took 3
    assert b.stats("jobs")["duplicates"] == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True])
def test_a_bad_prefetch_is_refused(bad):
    b = eb.Broker()
    b.queue("q")
    with pytest.raises(eb.EvbrokerError, match="prefetch must be a whole number >= 1 or None"):
        b.worker("q", lambda m, c: None, prefetch=bad)


def test_prefetch_zero_points_at_none():
    b = eb.Broker()
    b.queue("q")
    with pytest.raises(eb.EvbrokerError, match="write prefetch=None"):
        b.worker("q", lambda m, c: None, prefetch=0)


@pytest.mark.parametrize("prefetch", [None, 5])
def test_prefetch_on_an_at_most_once_queue_is_refused_and_says_why(prefetch):
    b = eb.Broker()
    b.queue("q", guarantee="at-most-once")
    with pytest.raises(eb.EvbrokerError, match=r"means nothing on an at-most-once queue.*auto-ack"):
        b.worker("q", lambda m, c: None, prefetch=prefetch)
    assert b.worker("q", lambda m, c: None, prefetch=1) == ["q-1"]
