"""Every way a small scenario can go wrong: an exhaustive search over fault schedules.

A random seed tries one placement of faults; ``explore`` tries them all, up to a bound::

    def build(faults):
        b = eb.Broker(seed=0)
        b.queue("payments", ack_timeout=3)
        b.worker("payments", charge, count=2, faults=faults)
        for i in (1, 2):
            b.publish("payments", {"order": i}, key=f"order-{i}", faults=faults)
        return b                                  # set up, not run

    res = eb.explore(build, lambda b: len(b.effects("charge")) == 2, max_faults=2)
    res.ok, res.schedules, res.violations[0].replay

How it works. A *choice point* is a place where the broker asks a worker's (or a
producer's) :class:`~evbroker.Faults` whether a fault strikes: "does delivery 1 of m2 get
lost?", "does the ack of m1, delivery 2, get lost?". ``explore`` hands ``build`` a
``Faults`` whose predicates answer "no" everywhere except at the chosen points, and
records every question asked. The fault-free run lists the first choice points; a schedule
with faults asks new questions (the redelivery that exists only because an ack was lost),
and those become choice points of larger schedules. Schedules are explored smallest first,
as sets (choosing a then b is choosing b then a), and two schedules whose runs leave the
very same trace are one schedule: only one of them is counted and extended. That happens when
a fault of a schedule is never reached (it was placed on a delivery that no longer takes place
once an earlier fault struck): the run is the smaller schedule's run, already explored. This
is a model checker's idea (DSLabs searches every interleaving of messages and failures of a
student's distributed system), at teaching size; random fault injection (a seed, Jepsen's
nemesis) samples the same space instead.

The search is deterministic (no wall clock): it refuses a space larger than ``limit``
schedules before running it, and says how large the space is and how to shrink it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from evbroker.core.broker import Broker
from evbroker.core.faults import Faults
from evbroker.core.trace import rows
from evbroker.errors import EvbrokerError, did_you_mean

#: The faults ``explore`` places by default, in the order the broker asks about them.
FAULT_KINDS = ("lose_delivery", "crash_before_process", "slow", "crash_before_ack", "lose_ack", "lose_confirm")
#: Every kind it can place (``crash_during_process`` on request).
ALL_KINDS = (
    "lose_delivery",
    "crash_before_process",
    "slow",
    "crash_during_process",
    "crash_before_ack",
    "lose_ack",
    "lose_confirm",
)
#: How each fault reads in a sentence.
FAULT_WORDS = {
    "lose_delivery": "the delivery is lost",
    "crash_before_process": "the worker crashes before processing",
    "slow": "the worker is slow",
    "crash_during_process": "the worker crashes during processing",
    "crash_before_ack": "the worker crashes before its ack",
    "lose_ack": "the ack is lost",
    "lose_confirm": "the producer never hears the confirm and publishes again",
}
#: Refuse a search larger than this many schedules, unless ``limit=`` says otherwise.
DEFAULT_LIMIT = 20_000


class FaultPoint(NamedTuple):
    """One fault of a schedule: ``kind`` strikes delivery ``attempt`` of message ``msg`` in ``queue``.

    For ``lose_confirm`` the point is a publish: ``queue`` is where it was published (a queue or
    a topic) and ``attempt`` counts the producer's tries of it (1: the first publish). Given by
    hand (to :func:`replay`), ``queue`` may be left out: the point then matches in any queue.
    """

    kind: str
    msg: str
    attempt: int
    queue: str | None = None

    def __str__(self) -> str:
        if self.kind == "lose_confirm":
            return f"{self.msg} publish: {FAULT_WORDS[self.kind]}"
        return f"{self.msg} delivery {self.attempt}: {FAULT_WORDS[self.kind]}"


@dataclass
class Violation:
    """A schedule under which the invariant does not hold.

    ``faults``: the schedule, in the order the faults struck; ``broker``: its finished run (read
    ``broker.trace``, draw ``eb.plot.timeline(broker)``); ``message``: what the invariant said;
    ``replay``: one line of Python that rebuilds the run with your ``build``.
    """

    faults: tuple[FaultPoint, ...]
    broker: Broker
    message: str
    replay: str

    def __str__(self) -> str:
        said = "; ".join(str(f) for f in self.faults) or "no faults at all"
        return f"{said} -> {self.message}"


@dataclass
class Outcome:
    """One distinct schedule explored: its faults, whether the invariant held, what it said."""

    faults: tuple[FaultPoint, ...]
    ok: bool
    message: str = ""


@dataclass
class Exploration:
    """What ``explore`` found.

    ``ok``: the invariant held under every schedule; ``schedules``: how many distinct
    schedules were run (equivalent ones counted once); ``tried``: how many fault sets were
    considered, equivalent ones included; ``violations``: the failing schedules, smallest
    first (fewest faults, then earliest); ``outcomes``: every distinct schedule, in the order
    explored; ``points``: the choice points of the fault-free run.
    """

    max_faults: int
    kinds: tuple[str, ...]
    schedules: int = 0
    tried: int = 0
    points: int = 0
    violations: list[Violation] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    name: str = "build"

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def first(self) -> Violation | None:
        """The smallest violation, or None."""
        return self.violations[0] if self.violations else None

    def summary(self) -> str:
        bound = f"up to {self.max_faults} fault{'s' if self.max_faults != 1 else ''}"
        if self.ok:
            return f"all {self.schedules} schedules ({bound}) hold"
        n = len(self.violations)
        return (
            f"{n} of {self.schedules} schedules ({bound}) break the invariant; the smallest: {self.violations[0]}"
            f"\nReplay: {self.violations[0].replay}"
        )

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<Exploration: {self.summary().splitlines()[0]}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


# ---------------------------------------------------------------------------- search


def explore(
    build: Callable[[Faults], Broker],
    invariant: Callable[[Broker], Any],
    faults: Faults | Iterable[str] | str | None = None,
    max_faults: int = 2,
    *,
    inject: bool = False,
    limit: int = DEFAULT_LIMIT,
    smallest_only: bool = False,
    only: Callable[[FaultPoint], bool] | None = None,
) -> Exploration:
    """Run ``build`` under every schedule of up to ``max_faults`` faults; check ``invariant`` on each.

    - ``build(faults)`` sets up a broker (not run yet) and returns it, handing ``faults`` to
      its workers (``b.worker(..., faults=faults)``) and, for producer retries, to its publishes
      (``b.publish(..., faults=faults)``).
    - ``invariant(b)`` looks at the finished run: True when all is well, False or a sentence
      saying what went wrong otherwise. It also sees a run that could not settle (a copy
      redelivered until the broker gave up); if it finds nothing wrong there, the run is a
      violation anyway ("the run could not settle: ...").
    - ``faults``: which faults to place: None (all of :data:`FAULT_KINDS`), a kind or a list of
      kinds (``["lose_ack", "crash_before_ack"]``), or an ``eb.Faults(...)`` whose active fields
      are the kinds and whose ``slow_by`` / ``retry_after`` are used.
    - ``inject=True``: hand the faults to every worker and publish of the broker ``build``
      returns, whatever ``build`` did with them (a check uses it, so it does not depend on
      the code under test passing them on).
    - ``limit``: refuse (with an estimate) a search larger than this many schedules.
    - ``only``: place faults only where ``only(point)`` is true, e.g.
      ``only=lambda p: p.queue == "shipping"`` (faults in one service, and on publishes to it).
    - ``smallest_only=True``: stop after the first size of schedule that has a violation (a check
      needs the smallest counterexample, not all of them); ``schedules`` then counts those run.

    Each fault placement mirrors one real failure: a delivery lost on the network, a consumer
    killed before or after its work (RabbitMQ requeues on channel close; SQS after the
    visibility timeout), an ack lost on the way back, a consumer slower than the timeout, a
    publisher confirm that never arrives so the producer publishes again.
    """
    kinds, slow_by, retry_after = _kinds(faults)
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 0:
        raise EvbrokerError(f"explore: max_faults must be a whole number >= 0 (got {max_faults!r}); e.g. max_faults=2")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise EvbrokerError(f"explore: limit must be a whole number >= 1 (got {limit!r})")
    if not callable(build):
        raise EvbrokerError(f"explore: build must be a function build(faults) -> eb.Broker (got {build!r})")
    if not callable(invariant):
        raise EvbrokerError(f"explore: invariant must be a function invariant(b) -> bool (got {invariant!r})")
    if only is not None and not callable(only):
        raise EvbrokerError(f"explore: only must be a function only(point) -> bool or None (got {only!r})")
    search = _Search(build, invariant, kinds, slow_by, retry_after, inject, only)
    res = Exploration(max_faults, kinds, name=_name(build))
    seen_sets: set[frozenset] = set()
    seen_traces: set[tuple] = set()
    found: list[tuple[tuple, Violation]] = []
    level: list[frozenset] = [frozenset()]
    seen_sets.add(frozenset())
    for size in range(max_faults + 1):
        if not level:
            break
        if res.tried + len(level) > limit:
            raise _too_large(res.tried + len(level), max_faults, res.points, limit)
        following: list[frozenset] = []
        for chosen in level:
            res.tried += 1
            run = search.run(chosen)
            if run.trace_key in seen_traces:
                continue  # the very same run as a schedule explored already
            seen_traces.add(run.trace_key)
            res.schedules += 1
            ordered = run.ordered(chosen)
            res.outcomes.append(Outcome(ordered, run.ok, run.message))
            if not run.ok:
                v = Violation(
                    ordered, run.broker, run.message, replay_line(res.name, ordered, search.multi_queue, search.slow_by)
                )
                found.append(((len(ordered), run.positions(chosen)), v))
            if size == max_faults:
                continue
            for point in run.asked:
                if point in chosen:
                    continue
                bigger = chosen | {point}
                if bigger not in seen_sets:
                    seen_sets.add(bigger)
                    following.append(bigger)
        if size == 0:
            res.points = len(search.first_points)
            if not res.points and max_faults:
                raise EvbrokerError(
                    f"explore: {res.name}(faults) never handed `faults` on: in the fault-free run no worker or "
                    "publish ever asked whether a fault strikes, so there is nothing to explore. Pass it on: "
                    "b.worker(..., faults=faults) and, for producer retries, b.publish(..., faults=faults); "
                    "or call explore(..., inject=True)."
                )
        if smallest_only and found:
            break
        if size == 0:
            estimate = _estimate(res.points, max_faults)
            if estimate > limit:
                raise _too_large(estimate, max_faults, res.points, limit)
        level = following
    found.sort(key=lambda item: item[0])
    res.violations = [v for _, v in found]
    return res


def replay(
    build: Callable[[Faults], Broker],
    faults: Iterable[FaultPoint | Sequence[Any]],
    *,
    inject: bool = False,
    kinds: Faults | Iterable[str] | str | None = None,
    only: Callable[[FaultPoint], bool] | None = None,
) -> Broker:
    """Rebuild and run one schedule: ``eb.explore.replay(build, res.violations[0].faults)``.

    ``faults`` is a violation's ``.faults`` or a list of ``(kind, msg, attempt[, queue])``.
    Returns the finished broker (a run that cannot settle stops where the broker gave up).
    """
    points = frozenset(_point(f) for f in faults)
    names, slow_by, retry_after = _kinds(kinds if kinds is not None else sorted({p.kind for p in points}) or None)
    search = _Search(build, lambda b: True, names, slow_by, retry_after, inject, only)
    return search.run(points, judge=False).broker


explore.replay = replay  # type: ignore[attr-defined]


def schedule_faults(points: Iterable[FaultPoint | Sequence[Any]], slow_by: float = 5.0) -> Faults:
    """An ``eb.Faults`` that strikes exactly at ``points`` (each ``(kind, msg, attempt[, queue])``)."""
    chosen = frozenset(_point(p) for p in points)
    by_kind: dict[str, Callable[[Any], bool]] = {}
    for kind in {p.kind for p in chosen}:
        mine = {(p.msg, p.attempt, p.queue) for p in chosen if p.kind == kind}
        wild = {(p.msg, p.attempt) for p in chosen if p.kind == kind and p.queue is None}
        by_kind[kind] = lambda m, mine=mine, wild=wild: (
            (m.id, m.attempt, m.queue if m.queue is not None else m.topic) in mine or (m.id, m.attempt) in wild
        )
    return Faults(**by_kind, slow_by=slow_by)


class _Run:
    __slots__ = ("broker", "asked", "ok", "message", "trace_key")

    def __init__(self, broker: Broker, asked: list[FaultPoint], ok: bool, message: str) -> None:
        self.broker = broker
        self.asked = asked
        self.ok = ok
        self.message = message
        # the trace itself, compared exactly (a hash alone could merge two runs by accident);
        # rows without their data dict, whose content the detail text already carries
        self.trace_key = tuple(row[:8] for row in rows(broker._events))

    def positions(self, chosen: frozenset) -> tuple[int, ...]:
        return tuple(sorted(self.asked.index(p) for p in chosen if p in self.asked))

    def ordered(self, chosen: frozenset) -> tuple[FaultPoint, ...]:
        return tuple(_order(self.asked, chosen))


class _Search:
    """Runs ``build`` under one schedule at a time, recording the questions the broker asks."""

    def __init__(
        self,
        build: Callable[[Faults], Broker],
        invariant: Callable[[Broker], Any],
        kinds: tuple[str, ...],
        slow_by: float,
        retry_after: float,
        inject: bool,
        only: Callable[[FaultPoint], bool] | None = None,
    ) -> None:
        self.build = build
        self.invariant = invariant
        self.kinds = kinds
        self.slow_by = slow_by
        self.retry_after = retry_after
        self.inject = inject
        self.only = only
        self.first_points: list[FaultPoint] = []
        self.multi_queue = False
        self._runs = 0

    def faults(self, chosen: frozenset, asked: list[FaultPoint]) -> Faults:
        wild = any(p.queue is None for p in chosen)  # (kind, msg, attempt) given by hand: any queue
        only = self.only

        def ask(kind: str) -> Callable[[Any], bool]:
            def predicate(m: Any) -> bool:
                point = FaultPoint(kind, m.id, m.attempt, m.queue if m.queue is not None else m.topic)
                if only is not None and not only(point):
                    return False
                asked.append(point)
                return point in chosen or (wild and FaultPoint(kind, m.id, m.attempt) in chosen)

            return predicate

        return Faults(**{k: ask(k) for k in self.kinds}, slow_by=self.slow_by, retry_after=self.retry_after)

    def run(self, chosen: frozenset, judge: bool = True) -> _Run:
        asked: list[FaultPoint] = []
        faults = self.faults(chosen, asked)
        b = self._build(faults, chosen)
        if self.inject:
            inject_faults(b, faults)
        message = ""
        try:
            b.run()
            stuck = ""
        except EvbrokerError as exc:
            stuck = str(exc)
        self._runs += 1
        if self._runs == 1:
            self.first_points = list(asked)
            self.multi_queue = len({p.queue for p in asked if p.kind != "lose_confirm"}) > 1
        if not judge:
            return _Run(b, asked, True, "")
        try:
            verdict = self.invariant(b)
        except Exception as exc:
            said = "; ".join(str(p) for p in _order(asked, chosen)) or "no faults at all"
            raise EvbrokerError(
                f"explore: the invariant {_name(self.invariant, 'invariant')} raised {type(exc).__name__}: {exc} "
                f"under the "
                f"schedule [{said}]. An invariant should return True when the run is fine and False (or a "
                "sentence) when it is not; look at that run with "
                f"eb.explore.replay({_name(self.build)}, {[tuple(p) for p in _order(asked, chosen)]!r})."
            ) from exc
        if verdict is True or (verdict is not None and not isinstance(verdict, str) and _truthy(verdict)):
            if stuck:
                return _Run(b, asked, False, f"the run could not settle: {stuck}")
            return _Run(b, asked, True, "")
        if verdict is None:
            raise EvbrokerError(
                f"explore: the invariant {_name(self.invariant, 'invariant')} returned None; it should return True "
                "when the "
                "run is fine and False or a sentence saying what went wrong when it is not (did you forget "
                "`return`?)"
            )
        message = verdict if isinstance(verdict, str) and verdict else "the invariant does not hold"
        return _Run(b, asked, False, message)

    def _build(self, faults: Faults, chosen: frozenset) -> Broker:
        try:
            b = self.build(faults)
        except (EvbrokerError, AssertionError):  # the build's own words: pass them on as they are
            raise
        except Exception as exc:
            raise EvbrokerError(
                f"explore: {_name(self.build)}(faults) raised {type(exc).__name__}: {exc}; build should only set "
                "up a broker and return it"
            ) from exc
        if not isinstance(b, Broker):
            raise EvbrokerError(
                f"explore: {_name(self.build)}(faults) must return the eb.Broker it set up (got {b!r}); end it "
                "with `return b`, without calling b.run() (explore runs it once per schedule)."
            )
        if b._events or b.now:
            raise EvbrokerError(
                f"explore: {_name(self.build)}(faults) returned a broker that has already run (t={b.now:g}, "
                f"{len(b.trace)} events); return it set up but not run: explore runs it under each schedule."
            )
        return b


def _truthy(value: Any) -> bool:
    try:
        return bool(value)
    except Exception:
        return False


def _order(asked: list[FaultPoint], chosen: frozenset) -> list[FaultPoint]:
    return [p for p in asked if p in chosen]  # the search chooses among asked points: exact matches


def inject_faults(b: Broker, faults: Faults) -> None:
    """Hand ``faults`` to every worker of ``b`` and every publish it has scheduled, whatever they had.

    A check uses it to break the code under test itself, rather than trusting that code to pass
    the check's faults on.
    """
    for w in b._workers.values():
        w.faults = faults
    clock = b._clock
    for entry in [*clock._heap, *clock._fifo]:
        if entry[3] == b._on_publish:
            args = list(entry[4])
            args[5] = faults
            entry[4] = tuple(args)


def _kinds(faults: Faults | Iterable[str] | str | None) -> tuple[tuple[str, ...], float, float]:
    if faults is None:
        return FAULT_KINDS, 5.0, 1.0
    if isinstance(faults, Faults):
        active = tuple(k for k in ALL_KINDS if k in faults.active())
        if not active:
            raise EvbrokerError(
                "explore: faults=eb.Faults() names no fault; give the kinds to place, e.g. "
                "faults=['lose_ack', 'crash_before_ack'], or faults=None for all of them"
            )
        return active, faults.slow_by, faults.retry_after
    names = [faults] if isinstance(faults, str) else list(faults)
    for name in names:
        if name not in ALL_KINDS:
            raise EvbrokerError(
                f"explore: no fault kind {name!r}{did_you_mean(str(name), ALL_KINDS)} (kinds: {', '.join(ALL_KINDS)})"
            )
    if not names:
        raise EvbrokerError("explore: faults=[] names no fault; e.g. faults=['lose_ack'], or None for all kinds")
    return tuple(k for k in ALL_KINDS if k in names), 5.0, 1.0


def _point(p: FaultPoint | Sequence[Any]) -> FaultPoint:
    if isinstance(p, FaultPoint):
        return p
    try:
        point = FaultPoint(*p)
    except TypeError:
        raise EvbrokerError(
            f"explore.replay: each fault is (kind, msg, attempt) or (kind, msg, attempt, queue) (got {p!r}); "
            "e.g. ('lose_ack', 'm2', 1)"
        ) from None
    if point.kind not in ALL_KINDS:
        raise EvbrokerError(
            f"explore.replay: no fault kind {point.kind!r}{did_you_mean(str(point.kind), ALL_KINDS)} "
            f"(kinds: {', '.join(ALL_KINDS)})"
        )
    return point


def _estimate(points: int, max_faults: int) -> int:
    """Schedules of up to ``max_faults`` faults over ``points`` choice points (redeliveries add more)."""
    return sum(math.comb(points, k) for k in range(max_faults + 1))


class SearchTooLarge(EvbrokerError):
    """The search space is larger than ``limit`` schedules: ``estimate`` of them over ``points`` choice points."""

    def __init__(self, message: str, *, estimate: int, points: int, limit: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.points = points
        self.limit = limit


def _too_large(estimate: int, max_faults: int, points: int, limit: int) -> SearchTooLarge:
    smaller = _estimate(points, max_faults - 1) if max_faults else 0
    hint = f"max_faults={max_faults - 1} (about {smaller} schedules), " if max_faults else ""
    return SearchTooLarge(
        f"explore: the search space is too large: about {estimate} schedules with up to {max_faults} faults over "
        f"the {points} places a fault can strike in the fault-free run, more than limit={limit}. Try "
        f"{hint}a smaller scenario (fewer messages or workers in build), fewer kinds (faults=['lose_ack', "
        f"'crash_before_ack']), or raise limit= if you can wait.",
        estimate=estimate,
        points=points,
        limit=limit,
    )


def _name(fn: Any, default: str = "build") -> str:
    name = getattr(fn, "__name__", "")
    return name if name and name.isidentifier() else default


def replay_line(name: str, faults: Sequence[FaultPoint], multi_queue: bool = False, slow_by: float = 5.0) -> str:
    """One line of Python that rebuilds a schedule's run with the learner's own ``build``."""
    by_kind: dict[str, list[FaultPoint]] = {}
    for p in faults:
        by_kind.setdefault(p.kind, []).append(p)
    parts = []
    for kind, points in by_kind.items():
        if multi_queue and kind != "lose_confirm":
            keys = {(p.msg, p.attempt, p.queue) for p in points}
            test = f"(m.id, m.attempt, m.queue) in {_set_text(keys)}"
        else:
            keys2 = {(p.msg, p.attempt) for p in points}
            test = f"(m.id, m.attempt) in {_set_text(keys2)}"
        parts.append(f"{kind}=lambda m: {test}")
    if slow_by != 5.0 and "slow" in by_kind:
        parts.append(f"slow_by={slow_by:g}")
    return f"b = {name}(eb.Faults({', '.join(parts)})); b.run()"


def _set_text(keys: set[tuple]) -> str:
    return "{" + ", ".join(repr(k) for k in sorted(keys, key=lambda k: tuple(str(x) for x in k))) + "}"
