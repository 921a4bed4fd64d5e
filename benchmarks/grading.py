"""Grading time: per submission, for a class of N, sandboxed against unsandboxed; and the cheat list.

    .venv/bin/python benchmarks/grading.py sample          # each exercise: solution and blank, timed
    .venv/bin/python benchmarks/grading.py class 100       # a class of 100 (mixed exercises)
    .venv/bin/python benchmarks/grading.py class 100 --jobs 4   # notebooks graded at once (default 2)
    .venv/bin/python benchmarks/grading.py cheats          # each cheat of the grader tests, and its score

The class is made of the solutions and the blank exercises with varied answers: right,
blank, predictions off by one, a function answer from another exercise's stub, and now and
then an endless loop (which costs the cell limit). Times are wall-clock seconds of the whole
run on this machine (shared: other work on it slows the figures). Sandboxed grading is the
default; ``--unsandboxed`` on the same class gives the alternative the sandbox is compared to.
"""

from __future__ import annotations

import csv
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from evbroker.build import ROOT, read_notebook, write_notebook
from evbroker.grading.cells import grade_id, is_answer
from evbroker.grading.grader import Grader
from evbroker.grading.progress import ProgressBar
from evbroker.grading.submissions import find_submissions

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
LOOP = "while True:\n    pass"


def variant(source: Path, rng: random.Random):
    """A plausible submission of ``source``'s exercise: mostly right, partly blank or wrong."""
    solution = read_notebook(source)
    blank = read_notebook(ROOT / "exercises" / source.name)
    blanks = {grade_id(c): c.source for c in blank.cells if is_answer(c)}
    for cell in solution.cells:
        if not is_answer(cell) or cell.cell_type != "code":
            continue
        roll = rng.random()
        if roll < 0.2:
            cell.source = blanks.get(grade_id(cell), cell.source)
        elif roll < 0.3 and "= None" in cell.source:
            name = cell.source.split("=")[0].strip()
            cell.source += f"\n{name} = {rng.randint(0, 9)}"
        elif roll < 0.31:
            cell.source = LOOP
    return solution


def make_class(folder: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(n):
        source = SOLUTIONS[i % len(SOLUTIONS)]
        write_notebook(variant(source, rng), folder / f"student{i:03d}" / source.name)


JOBS = 2


def grade(folder: Path, out: Path, *, unsandboxed: bool = False, cell_timeout: float = 10) -> tuple[float, list]:
    submissions = find_submissions(folder, SOLUTIONS)
    grader = Grader(out, jobs=JOBS, cell_timeout=cell_timeout, timeout=300, unsandboxed=unsandboxed)
    start = time.perf_counter()
    reports = grader.grade(submissions, ProgressBar(len(submissions)))
    return time.perf_counter() - start, reports


def sample() -> None:
    print(f"{'exercise':45} {'solution s':>11} {'blank s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for source in SOLUTIONS:
            folder = Path(tmp) / source.stem
            write_notebook(read_notebook(source), folder / "right" / source.name)
            write_notebook(read_notebook(ROOT / "exercises" / source.name), folder / "blank" / source.name)
            _, reports = grade(folder, Path(tmp) / f"out-{source.stem}")
            seconds = {r.student: r.seconds for r in reports}
            print(f"{source.stem:45} {seconds['right']:11.1f} {seconds['blank']:8.1f}")


def whole_class(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        make_class(Path(tmp) / "in", n)
        wall, reports = grade(Path(tmp) / "in", Path(tmp) / "out")
        per = [r.seconds for r in reports]
        print(f"class of {n}, sandboxed, {JOBS} jobs: {wall:.1f} s wall, {wall / n:.2f} s per submission")
        print(f"  per submission (one worker): median {statistics.median(per):.1f} s, max {max(per):.1f} s")
        k = min(n, 20)
        make_class(Path(tmp) / "few", k, seed=1)
        boxed, _ = grade(Path(tmp) / "few", Path(tmp) / "few-boxed")
        bare, _ = grade(Path(tmp) / "few", Path(tmp) / "few-bare", unsandboxed=True)
        print(f"  {k} submissions: sandboxed {boxed:.1f} s, unsandboxed {bare:.1f} s, ratio {boxed / bare:.2f}")


def cheats() -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_grading_sandbox import CHEATS, _with_answer

    with tempfile.TemporaryDirectory() as tmp:
        for student, cheat in CHEATS.items():
            write_notebook(_with_answer(cheat), Path(tmp) / "in" / student / "04_delivery_guarantees.ipynb")
        grade(Path(tmp) / "in", Path(tmp) / "out", cell_timeout=20)
        with open(Path(tmp) / "out" / "gradebook.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    print(f"{'cheat (in the answer of 04-predict-charges)':45} {'points':>6}  status")
    for row in rows:
        print(f"{row['student']:45} {row['04-predict-charges']:>4}/2  {row['status']}")


if __name__ == "__main__":
    if "--jobs" in sys.argv:
        at = sys.argv.index("--jobs")
        JOBS = int(sys.argv[at + 1])
        del sys.argv[at : at + 2]
    what = sys.argv[1] if len(sys.argv) > 1 else "sample"
    if what == "class":
        whole_class(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    elif what == "cheats":
        cheats()
    else:
        sample()
