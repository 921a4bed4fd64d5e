"""Exercise 06's checks: each passes the solution and rejects plausible wrong answers, saying what
happened to which order without giving the answer away."""

import math

import pytest

import evbroker as eb
from evbroker.grading import CheckFailed, NotAnswered, score
from evbroker.grading import checks_06 as ex06


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def rejected(check_id, answer):
    """The failure message of a wrong answer (the test fails if the answer passes)."""
    with pytest.raises(CheckFailed) as caught:
        score(check_id, answer)
    assert not isinstance(caught.value, NotAnswered)
    return str(caught.value)


def queues(**payments):
    """A declare function: the DLQ, then payments with these settings."""

    def declare(b):
        b.queue("payments.dlq")
        b.queue("payments", **payments)

    return declare


# ---------------------------------------------------------------------------- 06-fix-poison


@pytest.mark.parametrize("tries", [3, 4, 5])
def test_a_delivery_limit_between_three_and_five_with_the_dlq_passes(tries):
    assert score("06-fix-poison", queues(max_deliveries=tries, dead_letter="payments.dlq")).points == 3


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (queues(), "jammed the queue: it was handed to a worker 25 times and failed every time"),
        (queues(max_deliveries=2, dead_letter="payments.dlq"), "is a good order, yet it was set aside"),
        (queues(max_deliveries=1, dead_letter="payments.dlq"), "after 1 delivery: what failed it would have passed"),
        (queues(max_deliveries=10, dead_letter="payments.dlq"), "was handed to a worker 10 times; the team allows"),
        (queues(max_deliveries=3), "it was set aside, but not in payments.dlq, where support looks"),
    ],
)
def test_a_queue_a_poison_order_still_jams_or_that_loses_good_orders_is_rejected(wrong, says):
    message = rejected("06-fix-poison", wrong)
    assert says in message
    assert "ex06.replay('06-fix-poison', declare_payments, seed=" in message
    assert "max_deliveries" not in message and "dead_letter=" not in message


def test_a_delivery_limit_on_an_at_most_once_queue_is_refused_by_the_broker():
    """At-most-once never redelivers, so its limit and dead-letter queue would never apply: the
    broker refuses the set-up, and the check passes its reason on (naming the learner's own setting)."""
    message = rejected("06-fix-poison", queues(max_deliveries=3, dead_letter="payments.dlq", guarantee="at-most-once"))
    assert "max_deliveries= has no effect on an at-most-once queue" in message


def test_a_good_order_set_aside_is_shown_with_the_crashes_that_did_it():
    message = rejected("06-fix-poison", queues(max_deliveries=2, dead_letter="payments.dlq"))
    assert "crashed as it arrived" in message and "fault: two crashes in a row" in message


def test_declare_payments_must_declare_both_queues_and_no_workers():
    def no_dlq(b):
        b.queue("payments", max_deliveries=3)

    def with_worker(b):
        queues(max_deliveries=3, dead_letter="payments.dlq")(b)
        b.worker("payments", ex06.charge)

    assert "there is no 'payments.dlq'" in rejected("06-fix-poison", no_dlq)
    assert "should only declare the queues" in rejected("06-fix-poison", with_worker)
    with pytest.raises(NotAnswered):
        score("06-fix-poison", stub)


def test_replay_rebuilds_the_poison_run():
    b = ex06.replay(
        "06-fix-poison", queues(max_deliveries=2, dead_letter="payments.dlq"), seed=0, fault="lost deliveries"
    )
    assert b.trace.where(kind="delivery-lost") and b.dead_letters("payments")
    with pytest.raises(eb.EvbrokerError, match="fault must be one of"):
        ex06.replay("06-fix-poison", queues(), seed=0, fault="meteor")
    with pytest.raises(eb.EvbrokerError, match="takes seed= and outage="):
        ex06.replay("06-retry-backoff", queues(), seed=0, fault="no faults")


# ---------------------------------------------------------------------------- 06-retry-backoff


@pytest.mark.parametrize(
    "retry",
    [{"retry_delay": 1, "retry_backoff": 2}, {"retry_delay": 3}, {"retry_delay": 2, "retry_backoff": 2}],
)
def test_retries_that_wait_out_the_outage_pass(retry):
    answer = queues(max_deliveries=4, dead_letter="payments.dlq", **retry)
    assert score("06-retry-backoff", answer).points == 3


def test_retrying_at_once_dead_letters_an_order_before_the_gateway_is_back():
    b = ex06.retried_at_once()
    assert [m.key for m in b.dead_letters("payments")] == ["order-1"]
    assert not b.effects("charge")


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (queues(max_deliveries=4, dead_letter="payments.dlq"), "is a good order, yet it was set aside"),
        (queues(max_deliveries=10, dead_letter="payments.dlq"), "times; the team allows at most 4 tries"),
        (
            queues(max_deliveries=4, dead_letter="payments.dlq", retry_delay=5, retry_backoff=3),
            "before it went back in line",
        ),
        (queues(dead_letter="payments.dlq", retry_delay=1, retry_backoff=2), "jammed the queue"),
    ],
)
def test_retries_that_give_up_too_soon_try_too_often_or_wait_too_long_are_rejected(wrong, says):
    message = rejected("06-retry-backoff", wrong)
    assert says in message
    assert "ex06.replay('06-retry-backoff', declare_retrying_payments, seed=" in message
    assert "retry_delay" not in message and "retry_backoff" not in message


# ---------------------------------------------------------------------------- 06-predict-depth


def test_the_depth_prediction_matches_the_simulation_and_the_plotted_depth():
    b = ex06.arrivals_faster_than_workers()
    series = eb.plot.depths(b.trace)["payments"]
    plotted = [count for time, count in series if time <= ex06.DEPTH_AT][-1]
    assert ex06.waiting_at(b.trace, "payments", ex06.DEPTH_AT) == plotted == 5
    assert score("06-predict-depth", 5).points == 2


@pytest.mark.parametrize("wrong", [4, 6, 21])
def test_a_wrong_depth_is_rejected_without_the_number(wrong):
    message = rejected("06-predict-depth", wrong)
    assert f"got {wrong}, which is not right" in message
    assert "taken" in message
    assert "5" not in message.replace("t = 5.1", "")


# ---------------------------------------------------------------------------- 06-fewest-workers


def test_the_fewest_workers_pass():
    assert score("06-fewest-workers", lambda rate, service_time: math.ceil(rate * service_time)).points == 2


def test_every_load_the_check_uses_needs_exactly_its_rounded_up_capacity():
    """With ceil(rate * service_time) workers the queue stays bounded; with one fewer it grows."""
    for seed in ex06.SEEDS:
        rate, service_time = ex06.loads(seed)
        n = math.ceil(rate * service_time)
        assert ex06.waiting_at(ex06.rush(n, rate, service_time).trace, "payments", ex06.RUSH_LENGTH) <= ex06.BOUNDED
        if n > 1:
            grown = ex06.waiting_at(ex06.rush(n - 1, rate, service_time).trace, "payments", ex06.RUSH_LENGTH)
            assert grown > 2 * ex06.BOUNDED, (rate, service_time, grown)


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (lambda rate, service_time: max(1, math.floor(rate * service_time)), "let the queue grow"),
        (lambda rate, service_time: math.ceil(rate * service_time) + 1, "but fewer would too"),
        (lambda rate, service_time: math.ceil(rate / service_time), "workers"),
        (lambda rate, service_time: round(rate * service_time), "returned 0: with no worker"),
        (lambda rate, service_time: rate * service_time, "a number of workers is a whole number"),
    ],
)
def test_too_few_too_many_or_not_whole_workers_are_rejected(wrong, says):
    message = rejected("06-fewest-workers", wrong)
    assert says in message
    assert "ceil" not in message


def test_one_more_than_the_whole_part_passes_random_loads_and_is_caught_on_whole_ones():
    """``int(x) + 1`` used to pass: no random load needs a whole number of workers exactly."""

    def wrong(rate, service_time):
        return int(rate * service_time) + 1

    for seed in range(100):
        rate, service_time = ex06.loads(seed)
        assert wrong(rate, service_time) == math.ceil(rate * service_time)
    message = rejected("06-fewest-workers", wrong)
    assert "but fewer would too" in message


def test_every_whole_load_needs_exactly_its_capacity():
    for rate, service_time in ex06.WHOLE_LOADS:
        n = round(rate * service_time)
        assert n == rate * service_time
        assert ex06.waiting_at(ex06.rush(n, rate, service_time).trace, "payments", ex06.RUSH_LENGTH) <= ex06.BOUNDED
        if n > 1:
            grown = ex06.waiting_at(ex06.rush(n - 1, rate, service_time).trace, "payments", ex06.RUSH_LENGTH)
            assert grown > 2 * ex06.BOUNDED


def test_a_growing_queue_says_how_far_it_grew_and_how_to_watch_it():
    message = rejected("06-fewest-workers", lambda rate, service_time: max(1, math.floor(rate * service_time)))
    assert "orders were waiting" in message
    assert "Replay: b = ex06.rush(workers=" in message and "eb.plot.queue_depth(b)" in message
