"""The simulation core: clock, broker, faults, trace. No plotting, no widgets, no printing."""

from evbroker.core.broker import GUARANTEES, Broker
from evbroker.core.faults import Faults
from evbroker.core.guards import HandlerFailed
from evbroker.core.message import Context, Effect, Message
from evbroker.core.trace import KINDS, Trace, TraceEvent

__all__ = [
    "GUARANTEES",
    "KINDS",
    "Broker",
    "Context",
    "Effect",
    "Faults",
    "HandlerFailed",
    "Message",
    "Trace",
    "TraceEvent",
]
