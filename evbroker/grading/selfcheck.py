"""A learner's self-check: ``python -m evbroker.grading check exercises/02_x.ipynb``.

Runs the notebook as saved in a fresh kernel (nothing is written back) and prints points per
question, the total, and what to look at for each question that is not full marks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from evbroker.build import read_notebook
from evbroker.grading.assess import assess
from evbroker.grading.reports import NotebookReport
from evbroker.grading.restore import restore_locked_cells
from evbroker.grading.tables import details, text_table


def self_check(
    path: Path, *, cell_timeout: float = 120, timeout: float = 900, out: TextIO = sys.stdout
) -> NotebookReport:
    """Run and mark ``path``, print the table to ``out``, and return the report."""
    path = Path(path)
    print(f"Checking {path} in a fresh kernel...", file=out, flush=True)
    report = assess(path, cell_timeout=cell_timeout, timeout=timeout)
    report.notes += edited_check_cells(path)
    print(f"\n{text_table(report)}\n", file=out)
    for paragraph in details(report):
        print(paragraph, file=out)
    print(f"\n({report.seconds:.1f} s)", file=out)
    return report


def edited_check_cells(path: Path) -> list[str]:
    """Notes about graded cells that differ from the kit's source (``../solutions/<same name>``)."""
    source = path.resolve().parent.parent / "solutions" / path.name
    if not source.is_file() or source.resolve() == path.resolve():
        return []
    try:
        restored = restore_locked_cells(read_notebook(path), read_notebook(source))
    except Exception:
        return []
    return [
        f"you changed the check cell {gid!r}; your teacher's grader uses the original" for gid in restored.edited
    ] + [f"the check cell {gid!r} is missing; your teacher's grader gives it 0" for gid in restored.missing_graded]
