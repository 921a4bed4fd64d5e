"""Find submitted notebooks in a folder, say whose they are and which exercise each answers.

Two layouts are understood (they can be mixed):

- one folder per student: ``FOLDER/<student>/<NN_name>.ipynb``, at any depth below the
  student's folder, so nbgrader's ``submitted/<student>/<assignment>/<NN_name>.ipynb`` works;
- flat files: ``FOLDER/<student>_<NN_name>.ipynb`` (or ``FOLDER/<student>.ipynb`` when the
  notebook says which exercise it is).

A submission is matched to its source solution by the ``metadata.evbroker.notebook`` that
generated exercises carry, else by a source name inside the file name, else by its ``NN_``
number, else (with a single source) to that source.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

NUMBER = re.compile(r"(?<![0-9])([0-9]{2})_")
SEPARATORS = "_-. "


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    source: Path | None

    @property
    def notebook(self) -> str:
        return self.source.stem if self.source else self.path.stem


def duplicates(submissions: list[Submission]) -> set[Path]:
    """The paths of submissions that share a (student, exercise) with another one."""
    seen: dict[tuple[str, str], list[Path]] = {}
    for s in submissions:
        seen.setdefault((s.student, s.notebook), []).append(s.path)
    return {p for paths in seen.values() if len(paths) > 1 for p in paths}


def find_submissions(folder: Path, sources: list[Path]) -> list[Submission]:
    """Every ``.ipynb`` under ``folder`` (checkpoints skipped), in a stable order."""
    found = []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        source = match_source(path, sources)
        student = relative.parts[0] if len(relative.parts) > 1 else _student_from_name(path.stem, source)
        found.append(Submission(unicodedata.normalize("NFC", student), path, source))
    return found


def match_source(path: Path, sources: list[Path]) -> Path | None:
    by_stem = {s.stem: s for s in sources}
    named = _notebook_metadata(path)
    if named in by_stem:
        return by_stem[named]
    inside = [s for s in sources if s.stem in path.stem]
    if inside:
        return max(inside, key=lambda s: len(s.stem))
    numbers = {m.group(1) for m in NUMBER.finditer(path.stem + "_")}
    numbered = [s for s in sources if s.name[:2] in numbers]
    if len(numbered) == 1:
        return numbered[0]
    return sources[0] if len(sources) == 1 else None


def _notebook_metadata(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        name = data["metadata"]["evbroker"]["notebook"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def _student_from_name(stem: str, source: Path | None) -> str:
    name = stem.replace(source.stem, "") if source else stem
    return name.strip(SEPARATORS) or stem
