"""The order workflow in both styles: outcomes, ledger, compensation order, measures, arguments."""

import pytest

import evbroker as eb
from evbroker.workflows import FAILURES, LEDGER, ORDER_STEPS, PRICE, STYLES, run_orders


def per_order(run, name):
    """Order id -> how many ``name`` effects it got."""
    counts = dict.fromkeys(run.order_ids, 0)
    for e in run.broker.effects(name):
        counts[e.key] += 1
    return counts


def effect_names(run, order):
    """The business effects of one order (its business key), in the order they were committed."""
    return [e.name for e in run.broker.effects() if e.key == order and e.name != "saga"]


@pytest.mark.parametrize("style", STYLES)
def test_happy_path_completes_every_order(style):
    run = run_orders(style=style, failure="none", orders=3)
    assert run.outcomes == {"order-1": "completed", "order-2": "completed", "order-3": "completed"}
    assert run.ledger == {"reserved": 3, "released": 0, "charged": 3, "refunded": 0, "shipped": 3, "emailed": 3}
    assert run.money == {"charged": 3 * PRICE, "refunded": 0, "net": 3 * PRICE}
    for order in run.order_ids:
        assert effect_names(run, order) == ["reserved", "charged", "shipped", "emailed"]
        assert run.states[order].steps == dict.fromkeys(ORDER_STEPS, "done")
    assert all(run.broker.stats(q)["pending"] == 0 for q in run.broker.queues)


@pytest.mark.parametrize("failure", FAILURES)
def test_both_styles_reach_the_same_business_outcome(failure):
    orchestrated = run_orders(style="orchestration", failure=failure, orders=4)
    choreographed = run_orders(style="choreography", failure=failure, orders=4)
    assert orchestrated.outcomes == choreographed.outcomes
    assert orchestrated.ledger == choreographed.ledger
    assert orchestrated.money == choreographed.money
    # The step-by-step table reads the same, though one was logged by the orchestrator and
    # the other rebuilt from the services' effects.
    assert orchestrated.table() == choreographed.table()


@pytest.mark.parametrize("style", STYLES)
def test_payment_declined_releases_every_reservation(style):
    run = run_orders(style=style, failure="payment declined", orders=3)
    assert set(run.outcomes.values()) == {"compensated"}
    assert run.ledger == {"reserved": 3, "released": 3, "charged": 0, "refunded": 0, "shipped": 0, "emailed": 0}
    for order in run.order_ids:
        assert effect_names(run, order) == ["reserved", "rejected", "released"]
        assert run.states[order].steps == {"reserve": "undone", "charge": "failed", "ship": "-", "confirm": "-"}
        assert run.states[order].reasons == {"charge": "card declined"}


@pytest.mark.parametrize("style", STYLES)
def test_shipping_unavailable_refunds_then_releases(style):
    run = run_orders(style=style, failure="shipping unavailable", orders=3)
    assert set(run.outcomes.values()) == {"compensated"}
    assert run.ledger == {"reserved": 3, "released": 3, "charged": 3, "refunded": 3, "shipped": 0, "emailed": 0}
    assert run.money["net"] == 0
    for order in run.order_ids:
        # Compensations in reverse order, read from the trace: refund (undoes step 2) before
        # release (undoes step 1).
        assert effect_names(run, order) == ["reserved", "charged", "rejected", "refunded", "released"]
        assert run.states[order].steps == {"reserve": "undone", "charge": "undone", "ship": "failed", "confirm": "-"}


def test_orchestrator_log_shows_one_compensation_at_a_time():
    run = run_orders(style="orchestration", failure="shipping unavailable", orders=1)
    log = [(step, status) for _, step, status, _ in run.states["order-1"].history]
    assert log == [
        (None, "started"),
        ("reserve", "running"),
        ("reserve", "done"),
        ("charge", "running"),
        ("charge", "done"),
        ("ship", "running"),
        ("ship", "failed"),
        ("charge", "undoing"),
        ("charge", "undone"),
        ("reserve", "undoing"),
        ("reserve", "undone"),
        (None, "compensated"),
    ]


def test_choreographed_compensation_is_a_chain_of_events():
    run = run_orders(style="choreography", failure="shipping unavailable", orders=1)
    published = [e.to for e in run.trace.where(kind="publish")]
    assert published == [
        "order.placed",
        "inventory.reserved",
        "payment.charged",
        "shipping.failed",
        "payment.refunded",
    ]


def test_state_table_and_repr():
    run = run_orders(style="orchestration", failure="payment declined", orders=2)
    assert run.table() == (
        "order    reserve  charge                  ship  confirm  current  outcome\n"
        "order-1  undone   failed (card declined)  -     -        -        compensated\n"
        "order-2  undone   failed (card declined)  -     -        -        compensated"
    )
    text = repr(run)
    assert text.startswith("<OrderRun orchestration, failure='payment declined', 2 orders, seed=0: 2 compensated>")
    assert run.table() in text
    assert "ledger: reserved=2 released=2 charged=0" in text


def test_measures_make_the_trade_off_concrete():
    orch = run_orders(style="orchestration", orders=3).measures
    chor = run_orders(style="choreography", orders=3).measures
    # Messages: every step is a command and a reply (plus the order), against one event per step.
    assert (orch.messages, chor.messages) == (3 * 9, 3 * 4)
    assert (orch.deliveries, chor.deliveries) == (27, 12)
    # Where the workflow is defined: one saga, against a piece in every service.
    assert orch.defined_in == ("order-saga",) and orch.places == 1
    assert chor.defined_in == ("inventory", "payment", "shipping", "email") and chor.places == 4
    assert chor.rules["payment"] == [
        "on inventory.reserved: charge, then emit payment.charged; if rejected, emit payment.failed",
        "on shipping.failed: refund, then emit payment.refunded",
    ]
    # Coupling: a star around the orchestrator, against a chain of services.
    services = {"inventory", "payment", "shipping", "email"}
    assert set(orch.coupling.edges) == {("shop", "order-saga")} | {("order-saga", s) for s in services} | {
        (s, "order-saga") for s in services
    }
    assert set(chor.coupling.edges) == {
        ("shop", "inventory"),
        ("inventory", "payment"),
        ("payment", "shipping"),
        ("shipping", "email"),
    }
    assert orch.coupling.edges["order-saga", "payment"]["messages"] == 3
    assert chor.coupling.edges["inventory", "payment"]["via"] == ["inventory.reserved"]
    assert orch.coupling.nodes["shop"]["role"] == "producer"
    assert orch.finished_at is not None and chor.finished_at is not None
    assert chor.finished_at < orch.finished_at  # fewer hops: each order is done sooner
    assert ("shop", "order-saga", 3) in orch.summary()["links"]


def test_failure_paths_show_in_the_choreography_graph():
    graph = run_orders(style="choreography", failure="shipping unavailable").measures.coupling
    assert ("shipping", "payment") in graph.edges and ("payment", "inventory") in graph.edges
    assert ("shipping", "email") not in graph.edges


@pytest.mark.parametrize("style", STYLES)
def test_same_arguments_same_trace(style):
    faults = eb.Faults(crash_before_ack=0.3, lose_ack=0.2, slow=0.2)
    first = run_orders(style=style, failure="shipping unavailable", orders=3, faults=faults, seed=7)
    again = run_orders(style=style, failure="shipping unavailable", orders=3, faults=faults, seed=7)
    assert first.trace.to_records() == again.trace.to_records()
    other = run_orders(style=style, failure="shipping unavailable", orders=3, faults=faults, seed=8)
    assert other.trace.to_records() != first.trace.to_records()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("failure", FAILURES)
def test_crashes_and_lost_acks_leave_the_business_state_right(style, failure):
    faults = eb.Faults(crash_before_ack=0.4, lose_ack=0.4, crash_during_process=0.2, slow=0.3, lose_confirm=0.3)
    run = run_orders(style=style, failure=failure, orders=3, faults=faults, seed=11)
    # The faults really did strike, and redeliveries and retried publishes really did happen.
    assert run.trace.where(kind=["crash", "ack-lost"]) and run.trace.where(kind="redeliver")
    assert run.trace.where(kind="confirm-lost")
    # Yet nothing happened twice and nothing was left half-done.
    for name in LEDGER:
        assert max(per_order(run, name).values()) <= 1, name
    expected = "completed" if failure == "none" else "compensated"
    assert set(run.outcomes.values()) == {expected}
    assert run.ledger["reserved"] - run.ledger["released"] == run.ledger["shipped"]
    assert all(run.broker.stats(q)["pending"] == 0 for q in run.broker.queues)


def test_without_the_dedupe_the_same_faults_double_charge():
    """The control experiment: a payment worker that does not dedupe, under the faults the
    Service survives above, charges some orders twice. (Built on the core API directly.)"""
    faults = eb.Faults(crash_before_ack=0.4, lose_ack=0.4)
    b = eb.Broker(seed=11)
    b.topic("inventory.reserved")
    b.topic("payment.charged")
    b.queue("payment", bind="inventory.reserved", ack_timeout=3.0)

    def naive_charge(msg, ctx):
        ctx.effect("charged", order=msg.payload["order"], amount=PRICE)
        ctx.publish("payment.charged", msg.payload, key=msg.key)

    b.worker("payment", naive_charge, faults=faults)
    for n in range(1, 11):
        b.publish("inventory.reserved", {"order": f"order-{n}"}, key=f"order-{n}")
    b.run()
    assert len(b.effects("charged")) > 10


def test_faults_can_target_one_service():
    run = run_orders(faults={"payment": eb.Faults(crash_before_ack=0.5)}, seed=3)
    crashed = {e.actor for e in run.trace.where(kind="crash")}
    assert crashed == {"payment-1"}
    assert set(run.outcomes.values()) == {"completed"} and run.ledger["charged"] == 3


# ---------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"style": "orchestra"},
            r"style must be one of 'orchestration', 'choreography' .*did you mean 'orchestration'",
        ),
        ({"style": "Choreography"}, r"did you mean 'choreography'"),
        ({"failure": "payment decline"}, r"failure must be one of 'none', .*did you mean 'payment declined'"),
        ({"failure": None}, r"failure must be one of"),
        ({"orders": 0}, r"orders must be a whole number >= 1 \(got 0\)"),
        ({"orders": 2.5}, r"orders must be a whole number >= 1"),
        ({"orders": True}, r"orders must be a whole number >= 1"),
        ({"seed": "0"}, r"seed must be an int"),
        ({"faults": 0.3}, r"faults must be eb.Faults\(...\), a dict"),
        ({"faults": {"paymnt": eb.Faults()}}, r"did you mean 'payment'"),
        ({"faults": {"payment": 0.3}}, r"faults\['payment'\] must be eb.Faults"),
        (
            {"style": "choreography", "faults": {"order-saga": eb.Faults()}},
            r"a choreography has no orchestrator",
        ),
        (
            {"faults": eb.Faults(crash_before_ack=1.0)},
            r"crash_before_ack=1.0 stops every delivery from ever being acked",
        ),
        ({"faults": eb.Faults(slow=1.0)}, r"slow=1.0 with slow_by=5 makes every delivery take 6"),
    ],
)
def test_bad_arguments_teach(kwargs, message):
    with pytest.raises(eb.EvbrokerError, match=message):
        run_orders(**kwargs)


def test_always_slow_but_within_the_timeout_is_fine():
    run = run_orders(faults=eb.Faults(slow=1.0, slow_by=1.5))
    assert set(run.outcomes.values()) == {"completed"}
    assert not run.trace.where(kind="timeout")


def test_constants_for_widgets():
    assert STYLES == ("orchestration", "choreography")
    assert FAILURES == ("none", "payment declined", "shipping unavailable")
    assert LEDGER == ("reserved", "released", "charged", "refunded", "shipped", "emailed")


def test_story_follows_one_order_across_the_choreography_by_its_business_key():
    """The story of order-2 holds its own messages only, though order-1's interleave with them."""
    run = eb.workflows.run_orders("choreography", failure="shipping unavailable", orders=2)
    story = run.story("order-2")
    assert story.splitlines()[0] == "What happened to order-2:"
    assert "order=order-2" in story and "order=order-1" not in story
    assert [line.split()[3] for line in story.splitlines()[1:] if " publishes " in line] == [
        "m2", "m5", "m7", "m8", "m10"
    ]
    assert "rejected action=ship reason=no carrier serves Atlantis" in story
    with pytest.raises(eb.EvbrokerError, match="order-3"):
        run.story("order-3")


def test_story_of_an_orchestrated_order_shows_each_command_and_reply():
    story = eb.workflows.run_orders("orchestration", orders=1).story("order-1")
    assert story.count("publishes") == 9 and "emailed order=order-1" in story
    assert "status=" not in story  # the orchestrator's own log stays in its table
