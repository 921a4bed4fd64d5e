"""Exercise 03's checks: each passes the solution and rejects plausible wrong answers, saying what
went wrong for which trip or order without giving the answer away."""

import pytest

import evbroker as eb
from evbroker.grading import CheckFailed, NotAnswered, score
from evbroker.grading import checks_03 as ex03
from evbroker.workflows import Reject, Saga, Service, Step
from evbroker.workflows.orders import release, reserve

airline, hotels, cars, mailer = ex03.TRIP_SERVICES


def rejected(check_id, answer):
    """The failure message of a wrong answer (the test fails if the answer passes)."""
    with pytest.raises(CheckFailed) as caught:
        score(check_id, answer)
    assert not isinstance(caught.value, NotAnswered)
    return str(caught.value)


# ---------------------------------------------------------------------------- 03-predict-messages


def test_the_message_prediction_matches_both_runs():
    counts = [len(ex03.one_order_nowhere(style).trace.where(kind="publish")) for style in eb.workflows.STYLES]
    assert counts == [11, 5]
    assert score("03-predict-messages", (11, 5)).points == 2


@pytest.mark.parametrize(
    ("wrong", "says", "silent"),
    [
        ((9, 4), ["orchestrated (the orchestration): got 9", "choreographed (the choreography): got 4"], []),
        ((11, 4), ["choreographed (the choreography): got 4"], ["orchestrated"]),
        ((7, 5), ["orchestrated (the orchestration): got 7", "compensation"], ["choreographed"]),
    ],
)
def test_a_wrong_message_count_names_the_style_it_missed_without_the_number(wrong, says, silent):
    message = rejected("03-predict-messages", wrong)
    for text in says:
        assert text in message
    for text in silent:
        assert text not in message
    assert "11" not in message and " 5" not in message


def test_the_message_prediction_wants_two_numbers():
    with pytest.raises(NotAnswered):
        score("03-predict-messages", (None, None))
    assert "two numbers" in rejected("03-predict-messages", 16)
    assert "should be a number" in rejected("03-predict-messages", ("11", 5))


# ---------------------------------------------------------------------------- 03-trip-saga


def saga(*steps):
    return Saga("trip-saga", steps=list(steps))


FLIGHT = Step("flight", airline, command="book_flight", compensate="cancel_flight")
HOTEL = Step("hotel", hotels, command="book_room", compensate="cancel_room")
CAR = Step("car", cars, command="rent_car", compensate="cancel_rental")
TICKETS = Step("tickets", mailer, command="send_tickets")


def test_the_trip_saga_passes():
    assert score("03-trip-saga", saga(FLIGHT, HOTEL, CAR, TICKETS)).points == 3


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (
            saga(FLIGHT, Step("hotel", hotels, command="book_room"), CAR, TICKETS),
            "its hotel room was booked and never cancelled",
        ),
        (saga(FLIGHT, HOTEL, TICKETS, CAR), "the traveller was emailed tickets for a trip that is off"),
        (saga(FLIGHT, HOTEL, CAR), "its tickets were never emailed"),
        (saga(HOTEL, FLIGHT, CAR, TICKETS), "its hotel room was booked before its flight"),
    ],
)
def test_a_wrong_trip_saga_is_rejected_with_what_happened_to_one_trip(wrong, says):
    message = rejected("03-trip-saga", wrong)
    assert says in message
    assert "What the services did for trip-" in message
    assert "ex03.replay('03-trip-saga', trip_saga, seed=" in message
    assert "compensate=" not in message and "Step(" not in message


def test_steps_in_the_wrong_order_are_caught_on_a_trip_that_goes_well():
    run = ex03.booked_trips(saga(FLIGHT, CAR, HOTEL, TICKETS), seed=0, fault="no faults")
    fine = next(trip for trip, sold_out in run.plan.items() if sold_out is None)
    with pytest.raises(CheckFailed, match="its car rental was booked before its hotel room"):
        ex03._judge_trips(ex03.Trips(run.broker, [(fine, None)]))


def test_a_trip_saga_that_is_not_a_saga_is_explained():
    assert "should be a Saga(...)" in rejected("03-trip-saga", [FLIGHT, HOTEL, CAR, TICKETS])
    with pytest.raises(NotAnswered):
        score("03-trip-saga", None)


def test_replay_rebuilds_a_trip_run():
    b = ex03.replay("03-trip-saga", saga(FLIGHT, HOTEL, CAR, TICKETS), seed=2, fault="lost acks")
    assert b.trace.where(kind="ack-lost")
    with pytest.raises(eb.EvbrokerError, match="fault must be one of"):
        ex03.replay("03-trip-saga", saga(FLIGHT), seed=0, fault="fire")


# ---------------------------------------------------------------------------- 03-shipping-service


def shipping_service(*, event="payment.charged", emits="order.shipped", on_reject="shipping.failed", rejects=True):
    shipping = Service("shipping")

    @shipping.on(event, emits=emits, on_reject=on_reject)
    def ship(order, ctx):
        carrier = ex03.CARRIERS.get(order["ship_to"])
        if carrier is None and rejects:
            raise Reject(f"no carrier serves {order['ship_to']}")
        ctx.effect("shipped", order=order["order"], to=order["ship_to"], carrier=carrier)

    return shipping


def test_the_shipping_service_passes():
    assert score("03-shipping-service", shipping_service()).points == 3


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (shipping_service(event="order.placed"), "(its card is declined) was shipped, though it was never paid for"),
        (shipping_service(rejects=False), "where no carrier goes) was shipped anyway"),
        (shipping_service(emits="shipping.scheduled"), "'email' reacts to 'order.shipped', which no service emits"),
        (shipping_service(on_reject=None), "'payment' reacts to 'shipping.failed', which no service emits"),
    ],
)
def test_a_wrong_shipping_service_is_rejected(wrong, says):
    message = rejected("03-shipping-service", wrong)
    assert says in message
    assert "ex03.replay('03-shipping-service', shipping, seed=" in message
    assert "on_reject=" not in message and "emits=" not in message


def test_a_shipment_without_its_carrier_is_explained():
    shipping = Service("shipping")

    @shipping.on("payment.charged", emits="order.shipped", on_reject="shipping.failed")
    def ship(order, ctx):
        if order["ship_to"] not in ex03.CARRIERS:
            raise Reject("nobody goes there")
        ctx.effect("shipped", order=order["order"])

    assert "with the carrier that serves its address" in rejected("03-shipping-service", shipping)


def test_the_story_follows_one_order_across_services():
    run = ex03.shipped_orders(shipping_service(), seed=0, fault="no faults")
    nowhere = next(o for o, order in run.orders.items() if ex03.expected_outcome(order) == "nowhere")
    story = run.story(nowhere)
    for line in ("announces order.placed", "reserved", "charged", "rejected action=ship", "announces shipping.failed"):
        assert line in story
    assert story.index("refunded") < story.index("released")


# ---------------------------------------------------------------------------- 03-fix-inventory


def inventory_service(*failures):
    inventory = Service("inventory")
    inventory.on("order.placed", reserve, emits="inventory.reserved")
    for event in failures:
        inventory.on(event, release, undoes="reserve")
    return inventory


def test_the_fixed_inventory_passes():
    assert score("03-fix-inventory", inventory_service("payment.failed", "payment.refunded")).points == 2


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        (ex03.inventory_as_found(), "(its card is declined) failed, but its item was never put back on the shelf"),
        (inventory_service("payment.failed"), "where no carrier goes) failed, but its item was never put back"),
        (
            inventory_service("payment.failed", "payment.refunded", "payment.charged"),
            "went through, yet its item was put back on the shelf",
        ),
    ],
)
def test_a_wrong_inventory_fix_is_rejected(wrong, says):
    message = rejected("03-fix-inventory", wrong)
    assert says in message
    assert "What happened to order-" in message
    assert "payment.failed: release" not in message and ".on(" not in message


def test_the_as_found_story_shows_the_dropped_failure_event():
    message = rejected("03-fix-inventory", ex03.inventory_as_found())
    assert "payment.failed has no queue bound to it" in message
    with pytest.raises(NotAnswered):
        score("03-fix-inventory", None)
    assert "reacts to nothing yet" in rejected("03-fix-inventory", Service("inventory"))
