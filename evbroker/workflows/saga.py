"""Orchestration: a saga declared once as ordered steps, driven by one orchestrator.

>>> trip = Saga("trip-saga", steps=[
...     Step("flight", airline, command="book", compensate="cancel"),
...     Step("hotel", hotels, command="book", compensate="cancel"),
... ])                                                           # doctest: +SKIP
>>> trip.install(b); trip.start(b, "trip-1", {"who": "ada"}); b.run()   # doctest: +SKIP
>>> print(trip.table(b))                                         # doctest: +SKIP

How the orchestrator works, all on the public broker API:

- It is a worker on its own queue (named after the saga). That queue receives the starts
  (from the ``starts_on`` topic, or :meth:`Saga.start`), the services' :class:`Reply`
  messages (request-reply: every :class:`Command` names it as ``reply_to``), and, when the
  saga is installed with ``attempts=N``, the commands the services gave up on (their queues
  dead-letter into it, as an SQS redrive policy would).
- Its state is its **log**: every decision is recorded as a ``"saga"`` effect, committed
  atomically with the commands it sends (``ctx.effect`` and ``ctx.publish`` commit
  together). On each message it rebuilds the instance's state by replaying that log, as
  Temporal replays a workflow's event history. A crash at any point therefore loses nothing
  and repeats nothing: before the commit there is no log entry and no command; after it,
  both.
- It dedupes replies: a reply is acted on only if its step is the one the log says is
  running. A duplicate reply (a redelivery, or a retried publish under a new message id),
  or a late one for a step already given up on, is ignored.
- On a failed step it runs the compensations of the completed steps, one at a time, in
  reverse order. A step whose outcome is unclear (its command was dead-lettered: it may or
  may not have happened) is compensated too, when it has a compensation, because a
  compensation is safe to run for work that never happened (see
  :meth:`~evbroker.workflows.Service.handle`). An unclear step that cannot be undone is
  asked again instead: the service dedupes, so asking twice is safe.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evbroker.errors import EvbrokerError, check_positive, did_you_mean, is_whole
from evbroker.workflows.service import Command, FaultPlan, Reply, Service, faults_by_name

if TYPE_CHECKING:
    from evbroker.core.broker import Broker
    from evbroker.core.message import Context, Message

#: The name of the effect the orchestrator records its log with.
LOG = "saga"
#: What a step can be, as a saga state table shows it.
STEP_STATUSES = ("-", "running", "done", "failed", "unclear", "undoing", "undone")
#: How a saga instance ends.
OUTCOMES = ("completed", "compensated")
#: How many times, by default, a dead-lettered command that cannot be undone is sent again
#: before the saga stops the run with an error (rather than resending forever).
MAX_RESENDS = 10


@dataclass(frozen=True)
class Step:
    """One step of a saga: ``name``, the :class:`Service` that does it, its ``command``
    (default: the step's name) and, where the work can be undone, the ``compensate`` command.

    Everything is checked here, at declaration time: the service must be a Service and both
    commands must be among its commands.
    """

    name: str
    service: Service | None = None
    command: str | None = None
    compensate: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise EvbrokerError(f"Step needs a name such as 'reserve' (got {self.name!r})")
        where = f"Step {self.name!r}"
        if self.service is None:
            raise EvbrokerError(
                f"{where} has no service: say which Service does it, e.g. Step({self.name!r}, service=inventory)"
            )
        if isinstance(self.service, str):
            raise EvbrokerError(
                f"{where}: service={self.service!r} is a name; pass the Service object itself "
                f"(service={self.service}), so the saga can check its commands now"
            )
        if not isinstance(self.service, Service):
            raise EvbrokerError(f"{where}: service must be an eb.workflows.Service (got {self.service!r})")
        if self.command is None:
            object.__setattr__(self, "command", self.name)
        known = self.service.commands
        for what, cmd in (("command", self.command), ("compensation", self.compensate)):
            if cmd is None:
                continue
            if cmd not in known:
                raise EvbrokerError(
                    f"{where}: {what} {cmd!r} is not a command of service {self.service.name!r}"
                    f"{did_you_mean(cmd, known)}; its commands are {', '.join(map(repr, known)) or '(none yet)'}. "
                    f"Declare it first with @{self.service.name}.command({cmd!r})"
                )
        if self.compensate is not None and self.compensate == self.command:
            raise EvbrokerError(
                f"{where}: compensate={self.compensate!r} is the step's own command; a compensation undoes "
                "the work, so it is another command (reserve / release, charge / refund)"
            )

    def describe(self) -> str:
        """The step in one line, e.g. ``reserve: inventory.reserve, undone by inventory.release``."""
        svc = self.service.name  # type: ignore[union-attr]
        text = f"{self.name}: {svc}.{self.command}"
        return text + (f", undone by {svc}.{self.compensate}" if self.compensate else ", cannot be undone")


@dataclass
class SagaState:
    """One saga instance as a table row: the status of each step, the current step, the outcome.

    ``steps`` maps each step name to one of ``STEP_STATUSES``; ``reasons`` holds why a step
    failed or was unclear; ``history`` lists ``(time, step, status, detail)`` in log order.
    """

    saga: str
    instance: str
    steps: dict[str, str]
    reasons: dict[str, str] = field(default_factory=dict)
    outcome: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    history: list[tuple[float, str | None, str, str]] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        """The step whose command (or compensation) is out and not yet answered, if any."""
        for name, status in self.steps.items():
            if status in ("running", "undoing"):
                return name
        return None

    def cell(self, step: str) -> str:
        """How one step reads in a table: its status, with the reason when it failed."""
        status = self.steps.get(step, "-")
        reason = self.reasons.get(step)
        return f"{status} ({reason})" if reason and status in ("failed", "unclear") else status

    def apply(self, time: float, step: str | None, status: str, detail: str = "") -> None:
        """Apply one log entry (this is the whole replay)."""
        self.history.append((time, step, status, detail))
        if status == "started":
            self.started_at = time
        elif status in OUTCOMES:
            self.outcome = status
            self.finished_at = time
        elif step is not None and status in STEP_STATUSES:
            self.steps[step] = status
            if detail and status in ("failed", "unclear"):
                self.reasons[step] = detail


def states_table(states: Iterable[SagaState], steps: Sequence[str], *, label: str = "instance") -> str:
    """A plain-text table of saga instances: one row each, one column per step, then current and outcome."""
    header = (label, *steps, "current", "outcome")
    rows = [header] + [
        (s.instance, *(s.cell(name) for name in steps), s.current or "-", s.outcome or "running") for s in states
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


class Saga:
    """A workflow declared once as ordered steps, run by one orchestrator.

    ``name`` is also the name of the orchestrator's queue and of its worker (``name-1``).
    ``starts_on`` is a topic whose events start an instance (the business key of the event
    is the instance id; its payload is the instance's data); without it, use :meth:`start`.
    ``service_time`` is how long the orchestrator takes to decide on one message.
    ``max_resends`` bounds how often a dead-lettered command that cannot be undone is sent
    again (a retry policy's maximum attempts); past it the run stops with an error.
    """

    def __init__(
        self,
        name: str,
        steps: Sequence[Step],
        *,
        starts_on: str | None = None,
        service_time: float = 0.5,
        max_resends: int = MAX_RESENDS,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise EvbrokerError(f"Saga needs a name such as 'order-saga' (got {name!r})")
        if isinstance(steps, (str, Step)) or not isinstance(steps, Sequence) or not steps:
            raise EvbrokerError(
                f"Saga {name!r}: steps must be a non-empty list of Step(...) in the order they run (got {steps!r})"
            )
        seen: set[str] = set()
        for i, step in enumerate(steps):
            if not isinstance(step, Step):
                raise EvbrokerError(f"Saga {name!r}: steps[{i}] must be a Step(...) (got {step!r})")
            if step.name in seen:
                raise EvbrokerError(
                    f"Saga {name!r}: two steps are named {step.name!r}; step names identify steps in replies and "
                    f"in the state table, so give each its own, e.g. {step.name + '-2'!r}"
                )
            seen.add(step.name)
        if starts_on is not None and (not isinstance(starts_on, str) or not starts_on.strip()):
            raise EvbrokerError(f"Saga {name!r}: starts_on must be a topic name such as 'order.placed' or None")
        check_positive(f"Saga {name!r}: service_time", service_time, hint="; it is how long the orchestrator takes")
        if isinstance(max_resends, bool) or not isinstance(max_resends, int) or max_resends < 0:
            raise EvbrokerError(f"Saga {name!r}: max_resends must be a whole number >= 0 (got {max_resends!r})")
        self.name = name
        self.steps: tuple[Step, ...] = tuple(steps)
        self.starts_on = starts_on
        self.service_time = float(service_time)
        self.max_resends = max_resends
        self._index = {s.name: i for i, s in enumerate(self.steps)}
        # Per broker: the log entries read so far, by instance (see _replay).
        self._logs: weakref.WeakKeyDictionary[Broker, _Log] = weakref.WeakKeyDictionary()

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    @property
    def services(self) -> tuple[Service, ...]:
        """The services the saga talks to, in step order, each once."""
        out: dict[str, Service] = {}
        for s in self.steps:
            out.setdefault(s.service.name, s.service)  # type: ignore[union-attr]
        return tuple(out.values())

    def rules(self) -> dict[str, list[str]]:
        """Where the workflow is defined: one place, the saga, with every step and the failure rule."""
        lines = [f"{i}. {s.describe()}" for i, s in enumerate(self.steps, 1)]
        lines.append("on a failed step: undo the done steps, one at a time, in reverse order")
        return {self.name: lines}

    # ------------------------------------------------------------------ running

    def install(
        self,
        b: Broker,
        *,
        faults: FaultPlan = None,
        ack_timeout: float = 3.0,
        attempts: int | None = None,
    ) -> None:
        """Declare the orchestrator and every service not yet on broker ``b``.

        ``faults``: one ``eb.Faults`` for every worker installed here, the orchestrator
        included (it is a consumer like any other), or a dict from service name (the saga's
        own name for the orchestrator) to its faults.

        ``attempts`` is how many deliveries a command gets before its service's queue
        dead-letters it back to the orchestrator (SQS ``maxReceiveCount`` with a redrive
        policy). ``None`` (the default) retries until the work is acked: every delivery fault
        is drawn afresh on each delivery, so any fault with probability below 1 lets the
        command through eventually, and no step's outcome is ever unknown. With a number, a
        step can end "unclear", and the saga compensates it (see the module doc).

        Services already on ``b`` (installed before, e.g. with their own settings) are left
        as they are; their dead letters go wherever they were installed to send them.
        """
        plan = faults_by_name(faults, [self.name, *(s.name for s in self.services)], f"Saga {self.name!r}")
        if attempts is not None and (not is_whole(attempts) or attempts < 1):
            raise EvbrokerError(
                f"Saga {self.name!r}: attempts must be None (retry until done) or a whole number >= 1 "
                f"(got {attempts!r}); e.g. attempts=3"
            )
        timeout = check_positive(f"Saga {self.name!r}: ack_timeout", ack_timeout)
        if timeout <= self.service_time:
            raise EvbrokerError(
                f"Saga {self.name!r}: ack_timeout={ack_timeout!r} must be longer than the orchestrator's "
                f"service_time ({self.service_time:g})"
            )
        if self.starts_on is not None and self.starts_on not in b.topics:
            b.topic(self.starts_on)
        b.queue(self.name, bind=self.starts_on, ack_timeout=timeout)
        for svc in self.services:
            if svc.name not in b.queues:
                svc.install(
                    b,
                    faults=plan[svc.name],
                    ack_timeout=timeout,
                    max_deliveries=attempts,
                    dead_letter=self.name if attempts is not None else None,
                )

        def orchestrate(msg: Message, ctx: Context) -> None:
            self._orchestrate(b, msg, ctx)

        orchestrate.__name__ = f"{self.name}_orchestrator"
        b.worker(self.name, orchestrate, service_time=self.service_time, faults=plan[self.name])

    def start(self, b: Broker, instance: str, data: Any = None, *, at: float | None = None, by: str = "client") -> str:
        """Start instance ``instance`` with ``data``: published to ``starts_on``, or straight to the saga's queue."""
        if not isinstance(instance, str) or not instance:
            raise EvbrokerError(f"Saga {self.name!r}: start needs an instance id such as 'order-1' (got {instance!r})")
        return b.publish(self.starts_on or self.name, data, at=at, key=instance, by=by)

    def states(self, b: Broker) -> dict[str, SagaState]:
        """Every instance's state, rebuilt from the orchestrator's committed log, in start order."""
        out: dict[str, SagaState] = {}
        for e in b.effects(LOG):
            d = e.data
            if d.get("saga") != self.name:
                continue
            inst = d["instance"]
            if inst not in out:
                out[inst] = self.blank_state(inst)
            out[inst].apply(e.time, d.get("step"), d["status"], d.get("detail", ""))
        return out

    def table(self, b: Broker) -> str:
        """The state of every instance as a plain-text table (print it)."""
        return states_table(self.states(b).values(), self.step_names)

    def __repr__(self) -> str:
        return f"<Saga {self.name!r}: {' -> '.join(self.step_names)}>"

    # ------------------------------------------------------------------ the orchestrator

    def blank_state(self, instance: str) -> SagaState:
        """The state of an instance that has not started: every step ``"-"``."""
        return SagaState(self.name, instance, dict.fromkeys(self.step_names, "-"))

    def _replay(self, b: Broker, instance: str) -> SagaState:
        """The instance's state, replayed from its committed log entries.

        Reading the whole effect list on every message would make a run of n orders cost n
        times n; the log is read once, as it grows, into entries per instance (a workflow
        engine keeps each workflow's history apart for the same reason).
        """
        log = self._logs.get(b)
        if log is None:
            log = self._logs[b] = _Log()
        new = b.effects(start=log.read)
        if new:
            entries = log.entries
            name = self.name
            for e in new:
                if e.name == LOG:
                    d = e.data
                    if d.get("saga") == name:
                        entries.setdefault(d["instance"], []).append(
                            (e.time, d.get("step"), d["status"], d.get("detail", ""))
                        )
            log.read += len(new)
        state = self.blank_state(instance)
        for entry in log.entries.get(instance, ()):
            state.apply(*entry)
        return state

    def _orchestrate(self, b: Broker, msg: Message, ctx: Context) -> None:
        instance = msg.key
        if not isinstance(instance, str):
            raise EvbrokerError(
                f"saga {self.name!r} got {msg.id} without an instance id as its key; start instances with "
                f"saga.start(b, 'order-1', data) or publish to {self.starts_on or self.name!r} with key='order-1'"
            )
        run = _Decision(self, msg, ctx, self._replay(b, instance))
        payload = msg.payload
        if isinstance(payload, Reply):
            run.on_reply(payload)
        elif isinstance(payload, Command):
            run.on_dead_letter(payload)
        else:
            run.on_start(payload)


class _Log:
    """The saga's log on one broker, as read so far: entries by instance, and how many effects were read."""

    __slots__ = ("read", "entries")

    def __init__(self) -> None:
        self.read = 0
        self.entries: dict[str, list[tuple[float, str | None, str, str]]] = {}


class _Decision:
    """What the orchestrator does with one message, given the instance's replayed state.

    Every change goes through :meth:`log`, which records it as an effect (committed with the
    commands sent) and applies it to the local copy of the state at once.
    """

    def __init__(self, saga: Saga, msg: Message, ctx: Context, state: SagaState) -> None:
        self.saga, self.msg, self.ctx, self.state = saga, msg, ctx, state
        self.instance: str = msg.key

    def log(self, step: str | None, status: str, detail: str = "") -> None:
        data: dict[str, Any] = {"instance": self.instance, "step": step, "status": status}
        if detail:
            data["detail"] = detail
        data["saga"] = self.saga.name
        self.ctx.effect(LOG, **data)
        self.state.apply(self.ctx.now, step, status, detail)

    def claim(self, *what: Any) -> None:
        """Make this decision unique: if another delivery already committed it, this one rolls back."""
        self.ctx.remember((self.saga.name, self.instance, *what))

    def send(self, i: int, phase: str, data: Any) -> None:
        step = self.saga.steps[i]
        name = step.command if phase == "do" else step.compensate
        cmd = Command(
            self.saga.name,
            step.name,
            name,  # type: ignore[arg-type]
            phase,
            self.saga.name,
            data,
            compensation=step.compensate if phase == "do" else None,
            undoes=step.command if phase == "undo" else None,
        )
        self.ctx.publish(step.service.name, cmd, key=self.instance)  # type: ignore[union-attr]
        self.log(step.name, "running" if phase == "do" else "undoing")

    def on_start(self, data: Any) -> None:
        if self.state.started_at is not None:
            return  # DEDUPE: this instance has started already (a redelivery or a producer retry)
        self.claim("start")
        self.log(None, "started")
        self.send(0, "do", data)

    def on_reply(self, r: Reply) -> None:
        if r.saga != self.saga.name or r.step not in self.saga._index:
            raise EvbrokerError(f"saga {self.saga.name!r} got a reply for {r.saga!r} step {r.step!r}; not one of its")
        expected = "running" if r.phase == "do" else "undoing"
        if self.state.steps[r.step] != expected:
            return  # DEDUPE: a duplicate reply, or a late one for a step already settled: ignore it
        self.claim(r.step, r.phase)
        i = self.saga._index[r.step]
        if r.phase == "undo":
            self.log(r.step, "undone")
            self.compensate(i - 1, r.data)
        elif not r.ok:
            self.log(r.step, "failed", r.reason)
            self.compensate(i - 1, r.data)
        else:
            self.log(r.step, "done")
            if i + 1 < len(self.saga.steps):
                self.send(i + 1, "do", r.data)
            else:
                self.log(None, "completed")

    def on_dead_letter(self, cmd: Command) -> None:
        """A command its service's queue gave up on: the step's outcome is unknown."""
        expected = "running" if cmd.phase == "do" else "undoing"
        if cmd.saga != self.saga.name or self.state.steps.get(cmd.step) != expected:
            return  # the step settled meanwhile (its reply came first): nothing is unclear
        i = self.saga._index[cmd.step]
        step = self.saga.steps[i]
        if cmd.phase == "do" and step.compensate is not None:
            self.claim(cmd.step, "do")
            self.log(cmd.step, "unclear", f"{cmd.command} dead-lettered: it may or may not have happened")
            self.compensate(i, cmd.data)
            return
        # It cannot be undone (or it is an undo itself): ask again. The service dedupes, so a
        # command that did happen is not done twice.
        resends = sum(1 for _, name, status, _ in self.state.history if name == cmd.step and status == "resent")
        if resends >= self.saga.max_resends:
            svc = step.service.name  # type: ignore[union-attr]
            why = "it is a compensation" if cmd.phase == "undo" else "the step cannot be undone"
            raise EvbrokerError(
                f"saga {self.saga.name!r}, instance {self.instance!r}: {svc}.{cmd.command} (step {cmd.step!r}, "
                f"{cmd.phase}) was dead-lettered {resends + 1} times and {why}, so the saga can neither finish "
                f"nor compensate. Fix the service's faults, install with more attempts= (or None), or raise "
                f"Saga(max_resends=...)."
            )
        self.claim(cmd.step, cmd.phase, "resend", self.msg.id)
        self.ctx.publish(step.service.name, cmd, key=self.instance)  # type: ignore[union-attr]
        self.log(cmd.step, "resent", f"{cmd.command} dead-lettered: asked again")

    def compensate(self, start: int, data: Any) -> None:
        """Undo the latest step at or before ``start`` that is done (or unclear) and can be undone."""
        for j in range(start, -1, -1):
            step = self.saga.steps[j]
            if step.compensate is not None and self.state.steps[step.name] in ("done", "unclear"):
                self.send(j, "undo", data)
                return
        self.log(None, "compensated")
