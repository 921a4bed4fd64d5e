"""The scheduler: a virtual clock that runs callbacks in (time, priority, sequence) order.

Ties are broken by priority, then by the order things were scheduled, so the same set-up
always runs the same way. Cancelled items and callbacks that find nothing to do (``SKIP``)
neither move the clock nor count as events.
"""

from evbroker.core.scheduler import COMPLETE, PUBLISH, SKIP, TIMEOUT, Scheduler


def test_items_run_in_time_then_priority_then_scheduling_order():
    clock, log = Scheduler(), []
    clock.at(2.0, COMPLETE, log.append, "late")
    clock.at(1.0, PUBLISH, log.append, "publish")
    clock.at(1.0, TIMEOUT, log.append, "timeout")
    clock.at(1.0, COMPLETE, log.append, "complete-a")
    clock.at(1.0, COMPLETE, log.append, "complete-b")
    clock.at(0.5, PUBLISH, log.append, "early")
    assert clock.run() == 6
    assert log == ["early", "complete-a", "complete-b", "timeout", "publish", "late"]
    assert clock.now == 2.0


def test_a_reserved_sequence_number_keeps_its_place():
    """An item scheduled later with a number reserved earlier sorts as if scheduled then."""
    clock, log = Scheduler(), []
    seq = clock.reserve()
    clock.at(1.0, TIMEOUT, log.append, "scheduled first, reserved second")
    clock.at_seq(1.0, TIMEOUT, seq, log.append, "reserved first")
    clock.run()
    assert log == ["reserved first", "scheduled first, reserved second"]


def test_cancelled_items_and_skips_do_not_move_the_clock_or_count():
    clock, log = Scheduler(), []
    clock.at(1.0, COMPLETE, log.append, "done")
    clock.cancel(clock.at(5.0, COMPLETE, log.append, "cancelled"))
    clock.at(9.0, TIMEOUT, lambda: SKIP)
    assert clock.run() == 1
    assert log == ["done"]
    assert clock.now == 1.0
    assert len(clock) == 0


def test_run_stops_after_until_and_after_limit():
    clock, log = Scheduler(), []
    for t in (1.0, 2.0, 3.0, 4.0):
        clock.at(t, PUBLISH, log.append, t)
    assert clock.run(until=2.0) == 2
    assert clock.next_time() == 3.0
    assert clock.run(limit=1) == 1
    assert log == [1.0, 2.0, 3.0]
    assert clock.step()
    assert not clock.step()
    assert clock.next_time() is None


def test_items_added_out_of_order_while_running_still_come_out_in_order():
    """Publishes scheduled up front sit in the FIFO; follow-ups scheduled while running land
    in the heap. The merge is exact: at t=1 the follow-up (COMPLETE) runs before the publish."""
    clock, log = Scheduler(), []

    def publish(t):
        log.append((t, "publish"))
        clock.at(t + 1.0, COMPLETE, log.append, (t + 1.0, "complete"))

    for t in (0.0, 1.0, 2.0, 10.0):
        clock.at(t, PUBLISH, publish, t)
    clock.run()
    assert log == [
        (0.0, "publish"),
        (1.0, "complete"),
        (1.0, "publish"),
        (2.0, "complete"),
        (2.0, "publish"),
        (3.0, "complete"),
        (10.0, "publish"),
        (11.0, "complete"),
    ]
