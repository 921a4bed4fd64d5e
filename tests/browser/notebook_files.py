"""The repository's notebooks as the browser tests see them: which exist, and what was committed."""

from __future__ import annotations

import json
from pathlib import Path

from .lab_server import REPO


def lesson_notebooks() -> list[Path]:
    """The numbered lessons, notebooks/NN_*.ipynb, relative to the repository (empty before any exist)."""
    return _numbered("notebooks")


def exercise_notebooks() -> list[Path]:
    """The numbered exercises, exercises/NN_*.ipynb, relative to the repository."""
    return _numbered("exercises")


def find_notebook(folder: str, number: str) -> Path | None:
    """`find_notebook("notebooks", "04")` -> notebooks/04_<title>.ipynb, or None while it does not exist."""
    matches = sorted((REPO / folder).glob(f"{number}_*.ipynb"))
    return matches[0].relative_to(REPO) if matches else None


def read_committed(path: str | Path) -> dict:
    """The notebook as committed in the repository (nbformat JSON as a dict)."""
    return read_notebook(REPO / path)


def read_notebook(path: Path) -> dict:
    """Any notebook file as nbformat JSON (a dict)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_scratch_notebook(root: Path, name: str, cells: list) -> str:
    """Write a notebook into scratch/ under the served root (never the repository); return its served path."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = cells
    folder = root / "scratch"
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / name)
    return f"scratch/{name}"


def _numbered(folder: str) -> list[Path]:
    return sorted(p.relative_to(REPO) for p in (REPO / folder).glob("[0-9][0-9]_*.ipynb"))
