"""The simulator under misuse: no silent wrong answers, no raw tracebacks, no hangs.

Each test drives one mistake a learner makes in a notebook and checks the broker either
behaves as a real broker would or stops with an error that names the mistake and the fix.
"""

import copy
import itertools
import re
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import evbroker as eb
from evbroker.core.guards import MAX_CHAIN, MAX_RETRY_DELAY, EffectNameWarning

HandlerFailed = eb.HandlerFailed


def quiet(**options):
    return eb.Broker(seed=0, handler_errors="record", **options)


# ---------------------------------------------------------------- 1. payloads travel like bytes


def test_a_handler_editing_its_payload_changes_no_other_queue_and_no_redelivery():
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.queue("billing", bind="orders")
    b.queue("audit", bind="orders")
    seen = []

    def vandal(msg, ctx):
        seen.append((msg.attempt, copy.deepcopy(msg.payload)))
        msg.payload["amount"] = 0
        msg.payload["items"].append("stolen")
        ctx.effect("billed", order=msg.payload["order"], items=msg.payload["items"])

    b.worker("billing", vandal, faults=eb.Faults(crash_before_ack=lambda m: m.attempt == 1))
    b.worker("audit", lambda msg, ctx: ctx.effect("audited", amount=msg.payload["amount"], items=msg.payload["items"]))
    order = {"order": "o-1", "amount": 30, "items": ["book"]}
    b.publish("orders", order)
    b.run()
    assert order == {"order": "o-1", "amount": 30, "items": ["book"]}  # the producer's object
    assert [e.data for e in b.effects("audited")] == [{"amount": 30, "items": ["book"]}]
    # The redelivery got the message as published, not the first attempt's edits.
    assert [(a, p["amount"], p["items"]) for a, p in seen] == [(1, 30, ["book"]), (2, 30, ["book"])]


def test_a_payload_edited_after_publish_at_a_later_time_is_not_changed():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done", n=msg.payload["n"]))
    job = {"n": 1}
    b.publish("jobs", job, at=5)
    job["n"] = 99
    b.run()
    assert [e["n"] for e in b.effects("done")] == [1]


def test_effects_are_frozen_when_recorded():
    b = eb.Broker(seed=0)
    b.queue("jobs")

    def handler(msg, ctx):
        ctx.effect("saw", payload=msg.payload)
        msg.payload["edited"] = True
        ctx.publish("jobs2", msg.payload)
        msg.payload["after_publish"] = True

    b.queue("jobs2")
    b.worker("jobs", handler)
    b.worker("jobs2", lambda msg, ctx: ctx.effect("got", payload=msg.payload))
    b.publish("jobs", {"n": 1})
    b.run()
    assert b.effects("saw")[0]["payload"] == {"n": 1}
    assert b.effects("got")[0]["payload"] == {"n": 1, "edited": True}
    # The trace's copy is its own too.
    assert b.trace.where(kind="effect")[0].data == {"name": "saw", "payload": {"n": 1}}


def test_dead_letters_hand_out_copies():
    b = quiet()
    b.queue("jobs", max_deliveries=1)
    b.worker("jobs", lambda msg, ctx: 1 / 0)
    b.publish("jobs", {"n": 1})
    b.run()
    b.dead_letters("jobs")[0].payload["n"] = 2
    assert b.dead_letters("jobs")[0].payload == {"n": 1}


def test_immutable_payloads_are_not_copied():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    got = []
    b.worker("jobs", lambda msg, ctx: got.append(msg.payload))
    text, frozen = "x" * 1000, (1, "a", (2, 3))
    b.publish("jobs", text)
    b.publish("jobs", frozen)
    b.run()
    assert got[0] is text and got[1] is frozen


def test_a_payload_that_cannot_be_copied_is_refused_at_publish():
    import threading

    b = eb.Broker(seed=0)
    b.queue("jobs")
    with pytest.raises(eb.EvbrokerError, match=r"^publish: payload: .*cannot be copied .*send plain values"):
        b.publish("jobs", {"lock": threading.Lock()})


# ---------------------------------------------------------------- 3. outages and crashes


@pytest.mark.parametrize(
    ("restart_after", "outage", "until", "restarts"),
    [
        # crashed at 0, back at 10: the outage from 2 to 4 ending does not bring it back sooner
        (10, (2, 4), 10.5, [10]),
        # due back at 2, during the outage from 1 to 6: it waits for the outage to end
        (2, (1, 6), 7, [6]),
    ],
    ids=["outage ending does not restart a crashed worker", "restart due during an outage waits for its end"],
)
def test_a_crashed_worker_comes_back_when_both_its_restart_and_any_outage_are_over(
    restart_after, outage, until, restarts
):
    b = eb.Broker(seed=0)
    b.queue("jobs")
    crash = eb.Faults(crash_before_process=lambda m: True)
    b.worker("jobs", lambda msg, ctx: None, restart_after=restart_after, faults=crash)
    b.outage("jobs-1", *outage)
    b.publish("jobs", 1)
    b.run(until=until)
    assert [e.time for e in b.trace.where(kind="restart")] == restarts


# ---------------------------------------------------------------- 4, 5. errors out of handlers


def test_an_error_out_of_a_handler_leaves_no_busy_worker_and_the_next_run_is_not_quiet():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    calls = []

    def handler(msg, ctx):
        calls.append(msg.attempt)
        if len(calls) == 1:
            ctx.publish("jbos", 1)  # a typo: refused
        ctx.effect("done", n=msg.payload)

    b.worker("jobs", handler)
    b.publish("jobs", 1)
    with pytest.raises(eb.EvbrokerError, match=r"ctx\.publish: no topic or queue named 'jbos'"):
        b.run()
    assert b.stats("jobs")["pending"] == 1
    b.run()  # the copy is tried again (the handler is fixed by now): it is processed
    assert [e["n"] for e in b.effects("done")] == [1]
    assert b.stats("jobs")["pending"] == 0


def test_a_handler_still_raising_the_same_error_raises_it_again_on_the_next_run():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.publish("jbos", 1))
    b.publish("jobs", 1)
    for _ in range(2):
        with pytest.raises(eb.EvbrokerError, match="no topic or queue named 'jbos'"):
            b.run()


@pytest.mark.parametrize(
    ("call", "name"),
    [(lambda b: b.run(), "run"), (lambda b: b.publish("jobs", 2), "publish")],
)
def test_a_handler_calling_the_broker_is_told_to_use_ctx_publish(call, name):
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: call(b) if msg.payload == 1 else None)
    b.publish("jobs", 1)
    with pytest.raises(
        eb.EvbrokerError, match=rf"called b\.{name}\(\): .*Use ctx\.publish\(dest, payload, key=\.\.\.\)"
    ):
        b.run()
    assert b.now == 0
    assert len(b.trace.where(kind="publish")) == 1  # nothing escaped the commit


# ---------------------------------------------------------------- 6. async and generator handlers


async def async_handler(msg, ctx):
    ctx.effect("done")


def generator_handler(msg, ctx):
    yield ctx.effect("done")


@pytest.mark.parametrize(("handler", "kind"), [(async_handler, "async def"), (generator_handler, "generator")])
def test_async_and_generator_handlers_are_refused_at_set_up(handler, kind):
    b = eb.Broker(seed=0)
    b.queue("jobs")
    with pytest.raises(
        eb.EvbrokerError, match=f"is a{'n' if kind[0] == 'a' else ''} {kind} function: .*plain functions"
    ):
        b.worker("jobs", handler)


def test_a_coroutine_returned_at_run_time_is_refused():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: async_handler(msg, ctx))
    b.publish("jobs", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no "coroutine was never awaited"
        with pytest.raises(eb.EvbrokerError, match=r"worker 'jobs-1' on m1: handler .* async def"):
            b.run()
    assert b.stats("jobs")["processed"] == 0


# ---------------------------------------------------------------- 7. effect fields


def test_an_effect_field_called_name_is_refused_at_the_call():
    b = eb.Broker(seed=0)
    b.queue("jobs", guarantee="at-most-once")
    b.worker("jobs", lambda msg, ctx: ctx.effect("email", name="ada"))
    b.publish("jobs", 1)
    with pytest.raises(eb.EvbrokerError, match=r"ctx.effect\('email', name='ada'\): a field cannot be called 'name'"):
        b.run()


def test_an_effect_name_given_by_keyword_still_works():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect(name="email", to="ada"))
    b.publish("jobs", 1)
    b.run()
    assert b.effects("email")[0].data == {"to": "ada"}


def test_an_effect_value_with_no_stable_text_is_refused():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("saved", row=object()))
    b.publish("jobs", 1)
    with pytest.raises(
        eb.EvbrokerError, match=r"ctx.effect\('saved', row=...\): the value=<object object at .* memory address"
    ):
        b.run()


# ---------------------------------------------------------------- 8. a handler bug is the news


def buggy(msg, ctx):
    total = msg.payload["amount"] + msg.payload["tip"]  # KeyError: 'tip'
    ctx.effect("charge", total=total)


def test_a_handler_bug_warns_at_its_first_failure_with_its_own_traceback():
    b = eb.Broker(seed=0, settle_limit=5)
    b.queue("payments")
    b.worker("payments", buggy)
    b.publish("payments", {"amount": 1})
    with pytest.warns(HandlerFailed) as caught, pytest.raises(eb.EvbrokerError, match="cannot settle"):
        b.run()
    assert len(caught) == 1  # the first failure, not every redelivery
    text = str(caught[0].message)
    assert text.startswith(
        "handler buggy (worker payments-1) raised KeyError on m1 (attempt 1, queue 'payments'): 'tip'"
    )
    assert 'msg.payload["amount"] + msg.payload["tip"]' in text and ", in buggy" in text
    # The broker's story stays in the trace: five failures, each with the traceback kept.
    errors = b.trace.where(kind="handler-error")
    assert len(errors) == 5
    assert errors[0].data["error"] == "KeyError" and "in buggy" in errors[0].data["traceback"]


def test_handler_errors_raise_stops_at_the_first_failure_with_the_handler_exception_as_cause():
    b = eb.Broker(seed=0, handler_errors="raise")
    b.queue("payments")
    b.worker("payments", buggy)
    b.publish("payments", {"amount": 1})
    with pytest.raises(eb.EvbrokerError, match="raised KeyError on m1") as err:
        b.run()
    assert isinstance(err.value.__cause__, KeyError)
    assert [e.kind for e in b.trace][-1] == "handler-error"
    assert b.stats("payments")["pending"] == 1


def test_failing_on_purpose_stays_quiet():
    """A lesson's poison message: a delivery limit (or handler_errors='record') says failures
    are expected, so no warning; the trace tells the story; the notebook stays deterministic."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = eb.Broker(seed=0)
        b.queue("payments.dlq")
        b.queue("payments", max_deliveries=3, dead_letter="payments.dlq")
        b.worker("payments", buggy)
        b.publish("payments", {"amount": 1})
        b.run()
        quiet_b = quiet()
        quiet_b.queue("payments", guarantee="at-most-once")
        quiet_b.worker("payments", buggy)
        quiet_b.publish("payments", {"amount": 1})
        quiet_b.run()
    assert b.stats("payments")["dead_lettered"] == 1 and quiet_b.stats("payments")["lost"] == 1


def test_handler_errors_is_checked():
    with pytest.raises(eb.EvbrokerError, match=r"handler_errors=...\) must be one of 'warn', 'raise', 'record'"):
        eb.Broker(handler_errors="loud")


# ---------------------------------------------------------------- 9. runaway loops


def test_a_runaway_loop_is_stopped_fast_with_bounded_memory_naming_the_loop():
    b = eb.Broker(seed=0)
    b.topic("ping")
    b.topic("pong")
    b.queue("pinger", bind="pong")
    b.queue("ponger", bind="ping")
    b.worker("pinger", lambda msg, ctx: ctx.publish("ping", msg.payload + 1))
    b.worker("ponger", lambda msg, ctx: ctx.publish("pong", msg.payload + 1))
    b.publish("ping", 0)
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(eb.EvbrokerError) as err:
            b.run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.process_time() - start < 5
    assert peak < 50 * 2**20
    text = str(err.value)
    assert f"is the {MAX_CHAIN}th message in a chain" in text
    assert "ponger-1 publishes into 'pong'" in text and "pinger-1 publishes into 'ping'" in text


# ---------------------------------------------------------------- 10. dead letters, stats, backoff


def test_two_dead_letters_with_one_id_both_reach_a_shared_exactly_once_dlq():
    b = quiet()
    b.topic("orders")
    b.queue("dlq", guarantee="exactly-once")
    b.queue("billing", bind="orders", max_deliveries=1, dead_letter="dlq")
    b.queue("shipping", bind="orders", max_deliveries=1, dead_letter="dlq")
    b.worker("billing", lambda msg, ctx: 1 / 0)
    b.worker("shipping", lambda msg, ctx: 1 / 0)
    b.worker("dlq", lambda msg, ctx: ctx.effect("ticket", source=msg.topic))
    b.publish("orders", {"order": 1})
    b.run()
    assert sorted(e["source"] for e in b.effects("ticket")) == ["billing", "shipping"]
    assert b.stats("dlq")["duplicates"] == 0 and b.stats("dlq")["unique_processed"] == 2


def test_at_most_once_stats_add_up_when_a_commit_is_rolled_back():
    b = eb.Broker(seed=0)
    b.queue("jobs", guarantee="at-most-once")

    def once(msg, ctx):
        ctx.effect("done")
        ctx.remember(msg.key)

    b.worker("jobs", once, count=2)
    b.publish("jobs", 1, key="k")
    b.publish("jobs", 2, key="k")  # the same work, racing on the other worker: rolled back
    b.run()
    s = b.stats("jobs")
    assert s["copies"] == s["processed"] + s["lost"] + s["dead_lettered"] + s["pending"]
    assert s["processed"] == 1 and s["lost"] == 1


def test_an_uncapped_backoff_is_capped():
    b = quiet(settle_limit=2000)
    b.queue("jobs", retry_delay=1, retry_backoff=10, max_deliveries=400)
    b.worker("jobs", lambda msg, ctx: 1 / 0)
    b.publish("jobs", 1)
    b.run()
    waits = [e.time for e in b.trace.where(kind="redeliver")]
    gaps = [round(later - earlier - 1, 6) for earlier, later in itertools.pairwise(waits)]
    assert max(gaps) == MAX_RETRY_DELAY
    assert b.now < 400 * (MAX_RETRY_DELAY + 10)  # every ack_timeout still counts at these times
    assert b.stats("jobs")["dead_lettered"] == 1


# ---------------------------------------------------------------- 11. any real number


def test_numpy_numbers_are_accepted_where_numbers_are():
    b = eb.Broker(seed=0)
    b.queue("jobs", ack_timeout=np.float64(5.0), retry_delay=np.int64(1))
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"), service_time=np.float32(1.0))
    b.publish("jobs", 1, at=np.float64(5.0))
    b.publish("jobs", 2, at=np.int64(6))
    b.outage("jobs-1", np.int64(20), np.float64(21))
    b.run(until=np.float64(30))
    assert [e.time for e in b.effects("done")] == [6, 7]
    eb.Faults(lose_ack=np.float64(0.5), slow_by=np.int64(2))
    b.queue("more", max_deliveries=np.int64(3))
    assert b.worker("more", lambda msg, ctx: None, count=np.int64(2)) == ["more-1", "more-2"]
    eb.workflows.Service("inventory", workers=np.int64(2))


@pytest.mark.parametrize("bad", [True, float("nan"), float("inf"), np.float64("nan"), np.bool_(True)])
def test_bools_nan_and_infinities_are_refused(bad):
    b = eb.Broker(seed=0)
    b.queue("jobs")
    with pytest.raises(eb.EvbrokerError, match="publish: at must be a"):
        b.publish("jobs", 1, at=bad)
    with pytest.raises(eb.EvbrokerError, match=r"Faults\(lose_ack=...\) must be a probability"):
        eb.Faults(lose_ack=bad)


# ---------------------------------------------------------------- raw Python exceptions -> errors that teach


def test_a_misspelt_queue_keyword_gets_a_did_you_mean():
    b = eb.Broker(seed=0)
    with pytest.raises(eb.EvbrokerError, match=r"^queue\(\) got max_delivery=..., .*did you mean 'max_deliveries'\?"):
        b.queue("jobs", max_delivery=3)
    b.queue("jobs")
    with pytest.raises(eb.EvbrokerError, match=r"^worker\(\) got servicetime=..., .*did you mean 'service_time'\?"):
        b.worker("jobs", lambda msg, ctx: None, servicetime=2)


def test_a_service_time_callable_that_raises_names_worker_message_and_callable():
    def slow_for_big(msg):
        return 3 if msg.payload["size"] == "big" else 1

    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None, service_time=slow_for_big)
    b.publish("jobs", {"weight": 2})
    with pytest.raises(
        eb.EvbrokerError, match=r"^worker 'jobs-1': service_time slow_for_big\(msg\) raised KeyError: 'size' on m1"
    ):
        b.run()


def test_a_fault_predicate_that_raises_names_worker_message_and_predicate():
    def first_big(msg):
        return msg.payload["size"] == "big"

    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None, faults=eb.Faults(lose_ack=first_big))
    b.publish("jobs", {"weight": 2})
    with pytest.raises(
        eb.EvbrokerError,
        match=r"^worker jobs-1: the predicate Faults\(lose_ack=...\) \(first_big\) raised KeyError: 'size' on m1",
    ):
        b.run()


def test_a_fault_predicate_with_the_wrong_parameters_is_refused_at_set_up():
    with pytest.raises(eb.EvbrokerError, match=r"Faults\(lose_ack=...\): the predicate must take 1 argument"):
        eb.Faults(lose_ack=lambda msg, ctx: True)


def test_trace_where_msg_must_be_message_ids():
    b = eb.Broker(seed=0)
    with pytest.raises(eb.EvbrokerError, match=r"trace.where\(msg=...\) takes message ids such as 'm1' \(got 1\)"):
        b.trace.where(msg=1)


# ---------------------------------------------------------------- silently accepted -> refused or warned


def test_faults_by_position_are_refused():
    with pytest.raises(eb.EvbrokerError, match=r"Faults\(\) takes names, not positions: Faults\(0.5\)"):
        eb.Faults(0.5)


def test_worker_faults_given_only_to_publish_are_refused_when_the_run_starts():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None)
    b.publish("jobs", 1, faults=eb.Faults(crash_before_ack=0.3))
    with pytest.raises(eb.EvbrokerError, match=r"publish: faults=.* has worker faults \(crash_before_ack\)"):
        b.run()


def test_one_scenario_faults_may_go_to_the_workers_and_the_publishes():
    """eb.explore hands one Faults to a build; the build gives it to its workers and publishes."""
    faults = eb.Faults(crash_before_ack=lambda m: m.attempt == 1, lose_confirm=lambda m: m.attempt == 1)
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.publish("jobs", 1, faults=faults)  # before the worker exists: checked at run()
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"), faults=faults)
    b.publish("jobs", 2, faults=eb.Faults(lose_confirm=0.3))
    b.run()
    assert len(b.effects("done")) >= 2


@pytest.mark.parametrize("setting", [{"max_deliveries": 3}, {"dead_letter": "dlq"}])
def test_delivery_limits_on_an_at_most_once_queue_are_refused(setting):
    b = eb.Broker(seed=0)
    b.queue("dlq")
    with pytest.raises(eb.EvbrokerError, match=f"{next(iter(setting))}= has no effect on an at-most-once queue"):
        b.queue("jobs", guarantee="at-most-once", **setting)


def test_an_outage_before_its_workers_exist_is_refused():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    with pytest.raises(eb.EvbrokerError, match="outage: queue 'jobs' has no workers yet"):
        b.outage("jobs", 1, 2)


def test_a_guarantee_in_capitals_suggests_the_lower_case_name():
    b = eb.Broker(seed=0)
    with pytest.raises(eb.EvbrokerError, match=re.escape("did you mean 'at-least-once' (names are lower-case)?")):
        b.queue("jobs", guarantee="AT-LEAST-ONCE")


def test_a_guarantee_passed_by_position_is_refused():
    b = eb.Broker(seed=0)
    b.topic("orders")
    with pytest.raises(
        eb.EvbrokerError, match=re.escape("a guarantee is given by name: b.queue('jobs', guarantee='at-most-once')")
    ):
        b.queue("jobs", "at-most-once")
    with pytest.raises(eb.EvbrokerError, match=r"queue\(\) takes name, bind by position; .*guarantee='at-most-once'"):
        b.queue("jobs", "orders", "at-most-once")


def test_effects_with_a_misspelt_name_warn_with_a_did_you_mean():
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("charge", amount=1))
    b.publish("jobs", 1)
    b.run()
    with pytest.warns(EffectNameWarning, match=r"b.effects\('chrage'\): .*did you mean b.effects\('charge'\)"):
        assert b.effects("chrage") == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert b.effects("refund") == []  # nothing close: an empty list, quietly


@pytest.mark.parametrize(
    "handler",
    [lambda msg, ctx: ctx.seen(["order", 1]), lambda msg, ctx: ctx.publish("jobs", 2, key={"order": 1})],
)
def test_unhashable_keys_are_refused_at_the_call(handler):
    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", handler)
    b.publish("jobs", 1)
    with pytest.raises(eb.EvbrokerError, match="needs a hashable key"):
        b.run()
    assert b.stats("jobs")["deliveries"] == 1  # at the call, not after a hundred deliveries
    with pytest.raises(eb.EvbrokerError, match=r"publish\(\.\.\., key=\.\.\.\) needs a hashable key"):
        b.publish("jobs", 1, key=["order", 1])


def test_a_run_that_publishes_more_than_it_consumes_is_stopped_fast_naming_the_publisher():
    """Each message publishes two: the chain stays short but the pile doubles. The run is
    stopped after a few looks at the backlog, not after max_events."""
    b = eb.Broker(seed=0)
    b.queue("echo")
    b.worker("echo", lambda msg, ctx: [ctx.publish("echo", 0), ctx.publish("echo", 1)], service_time=0.001)
    b.publish("echo", 0)
    start = time.process_time()
    with pytest.raises(
        eb.EvbrokerError,
        match=r"^runaway run: after \d+ events .* worker echo-1 \(handler <lambda>\) published into 'echo'",
    ):
        b.run()
    assert time.process_time() - start < 10
    assert len(b.trace) < 3_000_000  # bounded: max_events (5,000,000 events) would be 30,000,000 rows


def test_a_service_time_or_predicate_error_leaves_no_busy_worker():
    calls = []

    def service_time(msg):
        calls.append(msg.attempt)
        if len(calls) == 1:
            raise ValueError("not yet")
        return 1

    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: ctx.effect("done"), service_time=service_time)
    b.publish("jobs", 1)
    with pytest.raises(eb.EvbrokerError, match="service_time service_time"):
        b.run()
    b.run()  # the worker is free again and the copy is tried again
    assert len(b.effects("done")) == 1 and b.stats("jobs")["pending"] == 0


def test_an_interrupted_handler_leaves_the_broker_usable():
    def handler(msg, ctx):
        if msg.attempt == 1:
            raise KeyboardInterrupt
        ctx.effect("done")

    b = eb.Broker(seed=0)
    b.queue("jobs")
    b.worker("jobs", handler)
    b.publish("jobs", 1)
    with pytest.raises(KeyboardInterrupt):
        b.run()
    b.run()  # not refused as "a handler called b.run()"
    assert len(b.effects("done")) == 1
