"""Run a registered check on a learner's answer: ``check("02-stacked", build_topology)``."""

from __future__ import annotations

import functools
import types
from typing import Any

from evbroker.errors import EvbrokerError
from evbroker.grading.outcome import CheckFailed, NotAnswered, Result
from evbroker.grading.registry import Check, get_check


class _Unanswered(BaseException):
    """Carries a stub's NotImplementedError past code that catches ``Exception`` (the broker does)."""


def check(check_id: str, answer: Any) -> None:
    """Check ``answer`` against exercise question ``check_id`` and print the points earned.

    Raises :class:`CheckFailed` (an ``AssertionError``) when the answer is wrong, with what went
    wrong and how to replay it; :class:`NotAnswered` when the answer is still the stub.
    """
    print(score(check_id, answer).line())


def score(check_id: str, answer: Any) -> Result:
    """Like :func:`check`, but return the :class:`Result` instead of printing it."""
    c = get_check(check_id)
    try:
        earned = c.fn(guard(answer))
    except (_Unanswered, NotImplementedError):
        raise NotAnswered().for_check(c) from None
    except CheckFailed as failure:
        raise failure.for_check(c) from None
    return Result(c.id, c.title, _points(c, earned), c.points)


def _points(c: Check, earned: Any) -> float:
    if earned is None:
        return c.points
    if isinstance(earned, bool) or not isinstance(earned, (int, float)) or not 0 < earned <= c.points:
        raise EvbrokerError(
            f"check {c.id!r} returned {earned!r}; a check returns None (full points) or a number in "
            f"(0, {c.points:g}] and raises CheckFailed for no points"
        )
    return float(earned) if isinstance(earned, float) else earned


def guard(answer: Any) -> Any:
    """Wrap a plain function answer so that a stub's ``NotImplementedError`` cannot be swallowed.

    A handler stub called by the broker would otherwise count as a processing failure and be
    redelivered; this way the check reports "not answered yet" instead.
    """
    if not isinstance(answer, types.FunctionType):
        return answer

    @functools.wraps(answer)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return answer(*args, **kwargs)
        except NotImplementedError as exc:
            raise _Unanswered() from exc

    return guarded
