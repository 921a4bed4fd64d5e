"""Pub/sub: a topic copies every message into every queue bound to it.

Subscribers do not compete for an event: each bound queue gets its own copy and works
through it at its own pace. Stacking the two shapes is what real systems do: a topic fans
an event out to one queue per service, and each queue spreads its copies over that
service's workers.
"""

import evbroker as eb


def test_one_signup_is_copied_to_email_billing_and_analytics():
    """The seed scenario: one ``user.signed_up`` event, three independent copies.

    The topic routes a copy into each bound queue (in binding order); each service's worker
    gets its own copy of m1 at t=0 and reacts in parallel, none waiting for another.
    """
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    for service in ("email", "billing", "analytics"):
        b.queue(service, bind="user.signed_up")
        b.worker(service, lambda msg, ctx: ctx.effect("reacted", user=msg.payload["user"]))
    b.publish("user.signed_up", {"user": "ada"})
    b.run()

    assert [(e.time, e.kind, e.actor, e.msg, e.to) for e in b.trace.where(kind=("publish", "route", "deliver"))] == [
        (0, "publish", "producer", "m1", "user.signed_up"),
        (0, "route", "user.signed_up", "m1", "email"),
        (0, "deliver", "email", "m1", "email-1"),
        (0, "route", "user.signed_up", "m1", "billing"),
        (0, "deliver", "billing", "m1", "billing-1"),
        (0, "route", "user.signed_up", "m1", "analytics"),
        (0, "deliver", "analytics", "m1", "analytics-1"),
    ]
    assert [(e.time, e.worker, e.queue, e.msg, e.data) for e in b.effects("reacted")] == [
        (1, "email-1", "email", "m1", {"user": "ada"}),
        (1, "billing-1", "billing", "m1", {"user": "ada"}),
        (1, "analytics-1", "analytics", "m1", {"user": "ada"}),
    ]
    for service in ("email", "billing", "analytics"):
        assert b.stats(service)["copies"] == 1
        assert b.stats(service)["processed"] == 1


def test_stacked_fan_out_two_billing_workers_process_every_event_once_between_them():
    """The seed's stacking: the topic fans out to one queue per service; the billing queue
    spreads its copies over two billing workers. Every event is processed once by email and
    once by billing, and the two billing workers share the billing copies (m1, m3 / m2, m4).
    """
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    b.queue("email", bind="user.signed_up")
    b.queue("billing", bind="user.signed_up")
    b.worker("email", lambda msg, ctx: ctx.effect("welcome", user=msg.payload))
    b.worker("billing", lambda msg, ctx: ctx.effect("invoice", user=msg.payload), count=2)
    users = ["ada", "bob", "cy", "dee"]
    for user in users:
        b.publish("user.signed_up", user)
    b.run()

    assert [(e.msg, e.data["user"]) for e in b.effects("welcome")] == [
        ("m1", "ada"),
        ("m2", "bob"),
        ("m3", "cy"),
        ("m4", "dee"),
    ]
    billing = {e.worker: [] for e in b.effects("invoice")}
    for e in b.effects("invoice"):
        billing[e.worker].append(e.msg)
    assert billing == {"billing-1": ["m1", "m3"], "billing-2": ["m2", "m4"]}
    assert sorted(e.data["user"] for e in b.effects("invoice")) == sorted(users)
    # Email has one worker: four seconds of work. Billing has two: two seconds.
    assert [e.time for e in b.effects("welcome")] == [1, 2, 3, 4]
    assert [e.time for e in b.effects("invoice")] == [1, 1, 2, 2]
    assert b.stats("billing")["duplicates"] == 0 and b.stats("email")["duplicates"] == 0


def test_a_topic_with_no_bound_queue_drops_the_message_and_says_so():
    """Unroutable: with nobody bound, the broker records the publish and drops it, as a
    RabbitMQ exchange does with no matching binding (and no alternate exchange)."""
    b = eb.Broker(seed=0)
    b.topic("audit")
    b.publish("audit", "x")
    b.run()
    assert [(e.kind, e.actor, e.msg, e.detail) for e in b.trace] == [
        ("publish", "producer", "m1", ""),
        ("unroutable", "audit", "m1", "no queue is bound to this topic"),
    ]


def test_a_queue_bound_later_only_sees_messages_published_after_it_was_bound():
    """Bindings are not retroactive: m1 was unroutable; m2, published after ``bind``, is routed."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.queue("audit")
    b.worker("audit", lambda msg, ctx: ctx.effect("seen"))
    b.publish("orders", 1)
    b.run()
    b.bind("audit", "orders")
    b.publish("orders", 2)
    b.run()
    assert [(e.kind, e.msg) for e in b.trace.where(kind=("unroutable", "route"))] == [
        ("unroutable", "m1"),
        ("route", "m2"),
    ]
    assert [e.msg for e in b.effects("seen")] == ["m2"]


def test_a_queue_bound_to_several_topics_gets_copies_from_each():
    """``bind`` takes a list: the audit queue hears about orders and refunds alike; the
    message's ``topic`` says where each copy came from."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.topic("refunds")
    b.queue("audit", bind=["orders", "refunds"])
    seen = []
    b.worker("audit", lambda msg, ctx: seen.append((msg.id, msg.topic, msg.queue)))
    b.publish("orders", 1)
    b.publish("refunds", 2)
    b.run()
    assert seen == [("m1", "orders", "audit"), ("m2", "refunds", "audit")]


def test_binding_twice_does_not_double_the_copies():
    """A queue bound twice to one topic still gets one copy per message."""
    b = eb.Broker(seed=0)
    b.topic("orders")
    b.queue("audit", bind=["orders", "orders"])
    b.bind("audit", "orders")
    b.publish("orders", 1)
    b.run()
    assert b.stats("audit")["copies"] == 1


def test_each_subscriber_keeps_its_own_pace():
    """A slow subscriber does not hold back a fast one: their copies are independent."""
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    b.queue("email", bind="user.signed_up")
    b.queue("analytics", bind="user.signed_up")
    b.worker("email", lambda msg, ctx: ctx.effect("sent"), service_time=0.5)
    b.worker("analytics", lambda msg, ctx: ctx.effect("counted"), service_time=3.0, name="batch")
    b.publish("user.signed_up", "ada")
    b.publish("user.signed_up", "bob")
    b.run()
    assert [(e.time, e.name, e.msg) for e in b.effects()] == [
        (0.5, "sent", "m1"),
        (1.0, "sent", "m2"),
        (3.0, "counted", "m1"),
        (6.0, "counted", "m2"),
    ]


def test_a_handler_publication_fans_out_like_any_other():
    """Choreography in one line: billing reacts to a signup by publishing ``invoice.sent``,
    which the topic copies to every queue bound to it. The handler is the producer."""
    b = eb.Broker(seed=0)
    b.topic("user.signed_up")
    b.topic("invoice.sent")
    b.queue("billing", bind="user.signed_up")
    b.queue("email", bind="invoice.sent")
    b.queue("ledger", bind="invoice.sent")
    b.worker("billing", lambda msg, ctx: ctx.publish("invoice.sent", {"user": msg.payload}, key=msg.key))
    b.worker("email", lambda msg, ctx: ctx.effect("mailed", key=msg.key))
    b.worker("ledger", lambda msg, ctx: ctx.effect("booked", key=msg.key))
    b.publish("user.signed_up", "ada", key="u-1")
    b.run()
    assert [(e.time, e.kind, e.actor, e.msg, e.to) for e in b.trace.where(kind=("publish", "route"))] == [
        (0, "publish", "producer", "m1", "user.signed_up"),
        (0, "route", "user.signed_up", "m1", "billing"),
        (1, "publish", "billing-1", "m2", "invoice.sent"),
        (1, "route", "invoice.sent", "m2", "email"),
        (1, "route", "invoice.sent", "m2", "ledger"),
    ]
    assert [(e.time, e.name, e.msg, e.key) for e in b.effects()] == [
        (2, "mailed", "m2", "u-1"),
        (2, "booked", "m2", "u-1"),
    ]
