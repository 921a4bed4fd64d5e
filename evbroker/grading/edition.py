"""The class edition: what a teacher hands out, the lessons and the exercises, never ``solutions/``.

    python -m evbroker.grading class OUT      (make class OUT=folder)

``OUT/notebooks/`` gets the lesson notebooks and ``OUT/exercises/`` the generated exercises
(``make exercises`` first if the solutions changed). Nothing from ``solutions/`` is copied,
and the command refuses to write into the kit's own folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from evbroker.build import ROOT
from evbroker.errors import EvbrokerError

PARTS = ("notebooks", "exercises")


def write_class_edition(out: Path, root: Path = ROOT) -> list[Path]:
    """Copy the lessons and exercises under ``root`` to ``out``; return the files written."""
    out = Path(out).resolve()
    if out == root.resolve() or any(out == (root / p).resolve() for p in (*PARTS, "solutions")):
        raise EvbrokerError(
            f"class edition: {out} is one of the kit's own folders; pick a new folder such as class-edition/"
        )
    written = []
    for part in PARTS:
        (out / part).mkdir(parents=True, exist_ok=True)
        for notebook in sorted((root / part).glob("*.ipynb")):
            target = out / part / notebook.name
            shutil.copyfile(notebook, target)
            written.append(target)
    readme = out / "README.md"
    readme.write_text(
        "# How events really flow: class edition\n\n"
        "`notebooks/` holds the lessons, `exercises/` the graded exercises. Install the kit "
        "(`pip install evbroker`), open an exercise in Jupyter, answer the cells marked "
        "`# YOUR CODE HERE`, run each check cell to see how you did, and hand in the notebook.\n",
        encoding="utf-8",
    )
    return [*written, readme]
