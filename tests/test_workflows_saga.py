"""The generic saga orchestrator, on a workflow that has nothing to do with orders: a trip.

A trip books a flight, a hotel and a car; each booking can be cancelled. The tests drive the
orchestrator through success, a rejected step, steps whose outcome is unclear (dead-lettered
commands), compensations that run twice and duplicate replies, and check the declarations.
"""

import pytest

import evbroker as eb
from evbroker.workflows import Command, Reject, Reply, Saga, Service, Step

FLIGHT, HOTEL, CAR = "airline", "hotels", "cars"


def trip_saga(*, notify: bool = False) -> Saga:
    """Three bookable services; with ``notify``, a fourth step that cannot be undone."""
    airline, hotels, cars = Service(FLIGHT), Service(HOTEL), Service(CAR)

    @airline.command("book")
    def book_flight(trip, ctx):
        ctx.effect("booked", what="flight", trip=trip["trip"])
        return {"flight": f"AF-{trip['trip']}"}

    @hotels.command("book")
    def book_hotel(trip, ctx):
        ctx.effect("booked", what="hotel", trip=trip["trip"], flight=trip["flight"])

    @cars.command("book")
    def book_car(trip, ctx):
        if trip.get("cars_left") == 0:
            raise Reject("no cars left")
        ctx.effect("booked", what="car", trip=trip["trip"])

    for svc, what in ((airline, "flight"), (hotels, "hotel"), (cars, "car")):
        svc.command("cancel", lambda trip, ctx, what=what: ctx.effect("cancelled", what=what, trip=trip["trip"]))
    steps = [
        Step("flight", airline, command="book", compensate="cancel"),
        Step("hotel", hotels, command="book", compensate="cancel"),
        Step("car", cars, command="book", compensate="cancel"),
    ]
    if notify:
        mail = Service("mail")
        mail.command("send", lambda trip, ctx: ctx.effect("sent", trip=trip["trip"]))
        steps.append(Step("notify", mail, command="send"))
    return Saga("trip-saga", steps)


def run_trips(saga, trips, *, faults=None, attempts=None, seed=0, cars_left=None):
    b = eb.Broker(seed=seed)
    saga.install(b, faults=faults, attempts=attempts)
    for i, trip in enumerate(trips):
        data = {"trip": trip}
        if cars_left is not None:
            data["cars_left"] = cars_left
        saga.start(b, trip, data, at=float(i))
    b.run()
    return b


def first_copy_of(phase):
    """A fault predicate true for every delivery of the first command of ``phase`` it sees."""
    first = []

    def predicate(m):
        if isinstance(m.payload, Command) and m.payload.phase == phase:
            if not first:
                first.append(m.id)
            return m.id == first[0]
        return False

    return predicate


def net_bookings(b, trip):
    """what -> bookings minus cancellations, for one trip."""
    net = {"flight": 0, "hotel": 0, "car": 0}
    for e in b.effects():
        if e.data.get("trip") == trip and e.name in ("booked", "cancelled"):
            net[e["what"]] += 1 if e.name == "booked" else -1
    return net


def effect_order(b, trip, name):
    """The ``what`` of each ``name`` effect of ``trip``, in the order the trace recorded them."""
    return [
        e.data["what"] for e in b.trace.where(kind="effect") if e.data["name"] == name and e.data.get("trip") == trip
    ]


def test_every_step_done_in_order_and_results_flow_forward():
    saga = trip_saga()
    b = run_trips(saga, ["trip-1", "trip-2"])
    states = saga.states(b)
    assert list(states) == ["trip-1", "trip-2"]
    for trip, state in states.items():
        assert state.steps == {"flight": "done", "hotel": "done", "car": "done"}
        assert state.outcome == "completed" and state.current is None
        assert effect_order(b, trip, "booked") == ["flight", "hotel", "car"]
        assert net_bookings(b, trip) == {"flight": 1, "hotel": 1, "car": 1}
    # The flight number the airline returned reached the hotel, through the orchestrator.
    assert [e["flight"] for e in b.effects("booked") if e["what"] == "hotel"] == ["AF-trip-1", "AF-trip-2"]


def test_state_table_shows_each_instance():
    saga = trip_saga()
    b = run_trips(saga, ["trip-1"], cars_left=0)
    assert saga.table(b) == (
        "instance  flight  hotel   car                    current  outcome\n"
        "trip-1    undone  undone  failed (no cars left)  -        compensated"
    )


def test_a_rejected_step_undoes_the_done_steps_in_reverse_order():
    saga = trip_saga()
    b = run_trips(saga, ["trip-1", "trip-2"], cars_left=0)
    for trip in ("trip-1", "trip-2"):
        state = saga.states(b)[trip]
        assert state.steps == {"flight": "undone", "hotel": "undone", "car": "failed"}
        assert state.reasons == {"car": "no cars left"}
        assert state.outcome == "compensated"
        # From the trace: the hotel is cancelled before the flight, and nothing else happens.
        assert effect_order(b, trip, "cancelled") == ["hotel", "flight"]
        assert net_bookings(b, trip) == {"flight": 0, "hotel": 0, "car": 0}
        # And the orchestrator's log says the same, one compensation at a time.
        undo = [(step, status) for _, step, status, _ in state.history if status in ("undoing", "undone")]
        assert undo == [("hotel", "undoing"), ("hotel", "undone"), ("flight", "undoing"), ("flight", "undone")]


def test_a_step_whose_outcome_is_unclear_but_happened_is_undone():
    """The car is booked, but the cars worker dies before every ack, so after 2 deliveries its
    queue dead-letters the command back to the orchestrator; and the reply (published with the
    booking) is lost on its way twice, so the dead letter arrives first. The orchestrator cannot
    know the car was booked: it compensates the car too, and the late reply is ignored."""
    car_never_acks = eb.Faults(crash_before_ack=lambda m: isinstance(m.payload, Command) and m.payload.phase == "do")
    car_reply_late = eb.Faults(
        lose_delivery=lambda m: isinstance(m.payload, Reply) and m.payload.step == "car" and m.attempt <= 2
    )
    saga = trip_saga()
    b = run_trips(saga, ["trip-1"], faults={CAR: car_never_acks, "trip-saga": car_reply_late}, attempts=2)
    assert len(b.trace.where(kind="dead-letter", actor=CAR)) == 1
    state = saga.states(b)["trip-1"]
    assert [status for _, step, status, _ in state.history if step == "car"] == [
        "running",
        "unclear",
        "undoing",
        "undone",
    ]
    assert state.outcome == "compensated"
    assert effect_order(b, "trip-1", "booked") == ["flight", "hotel", "car"]
    assert effect_order(b, "trip-1", "cancelled") == ["car", "hotel", "flight"]
    assert net_bookings(b, "trip-1") == {"flight": 0, "hotel": 0, "car": 0}


def test_a_step_whose_outcome_is_unclear_and_never_happened_is_safely_undone():
    """The cars worker dies before every booking: the compensation finds nothing to undo."""
    never_books = eb.Faults(crash_before_process=lambda m: isinstance(m.payload, Command) and m.payload.phase == "do")
    saga = trip_saga()
    b = run_trips(saga, ["trip-1"], faults={CAR: never_books}, attempts=2)
    assert saga.states(b)["trip-1"].outcome == "compensated"
    assert [e.data for e in b.effects("skipped")] == [
        {"action": "cancel", "reason": "nothing to undo: book never happened"}
    ]
    assert effect_order(b, "trip-1", "cancelled") == ["hotel", "flight"]
    assert net_bookings(b, "trip-1") == {"flight": 0, "hotel": 0, "car": 0}


def test_work_that_arrives_after_its_compensation_is_skipped():
    """A tombstone: the car booking's first copy is dead-lettered and compensated (nothing to
    undo); a retried copy of the same command (the orchestrator never got the confirmation of
    its publish) arrives later. Without the tombstone it would book a car nobody cancels."""
    orchestrator = eb.Faults(
        lose_confirm=lambda m: isinstance(m.payload, Command) and m.topic == CAR and m.attempt == 1, retry_after=20.0
    )
    saga = trip_saga()
    b = run_trips(
        saga,
        ["trip-1"],
        faults={"trip-saga": orchestrator, CAR: eb.Faults(crash_before_process=first_copy_of("do"))},
        attempts=2,
    )
    skipped = [e.data["reason"] for e in b.effects("skipped")]
    assert skipped == ["nothing to undo: book never happened", "too late: cancel already ran"]
    assert b.trace.where(kind="confirm-lost").to_records()[0]["to"] == CAR
    assert net_bookings(b, "trip-1") == {"flight": 0, "hotel": 0, "car": 0}
    assert saga.states(b)["trip-1"].outcome == "compensated"


def test_a_compensation_that_runs_twice_undoes_once():
    """The hotel's worker dies after its first cancellation, before the ack: redelivered."""
    crash_after_first_cancel = eb.Faults(
        crash_before_ack=lambda m: isinstance(m.payload, Command) and m.payload.phase == "undo" and m.attempt == 1
    )
    saga = trip_saga()
    b = run_trips(saga, ["trip-1"], faults={HOTEL: crash_after_first_cancel}, cars_left=0)
    assert len(b.trace.where(kind="redeliver", actor=HOTEL)) == 1
    assert effect_order(b, "trip-1", "cancelled") == ["hotel", "flight"]
    assert saga.states(b)["trip-1"].outcome == "compensated"


def test_duplicate_replies_are_ignored():
    """Every reply's publish confirmation is lost, so every reply arrives 4 times (3 retries),
    and the orchestrator itself crashes before half its acks: each command is still sent once."""
    replies_repeat = eb.Faults(lose_confirm=lambda m: isinstance(m.payload, Reply), retry_after=0.25)
    faults = {
        FLIGHT: replies_repeat,
        HOTEL: replies_repeat,
        CAR: replies_repeat,
        "trip-saga": eb.Faults(crash_before_ack=0.5),
    }
    saga = trip_saga()
    b = run_trips(saga, ["trip-1", "trip-2"], faults=faults, seed=3)
    assert len(b.trace.where(kind="confirm-lost")) == 18  # 2 trips x 3 replies x 3 lost confirmations
    assert len(b.trace.where(kind="crash", actor="trip-saga-1")) > 0
    commands = [e for e in b.trace.where(kind="publish", actor="trip-saga-1")]
    assert len(commands) == 6  # one per step and trip, despite 4 copies of every reply
    for trip in ("trip-1", "trip-2"):
        assert saga.states(b)[trip].outcome == "completed"
        assert net_bookings(b, trip) == {"flight": 1, "hotel": 1, "car": 1}


def test_an_unclear_step_that_cannot_be_undone_is_asked_again():
    """notify has no compensation: when its command is dead-lettered, the saga resends it."""
    saga = trip_saga(notify=True)
    b = eb.Broker(seed=0)
    saga.install(b, faults={"mail": eb.Faults(lose_delivery=first_copy_of("do"))}, attempts=2)
    saga.start(b, "trip-1", {"trip": "trip-1"})
    b.run()
    state = saga.states(b)["trip-1"]
    assert [status for _, step, status, _ in state.history if step == "notify"] == ["running", "resent", "done"]
    assert state.outcome == "completed"
    assert len(b.effects("sent")) == 1


def test_a_step_that_never_gets_through_and_cannot_be_undone_stops_the_run():
    saga = trip_saga(notify=True)
    b = eb.Broker(seed=0)
    saga.install(b, faults={"mail": eb.Faults(lose_delivery=lambda m: isinstance(m.payload, Command))}, attempts=1)
    saga.start(b, "trip-1", {"trip": "trip-1"})
    with pytest.raises(
        eb.EvbrokerError,
        match=r"mail.send \(step 'notify', do\) was dead-lettered 11 times and the step cannot be undone",
    ):
        b.run()


def test_install_starts_on_a_topic():
    saga = trip_saga()
    topic_saga = Saga("trip-saga", saga.steps, starts_on="trip.requested")
    b = eb.Broker(seed=0)
    topic_saga.install(b)
    assert "trip.requested" in b.topics
    b.publish("trip.requested", {"trip": "trip-9"}, key="trip-9", by="agency")
    b.run()
    assert topic_saga.states(b)["trip-9"].outcome == "completed"


# ---------------------------------------------------------------------- declarations


def _inventory():
    inventory = Service("inventory")
    inventory.command("reserve", lambda order, ctx: None)
    inventory.command("release", lambda order, ctx: None)
    return inventory


def test_a_step_with_no_service_is_refused():
    with pytest.raises(eb.EvbrokerError, match=r"Step 'reserve' has no service.*service=inventory"):
        Step("reserve", command="reserve")


def test_a_step_naming_its_service_as_a_string_is_told_to_pass_the_object():
    with pytest.raises(eb.EvbrokerError, match=r"pass the Service object itself"):
        Step("reserve", service="inventory")


def test_a_compensation_naming_an_unknown_command_is_refused():
    with pytest.raises(
        eb.EvbrokerError,
        match=r"compensation 'relase' is not a command of service 'inventory'.*"
        r"did you mean 'release'",
    ):
        Step("reserve", _inventory(), compensate="relase")


def test_a_command_the_service_lacks_is_refused():
    with pytest.raises(eb.EvbrokerError, match=r"command 'reserv' .*did you mean 'reserve'"):
        Step("reserve", _inventory(), command="reserv")


def test_a_step_cannot_undo_itself():
    with pytest.raises(eb.EvbrokerError, match=r"is the step's own command"):
        Step("reserve", _inventory(), compensate="reserve")


def test_two_steps_with_one_name_are_refused():
    inventory = _inventory()
    with pytest.raises(eb.EvbrokerError, match=r"two steps are named 'reserve'"):
        Saga("order-saga", [Step("reserve", inventory), Step("reserve", inventory, command="release")])


@pytest.mark.parametrize("steps", [[], "reserve", None])
def test_a_saga_needs_a_list_of_steps(steps):
    with pytest.raises(eb.EvbrokerError, match=r"steps must be a non-empty list of Step"):
        Saga("order-saga", steps)


def test_a_service_declares_each_command_once():
    inventory = _inventory()
    with pytest.raises(eb.EvbrokerError, match=r"already has a command 'reserve'"):
        inventory.command("reserve", lambda order, ctx: None)
    with pytest.raises(eb.EvbrokerError, match=r"needs a function fn\(data, ctx\)"):
        inventory.command("restock", "restock")


def test_install_checks_faults_and_attempts():
    saga = trip_saga()
    with pytest.raises(eb.EvbrokerError, match=r"faults for 'car'.*did you mean 'cars'"):
        saga.install(eb.Broker(), faults={"car": eb.Faults()})
    with pytest.raises(eb.EvbrokerError, match=r"attempts must be None .* or a whole number >= 1"):
        saga.install(eb.Broker(), attempts=0)
    with pytest.raises(eb.EvbrokerError, match=r"ack_timeout=0.25 must be longer"):
        saga.install(eb.Broker(), ack_timeout=0.25)


def test_a_compensation_that_rejects_stops_the_run_with_an_explanation():
    shop = Service("shop")
    shop.command("sell", lambda d, ctx: None)

    @shop.command("unsell")
    def unsell(d, ctx):
        raise Reject("already gone")

    fails = Service("fails")

    @fails.command("go")
    def go(d, ctx):
        raise Reject("no")

    saga = Saga("s", [Step("sell", shop, compensate="unsell"), Step("go", fails)])
    b = eb.Broker()
    saga.install(b)
    saga.start(b, "x-1", {})
    with pytest.raises(eb.EvbrokerError, match=r"compensation 'unsell' rejected \(already gone\); a compensation must"):
        b.run()


def test_rejecting_after_recording_an_effect_is_refused():
    svc = Service("svc")

    @svc.command("half")
    def half(d, ctx):
        ctx.effect("done-a-bit")
        raise Reject("changed my mind")

    b = eb.Broker()
    Saga("s", [Step("half", svc)]).install(b)
    b.publish("s", {}, key="x-1")
    with pytest.raises(eb.EvbrokerError, match=r"raise Reject before any ctx.effect"):
        b.run()
