"""ctx.call: a call to an outside system happens when made, is never rolled back, and is deduped
only by the outside system, on an idempotency key the consumer sends."""

import pytest

import evbroker as eb

FIRST_TRY = eb.Faults(crash_during_process=lambda m: m.attempt == 1)


def one_order(handler, guarantee="at-least-once", faults=None, **queue):
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee=guarantee, ack_timeout=3, **queue)
    b.worker("payments", handler, faults=faults)
    b.publish("payments", {"order": "order-1", "amount": 10}, key="order-1")
    b.run()
    return b


def charge(msg, ctx):
    ctx.call("cards", order=msg.payload["order"], amount=msg.payload["amount"])


def charge_with_key(msg, ctx):
    ctx.call("cards", idempotency_key=msg.key, order=msg.payload["order"], amount=msg.payload["amount"])


def test_a_call_happens_when_the_handler_runs_not_when_the_work_commits():
    b = one_order(charge)
    assert [(e.time, e.kind) for e in b.trace.where(kind=["process", "call", "complete"])] == [
        (0.0, "process"),
        (0.0, "call"),
        (1.0, "complete"),
    ]
    [c] = b.effects("cards")
    assert (c.kind, c.time, c.data, c.idempotency_key) == ("call", 0.0, {"order": "order-1", "amount": 10}, None)


def test_a_database_write_is_an_effect_of_kind_effect():
    b = one_order(lambda m, c: c.effect("ledger", order=m.key))
    assert [e.kind for e in b.effects()] == ["effect"]


def test_a_crash_before_the_commit_takes_back_a_database_write_but_not_a_call():
    def both(msg, ctx):
        ctx.effect("ledger", order=msg.key)
        ctx.call("cards", order=msg.key)

    b = one_order(both, faults=FIRST_TRY)
    assert [(e.name, e.attempt) for e in b.effects()] == [("cards", 1), ("cards", 2), ("ledger", 2)]


def test_exactly_once_processing_does_not_cover_an_outside_call_without_a_key():
    """The worker dies after charging, before its transaction commits: the redelivery charges again."""
    b = one_order(charge, guarantee="exactly-once", faults=FIRST_TRY)
    assert len(b.effects("cards")) == 2


def test_an_idempotency_key_makes_the_outside_system_drop_the_repeat():
    b = one_order(charge_with_key, guarantee="exactly-once", faults=FIRST_TRY)
    assert len(b.effects("cards")) == 1
    [repeat] = b.trace.where(kind="call-deduped")
    assert repeat.attempt == 2
    assert repeat.detail == "cards: idempotency key 'order-1' seen before, so nothing happened"


def test_ctx_call_says_whether_it_took_effect():
    answers = []
    one_order(lambda m, c: answers.append(c.call("cards", idempotency_key="k")), faults=FIRST_TRY)
    assert answers == [True, False]


def test_keys_are_per_outside_system():
    def two(msg, ctx):
        ctx.call("cards", idempotency_key="k")
        ctx.call("email", idempotency_key="k")

    b = one_order(two)
    assert [e.name for e in b.effects()] == ["cards", "email"]


def test_a_rolled_back_duplicate_says_its_outside_calls_had_already_happened():
    b = eb.Broker(seed=0)
    b.queue("payments", guarantee="exactly-once", ack_timeout=3)
    b.worker("payments", charge, count=2, faults=eb.Faults(slow=lambda m: m.attempt == 1, slow_by=3))
    b.publish("payments", {"order": "order-1", "amount": 10})
    b.run()
    [dedup] = b.trace.where(kind="dedup")
    assert "a call is never rolled back" in dedup.detail
    assert len(b.effects("cards")) == 2


@pytest.mark.parametrize("key", [[1, 2], {"order": 1}, {1}])
def test_an_unhashable_idempotency_key_is_refused_with_a_fix(key):
    b = eb.Broker()
    b.queue("q")
    b.worker("q", lambda m, c: c.call("cards", idempotency_key=key))
    b.publish("q", 1)
    with pytest.raises(eb.EvbrokerError, match=r"hashable key such as a string or a tuple \(got .*msg\.key"):
        b.run()


@pytest.mark.parametrize("system", ["", None, 3])
def test_the_outside_system_needs_a_name(system):
    b = eb.Broker()
    b.queue("q")
    b.worker("q", lambda m, c: c.call(system))
    b.publish("q", 1)
    with pytest.raises(eb.EvbrokerError, match="outside system's name"):
        b.run()


def test_calls_are_deterministic():
    a = one_order(charge_with_key, faults=FIRST_TRY)
    b = one_order(charge_with_key, faults=FIRST_TRY)
    assert a.trace == b.trace
