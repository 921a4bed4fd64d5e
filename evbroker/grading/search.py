"""Checks that search instead of sample: every fault schedule of a small scenario, via ``eb.explore``.

Random seeds try a few placements of faults, one kind at a time; a wrong answer whose failure
needs a rare placement (two faults together, a fault on a redelivery) or a rare payload (two
instalments of the same amount) slips through them. A searched check builds a small
scenario whose payloads include those cases, runs the learner's code under every schedule of
up to ``max_faults`` faults, and reports the smallest failing one in the learner's terms,
with a line that rebuilds it.

A scenario is ``scenario(answer, faults) -> Run`` (a broker set up, not run, and the orders
it placed); a judge is ``judge(run)``, raising :class:`CheckFailed` in the learner's terms.
The check injects the faults itself (``inject=True``), so a set-up that forgets or refuses
to hand ``faults`` on is still put through them.

After the search, a searched check also runs its random phase (:func:`expect_every_sample`): a
bigger scenario ``sampled(answer, seed, fault) -> Run``, already run, for every seed under every
fault, judged by the same judge; a failure there names its seed and fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import evbroker as eb
from evbroker.core.explore import SearchTooLarge
from evbroker.errors import one_of
from evbroker.grading.authoring import trials
from evbroker.grading.outcome import CheckFailed

Scenario = Callable[[Any, eb.Faults], Any]  # (answer, faults) -> checks_04.Run, not yet run
Judge = Callable[[Any], None]
Sampled = Callable[[Any, int, str], Any]  # (answer, seed, fault label) -> checks_04.Run, already run


@dataclass(frozen=True)
class Search:
    """One searched check: its scenario, its judge, the faults it places and how many at once."""

    scenario: Scenario
    judge: Judge
    kinds: tuple[str, ...]
    max_faults: int = 2
    slow_by: float = 5.0
    #: Only faults in these queues (their workers, and publishes to them); None: everywhere.
    queues: tuple[str, ...] | None = None
    #: Refuse an answer whose runs make more schedules than this (a right answer makes a few hundred).
    limit: int = 4000

    def only(self, point: eb.FaultPoint) -> bool:
        return self.queues is None or point.queue in self.queues

    def faults(self) -> eb.Faults:
        return eb.Faults(**dict.fromkeys(self.kinds, 1.0), slow_by=self.slow_by)


def explore_answer(
    search: Search, answer: Any, *, smallest_only: bool = False
) -> tuple[eb.Exploration, dict[int, Any]]:
    """Run ``answer`` through every schedule of ``search``; returns the result and each broker's Run.

    ``smallest_only``: stop at the first size of schedule that fails (what a check needs)."""
    runs: dict[int, Any] = {}

    def build(faults: eb.Faults) -> eb.Broker:
        run = search.scenario(answer, faults)
        runs[id(run.broker)] = run
        return run.broker

    def invariant(b: eb.Broker) -> bool | str:
        run = runs[id(b)]
        try:
            search.judge(run)
        except CheckFailed as failure:
            return failure.reason
        return True

    res = eb.explore(
        build,
        invariant,
        faults=search.faults(),
        max_faults=search.max_faults,
        inject=True,
        smallest_only=smallest_only,
        limit=search.limit,
        only=search.only,
    )
    return res, runs


def expect_every_schedule(check_id: str, answer_name: str, search: Search, answer: Any) -> eb.Exploration:
    """Fail with the smallest failing schedule of ``search`` for ``answer``, and how to replay it."""
    try:
        res, _ = explore_answer(search, answer, smallest_only=True)
    except SearchTooLarge as big:
        raise CheckFailed(
            f"{answer_name} makes the check's small scenario too big to try every fault on: its fault-free run "
            f"already has {big.points} places where a fault could strike (about {big.estimate} schedules of up "
            f"to {search.max_faults} faults; a right answer makes a few hundred). Does it publish, or fail and "
            "get redelivered, far more often than the work needs?",
            replay=f"the fault-free schedule. To watch it: b = ex{check_id[:2]}.replay_schedule({check_id!r}, "
            f"{answer_name}, []); print(b.trace.table())",
        ) from None
    if res.ok:
        return res
    v = res.violations[0]
    faults = [tuple(p)[:3] for p in v.faults]
    said = "; ".join(str(p) for p in v.faults) if v.faults else "no fault at all"
    if v.faults:
        n = len(v.faults)
        head = (
            f"Under {'this fault' if n == 1 else f'these {n} faults'} ({said}), it goes wrong. The check tries "
            f"every placement of up to {res.max_faults} faults, fewest first; this is the earliest of the "
            f"{len(res.violations)} smallest that fail ({res.schedules} schedules run):\n"
        )
    else:
        head = "Even with no fault at all, it goes wrong:\n"
    replay = (
        f"the schedule {faults!r}. To watch it: b = ex{check_id[:2]}.replay_schedule({check_id!r}, {answer_name}, "
        f"{faults!r}); print(b.trace.table())"
    )
    raise CheckFailed(head + v.message, replay=replay)


def replay_schedule_from(table: dict[str, Search], check_id: str, answer: Any, faults: Iterable[Any]) -> eb.Broker:
    """Rebuild one schedule of a searched check with ``answer``; returns the broker, already run."""
    if check_id not in table:
        raise one_of("replay_schedule: check_id", check_id, table)
    search = table[check_id]

    def build(f: eb.Faults) -> eb.Broker:
        return search.scenario(answer, f).broker

    return eb.explore.replay(  # type: ignore[attr-defined]
        build, list(faults), inject=True, kinds=search.faults(), only=search.only
    )


def replay_line(check_id: str, answer: str, seed: int, fault: str) -> str:
    """The replay text of a random run's failure: the seed and the fault, and the call that rebuilds the run."""
    module = check_id[:2]
    return (
        f"seed={seed}, fault: {fault}. To watch it: b = ex{module}.replay({check_id!r}, {answer}, "
        f"seed={seed}, fault={fault!r}); print(b.trace.table())"
    )


def sampled_failures(
    sampled: Sampled, faults: Mapping[str, Any], judge: Judge, answer: Any, seeds: Iterable[int]
) -> Iterator[tuple[int, str, CheckFailed]]:
    """Each (seed, fault label, failure) of the random phase that ``judge`` rejects, seeds fastest."""
    for t in trials(seeds=seeds, fault=faults):
        fault = t.labels["fault"]
        try:
            judge(sampled(answer, t.seed, fault))
        except CheckFailed as failure:
            yield t.seed, fault, failure


def expect_every_sample(
    check_id: str,
    answer_name: str,
    search: Search,
    answer: Any,
    *,
    sampled: Sampled,
    faults: Mapping[str, Any],
    seeds: Iterable[int],
) -> None:
    """A searched check's two phases: every schedule of ``search``, then every seed under every fault of
    ``sampled``, judged by ``search.judge``; fails on the first wrong run, with how to replay it.

    ``seeds``: the check module's ``SEEDS``, read by the check when it runs (the grader swaps them)."""
    expect_every_schedule(check_id, answer_name, search, answer)
    for seed, fault, failure in sampled_failures(sampled, faults, search.judge, answer, seeds):
        raise failure.with_replay(replay_line(check_id, answer_name, seed, fault)) from None
