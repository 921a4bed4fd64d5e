"""Exercise 04's checks (delivery guarantees): the solution passes, and the wrong answers a learner
is likely to try are each rejected with feedback in their terms, a way to replay the run, and
never the answer itself.

The solution is read from ``solutions/04_delivery_guarantees.ipynb`` (its set-up and answer
cells are executed), so these tests judge the answers the kit really ships.
"""

import ast
import contextlib
import inspect
import io
import re

import pytest

import evbroker as eb
from evbroker.build import ROOT, read_notebook
from evbroker.grading import CheckFailed, NotAnswered, score
from evbroker.grading import checks_04 as ex04
from evbroker.grading.cells import grade_id, graded_cells, is_answer, is_graded
from evbroker.grading.execution import run_notebook
from evbroker.grading.marking import UNANSWERED, mark
from evbroker.grading.search import explore_answer, sampled_failures

SOLUTION = ROOT / "solutions" / "04_delivery_guarantees.ipynb"
EXERCISE = ROOT / "exercises" / "04_delivery_guarantees.ipynb"


@pytest.fixture(scope="module")
def solution():
    return solution_namespace(SOLUTION)


# ---------------------------------------------------------------------------- helpers (exercise 05 uses them too)


def solution_namespace(path):
    """The names a solution notebook defines: every code cell but the graded ones, executed quietly."""
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for cell in read_notebook(path).cells:
            if cell.cell_type == "code" and not is_graded(cell):
                exec(compile(cell.source, f"{path.name}:{cell.id}", "exec"), namespace)
    return namespace


def assert_scenario_shown_in_markdown(path, cell_id, *functions):
    """Every line of the code blocks in markdown cell ``cell_id`` is a line of ``functions``' source
    (``def`` lines aside: the notebook leaves out type hints), so the question shows the real run."""
    cell = next(c for c in read_notebook(path).cells if grade_id(c) == cell_id)
    source = {line.strip() for fn in functions for line in inspect.getsource(fn).splitlines()}
    blocks = re.findall(r"```python\n(.*?)```", cell.source, re.S)
    shown = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert shown, f"{cell_id} shows no code"
    missing = [line for line in shown if not line.startswith("def ") and line not in source]
    assert not missing, f"{cell_id} shows lines the check does not run: {missing}"


def assert_shipped_exercise_fails_only_for_missing_answers(path):
    """Run the exercise as shipped: only answer cells (their stub) and graded cells (not answered) fail."""
    nb = read_notebook(path)
    run = run_notebook(nb, path.parent, cell_timeout=60, timeout=300)
    assert run.status == "ok", run.detail
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        ran = run.cells[index]
        where = f"{path.name} cell {index + 1} ({grade_id(cell)})"
        if is_graded(cell):
            assert (ran.status, ran.ename) == ("error", "NotAnswered"), (where, ran)
        elif is_answer(cell):
            assert ran.status == "ok" or (ran.status, ran.ename) == ("error", "NotImplementedError"), (where, ran)
        else:
            assert ran.status == "ok", (where, ran)
    questions = mark(nb, graded_cells(nb), run)
    assert questions and all(q.status == UNANSWERED and q.points == 0 for q in questions), questions


def rejected(check_id, answer, hiding=()):
    """The failure the check gives ``answer`` (the test fails if the check accepts it); none of
    ``hiding`` (text that would give the answer away) may be in it."""
    with pytest.raises(CheckFailed) as info:
        score(check_id, answer)
    assert not isinstance(info.value, NotAnswered)
    message = str(info.value)
    for text in hiding:
        assert text not in message, message
    return message


def assert_rejected_saying(check_id, name, answer, phrases, hiding=()):
    """A searched check rejects ``answer`` saying each of ``phrases`` and how to replay its schedule."""
    message = rejected(check_id, answer, hiding)
    for phrase in phrases:
        assert phrase in message, message
    call = f"ex{check_id[:2]}.replay_schedule({check_id!r}, {name}, ["
    assert re.search(r"Replay: the schedule \[.*\]\. To watch it: b = " + re.escape(call), message), message
    return message


def random_failures_of(module, check_id, answer, seeds):
    """Each (seed, fault) run of a check's random phase, over ``seeds``, that rejects ``answer``."""
    sampled, faults = module._REPLAYS[check_id]
    judge = module._SEARCHES[check_id].judge
    return ((seed, fault) for seed, fault, _ in sampled_failures(sampled, faults, judge, answer, seeds))


# ---------------------------------------------------------------------------- checks


def charge(msg, ctx):
    ctx.effect("charge", order=msg.payload["order"], amount=msg.payload["amount"])


# ---------------------------------------------------------------------------- the solution


@pytest.mark.parametrize(
    ("check_id", "name"),
    [
        ("04-predict-charges", "charges"),
        ("04-predict-storm", "charges_by_12"),
        ("04-no-order-lost", "declare_payments"),
        ("04-fix-double-charge", "setup_payments"),
    ],
)
def test_the_solution_gets_full_points(solution, check_id, name):
    result = score(check_id, solution[name])
    assert result.passed and result.points == result.max_points


def test_the_points_add_up_to_ten():
    assert [(c.id, c.points) for c in eb.grading.registered("04")] == [
        ("04-predict-charges", 2),
        ("04-predict-storm", 2),
        ("04-no-order-lost", 3),
        ("04-fix-double-charge", 3),
    ]


@pytest.mark.parametrize("check_id", ["04-no-order-lost", "04-fix-double-charge"])
def test_a_stub_is_not_answered_rather_than_wrong(check_id):
    def stub(*args):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotAnswered):
        score(check_id, stub)


# ---------------------------------------------------------------------------- predictions


@pytest.mark.parametrize(
    ("check_id", "truth", "wrong"),
    [
        # one charge per order (as if redeliveries did not charge); forgetting the second lost ack;
        # counting only the crash
        ("04-predict-charges", 6, [3, 5, 4]),
        # only the delivery the broker waits for counts; one per timeout; the ack that never comes
        ("04-predict-storm", 3, [1, 4, 2, 0]),
    ],
)
def test_a_wrong_prediction_is_rejected_without_the_number(check_id, truth, wrong):
    for guess in wrong:
        message = rejected(check_id, guess)
        assert f"got {guess}" in message
        assert not re.search(rf"\b{truth}\b", message), message


def test_the_prediction_scenarios_are_the_runs_the_notebook_describes():
    assert len(ex04.crash_and_lost_acks().effects("charge")) == 6
    assert len(ex04.slower_than_the_timeout().effects("charge")) == 3
    assert_scenario_shown_in_markdown(SOLUTION, "04-q-predict-charges", ex04.crash_and_lost_acks)
    assert_scenario_shown_in_markdown(SOLUTION, "04-q-predict-storm", ex04.slower_than_the_timeout)


# ---------------------------------------------------------------------------- 04-no-order-lost


def declaring(**options):
    def declare_payments(b):
        b.queue("payments", **options)

    return declare_payments


NO_ORDER_LOST_WRONG = {
    # auto-ack: a crash on arrival or a lost delivery loses the order for good
    "at-most-once": (
        declaring(guarantee="at-most-once", ack_timeout=6.0),
        ["was never charged", "dropped", "for good"],
    ),
    # the slow-consumer trap: a timeout shorter than the biggest orders' 4 time units
    "timeout shorter than the work": (
        declaring(guarantee="at-least-once", ack_timeout=3.0),
        ["healthy worker was taken for dead", "too late to count"],
    ),
    # exactly-once hides the double charge but still takes a healthy worker for dead
    "exactly-once, short timeout": (
        declaring(guarantee="exactly-once", ack_timeout=3.0),
        ["healthy worker was taken for dead"],
    ),
    # nothing is lost, but a dead worker's order waits a minute for its retry
    "timeout far too long": (
        declaring(guarantee="at-least-once", ack_timeout=60.0),
        ["waited too long", "60 time units later", "within 10"],
    ),
    # giving up after two deliveries sets crashed orders aside
    "max_deliveries": (
        declaring(guarantee="at-least-once", ack_timeout=6.0, max_deliveries=2),
        ["was never charged", "dead letters"],
    ),
}


@pytest.mark.parametrize("case", NO_ORDER_LOST_WRONG, ids=str)
def test_a_queue_that_loses_or_storms_is_rejected_in_the_learners_terms(case):
    answer, phrases = NO_ORDER_LOST_WRONG[case]
    hiding = ("at-least-once", "exactly-once", "ack_timeout=")
    assert_rejected_saying("04-no-order-lost", "declare_payments", answer, phrases, hiding)


def test_declaring_the_wrong_queue_or_starting_workers_is_explained():
    assert "should declare the queue 'payments'" in rejected("04-no-order-lost", _payment)
    message = rejected("04-no-order-lost", _with_workers)
    assert "should only declare the queue" in message and "payments-1" in message
    assert "should take 1 argument" in rejected("04-no-order-lost", lambda: None)


def _payment(b):
    b.queue("payment", ack_timeout=6.0)


def _with_workers(b):
    b.queue("payments", ack_timeout=6.0)
    b.worker("payments", charge)


def test_the_bounds_are_what_the_task_says(solution):
    """Any timeout from the biggest order's 4 up to 10 passes, under either redelivering guarantee."""
    for guarantee in ("at-least-once", "exactly-once"):
        for timeout in (4.0, 7.5, 10.0):
            assert score("04-no-order-lost", declaring(guarantee=guarantee, ack_timeout=timeout)).passed


# ---------------------------------------------------------------------------- 04-fix-double-charge


def setting_up(**options):
    def setup_payments(b, faults):
        b.queue("payments", **options)
        b.worker("payments", charge, count=2, service_time=1.0, faults=faults)

    return setup_payments


FIX_WRONG = {
    "unchanged": (
        setting_up(guarantee="at-least-once", ack_timeout=5.0),
        ["was charged twice", "crashed after the work, before its ack left"],
    ),
    # stops the double charge, and loses the order a crashed worker held
    "at-most-once": (setting_up(guarantee="at-most-once", ack_timeout=5.0), ["was never charged", "for good"]),
    # no redelivery at all: the first crash sends the order to dead letters
    "max_deliveries=1": (
        setting_up(guarantee="at-least-once", ack_timeout=5.0, max_deliveries=1),
        ["was never charged", "dead letters"],
    ),
    # a longer wait does not make a lost ack arrive
    "longer timeout": (setting_up(guarantee="at-least-once", ack_timeout=50.0), ["was charged twice"]),
}


@pytest.mark.parametrize("case", FIX_WRONG, ids=str)
def test_a_fix_that_still_double_charges_or_loses_orders_is_rejected(case):
    answer, phrases = FIX_WRONG[case]
    assert_rejected_saying("04-fix-double-charge", "setup_payments", answer, phrases, ("exactly-once",))


def test_a_set_up_that_drops_its_faults_is_still_broken_by_the_check():
    """The check puts its faults on the workers itself: leaving out faults=faults changes nothing."""

    def setup_payments(b, faults):
        b.queue("payments", guarantee="at-least-once", ack_timeout=5.0)
        b.worker("payments", charge, count=2, service_time=1.0)

    assert "was charged twice" in rejected("04-fix-double-charge", setup_payments)


def hands_on_only_a_probe(b, faults):
    """Passes the check's faults on only when they look like the check's probe (a predicate)."""
    b.queue("payments", guarantee="at-least-once", ack_timeout=5.0)
    b.worker("payments", charge, count=2, service_time=1.0, faults=faults if callable(faults.lose_delivery) else None)


def trusting_run(setup_payments, seed, fault):
    """The run as the check made it when it trusted the set-up to hand ``faults`` on."""
    b = eb.Broker(seed=seed, settle_limit=ex04.SETTLE_LIMIT)
    setup_payments(b, ex04.FIX_FAULTS[fault])
    run = ex04.Run(b)
    for i, amount in enumerate(ex04._amounts(seed, ex04.FIX_ORDERS)):
        order = f"order-{i + 1}"
        run.place(b.publish("payments", {"order": order, "amount": amount}, at=0.5 * i, key=order), order, amount)
    run.stuck = ex04.run_settling(b)
    return run


def test_a_set_up_that_hands_on_only_the_faults_it_can_spot_is_caught():
    """It passes 100 random seeds of every fault when the check trusts it to pass faults on (it
    drops them all); the check now puts the faults on the workers itself, and the search finds the
    single crash that charges twice."""
    for seed in range(100):
        for fault in ex04.FIX_FAULTS:
            ex04._judge_fixed(trusting_run(hands_on_only_a_probe, seed, fault))
    message = rejected("04-fix-double-charge", hands_on_only_a_probe)
    assert message.startswith("Under this fault (m1 delivery 1: the worker crashes before its ack)")
    assert "was charged twice" in message


def test_the_search_finds_the_smallest_schedule_and_its_replay_rebuilds_it():
    answer, _ = FIX_WRONG["unchanged"]
    res, _ = explore_answer(ex04.FIX_SEARCH, answer)
    first = res.violations[0]
    assert len(first.faults) == 1 and first.faults[0].kind in ("crash_before_ack", "lose_ack")
    b = ex04.replay_schedule("04-fix-double-charge", answer, [tuple(p)[:3] for p in first.faults])
    assert b.trace.to_records() == first.broker.trace.to_records()


def test_a_fix_that_loses_an_order_only_when_two_faults_meet_is_caught_by_the_search():
    """max_deliveries=2 survives one failed delivery per order; the random seeds (one fault kind at a
    time, each delivery struck with chance 0.3) may or may not put two on one order, the search does."""
    answer = setting_up(guarantee="exactly-once", ack_timeout=5.0, max_deliveries=2)
    res, _ = explore_answer(ex04.FIX_SEARCH, answer)
    assert not res.ok
    assert len(res.violations[0].faults) == 2
    assert "dead letters" in res.violations[0].message


# ---------------------------------------------------------------------------- replay and stories


def test_the_replay_line_rebuilds_the_failing_run():
    answer, _ = FIX_WRONG["unchanged"]
    message = rejected("04-fix-double-charge", answer)
    order = re.search(r"^(order-\d+) was charged twice", message, re.M)[1]
    schedule = ast.literal_eval(re.search(r"Replay: the schedule (\[.*?\])\.", message)[1])
    b = ex04.replay_schedule("04-fix-double-charge", answer, schedule)
    assert sum(e.key == order for e in b.effects("charge")) == 2


def test_the_random_runs_still_replay_by_seed():
    answer, _ = FIX_WRONG["unchanged"]
    run = ex04.fixed_payments(answer, 3, "lost acks")
    b = ex04.replay("04-fix-double-charge", answer, seed=3, fault="lost acks")
    assert b.trace.to_records() == run.broker.trace.to_records()


def test_replay_names_the_checks_and_faults_it_knows():
    with pytest.raises(eb.EvbrokerError, match="did you mean '04-no-order-lost'"):
        ex04.replay("04-no-orders-lost", declaring(), seed=0, fault="lost deliveries")
    with pytest.raises(eb.EvbrokerError, match="did you mean 'lost deliveries'"):
        ex04.replay("04-no-order-lost", declaring(), seed=0, fault="lost delivery")


def test_a_storm_is_replayed_up_to_where_the_broker_gave_up():
    b = ex04.replay("04-no-order-lost", declaring(ack_timeout=3.0), seed=0, fault="no faults, big orders")
    assert b.trace.where(kind="late-ack")
    assert b.stats("payments")["pending"] > 0


def test_an_order_story_names_each_fault_once_and_shows_its_rows():
    b = ex04.crash_and_lost_acks()
    story = ex04.order_story(b, ["m3"])
    assert "payments-1's ack was lost on the way back (m3, delivery 1); payments-2's ack was lost" in story
    storm = ex04.slower_than_the_timeout()
    assert "still working when the broker gave up on it and redelivered (m1, delivery 1, and 1 more time)" in (
        ex04.order_story(storm, ["m1"])
    )
    assert "Its message (m3) in the trace:" in story
    assert "route" not in story and story.count("effect") == 3


# ---------------------------------------------------------------------------- the shipped exercise


@pytest.mark.slow
def test_the_shipped_exercise_fails_only_where_answers_are_missing():
    assert_shipped_exercise_fails_only_for_missing_answers(EXERCISE)


def first_random_failure(answer, seeds=range(100)):
    """The first (seed, fault) run of 04-no-order-lost's random phase over ``seeds`` that rejects ``answer``."""
    return next(random_failures_of(ex04, "04-no-order-lost", answer, seeds), None)


QUEUE_SET_UPS = {
    "two deliveries": dict(ack_timeout=6.0, max_deliveries=2),
    "three deliveries": dict(ack_timeout=6.0, max_deliveries=3),
    "growing retry delay": dict(ack_timeout=6.0, retry_delay=1.0, retry_backoff=5.0),
    "disconnect, two deliveries": dict(ack_timeout=6.0, crash_detection="disconnect", max_deliveries=2),
    "disconnect, growing delay": dict(
        ack_timeout=8.0, crash_detection="disconnect", retry_delay=1.0, retry_backoff=3.0
    ),
    "disconnect, long timeout": dict(ack_timeout=10.0, crash_detection="disconnect", retry_delay=0.5),
}


@pytest.mark.parametrize("case", QUEUE_SET_UPS, ids=str)
def test_every_queue_set_up_the_search_rejects_fails_100_random_seeds_too(case):
    """The closest 04-no-order-lost comes to a wrong answer that passes 100 random seeds and fails the
    search: there is none. The answer is a queue's settings, and what the queue does with a failed
    delivery depends only on how many deliveries of that copy failed before and on whether the
    worker crashed (noticed at once under crash_detection="disconnect") or the delivery was lost
    (noticed at the ack timeout); the retry delay, the delivery limit and the 10-time-unit bound are
    the same for every kind. So a set-up broken by two faults on one order (whatever their kinds,
    the search's smallest failures) is broken by two lost deliveries in a row on one order, and
    the random phase, which strikes every delivery, redeliveries too, with chance 0.3 (eight orders,
    one kind at a time), puts two in a row on some order in about half its runs. The search
    still names the smallest schedule, where a random seed names a run with many faults."""
    answer = declaring(**QUEUE_SET_UPS[case])
    res, _ = explore_answer(ex04.CONFIG_SEARCH, answer, smallest_only=True)
    random_failure = first_random_failure(answer)
    if not res.ok:
        assert random_failure is not None
        assert len(res.violations[0].faults) <= 2
    assert first_random_failure(declaring(ack_timeout=6.0)) is None
    assert explore_answer(ex04.CONFIG_SEARCH, declaring(ack_timeout=6.0))[0].ok
