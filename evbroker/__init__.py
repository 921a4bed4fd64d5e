"""evbroker: a deterministic, pure-Python message broker simulator for teaching.

>>> import evbroker as eb
>>> b = eb.Broker(seed=0)

The core (``Broker``, ``Faults``, ``Trace``) is imported eagerly and never plots or prints.
The views (``eb.plot``, ``eb.widgets``), the sagas (``eb.workflows``), the lesson scenarios
(``eb.scenarios``), the exercise checks (``eb.grading``) and the real broker on Redis
(``eb.real``, which alone needs the redis packages) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from evbroker.core import (
    GUARANTEES,
    KINDS,
    Broker,
    Context,
    Effect,
    Faults,
    HandlerFailed,
    Message,
    Trace,
    TraceEvent,
)
from evbroker.core.explore import Exploration, FaultPoint, Violation, explore
from evbroker.errors import EvbrokerError

__version__ = "0.1.0"

_SUBMODULES = ("plot", "widgets", "workflows", "scenarios", "grading", "real")

__all__ = [
    "GUARANTEES",
    "KINDS",
    "Broker",
    "Context",
    "Effect",
    "EvbrokerError",
    "Exploration",
    "FaultPoint",
    "Faults",
    "HandlerFailed",
    "Message",
    "Trace",
    "TraceEvent",
    "Violation",
    "explore",
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"evbroker.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'evbroker' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
