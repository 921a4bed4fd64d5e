"""eb.explore: every placement of up to k faults, smallest counterexample first, replayable.

The scenario is lesson 05's checkout in small: two orders to ``payments`` (at-least-once,
ack timeout 3), two workers. A consumer that charges on every delivery breaks "each order
charged once" under a single lost ack; one that dedupes by business key holds under every
schedule of up to two faults.
"""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evbroker as eb
from evbroker.core.explore import FAULT_KINDS, FaultPoint, replay_line, schedule_faults


def naive(msg, ctx):
    ctx.effect("charge", order=msg.key, amount=msg.payload["amount"])


def idempotent(msg, ctx):
    if ctx.seen(msg.key):
        return
    ctx.effect("charge", order=msg.key, amount=msg.payload["amount"])
    ctx.remember(msg.key)


def checkout(handler, orders=2):
    def build(faults):
        b = eb.Broker(seed=0)
        b.queue("payments", ack_timeout=3)
        b.worker("payments", handler, count=2, faults=faults)
        for i in range(1, orders + 1):
            b.publish("payments", {"amount": 10 * i}, at=i - 1, key=f"order-{i}", by="checkout", faults=faults)
        return b

    return build


def charged_once(b):
    counts = Counter(e.key for e in b.effects("charge"))
    wrong = [f"{o} charged {counts[o]} times" for o in ("order-1", "order-2") if counts[o] != 1]
    return "; ".join(wrong) or True


def test_the_naive_consumer_breaks_and_the_smallest_counterexample_comes_first():
    res = eb.explore(checkout(naive), charged_once, max_faults=2)
    assert not res.ok
    first = res.violations[0]
    assert len(first.faults) == 1
    # the earliest single fault that charges twice: m1's first delivery slower than the ack timeout
    assert first.faults == (FaultPoint("slow", "m1", 1, "payments"),)
    assert first.message == "order-1 charged 2 times"
    sizes = [len(v.faults) for v in res.violations]
    assert sizes == sorted(sizes)
    assert {v.faults[0].kind for v in res.violations if len(v.faults) == 1} == {
        "slow",
        "crash_before_ack",
        "lose_ack",
        "lose_confirm",
    }
    assert "break the invariant" in str(res) and "Replay: b = build(eb.Faults(" in str(res)


def test_the_idempotent_consumer_holds_under_every_schedule():
    res = eb.explore(checkout(idempotent), charged_once, max_faults=2)
    assert res.ok and res.violations == []
    assert str(res) == f"all {res.schedules} schedules (up to 2 faults) hold"
    assert len(res.outcomes) == res.schedules and all(o.ok for o in res.outcomes)


def test_schedules_count_faults_that_only_exist_after_an_earlier_fault():
    """A lost ack makes a second delivery; faults on that delivery are schedules too."""
    res = eb.explore(checkout(idempotent), charged_once, faults=["lose_ack"], max_faults=2)
    explored = {o.faults for o in res.outcomes}
    assert (FaultPoint("lose_ack", "m1", 1, "payments"), FaultPoint("lose_ack", "m1", 2, "payments")) in explored
    # fault-free run: two acks can be lost; then each lost ack adds its redelivery's ack
    assert res.points == 2
    assert res.schedules == 1 + 2 + 3  # {}, {a1}, {b1}, {a1,a2}, {a1,b1}, {b1,b2}


def test_equivalent_schedules_are_run_once_and_counted_once():
    res = eb.explore(checkout(naive), charged_once, max_faults=2)
    assert res.tried > res.schedules  # some fault sets leave the very same trace
    traces = {repr(v.broker.trace.to_records()) for v in res.violations}
    assert len(traces) == len(res.violations)
    zero = eb.explore(checkout(naive), charged_once, max_faults=0)
    assert zero.schedules == zero.tried == 1 and zero.ok


def test_the_replay_line_rebuilds_the_very_same_run():
    res = eb.explore(checkout(naive), charged_once, max_faults=2)
    for v in [res.violations[0], res.violations[-1]]:
        build = checkout(naive)
        scope = {"eb": eb, "build": build}
        exec(v.replay, scope)
        assert scope["b"].trace.to_records() == v.broker.trace.to_records()
        again = eb.explore.replay(build, v.faults)
        assert again.trace.to_records() == v.broker.trace.to_records()
        assert charged_once(again) == v.message


def test_schedule_faults_and_replay_line_take_plain_tuples():
    b = eb.explore.replay(checkout(naive), [("lose_ack", "m2", 1)])
    assert Counter(e.key for e in b.effects("charge"))["order-2"] == 2
    f = schedule_faults([("crash_before_ack", "m1", 1)])
    assert f.active() == ["crash_before_ack"]
    line = replay_line("setup", [FaultPoint("lose_ack", "m2", 1, "q"), FaultPoint("lose_ack", "m1", 2, "q")])
    assert line == "b = setup(eb.Faults(lose_ack=lambda m: (m.id, m.attempt) in {('m1', 2), ('m2', 1)})); b.run()"


def test_inject_places_faults_the_build_never_handed_on():
    def stubborn(faults):
        return checkout(naive)(None)

    with pytest.raises(eb.EvbrokerError, match=r"never handed `faults` on.*faults=faults"):
        eb.explore(stubborn, charged_once)
    res = eb.explore(stubborn, charged_once, inject=True)
    assert not res.ok and "lose_confirm" in {v.faults[0].kind for v in res.violations}


def test_a_build_that_returns_no_broker_or_a_run_one_is_refused():
    def forgets_return(faults):
        checkout(naive)(faults)

    with pytest.raises(eb.EvbrokerError, match=r"forgets_return\(faults\) must return the eb.Broker.*got None"):
        eb.explore(forgets_return, charged_once)

    def runs_it(faults):
        b = checkout(naive)(faults)
        b.run()
        return b

    with pytest.raises(eb.EvbrokerError, match="already run"):
        eb.explore(runs_it, charged_once)


def test_an_invariant_that_raises_is_named_with_its_schedule():
    def total_is_30(b):
        return b.effects("charge")[2].data["amount"] == 0  # IndexError when only two charges

    with pytest.raises(eb.EvbrokerError, match=r"invariant total_is_30 raised IndexError.*schedule \[no faults"):
        eb.explore(checkout(naive), total_is_30)
    with pytest.raises(eb.EvbrokerError, match=r"returned None.*forget `return`"):
        eb.explore(checkout(naive), lambda b: None)


def test_a_search_space_too_large_is_refused_early_with_its_size_and_a_way_out():
    calls = []

    def big(faults):
        calls.append(1)
        return checkout(naive, orders=40)(faults)

    with pytest.raises(eb.EvbrokerError) as info:
        eb.explore(big, lambda b: True, max_faults=3, limit=5000)
    text = str(info.value)
    assert "too large" in text and "max_faults=2" in text and "fewer messages" in text
    assert len(calls) == 1  # refused after the one fault-free run


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"faults": ["lose_ak"]}, "did you mean 'lose_ack'"),
        ({"faults": eb.Faults()}, "names no fault"),
        ({"max_faults": -1}, "max_faults must be a whole number"),
        ({"limit": 0}, "limit must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, says):
    with pytest.raises(eb.EvbrokerError, match=says):
        eb.explore(checkout(naive), charged_once, **kwargs)


def test_a_faults_value_picks_the_kinds_and_the_slow_delay():
    res = eb.explore(checkout(naive), charged_once, faults=eb.Faults(slow=1, slow_by=1.0), max_faults=1)
    assert res.kinds == ("slow",)
    # 1 + 1 still acks within 3: slowness alone does not charge twice at this delay
    assert res.ok
    assert set(FAULT_KINDS) >= set(eb.explore(checkout(naive), charged_once, max_faults=0).kinds)


def test_a_run_that_cannot_settle_is_a_violation():
    def one_order(faults):
        b = eb.Broker(seed=0, settle_limit=2)
        b.queue("payments", ack_timeout=3)
        b.worker("payments", idempotent, faults=faults)
        b.publish("payments", {"amount": 10}, key="order-1")
        return b

    res = eb.explore(one_order, lambda b: True, faults=eb.Faults(slow=1, slow_by=10.0), max_faults=2)
    assert [v.faults for v in res.violations] == [
        (FaultPoint("slow", "m1", 1, "payments"), FaultPoint("slow", "m1", 2, "payments"))
    ]
    assert "could not settle" in res.violations[0].message and "max_deliveries" in res.violations[0].message
    assert "slow_by=10" in res.violations[0].replay


# ---------------------------------------------------------------------------- properties


def scenario(guarantee, orders, workers, handler):
    def build(faults):
        b = eb.Broker(seed=0, settle_limit=6)
        b.queue("payments", guarantee=guarantee, ack_timeout=3)
        b.worker("payments", handler, count=workers, faults=faults)
        for i in range(1, orders + 1):
            b.publish("payments", {"amount": i}, at=0.5 * (i - 1), key=f"order-{i}", faults=faults)
        return b

    return build


@settings(max_examples=15)
@given(
    guarantee=st.sampled_from(eb.GUARANTEES),
    orders=st.integers(1, 2),
    workers=st.integers(1, 2),
    handler=st.sampled_from([naive, idempotent]),
    max_faults=st.integers(0, 2),
)
def test_every_schedule_is_distinct_ordered_and_replays(guarantee, orders, workers, handler, max_faults):
    """Distinct schedules leave distinct traces; violations come smallest first; each replays exactly."""
    build = scenario(guarantee, orders, workers, handler)

    def each_once(b):
        counts = Counter(e.key for e in b.effects("charge"))
        return all(counts[f"order-{i}"] == 1 for i in range(1, orders + 1)) or f"charges: {dict(counts)}"

    res = eb.explore(build, each_once, max_faults=max_faults)
    assert len(res.outcomes) == res.schedules <= res.tried
    assert len({o.faults for o in res.outcomes}) == res.schedules
    assert all(len(o.faults) <= max_faults for o in res.outcomes)
    sizes = [len(v.faults) for v in res.violations]
    assert sizes == sorted(sizes)
    assert res.ok == (not any(not o.ok for o in res.outcomes))
    traces = set()
    for o in res.outcomes:
        b = eb.explore.replay(build, o.faults)
        traces.add(repr(b.trace.to_records()))
    assert len(traces) == res.schedules  # equivalent schedules were merged, distinct ones were not
    for v in res.violations[:3]:
        assert eb.explore.replay(build, v.faults).trace.to_records() == v.broker.trace.to_records()
