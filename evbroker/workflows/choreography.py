"""Choreography: a workflow that emerges from services reacting to each other's events.

Each :class:`~evbroker.workflows.Service` declares its own rules with ``svc.on(event, fn,
emits=..., on_reject=...)``: what it hears, what it does, what it announces. No component
holds the whole flow; to see it you follow the events from service to service. Failure
handling is choreographed the same way: ``payment.failed`` is just another event, and
inventory's rule "on payment.failed: release" is what undoes the reservation.

A :class:`Choreography` is only the list of services that take part and the events that
start it: a deployment, like a compose file. It checks the rules fit together (every event
someone reacts to is emitted by someone, or starts the flow) and installs the services.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evbroker.errors import EvbrokerError, did_you_mean
from evbroker.workflows.service import FaultPlan, Service, faults_by_name

if TYPE_CHECKING:
    from evbroker.core.broker import Broker


class Choreography:
    """Services that react to each other's events, started by ``starts_on`` events.

    >>> flow = Choreography("orders", [inventory, payment], starts_on="order.placed")   # doctest: +SKIP
    >>> flow.install(b); flow.start(b, "order-1", {"order": "order-1"}); b.run()        # doctest: +SKIP

    Declaration checks: services are Services with distinct names and at least one reaction
    each; every event a service reacts to is emitted by some service or is a start event.
    """

    def __init__(self, name: str, services: Sequence[Service], *, starts_on: str | Sequence[str]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise EvbrokerError(f"Choreography needs a name such as 'orders' (got {name!r})")
        if isinstance(services, Service) or not isinstance(services, Sequence) or not services:
            raise EvbrokerError(
                f"Choreography {name!r}: services must be a non-empty list of Service(...) (got {services!r})"
            )
        if isinstance(starts_on, str):
            starts = [starts_on]
        elif isinstance(starts_on, (list, tuple)):
            starts = list(starts_on)
        else:
            starts = []
        if not starts or not all(isinstance(s, str) and s.strip() for s in starts):
            raise EvbrokerError(
                f"Choreography {name!r}: starts_on must name the event(s) that start the flow, "
                f"e.g. starts_on='order.placed' (got {starts_on!r})"
            )
        names: set[str] = set()
        for i, svc in enumerate(services):
            if not isinstance(svc, Service):
                raise EvbrokerError(f"Choreography {name!r}: services[{i}] must be a Service (got {svc!r})")
            if svc.name in names:
                raise EvbrokerError(f"Choreography {name!r}: two services are named {svc.name!r}")
            names.add(svc.name)
            if not svc.reactions:
                raise EvbrokerError(
                    f"Choreography {name!r}: service {svc.name!r} reacts to nothing, so it would never run; "
                    f"declare a rule with {svc.name}.on('some.event', fn, emits=...)"
                )
        emitted = dict.fromkeys(starts)
        for svc in services:
            emitted.update(dict.fromkeys(svc.emits))
        for svc in services:
            for r in svc.reactions:
                if r.event not in emitted:
                    raise EvbrokerError(
                        f"Choreography {name!r}: service {svc.name!r} reacts to {r.event!r}, which no service emits "
                        f"and which does not start the flow{did_you_mean(r.event, emitted)}; events: "
                        f"{', '.join(emitted)}"
                    )
        self.name = name
        self.services: tuple[Service, ...] = tuple(services)
        self.starts_on: tuple[str, ...] = tuple(starts)

    @property
    def events(self) -> tuple[str, ...]:
        """Every event of the flow: the start events, then those the services emit."""
        out = dict.fromkeys(self.starts_on)
        for svc in self.services:
            out.update(dict.fromkeys(svc.emits))
        return tuple(out)

    def rules(self) -> dict[str, list[str]]:
        """Where the workflow is defined: one entry per service, each holding only its own rules."""
        return {svc.name: [r.rule() for r in svc.reactions] for svc in self.services}

    def install(
        self,
        b: Broker,
        *,
        faults: FaultPlan = None,
        ack_timeout: float = 3.0,
    ) -> None:
        """Declare every event topic and install every service on broker ``b``.

        ``faults``: one ``eb.Faults`` for every service's workers, or a dict from service
        name to its own faults. There is no ``attempts=`` here on purpose: a message a
        service gives up on would need someone to notice, and in a choreography nobody owns
        the whole flow, so the order would silently stall.
        """
        plan = faults_by_name(faults, [s.name for s in self.services], f"Choreography {self.name!r}")
        for event in self.events:
            if event not in b.topics:
                b.topic(event)
        for svc in self.services:
            svc.install(b, faults=plan[svc.name], ack_timeout=ack_timeout)

    def start(
        self,
        b: Broker,
        key: str,
        data: Any = None,
        *,
        event: str | None = None,
        at: float | None = None,
        by: str = "client",
    ) -> str:
        """Publish a start event (default: the first of ``starts_on``) with business key ``key``."""
        event = self.starts_on[0] if event is None else event
        if event not in self.starts_on:
            raise EvbrokerError(
                f"Choreography {self.name!r}: {event!r} does not start this flow{did_you_mean(event, self.starts_on)}; "
                f"start events: {', '.join(self.starts_on)}"
            )
        if not isinstance(key, str) or not key:
            raise EvbrokerError(
                f"Choreography {self.name!r}: start needs a business key such as 'order-1' (got {key!r})"
            )
        return b.publish(event, data, at=at, key=key, by=by)

    def __repr__(self) -> str:
        return f"<Choreography {self.name!r}: {', '.join(s.name for s in self.services)}; starts on {self.starts_on}>"
