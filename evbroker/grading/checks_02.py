"""Checks for exercise 02 · queues and pub/sub (``solutions/02_queues_and_pub_sub.ipynb``).

Four questions, 10 points:

- ``02-predict-worker`` (2, predict): which of three competing workers makes a given
  thumbnail, when one photo takes three times as long as the others.
- ``02-stacked-topology`` (3, build): ``wire(b)`` fans ``order.placed`` out to billing,
  shipping and email, with billing's copies shared by two workers.
- ``02-fix-loyalty`` (3, debug): ``start_loyalty(b)`` must award points for every order, from
  the shop's topic and from the old app's.
- ``02-predict-unroutable`` (2, predict): how many events of a day nobody was bound to.

Each scenario is a function here, so a notebook cell can run the very simulation a check
compares with; :func:`replay` rebuilds the run a failure names, to read its trace.

These checks sample seeds and do not search fault schedules (as the checks of exercises 04 and
05 do): the answers here are wiring (which queue is bound to which topic, how many workers
share a queue), which every fault-free run shows in full, and the exercise's handlers are not
idempotent on purpose (that is exercise 05), so under a crash or a lost ack a right answer
would invoice or award points twice and the search would reject it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import evbroker as eb
from evbroker.errors import EvbrokerError, one_of
from evbroker.grading.authoring import (
    call_answer,
    count_times,
    expect,
    expect_callable,
    expect_equal,
    expect_number,
    pick,
    trials,
)
from evbroker.grading.outcome import CheckFailed, NotAnswered
from evbroker.grading.registry import register

SEEDS = range(20)


def replay_hint(check_id: str, answer: str, seed: int, knob: str, label: str) -> str:
    """The replay line of a failure: the seed and the scenario, and the call that rebuilds the run."""
    return (
        f"seed={seed}, {knob}: {label}. To watch it: b = ex{check_id[:2]}.replay({check_id!r}, {answer}, "
        f"seed={seed}, {knob}={label!r}); print(b.trace.table())"
    )


def run_until_settled(b: eb.Broker) -> str:
    """Run ``b``; return the broker's explanation if the run could not finish, else ""."""
    try:
        b.run()
    except EvbrokerError as exc:
        return str(exc)
    return ""


def was(verb: str, n: int) -> str:
    """("invoiced", 0) -> "was never invoiced"; ("invoiced", 2) -> "was invoiced twice"."""
    return f"was never {verb}" if n == 0 else f"was {verb} {count_times(n)}"


def expect_name(answer: Any, what: str, example: str) -> str:
    """Return ``answer`` as a name (a string), or fail saying a name such as ``example`` was expected."""
    if answer is None or answer is Ellipsis:
        raise NotAnswered(f"{what} is still {answer!r}: set it, run that cell, then run this check.")
    if not isinstance(answer, str):
        raise CheckFailed(
            f"{what} should be a name in quotes, such as {example!r}; got {type(answer).__name__} {answer!r}"
        )
    return answer.strip()


# ---------------------------------------------------------------------------- 02-predict-worker

PHOTOS = ("beach.jpg", "panorama.jpg", "cat.jpg", "cake.jpg", "bike.jpg", "dog.jpg", "tree.jpg", "moon.jpg")
#: The one photo that takes three times as long to shrink.
BIG_PHOTO = "panorama.jpg"
ASKED_ABOUT = "m7"


def make_thumbnail(msg: eb.Message, ctx: eb.Context) -> None:
    """The thumbnails worker of this exercise (lesson 02's)."""
    ctx.effect("thumbnail", photo=msg.payload["photo"])


def thumbnail_time(msg: eb.Message) -> float:
    """1 time unit per photo, 3 for the panorama."""
    return 3.0 if msg.payload["photo"] == BIG_PHOTO else 1.0


def three_workers() -> eb.Broker:
    """The run of ``02-predict-worker``: eight photos at t = 0, three workers, one big photo (m2)."""
    b = eb.Broker(seed=0)
    b.queue("thumbnails")
    b.worker("thumbnails", make_thumbnail, count=3, service_time=thumbnail_time)
    for photo in PHOTOS:
        b.publish("thumbnails", {"photo": photo}, by="uploads")
    b.run()
    return b


@register("02-predict-worker", points=2, title="predict the worker")
def check_predict_worker(taker: Any) -> None:
    name = expect_name(taker, "taker", "thumbnails-1")
    b = three_workers()
    workers = b.workers
    expect(
        name in workers,
        f"taker is {name!r}, which is not one of the workers; they are named {', '.join(map(repr, workers))}.",
    )
    actual = b.trace.where(kind="deliver", msg=ASKED_ABOUT)[0].to
    expect_equal(
        name,
        actual,
        what=f"your worker for {ASKED_ABOUT}",
        hint="Counting messages in turn (m1, m2, m3, m1...) would work if every photo took the same time. "
        "Write down, time unit by time unit, which workers are free and which message each one takes.",
    )


# ---------------------------------------------------------------------------- 02-stacked-topology

TOPIC = "order.placed"
SHOP = "shop"
#: Each service: its queue, the effect its handler records, how many workers it should run.
SERVICES = {"billing": ("invoice", 2), "shipping": ("parcel", 1), "email": ("receipt", 1)}
WHAT = {"invoice": "invoiced", "parcel": "packed", "receipt": "sent a receipt"}


def bill(msg: eb.Message, ctx: eb.Context) -> None:
    """Billing: write the invoice."""
    ctx.effect("invoice", order=msg.payload["order"])


def pack(msg: eb.Message, ctx: eb.Context) -> None:
    """Shipping: pack the parcel."""
    ctx.effect("parcel", order=msg.payload["order"])


def send_receipt(msg: eb.Message, ctx: eb.Context) -> None:
    """Email: send the receipt."""
    ctx.effect("receipt", order=msg.payload["order"])


def _burst(rng: random.Random) -> list[float]:
    return [0.0] * rng.randint(4, 7)


def _steady(rng: random.Random) -> list[float]:
    gap = rng.choice([0.25, 0.5, 0.75])
    return [gap * i for i in range(rng.randint(5, 8))]


#: What the check does to the learner's topology: when orders arrive, and what goes down.
STACKED_SCENARIOS: dict[str, tuple[Callable[[random.Random], list[float]], tuple[str, float, float] | None]] = {
    "a burst of orders at t = 0": (_burst, None),
    "orders one after another": (_steady, None),
    "billing is down from t = 0.5 to t = 4": (_steady, ("billing", 0.5, 4.0)),
    "email is down from t = 1 to t = 3": (_burst, ("email", 1.0, 3.0)),
}


class Orders:
    """A run of a check: its broker, and which message id carries which order."""

    def __init__(self, broker: eb.Broker) -> None:
        self.broker = broker
        self.placed: dict[str, str] = {}  # message id -> order
        self.stuck = ""

    def place(self, topic: str, order: str, at: float, by: str = SHOP, **data: Any) -> None:
        mid = self.broker.publish(topic, {"order": order, **data}, at=at, key=order, by=by)
        self.placed[mid] = order

    def routes(self, order: str) -> list[str]:
        """The queues the order's event was copied into."""
        mids = [m for m, o in self.placed.items() if o == order]
        return [e.to for e in self.broker.trace.where(kind="route", msg=mids)]


def stacked_orders(wire: Callable[[eb.Broker], Any], seed: int, scenario: str) -> Orders:
    """The run of ``02-stacked-topology``: the learner's ``wire(b)``, then the shop's orders."""
    arrivals, outage = pick(STACKED_SCENARIOS, scenario, "scenario")
    b = eb.Broker(seed=seed)
    call_answer(wire, b, what="wire(b)")
    expect(
        TOPIC in b.topics, f"wire(b) should declare the topic {TOPIC!r}; it declared {_names(b.topics, 'no topic')}."
    )
    missing = [q for q in SERVICES if q not in b.queues]
    expect(
        not missing,
        f"wire(b) should declare one queue per service, named {', '.join(map(repr, SERVICES))}; "
        f"there is no queue {', '.join(map(repr, missing))} (queues: {_names(b.queues, 'none')}).",
    )
    if outage is not None:
        b.outage(*outage)
    run = Orders(b)
    rng = random.Random(seed)
    for i, at in enumerate(arrivals(rng)):
        run.place(TOPIC, f"order-{i + 1}", at)
    run.stuck = run_until_settled(b)
    return run


def _names(names: list[str], none: str) -> str:
    return ", ".join(map(repr, names)) or none


@register("02-stacked-topology", points=3, title="a stacked topology")
def check_stacked_topology(wire: Any) -> None:
    expect_callable(wire, "wire", params=1)
    for t in trials(seeds=SEEDS, scenario=STACKED_SCENARIOS):
        scenario = t.labels["scenario"]
        try:
            run = stacked_orders(wire, t.seed, scenario)
            _judge_stacked(run, spread=scenario == "a burst of orders at t = 0")
        except CheckFailed as failure:
            raise failure.with_replay(
                replay_hint("02-stacked-topology", "wire", t.seed, "scenario", scenario)
            ) from None


def _judge_stacked(run: Orders, *, spread: bool) -> None:
    b = run.broker
    if run.stuck:
        raise CheckFailed(f"The run did not finish: {run.stuck}")
    for order in dict.fromkeys(run.placed.values()):
        for effect, _ in SERVICES.values():
            done = [e for e in b.effects(effect) if e.key == order]
            if len(done) != 1:
                copied = run.routes(order)
                where = (
                    f"order.placed copied {order} into {', '.join(copied)}"
                    if copied
                    else f"order.placed copied {order} into no queue at all"
                )
                by = f" (by {', '.join(e.worker for e in done)})" if done else ""
                raise CheckFailed(
                    f"{order} {was(WHAT[effect], len(done))}{by}; every order must reach each of "
                    f"billing, shipping and email exactly once. {where}."
                )
    for e in b.effects():
        for queue, (effect, _) in SERVICES.items():
            if e.name == effect and e.queue != queue:
                raise CheckFailed(
                    f"{e.worker} recorded a{'n' if effect[0] in 'aeiou' else ''} {effect} for {e.key}, but it reads "
                    f"the queue {e.queue!r}: each service's handler belongs on that service's own queue."
                )
    for queue, (_, wanted) in SERVICES.items():
        takers = list(dict.fromkeys(e.to for e in b.trace.where(kind="deliver") if e.queue == queue))
        if len(takers) > wanted or (spread and len(takers) < wanted):
            workers = "one worker" if wanted == 1 else f"{wanted} workers"
            went = "one worker only" if len(takers) == 1 else f"{len(takers)} workers"
            raise CheckFailed(
                f"{queue} should share its copies over {workers}; in this run its orders went to {went} "
                f"({', '.join(takers)})."
            )


# ---------------------------------------------------------------------------- 02-fix-loyalty

#: The topic the old mobile app still publishes to.
OLD_TOPIC = "orders.placed"
OLD_APP = "old-app"
CUSTOMERS = ("ada", "grace", "linus", "barbara", "alan")


def award_points(msg: eb.Message, ctx: eb.Context) -> None:
    """Loyalty: one point per euro spent."""
    ctx.effect("points", customer=msg.payload["customer"], order=msg.payload["order"], points=msg.payload["amount"])


def open_shop(b: eb.Broker) -> None:
    """The shop as it runs today: its topic, the old app's topic, and billing."""
    b.topic(TOPIC)
    b.topic(OLD_TOPIC)  # the old mobile app still publishes here; billing listens to both
    b.queue("billing", bind=[TOPIC, OLD_TOPIC])
    b.worker("billing", bill)


def start_loyalty_as_found(b: eb.Broker) -> None:
    """The loyalty service as deployed: it has never awarded a point for most orders."""
    b.queue("loyalty", bind=OLD_TOPIC)
    b.worker("loyalty", award_points)


#: Which app places which order: the shop's web site, or now and then the old app.
LOYALTY_SCENARIOS = {
    "a day of web orders, one from the old app": 1,
    "a day with several old-app orders": 3,
}


def a_day_of_orders(start_loyalty: Callable[[eb.Broker], Any], seed: int, scenario: str) -> Orders:
    """The run of ``02-fix-loyalty``: the shop opens, loyalty starts, orders come from both apps."""
    old = pick(LOYALTY_SCENARIOS, scenario, "scenario")
    b = eb.Broker(seed=seed)
    open_shop(b)
    call_answer(start_loyalty, b, what="start_loyalty(b)")
    expect(
        "loyalty" in b.queues, f"start_loyalty(b) should declare the queue 'loyalty'; queues: {_names(b.queues, '')}."
    )
    rng = random.Random(seed)
    n = rng.randint(5, 8)
    from_old = set(rng.sample(range(n), old))
    run = Orders(b)
    for i in range(n):
        topic, by = (OLD_TOPIC, OLD_APP) if i in from_old else (TOPIC, SHOP)
        run.place(
            topic, f"order-{i + 1}", 0.5 * i, by=by, customer=rng.choice(CUSTOMERS), amount=rng.randrange(10, 90, 5)
        )
    run.stuck = run_until_settled(b)
    return run


@register("02-fix-loyalty", points=3, title="fix the loyalty service")
def check_fix_loyalty(start_loyalty: Any) -> None:
    expect_callable(start_loyalty, "start_loyalty", params=1)
    for t in trials(seeds=SEEDS, scenario=LOYALTY_SCENARIOS):
        scenario = t.labels["scenario"]
        try:
            _judge_loyalty(a_day_of_orders(start_loyalty, t.seed, scenario))
        except CheckFailed as failure:
            raise failure.with_replay(
                replay_hint("02-fix-loyalty", "start_loyalty", t.seed, "scenario", scenario)
            ) from None


def _judge_loyalty(run: Orders) -> None:
    b = run.broker
    if run.stuck:
        raise CheckFailed(f"The run did not finish: {run.stuck}")
    points = Counter(e.key for e in b.effects("points"))
    invoices = Counter(e.key for e in b.effects("invoice"))
    published = {e.msg: e for e in b.trace.where(kind="publish")}
    for mid, order in run.placed.items():
        p = published[mid]
        source = f"{order} (published to {p.to} by {p.actor})"
        if invoices[order] != 1:
            raise CheckFailed(
                f"Billing broke: {source} {was('invoiced', invoices[order])}. Loyalty must get its own copy "
                f"of each order without taking billing's. order.placed copied it into: "
                f"{', '.join(run.routes(order)) or 'no queue'}."
            )
        if points[order] != 1:
            copied = run.routes(order)
            earned = (
                "never earned loyalty points" if not points[order] else f"earned points {count_times(points[order])}"
            )
            raise CheckFailed(
                f"{source} {earned}; every order must earn them once, "
                f"whichever app placed it. {p.to} copied it into: {', '.join(copied) or 'no queue'}."
            )


# ---------------------------------------------------------------------------- 02-predict-unroutable

#: A day of account events: (topic, time), published by ``accounts``.
ACCOUNT_EVENTS = (
    ("user.signed_up", 0.0),
    ("user.renamed", 0.5),
    ("user.signed_up", 1.0),
    ("user.deleted", 1.0),
    ("user.exported", 1.5),
    ("user.renamed", 2.5),
    ("user.signed_up", 3.0),
    ("user.deleted", 3.0),
)


def a_day_of_account_events() -> eb.Broker:
    """The run of ``02-predict-unroutable`` (the code the notebook shows, line for line)."""
    b = eb.Broker(seed=0)
    for topic in ("user.signed_up", "user.deleted", "user.renamed", "user.exported"):
        b.topic(topic)
    b.queue("email", bind="user.signed_up")
    b.worker("email", lambda msg, ctx: ctx.effect("welcome"))
    b.queue("audit")  # not bound yet
    b.worker("audit", lambda msg, ctx: ctx.effect("logged"))
    b.queue("profile-cache", bind="user.renamed")  # its worker is not deployed yet
    for topic, at in ACCOUNT_EVENTS:
        b.publish(topic, {"user": "someone"}, at=at, by="accounts")
    b.publish("audit", {"user": "mallory"}, at=0.5, by="admin-tool")  # straight to the queue
    b.run(until=2)
    b.bind("audit", "user.deleted")
    b.run()
    return b


@register("02-predict-unroutable", points=2, title="predict the unroutable events")
def check_predict_unroutable(unroutable: Any) -> None:
    predicted = expect_number(unroutable, "unroutable")
    expect_equal(
        predicted,
        len(a_day_of_account_events().trace.where(kind="unroutable")),
        what="your number of unroutable events",
        hint="For each publish, ask: at that moment, which queues are bound to its topic? A queue with no "
        "worker still holds what is routed to it, and a publish straight to a queue needs no binding.",
    )


# ---------------------------------------------------------------------------- replay

_REPLAYS: dict[str, tuple[Callable[[Any, int, str], Orders], Mapping[str, Any]]] = {
    "02-stacked-topology": (stacked_orders, STACKED_SCENARIOS),
    "02-fix-loyalty": (a_day_of_orders, LOYALTY_SCENARIOS),
}


def replay(check_id: str, answer: Callable[..., Any], *, seed: int, scenario: str) -> eb.Broker:
    """Rebuild the run a failed check names, with your answer, and return its broker (already run).

    >>> b = replay("02-stacked-topology", wire, seed=3, scenario="a burst of orders at t = 0")  # doctest: +SKIP
    >>> print(b.trace.table())                                                                 # doctest: +SKIP
    """
    if check_id not in _REPLAYS:
        raise one_of("replay: check_id", check_id, _REPLAYS)
    scenario_fn, options = _REPLAYS[check_id]
    pick(options, scenario, "scenario")
    return scenario_fn(answer, seed, scenario).broker
