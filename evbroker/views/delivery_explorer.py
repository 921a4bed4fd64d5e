"""DeliveryExplorer: a delivery guarantee against a fault, on the payment scenario."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from evbroker import scenarios
from evbroker.core.broker import GUARANTEES, Broker
from evbroker.core.message import Context, Message
from evbroker.core.presets import PRESETS
from evbroker.views import style
from evbroker.views.explorer import Explorer, html_table

GUARANTEE_STORIES = {
    "at-most-once": "the broker forgets a payment as soon as it sends it (auto-ack)",
    "at-least-once": "the broker keeps a payment until the worker acks it, and redelivers if no ack comes",
    "exactly-once": (
        "exactly-once processing: at-least-once delivery, plus a dedupe record of message ids that the "
        "consumer writes in the same transaction as its own database writes. The card charge is a call "
        "to the payment provider, outside that transaction: only an idempotency key makes it safe to repeat"
    ),
}
GUARANTEE_TIPS = [
    "auto-ack: a payment can be lost",
    "ack after the work: nothing lost, some work repeated",
    "exactly-once processing: at-least-once delivery + a dedupe record in the consumer's own transaction",
]
#: The broker the queue behaves like: the kit's own short timeout, or a preset's documented defaults.
BROKERS = [("kit (timeout 3)", None), *((name, name) for name in PRESETS)]


def verdict(b: Broker) -> str:
    """One sentence on the money: who was charged twice, who never, or all well."""
    placed = []
    for e in b.trace.where(kind="publish", actor=scenarios.PAYMENTS_PRODUCER):
        if not e.detail.startswith("retry of"):
            placed.append(e)
    counts: dict[Any, int] = {}
    for c in b.effects("charge"):
        counts[c.key] = counts.get(c.key, 0) + 1
    orders = [f"order-{i}" for i in range(1, len(placed) + 1)]
    twice = [o for o in orders if counts.get(o, 0) > 1]
    never = [o for o in orders if counts.get(o, 0) == 0]
    parts = []
    if twice:
        parts.append(f"\u2718 charged more than once: {', '.join(twice)}")
    if never:
        parts.append(f"\u2718 never charged (the payment was lost): {', '.join(never)}")
    if not parts:
        return "\u2714 every order charged exactly once"
    return "; ".join(parts)


class DeliveryExplorer(Explorer):
    """Flip the delivery guarantee and the fault; watch the payments' timeline and the money.

    Controls (ipywidgets, set ``.value`` to drive it): ``guarantee`` ("at-most-once",
    "at-least-once", "exactly-once"), ``fault`` (see :data:`evbroker.scenarios.FAULTS`),
    ``seed`` (which order the fault hits), ``broker`` (``None``: the kit's queue with an ack
    timeout of 3; or a preset, ``"rabbitmq"``, ``"sqs"``..., see :mod:`evbroker.core.presets`,
    which changes how soon a dead consumer is noticed). ``result`` is the run's
    :class:`~evbroker.Broker` (from :func:`evbroker.scenarios.payments`); ``summary`` is
    :func:`evbroker.scenarios.payment_summary` of it: ``orders``, ``charges``,
    ``charged_twice``, ``never_charged``, ``lost``, ``duplicates``, ``redeliveries``,
    ``dead_lettered``, the same numbers ``result.stats("payments")`` and
    ``result.effects("charge")`` give.

    ``handler(msg, ctx)`` replaces the plain charging handler, so you can put your own
    (idempotent?) consumer through every guarantee and fault.
    """

    figsize = (style.NOTEBOOK_WIDTH, 3.2)

    def __init__(
        self,
        guarantee: str = "at-least-once",
        fault: str = "crash before ack",
        seed: int = 0,
        *,
        orders: int = 4,
        handler: Callable[[Message, Context], Any] | None = None,
        broker: str | None = None,
    ) -> None:
        self.orders = orders
        self.handler = handler
        self.guarantee = widgets.ToggleButtons(
            options=list(GUARANTEES), value=guarantee, description="guarantee", tooltips=GUARANTEE_TIPS
        )
        self.fault = widgets.Dropdown(options=list(scenarios.FAULTS), value=fault, description="fault")
        self.seed = widgets.IntSlider(value=seed, min=0, max=20, description="seed")
        self.broker = widgets.Dropdown(options=BROKERS, value=broker, description="broker")
        super().__init__([self.guarantee, self.fault, self.seed, self.broker])

    def control_rows(self) -> list[widgets.Widget]:
        return [self.guarantee, widgets.HBox([self.fault, self.seed]), self.broker]

    def compute(self) -> Broker:
        return scenarios.payments(
            self.guarantee.value,
            self.fault.value,
            self.seed.value,
            self.orders,
            handler=self.handler,
            like=self.broker.value,
        )

    def summarise(self, b: Broker) -> tuple[dict[str, Any], str]:
        s = scenarios.payment_summary(b)
        rows = [
            ("orders", s["orders"]),
            ("charges", s["charges"]),
            ("charged twice", s["charged_twice"]),
            ("never charged", s["never_charged"]),
            ("lost", s["lost"]),
            ("duplicates", s["duplicates"]),
            ("redeliveries", s["redeliveries"]),
        ]
        g, f = self.guarantee.value, self.fault.value
        text = (
            f"<b>{html.escape(g)}</b>: {html.escape(GUARANTEE_STORIES[g])}.<br>"
            f"<b>{html.escape(f)}</b>: {html.escape(scenarios.FAULT_STORIES[f])}."
            + html_table(rows)
            + f"<b>{html.escape(verdict(b))}</b>"
        )
        return s, text

    def draw(self, b: Broker) -> None:
        title = f"{self.guarantee.value} \u00b7 {self.fault.value} \u00b7 seed {self.seed.value}"
        if self.broker.value:
            title += f" \u00b7 like {self.broker.value}"
        self.draw_timeline(b.trace, title)
