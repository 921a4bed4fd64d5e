"""The trace: everything a run did, in order, for views, checks and learners to read.

The broker only appends to its trace. ``where`` filters it, ``table`` prints it, and
``to_records`` hands it to pandas or JSON. ``stats`` and ``effects`` summarise a run.
"""

import pytest

import evbroker as eb


@pytest.fixture
def signup():
    """One signup fanned out to email and billing; billing crashes once before its ack."""
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    b.queue("email", bind="user.signed_up")
    b.queue("billing", bind="user.signed_up", ack_timeout=3.0)
    b.worker("email", lambda msg, ctx: ctx.effect("welcome", user=msg.payload))
    b.worker(
        "billing",
        lambda msg, ctx: ctx.effect("charge", user=msg.payload, amount=10),
        faults=eb.Faults(crash_before_ack=lambda m: m.attempt == 1),
    )
    b.publish("user.signed_up", "ada", key="u-1")
    b.run()
    return b


def test_the_table_shows_the_whole_story(signup):
    """``table()`` is plain text with no addresses: stable enough to compare in a notebook.

    At t=3 two things are due: billing's ack timeout and billing-1's restart. Timeouts go
    first, so m1 is back at the head of the queue when the worker returns and takes it.
    """
    assert signup.trace.table() == (
        "time  kind       actor           msg  attempt  detail\n"
        "0     publish    producer        m1            -> user.signed_up\n"
        "0     route      user.signed_up  m1            -> email\n"
        "0     deliver    email           m1   1        -> email-1\n"
        "0     process    email-1         m1   1        takes 1\n"
        "0     route      user.signed_up  m1            -> billing\n"
        "0     deliver    billing         m1   1        -> billing-1\n"
        "0     process    billing-1       m1   1        takes 1\n"
        "1     effect     email-1         m1   1        welcome user=ada\n"
        "1     complete   email-1         m1   1\n"
        "1     ack        email-1         m1   1        -> email\n"
        "1     effect     billing-1       m1   1        charge user=ada amount=10\n"
        "1     complete   billing-1       m1   1\n"
        "1     crash      billing-1       m1   1        after processing, before the ack\n"
        "3     timeout    billing         m1   1        no ack within 3\n"
        "3     redeliver  billing         m1   2        back to the head of the queue\n"
        "3     restart    billing-1\n"
        "3     deliver    billing         m1   2        -> billing-1\n"
        "3     process    billing-1       m1   2        takes 1\n"
        "4     effect     billing-1       m1   2        charge user=ada amount=10\n"
        "4     complete   billing-1       m1   2\n"
        "4     ack        billing-1       m1   2        -> billing"
    )


def test_table_can_stop_early(signup):
    assert signup.trace.table(limit=2).splitlines() == [
        "time  kind     actor           msg  attempt  detail",
        "0     publish  producer        m1            -> user.signed_up",
        "0     route    user.signed_up  m1            -> email",
        "... 19 more events",
    ]


def test_where_filters_by_kind_actor_and_message(signup):
    t = signup.trace
    assert [(e.time, e.actor) for e in t.where(kind="effect")] == [(1, "email-1"), (1, "billing-1"), (4, "billing-1")]
    assert [e.kind for e in t.where(actor="billing-1", kind=("effect", "crash"))] == ["effect", "crash", "effect"]
    assert len(t.where(msg="m1")) == len(t) - 1  # every event but the restart is about m1
    assert t.where(msg="m9") == eb.Trace()
    assert isinstance(t.where(kind="ack"), eb.Trace)


def test_where_rejects_a_kind_that_does_not_exist(signup):
    with pytest.raises(eb.EvbrokerError, match=r"unknown kind 'acked'; did you mean 'ack'\?; kinds are publish, "):
        signup.trace.where(kind="acked")


def test_where_rejects_an_actor_that_is_not_in_the_run(signup):
    with pytest.raises(eb.EvbrokerError, match=r"got 'biling-1', which is not in this run; did you mean 'billing-1'\?"):
        signup.trace.where(actor="biling-1")


def test_the_events_carry_hop_ends_queues_and_effect_data(signup):
    e = signup.trace.where(kind="effect", actor="billing-1")[0]
    assert e == eb.TraceEvent(
        1.0,
        "effect",
        "billing-1",
        "m1",
        1,
        "charge user=ada amount=10",
        None,
        "billing",
        {"name": "charge", "user": "ada", "amount": 10},
    )
    ack = signup.trace.where(kind="ack")[0]
    assert (ack.actor, ack.to, ack.queue) == ("email-1", "email", "email")


def test_to_records_gives_plain_dicts(signup):
    records = signup.trace.to_records()
    assert records[0] == {
        "time": 0.0,
        "kind": "publish",
        "actor": "producer",
        "msg": "m1",
        "attempt": None,
        "detail": "",
        "to": "user.signed_up",
        "queue": None,
        "data": None,
    }
    assert len(records) == len(signup.trace)


def test_actors_maps_every_name_to_its_role(signup):
    assert signup.trace.actors == {
        "user.signed_up": "topic",
        "email": "queue",
        "billing": "queue",
        "email-1": "worker",
        "billing-1": "worker",
        "producer": "producer",
    }


def test_kinds_lists_what_happened_in_first_seen_order(signup):
    assert signup.trace.kinds() == [
        "publish",
        "route",
        "deliver",
        "process",
        "effect",
        "complete",
        "ack",
        "crash",
        "timeout",
        "redeliver",
        "restart",
    ]
    assert set(signup.trace.kinds()) <= set(eb.KINDS)


def test_a_trace_slices_compares_and_is_live(signup):
    t = signup.trace
    assert t[:3] == eb.Trace(list(t)[:3])
    assert t[-1].kind == "ack"
    n = len(t)
    signup.publish("user.signed_up", "bob")
    signup.run()
    assert len(t) > n  # b.trace is a live view of the record, not a snapshot
    assert repr(eb.Trace()) == "<Trace: no events yet; call b.run()>"


def test_every_kind_the_broker_records_is_documented():
    """Every kind that shows up in a busy run has an entry in ``eb.KINDS`` (views use it for legends)."""
    b = eb.Broker(seed=3)
    b.topic("t")
    b.topic("empty")
    b.queue("dlq")
    b.queue("q", bind="t", ack_timeout=1.5, max_deliveries=3, dead_letter="dlq")
    b.queue("fire", guarantee="at-most-once")
    b.queue("once", guarantee="exactly-once", bind="t", ack_timeout=1.5)
    faults = eb.Faults(
        crash_before_process=0.1,
        crash_during_process=0.1,
        crash_before_ack=0.1,
        lose_ack=0.1,
        lose_delivery=0.1,
        slow=0.2,
    )
    b.worker("q", lambda m, c: c.effect("x") if m.payload % 7 else 1 / 0, count=2, faults=faults)
    b.worker("once", lambda m, c: c.effect("y"), faults=faults)
    b.queue("amqp", bind="t", crash_detection="disconnect", ack_timeout=1.5)
    b.worker("amqp", lambda m, c: c.call("payments", idempotency_key=m.payload % 5), faults=faults)
    b.worker("fire", lambda m, c: None, faults=faults)
    b.worker("dlq", lambda m, c: None)
    for i in range(60):
        b.publish("t", i, at=i * 0.3, faults=eb.Faults(lose_confirm=0.1))
        b.publish("fire", i, at=i * 0.3)
    b.publish("empty", 0)
    b.run()
    assert set(b.trace.kinds()) == set(eb.KINDS)


def test_stats_has_exactly_the_documented_keys():
    b = eb.Broker(seed=0)
    b.queue("q")
    assert list(b.stats("q")) == [
        "copies",
        "deliveries",
        "processed",
        "unique_processed",
        "duplicates",
        "lost",
        "dead_lettered",
        "acked",
        "redeliveries",
        "pending",
    ]


def test_effects_are_listed_in_commit_order_and_filtered_by_name(signup):
    assert [(e.time, e.name, e.worker, e.queue, e.msg, e.attempt, e.key) for e in signup.effects()] == [
        (1, "welcome", "email-1", "email", "m1", 1, "u-1"),
        (1, "charge", "billing-1", "billing", "m1", 1, "u-1"),
        (4, "charge", "billing-1", "billing", "m1", 2, "u-1"),
    ]
    charge = signup.effects("charge")[0]
    assert (charge["user"], charge["amount"]) == ("ada", 10)
    assert signup.effects("refund") == []


def test_a_trace_reads_like_a_list_of_its_events(signup):
    """The record is stored flat (nine fields per event, one after the other); indexing,
    slicing, iterating and filtering read it exactly as a list of TraceEvents would."""
    t = signup.trace
    events = list(t)
    assert all(type(e) is eb.TraceEvent for e in events)
    assert [t[i] for i in range(-len(t), len(t))] == events + events
    for index in (slice(None), slice(2, 7), slice(1, None, 3), slice(None, None, -2), slice(5, 2), slice(-4, None)):
        assert list(t[index]) == events[index], index
        assert t[index] == eb.Trace(events[index])
    with pytest.raises(IndexError):
        t[len(t)]
    with pytest.raises(IndexError):
        t[-len(t) - 1]
    with pytest.raises(TypeError):
        t["0"]
    assert list(t.where(kind="effect")) == [e for e in events if e.kind == "effect"]
    assert t.to_records()[0] == events[0]._asdict()
    assert t.kinds() == list(dict.fromkeys(e.kind for e in events))


def test_a_trace_of_malformed_rows_is_refused():
    with pytest.raises(eb.EvbrokerError, match="each event needs the 9 fields of a TraceEvent"):
        eb.Trace([(0.0, "publish", "producer")])
