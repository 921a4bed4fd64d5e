"""What a handler sees: the message copy it was given, and a context to act through."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from evbroker.core.guards import check_chain
from evbroker.core.outside import check_call
from evbroker.core.payloads import snapshot
from evbroker.core.validate import check_hashable, check_stable_text
from evbroker.errors import EvbrokerError, one_of

if TYPE_CHECKING:
    from evbroker.core.broker import Broker

REMEMBER_WHEN = ("commit", "start", "after-ack", "claim")


class Message(NamedTuple):
    """One copy of a message as delivered to a worker (immutable).

    ``id`` is the broker's message id ("m1", ...), shared by every copy of one publish;
    ``topic`` is where it was published (a topic, or a queue for a direct publish);
    ``queue`` is the queue this copy sits in; ``attempt`` is 1 on the first delivery and
    goes up by one on each redelivery. ``key`` is the producer's business key, if any.
    """

    id: str
    payload: Any
    key: Any = None
    topic: str | None = None
    queue: str | None = None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Effect:
    """A side effect that took effect: a database write or an outside call.

    ``kind`` is ``"effect"`` for a write to the consumer's own database (``ctx.effect``,
    committed with the work) or ``"call"`` for a call to an outside system (``ctx.call``, made
    when the handler ran; ``name`` is then the system and ``idempotency_key`` the key sent).
    """

    time: float
    name: str
    worker: str
    queue: str
    msg: str
    attempt: int
    key: Any
    data: dict = field(default_factory=dict)
    kind: str = "effect"
    idempotency_key: Any = None

    def __getitem__(self, item: str) -> Any:
        return self.data[item]


def check_effect_name(name: object) -> None:
    """Refuse an effect name that is not a non-empty string (``ctx.effect`` on either broker)."""
    if not isinstance(name, str) or not name:
        raise EvbrokerError(f"ctx.effect needs a non-empty name such as 'charge' (got {name!r})")


def check_remember(key: object, when: object) -> None:
    """Refuse a ``ctx.remember`` key that cannot be stored, or a ``when`` it does not know."""
    if when not in REMEMBER_WHEN:
        raise one_of("ctx.remember(..., when=...)", when, REMEMBER_WHEN)
    try:
        hash(key)
    except TypeError:
        raise EvbrokerError(
            f"ctx.remember needs a hashable key such as a string or a tuple (got {key!r}); "
            "use e.g. msg.key or msg.payload['order']"
        ) from None


class Context:
    """Passed to every handler as ``ctx``: the way a handler changes the world.

    Effects, publications and remembered keys are buffered and committed together when
    processing completes (``service_time`` later): a worker that crashes before then leaves
    no trace of its work. That is the "transaction" of a real consumer: its database writes
    and its outbox commit together, or not at all.

    Outside calls (``ctx.call``) are not in that transaction: they happen when made.
    """

    __slots__ = ("msg", "worker", "queue", "now", "rng", "_broker", "effects", "publications", "remembered", "calls")

    def __init__(self, broker: Broker, msg: Message, worker: str, now: float) -> None:
        self.msg = msg
        self.worker = worker
        self.queue = msg.queue
        self.now = now
        self.rng: random.Random = broker.rng
        self._broker = broker
        self.effects: list[tuple[str, dict]] = []
        self.publications: list[tuple[str, Any, Any]] = []
        self.remembered: list[tuple[Any, str]] = []
        self.calls: list[tuple] = []  # trace rows of the outside calls made so far

    def effect(self, name: str | None = None, /, **data: Any) -> None:
        """Record a side effect (``ctx.effect("charge", amount=10)``), applied when processing completes.

        The fields are copied now: a handler that edits its payload afterwards does not change
        the effect. A field may not be called ``name`` (that is the effect's own name), and
        each value must have a stable text (the trace shows ``field=value``).
        """
        if name is None and "name" in data:  # ctx.effect(name="charge", amount=10)
            name = data.pop("name")
        elif "name" in data:
            raise EvbrokerError(
                f"ctx.effect({name!r}, name={data['name']!r}): a field cannot be called 'name', it is the "
                f"effect's own name ({name!r}); call the field something else, e.g. "
                f"ctx.effect({name!r}, user={data['name']!r})"
            )
        check_effect_name(name)
        for field_name, value in data.items():
            check_stable_text(value, f"ctx.effect({name!r}, {field_name}=...): the value")
        self.effects.append((name, snapshot(data, f"ctx.effect({name!r}, ...)")))

    def call(self, system: str, idempotency_key: Any = None, **data: Any) -> bool:
        """Call an outside system now (``ctx.call("payments", idempotency_key=order, amount=10)``).

        Unlike ``ctx.effect``, the call happens the moment the handler makes it and is never
        rolled back: a crash later, a duplicate delivery, or exactly-once processing rolling
        this work back leaves it done. The outside system drops a repeat of an
        ``idempotency_key`` it has already seen, as payment APIs do; without a key every call
        takes effect. Returns True if this call took effect, False if it was a repeat.
        """
        check_call(system, idempotency_key)
        for field_name, value in data.items():
            check_stable_text(value, f"ctx.call({system!r}, {field_name}=...): the value")
        return self._broker._outside_call(self, system, idempotency_key, snapshot(data, f"ctx.call({system!r}, ...)"))

    def publish(self, dest: str, payload: Any, key: Any = None) -> None:
        """Publish a new message to a topic or queue when processing completes (an outbox).

        The payload is copied now, as a real client serialises it when it is handed over.
        """
        broker = self._broker
        broker._check_destination(dest, where="ctx.publish")
        if self.msg.id in broker._chains:
            check_chain(broker, self.msg, dest, self.worker)
        if key is not None:
            check_hashable(key, "ctx.publish(..., key=...)")
        self.publications.append((dest, snapshot(payload, "ctx.publish: payload"), key))

    def seen(self, key: Any) -> bool:
        """True if ``key`` was remembered (and committed) by this queue's service before.

        The store belongs to the queue, so every worker of one service shares it, like the
        service's own database table of processed keys.
        """
        check_hashable(key, "ctx.seen")
        return key in self._broker._queues[self.queue].keys

    def remember(self, key: Any, when: str = "commit") -> None:
        """Record ``key`` in this queue's dedupe store.

        ``when`` says when the record is written:

        - ``"commit"`` (right): atomically with this handler's effects, as a unique key. If the
          key is already there by then (another delivery of the same work committed first),
          this whole piece of work is rolled back: no effects, no publications.
        - ``"start"`` (too early): written now. If the worker dies before the work commits,
          the key says "done" for work that never happened: the work is lost.
        - ``"after-ack"`` (too late): written only once the ack has been sent. A crash between
          the work and the ack leaves no record, so the redelivery does the work again.
        - ``"claim"``: written at commit like ``"commit"``, for a decision that only holds if
          nobody decided otherwise meanwhile (a unique constraint that makes the transaction
          fail). If the key is already there by then, the work is rolled back *and the delivery
          fails*, so the message comes back and the handler decides again, now seeing what the
          other delivery committed. ``"commit"`` acks instead: right for a duplicate of the
          same work, whose outcome is already out.
        """
        check_remember(key, when)
        if when == "start":
            self._broker._queues[self.queue].keys.add(key)
        else:
            self.remembered.append((key, when))

    def __repr__(self) -> str:
        return f"<Context {self.worker} handling {self.msg.id} attempt {self.msg.attempt} at t={self.now:g}>"
