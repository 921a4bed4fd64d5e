"""crash_detection: how a queue notices a dead consumer. "timeout" waits for ack_timeout (SQS,
Redis Streams); "disconnect" requeues a dead consumer's unacked copies at once (AMQP)."""

import pytest

import evbroker as eb

FIRST_TRY = lambda m: m.attempt == 1  # noqa: E731


def run(detection, faults, workers=1, timeout=10.0):
    b = eb.Broker(seed=0)
    b.queue("q", ack_timeout=timeout, crash_detection=detection)
    b.worker("q", lambda m, c: c.effect("done"), count=workers, faults=faults)
    b.publish("q", "x")
    b.run()
    return b


def back_at(b):
    return [e.time for e in b.trace.where(kind="redeliver")]


@pytest.mark.parametrize(
    "faults",
    [eb.Faults(crash_before_ack=FIRST_TRY), eb.Faults(crash_during_process=FIRST_TRY)],
    ids=["crash before ack", "crash during processing"],
)
def test_disconnect_requeues_a_crashed_consumers_copy_at_once_timeout_waits(faults):
    crash_at = run("timeout", faults).trace.where(kind="crash")[0].time
    assert back_at(run("disconnect", faults)) == [crash_at]
    assert back_at(run("timeout", faults)) == [10.0]


def test_disconnect_records_the_requeue_with_its_reason():
    b = run("disconnect", eb.Faults(crash_before_ack=FIRST_TRY))
    [e] = b.trace.where(kind="requeue")
    assert (e.actor, e.msg, e.attempt) == ("q", "m1", 1)
    assert e.detail.startswith("its consumer's connection closed: requeued at once")
    assert not b.trace.where(kind="timeout")


def test_a_lost_ack_over_a_connection_is_a_dropped_connection():
    assert back_at(run("disconnect", eb.Faults(lose_ack=FIRST_TRY))) == [1.0]
    assert back_at(run("timeout", eb.Faults(lose_ack=FIRST_TRY))) == [10.0]


def test_a_slow_consumer_is_alive_so_only_the_timeout_notices_it_either_way():
    slow = eb.Faults(slow=FIRST_TRY, slow_by=20.0)
    for detection in ("timeout", "disconnect"):
        b = run(detection, slow, workers=2)
        assert back_at(b) == [10.0]
        assert len(b.effects("done")) == 2  # the broker cannot tell this slow worker from a dead one


def test_timeout_is_the_default():
    b = run("timeout", eb.Faults(crash_before_ack=FIRST_TRY))
    c = eb.Broker(seed=0)
    c.queue("q", ack_timeout=10.0)
    c.worker("q", lambda m, ctx: ctx.effect("done"), faults=eb.Faults(crash_before_ack=FIRST_TRY))
    c.publish("q", "x")
    c.run()
    assert b.trace == c.trace


def test_a_disconnect_requeues_every_copy_the_dead_worker_held():
    b = eb.Broker(seed=0)
    b.queue("q", ack_timeout=50.0, crash_detection="disconnect")
    b.worker("q", lambda m, c: None, prefetch=None, service_time=2.0)
    for i in range(3):
        b.publish("q", i)
    b.outage("q-1", 1.0, 2.0)
    b.run()
    assert [(e.time, e.msg) for e in b.trace.where(kind="requeue")] == [(1.0, "m1"), (1.0, "m2"), (1.0, "m3")]
    assert b.stats("q")["pending"] == 0


def test_crash_detection_on_at_most_once_is_refused_and_says_why():
    with pytest.raises(eb.EvbrokerError, match=r"means nothing under at-most-once.*never redelivers"):
        eb.Broker().queue("q", guarantee="at-most-once", crash_detection="timeout")


def test_an_unknown_crash_detection_gets_a_did_you_mean():
    with pytest.raises(eb.EvbrokerError, match="did you mean 'disconnect'"):
        eb.Broker().queue("q", crash_detection="disconect")
