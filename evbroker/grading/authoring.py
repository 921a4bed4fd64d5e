"""Helpers for writing checks: run the learner's code across seeds and scenarios, compare in
the learner's terms, and say how to replay a failure.

A typical check::

    @register("05-payment", points=3, title="idempotent payment handler")
    def _(handle):
        expect_callable(handle, "handle", params=2)
        for t in trials(seeds=range(20), faults={"crash before ack": eb.Faults(crash_before_ack=0.3)}):
            with t:
                b = eb.Broker(seed=t.seed)
                ...
                run_broker(b)
                expect_equal(len(b.effects("charge")), 1, what="charges for order o1")

A failure inside ``with t:`` carries ``Replay: seed=7, faults: crash before ack``.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from evbroker.errors import EvbrokerError, one_of
from evbroker.grading.boundary import real_number
from evbroker.grading.outcome import CheckFailed, NotAnswered


@dataclass(frozen=True)
class Trial:
    """One run of a check: a seed and one value per scenario knob.

    ``t.seed``; ``t["faults"]`` is the value; ``t.replay`` describes it for the learner.
    Used as a context manager, it adds its replay line to any :class:`CheckFailed` raised inside.
    """

    seed: int
    values: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, knob: str) -> Any:
        return self.values[knob]

    @property
    def replay(self) -> str:
        parts = [f"seed={self.seed}"] + [f"{knob}: {label}" for knob, label in self.labels.items()]
        return ", ".join(parts)

    def __enter__(self) -> Trial:
        return self

    def __exit__(self, etype: type | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(exc, CheckFailed) and not isinstance(exc, NotAnswered):
            exc.with_replay(self.replay)
        return False


def trials(seeds: Iterable[int] = range(10), **knobs: Mapping[str, Any] | Sequence[Any]) -> Iterator[Trial]:
    """Every combination of a seed and one value per knob, scenario by scenario, seeds fastest.

    A knob is a mapping ``{label: value}`` (the label is what the learner reads in a replay
    line) or a sequence of values (labelled by their ``repr``)::

        trials(seeds=range(5), faults={"no faults": None, "lost acks": eb.Faults(lose_ack=0.5)})
    """
    seeds = list(seeds)
    if not seeds:
        raise EvbrokerError("trials(seeds=...) needs at least one seed, e.g. seeds=range(10)")
    labelled = {knob: _labelled(knob, options) for knob, options in knobs.items()}
    for combo in itertools.product(*(options.items() for options in labelled.values())):
        labels = {knob: label for knob, (label, _) in zip(labelled, combo, strict=True)}
        values = {knob: value for knob, (_, value) in zip(labelled, combo, strict=True)}
        for seed in seeds:
            yield Trial(seed, values, labels)


def _labelled(knob: str, options: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
    if isinstance(options, Mapping):
        result = {str(label): value for label, value in options.items()}
    elif isinstance(options, Sequence) and not isinstance(options, str):
        result = {repr(value): value for value in options}
    else:
        raise EvbrokerError(f"trials({knob}=...) must be a dict {{label: value}} or a list of values (got {options!r})")
    if not result:
        raise EvbrokerError(f"trials({knob}=...) needs at least one value")
    return result


# ---------------------------------------------------------------------------- learner's code


def call_answer(fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; turn what it raises into a failure the learner can read.

    ``NotImplementedError`` -> :class:`NotAnswered`; anything else -> :class:`CheckFailed`
    naming the call (``what``, default ``"name(...)"``) and the error.
    """
    what = what or f"{getattr(fn, '__name__', 'your function')}(...)"
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAnswered() from None
    except CheckFailed:
        raise
    except EvbrokerError as exc:
        raise CheckFailed(f"{what} was rejected by the broker: {exc}") from None
    except Exception as exc:
        raise CheckFailed(f"{what} raised {type(exc).__name__}: {exc}") from None


def run_broker(broker: Any, until: float | None = None) -> None:
    """Run a broker that holds the learner's code, with failures put in the learner's terms.

    A handler still raising its ``NotImplementedError`` stub -> :class:`NotAnswered` (even when
    the redelivery storm it causes stops the run); a run that cannot settle or that the
    learner's code broke -> :class:`CheckFailed` with the broker's explanation.
    """
    try:
        broker.run(until=until)
    except EvbrokerError as exc:
        expect_answered(broker.trace)
        raise CheckFailed(f"the run did not finish: {exc}") from None
    expect_answered(broker.trace)


def expect_answered(trace: Iterable[Any]) -> None:
    """Raise :class:`NotAnswered` if a handler in ``trace`` failed on its ``NotImplementedError`` stub."""
    for event in trace:
        if getattr(event, "kind", None) == "handler-error" and "NotImplementedError" in (event.detail or ""):
            raise NotAnswered()


def expect_callable(answer: Any, name: str, *, params: int | None = None) -> None:
    """Fail unless ``answer`` is a function (taking ``params`` positional arguments, if given)."""
    if not callable(answer):
        raise CheckFailed(f"{name} should be a function you define with `def {name}(...)`; got {_kind(answer)}")
    if params is None:
        return
    try:
        inspect.signature(answer).bind(*range(params))
    except TypeError:
        raise CheckFailed(f"{name} should take {params} argument(s); yours is {name}{_sig(answer)}") from None
    except ValueError:
        return


def expect_number(answer: Any, what: str = "your answer") -> float:
    """Return ``answer`` as a plain ``int`` or ``float``, or fail saying a number was expected.

    Exact built-in numbers pass as they are; numpy numbers (and other real-number types) count
    by their value; a subclass of ``int`` or ``float`` is refused, since its ``==`` could
    claim anything.
    """
    if answer is None or answer is Ellipsis:
        raise NotAnswered(f"{what} is still {answer!r}: set it to a number, run that cell, then run this check.")
    if type(answer) in (int, float) and not (type(answer) is float and math.isnan(answer)):
        return answer
    by_value = real_number(answer)
    if by_value is not None:
        return by_value
    home = (type(answer).__module__ or "").split(".")[0]
    if type(answer) not in (bool, float) and isinstance(answer, (int, float)) and home != "numpy":
        raise CheckFailed(f"{what} should be a plain number such as 3; got a {type(answer).__name__}")
    raise CheckFailed(f"{what} should be a number such as 3; got {_kind(answer)}")


def expect(condition: object, message: str) -> None:
    """Fail with ``message`` (in the learner's terms, without the answer) unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual: Any, expected: Any, *, what: str, reveal: bool = False, hint: str = "") -> None:
    """Fail unless ``actual == expected``.

    The message says ``what`` was ``actual``; it names ``expected`` only when ``reveal=True``
    (use it for facts of the scenario, never for the number the learner must predict).
    """
    if actual == expected:
        return
    if reveal:
        message = f"{what}: expected {expected!r}, got {actual!r}."
    else:
        message = f"{what}: got {actual!r}, which is not right."
    raise CheckFailed(f"{message} {hint}".strip())


def expect_close(actual: float, expected: float, *, what: str, tolerance: float = 1e-9, reveal: bool = False) -> None:
    """Like :func:`expect_equal` for numbers, within an absolute ``tolerance``."""
    number = expect_number(actual, what)
    if abs(number - expected) > tolerance:
        expect_equal(number, expected, what=what, reveal=reveal)


def _kind(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _sig(fn: Any) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"


def count_times(n: int) -> str:
    """How often something happened, in words: 0 -> "never", 1 -> "once", 2 -> "twice", 3 -> "3 times"."""
    return {0: "never", 1: "once", 2: "twice"}.get(n, f"{n} times")


def pick(options: Mapping[str, Any], label: str, knob: str = "fault") -> Any:
    """``options[label]`` for a replay's knob (a fault, a scenario), or an error that lists the labels."""
    if label not in options:
        raise one_of(knob, label, options)
    return options[label]
