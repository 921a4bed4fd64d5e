"""Choreography helpers on a small sign-up flow: each service holds only its own rules.

user.signed_up -> [accounts] create -> account.created -> [billing] start trial -> trial.started -> [email]
                                                              \\-> trial.refused -> [accounts] close
"""

import pytest

import evbroker as eb
from evbroker.workflows import Choreography, Reject, Service


def signup_flow():
    accounts, billing, email = Service("accounts"), Service("billing"), Service("email")

    @accounts.on("user.signed_up", emits="account.created")
    def create(user, ctx):
        ctx.effect("account", user=user["user"])
        return {"account": f"acct-{user['user']}"}

    @billing.on("account.created", emits="trial.started", on_reject="trial.refused")
    def start_trial(user, ctx):
        if user.get("country") == "nowhere":
            raise Reject("no plans sold there")
        ctx.effect("trial", account=user["account"])

    @accounts.on("trial.refused", undoes="create")
    def close(user, ctx):
        ctx.effect("closed", account=user["account"], reason=user["reason"])

    @email.on("trial.started")
    def welcome(user, ctx):
        ctx.effect("welcome", user=user["user"])

    return Choreography("signup", [accounts, billing, email], starts_on="user.signed_up")


def run_flow(flow, users, faults=None, seed=0):
    b = eb.Broker(seed=seed)
    flow.install(b, faults=faults)
    for i, (user, country) in enumerate(users):
        flow.start(b, user, {"user": user, "country": country}, at=float(i))
    b.run()
    return b


def test_the_flow_emerges_from_each_services_rules():
    b = run_flow(signup_flow(), [("ada", "fr")])
    assert [e.name for e in b.effects()] == ["account", "trial", "welcome"]
    assert [e.to for e in b.trace.where(kind="publish")] == ["user.signed_up", "account.created", "trial.started"]
    # The data travels with the events: billing saw the account id accounts returned.
    assert b.effects("trial")[0].data == {"account": "acct-ada"}


def test_failure_handling_is_choreographed_too():
    b = run_flow(signup_flow(), [("bob", "nowhere")])
    assert [e.name for e in b.effects()] == ["account", "rejected", "closed"]
    assert b.effects("rejected")[0].data == {"action": "start_trial", "reason": "no plans sold there"}
    assert b.effects("closed")[0].data == {"account": "acct-bob", "reason": "no plans sold there"}
    assert [e.to for e in b.trace.where(kind="publish")] == ["user.signed_up", "account.created", "trial.refused"]


def test_install_declares_topics_and_binds_each_service_to_what_it_hears():
    flow = signup_flow()
    b = eb.Broker()
    flow.install(b)
    assert set(b.topics) == {"user.signed_up", "account.created", "trial.started", "trial.refused"}
    assert b.queues == ["accounts", "billing", "email"]
    assert flow.events == ("user.signed_up", "account.created", "trial.started", "trial.refused")


def test_each_service_holds_only_its_own_rules():
    assert signup_flow().rules() == {
        "accounts": ["on user.signed_up: create, then emit account.created", "on trial.refused: close"],
        "billing": ["on account.created: start_trial, then emit trial.started; if rejected, emit trial.refused"],
        "email": ["on trial.started: welcome"],
    }


def test_a_retried_publish_under_a_new_id_is_deduped_by_business_key():
    """The sign-up is published twice (its confirmation was lost): two message ids, one key."""
    flow = signup_flow()
    b = eb.Broker(seed=0)
    flow.install(b)
    b.publish("user.signed_up", {"user": "ada", "country": "fr"}, key="ada", faults=eb.Faults(lose_confirm=1.0))
    b.run()
    assert len(b.trace.where(kind="publish", actor="producer")) == 4  # the first and 3 retries
    assert [e.name for e in b.effects()] == ["account", "trial", "welcome"]


def test_two_events_asking_for_the_same_action_do_it_once():
    """A reaction's dedupe key is (business key, action): two events that both mean 'release'
    release once."""
    stock = Service("stock")
    stock.on("order.placed", lambda d, ctx: ctx.effect("reserved"), action="reserve")
    stock.on("payment.failed", lambda d, ctx: ctx.effect("released"), action="release", undoes="reserve")
    stock.on("order.cancelled", lambda d, ctx: ctx.effect("released"), action="release", undoes="reserve")
    flow = Choreography("stock", [stock], starts_on=["order.placed", "payment.failed", "order.cancelled"])
    b = eb.Broker()
    flow.install(b)
    flow.start(b, "order-1", {}, at=0.0)
    flow.start(b, "order-1", {}, event="payment.failed", at=5.0)
    flow.start(b, "order-1", {}, event="order.cancelled", at=10.0)
    b.run()
    assert [e.name for e in b.effects()] == ["reserved", "released"]


def test_a_compensating_reaction_with_nothing_to_undo_does_nothing():
    stock = Service("stock")
    stock.on("order.placed", lambda d, ctx: ctx.effect("reserved"), action="reserve")
    stock.on("payment.failed", lambda d, ctx: ctx.effect("released"), action="release", undoes="reserve")
    flow = Choreography("stock", [stock], starts_on=["order.placed", "payment.failed"])
    b = eb.Broker()
    flow.install(b)
    flow.start(b, "order-9", {}, event="payment.failed")
    b.run()
    assert [(e.name, e.data) for e in b.effects()] == [
        ("skipped", {"action": "release", "reason": "nothing to undo: reserve never happened"})
    ]


@pytest.mark.parametrize("seed", range(5))
def test_faults_on_every_service_leave_one_of_each_effect(seed):
    faults = eb.Faults(crash_before_ack=0.4, lose_ack=0.3, crash_during_process=0.2, lose_confirm=0.3)
    b = run_flow(signup_flow(), [("ada", "fr"), ("bob", "nowhere"), ("cy", "de")], faults=faults, seed=seed)
    assert b.trace.where(kind="redeliver")
    by_key = {}
    for e in b.effects():
        by_key.setdefault(e.key, []).append(e.name)
    assert by_key == {
        "ada": ["account", "trial", "welcome"],
        "bob": ["account", "rejected", "closed"],
        "cy": ["account", "trial", "welcome"],
    }


# ---------------------------------------------------------------------- declarations


def test_reacting_to_an_event_nobody_emits_is_refused():
    accounts, billing = Service("accounts"), Service("billing")
    accounts.on("user.signed_up", lambda d, ctx: None, action="create", emits="account.created")
    billing.on("acount.created", lambda d, ctx: None, action="bill")
    with pytest.raises(
        eb.EvbrokerError,
        match=r"reacts to 'acount.created', which no service emits.*"
        r"did you mean 'account.created'",
    ):
        Choreography("signup", [accounts, billing], starts_on="user.signed_up")


def test_a_service_that_reacts_to_nothing_is_refused():
    idle = Service("idle")
    idle.command("do", lambda d, ctx: None)
    with pytest.raises(eb.EvbrokerError, match=r"service 'idle' reacts to nothing"):
        Choreography("x", [idle], starts_on="go")


@pytest.mark.parametrize("starts_on", [None, "", []])
def test_a_choreography_needs_start_events(starts_on):
    svc = Service("svc")
    svc.on("go", lambda d, ctx: None, action="go")
    with pytest.raises(eb.EvbrokerError, match=r"starts_on must name the event"):
        Choreography("x", [svc], starts_on=starts_on)


def test_reaction_declarations_are_checked():
    svc = Service("svc")
    svc.on("go", lambda d, ctx: None, action="go")
    with pytest.raises(eb.EvbrokerError, match=r"already reacts to 'go'"):
        svc.on("go", lambda d, ctx: None, action="again")
    with pytest.raises(eb.EvbrokerError, match=r"emits the event it reacts to"):
        svc.on("loop", lambda d, ctx: None, action="loop", emits="loop")
    with pytest.raises(eb.EvbrokerError, match=r"needs action='...'"):
        svc.on("anon", lambda d, ctx: None)


def test_two_services_with_one_name_are_refused():
    a, b = Service("svc"), Service("svc")
    a.on("go", lambda d, ctx: None, action="go")
    b.on("go", lambda d, ctx: None, action="go")
    with pytest.raises(eb.EvbrokerError, match=r"two services are named 'svc'"):
        Choreography("x", [a, b], starts_on="go")


def test_a_rejection_nobody_would_hear_of_stops_the_run():
    svc = Service("svc")

    @svc.on("go")
    def refuse(d, ctx):
        raise Reject("not today")

    flow = Choreography("x", [svc], starts_on="go")
    b = eb.Broker()
    flow.install(b)
    flow.start(b, "k-1", {})
    with pytest.raises(eb.EvbrokerError, match=r"declares no on_reject event, so nobody would ever hear of it"):
        b.run()


def test_start_checks_the_event_and_key():
    flow = signup_flow()
    b = eb.Broker()
    flow.install(b)
    with pytest.raises(eb.EvbrokerError, match=r"does not start this flow; did you mean 'user.signed_up'"):
        flow.start(b, "ada", {}, event="user.signedup")
    with pytest.raises(eb.EvbrokerError, match=r"needs a business key"):
        flow.start(b, None, {})


def test_a_message_without_a_business_key_cannot_be_deduped():
    flow = signup_flow()
    b = eb.Broker()
    flow.install(b)
    b.publish("user.signed_up", {"user": "ada"})
    with pytest.raises(eb.EvbrokerError, match=r"without a business key, so it cannot dedupe it"):
        b.run()
