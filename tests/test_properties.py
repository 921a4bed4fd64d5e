"""Properties that hold for every topology, seed and fault mix, checked by hypothesis.

Each property is a promise a guarantee makes:

- at-least-once (no ``max_deliveries``): every routed copy is processed at least once;
- at-least-once with ``max_deliveries``: every copy is processed or dead-lettered, never lost;
- at-most-once: no copy is processed twice, and every copy is processed or reported lost;
- exactly-once: every copy's effects happen exactly once;
- with no faults: a queue hands each copy to exactly one worker, a worker holds one copy at
  a time, and pub/sub gives every bound queue every message;
- the same seed gives the same trace, and a run cut in two with ``until`` is the same run;
- whatever the crash detection (``"timeout"``, ``"disconnect"``) and the workers' prefetch
  (1, 2, no limit), at-least-once loses nothing and exactly-once processing applies every
  copy's database writes once;
- an outside call that carries an idempotency key takes effect once per key under any fault.

The expected copies come from the set-up itself (which queue is bound to which topic), not
from the broker's routing, so a routing bug cannot hide behind its own output.

Fault probabilities stay at or below 0.25 each, so a delivery gets through with a fair
chance and ``settle_limit`` is out of reach; ``slow_by`` ranges below and above the ack
timeout, so slow consumers are sometimes merely slow and sometimes taken for dead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

import evbroker as eb

FAULTS = ("crash_before_process", "crash_during_process", "crash_before_ack", "lose_ack", "lose_delivery", "slow")


@dataclass(frozen=True)
class Setup:
    """A whole scenario as plain data: what to declare, what to publish, which faults."""

    seed: int
    topics: tuple[str, ...]
    queues: tuple[
        tuple[str, tuple[str, ...], int, float | str, float], ...
    ]  # name, bind, workers, service, ack_timeout
    faults: tuple[tuple[float, ...], ...]  # per queue, one probability per FAULTS entry, then slow_by
    publishes: tuple[tuple[str, float, int], ...]  # destination, at, payload
    lose_confirm: float

    def build(
        self,
        guarantee: str,
        max_deliveries: int | None = None,
        *,
        crash_detection: str = "timeout",
        prefetch: int | None = 1,
        handler=None,
    ) -> eb.Broker:
        b = eb.Broker(seed=self.seed, settle_limit=1000)
        for t in self.topics:
            b.topic(t)
        detection = {} if guarantee == "at-most-once" else {"crash_detection": crash_detection}
        for (name, bind, workers, service, timeout), probs in zip(self.queues, self.faults, strict=True):
            b.queue(
                name,
                bind=list(bind),
                guarantee=guarantee,
                ack_timeout=timeout,
                max_deliveries=max_deliveries,
                **detection,
            )
            faults = eb.Faults(**dict(zip(FAULTS, probs[:-1], strict=True)), slow_by=probs[-1])
            took = varying if service == "varies" else service
            b.worker(
                name,
                handler or record,
                count=workers,
                service_time=took,
                faults=faults,
                restart_after=1.0,
                prefetch=prefetch,
            )
        producer = eb.Faults(lose_confirm=self.lose_confirm, retry_after=0.5)
        for dest, at, payload in self.publishes:
            b.publish(dest, payload, at=at, key=f"k{payload}", faults=producer)
        return b

    def bound(self, dest: str) -> list[str]:
        """The queues a message published to ``dest`` must land in, from the set-up alone."""
        if dest not in self.topics:
            return [dest]
        return [name for name, bind, *_ in self.queues if dest in bind]


def record(msg, ctx):
    ctx.effect("work", queue=msg.queue)


def varying(msg):
    """A service time that depends on the message, so workers finish out of turn."""
    return (0.4, 1.7, 0.9)[msg.payload % 3]


@st.composite
def setups(draw, faults: bool = True) -> Setup:
    topics = tuple(f"t{i}" for i in range(draw(st.integers(1, 3))))
    queues = []
    for i in range(draw(st.integers(1, 4))):
        bind = tuple(t for t in topics if draw(st.booleans()))
        workers = draw(st.integers(1, 3))
        service = draw(st.sampled_from([0.5, 1.0, 2.0, "varies"]))
        timeout = draw(st.sampled_from([3.0, 5.0]))
        queues.append((f"q{i}", bind, workers, service, timeout))
    probability = st.sampled_from([0.0, 0.05, 0.1, 0.25]) if faults else st.just(0.0)
    fault_rows = tuple((*(draw(probability) for _ in FAULTS), draw(st.sampled_from([0.5, 2.0, 6.0]))) for _ in queues)
    dests = st.sampled_from([*topics, *(q[0] for q in queues)])
    publishes = tuple(
        (draw(dests), draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 7.0])), n) for n in range(draw(st.integers(1, 12)))
    )
    return Setup(
        seed=draw(st.integers(0, 2**16)),
        topics=topics,
        queues=tuple(queues),
        faults=fault_rows,
        publishes=publishes,
        lose_confirm=draw(probability),
    )


def routed_copies(setup: Setup, b: eb.Broker) -> Counter:
    """Every (message, queue) copy the set-up calls for. Producer retries are publishes too:
    each one, retries included, is a message that must reach every queue bound to its topic."""
    return Counter((e.msg, q) for e in b.trace.where(kind="publish") for q in setup.bound(e.to))


def processed(b: eb.Broker) -> Counter:
    """How many times each (message, queue) copy's work was committed."""
    return Counter((e.msg, e.queue) for e in b.effects("work"))


@given(setups())
def test_at_least_once_processes_every_routed_copy_at_least_once(setup):
    b = setup.build("at-least-once")
    b.run()
    copies, done = routed_copies(setup, b), processed(b)
    assert set(copies) <= set(done)
    assert all(b.stats(q[0])["pending"] == 0 and b.stats(q[0])["lost"] == 0 for q in setup.queues)


@given(setups(), st.integers(1, 3))
def test_at_least_once_with_max_deliveries_processes_or_dead_letters_every_copy(setup, limit):
    b = setup.build("at-least-once", max_deliveries=limit)
    b.run()
    dead = {(m.id, m.queue) for q in setup.queues for m in b.dead_letters(q[0])}
    assert set(routed_copies(setup, b)) <= set(processed(b)) | dead


@given(setups())
def test_at_most_once_never_processes_a_copy_twice(setup):
    b = setup.build("at-most-once")
    b.run()
    copies, done = routed_copies(setup, b), processed(b)
    assert all(n == 1 for n in done.values())
    lost = {(e.msg, e.queue) for e in b.trace.where(kind="lost")}
    assert set(done) | lost == set(copies)  # nothing vanishes without a trace
    assert not set(done) & lost


@given(setups())
def test_exactly_once_applies_every_copy_effects_exactly_once(setup):
    b = setup.build("exactly-once")
    b.run()
    assert processed(b) == routed_copies(setup, b)
    assert all(b.stats(q[0])["duplicates"] == 0 for q in setup.queues)


@given(setups(faults=False), st.sampled_from(eb.GUARANTEES))
def test_without_faults_each_copy_goes_to_one_worker_and_every_bound_queue_gets_every_message(setup, guarantee):
    b = setup.build(guarantee)
    b.run()
    copies = routed_copies(setup, b)
    deliveries = Counter((e.msg, e.queue) for e in b.trace.where(kind="deliver"))
    assert deliveries == copies  # one delivery per copy: never two workers, never a miss
    assert processed(b) == copies
    # Prefetch 1: a worker never holds two copies at once.
    holding: dict[str, str | None] = {}
    for e in b.trace.where(kind=("process", "complete")):
        if e.kind == "process":
            assert holding.get(e.actor) is None
            holding[e.actor] = e.msg
        else:
            assert holding[e.actor] == e.msg
            holding[e.actor] = None
    # Pub/sub: each message published to a topic reaches exactly the queues bound to it.
    for e in b.trace.where(kind="publish"):
        if e.to in setup.topics:
            routed = [r.to for r in b.trace.where(kind=("route", "unroutable"), msg=e.msg) if r.kind == "route"]
            assert routed == setup.bound(e.to)


@given(setups(), st.sampled_from(eb.GUARANTEES))
def test_the_same_seed_gives_the_same_trace(setup, guarantee):
    first, second = setup.build(guarantee), setup.build(guarantee)
    first.run()
    second.run()
    assert first.trace.to_records() == second.trace.to_records()
    assert [q for q in first.queues if first.stats(q) != second.stats(q)] == []


@given(setups(), st.sampled_from(eb.GUARANTEES), st.sampled_from([0.0, 0.5, 1.0, 3.0, 6.0, 20.0]))
def test_a_run_cut_in_two_is_the_same_run(setup, guarantee, cut):
    whole, halves = setup.build(guarantee), setup.build(guarantee)
    whole.run()
    halves.run(until=cut)
    halves.run()
    assert halves.trace.to_records() == whole.trace.to_records()
    assert halves.now == max(whole.now, cut)


DETECTIONS = st.sampled_from(["timeout", "disconnect"])
PREFETCHES = st.sampled_from([1, 2, None])


@given(setups(), DETECTIONS, PREFETCHES)
def test_at_least_once_loses_nothing_whatever_the_crash_detection_and_prefetch(setup, detection, prefetch):
    b = setup.build("at-least-once", crash_detection=detection, prefetch=prefetch)
    b.run()
    assert set(routed_copies(setup, b)) <= set(processed(b))
    assert all(b.stats(q[0])["pending"] == 0 and b.stats(q[0])["lost"] == 0 for q in setup.queues)


@given(setups(), DETECTIONS, PREFETCHES)
def test_exactly_once_processing_holds_whatever_the_crash_detection_and_prefetch(setup, detection, prefetch):
    b = setup.build("exactly-once", crash_detection=detection, prefetch=prefetch)
    b.run()
    assert processed(b) == routed_copies(setup, b)


def pay_with_key(msg, ctx):
    """An outside call keyed by the business key, which a producer retry keeps."""
    ctx.call("payments", idempotency_key=(msg.queue, msg.key))


@given(setups(), st.sampled_from(["at-least-once", "exactly-once"]), DETECTIONS, PREFETCHES)
def test_an_outside_call_with_an_idempotency_key_takes_effect_once_under_any_fault(
    setup, guarantee, detection, prefetch
):
    b = setup.build(guarantee, crash_detection=detection, prefetch=prefetch, handler=pay_with_key)
    b.run()
    wanted = Counter((q, f"k{payload}") for dest, _, payload in setup.publishes for q in setup.bound(dest))
    calls = Counter(e.idempotency_key for e in b.effects("payments"))
    assert calls == Counter(dict.fromkeys(wanted, 1))
    assert all(e.kind == "call" for e in b.effects("payments"))
