"""Put a submission's locked cells back as the source has them, so a learner cannot weaken a check.

Cells are matched by nbgrader ``grade_id``. A locked cell the learner edited is replaced by
the source's; a duplicate of one is dropped; a missing locked cell that is not graded (set-up,
instructions) is put back after its neighbour; a missing graded cell is reported and its
question scores zero (as nbgrader refuses to grade a notebook without it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from nbformat import NotebookNode

from evbroker.grading.cells import grade_id, is_graded, is_locked


@dataclass
class Restored:
    """The notebook to run, and what had to be repaired in it."""

    nb: NotebookNode
    edited: list[str] = field(default_factory=list)
    missing_graded: list[str] = field(default_factory=list)
    reinserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        notes = [f"graded cell {gid!r} was edited; the original was put back" for gid in self.edited]
        notes += [f"graded cell {gid!r} is missing; its question could not be graded" for gid in self.missing_graded]
        notes += [f"locked cell {gid!r} was missing; the original was put back" for gid in self.reinserted]
        notes += [f"a copy of locked cell {gid!r} was removed" for gid in self.duplicates]
        return notes


def restore_locked_cells(submission: NotebookNode, source: NotebookNode) -> Restored:
    """A copy of ``submission`` whose locked cells are the source's; the submission is left as it was."""
    locked = {grade_id(cell): cell for cell in source.cells if is_locked(cell) and grade_id(cell)}
    restored = Restored(copy.deepcopy(submission))
    cells: list[NotebookNode] = []
    for cell in restored.nb.cells:
        gid = grade_id(cell)
        if gid not in locked:
            cells.append(cell)
        elif any(grade_id(c) == gid for c in cells):
            restored.duplicates.append(gid)
        else:
            if cell.source != locked[gid].source or cell.cell_type != locked[gid].cell_type:
                restored.edited.append(gid)
            cells.append(_fresh(locked[gid]))
    restored.nb.cells = cells
    _put_back_missing(restored, source, locked)
    return restored


def _put_back_missing(restored: Restored, source: NotebookNode, locked: dict[str, NotebookNode]) -> None:
    present = {grade_id(cell) for cell in restored.nb.cells}
    previous: str | None = None
    for cell in source.cells:
        gid = grade_id(cell)
        if gid is None:
            continue
        if gid in locked and gid not in present:
            if is_graded(cell):
                restored.missing_graded.append(gid)
                continue
            restored.nb.cells.insert(_after(restored.nb, previous), _fresh(cell))
            restored.reinserted.append(gid)
            present.add(gid)
        if gid in present:
            previous = gid


def _after(nb: NotebookNode, gid: str | None) -> int:
    for index, cell in enumerate(nb.cells):
        if gid is not None and grade_id(cell) == gid:
            return index + 1
    return 0


def _fresh(cell: NotebookNode) -> NotebookNode:
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell
