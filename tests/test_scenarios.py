"""The ready-made scenarios the explorers and lessons share: the queue demo and the payments."""

import pytest

import evbroker as eb
from evbroker import scenarios as sc

# What each guarantee does to four orders when the fault hits one of them: charges made.
# at-most-once forgets a payment once sent; at-least-once redelivers when no ack comes, so any
# work done before a missing ack is done twice; exactly-once processing dedupes by message id,
# which a producer retry (a new message id for the same order) slips past. The charge is an
# outside call (ctx.call) without an idempotency key: when a slow worker's delivery and its
# redelivery run at the same time, both call the provider before either commits, so
# exactly-once processing cannot stop the second charge.
EXPECTED_CHARGES = {
    "none": {"at-most-once": 4, "at-least-once": 4, "exactly-once": 4},
    "crash before processing": {"at-most-once": 3, "at-least-once": 4, "exactly-once": 4},
    "crash before ack": {"at-most-once": 4, "at-least-once": 5, "exactly-once": 4},
    "lost ack": {"at-most-once": 4, "at-least-once": 5, "exactly-once": 4},
    "lost delivery": {"at-most-once": 3, "at-least-once": 4, "exactly-once": 4},
    "slow consumer": {"at-most-once": 4, "at-least-once": 5, "exactly-once": 5},
    "producer retry": {"at-most-once": 5, "at-least-once": 5, "exactly-once": 5},
}


def test_every_fault_is_covered():
    assert set(EXPECTED_CHARGES) == set(sc.FAULTS) == set(sc.FAULT_STORIES)


@pytest.mark.parametrize("fault", sc.FAULTS)
@pytest.mark.parametrize("guarantee", eb.GUARANTEES)
def test_payments_charges_follow_the_guarantee(guarantee, fault):
    b = sc.payments(guarantee, fault)
    s = sc.payment_summary(b)
    assert s["orders"] == 4
    assert s["charges"] == EXPECTED_CHARGES[fault][guarantee]
    assert s["charges"] == len(b.effects("charge"))
    stats = b.stats("payments")
    for key in ("lost", "duplicates", "redeliveries", "dead_lettered"):
        assert s[key] == stats[key]


def test_the_fault_hits_order_2_for_seed_0_and_the_seed_moves_it():
    """The seed picks the order the fault strikes; seed 0 tells the textbook story with order-2."""
    hit = {}
    for seed in range(4):
        b = sc.payments("at-least-once", "crash before ack", seed=seed)
        keys = [c.key for c in b.effects("charge")]
        hit[seed] = [k for k in dict.fromkeys(keys) if keys.count(k) == 2]
    assert hit == {0: ["order-2"], 1: ["order-3"], 2: ["order-4"], 3: ["order-1"]}


def test_crash_before_ack_is_the_seed_story_step_by_step():
    b = sc.payments("at-least-once", "crash before ack")
    m2 = [(e.kind, e.actor, e.attempt) for e in b.trace.where(msg="m2") if e.kind != "process"]
    assert m2 == [
        ("publish", "checkout", None),
        ("deliver", "payments", 1),
        ("call", "payments-2", 1),  # the card is charged as the handler runs
        ("complete", "payments-2", 1),
        ("crash", "payments-2", 1),
        ("timeout", "payments", 1),
        ("redeliver", "payments", 2),
        ("deliver", "payments", 2),
        ("call", "payments-1", 2),
        ("complete", "payments-1", 2),
        ("ack", "payments-1", 2),
    ]


def test_rate_mode_draws_faults_from_the_seed():
    a = sc.payments("at-least-once", "lost ack", seed=3, orders=20, rate=0.3)
    b = sc.payments("at-least-once", "lost ack", seed=3, orders=20, rate=0.3)
    assert a.trace == b.trace
    assert len(a.trace.where(kind="ack-lost")) > 1  # more than the single scripted hit
    assert sc.payment_summary(a)["never_charged"] == 0


def test_a_learners_handler_replaces_the_plain_one():
    def idempotent(msg, ctx):
        if not ctx.seen(msg.key):
            ctx.effect("charge", order=msg.key)
            ctx.remember(msg.key)

    b = sc.payments("at-least-once", "producer retry", handler=idempotent)
    assert sc.payment_summary(b)["charges"] == 4


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"guarantee": "at-least-one"}, ["guarantee", "did you mean 'at-least-once'"]),
        ({"fault": "crash"}, ["fault", "crash before ack"]),
        ({"orders": 0}, ["orders", "1 to"]),
        ({"rate": 1.0}, ["rate", "never settle"]),
        ({"handler": "charge"}, ["handler(msg, ctx)"]),
        ({"seed": "0"}, ["seed must be an int"]),
    ],
)
def test_payments_bad_input_teaches(kwargs, words):
    with pytest.raises(eb.EvbrokerError) as err:
        sc.payments(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_queue_demo_splits_a_queue_round_robin():
    b = sc.queue_demo("queue", workers=2, messages=4)
    taken = {w: [e.msg for e in b.trace.where(kind="process", actor=w)] for w in ("jobs-1", "jobs-2")}
    assert taken == {"jobs-1": ["m1", "m3"], "jobs-2": ["m2", "m4"]}


def test_queue_demo_pub_sub_gives_every_subscriber_every_message():
    b = sc.queue_demo("pub/sub", workers=3, messages=2)
    got = {q: b.stats(q)["processed"] for q in b.queues}
    assert got == {"email": 2, "billing": 2, "analytics": 2}


def test_queue_demo_stacked_spreads_each_service_over_its_workers():
    b = sc.queue_demo("stacked", workers=2, messages=4)
    for service in ("email", "billing", "analytics"):
        assert b.stats(service)["processed"] == 4
        assert [len(b.trace.where(kind="process", actor=f"{service}-{n}")) for n in (1, 2)] == [2, 2]


def test_queue_demo_jitter_is_seeded():
    a = sc.queue_demo("queue", 2, 6, seed=1, jitter=0.5)
    b = sc.queue_demo("queue", 2, 6, seed=1, jitter=0.5)
    c = sc.queue_demo("queue", 2, 6, seed=2, jitter=0.5)
    assert a.trace == b.trace
    assert a.trace != c.trace


def test_queue_demo_bad_mode_teaches():
    with pytest.raises(eb.EvbrokerError, match="did you mean 'pub/sub'"):
        sc.queue_demo("pubsub")
