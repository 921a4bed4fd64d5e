"""One notebook's grade: points per question, a status, and notes, as the gradebook stores them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evbroker.grading.cells import GradedCell
from evbroker.grading.marking import Question, title

#: Statuses of a whole notebook, most serious first.
STATUSES = (
    "tampering-suspected",
    "duplicate-submission",
    "unsandboxed",
    "invalid-notebook",
    "no-source",
    "grader-error",
    "kernel-failed",
    "kernel-died",
    "timeout",
    "cell-timeout",
    "missing-cells",
    "ok",
)


@dataclass
class NotebookReport:
    student: str
    notebook: str
    path: str
    questions: list[Question] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    digest: str = ""  # what was graded (submission, source, limits): a rerun skips an unchanged one

    @property
    def status(self) -> str:
        """ "ok", or every problem found joined by ";" (most serious first)."""
        found = [s for s in STATUSES if s in self.statuses and s != "ok"]
        return ";".join(found) or "ok"

    @property
    def points(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def max_points(self) -> float:
        return sum(q.max_points for q in self.questions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotebookReport:
        questions = [Question(**q) for q in data.get("questions", [])]
        return cls(**{**data, "questions": questions})


def ungraded(
    student: str, notebook: str, path: str, graded: list[GradedCell], status: str, note: str
) -> NotebookReport:
    """A report for a submission that could not be run at all: zero for every question."""
    questions = [
        Question(g.grade_id, title(g.grade_id), 0, g.points, "not-run", "not graded (see notes)") for g in graded
    ]
    return NotebookReport(student, notebook, path, questions, [status], [note])
