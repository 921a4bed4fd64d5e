"""Exercise 02's checks: each passes the solution and rejects plausible wrong answers, saying what
went wrong in the learner's terms without giving the answer away."""

import pytest

import evbroker as eb
from evbroker.grading import CheckFailed, NotAnswered, score
from evbroker.grading import checks_02 as ex02
from evbroker.grading.checks_02 import award_points, bill, pack, send_receipt


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def rejected(check_id, answer):
    """The failure message of a wrong answer (the test fails if the answer passes)."""
    with pytest.raises(CheckFailed) as caught:
        score(check_id, answer)
    assert not isinstance(caught.value, NotAnswered)
    return str(caught.value)


# ---------------------------------------------------------------------------- 02-predict-worker


def test_the_worker_prediction_passes_with_the_worker_the_simulation_chose():
    assert [e.to for e in ex02.three_workers().trace.where(kind="deliver", msg="m7")] == ["thumbnails-3"]
    assert score("02-predict-worker", "thumbnails-3").points == 2


@pytest.mark.parametrize("wrong", ["thumbnails-1", "thumbnails-2"])
def test_a_wrong_worker_is_rejected_without_naming_the_right_one(wrong):
    message = rejected("02-predict-worker", wrong)
    assert f"got {wrong!r}, which is not right" in message
    assert "free" in message  # the hint: who is free when
    assert "thumbnails-3" not in message


def test_a_worker_that_does_not_exist_or_a_number_is_explained():
    assert "not one of the workers" in rejected("02-predict-worker", "thumbnail-4")
    assert "should be a name in quotes" in rejected("02-predict-worker", 3)
    with pytest.raises(NotAnswered):
        score("02-predict-worker", None)


# ---------------------------------------------------------------------------- 02-stacked-topology


def wire(b):
    b.topic("order.placed")
    b.queue("billing", bind="order.placed")
    b.worker("billing", bill, count=2)
    b.queue("shipping", bind="order.placed")
    b.worker("shipping", pack)
    b.queue("email", bind="order.placed")
    b.worker("email", send_receipt)


def wire_one_shared_queue(b):
    """Every handler on one queue: the services compete for each order instead of each getting it."""
    b.topic("order.placed")
    b.queue("billing", bind="order.placed")
    b.worker("billing", bill, count=2)
    b.worker("billing", pack, name="shipping-worker")
    b.worker("billing", send_receipt, name="email-worker")
    b.queue("shipping")
    b.queue("email")


def wire_shipping_unbound(b):
    b.topic("order.placed")
    b.queue("billing", bind="order.placed")
    b.worker("billing", bill, count=2)
    b.queue("shipping")
    b.worker("shipping", pack)
    b.queue("email", bind="order.placed")
    b.worker("email", send_receipt)


def wire_a_queue_per_billing_worker(b):
    """Two billing queues, one worker each: each gets its own copy, so each order is billed twice."""
    b.topic("order.placed")
    for name in ("billing", "billing-b"):
        b.queue(name, bind="order.placed")
        b.worker(name, bill)
    b.queue("shipping", bind="order.placed")
    b.worker("shipping", pack)
    b.queue("email", bind="order.placed")
    b.worker("email", send_receipt)


def wire_one_biller(b):
    b.topic("order.placed")
    b.queue("billing", bind="order.placed")
    b.worker("billing", bill)
    b.queue("shipping", bind="order.placed")
    b.worker("shipping", pack)
    b.queue("email", bind="order.placed")
    b.worker("email", send_receipt)


def test_the_stacked_topology_passes():
    assert score("02-stacked-topology", wire).points == 3


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (wire_one_shared_queue, "was never packed"),
        (wire_shipping_unbound, "order.placed copied order-1 into billing, email."),
        (wire_a_queue_per_billing_worker, "was invoiced twice (by billing-1, billing-b-1)"),
        (wire_one_biller, "billing should share its copies over 2 workers; in this run its orders went to one worker"),
    ],
)
def test_a_wrong_topology_is_rejected_in_terms_of_orders_and_services(wrong, says):
    message = rejected("02-stacked-topology", wrong)
    assert says in message
    assert "Replay: seed=" in message and "ex02.replay('02-stacked-topology', wire, seed=" in message
    assert "bind=" not in message and "count=" not in message


def test_a_topology_missing_a_queue_names_it():
    def no_email(b):
        b.topic("order.placed")
        b.queue("billing", bind="order.placed")
        b.worker("billing", bill, count=2)

    assert "there is no queue 'shipping', 'email'" in rejected("02-stacked-topology", no_email)
    with pytest.raises(NotAnswered):
        score("02-stacked-topology", stub)


def test_replay_rebuilds_the_failing_run():
    b = ex02.replay("02-stacked-topology", wire_shipping_unbound, seed=0, scenario="a burst of orders at t = 0")
    assert b.stats("shipping")["copies"] == 0
    assert b.stats("billing")["processed"] == b.stats("email")["processed"] > 0
    with pytest.raises(eb.EvbrokerError, match="scenario must be one of"):
        ex02.replay("02-stacked-topology", wire, seed=0, scenario="a storm")


# ---------------------------------------------------------------------------- 02-fix-loyalty


def start_loyalty(b):
    b.queue("loyalty", bind=["order.placed", "orders.placed"])
    b.worker("loyalty", award_points)


def start_loyalty_new_topic_only(b):
    """The obvious fix, which forgets the old app."""
    b.queue("loyalty", bind="order.placed")
    b.worker("loyalty", award_points)


def start_loyalty_on_billing_queue(b):
    """Reads billing's queue: it takes billing's orders instead of a copy of its own."""
    b.queue("loyalty")
    b.worker("billing", award_points, name="loyalty-1")


def test_the_fixed_loyalty_service_passes():
    assert score("02-fix-loyalty", start_loyalty).points == 3


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (ex02.start_loyalty_as_found, "(published to order.placed by shop) never earned loyalty points"),
        (start_loyalty_new_topic_only, "(published to orders.placed by old-app) never earned loyalty points"),
        (start_loyalty_on_billing_queue, "order.placed copied it into: billing."),
    ],
)
def test_a_wrong_loyalty_fix_is_rejected(wrong, says):
    message = rejected("02-fix-loyalty", wrong)
    assert says in message
    assert "whichever app placed it" in message or "Billing broke" in message
    assert "bind=" not in message and "['order.placed', 'orders.placed']" not in message


def test_a_loyalty_fix_that_steals_billings_orders_is_caught_by_billing():
    def twice(b):
        b.queue("loyalty", bind=["order.placed", "orders.placed"])
        b.worker("loyalty", award_points)
        b.worker("billing", award_points, name="extra")

    assert "Billing broke" in rejected("02-fix-loyalty", twice)


# ---------------------------------------------------------------------------- 02-predict-unroutable


def test_the_unroutable_prediction_matches_the_simulation():
    b = ex02.a_day_of_account_events()
    assert [e.msg for e in b.trace.where(kind="unroutable")] == ["m4", "m5"]
    assert score("02-predict-unroutable", 2).points == 2


@pytest.mark.parametrize("wrong", [1, 3, 4])
def test_a_wrong_unroutable_count_is_rejected_without_the_number(wrong):
    message = rejected("02-predict-unroutable", wrong)
    assert f"got {wrong}, which is not right" in message
    assert "bound" in message
    assert "2" not in message
