"""A service: business work behind a queue, run by an idempotent worker.

A :class:`Service` holds plain business functions, ``fn(data, ctx)``, and says how they are
reached:

- as **commands** (``@svc.command("reserve")``): an orchestrator sends a :class:`Command` to
  the service's queue and waits for a :class:`Reply` on its own queue (request-reply, like
  RabbitMQ's ``reply_to`` property or an SQS queue per requester);
- as **reactions** (``@svc.on("order.placed", emits="inventory.reserved")``): the service
  hears an event on a topic it subscribes to, does its work and announces what happened.

Either way the worker that runs them, :meth:`Service.handle`, is **idempotent**: under
at-least-once delivery the same work reaches it again (a crash before the ack, a lost ack, a
slow worker taken for dead, a producer retry under a new message id), and it must not charge
a card twice. Read :meth:`Service.handle` for where and how the dedupe happens.

A business "no" (a declined card) is not a crash: the function raises :class:`Reject`, and the
worker turns it into an answer (a failed reply, or a failure event) instead of a redelivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evbroker.core.faults import Faults
from evbroker.errors import EvbrokerError, check_positive, did_you_mean, is_whole

if TYPE_CHECKING:
    from evbroker.core.broker import Broker
    from evbroker.core.message import Context, Message

Work = Callable[[Any, "Context"], Any]
"""A business function: ``fn(data, ctx)``; it records side effects with ``ctx.effect`` and may
return a dict of results, merged into the data passed on (a booking reference, say)."""

#: The effect a worker records when a business function rejects its work.
REJECTED = "rejected"
#: The effect a worker records when it skips work on purpose (nothing to undo, or too late).
SKIPPED = "skipped"
#: The third part of a claim key, ``(business key, work, SETTLED)``: see CLAIMS below.
SETTLED = "settled"

# CLAIMS. With several workers (Service(workers=2)) a piece of work and its compensation can
# run at the same time on two workers: the work (slow, or taken for dead and dead-lettered)
# has not committed yet when the compensation looks, finds "nothing to undo", and says so;
# then the work commits, and a compensated order keeps its stock. Looking is not enough: the
# decision must still hold when it commits. So both sides claim one key, (key, work, SETTLED),
# with ctx.remember(..., when="claim"): whichever commits second is rolled back and its delivery
# fails, and the redelivery decides again with what is committed now (the work finds the
# compensation's tombstone and skips; the compensation finds the work and undoes it). This
# is a unique constraint in the service's database doing what a read beforehand cannot.
# (Commands only: a reaction has no tombstone check, so a claim there could never settle.)


class Reject(Exception):
    """Raise it from a business function to say no for a business reason: ``raise Reject("card declined")``.

    Any other exception is a processing failure: the broker redelivers the message, as a
    real broker does when a consumer nacks or dies. A rejection is an *answer*: asking again
    will not change it, so the worker acks the message and reports the "no" (a failed
    :class:`Reply`, or the reaction's ``on_reject`` event). Raise it before recording any
    effect: work that says no has done nothing.
    """

    def __init__(self, reason: str) -> None:
        if not isinstance(reason, str) or not reason:
            raise EvbrokerError(f"Reject needs a reason such as 'card declined' (got {reason!r})")
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Command:
    """What an orchestrator asks a service to do, sent straight to the service's queue.

    ``phase`` is ``"do"`` for a step's work and ``"undo"`` for its compensation. A ``do``
    carries the name of the command that would undo it (``compensation``), an ``undo`` the
    name of the command it undoes (``undoes``), so the service can tell "too late" and
    "nothing to undo" apart (see :meth:`Service.handle`). ``reply_to`` is the queue the
    answer goes to.
    """

    saga: str
    step: str
    command: str
    phase: str
    reply_to: str
    data: Any = None
    compensation: str | None = None
    undoes: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A service's answer to a :class:`Command`: ``ok`` or not, why not, and the data passed on."""

    saga: str
    step: str
    phase: str
    ok: bool
    reason: str = ""
    data: Any = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """One choreography rule of a service: on ``event``, do ``action``, then emit ``emits``.

    If the work raises :class:`Reject`, the service emits ``on_reject`` instead (with the
    reason added to the data). ``undoes`` marks a compensating reaction: it is a no-op when
    the work it undoes never happened for this key.
    """

    event: str
    action: str
    fn: Work
    emits: str | None = None
    on_reject: str | None = None
    undoes: str | None = None

    def rule(self) -> str:
        """The rule in one line, e.g. ``on payment.failed: release`` (for measures and docs)."""
        text = f"on {self.event}: {self.action}"
        if self.emits:
            text += f", then emit {self.emits}"
        if self.on_reject:
            text += f"; if rejected, emit {self.on_reject}"
        return text


class Service:
    """A named service: one queue (named after it), its workers, and its business functions.

    >>> inventory = Service("inventory")
    >>> @inventory.command("reserve")
    ... def reserve(order, ctx):
    ...     ctx.effect("reserved", order=order["order"])

    ``service_time`` is how long one piece of work takes (virtual time). ``workers`` is how
    many competing consumers run it; the default, one, handles the messages of the service
    one at a time, as a Kafka partition keyed by order would: two commands for one order can
    never race each other (see :meth:`handle`).
    """

    def __init__(self, name: str, *, service_time: float = 1.0, workers: int = 1) -> None:
        if not isinstance(name, str) or not name.strip():
            raise EvbrokerError(f"Service needs a name such as 'inventory' (got {name!r})")
        check_positive(f"Service {name!r}: service_time", service_time, hint="; it is how long one piece of work takes")
        if not is_whole(workers) or workers < 1:
            raise EvbrokerError(f"Service {name!r}: workers must be a whole number >= 1 (got {workers!r})")
        self.name = name
        self.service_time = float(service_time)
        self.workers = int(workers)
        self._commands: dict[str, Work] = {}
        self._reactions: dict[str, Reaction] = {}

    # ------------------------------------------------------------------ declaring

    @property
    def commands(self) -> tuple[str, ...]:
        """The names of the commands this service accepts, in declaration order."""
        return tuple(self._commands)

    @property
    def reactions(self) -> tuple[Reaction, ...]:
        """The events this service reacts to, with what it does and emits, in declaration order."""
        return tuple(self._reactions.values())

    @property
    def emits(self) -> tuple[str, ...]:
        """Every event this service may emit (success and rejection events)."""
        out: dict[str, None] = {}
        for r in self._reactions.values():
            for e in (r.emits, r.on_reject):
                if e:
                    out[e] = None
        return tuple(out)

    def command(self, name: str, fn: Work | None = None) -> Any:
        """Declare a command: ``@svc.command("reserve")`` above ``def reserve(data, ctx)``.

        Or without a decorator: ``svc.command("reserve", reserve)``. Returns the function
        unchanged, so it stays an ordinary function you can test.
        """
        _check_name(name, f"Service {self.name!r}: command", "'reserve'")
        if name in self._commands:
            raise EvbrokerError(
                f"Service {self.name!r} already has a command {name!r}; each command name is declared once"
            )

        def register(f: Work) -> Work:
            _check_work(f, f"Service {self.name!r}: command {name!r}")
            self._commands[name] = f
            return f

        return register if fn is None else register(fn)

    def on(
        self,
        event: str,
        fn: Work | None = None,
        *,
        emits: str | None = None,
        on_reject: str | None = None,
        action: str | None = None,
        undoes: str | None = None,
    ) -> Any:
        """Declare a reaction: when ``event`` is published, run ``fn(data, ctx)`` and emit ``emits``.

        ``@svc.on("inventory.reserved", emits="payment.charged", on_reject="payment.failed")``.
        The emitted event carries the incoming data plus whatever dict ``fn`` returns, and the
        same business key. ``action`` names the work (default: the function's name); it is
        the dedupe key's second half and what a reconstructed timeline shows. ``undoes``
        names the action a compensating reaction undoes (``undoes="reserve"`` for release).
        """
        _check_name(event, f"Service {self.name!r}: on(event)", "'order.placed'")
        if event in self._reactions:
            raise EvbrokerError(
                f"Service {self.name!r} already reacts to {event!r}; one reaction per event and service"
            )
        for what, value in (("emits", emits), ("on_reject", on_reject), ("action", action), ("undoes", undoes)):
            if value is not None:
                _check_name(value, f"Service {self.name!r}: on({event!r}, {what}=...)", "'payment.charged'")
        if emits is not None and emits == event:
            raise EvbrokerError(
                f"Service {self.name!r}: on({event!r}) emits the event it reacts to; it would react to itself forever"
            )

        def register(f: Work) -> Work:
            _check_work(f, f"Service {self.name!r}: on({event!r})")
            name = action or getattr(f, "__name__", None)
            if not name or name == "<lambda>":
                raise EvbrokerError(
                    f"Service {self.name!r}: on({event!r}) needs action='...' to name the work, "
                    "because the function has no usable name"
                )
            self._reactions[event] = Reaction(event, name, f, emits, on_reject, undoes)
            return f

        return register if fn is None else register(fn)

    # ------------------------------------------------------------------ running

    def install(
        self,
        b: Broker,
        *,
        faults: Faults | None = None,
        ack_timeout: float = 3.0,
        max_deliveries: int | None = None,
        dead_letter: str | None = None,
    ) -> list[str]:
        """Declare this service on broker ``b``: its queue (bound to the events it reacts to) and workers.

        Topics it reacts to or emits are declared if missing. The queue is at-least-once:
        a copy is acked only after the work is committed, so nothing is lost, and duplicates
        are the worker's job (:meth:`handle`). ``ack_timeout`` must be longer than
        ``service_time``, or every delivery would time out. ``max_deliveries`` and
        ``dead_letter`` are passed to ``b.queue``. Returns the worker names.
        """
        if faults is not None and not isinstance(faults, Faults):
            raise EvbrokerError(f"Service {self.name!r}: faults must be eb.Faults(...) or None (got {faults!r})")
        timeout = check_positive(f"Service {self.name!r}: ack_timeout", ack_timeout)
        if timeout <= self.service_time:
            raise EvbrokerError(
                f"Service {self.name!r}: ack_timeout={ack_timeout!r} is not longer than its service_time "
                f"({self.service_time:g}), so the broker would take every worker for dead before it can ack; "
                f"use e.g. ack_timeout={self.service_time * 3:g}"
            )
        for topic in [r.event for r in self._reactions.values()] + list(self.emits):
            if topic not in b.topics:
                b.topic(topic)
        bind = [r.event for r in self._reactions.values()] or None
        b.queue(self.name, bind=bind, ack_timeout=timeout, max_deliveries=max_deliveries, dead_letter=dead_letter)
        return b.worker(self.name, self.handle, count=self.workers, service_time=self.service_time, faults=faults)

    def handle(self, msg: Message, ctx: Context) -> None:
        """The idempotent worker: run a command or a reaction at most once per business key.

        WHERE THE DEDUPE HAPPENS. The key is ``(msg.key, action)``: the business key the
        producer gave (the order number) and the work asked for ("charge"). Not the message
        id: a producer that retries publishes the same request under a new id, and an
        at-least-once broker redelivers under the old one; both must find the work done.

        1. ``ctx.seen(key)`` first: the work was committed before, so this copy is a
           duplicate. Do nothing: the reply or event of the first run was published in the
           same commit as its work (``ctx.publish`` is an outbox), so it is already on its way.
        2. Otherwise do the work, and ``ctx.remember(key)``. The key is written *with* the
           effects and publications, atomically, when the work commits. A crash before the
           commit leaves no key and no effect (the redelivery does the work); a crash after
           it leaves both (the redelivery stops at step 1). Two deliveries racing (a slow
           worker taken for dead) both run, but only the first commit wins: the second is
           rolled back (trace kind ``dedup``).

        A compensation (``undo``) checks the key of the work it undoes: if that work never
        happened (its outcome was unclear to the orchestrator and it in fact never ran) the
        compensation does nothing, and its own key stays as a tombstone, so the original command
        arriving later (a producer retry of it) is skipped instead of leaving a reservation
        nobody will ever release. That is what makes a compensation safe to run when the step's
        outcome is unknown, and safe to run twice.
        """
        if msg.key is None:
            raise EvbrokerError(
                f"service {self.name!r} got {msg.id} without a business key, so it cannot dedupe it; "
                "publish with key=..., e.g. b.publish(topic, order, key='order-1')"
            )
        if isinstance(msg.payload, Command):
            self._run_command(msg, msg.payload, ctx)
        elif msg.topic in self._reactions:
            self._react(msg, self._reactions[msg.topic], ctx)
        else:
            raise EvbrokerError(
                f"service {self.name!r} got {msg.id} from {msg.topic!r} but has no reaction to it and it is not "
                f"a Command; reactions: {', '.join(self._reactions) or '(none)'}"
            )

    def _run_command(self, msg: Message, cmd: Command, ctx: Context) -> None:
        fn = self._commands.get(cmd.command)
        if fn is None:
            raise EvbrokerError(
                f"service {self.name!r} got command {cmd.command!r}, which it does not have"
                f"{did_you_mean(cmd.command, self._commands)}; commands: {', '.join(self._commands) or '(none)'}"
            )
        key = msg.key
        done, rejected, skipped = (key, cmd.command), (key, cmd.command, REJECTED), (key, cmd.command, SKIPPED)
        # ---- DEDUPE: this command, for this business key, was answered before -------------
        if ctx.seen(done) or ctx.seen(rejected) or ctx.seen(skipped):
            return

        def reply(ok: bool, reason: str = "", data: Any = cmd.data) -> None:
            ctx.publish(cmd.reply_to, Reply(cmd.saga, cmd.step, cmd.phase, ok, reason, data), key=key)

        if cmd.phase == "undo":
            if cmd.undoes is None or ctx.seen((key, cmd.undoes)):
                _run_compensation(fn, cmd.data, ctx, f"service {self.name!r}: compensation {cmd.command!r}")
            else:
                ctx.effect(SKIPPED, action=cmd.command, reason=f"nothing to undo: {cmd.undoes} never happened")
                # Holds only if the work does not commit meanwhile on another worker (see CLAIMS).
                ctx.remember((key, cmd.undoes, SETTLED), when="claim")
            ctx.remember(done)  # also the tombstone that stops a late `do` (below)
            reply(True)
            return
        # ---- TOO LATE: the compensation of this work already ran (a tombstone) ------------
        if cmd.compensation is not None and ctx.seen((key, cmd.compensation)):
            ctx.effect(SKIPPED, action=cmd.command, reason=f"too late: {cmd.compensation} already ran")
            ctx.remember(skipped)
            return
        try:
            result = _run_work(fn, cmd.data, ctx, f"service {self.name!r}: command {cmd.command!r}")
        except Reject as no:
            ctx.effect(REJECTED, action=cmd.command, reason=no.reason)
            ctx.remember(rejected)
            reply(False, no.reason)
            return
        ctx.remember(done)  # committed atomically with the effects and the reply
        if cmd.compensation is not None:  # see CLAIMS
            ctx.remember((key, cmd.command, SETTLED), when="claim")
        reply(True, data=_merge(cmd.data, result, f"service {self.name!r}: command {cmd.command!r}"))

    def _react(self, msg: Message, r: Reaction, ctx: Context) -> None:
        key = (msg.key, r.action)
        # ---- DEDUPE: this action, for this business key, was committed before ---------------
        if ctx.seen(key):
            return
        where = f"service {self.name!r}: on({r.event!r})"
        if r.undoes is not None and not ctx.seen((msg.key, r.undoes)):
            ctx.effect(SKIPPED, action=r.action, reason=f"nothing to undo: {r.undoes} never happened")
        elif r.undoes is not None:
            _run_compensation(r.fn, msg.payload, ctx, where)
        else:
            try:
                result = _run_work(r.fn, msg.payload, ctx, where)
            except Reject as no:
                if r.on_reject is None:
                    raise EvbrokerError(
                        f"{where}: {r.action} rejected ({no.reason}) but the reaction declares no on_reject event, "
                        f"so nobody would ever hear of it; add on_reject='{self.name}.failed'"
                    ) from None
                ctx.effect(REJECTED, action=r.action, reason=no.reason)
                ctx.remember(key)
                ctx.publish(r.on_reject, _merge(msg.payload, {"reason": no.reason}, where), key=msg.key)
                return
            if r.emits is not None:
                ctx.publish(r.emits, _merge(msg.payload, result, where), key=msg.key)
            ctx.remember(key)  # committed atomically with the effects and the emitted event
            return
        ctx.remember(key)
        if r.emits is not None:
            ctx.publish(r.emits, msg.payload, key=msg.key)

    def __repr__(self) -> str:
        parts = []
        if self._commands:
            parts.append(f"commands={list(self._commands)}")
        if self._reactions:
            parts.append(f"reacts to={list(self._reactions)}")
        return f"<Service {self.name!r} {' '.join(parts) or '(nothing declared yet)'}>"


FaultPlan = Faults | Mapping[str, Faults] | None
"""Faults for an install: one ``eb.Faults`` for every worker, or a mapping from service name
(the orchestrator counts as a service, under the saga's name) to its own ``eb.Faults``."""


def faults_by_name(faults: FaultPlan, names: Sequence[str], where: str) -> dict[str, Faults | None]:
    """Resolve a :data:`FaultPlan` into one ``Faults`` (or None) per name, checking every key and value."""
    if faults is None or isinstance(faults, Faults):
        return dict.fromkeys(names, faults)
    if not isinstance(faults, Mapping):
        raise EvbrokerError(
            f"{where}: faults must be eb.Faults(...), a dict such as {{'payment': eb.Faults(lose_ack=0.3)}}, "
            f"or None (got {faults!r})"
        )
    for name, value in faults.items():
        if name not in names:
            raise EvbrokerError(
                f"{where}: faults for {name!r}, which is not one of its services{did_you_mean(name, names)}; "
                f"services: {', '.join(names)}"
            )
        if not isinstance(value, Faults):
            raise EvbrokerError(f"{where}: faults[{name!r}] must be eb.Faults(...) (got {value!r})")
    return {n: faults.get(n) for n in names}


def _run_work(fn: Work, data: Any, ctx: Context, where: str) -> Any:
    before = len(ctx.effects)
    try:
        return fn(data, ctx)
    except Reject:
        if len(ctx.effects) != before:
            raise EvbrokerError(
                f"{where} recorded an effect and then rejected; a rejection means nothing was done, "
                "so raise Reject before any ctx.effect"
            ) from None
        raise


def _run_compensation(fn: Work, data: Any, ctx: Context, where: str) -> None:
    try:
        fn(data, ctx)
    except Reject as no:
        raise EvbrokerError(
            f"{where} rejected ({no.reason}); a compensation must always succeed, or the workflow is left "
            "half-done. Make it a no-op when there is nothing left to undo."
        ) from None


def _merge(data: Any, result: Any, where: str) -> Any:
    if result is None:
        return data
    if not isinstance(result, dict):
        raise EvbrokerError(f"{where} returned {result!r}; return None or a dict of results to pass on")
    if data is None:
        return dict(result)
    if not isinstance(data, dict):
        raise EvbrokerError(f"{where} returned results, but its data {data!r} is not a dict they could be added to")
    return {**data, **result}


def _check_name(value: object, where: str, example: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise EvbrokerError(f"{where} must be a non-empty name such as {example} (got {value!r})")


def _check_work(fn: object, where: str) -> None:
    if not callable(fn):
        raise EvbrokerError(
            f"{where} needs a function fn(data, ctx) (got {fn!r}); pass the function itself, without calling it"
        )
