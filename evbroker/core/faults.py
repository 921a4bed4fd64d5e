"""Fault injection: what can go wrong between a broker, its consumers and its producers.

Each fault is a probability in [0, 1], drawn from the broker's seeded RNG, or a predicate
``callable(msg) -> bool`` for a fault that hits exactly the message you choose::

    eb.Faults(crash_before_ack=lambda m: m.id == "m2" and m.attempt == 1)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from evbroker.core.validate import check_arity
from evbroker.errors import EvbrokerError, check_positive, did_you_mean, is_real

if TYPE_CHECKING:
    from evbroker.core.message import Message

Chance = float | Callable[["Message"], bool]

_CHANCES = (
    "crash_before_process",
    "crash_during_process",
    "crash_before_ack",
    "lose_ack",
    "lose_delivery",
    "slow",
    "lose_confirm",
)


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong, and how often, for a worker (or for a producer's publishes).

    - ``crash_before_process``: the worker dies as the copy arrives, before the handler runs.
    - ``crash_during_process``: the worker dies halfway through the work: the handler ran (so
      any plain Python write it made has happened) but its effects are never committed.
    - ``crash_before_ack``: the work is done and committed, then the worker dies before the
      ack leaves. The broker cannot know the work happened (RabbitMQ requeues an unacked
      message when the channel closes; SQS makes it visible again after its timeout: the
      queue's ``crash_detection``, ``"disconnect"`` or ``"timeout"``).
    - ``lose_ack``: the ack is sent and lost on the way back. On a ``"disconnect"`` queue that
      is a dropped connection (TCP does not lose an ack on a live one): requeued at once.
    - ``lose_delivery``: the copy never reaches the worker (on a ``"disconnect"`` queue, a
      dropped connection: requeued at once).
    - ``slow`` / ``slow_by``: processing takes ``slow_by`` longer than usual; past the ack
      timeout the broker takes the slow worker for a dead one and redelivers.
    - ``lose_confirm`` / ``retry_after``: a publish reaches the broker but its confirmation
      is lost, so the producer publishes the same payload and key again ``retry_after``
      later, under a new message id (what RabbitMQ publisher confirms and Kafka producer
      retries without idempotence lead to).
    """

    crash_before_process: Chance = 0.0
    crash_during_process: Chance = 0.0
    crash_before_ack: Chance = 0.0
    lose_ack: Chance = 0.0
    lose_delivery: Chance = 0.0
    slow: Chance = 0.0
    slow_by: float = 5.0
    lose_confirm: Chance = 0.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        for name in _CHANCES:
            value = getattr(self, name)
            if callable(value):
                check_arity(value, 1, f"Faults({name}=...): the predicate", f"{name}=lambda msg: ...")
                continue
            if not is_real(value) or not 0 <= value <= 1:
                raise EvbrokerError(
                    f"Faults({name}=...) must be a probability between 0 and 1 or a predicate "
                    f"callable(msg) -> bool (got {value!r}); e.g. {name}=0.2 or "
                    f"{name}=lambda m: m.id == 'm1'"
                )
        check_positive("Faults(slow_by=...)", self.slow_by, hint="; it is how much longer a slow worker takes")
        check_positive(
            "Faults(retry_after=...)",
            self.retry_after,
            hint="; it is how long a producer waits for a confirmation before retrying",
        )

    def active(self) -> list[str]:
        """Names of the faults that can happen (non-zero probability or a predicate)."""
        return [
            f.name
            for f in fields(self)
            if f.name in _CHANCES and (callable(getattr(self, f.name)) or getattr(self, f.name) > 0)
        ]

    def __bool__(self) -> bool:
        return bool(self.active())


def _check_field_names(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap the dataclass ``__init__`` so a misspelt fault name gets a did-you-mean, not a TypeError."""

    @functools.wraps(init)
    def __init__(self: Faults, *args: object, **kwargs: object) -> None:
        names = [f.name for f in fields(Faults)]
        if args:
            raise EvbrokerError(
                f"Faults() takes names, not positions: Faults({', '.join(map(repr, args))}) does not say which "
                f"fault {'it is' if len(args) == 1 else 'they are'}; write e.g. Faults(crash_before_ack={args[0]!r}) "
                f"(fields: {', '.join(names)})"
            )
        for name in kwargs:
            if name not in names:
                raise EvbrokerError(
                    f"Faults() got {name}=..., but there is no such field{did_you_mean(name, names)} "
                    f"(fields: {', '.join(names)})"
                )
        init(self, *args, **kwargs)

    return __init__


Faults.__init__ = _check_field_names(Faults.__init__)  # type: ignore[method-assign]

NO_FAULTS = Faults()

#: The faults a producer's publish uses; the others are a worker's.
PUBLISH_FAULTS = ("lose_confirm",)


def check_publish_faults(faults: Faults, worker_faults: list[Faults]) -> None:
    """Refuse worker faults handed to ``publish(faults=...)`` where no worker has them.

    One ``Faults`` may describe a whole scenario (``eb.explore`` hands the same one to the
    workers and to the publishes): that is fine. Worker faults that only a publish got would
    never happen, since a publish meets only ``lose_confirm``.
    """
    misplaced = [name for name in faults.active() if name not in PUBLISH_FAULTS]
    if misplaced and not any(f == faults for f in worker_faults):
        raise EvbrokerError(
            f"publish: faults={faults!r} has worker faults ({', '.join(misplaced)}), which a publish never "
            "meets: they happen to a consumer. Give them to the worker, b.worker(queue, handler, "
            "faults=eb.Faults(...)); a publish uses only lose_confirm (with retry_after)"
        )
