"""Checks for exercise 03 · choreography and orchestration
(``solutions/03_choreography_and_orchestration.ipynb``).

Four questions, 10 points:

- ``03-predict-messages`` (2, predict): the messages one order needs in each style when no
  carrier serves its address (so compensations run).
- ``03-trip-saga`` (3, build): ``trip_saga``, a :class:`~evbroker.workflows.Saga` that books a
  flight, a hotel and a car, then emails the tickets, and undoes the bookings of a trip that
  cannot be completed.
- ``03-shipping-service`` (3, build): ``shipping``, a choreographed
  :class:`~evbroker.workflows.Service` that ships paid orders and announces ``order.shipped``
  or ``shipping.failed``.
- ``03-fix-inventory`` (2, debug): ``inventory``, fixed so that no item stays reserved for an
  order that failed.

The services the learner builds on are defined here (:data:`TRIP_SERVICES`, the shop's
choreographed services), so a notebook uses the very objects a check runs.
:func:`replay` rebuilds the run a failure names.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import evbroker as eb
from evbroker.errors import EvbrokerError, one_of
from evbroker.grading.authoring import count_times, expect, expect_number, pick
from evbroker.grading.checks_02 import replay_hint
from evbroker.grading.outcome import CheckFailed, NotAnswered
from evbroker.grading.registry import register
from evbroker.workflows import Choreography, Reject, Saga, Service
from evbroker.workflows import orders as shop

SEEDS = range(20)
#: Delivery faults every worker of a run suffers, drawn afresh on each delivery.
CHANCE = 0.2
FAULTS: dict[str, eb.Faults | None] = {
    "no faults": None,
    "crashes before the ack": eb.Faults(crash_before_ack=CHANCE),
    "lost acks": eb.Faults(lose_ack=CHANCE),
    "lost deliveries": eb.Faults(lose_delivery=CHANCE),
}


def was(verb: str, n: int) -> str:
    """("booked", 0) -> "was never booked"; ("booked", 2) -> "was booked twice"."""
    return f"was never {verb}" if n == 0 else f"was {verb} {count_times(n)}"


def not_answered(answer: Any, name: str, what: str) -> None:
    if answer is None or answer is Ellipsis:
        raise NotAnswered(f"{name} is still {answer!r}: set it to {what}, run that cell, then run this check.")


# ---------------------------------------------------------------------------- 03-predict-messages


def one_order_nowhere(style: str) -> eb.workflows.OrderRun:
    """The run of ``03-predict-messages``: one order to an address no carrier serves."""
    return eb.workflows.run_orders(style, failure="shipping unavailable", orders=1)


@register("03-predict-messages", points=2, title="predict the messages")
def check_predict_messages(counts: Any) -> None:
    if counts is None or (isinstance(counts, tuple) and all(c is None for c in counts)):
        raise NotAnswered("orchestrated and choreographed are still None: set them, run that cell, then this check.")
    expect(
        isinstance(counts, (tuple, list)) and len(counts) == 2,
        f"the check expects two numbers, (orchestrated, choreographed); got {counts!r}",
    )
    hints = {
        "orchestration": "Every step that runs costs a command and a reply, and that includes each compensation.",
        "choreography": "Each service announces what it did, or that it failed, as one event; a service "
        "whose work ends the flow announces nothing.",
    }
    wrong = []
    for style, name, predicted in zip(eb.workflows.STYLES, ("orchestrated", "choreographed"), counts, strict=True):
        number = expect_number(predicted, name)
        if number != len(one_order_nowhere(style).trace.where(kind="publish")):
            wrong.append(f"{name} (the {style}): got {number!r}, which is not right. {hints[style]}")
    if wrong:
        raise CheckFailed(" ".join(wrong))


# ---------------------------------------------------------------------------- 03-trip-saga

#: What each booking step's effects are called: (done, undone), and how it reads in a message.
BOOKINGS = {
    "flight": ("flight-booked", "flight-cancelled", "flight"),
    "hotel": ("room-booked", "room-cancelled", "hotel room"),
    "car": ("car-rented", "rental-cancelled", "car rental"),
}
TICKETS = "tickets-sent"
SOLD_OUT = {"flight": "the flight is full", "hotel": "the hotel is full", "car": "no car is left"}

airline = Service("airline")
hotels = Service("hotels")
cars = Service("cars")
mailer = Service("mailer")


def _sold_out(step: str) -> Callable[[dict, Any], None]:
    def check(trip: dict, ctx: Any) -> None:
        if trip.get("sold_out") == step:
            raise Reject(SOLD_OUT[step])

    return check


@airline.command("book_flight")
def book_flight(trip: dict, ctx: Any) -> None:
    """Book a seat, or say no: the flight is full."""
    _sold_out("flight")(trip, ctx)
    ctx.effect("flight-booked", trip=trip["trip"])


@airline.command("cancel_flight")
def cancel_flight(trip: dict, ctx: Any) -> None:
    ctx.effect("flight-cancelled", trip=trip["trip"])


@hotels.command("book_room")
def book_room(trip: dict, ctx: Any) -> None:
    """Book a room, or say no: the hotel is full."""
    _sold_out("hotel")(trip, ctx)
    ctx.effect("room-booked", trip=trip["trip"])


@hotels.command("cancel_room")
def cancel_room(trip: dict, ctx: Any) -> None:
    ctx.effect("room-cancelled", trip=trip["trip"])


@cars.command("rent_car")
def rent_car(trip: dict, ctx: Any) -> None:
    """Rent a car, or say no: none is left."""
    _sold_out("car")(trip, ctx)
    ctx.effect("car-rented", trip=trip["trip"])


@cars.command("cancel_rental")
def cancel_rental(trip: dict, ctx: Any) -> None:
    ctx.effect("rental-cancelled", trip=trip["trip"])


@mailer.command("send_tickets")
def send_tickets(trip: dict, ctx: Any) -> None:
    """Email the traveller every ticket and voucher (an email cannot be unsent)."""
    ctx.effect("tickets-sent", trip=trip["trip"])


TRIP_SERVICES = (airline, hotels, cars, mailer)
TRAVELLERS = ("ada", "grace", "linus", "barbara", "alan", "edsger")


def trip_plan(seed: int) -> list[tuple[str, str | None]]:
    """The trips of one seed: (trip id, what is sold out or None), every kind of trip at least once."""
    rng = random.Random(seed)
    kinds: list[str | None] = [None, "flight", "hotel", "car", rng.choice([None, None, "hotel", "car"])]
    rng.shuffle(kinds)
    return [(f"trip-{i + 1}", kind) for i, kind in enumerate(kinds)]


class Trips:
    """A run of ``03-trip-saga``: the broker, each trip's plan, and why the run stopped early ("" if it did not)."""

    def __init__(self, broker: eb.Broker, plan: list[tuple[str, str | None]]) -> None:
        self.broker = broker
        self.plan = dict(plan)
        self.stuck = ""

    def story(self, trip: str) -> str:
        """What the services did for one trip, in time order."""
        rows = [
            f"  t={e.time:<5g} {e.worker:<10} {e.name}" + (f" ({e.data['reason']})" if "reason" in e.data else "")
            for e in self.broker.effects()
            if e.key == trip and e.name != "saga"
        ]
        return f"What the services did for {trip}:\n" + ("\n".join(rows) or "  nothing")


def booked_trips(saga: Any, seed: int, fault: str) -> Trips:
    """The run of ``03-trip-saga``: the learner's saga, five trips starting one time unit apart."""
    faults = pick(FAULTS, fault, "fault")
    not_answered(saga, "trip_saga", "a Saga(...)")
    expect(
        isinstance(saga, Saga),
        f"trip_saga should be a Saga(...) made of Step(...)s, as in lesson 03; got {type(saga).__name__} {saga!r}",
    )
    b = eb.Broker(seed=seed)
    try:
        saga.install(b, faults=faults)
    except EvbrokerError as exc:
        raise CheckFailed(f"trip_saga could not be installed on a broker: {exc}") from None
    plan = trip_plan(seed)
    run = Trips(b, plan)
    rng = random.Random(seed)
    for i, (trip, sold_out) in enumerate(plan):
        data = {"trip": trip, "traveller": rng.choice(TRAVELLERS), "sold_out": sold_out}
        saga.start(b, trip, data, at=float(i), by="travel-desk")
    try:
        b.run()
    except EvbrokerError as exc:
        run.stuck = str(exc)
    return run


@register("03-trip-saga", points=3, title="a trip saga")
def check_trip_saga(trip_saga: Any) -> None:
    for seed in SEEDS:
        for fault in FAULTS:
            try:
                _judge_trips(booked_trips(trip_saga, seed, fault))
            except CheckFailed as failure:
                raise failure.with_replay(replay_hint("03-trip-saga", "trip_saga", seed, "fault", fault)) from None


def _judge_trips(run: Trips) -> None:
    if run.stuck:
        raise CheckFailed(f"The run did not finish: {run.stuck}")
    steps = list(BOOKINGS)
    for trip, sold_out in run.plan.items():
        mine = [e for e in run.broker.effects() if e.key == trip and e.name != "saga"]
        count = Counter(e.name for e in mine)
        first: dict[str, float] = {}
        for e in mine:
            first.setdefault(e.name, e.time)
        story = "\n" + run.story(trip)
        fails_at = steps.index(sold_out) if sold_out else len(steps)
        who = f"{trip} ({SOLD_OUT[sold_out]}, so the trip is off)" if sold_out else f"{trip} (everything is available)"
        for i, (done, undone, label) in enumerate(BOOKINGS.values()):
            if i < fails_at and count[done] != 1:
                raise CheckFailed(f"{who}: its {label} {was('booked', count[done])}." + story)
            if i >= fails_at and count[done]:
                said_no = "that step itself said no" if i == fails_at else "an earlier booking said no"
                raise CheckFailed(f"{who}: its {label} was booked, though {said_no}." + story)
            want_undone = 1 if (sold_out and i < fails_at) else 0
            if count[undone] != want_undone:
                if want_undone:
                    raise CheckFailed(
                        f"{who}: its {label} was booked and never cancelled: the traveller pays for a booking "
                        "they will not use." + story
                    )
                raise CheckFailed(f"{who}: its {label} was cancelled {count_times(count[undone])}." + story)
        if sold_out is None and count[TICKETS] != 1:
            sent = "were never emailed" if not count[TICKETS] else f"were emailed {count_times(count[TICKETS])}"
            raise CheckFailed(f"{who}: its tickets {sent}." + story)
        if sold_out is not None and count[TICKETS]:
            raise CheckFailed(
                f"{who}: the traveller was emailed tickets for a trip that is off, and an email cannot be "
                "unsent." + story
            )
        for a, b in itertools.pairwise(steps):
            (booked_a, cancelled_a, label_a), (booked_b, cancelled_b, label_b) = BOOKINGS[a], BOOKINGS[b]
            if booked_a in first and booked_b in first and first[booked_b] < first[booked_a]:
                raise CheckFailed(
                    f"{trip}: its {label_b} was booked before its {label_a}; the travel desk books the flight "
                    "first (the dates depend on it), then the hotel, then the car." + story
                )
            if cancelled_a in first and cancelled_b in first and first[cancelled_a] < first[cancelled_b]:
                raise CheckFailed(f"{trip}: its {label_a} was cancelled before its {label_b}." + story)
        if TICKETS in first and any(first[done] > first[TICKETS] for done, _, _ in BOOKINGS.values()):
            raise CheckFailed(
                f"{trip}: the tickets were emailed before every booking was made; an email cannot be unsent, "
                "so it waits until nothing can fail any more." + story
            )


# ---------------------------------------------------------------------------- the shop's choreography

ORDER_SHIPPED = "order.shipped"
#: Who delivers where; an address missing here has no carrier.
CARRIERS = {"Lyon": "Colissimo", "Lisbon": "CTT", "Oslo": "Posten", "Turin": "Poste Italiane"}
NOWHERE = ("Atlantis", "El Dorado")


def shop_services(*, shipping: Service | None = None, inventory: Service | None = None) -> list[Service]:
    """The shop's choreographed services, with the learner's shipping or inventory in its place.

    Inventory, payment and email are lesson 03's; shipping, when not given, is a correct one
    announcing ``order.shipped``; email confirms on ``order.shipped``.
    """
    if inventory is None:
        inventory = Service("inventory")
        inventory.on(shop.ORDER_PLACED, shop.reserve, emits="inventory.reserved")
        inventory.on("payment.failed", shop.release, undoes="reserve")
        inventory.on("payment.refunded", shop.release, undoes="reserve")
    payment = Service("payment")
    payment.on("inventory.reserved", shop.charge, emits="payment.charged", on_reject="payment.failed")
    payment.on("shipping.failed", shop.refund, emits="payment.refunded", undoes="charge")
    if shipping is None:
        shipping = Service("shipping")
        shipping.on(
            "payment.charged", _ship_with_carrier, action="ship", emits=ORDER_SHIPPED, on_reject="shipping.failed"
        )
    email = Service("email")
    email.on(ORDER_SHIPPED, shop.confirm)
    return [inventory, payment, shipping, email]


def _ship_with_carrier(order: dict, ctx: Any) -> None:
    carrier = CARRIERS.get(order["ship_to"])
    if carrier is None:
        raise Reject(f"no carrier serves {order['ship_to']}")
    ctx.effect("shipped", order=order["order"], to=order["ship_to"], carrier=carrier)


def order_plan(seed: int) -> list[dict]:
    """The orders of one seed: some fine, at least one declined card and one address nobody serves."""
    rng = random.Random(seed)
    kinds = ["fine", "fine", "declined", "nowhere", rng.choice(["fine", "declined", "nowhere"])]
    rng.shuffle(kinds)
    plan = []
    for i, kind in enumerate(kinds, start=1):
        order = shop.order_data(i)
        order["ship_to"] = rng.choice(NOWHERE) if kind == "nowhere" else rng.choice(list(CARRIERS))
        if kind == "declined":
            order["card"] = "declined"
        plan.append(order)
    return plan


def expected_outcome(order: dict) -> str:
    """ "fine", "declined" or "nowhere"."""
    if order["card"] == "declined":
        return "declined"
    return "fine" if order["ship_to"] in CARRIERS else "nowhere"


def messages_by_key(trace: eb.Trace, roots: Mapping[str, str]) -> dict[str, str]:
    """Which business key each message belongs to, read from the trace alone.

    ``roots`` maps the messages the check published to their keys. A handler's publications are
    recorded right after the ``complete`` of the message it was handling, by the same worker,
    so each new message inherits the key of that one.
    """
    key = dict(roots)
    handling: dict[str, str] = {}  # worker -> the message whose work it just committed
    for e in trace:
        if e.kind == "complete":
            handling[e.actor] = e.msg
        elif e.kind == "publish" and e.msg not in key and e.actor in handling:
            parent = key.get(handling[e.actor])
            if parent is not None:
                key[e.msg] = parent
    return key


class Shop:
    """A run of the shop's choreography: the broker, the orders placed, why it stopped early."""

    def __init__(self, broker: eb.Broker, orders: list[dict]) -> None:
        self.broker = broker
        self.orders = {o["order"]: o for o in orders}
        self.placed: dict[str, str] = {}  # message id -> order
        self.stuck = ""

    def story(self, order: str) -> str:
        """What each service heard, did and announced for one order, in time order."""
        keys = messages_by_key(self.broker.trace, self.placed)
        mids = [m for m, k in keys.items() if k == order]
        rows = []
        for e in self.broker.trace.where(kind=["publish", "effect", "unroutable"], msg=mids):
            if e.kind == "publish":
                rows.append(f"  t={e.time:<4g} {e.actor:<12} announces {e.to} ({e.msg})")
            elif e.kind == "unroutable":
                rows.append(f"  t={e.time:<4g} {e.actor} has no queue bound to it: {e.msg} is dropped")
            else:
                rows.append(f"  t={e.time:<4g} {e.actor:<12} {e.detail}")
        return f"What happened to {order}:\n" + ("\n".join(rows) or "  nothing")


def run_shop(services: list[Service], seed: int, fault: str) -> Shop:
    """Install the choreography of ``services`` on a fresh broker and place one seed's orders."""
    faults = pick(FAULTS, fault, "fault")
    try:
        flow = Choreography("shop", services, starts_on=shop.ORDER_PLACED)
    except EvbrokerError as exc:
        raise CheckFailed(f"The shop's services could not be put together with yours: {exc}") from None
    b = eb.Broker(seed=seed)
    try:
        flow.install(b, faults=faults)
    except EvbrokerError as exc:
        raise CheckFailed(f"The shop's services could not be installed with yours: {exc}") from None
    orders = order_plan(seed)
    run = Shop(b, orders)
    for i, order in enumerate(orders):
        mid = flow.start(b, order["order"], order, at=float(i), by=shop.SHOP)
        run.placed[mid] = order["order"]
    try:
        b.run()
    except EvbrokerError as exc:
        run.stuck = str(exc)
    return run


#: Each kind of order: how many times each business effect must happen, and what it means.
EXPECTED = {
    "fine": {"reserved": 1, "charged": 1, "shipped": 1, "emailed": 1, "refunded": 0, "released": 0},
    "declined": {"reserved": 1, "charged": 0, "shipped": 0, "emailed": 0, "refunded": 0, "released": 1},
    "nowhere": {"reserved": 1, "charged": 1, "shipped": 0, "emailed": 0, "refunded": 1, "released": 1},
}


def _describe(order: dict) -> str:
    kind = expected_outcome(order)
    if kind == "declined":
        return f"{order['order']} (its card is declined)"
    if kind == "nowhere":
        return f"{order['order']} (to {order['ship_to']}, where no carrier goes)"
    return f"{order['order']} (paid, to {order['ship_to']})"


def _judge_shop(run: Shop) -> None:
    b = run.broker
    if run.stuck:
        raise CheckFailed(f"The run did not finish: {run.stuck}")
    for order_id, order in run.orders.items():
        kind = expected_outcome(order)
        count = Counter(e.name for e in b.effects() if e.key == order_id)
        who = _describe(order)
        story = "\n" + run.story(order_id)
        want = EXPECTED[kind]
        shipped = count["shipped"]
        if kind == "declined" and shipped:
            raise CheckFailed(f"{who} was shipped, though it was never paid for." + story)
        if kind == "nowhere" and shipped:
            raise CheckFailed(f"{who} was shipped anyway: no carrier will ever pick that parcel up." + story)
        if kind == "fine" and shipped != 1:
            raise CheckFailed(f"{who} {was('shipped', shipped)}." + story)
        for e in b.effects("shipped"):
            if e.key == order_id and (e.data.get("carrier") != CARRIERS.get(order["ship_to"]) or "to" not in e.data):
                raise CheckFailed(
                    f"{order_id}'s shipment was recorded as {e.data}; record it as ctx.effect('shipped', "
                    "order=..., to=..., carrier=...), with the carrier that serves its address." + story
                )
        times = {e.name: e.time for e in b.effects() if e.key == order_id}
        if kind == "fine" and times["shipped"] <= times.get("charged", float("inf")) - 1e-9:
            raise CheckFailed(f"{who} was shipped before its card was charged." + story)
        if count["emailed"] != want["emailed"]:
            if want["emailed"]:
                raise CheckFailed(
                    f"{who} was shipped, but its customer {was('emailed', count['emailed'])}: the email "
                    f"service sends one when it hears {ORDER_SHIPPED}." + story
                )
            raise CheckFailed(f"The customer of {who} was told it is on its way, but it is not." + story)
        if count["refunded"] != want["refunded"]:
            if want["refunded"]:
                raise CheckFailed(
                    f"{who} was charged and could not be shipped, but the customer {was('refunded', 0)}: "
                    "the payment service never heard that shipping failed." + story
                )
            raise CheckFailed(f"{who} {was('refunded', count['refunded'])}." + story)
        if count["reserved"] != 1:
            raise CheckFailed(f"{who}: its item {was('reserved', count['reserved'])}." + story)
        if count["released"] != want["released"]:
            if want["released"]:
                raise CheckFailed(
                    f"{who} failed, but its item was never put back on the shelf: the stock count drifts down "
                    "by one for every such order." + story
                )
            raise CheckFailed(
                f"{who} went through, yet its item was put back on the shelf: the shop will sell it twice." + story
            )
        if count["charged"] != want["charged"]:
            raise CheckFailed(f"{who} {was('charged', count['charged'])}." + story)


# ---------------------------------------------------------------------------- 03-shipping-service


def shipped_orders(shipping: Any, seed: int, fault: str) -> Shop:
    """The run of ``03-shipping-service``: lesson 03's shop with the learner's shipping service."""
    not_answered(shipping, "shipping", "a Service(...)")
    _expect_service(shipping, "shipping")
    return run_shop(shop_services(shipping=shipping), seed, fault)


def _expect_service(answer: Any, name: str) -> None:
    expect(
        isinstance(answer, Service),
        f"{name} should be a Service(...) with its reactions declared by {name}.on(...), as in lesson 03; "
        f"got {type(answer).__name__} {answer!r}",
    )
    expect(
        answer.reactions,
        f"{name} reacts to nothing yet: declare what it listens to with @{name}.on('some.event', ...).",
    )


@register("03-shipping-service", points=3, title="a choreographed shipping service")
def check_shipping_service(shipping: Any) -> None:
    for seed in SEEDS:
        for fault in FAULTS:
            try:
                _judge_shop(shipped_orders(shipping, seed, fault))
            except CheckFailed as failure:
                raise failure.with_replay(
                    replay_hint("03-shipping-service", "shipping", seed, "fault", fault)
                ) from None


# ---------------------------------------------------------------------------- 03-fix-inventory


def inventory_as_found() -> Service:
    """The inventory service as deployed: it reserves, and releases after a refund."""
    inventory = Service("inventory")
    inventory.on(shop.ORDER_PLACED, shop.reserve, emits="inventory.reserved")
    inventory.on("payment.refunded", shop.release, undoes="reserve")
    return inventory


def stocked_orders(inventory: Any, seed: int, fault: str) -> Shop:
    """The run of ``03-fix-inventory``: the shop with the learner's inventory service."""
    not_answered(inventory, "inventory", "a Service(...)")
    _expect_service(inventory, "inventory")
    return run_shop(shop_services(inventory=inventory), seed, fault)


@register("03-fix-inventory", points=2, title="fix the inventory service")
def check_fix_inventory(inventory: Any) -> None:
    for seed in SEEDS:
        for fault in FAULTS:
            try:
                _judge_shop(stocked_orders(inventory, seed, fault))
            except CheckFailed as failure:
                raise failure.with_replay(replay_hint("03-fix-inventory", "inventory", seed, "fault", fault)) from None


# ---------------------------------------------------------------------------- replay

_REPLAYS: dict[str, Callable[[Any, int, str], Any]] = {
    "03-trip-saga": booked_trips,
    "03-shipping-service": shipped_orders,
    "03-fix-inventory": stocked_orders,
}


def replay(check_id: str, answer: Any, *, seed: int, fault: str) -> eb.Broker:
    """Rebuild the run a failed check names, with your answer, and return its broker (already run).

    >>> b = replay("03-trip-saga", trip_saga, seed=3, fault="lost acks")   # doctest: +SKIP
    >>> print(b.trace.table())                                            # doctest: +SKIP

    A run that could not finish stops where the broker gave up.
    """
    if check_id not in _REPLAYS:
        raise one_of("replay: check_id", check_id, _REPLAYS)
    pick(FAULTS, fault, "fault")
    return _REPLAYS[check_id](answer, seed, fault).broker
