"""Self-check one notebook file: read it, restore its locked cells from the source, run it, mark it.

This is the learner's own check (``make check``): its check cells run in the learner's kernel
and their printed result lines are read back. The classroom grader never does that; it judges
answers in its own process (see :mod:`evbroker.grading.judge`).
"""

from __future__ import annotations

import time
from pathlib import Path

from nbformat import NotebookNode

from evbroker.build import read_notebook
from evbroker.grading.cells import GradedCell, graded_cells, is_graded
from evbroker.grading.execution import ERROR, TIMEOUT, NotebookRun, run_notebook
from evbroker.grading.marking import UNANSWERED_ERRORS, mark
from evbroker.grading.reports import NotebookReport, ungraded
from evbroker.grading.restore import restore_locked_cells


def assess(
    path: Path,
    *,
    source: Path | None = None,
    student: str = "",
    cell_timeout: float = 60,
    timeout: float = 600,
) -> NotebookReport:
    """Grade the notebook at ``path``.

    With a ``source`` (its solution notebook), the questions are the source's graded cells and
    the submission's locked cells are restored from it first; without one, the notebook is run
    as it is and its own graded cells are the questions (a learner's self-check). The kernel
    starts in the source's folder (or the notebook's).
    """
    path = Path(path)
    start = time.monotonic()
    name = (source or path).stem
    source_nb = read_notebook(source) if source else None
    graded = graded_cells(source_nb) if source_nb is not None else []
    try:
        nb = read_notebook(path)
    except Exception as exc:  # invalid JSON, not a notebook, unreadable file
        note = f"could not read {path.name}: {_unreadable(exc)}"
        return ungraded(student, name, str(path), graded, "invalid-notebook", note)
    report = NotebookReport(student, name, str(path))
    if source_nb is not None:
        restored = restore_locked_cells(nb, source_nb)
        nb = restored.nb
        report.notes += restored.notes()
        if restored.missing_graded:
            report.statuses.append("missing-cells")
    else:
        graded = graded_cells(nb)
    run = run_notebook(nb, (source or path).resolve().parent, cell_timeout=cell_timeout, timeout=timeout)
    _add_run(report, nb, graded, run)
    report.seconds = time.monotonic() - start
    return report


def _add_run(report: NotebookReport, nb: NotebookNode, graded: list[GradedCell], run: NotebookRun) -> None:
    report.questions = mark(nb, graded, run)
    if run.status != "ok":
        report.statuses.append(run.status)
        report.notes.append(run.detail)
    for index, cell_run in run.cells.items():
        if cell_run.status == TIMEOUT:
            report.statuses.append("cell-timeout")
            report.notes.append(f"cell {index + 1} was {cell_run.evalue} and interrupted")
        elif cell_run.status == ERROR and not is_graded(nb.cells[index]) and cell_run.ename not in UNANSWERED_ERRORS:
            report.cell_errors.append(f"cell {index + 1} raised {cell_run.ename}: {_first_line(cell_run.evalue)}")


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, ValueError) and "JSON" in str(exc):
        return "it is not valid JSON (cut short, or edited outside Jupyter?)"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return f"it is not a valid notebook ({type(exc).__name__}: {_first_line(exc)})"


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0][:200] if lines else ""
