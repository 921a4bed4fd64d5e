"""The order workflow, in both styles: reserve stock, charge the card, ship, send a confirmation.

The business work is written once, as plain functions (:func:`reserve`, :func:`charge`...).
What differs between the styles is only who decides what happens next:

- orchestration: :data:`ORDER_SAGA` holds the whole flow in one place and sends each service
  a command; the services only answer.
- choreography: :data:`ORDER_CHOREOGRAPHY` lists services that each hold their own rules
  ("on inventory.reserved: charge, then emit payment.charged"); nobody holds the flow.

:func:`run_orders` runs N orders in either style, with a chosen failure and delivery faults,
and returns an :class:`OrderRun` to print, measure and check.

Why a faulty run still settles: every queue is at-least-once with ``ack_timeout`` 3 and
services that take 1 (the orchestrator 0.5), so a healthy worker always acks in time. Each
fault is drawn afresh on every delivery, so with any probability below 1 a message gets
through eventually (the broker stops a run that redelivers one message 100 times with a
clear error rather than hanging). No queue has ``max_deliveries``: giving up on a command
would leave its outcome unknown (see ``Saga.install(attempts=...)`` for that choice). A slow
worker (``slow_by`` 5 > 3) is taken for dead and its message redelivered while it still
works; the redelivery waits for it (one worker per service) and then finds the work done.
A fault with probability 1 that stops every ack can never settle, and is refused up front.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from evbroker.core.broker import Broker
from evbroker.core.faults import Faults
from evbroker.core.trace import Trace
from evbroker.errors import EvbrokerError, one_of
from evbroker.workflows.choreography import Choreography
from evbroker.workflows.measures import Measures, measure
from evbroker.workflows.saga import Saga, SagaState, Step, states_table
from evbroker.workflows.service import REJECTED, Reject, Service

STYLES = ("orchestration", "choreography")
FAILURES = ("none", "payment declined", "shipping unavailable")
#: What every order costs.
PRICE = 30
#: The effects the ledger counts, in the order a healthy order records them (plus the undos).
LEDGER = ("reserved", "released", "charged", "refunded", "shipped", "emailed")
#: The steps of an order, as both styles' state tables show them.
ORDER_STEPS = ("reserve", "charge", "ship", "confirm")
#: The topic a new order is announced on, by the producer ``shop``.
ORDER_PLACED = "order.placed"
SHOP = "shop"
SKUS = ("book", "mug", "lamp")
#: Queue settings shared by both styles (see the module doc for why they settle).
ACK_TIMEOUT = 3.0
SERVICE_TIME = 1.0
ORCHESTRATOR_TIME = 0.5
#: A city no carrier serves: the "shipping unavailable" failure sends every order there.
NOWHERE = "Atlantis"

# ---------------------------------------------------------------------- the business work
# Plain functions fn(order, ctx): each records what it did with ctx.effect, or says no with
# Reject. None of them dedupes: the Service worker that runs them does (Service.handle).


def reserve(order: dict, ctx: Any) -> None:
    """Set one item aside for the order."""
    ctx.effect("reserved", order=order["order"], sku=order["sku"])


def release(order: dict, ctx: Any) -> None:
    """Put a reserved item back on the shelf (undoes :func:`reserve`)."""
    ctx.effect("released", order=order["order"], sku=order["sku"])


def charge(order: dict, ctx: Any) -> None:
    """Charge the customer's card, or reject the order if the card is declined."""
    if order["card"] == "declined":
        raise Reject("card declined")
    ctx.effect("charged", order=order["order"], amount=order["amount"])


def refund(order: dict, ctx: Any) -> None:
    """Give the money back (undoes :func:`charge`)."""
    ctx.effect("refunded", order=order["order"], amount=order["amount"])


def ship(order: dict, ctx: Any) -> None:
    """Book a carrier, or reject the order if none serves its address."""
    if order["ship_to"] == NOWHERE:
        raise Reject(f"no carrier serves {NOWHERE}")
    ctx.effect("shipped", order=order["order"], to=order["ship_to"])


def confirm(order: dict, ctx: Any) -> None:
    """Email the customer that the order is on its way."""
    ctx.effect("emailed", order=order["order"])


# ---------------------------------------------------------------------- orchestration
# The services only know their commands. The flow lives in ORDER_SAGA, and nowhere else.

_inventory = Service("inventory", service_time=SERVICE_TIME)
_inventory.command("reserve", reserve)
_inventory.command("release", release)
_payment = Service("payment", service_time=SERVICE_TIME)
_payment.command("charge", charge)
_payment.command("refund", refund)
_shipping = Service("shipping", service_time=SERVICE_TIME)
_shipping.command("ship", ship)
_email = Service("email", service_time=SERVICE_TIME)
_email.command("confirm", confirm)

ORDER_SAGA = Saga(
    "order-saga",
    steps=[
        Step("reserve", _inventory, compensate="release"),
        Step("charge", _payment, compensate="refund"),
        Step("ship", _shipping),  # once a parcel ships there is no undo: the last step that can fail
        Step("confirm", _email),
    ],
    starts_on=ORDER_PLACED,
    service_time=ORCHESTRATOR_TIME,
)

# ---------------------------------------------------------------------- choreography
# The same work, but each service holds its own rules: what it hears, does and announces.

_c_inventory = Service("inventory", service_time=SERVICE_TIME)
_c_inventory.on(ORDER_PLACED, reserve, emits="inventory.reserved")
_c_inventory.on("payment.failed", release, undoes="reserve")
_c_inventory.on("payment.refunded", release, undoes="reserve")  # same action: one release per order at most
_c_payment = Service("payment", service_time=SERVICE_TIME)
_c_payment.on("inventory.reserved", charge, emits="payment.charged", on_reject="payment.failed")
_c_payment.on("shipping.failed", refund, emits="payment.refunded", undoes="charge")
_c_shipping = Service("shipping", service_time=SERVICE_TIME)
_c_shipping.on("payment.charged", ship, emits="shipping.scheduled", on_reject="shipping.failed")
_c_email = Service("email", service_time=SERVICE_TIME)
_c_email.on("shipping.scheduled", confirm)

ORDER_CHOREOGRAPHY = Choreography("orders", [_c_inventory, _c_payment, _c_shipping, _c_email], starts_on=ORDER_PLACED)

# How a choreographed order's state is read back from the services' effects: nobody kept it.
_DONE = {"reserved": "reserve", "charged": "charge", "shipped": "ship", "emailed": "confirm"}
_UNDONE = {"released": "reserve", "refunded": "charge"}
_STEP_OF_ACTION = {"reserve": "reserve", "charge": "charge", "ship": "ship", "confirm": "confirm"}
_CAN_UNDO = ("reserve", "charge")


# ---------------------------------------------------------------------- running


def order_data(n: int, failure: str = "none") -> dict:
    """The data of order number ``n`` (1, 2, ...) under ``failure``, as the shop publishes it."""
    return {
        "order": f"order-{n}",
        "sku": SKUS[(n - 1) % len(SKUS)],
        "amount": PRICE,
        "card": "declined" if failure == "payment declined" else "valid",
        "ship_to": NOWHERE if failure == "shipping unavailable" else "Lyon",
    }


class OrderRun:
    """The result of :func:`run_orders`: the broker, its trace, and what happened to each order.

    - ``outcomes``: order id -> "completed" or "compensated";
    - ``ledger``: how many times each business effect happened (``LEDGER`` names);
    - ``money``: amounts charged, refunded, and the net kept;
    - ``states``: order id -> :class:`SagaState`; ``table()`` prints them. In orchestration
      this is the orchestrator's own log; in choreography nobody keeps one, so it is
      rebuilt after the fact from every service's effects;
    - ``measures``: messages, places the workflow is defined, coupling graph (:class:`Measures`);
    - ``story(order)``: what each service heard, did and announced for one order, read from the
      trace (what a tracing tool stitches together from a correlation id).
    """

    def __init__(
        self,
        style: str,
        failure: str,
        orders: int,
        seed: int,
        faults: Faults | None,
        broker: Broker,
        placed: Mapping[str, str] | None = None,
    ) -> None:
        self.style = style
        self.failure = failure
        self.orders = orders
        self.seed = seed
        self.faults = faults
        self.broker = broker
        #: the shop's order.placed messages: message id -> order
        self.placed: dict[str, str] = dict(placed or {})
        self.order_ids: tuple[str, ...] = tuple(f"order-{n}" for n in range(1, orders + 1))
        effects = broker.effects()
        self.ledger: dict[str, int] = dict.fromkeys(LEDGER, 0)
        charged = refunded = 0
        for e in effects:
            if e.name in self.ledger:
                self.ledger[e.name] += 1
            if e.name == "charged":
                charged += e["amount"]
            elif e.name == "refunded":
                refunded += e["amount"]
        self.money: dict[str, int] = {"charged": charged, "refunded": refunded, "net": charged - refunded}
        if style == "orchestration":
            logged = ORDER_SAGA.states(broker)
            self.states: dict[str, SagaState] = {o: logged.get(o) or ORDER_SAGA.blank_state(o) for o in self.order_ids}
        else:
            self.states = _reconstruct(effects, self.order_ids)
        self.outcomes: dict[str, str] = {o: s.outcome or "incomplete" for o, s in self.states.items()}

    @property
    def trace(self) -> Trace:
        return self.broker.trace

    @cached_property
    def measures(self) -> Measures:
        rules = ORDER_SAGA.rules() if self.style == "orchestration" else ORDER_CHOREOGRAPHY.rules()
        ends = [s.finished_at for s in self.states.values() if s.finished_at is not None]
        return measure(self.style, self.trace, rules, max(ends) if ends else None)

    def table(self) -> str:
        """Each order's state: one column per step, then the current step and the outcome."""
        return states_table(self.states.values(), ORDER_STEPS, label="order")

    def story(self, order: str) -> str:
        """What each service heard, did and announced for ``order``, in time order, as text.

        Read from the trace alone: a message belongs to the order of the message its publisher
        was handling (every service copies the business key onto what it announces), so this
        is what a tracing tool rebuilds from a correlation id carried in every message.
        """
        if order not in self.order_ids:
            raise one_of("story: order", order, self.order_ids)
        keys = messages_by_key(self.trace, self.placed)
        mids = [m for m, k in keys.items() if k == order]
        rows = []
        for e in self.trace.where(kind=["publish", "effect", "unroutable", "dead-letter"], msg=mids):
            if e.kind == "publish":
                rows.append(f"  t={e.time:<4g} {e.actor:<14} publishes {e.msg} to {e.to}")
            elif e.kind == "unroutable":
                rows.append(f"  t={e.time:<4g} {e.actor} has no queue bound to it: {e.msg} is dropped")
            elif e.kind == "dead-letter":
                rows.append(f"  t={e.time:<4g} {e.actor:<14} gives up on {e.msg}: {e.detail}")
            elif not e.detail.startswith("saga "):  # the orchestrator's own log: its table shows it
                rows.append(f"  t={e.time:<4g} {e.actor:<14} {e.detail}")
        return f"What happened to {order}:\n" + ("\n".join(rows) or "  nothing")

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o] = counts.get(o, 0) + 1
        head = (
            f"<OrderRun {self.style}, failure={self.failure!r}, {self.orders} order{'s' if self.orders != 1 else ''}, "
            f"seed={self.seed}{', faults' if self.faults else ''}: "
            + ", ".join(f"{n} {o}" for o, n in counts.items())
            + ">"
        )
        ledger = " ".join(f"{k}={v}" for k, v in self.ledger.items())
        publishes = sum(1 for e in self.trace if e.kind == "publish")
        return f"{head}\n{self.table()}\nledger: {ledger}; net {self.money['net']}; {publishes} messages sent"


def messages_by_key(trace: Trace, roots: Mapping[str, str]) -> dict[str, str]:
    """Which business key each message belongs to, read from the trace alone.

    ``roots`` maps the messages that start the flow to their keys. A handler's publications are
    recorded right after the ``complete`` of the message it was handling, by the same worker,
    so each new message inherits the key of that one.
    """
    key = dict(roots)
    handling: dict[str, str] = {}  # worker -> the message whose work it just committed
    for e in trace:
        if e.kind == "complete" and e.msg is not None:
            handling[e.actor] = e.msg
        elif e.kind == "publish" and e.msg is not None and e.msg not in key and e.actor in handling:
            parent = key.get(handling[e.actor])
            if parent is not None:
                key[e.msg] = parent
    return key


def _reconstruct(effects: list, order_ids: tuple[str, ...]) -> dict[str, SagaState]:
    states = {o: SagaState(ORDER_CHOREOGRAPHY.name, o, dict.fromkeys(ORDER_STEPS, "-")) for o in order_ids}
    last: dict[str, float] = {}
    for e in effects:
        state = states.get(e.key)
        if state is None:
            continue
        if e.name in _DONE:
            state.apply(e.time, _DONE[e.name], "done")
        elif e.name in _UNDONE:
            state.apply(e.time, _UNDONE[e.name], "undone")
        elif e.name == REJECTED:
            state.apply(e.time, _STEP_OF_ACTION.get(e["action"], e["action"]), "failed", e["reason"])
        else:
            continue
        last[e.key] = e.time
    for o, state in states.items():
        steps = state.steps
        if steps["confirm"] == "done":
            state.apply(last[o], None, "completed")
        elif "failed" in steps.values() and all(steps[s] != "done" for s in _CAN_UNDO):
            state.apply(last[o], None, "compensated")
    return states


_STOPS_EVERY_ACK = ("crash_before_process", "crash_during_process", "crash_before_ack", "lose_ack", "lose_delivery")


def run_orders(
    style: str = "orchestration",
    failure: str = "none",
    orders: int = 3,
    faults: Faults | Mapping[str, Faults] | None = None,
    seed: int = 0,
) -> OrderRun:
    """Run ``orders`` orders in ``style`` with ``failure``, ``faults`` on every worker, and ``seed``.

    >>> run = run_orders("choreography", failure="payment declined", orders=2)
    >>> run.outcomes
    {'order-1': 'compensated', 'order-2': 'compensated'}
    >>> run.ledger["reserved"] == run.ledger["released"]
    True

    ``failure``: "none", "payment declined" (every order's card is declined) or "shipping
    unavailable" (every order goes where no carrier serves). ``faults``: an ``eb.Faults``
    applied to every worker (every service, and the orchestrator), or a dict from service
    name ("inventory", "payment", "shipping", "email", "order-saga") to its own faults.
    Same arguments, same trace.
    """
    if style not in STYLES:
        raise one_of("style", style, STYLES)
    if failure not in FAILURES:
        raise one_of("failure", failure, FAILURES)
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
        raise EvbrokerError(f"orders must be a whole number >= 1 (got {orders!r}); e.g. orders=3")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EvbrokerError(f"seed must be an int such as 0 or 42 (got {seed!r})")
    if isinstance(faults, Faults):
        _check_can_settle(faults)
    elif isinstance(faults, Mapping):
        names = [ORDER_SAGA.name] if style == "orchestration" else []
        names += [svc.name for svc in ORDER_SAGA.services]
        for name, value in faults.items():
            if name == ORDER_SAGA.name and style == "choreography":
                raise EvbrokerError(
                    f"faults for {name!r}: a choreography has no orchestrator; fault one of "
                    f"{', '.join(names)}, or use style='orchestration'"
                )
            if name not in names:
                raise one_of("faults: service", name, names)
            if not isinstance(value, Faults):
                raise EvbrokerError(f"faults[{name!r}] must be eb.Faults(...) (got {value!r})")
            _check_can_settle(value)
    elif faults is not None:
        raise EvbrokerError(
            f"faults must be eb.Faults(...), a dict such as {{'payment': eb.Faults(lose_ack=0.3)}}, or None "
            f"(got {faults!r}); e.g. faults=eb.Faults(crash_before_ack=0.3)"
        )
    b = Broker(seed=seed)
    if style == "orchestration":
        ORDER_SAGA.install(b, faults=faults, ack_timeout=ACK_TIMEOUT)
    else:
        ORDER_CHOREOGRAPHY.install(b, faults=faults, ack_timeout=ACK_TIMEOUT)
    placed = {}
    for n in range(1, orders + 1):
        mid = b.publish(ORDER_PLACED, order_data(n, failure), at=float(n - 1), key=f"order-{n}", by=SHOP)
        placed[mid] = f"order-{n}"
    b.run()
    return OrderRun(style, failure, orders, seed, faults, b, placed)


def _check_can_settle(faults: Faults) -> None:
    for name in _STOPS_EVERY_ACK:
        value = getattr(faults, name)
        if not callable(value) and value >= 1:
            raise EvbrokerError(
                f"faults: {name}={value!r} stops every delivery from ever being acked, so the run could never "
                f"settle; use a probability below 1, e.g. {name}=0.3"
            )
    slow = faults.slow
    if not callable(slow) and slow >= 1 and SERVICE_TIME + faults.slow_by > ACK_TIMEOUT:
        raise EvbrokerError(
            f"faults: slow={slow!r} with slow_by={faults.slow_by:g} makes every delivery take "
            f"{SERVICE_TIME + faults.slow_by:g}, longer than the ack timeout ({ACK_TIMEOUT:g}), so no ack is ever "
            f"in time and the run could never settle; use slow below 1 (e.g. slow=0.3) or slow_by below "
            f"{ACK_TIMEOUT - SERVICE_TIME:g}"
        )
