"""Turn an executed notebook into points per question, with a message a learner can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nbformat import NotebookNode

from evbroker.errors import EvbrokerError
from evbroker.grading.cells import GradedCell, grade_id, is_answer
from evbroker.grading.execution import ERROR, NOT_RUN, TIMEOUT, NotebookRun
from evbroker.grading.outcome import FAILED as FAILED_MARK
from evbroker.grading.outcome import NOT_ANSWERED_HINT, format_points
from evbroker.grading.registry import get_check

PASSED, PARTIAL, FAILED, UNANSWERED = "passed", "partial", "failed", "unanswered"
MISSING, CRASHED = "missing", "error"
#: A check cell's printed result, e.g. "✔ 02-stacked stacked topology — 3/3 points".
RESULT_LINE = re.compile(r"^[✔◐✘] (?P<id>[A-Za-z0-9_-]+) (?P<title>.*?) — (?P<got>[0-9.]+)/(?P<max>[0-9.]+) points")
UNANSWERED_ERRORS = ("NotAnswered", "NotImplementedError")


@dataclass(frozen=True)
class Question:
    """One graded question's outcome: points out of ``max_points`` and why."""

    id: str
    title: str
    points: float
    max_points: float
    status: str
    message: str = ""

    def score(self) -> str:
        return f"{format_points(self.points)}/{format_points(self.max_points)}"


def mark(nb: NotebookNode, graded: list[GradedCell], run: NotebookRun) -> list[Question]:
    """Score each of the source's ``graded`` cells from its run in ``nb`` (matched by grade_id)."""
    positions = {grade_id(cell): index for index, cell in enumerate(nb.cells) if grade_id(cell)}
    unanswered = _unanswered_cells(nb, run)
    return [_mark_one(g, positions.get(g.grade_id), run, unanswered) for g in graded]


def _unanswered_cells(nb: NotebookNode, run: NotebookRun) -> set[int]:
    return {
        index
        for index, cell_run in run.cells.items()
        if cell_run.status == ERROR and cell_run.ename in UNANSWERED_ERRORS and is_answer(nb.cells[index])
    }


def _mark_one(g: GradedCell, index: int | None, run: NotebookRun, unanswered: set[int]) -> Question:
    name = title(g.grade_id)
    if index is None:
        return Question(g.grade_id, name, 0, g.points, MISSING, "the graded cell is missing, so it was not graded")
    cell_run = run.cells.get(index)
    if cell_run is None or cell_run.status == NOT_RUN:
        why = cell_run.evalue if cell_run and cell_run.evalue else run.detail or "the notebook stopped before this cell"
        return Question(g.grade_id, name, 0, g.points, NOT_RUN, f"not run: {why}")
    if cell_run.status == TIMEOUT:
        message = f"the check was {cell_run.evalue}: does your code loop forever or wait on something?"
        return Question(g.grade_id, name, 0, g.points, TIMEOUT, message)
    if cell_run.status == ERROR:
        headline = RESULT_LINE.match(cell_run.headline)
        name = name or (headline["title"] if headline and headline["id"] == g.grade_id else "")
        return _mark_error(g, name, cell_run.ename, cell_run.evalue, index, unanswered)
    return _mark_ok(g, name, cell_run.stdout)


def _mark_error(g: GradedCell, title: str, ename: str, evalue: str, index: int, unanswered: set[int]) -> Question:
    if ename in UNANSWERED_ERRORS or (ename == "NameError" and any(i < index for i in unanswered)):
        return Question(g.grade_id, title, 0, g.points, UNANSWERED, f"Not answered yet. {NOT_ANSWERED_HINT}")
    if ename == "CheckFailed":
        return Question(g.grade_id, title, 0, g.points, FAILED, evalue)
    return Question(g.grade_id, title, 0, g.points, CRASHED, f"{ename}: {evalue}".strip(": "))


def _mark_ok(g: GradedCell, title: str, stdout: str) -> Question:
    """A check cell that ran without error: the points its result line says (none without one)."""
    for line in stdout.splitlines():
        found = RESULT_LINE.match(line.strip())
        if found and found["id"] == g.grade_id and not line.startswith(FAILED_MARK):
            points = min(float(found["got"]), g.points)
            status = PASSED if points >= g.points else PARTIAL
            return Question(g.grade_id, title or found["title"], points, g.points, status, line.strip())
    return Question(g.grade_id, title, 0, g.points, CRASHED, "the check cell finished without reporting a result")


def title(check_id: str) -> str:
    """The registered check's title ("" when this process does not know the check)."""
    try:
        return get_check(check_id).title
    except EvbrokerError:
        return ""


def total(questions: list[Question]) -> tuple[float, float]:
    return sum(q.points for q in questions), sum(q.max_points for q in questions)
