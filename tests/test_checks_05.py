"""Exercise 05's checks (idempotent consumers): the solution passes, and the handlers a learner is
likely to write first (dedupe by message id while producers retry, the record written before the
work or after the ack, no dedupe, a key too broad) are each rejected with feedback in their
terms, a way to replay the run, and never the answer itself.

The solution is read from ``solutions/05_idempotent_consumers.ipynb``; helpers shared with
exercise 04's tests come from ``test_checks_04``.
"""

import ast
import re
from collections import Counter

import pytest
from test_checks_04 import (
    assert_rejected_saying,
    assert_scenario_shown_in_markdown,
    assert_shipped_exercise_fails_only_for_missing_answers,
    random_failures_of,
    solution_namespace,
)
from test_checks_04 import rejected as rejected_hiding

import evbroker as eb
from evbroker.build import ROOT
from evbroker.grading import CheckFailed, NotAnswered, score
from evbroker.grading import checks_05 as ex05
from evbroker.grading.checks_04 import expect_each_order_charged
from evbroker.grading.search import explore_answer

SOLUTION = ROOT / "solutions" / "05_idempotent_consumers.ipynb"
EXERCISE = ROOT / "exercises" / "05_idempotent_consumers.ipynb"
#: Text that would give a handler's answer away: its dedupe key or where its record is written.
ANSWER_TEXT = ("msg.key", "ctx.seen", "ctx.remember", "when=", "installment'])", '"commit"', "'commit'")


@pytest.fixture(scope="module")
def solution():
    return solution_namespace(SOLUTION)


def rejected(check_id, answer):
    """The failure the check gives ``answer`` (the test fails if the check accepts it), without the answer."""
    return rejected_hiding(check_id, answer, hiding=ANSWER_TEXT)


def random_failures(check_id, answer, seeds=range(100)):
    """The (seed, fault) runs of a check's random phase, over ``seeds``, that reject ``answer``."""
    return list(random_failures_of(ex05, check_id, answer, seeds))


def replay_of(message):
    """(seed, fault) from a failure's replay line."""
    seed, fault = re.search(r"Replay: seed=(\d+), fault: ([a-z ]+)\.", message).groups()
    return int(seed), fault


# ---------------------------------------------------------------------------- the solution


@pytest.mark.parametrize(
    ("check_id", "name"),
    [
        ("05-predict-charges", "charges"),
        ("05-payment-handler", "charge_card"),
        ("05-fix-shipping", "ship"),
        ("05-idempotent-refund", "refund"),
        ("05-provider-charge", "charge_at_provider"),
    ],
)
def test_the_solution_gets_full_points(solution, check_id, name):
    result = score(check_id, solution[name])
    assert result.passed and result.points == result.max_points


def test_the_points_add_up_to_twelve():
    assert [(c.id, c.points) for c in eb.grading.registered("05")] == [
        ("05-predict-charges", 2),
        ("05-payment-handler", 3),
        ("05-fix-shipping", 3),
        ("05-idempotent-refund", 2),
        ("05-provider-charge", 2),
    ]


@pytest.mark.parametrize(
    "check_id", ["05-payment-handler", "05-fix-shipping", "05-idempotent-refund", "05-provider-charge"]
)
def test_a_stub_handler_is_not_answered_rather_than_wrong(check_id):
    def stub(msg, ctx):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotAnswered):
        score(check_id, stub)


# ---------------------------------------------------------------------------- 05-predict-charges


def test_a_wrong_prediction_is_rejected_without_the_number():
    # 4: "message ids catch everything"; 6: "ids catch nothing"; 7: "every fault adds two"
    for guess in (4, 6, 7):
        message = rejected("05-predict-charges", guess)
        assert f"got {guess}" in message
        assert not re.search(r"\b5\b", message), message


def test_the_prediction_scenario_is_the_run_the_notebook_describes():
    assert len(ex05.id_dedupe_under_two_faults().effects("charge")) == 5
    assert_scenario_shown_in_markdown(
        SOLUTION, "05-q-predict-charges", ex05.id_dedupe_under_two_faults, ex05.charge_once_per_message
    )


# ---------------------------------------------------------------------------- 05-payment-handler


def charging(key, when="commit", check_first=True):
    """A payment handler that dedupes on ``key(msg)``, writing its record at ``when``."""

    def charge_card(msg, ctx):
        k = key(msg)
        if check_first and ctx.seen(k):
            return
        if when == "start":
            ctx.remember(k, when="start")
        ctx.effect("charge", order=msg.key, installment=msg.payload["installment"], amount=msg.payload["amount"])
        if when != "start":
            ctx.remember(k, when=when)

    return charge_card


def by_payment(msg):
    return (msg.key, msg.payload["installment"])


def no_dedupe(msg, ctx):
    ctx.effect("charge", order=msg.key, installment=msg.payload["installment"], amount=msg.payload["amount"])


TWICE = r"was charged (twice|\d+ times)"
PAYMENT_WRONG = {
    # the lesson's first try: a producer retry has a new id
    "dedupe on msg.id": (charging(lambda m: m.id), ["was charged twice", "new message id"]),
    # the record claims work that a crash halfway never committed
    'when="start"': (charging(by_payment, when="start"), ["was never charged", "halfway through the work"]),
    # the record comes after the ack: a retry in flight, or a crash before the ack, charges again
    'when="after-ack"': (charging(by_payment, when="after-ack"), ["was charged twice"]),
    "no dedupe": (no_dedupe, ["was charged twice"]),
    # too broad: the order number skips the second installment
    "dedupe on the order only": (charging(lambda m: m.key), ["installment 2 was never charged", "nothing to do"]),
    # far too broad: a customer's second order is skipped
    "dedupe on the customer": (charging(lambda m: m.payload["customer"]), ["was never charged"]),
}


@pytest.mark.parametrize("case", PAYMENT_WRONG, ids=str)
def test_a_payment_handler_that_charges_twice_or_never_is_rejected(case):
    answer, phrases = PAYMENT_WRONG[case]
    assert_rejected_saying("05-payment-handler", "charge_card", answer, [*phrases, "in the trace:"], ANSWER_TEXT)


@pytest.mark.parametrize(
    ("case", "fault", "phrase"),
    [
        ("dedupe on msg.id", "producer retries", TWICE),
        ('when="start"', "crashes during processing", "was never charged"),
        ('when="after-ack"', "crashes before the ack", TWICE),
        ("no dedupe", "lost acks", TWICE),
        ("no dedupe", "slow workers", TWICE),
    ],
)
def test_each_mistake_is_caught_by_the_fault_that_defeats_it(case, fault, phrase):
    """Not only by whichever fault the check happens to try first."""
    answer, _ = PAYMENT_WRONG[case]
    caught = 0
    for seed in ex05.SEEDS:
        run = ex05.paid_installments(answer, seed, fault)
        try:
            expect_each_order_charged(
                run, at_most_once=True, work_of=lambda e: ex05.installment_label(e["order"], e["installment"])
            )
        except CheckFailed as failure:
            assert re.search(phrase, str(failure)), str(failure)
            caught += 1
    assert caught >= len(ex05.SEEDS) // 2


def test_the_replay_line_rebuilds_the_failing_run():
    answer, _ = PAYMENT_WRONG["dedupe on msg.id"]
    message = rejected("05-payment-handler", answer)
    order, installment = re.search(r"^(order-\d+) installment (\d) was charged twice", message, re.M).groups()
    schedule = ast.literal_eval(re.search(r"Replay: the schedule (\[.*?\])\.", message)[1])
    assert schedule == [("lose_confirm", "m1", 1)]
    b = ex05.replay_schedule("05-payment-handler", answer, schedule)
    assert sum(e["order"] == order and e["installment"] == int(installment) for e in b.effects("charge")) == 2


def test_a_charge_that_does_not_say_which_payment_it_is_gets_explained():
    def charge_card(msg, ctx):
        ctx.effect("charge", amount=msg.payload["amount"])

    with pytest.raises(CheckFailed, match="say which payment it is"):
        score("05-payment-handler", charge_card)


def test_a_handler_that_raises_is_named_with_its_error():
    def charge_card(msg, ctx):
        ctx.effect("charge", order=msg.payload["order_id"])

    with pytest.raises(CheckFailed, match=r"charge_card raised an error on m1 \(delivery 1\): KeyError: 'order_id'"):
        score("05-payment-handler", charge_card)


# ---------------------------------------------------------------------------- 05-fix-shipping


def shipping(key, when="commit"):
    def ship(msg, ctx):
        k = key(msg)
        if ctx.seen(k):
            return
        if when == "start":
            ctx.remember(k, when="start")
        ctx.effect("label", order=msg.key, address=msg.payload["address"])
        ctx.publish("order.shipped", {"order": msg.key}, key=msg.key)
        if when != "start":
            ctx.remember(k, when=when)

    return ship


def ship_without_dedupe(msg, ctx):
    ctx.effect("label", order=msg.key, address=msg.payload["address"])
    ctx.publish("order.shipped", {"order": msg.key}, key=msg.key)


SHIPPING_WRONG = {
    # as found: both bugs
    "as found": (shipping(lambda m: m.id, when="after-ack"), ["given a label twice"]),
    # only the key fixed: the record still comes after the ack
    "key fixed, record still after the ack": (shipping(lambda m: m.key, when="after-ack"), ["given a label twice"]),
    # only the record fixed: a producer retry still has a new id
    "record fixed, still the message id": (
        shipping(lambda m: m.id),
        ["given a label twice", "published the same order again"],
    ),
    # over-corrected: the record before the work
    'when="start"': (shipping(lambda m: m.key, when="start"), ["was never given a label", "halfway"]),
    "no dedupe": (ship_without_dedupe, ["given a label twice"]),
}


@pytest.mark.parametrize("case", SHIPPING_WRONG, ids=str)
def test_a_shipping_fix_that_still_labels_twice_or_never_is_rejected(case):
    answer, phrases = SHIPPING_WRONG[case]
    assert_rejected_saying("05-fix-shipping", "ship", answer, phrases, ANSWER_TEXT)


def test_a_double_order_shipped_event_is_caught_even_with_one_label():
    def ship(msg, ctx):
        if ctx.seen(msg.key):
            return
        ctx.effect("label", order=msg.key, address=msg.payload["address"])
        ctx.publish("order.shipped", {"order": msg.key}, key=msg.key)
        ctx.publish("order.shipped", {"order": msg.key}, key=msg.key)
        ctx.remember(msg.key)

    message = rejected("05-fix-shipping", ship)
    assert "order.shipped event was published twice" in message and "2 'on its way' emails" in message


def test_the_shipping_incidents_in_the_notebook_show_the_double_labels(solution):
    for incident in ("crashes before the ack", "producer retries"):
        b = ex05.replay("05-fix-shipping", solution["ship_as_found"], seed=0, fault=incident)
        assert max(Counter(e["order"] for e in b.effects("label")).values()) == 2


# ---------------------------------------------------------------------------- 05-idempotent-refund


def refunding(key=lambda m: (m.key, "refund"), when="commit", check_charge=True, note_when_skipping=True):
    def refund(msg, ctx):
        k = key(msg)
        if ctx.seen(k):
            return
        if when == "start":
            ctx.remember(k, when="start")
        charged = ctx.seen((msg.key, "charge"))
        if charged or not check_charge:
            ctx.effect("refund", order=msg.key, amount=msg.payload["amount"])
        if when != "start" and (charged or note_when_skipping):
            ctx.remember(k, when=when)

    return refund


def refund_without_dedupe(msg, ctx):
    """Checks for the charge, notes a skipped refund, but never checks for an earlier refund."""
    if ctx.seen((msg.key, "charge")):
        ctx.effect("refund", order=msg.key, amount=msg.payload["amount"])
    else:
        ctx.remember((msg.key, "refund"))


def refund_by_message_id(msg, ctx):
    if ctx.seen(msg.id):
        return
    if ctx.seen((msg.key, "charge")):
        ctx.effect("refund", order=msg.key, amount=msg.payload["amount"])
    ctx.remember(msg.id)


REFUND_WRONG = {
    # pays back money that was never taken
    "no check for the charge": (refunding(check_charge=False), ["was never charged", "money the shop never took"]),
    # leaves no note when it skips: the held-up charge goes through afterwards
    "no note when nothing to refund": (refunding(note_when_skipping=False), ["held up", "never got the money back"]),
    # a redelivered refund pays out again
    "no dedupe": (refund_without_dedupe, ["was refunded twice"]),
    # a message id is no note a charge can find (and a retry has a new one)
    "dedupe on msg.id": (refund_by_message_id, ["never got the money back"]),
    # the note comes after the ack: a crash before the ack refunds twice
    'when="after-ack"': (refunding(when="after-ack"), ["was refunded twice"]),
    # the note before the work: a crash halfway means no refund ever
    'when="start"': (refunding(when="start"), ["never got the money back", "halfway"]),
}


@pytest.mark.parametrize("case", REFUND_WRONG, ids=str)
def test_a_refund_that_pays_twice_or_wrongly_is_rejected(case):
    answer, phrases = REFUND_WRONG[case]
    assert_rejected_saying("05-idempotent-refund", "refund", answer, phrases, ANSWER_TEXT)


def test_the_refund_scenario_covers_every_case_for_every_seed():
    """Each seed refunds a charged order, refunds an order never charged, and holds up one charge."""
    for seed in ex05.SEEDS:
        plan = ex05.refund_plan(seed)
        assert any(charged and refunded for _, _, charged, refunded in plan)
        assert any(refunded and not charged for _, _, charged, refunded in plan)


def test_the_charge_handler_shown_in_the_notebook_is_the_one_the_check_runs():
    assert_scenario_shown_in_markdown(SOLUTION, "05-q-idempotent-refund", ex05.charge_for_order)


def test_replay_names_the_checks_and_faults_it_knows(solution):
    with pytest.raises(eb.EvbrokerError, match="did you mean '05-fix-shipping'"):
        ex05.replay("05-fix-shiping", solution["ship"], seed=0, fault="lost acks")
    with pytest.raises(eb.EvbrokerError, match="did you mean 'lost acks'"):
        ex05.replay("05-fix-shipping", solution["ship"], seed=0, fault="lost ack")


# ---------------------------------------------------------------------------- the shipped exercise


@pytest.mark.slow
def test_the_shipped_exercise_fails_only_where_answers_are_missing():
    assert_shipped_exercise_fails_only_for_missing_answers(EXERCISE)


# ---------------------------------------------------------------------------- 05-provider-charge


def calling(key=None, *, remember=False):
    """A provider charge whose idempotency key is ``key(msg)`` (None: no key); ``remember`` adds
    question 2's dedupe record around it, which cannot take back a call already made."""

    def charge_at_provider(msg, ctx):
        if remember and ctx.seen(by_payment(msg)):
            return
        ctx.call(
            "charge",
            idempotency_key=key(msg) if key else None,
            order=msg.key,
            installment=msg.payload["installment"],
            amount=msg.payload["amount"],
        )
        if remember:
            ctx.remember(by_payment(msg))

    return charge_at_provider


PROVIDER_WRONG = {
    # exactly-once processing alone: a crash after the call, before the commit, calls again
    "no key": (calling(), ["was charged twice", "no idempotency key"]),
    # the database record does not cover the outside call either
    "no key, a dedupe record": (calling(remember=True), ["was charged twice", "no idempotency key"]),
    # a producer retry has a new message id
    "key = message id": (calling(lambda m: m.id), ["was charged twice"]),
    # too broad: the provider drops the second installment as a repeat
    "key = order only": (calling(lambda m: m.key), ["installment 2 was never charged"]),
    # question 2's answer: a database write, not a call to the provider
    "ctx.effect": (charging(by_payment), ["ctx.effect", "payment provider"]),
}


@pytest.mark.parametrize("case", PROVIDER_WRONG, ids=str)
def test_a_provider_charge_that_charges_twice_or_never_is_rejected(case):
    answer, phrases = PROVIDER_WRONG[case]
    assert_rejected_saying("05-provider-charge", "charge_at_provider", answer, phrases, ANSWER_TEXT)


def test_without_a_key_a_crash_after_the_call_charges_twice_under_exactly_once():
    """The fault that defeats a keyless call: the call happened, the commit did not."""
    caught = 0
    for seed in ex05.SEEDS:
        b = ex05.replay("05-provider-charge", calling(), seed=seed, fault="crashes during processing")
        done = Counter((e["order"], e["installment"]) for e in b.effects("charge"))
        caught += any(n > 1 for n in done.values())
        assert all(e.kind == "call" for e in b.effects("charge"))
    assert caught >= len(ex05.SEEDS) // 2


def test_with_the_key_the_provider_drops_every_repeat(solution):
    b = ex05.replay("05-provider-charge", solution["charge_at_provider"], seed=0, fault="crashes during processing")
    assert b.trace.where(kind="call-deduped")
    assert len(b.effects("charge")) == len(ex05.installments(0))


# ---------------------------------------------------------------------------- the search


def claim_then_charge(msg, ctx):
    """Claims each payment before charging it, and redoes the work on a redelivery (the claim may
    be all that is left of a worker that died), marking the message done with the charge.

    Each fault alone is survived: a crash halfway is redone, a slow first delivery is rolled back
    by the message id, a retry is skipped."""
    payment = (msg.key, msg.payload["installment"])
    if msg.attempt == 1 and ctx.seen(payment):  # a producer's retry of a payment already claimed
        return
    ctx.remember(payment, when="start")
    ctx.effect("charge", order=msg.key, installment=msg.payload["installment"], amount=msg.payload["amount"])
    ctx.remember(msg.id)


def test_the_searched_failure_is_the_smallest_schedule_and_replays():
    answer = charging(by_payment, when="after-ack")
    res, _ = explore_answer(ex05.PAYMENT_SEARCH, answer)
    assert [len(v.faults) for v in res.violations] == sorted(len(v.faults) for v in res.violations)
    first = res.violations[0]
    b = ex05.replay_schedule("05-payment-handler", answer, [tuple(p)[:3] for p in first.faults])
    assert b.trace.to_records() == first.broker.trace.to_records()
    assert explore_answer(ex05.PAYMENT_SEARCH, charging(by_payment))[0].ok


@pytest.mark.parametrize(
    ("check_id", "answer", "says"),
    [
        ("05-fix-shipping", shipping(lambda m: m.id, when="after-ack"), "given a label twice"),
        ("05-fix-shipping", shipping(lambda m: m.id), "published the same order again"),
        ("05-idempotent-refund", refunding(when="after-ack"), "was refunded twice"),
        ("05-idempotent-refund", refunding(note_when_skipping=False), "never got the money back"),
        ("05-provider-charge", calling(), "no idempotency key"),
        ("05-provider-charge", calling(lambda m: m.id), "was charged twice"),
        ("05-provider-charge", calling(lambda m: m.key), "installment 2 was never charged"),
    ],
)
def test_each_searched_check_names_its_smallest_schedule_and_replays_it(check_id, answer, says):
    message = rejected(check_id, answer)
    assert says in message
    schedule = ast.literal_eval(re.search(r"Replay: the schedule (\[.*?\])\.", message)[1])
    search = ex05._SEARCHES[check_id]
    res, _ = explore_answer(search, answer, smallest_only=True)
    assert [tuple(p)[:3] for p in res.violations[0].faults] == schedule
    assert all(len(v.faults) == len(schedule) for v in res.violations)
    b = ex05.replay_schedule(check_id, answer, schedule)
    assert b.trace.to_records() == res.violations[0].broker.trace.to_records()


def claim_then_ship(msg, ctx):
    """Claims the order before its label, redoes the work on a redelivery, marks the message done."""
    if msg.attempt == 1 and ctx.seen(msg.key):
        return
    ctx.remember(msg.key, when="start")
    ctx.effect("label", order=msg.key, address=msg.payload["address"])
    ctx.publish("order.shipped", {"order": msg.key}, key=msg.key)
    ctx.remember(msg.id)


def claim_then_refund(msg, ctx):
    """The same mistake in a refund: a redelivered refund skips the claim check and refunds again;
    the claim, written at the start, keeps a producer's retry out."""
    claim = (msg.key, "refund")
    if msg.attempt == 1 and ctx.seen(claim):
        return
    ctx.remember(claim, when="start")
    if ctx.seen((msg.key, "charge")):
        ctx.effect("refund", order=msg.key, amount=msg.payload["amount"])
    ctx.remember(msg.id)


def test_the_shipping_search_never_breaks_the_email_service():
    """Faults go to the shipping service and the publishes to it: a duplicate email is ship's doing."""
    res, _ = explore_answer(ex05.SHIPPING_SEARCH, shipping(lambda m: m.key))
    assert res.ok
    assert {p.queue for o in res.outcomes for p in o.faults} == {"shipping"}


def test_a_handler_that_floods_the_queue_is_told_so_instead_of_searched_for_minutes():
    def charge_card(msg, ctx):
        charging(by_payment)(msg, ctx)
        if msg.payload.get("echo") is None:
            for n in range(30):
                ctx.publish("payments", {**msg.payload, "echo": n}, key=msg.key)

    message = rejected("05-payment-handler", charge_card)
    assert "too big to try every fault on" in message and "places where a fault could strike" in message
    assert "replay_schedule('05-payment-handler', charge_card, [])" in message


def equal_installments(seed):
    """Does some order of this seed pay two installments of the same amount?"""
    paid = {}
    for order, _, _, amount, _ in ex05.installments(seed):
        if paid.get(order) == amount:
            return True
        paid[order] = amount
    return False


def by_order_and_amount(msg):
    return (msg.key, msg.payload["amount"])


def test_a_key_of_order_and_amount_fails_only_the_seeds_with_equal_installments():
    """The closest a key of (order, amount) comes to passing 100 random seeds: no fault is needed to
    break it, only a payload, two installments of one order with the same amount; a random seed draws
    each amount from 18 values, so about one seed in ten has such a pair (none of the check's
    20 seeds does) and no wrong key that depends on the amounts can pass them all. The searched
    scenario always has the pair, and the check names it with no fault at all. (A handler that
    passes all 100 seeds and is caught by the search is :func:`claim_then_charge`.)"""
    answer = charging(by_order_and_amount)
    failed = random_failures("05-payment-handler", answer)
    split_equal = [seed for seed in range(100) if equal_installments(seed)]
    assert 0 < len(split_equal) <= 15
    assert sorted({seed for seed, _ in failed}) == split_equal
    assert {seed for seed, fault in failed if fault == "no faults"} == set(split_equal)
    assert not any(equal_installments(seed) for seed in ex05.SEEDS)
    message = rejected("05-payment-handler", answer)
    assert "Even with no fault at all, it goes wrong" in message
    assert "order-1 installment 2 was never charged" in message
    assert "To watch it: b = ex05.replay_schedule('05-payment-handler', charge_card, []" in message


def claim_then_call(msg, ctx):
    """Claims each payment before calling the provider, and calls again on a redelivery (the claim
    may be all that is left of a worker that died), with the message id as the idempotency key.

    A redelivery reuses the message id, so the provider drops it; a producer's retry is skipped by
    the claim."""
    payment = (msg.key, msg.payload["installment"])
    if msg.attempt == 1 and ctx.seen(payment):  # a producer's retry of a payment already claimed
        return
    ctx.remember(payment, when="start")
    ctx.call(
        "charge",
        idempotency_key=msg.id,
        order=msg.key,
        installment=msg.payload["installment"],
        amount=msg.payload["amount"],
    )


def test_a_provider_key_of_order_and_amount_is_caught_without_a_fault():
    """Like question 2's key: the provider drops the second of two equal installments as a repeat."""
    answer = calling(by_order_and_amount)
    message = rejected("05-provider-charge", answer)
    assert message.startswith("Even with no fault at all, it goes wrong")
    assert "order-1 installment 2 was never charged" in message
    assert "replay_schedule('05-provider-charge', charge_at_provider, [])" in message


def test_the_provider_search_replays_its_smallest_schedule_and_passes_the_solution(solution):
    res, _ = explore_answer(ex05.PROVIDER_SEARCH, solution["charge_at_provider"])
    assert res.ok and res.schedules > 50
    wrong = calling(lambda m: m.id)
    res, _ = explore_answer(ex05.PROVIDER_SEARCH, wrong, smallest_only=True)
    first = res.violations[0]
    b = ex05.replay_schedule("05-provider-charge", wrong, [tuple(p)[:3] for p in first.faults])
    assert b.trace.to_records() == first.broker.trace.to_records()


def test_a_charge_still_being_made_when_its_refund_is_handled_is_not_held_against_the_refund(solution):
    """Seed 31, crashes during processing: order-1's charge crashes four times in a row and is being
    made (committing at t = 13) while its refund, sent at t = 12, is handled; each sees nothing of the
    other, as committed work only is visible, so no refund handler could give the money back. The
    right answer passes that run, and every other of the 100 seeds; a refund that never refunds
    anything is still caught on the orders whose charge was done long before."""
    b = ex05.replay("05-idempotent-refund", solution["refund"], seed=31, fault="crashes during processing")
    charge = next(e for e in b.effects("charge") if e.key == "order-1")
    assert charge.time == 13 and not [e for e in b.effects("refund") if e.key == "order-1"]
    assert random_failures("05-idempotent-refund", solution["refund"]) == []

    def never_refunds(msg, ctx):
        ctx.remember((msg.key, "refund"))

    assert "never got the money back" in rejected("05-idempotent-refund", never_refunds)
    assert len(random_failures("05-idempotent-refund", never_refunds)) == 600


@pytest.mark.parametrize(
    ("check_id", "name", "answer", "retried", "slow", "says"),
    [
        ("05-payment-handler", "charge_card", claim_then_charge, "m1", "m4", "was charged twice"),
        ("05-fix-shipping", "ship", claim_then_ship, "m1", "m3", "given a label twice"),
        ("05-idempotent-refund", "refund", claim_then_refund, "m2", "m6", "was refunded twice"),
        ("05-provider-charge", "charge_at_provider", claim_then_call, "m1", "m4", "was charged twice"),
    ],
    ids=["payment", "shipping", "refund", "provider"],
)
def test_a_handler_that_passes_100_random_seeds_is_caught_by_the_search(check_id, name, answer, retried, slow, says):
    """A producer's retry that is itself slow is redelivered as attempt 2, which skips the claim and
    does the work again: two faults of two kinds, which no random seed (one kind of fault at a time)
    ever combines."""
    assert random_failures(check_id, answer) == []
    message = rejected(check_id, answer)
    assert message.startswith(
        f"Under these 2 faults ({retried} publish: the producer never hears the confirm and publishes again; "
        f"{slow} delivery 1: the worker is slow)"
    ), message
    assert says in message
    assert f"ex05.replay_schedule({check_id!r}, {name}, [('lose_confirm', {retried!r}, 1), " in message
