"""Exhaustive fault-schedule search: how fast, and what it costs next to the alternatives.

Three measurements, each the median CPU time of this process over a few repeats (the machine
is shared; CPU time is what the search itself costs):

1. Lesson 05's scenario (two orders, two payment workers, every fault kind, up to two faults):
   ``eb.explore`` on the plain consumer and on the business-key one, in distinct schedules per
   second and time to exhaust. Beside it, the same space searched without deduplication: every
   ordered sequence of faults (choosing a then b apart from b then a) and no trace hashing,
   the way a naive nested loop over fault placements would do it.
2. Each searched exercise check (04-no-order-lost, 04-fix-double-charge, 05-payment-handler,
   05-fix-shipping, 05-idempotent-refund, 05-provider-charge), end to end
   (``score(check_id, answer)``) for a right answer (the whole space, then the random seeds)
   and wrong ones (the search stops at the smallest failing size; a wrong answer that passes
   the random seeds needs two faults), against the 20 random seeds the check also runs.
   Target: every check answers within 2 s. The checks of exercises 02 and 06 do not search
   (their module docstrings say why).
3. Bigger bounds for lesson 05's scenario (``max_faults=3``), to show how the space grows.

    .venv/bin/python benchmarks/explore.py        # 5 repeats
    .venv/bin/python benchmarks/explore.py 9      # repeats
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import evbroker as eb
from evbroker.build import ROOT
from evbroker.core.explore import FAULT_KINDS, _Search
from evbroker.grading import CheckFailed, score
from evbroker.grading import checks_04 as ex04
from evbroker.grading import checks_05 as ex05

sys.path.insert(0, str(ROOT / "tests"))  # the wrong answers the checks' tests reject
from test_checks_04 import declaring, random_failures_of, setting_up
from test_checks_05 import (
    by_payment,
    calling,
    charging,
    claim_then_call,
    claim_then_charge,
    refunding,
    shipping,
)

CHECK_TARGET_S = 2.0
LESSON_TARGET_S = 5.0


def charge(msg: eb.Message, ctx: eb.Context) -> None:
    ctx.effect("charge", order=msg.payload["order"], amount=msg.payload["amount"])


def charge_once_per_order(msg: eb.Message, ctx: eb.Context) -> None:
    if ctx.seen(msg.key):
        return
    ctx.effect("charge", order=msg.payload["order"], amount=msg.payload["amount"])
    ctx.remember(msg.key)


def two_orders(handler: Callable[..., Any]) -> Callable[[eb.Faults], eb.Broker]:
    """Lesson 05's scenario, as its 'Every way it can go wrong' section writes it."""

    def build(faults: eb.Faults) -> eb.Broker:
        b = eb.Broker(seed=0)
        b.queue("payments", guarantee="at-least-once", ack_timeout=3)
        b.worker("payments", handler, count=2, service_time=1, faults=faults)
        for i, order in enumerate(["order-1", "order-2"]):
            payload = {"order": order, "amount": 10 * (i + 1)}
            b.publish("payments", payload, at=0.5 * i, key=order, by="checkout", faults=faults)
        return b

    return build


def charged_once(b: eb.Broker) -> bool | str:
    counted = Counter(e["order"] for e in b.effects("charge"))
    wrong = [f"{o} charged {counted[o]} times" for o in ("order-1", "order-2") if counted[o] != 1]
    return "; ".join(wrong) or True


def undeduplicated(build: Callable[[eb.Faults], eb.Broker], invariant: Callable, max_faults: int) -> tuple[int, int]:
    """Every ordered sequence of up to ``max_faults`` faults, no dedupe: (runs, violations)."""
    search = _Search(build, invariant, FAULT_KINDS, 5.0, 1.0, False)
    runs = bad = 0
    stack: list[tuple] = [()]
    while stack:
        seq = stack.pop()
        run = search.run(frozenset(seq))
        runs += 1
        bad += not run.ok
        if len(seq) < max_faults:
            stack.extend((*seq, p) for p in run.asked if p not in seq)
    return runs, bad


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median CPU seconds of this process (other load on a shared machine disturbs it less than wall time)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return max(statistics.median(times), 1e-6), result


def outcome(check_id: str, answer: Any) -> str:
    try:
        score(check_id, answer)
    except CheckFailed:
        return "rejected"
    return "passed"


def seeds(module: Any, check_id: str) -> Callable[[Any], None]:
    """The 20 random seeds a check runs after it searched: every seed under every fault, until one fails."""
    return lambda answer: next(random_failures_of(module, check_id, answer, module.SEEDS), None)


random_seeds_04 = seeds(ex04, "04-fix-double-charge")
random_seeds_04_config = seeds(ex04, "04-no-order-lost")
random_seeds_05 = seeds(ex05, "05-payment-handler")
random_seeds_05_ship = seeds(ex05, "05-fix-shipping")
random_seeds_05_refund = seeds(ex05, "05-idempotent-refund")
random_seeds_05_provider = seeds(ex05, "05-provider-charge")


def main(repeats: int) -> int:
    worst_check = 0.0
    print(f"Lesson 05 scenario (two orders, {len(FAULT_KINDS)} fault kinds, up to 2 faults), median of {repeats}:")
    for name, handler in (("charge", charge), ("charge_once_per_order", charge_once_per_order)):
        build = two_orders(handler)
        secs, res = timed(lambda build=build: eb.explore(build, charged_once, max_faults=2), repeats)
        raw_secs, (runs, bad) = timed(lambda build=build: undeduplicated(build, charged_once, 2), max(1, repeats // 2))
        print(
            f"  {name:<22} explore: {res.schedules:5d} distinct schedules ({res.tried} fault sets) in "
            f"{secs * 1000:7.1f} ms = {res.schedules / secs:7.0f} schedules/s; {len(res.violations)} break"
        )
        print(
            f"  {'':<22} no dedupe: {runs:5d} runs (ordered sequences) in {raw_secs * 1000:7.1f} ms "
            f"= {runs / raw_secs:7.0f} runs/s; {bad} break; {raw_secs / secs:4.1f}x the time of explore"
        )
        if secs > LESSON_TARGET_S:
            print(f"  !! over the lesson target of {LESSON_TARGET_S:g} s")
    print(f"\nSearched checks, end to end, median of {repeats} (target: under {CHECK_TARGET_S:g} s each):")
    cases = [
        ("04-no-order-lost", "at-least-once, 6 (right)", declaring(ack_timeout=6.0), random_seeds_04_config),
        ("04-no-order-lost", "ack_timeout=60 (wrong)", declaring(ack_timeout=60.0), random_seeds_04_config),
        ("04-fix-double-charge", "exactly-once (right)", setting_up(guarantee="exactly-once"), random_seeds_04),
        ("04-fix-double-charge", "at-least-once (wrong)", setting_up(guarantee="at-least-once"), random_seeds_04),
        ("05-payment-handler", "(order, installment) (right)", charging(by_payment), random_seeds_05),
        (
            "05-payment-handler",
            "(order, amount) (wrong)",
            charging(lambda m: (m.key, m.payload["amount"])),
            random_seeds_05,
        ),
        ("05-payment-handler", 'when="after-ack" (wrong)', charging(by_payment, "after-ack"), random_seeds_05),
        ("05-payment-handler", "claim, then charge (wrong)", claim_then_charge, random_seeds_05),
        ("05-fix-shipping", "msg.key (right)", shipping(lambda m: m.key), random_seeds_05_ship),
        ("05-fix-shipping", "msg.id (wrong)", shipping(lambda m: m.id), random_seeds_05_ship),
        ("05-idempotent-refund", "note every refund (right)", refunding(), random_seeds_05_refund),
        (
            "05-idempotent-refund",
            "no note when skipped (wrong)",
            refunding(note_when_skipping=False),
            random_seeds_05_refund,
        ),
        ("05-provider-charge", "key (order, installment) (right)", calling(by_payment), random_seeds_05_provider),
        ("05-provider-charge", "no key (wrong)", calling(None), random_seeds_05_provider),
        ("05-provider-charge", "key msg.id (wrong)", calling(lambda m: m.id), random_seeds_05_provider),
        ("05-provider-charge", "claim, then call (wrong)", claim_then_call, random_seeds_05_provider),
    ]
    for check_id, label, answer, seeds in cases:
        secs, verdict = timed(lambda c=check_id, a=answer: outcome(c, a), repeats)
        seed_secs, _ = timed(lambda a=answer, s=seeds: s(a), repeats)
        worst_check = max(worst_check, secs)
        print(
            f"  {check_id:<21} {label:<33} {verdict:<8} {secs * 1000:7.1f} ms "
            f"(20 random seeds alone: {seed_secs * 1000:6.1f} ms)"
        )
    print(f"  slowest check: {worst_check * 1000:.0f} ms {'(within target)' if worst_check < CHECK_TARGET_S else '!!'}")
    print("\nHow the space grows (lesson 05 scenario, charge_once_per_order), explore against no dedupe:")
    build = two_orders(charge_once_per_order)
    for k in (1, 2, 3):
        secs, res = timed(lambda k=k: eb.explore(build, charged_once, max_faults=k), 1)
        raw_secs, (runs, _) = timed(lambda k=k: undeduplicated(build, charged_once, k), 1)
        print(
            f"  max_faults={k}: {res.schedules:6d} schedules in {secs * 1000:8.1f} ms; no dedupe: {runs:6d} runs in "
            f"{raw_secs * 1000:8.1f} ms ({raw_secs / secs:4.1f}x)"
        )
    return 0 if worst_check < CHECK_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
