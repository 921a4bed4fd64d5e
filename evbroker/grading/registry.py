"""The checks exercise notebooks call, by id.

A check is one decorated function in ``evbroker/grading/checks_NN.py`` (NN = the exercise
notebook's number); every such module is imported the first time an unknown id is looked up::

    from evbroker.grading import register

    @register("02-stacked", points=3, title="stacked topology")
    def _(build_topology):
        ...  # raise CheckFailed(...) on a wrong answer; return None for full points

Ids look like ``NN-some-words``: NN is the notebook's number, and the id is also the nbgrader
``grade_id`` of the graded cell that calls it (nbgrader accepts letters, digits, ``_`` and ``-``).
An id never changes once published (gradebooks and tests name it); when a question moves to
another exercise notebook, ``register(..., exercise="08")`` says where it lives now.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evbroker.errors import EvbrokerError, did_you_mean

ID_PATTERN = re.compile(r"^[0-9]{2}-[a-z0-9]+(?:-[a-z0-9]+)*$")
CHECK_MODULE_PREFIX = "checks_"

CheckFunction = Callable[[Any], float | None]


@dataclass(frozen=True)
class Check:
    """A registered check: its id, what it is worth, a short title, and the function that judges."""

    id: str
    points: float
    title: str
    fn: CheckFunction
    exercise: str | None = None

    @property
    def notebook(self) -> str:
        """The number of the exercise notebook that asks it, e.g. "02": the id's, unless it moved."""
        return self.exercise or self.id[:2]


_CHECKS: dict[str, Check] = {}
_loaded = False


def register(
    check_id: str, *, points: float, title: str, exercise: str | None = None
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as check ``check_id``, worth ``points``.

    ``exercise`` is the number of the exercise notebook that asks it, when that is not the
    id's own number (a question that moved to another notebook keeps its id).

    The function receives the learner's answer. It raises :class:`CheckFailed` when the answer
    is wrong, and returns ``None`` for full points (or a number between 0 and ``points`` for
    partial credit).
    """
    if not isinstance(check_id, str) or not ID_PATTERN.match(check_id):
        raise EvbrokerError(
            f"check id must look like 'NN-some-words' (the notebook's number, then lowercase words "
            f"joined by '-'), e.g. '02-stacked-topology' (got {check_id!r})"
        )
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        raise EvbrokerError(f"check {check_id!r}: points must be a number > 0 (got {points!r})")
    if not isinstance(title, str) or not title.strip():
        raise EvbrokerError(f"check {check_id!r}: title must be a short non-empty text (got {title!r})")
    if exercise is not None and (not isinstance(exercise, str) or not re.fullmatch(r"[0-9]{2}", exercise)):
        raise EvbrokerError(
            f"check {check_id!r}: exercise must be an exercise notebook's two-digit number such as '08' "
            f"(got {exercise!r})"
        )

    def decorate(fn: CheckFunction) -> CheckFunction:
        old = _CHECKS.get(check_id)
        if old is not None and _where(old.fn) != _where(fn):
            raise EvbrokerError(
                f"check {check_id!r} is already registered by {_where(old.fn)}; pick another id for {_where(fn)}"
            )
        _CHECKS[check_id] = Check(check_id, points, title.strip(), fn, exercise)
        return fn

    return decorate


def _where(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def load_checks() -> None:
    """Import every ``evbroker.grading.checks_*`` module (each registers its checks on import)."""
    global _loaded
    if _loaded:
        return
    package = importlib.import_module("evbroker.grading")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith(CHECK_MODULE_PREFIX):
            importlib.import_module(f"evbroker.grading.{info.name}")
    _loaded = True


def get_check(check_id: str) -> Check:
    """The check registered as ``check_id``; an error that suggests the closest id otherwise."""
    if check_id not in _CHECKS:
        load_checks()
    if check_id not in _CHECKS:
        raise EvbrokerError(
            f"there is no check {check_id!r}{did_you_mean(check_id, _CHECKS)}; check cells call "
            "check('NN-name', answer) with the id written in the exercise"
        )
    return _CHECKS[check_id]


def registered(notebook: str | None = None) -> list[Check]:
    """Every registered check (of one notebook number, e.g. "02"), in registration order."""
    load_checks()
    return [c for c in _CHECKS.values() if notebook is None or c.notebook == notebook]
