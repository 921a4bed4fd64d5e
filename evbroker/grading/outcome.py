"""What a check says: a pass (with its points) or a failure the learner can act on.

A failure is a :class:`CheckFailed`, a subclass of ``AssertionError`` so that nbgrader, nbval
and pytest all see a failing cell. In a notebook it renders as a short message instead of a
traceback: what went wrong in the learner's terms and how to replay it (seed, scenario).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evbroker.grading.registry import Check

PASSED = "✔"
PARTIAL = "◐"
FAILED = "✘"
NOT_ANSWERED_HINT = (
    "Write your answer in the cell above (replace `# YOUR CODE HERE` and `raise NotImplementedError()`), "
    "run that cell, then run this check again."
)


def format_points(value: float) -> str:
    """3 -> "3", 2.5 -> "2.5"."""
    return f"{value:g}"


@dataclass(frozen=True)
class Result:
    """A check that passed, fully or in part."""

    id: str
    title: str
    points: float
    max_points: float
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points

    def line(self) -> str:
        """The line the check cell prints, e.g. ``✔ 02-stacked stacked topology — 3/3 points``.

        The classroom grader reads the points back from this line.
        """
        mark = PASSED if self.passed else PARTIAL
        text = f"{mark} {self.id} {self.title} — {format_points(self.points)}/{format_points(self.max_points)} points"
        return f"{text}: {self.note}" if self.note else text


class CheckFailed(AssertionError):
    """The learner's answer does not do what the exercise asks.

    ``reason`` says what went wrong in the learner's terms, never what the answer is;
    ``replay`` says how to see it again (``"seed=3, faults: crash before ack"``).
    """

    def __init__(self, reason: str, *, replay: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.replay = replay
        self.check: Check | None = None

    def with_replay(self, replay: str) -> CheckFailed:
        """Attach replay information unless the failure already carries some; returns self."""
        if not self.replay:
            self.replay = replay
        return self

    def for_check(self, check: Check) -> CheckFailed:
        """Tie the failure to the check it came from (for its id, title and points); returns self."""
        self.check = check
        return self

    def __str__(self) -> str:
        return f"{self.reason}\nReplay: {self.replay}" if self.replay else self.reason

    def header(self) -> str:
        if self.check is None:
            return f"{FAILED} check failed"
        c = self.check
        return f"{FAILED} {c.id} {c.title} — 0/{format_points(c.points)} points"

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the header and the message."""
        return [self.header(), *str(self).splitlines()]


class NotAnswered(CheckFailed):
    """The answer is still the exercise's stub (it raised ``NotImplementedError``)."""

    def __init__(self, reason: str = "", *, replay: str = "") -> None:
        super().__init__(reason or f"Not answered yet. {NOT_ANSWERED_HINT}", replay=replay)
