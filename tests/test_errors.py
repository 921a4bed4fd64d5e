"""Errors that teach: every mistake is caught at set-up, and the message says what was
wrong, what would have been right, and how to fix it.

Each test checks the whole message a learner would read, so a message cannot quietly lose
the value it names, its did-you-mean or its fix. (Runs that cannot settle and runaway
publishing are in test_run.py; unknown trace kinds and actors in test_trace.py.)
"""

import re

import pytest

import evbroker as eb


@pytest.fixture
def b():
    """A signup topic, a billing queue bound to it, one billing worker."""
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    b.queue("billing", bind="user.signed_up")
    b.worker("billing", lambda msg, ctx: None)
    return b


def raises(message):
    """Expect an EvbrokerError whose text is exactly ``message``."""
    return pytest.raises(eb.EvbrokerError, match=f"^{re.escape(message)}$")


# ---------------------------------------------------------------- names


def test_unknown_destination_suggests_the_close_name(b):
    with raises(
        "publish: no topic or queue named 'user.signedup'; did you mean 'user.signed_up'? "
        "Known: user.signed_up, billing; or declare it with b.topic('user.signedup') or b.queue('user.signedup')"
    ):
        b.publish("user.signedup", {"user": "ada"})


def test_unknown_destination_with_nothing_close_lists_what_exists(b):
    with raises(
        "publish: no topic or queue named 'shipping'. Known: user.signed_up, billing; "
        "declare it with b.topic('shipping') or b.queue('shipping')"
    ):
        b.publish("shipping", 1)


def test_a_handler_publishing_to_an_unknown_destination_is_told_the_same():
    b = eb.Broker(seed=0)
    b.queue("orders")
    b.worker("orders", lambda msg, ctx: ctx.publish("order", 1))
    b.publish("orders", 1)
    with raises(
        "ctx.publish: no topic or queue named 'order'; did you mean 'orders'? Known: orders; "
        "or declare it with b.topic('order') or b.queue('order')"
    ):
        b.run()


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda b: b.topic("billing"),
            "topic name 'billing' is already used by a queue; names are shared by topics, queues and workers, "
            "so pick another, e.g. 'billing-2'",
        ),
        (
            lambda b: b.queue("user.signed_up"),
            "queue name 'user.signed_up' is already used by a topic; names are shared by topics, queues and "
            "workers, so pick another, e.g. 'user.signed_up-2'",
        ),
        (
            lambda b: b.worker("billing", lambda m, c: None, name="billing-1"),
            "worker name 'billing-1' is already used by a worker; names are shared by topics, queues and workers, "
            "so pick another, e.g. 'billing-1-2'",
        ),
    ],
)
def test_duplicate_names_are_refused(b, declare, message):
    with raises(message):
        declare(b)


def test_a_duplicate_among_several_new_workers_adds_none_of_them(b):
    """``count=3`` would need billing-2, billing-3, billing-4; billing-3 is taken, so no worker
    is added at all (not two of three)."""
    b.queue("billing-3")
    with raises(
        "worker name 'billing-3' is already used by a queue; names are shared by topics, queues and workers, "
        "so pick another, e.g. 'billing-3-2'"
    ):
        b.worker("billing", lambda m, c: None, count=3)
    assert b.workers == ["billing-1"]


@pytest.mark.parametrize("name", ["", "   ", 5, None])
def test_names_must_be_non_empty_strings(name):
    with raises(f"topic name must be a non-empty string such as 'billing' (got {name!r})"):
        eb.Broker().topic(name)


# ---------------------------------------------------------------- queues and bindings


def test_a_misspelt_guarantee_gets_a_did_you_mean(b):
    with raises(
        "guarantee must be one of 'at-most-once', 'at-least-once', 'exactly-once' (got 'at-least-one'); "
        "did you mean 'at-least-once'?"
    ):
        b.queue("payments", guarantee="at-least-one")


def test_a_guarantee_far_from_any_lists_the_allowed_ones(b):
    with raises("guarantee must be one of 'at-most-once', 'at-least-once', 'exactly-once' (got 'best-effort')"):
        b.queue("payments", guarantee="best-effort")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "a number > 0 (got 0)"),
        (-1, "a number > 0 (got -1)"),
        (float("nan"), "a finite number > 0 (got nan)"),
        ("5", "a number > 0 (got '5')"),
    ],
)
def test_ack_timeout_must_be_a_positive_number(b, value, shown):
    with raises(
        f"queue 'payments': ack_timeout must be {shown}; it is how long the broker waits for an ack before redelivering"
    ):
        b.queue("payments", ack_timeout=value)


@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_max_deliveries_must_be_none_or_a_whole_number(b, value):
    with raises(
        f"queue 'payments': max_deliveries must be None (retry forever) or a whole number >= 1 (got {value!r}); "
        "e.g. max_deliveries=3"
    ):
        b.queue("payments", max_deliveries=value)


def test_retry_delay_and_backoff_are_checked(b):
    with raises("queue 'payments': retry_delay must be a number >= 0 (got -1); 0 puts a failed copy back at once"):
        b.queue("payments", retry_delay=-1)
    with raises(
        "queue 'payments': retry_backoff must be a number > 0 (got 0); "
        "1 keeps the delay fixed, 2 doubles it after each failure"
    ):
        b.queue("payments", retry_backoff=0)


def test_binding_to_a_missing_topic_suggests_the_close_one(b):
    with raises(
        "queue 'email': bind: no topic named 'user.signedup'; did you mean 'user.signed_up'? Topics: user.signed_up; "
        "or declare it first with b.topic('user.signedup')"
    ):
        b.queue("email", bind="user.signedup")
    assert "email" not in b.queues  # nothing half-declared


def test_binding_to_a_missing_topic_says_how_to_declare_it():
    b = eb.Broker()
    b.queue("email")
    with raises(
        "bind('email', ...): no topic named 'orders'. Topics: (none yet); declare it first with b.topic('orders')"
    ):
        b.bind("email", "orders")


def test_binding_a_queue_to_a_queue_explains_the_shapes(b):
    with raises(
        "queue 'audit': bind: 'billing' is a queue, not a topic; queues bind to topics (a queue gets a copy of "
        "what is published to the topics it is bound to). Topics: user.signed_up"
    ):
        b.queue("audit", bind=["user.signed_up", "billing"])


def test_bind_must_be_names(b):
    with raises(
        "queue 'audit': bind must be None, a topic name or a list of topic names (got 5); "
        "e.g. bind='user.signed_up' or bind=['orders', 'refunds']"
    ):
        b.queue("audit", bind=5)


def test_a_dead_letter_queue_must_exist_first(b):
    with raises("queue 'payments': dead_letter='parking' is not a queue; declare it first with b.queue('parking')"):
        b.queue("payments", dead_letter="parking")


# ---------------------------------------------------------------- workers and handlers


def test_a_worker_on_a_misspelt_queue_gets_a_did_you_mean(b):
    with raises(
        "worker: no queue named 'biling'; did you mean 'billing'? Queues: billing; or declare it with b.queue('biling')"
    ):
        b.worker("biling", lambda msg, ctx: None)


def test_a_worker_on_a_topic_is_shown_the_queue_in_between(b):
    with raises(
        "worker: 'user.signed_up' is a topic, not a queue; workers read from a queue bound to it, e.g. "
        "b.queue('email', bind='user.signed_up') then b.worker('email', handler). Queues: billing"
    ):
        b.worker("user.signed_up", lambda msg, ctx: None)


def test_a_handler_that_was_called_instead_of_passed(b):
    def handle(msg, ctx):
        return None

    with raises(
        "worker 'billing': handler must be a function handler(msg, ctx) (got None); "
        "define def handle(msg, ctx): ... and pass handle, without calling it"
    ):
        b.worker("billing", handle(None, None))


@pytest.mark.parametrize(
    ("handler", "shown"),
    [(lambda msg: None, "<lambda>(msg)"), (lambda msg, ctx, retries: None, "<lambda>(msg, ctx, retries)")],
)
def test_a_handler_with_the_wrong_arguments(b, handler, shown):
    with raises(f"worker 'billing': handler must take 2 arguments: handler(msg, ctx) (got {shown})"):
        b.worker("billing", handler)


def test_handlers_with_defaults_or_star_args_are_fine(b):
    assert b.worker("billing", lambda msg, ctx, extra=1: None) == ["billing-2"]
    assert b.worker("billing", lambda *args: None) == ["billing-3"]


@pytest.mark.parametrize("count", [0, -1, 2.0, True])
def test_worker_count_must_be_a_whole_number(b, count):
    with raises(f"worker 'billing': count must be a whole number >= 1 (got {count!r})"):
        b.worker("billing", lambda msg, ctx: None, count=count)


@pytest.mark.parametrize("value", [0, -1.5])
def test_service_time_must_be_positive(b, value):
    with raises(
        f"worker 'billing': service_time must be a number > 0 (got {value!r}); "
        "it is how long one message takes to process"
    ):
        b.worker("billing", lambda msg, ctx: None, service_time=value)


def test_a_service_time_function_takes_the_message(b):
    with raises("worker 'billing': service_time must take 1 argument: service_time(msg) -> float (got <lambda>())"):
        b.worker("billing", lambda msg, ctx: None, service_time=lambda: 1.0)


def test_a_service_time_function_that_returns_nonsense_is_caught_when_called():
    b = eb.Broker()
    b.queue("jobs")
    b.worker("jobs", lambda msg, ctx: None, service_time=lambda m: -1)
    b.publish("jobs", 1)
    with raises(
        "worker 'jobs-1': service_time(msg) for m1 must be a number > 0 (got -1); "
        "the service_time callable must return how long this message takes"
    ):
        b.run()


def test_restart_after_name_and_faults_are_checked(b):
    with raises(
        "worker 'billing': restart_after must be a number > 0 (got -2); it is how long a crashed worker stays down"
    ):
        b.worker("billing", lambda msg, ctx: None, restart_after=-2)
    with raises("worker 'billing': name must be a non-empty string (got '')"):
        b.worker("billing", lambda msg, ctx: None, name="")
    with raises("worker 'billing': faults must be eb.Faults(...) or None (got {'lose_ack': 0.1})"):
        b.worker("billing", lambda msg, ctx: None, faults={"lose_ack": 0.1})


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("value", [1.5, -0.1, True, "often"])
def test_a_fault_probability_must_be_between_0_and_1(value):
    with raises(
        f"Faults(lose_ack=...) must be a probability between 0 and 1 or a predicate callable(msg) -> bool "
        f"(got {value!r}); e.g. lose_ack=0.2 or lose_ack=lambda m: m.id == 'm1'"
    ):
        eb.Faults(lose_ack=value)


def test_a_misspelt_fault_gets_a_did_you_mean():
    with raises(
        "Faults() got crash_before_acks=..., but there is no such field; did you mean 'crash_before_ack'? "
        "(fields: crash_before_process, crash_during_process, crash_before_ack, lose_ack, lose_delivery, slow, "
        "slow_by, lose_confirm, retry_after)"
    ):
        eb.Faults(crash_before_acks=0.5)


def test_fault_durations_must_be_positive():
    with raises("Faults(slow_by=...) must be a number > 0 (got 0); it is how much longer a slow worker takes"):
        eb.Faults(slow_by=0)
    with raises(
        "Faults(retry_after=...) must be a number > 0 (got -1); "
        "it is how long a producer waits for a confirmation before retrying"
    ):
        eb.Faults(retry_after=-1)


# ---------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("at", "message"),
    [
        (-1, "publish: at must be a number >= 0 (got -1)"),
        (float("nan"), "publish: at must be a finite number >= 0 (got nan)"),
        (float("inf"), "publish: at must be a finite number >= 0 (got inf)"),
        ("soon", "publish: at must be a number >= 0 (got 'soon')"),
    ],
)
def test_publish_at_must_be_a_time(b, at, message):
    with raises(message):
        b.publish("billing", 1, at=at)


def test_publishing_into_the_past_is_refused(b):
    b.run(until=5)
    with raises("publish: at=2 is in the past (now is 5); use at >= 5, or at=None for now"):
        b.publish("billing", 1, at=2)


def test_running_until_the_past_is_refused(b):
    b.run(until=5)
    with raises("run: until=4 is in the past (now is 5); use until >= 5"):
        b.run(until=4)
    with raises("run: until must be a number >= 0 (got -1)"):
        b.run(until=-1)


def test_outages_are_checked(b):
    with raises("outage: 'biling-1' is neither a worker nor a queue; did you mean 'billing-1'?; workers are billing-1"):
        b.outage("biling-1", 1, 2)
    with raises("outage: end=2 must be after start=3; the worker is down from start to end"):
        b.outage("billing-1", 3, 2)
    with raises("outage: start must be a number >= 0 (got -1)"):
        b.outage("billing-1", -1, 2)
    b.run(until=5)
    with raises("outage: start=4 is in the past (now is 5); use start >= 5"):
        b.outage("billing", 4, 6)


# ---------------------------------------------------------------- the rest of the surface


def test_publish_by_and_faults_are_checked(b):
    with raises("publish: by must be a producer name such as 'orders' (got '')"):
        b.publish("billing", 1, by="")
    with raises("publish: faults must be eb.Faults(...) or None (got 0.5)"):
        b.publish("billing", 1, faults=0.5)


def test_broker_settings_are_checked():
    with raises("seed must be an int such as 0 or 42 (got '0')"):
        eb.Broker(seed="0")
    with raises("settle_limit must be a whole number >= 1 (got 0)"):
        eb.Broker(settle_limit=0)
    with raises("max_events must be a whole number >= 1 (got -1)"):
        eb.Broker(max_events=-1)


def test_reading_results_of_an_unknown_queue(b):
    with raises(
        "stats: no queue named 'biling'; did you mean 'billing'? Queues: billing; or declare it with b.queue('biling')"
    ):
        b.stats("biling")
    with raises(
        "dead_letters: 'user.signed_up' is a topic, not a queue; workers read from a queue bound to it, e.g. "
        "b.queue('email', bind='user.signed_up') then b.worker('email', handler). Queues: billing"
    ):
        b.dead_letters("user.signed_up")


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (lambda msg, ctx: ctx.effect(""), "ctx.effect needs a non-empty name such as 'charge' (got '')"),
        (
            lambda msg, ctx: ctx.remember("k", when="before-ack"),
            "ctx.remember(..., when=...) must be one of 'commit', 'start', 'after-ack', 'claim' (got 'before-ack'); "
            "did you mean 'after-ack'?",
        ),
        (
            lambda msg, ctx: ctx.remember(["order-7"]),
            "ctx.remember needs a hashable key such as a string or a tuple (got ['order-7']); "
            "use e.g. msg.key or msg.payload['order']",
        ),
    ],
)
def test_context_misuse_inside_a_handler_stops_the_run(handler, message):
    b = eb.Broker()
    b.queue("jobs")
    b.worker("jobs", handler)
    b.publish("jobs", 1)
    with raises(message):
        b.run()


def test_every_error_is_an_evbroker_error_and_a_plain_exception():
    assert issubclass(eb.EvbrokerError, Exception)
    with pytest.raises(Exception, match="guarantee must be one of"):
        eb.Broker().queue("q", guarantee="twice")
