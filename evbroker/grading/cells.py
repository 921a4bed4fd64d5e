"""The nbgrader metadata of exercise notebooks: which cells are answers, which are graded, and
whether a solution notebook agrees with the registered checks.

Every cell that matters carries ``metadata.nbgrader`` (nbgrader schema 3)::

    answer cell   {"solution": true,  "grade": false, "locked": false, "grade_id": "02-stacked-answer"}
    graded cell   {"solution": false, "grade": true,  "locked": true,  "grade_id": "02-stacked", "points": 3}
    locked cell   {"solution": false, "grade": false, "locked": true,  "grade_id": "02-setup"}

A graded cell calls exactly one check, whose id is the cell's ``grade_id``:
``check("02-stacked", build_topology)``; its ``points`` equal the check's points.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from evbroker.build import BEGIN_SOLUTION, END_SOLUTION, BuildError, read_notebook, strip_region
from evbroker.errors import EvbrokerError
from evbroker.grading.registry import ID_PATTERN, get_check, registered

GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["']([^"']+)["']""")
SCHEMA_VERSION = 3


def nbgrader(cell: NotebookNode) -> dict[str, Any]:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader(cell).get("grade_id")


def is_graded(cell: NotebookNode) -> bool:
    """An autograded cell: ``grade`` and not ``solution`` (nbgrader's "autograder tests")."""
    md = nbgrader(cell)
    return bool(md.get("grade")) and not md.get("solution")


def is_answer(cell: NotebookNode) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_locked(cell: NotebookNode) -> bool:
    """A cell the learner must not change: the grader puts the source's version back."""
    md = nbgrader(cell)
    return (bool(md.get("locked")) or is_graded(cell)) and not md.get("solution")


@dataclass(frozen=True)
class GradedCell:
    """A graded cell of a source notebook: its position, its id (= the check's id) and its points."""

    index: int
    grade_id: str
    points: float


def graded_cells(nb: NotebookNode) -> list[GradedCell]:
    return [
        GradedCell(index, nbgrader(cell)["grade_id"], float(nbgrader(cell).get("points", 0)))
        for index, cell in enumerate(nb.cells)
        if is_graded(cell) and nbgrader(cell).get("grade_id")
    ]


def metadata(kind: str, grade_id: str, points: float | None = None) -> dict[str, Any]:
    """The ``metadata.nbgrader`` dict for an ``"answer"``, ``"graded"`` or ``"locked"`` cell."""
    kinds = {
        "answer": {"solution": True, "grade": False, "locked": False},
        "graded": {"solution": False, "grade": True, "locked": True},
        "locked": {"solution": False, "grade": False, "locked": True},
    }
    if kind not in kinds:
        raise EvbrokerError(f"cell kind must be one of {', '.join(map(repr, kinds))} (got {kind!r})")
    if (kind == "graded") != (points is not None):
        raise EvbrokerError(f"points= is needed for a graded cell and only for one (got kind={kind!r}, {points=})")
    md = {**kinds[kind], "grade_id": grade_id, "schema_version": SCHEMA_VERSION}
    if points is not None:
        md["points"] = points
    return md


# ---------------------------------------------------------------------------- validation


def validate_solution(path: Path | str) -> list[str]:
    """Every way the solution notebook at ``path`` disagrees with nbgrader or the registered checks.

    An empty list means: grade ids are valid and unique; every graded cell is locked, calls
    exactly the check named by its ``grade_id``, and carries that check's points; solution
    markers sit only in answer cells and are balanced; every check registered for the
    notebook's number is called by some graded cell.
    """
    path = Path(path)
    nb = read_notebook(path)
    problems = list(_cell_problems(nb, path.name))
    number = path.name[:2]
    called = {g.grade_id for g in graded_cells(nb)}
    if number.isdigit():
        for c in registered(number):
            if c.id not in called:
                problems.append(f"{path.name}: check {c.id!r} is registered but no graded cell calls it")
    return problems


def _cell_problems(nb: NotebookNode, name: str) -> Iterator[str]:
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index + 1}"
        md = nbgrader(cell)
        has_marker = BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source
        if not md:
            if has_marker:
                yield f"{where}: has solution markers but no nbgrader metadata (make it an answer cell)"
            continue
        yield from _metadata_problems(md, where)
        gid = md.get("grade_id")
        if isinstance(gid, str):
            if gid in seen:
                yield f"{where}: grade_id {gid!r} is already used by cell {seen[gid]}"
            seen.setdefault(gid, index + 1)
        if has_marker and not md.get("solution"):
            yield f"{where}: has solution markers but is not an answer cell (nbgrader solution: false)"
        if md.get("solution") and has_marker:
            try:
                strip_region(cell.source, BEGIN_SOLUTION, END_SOLUTION, stub=(), where=where)
            except BuildError as exc:
                yield str(exc)
        if is_graded(cell):
            yield from _graded_problems(cell, md, where)


def _metadata_problems(md: dict[str, Any], where: str) -> Iterator[str]:
    for key in ("grade", "grade_id", "locked", "solution", "schema_version"):
        if key not in md:
            yield f"{where}: nbgrader metadata lacks {key!r}"
    gid = md.get("grade_id")
    if "grade_id" in md and (not isinstance(gid, str) or not GRADE_ID.match(gid)):
        yield f"{where}: grade_id must use only letters, digits, '_' and '-' (got {gid!r})"


def _graded_problems(cell: NotebookNode, md: dict[str, Any], where: str) -> Iterator[str]:
    gid = md.get("grade_id")
    if not md.get("locked"):
        yield f"{where}: graded cell {gid!r} should be locked"
    points = md.get("points")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
        yield f"{where}: graded cell {gid!r} needs points > 0 (got {points!r})"
    calls = CHECK_CALL.findall(cell.source)
    if calls != [gid]:
        yield f"{where}: graded cell {gid!r} should call check({gid!r}, ...) exactly once (it calls {calls})"
        return
    if not isinstance(gid, str) or not ID_PATTERN.match(gid):
        yield f"{where}: graded cell id {gid!r} is not a check id like '02-stacked-topology'"
        return
    try:
        registered_points = get_check(gid).points
    except EvbrokerError as exc:
        yield f"{where}: {exc}"
        return
    if points != registered_points:
        yield f"{where}: graded cell {gid!r} is worth {points!r} points but check {gid!r} gives {registered_points:g}"
