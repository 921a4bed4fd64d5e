"""What lets a rerun pick up where a class run stopped, and keeps its hidden variants the same.

A graded notebook's report carries a fingerprint of what was graded (the submission's bytes,
its source's, the limits, the hidden seeds). A rerun with the same output folder reuses a
report whose fingerprint still matches, and grades the rest.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from evbroker.grading.gradebook import report_path
from evbroker.grading.reports import NotebookReport
from evbroker.grading.submissions import Submission

#: The file in the output folder that fixes its hidden seeds.
SECRET = ".hidden-variants"


def fingerprint(s: Submission, settings: Any) -> str:
    """A hash of the submission, its source and the grading ``settings`` (anything JSON can write)."""
    h = hashlib.sha256()
    for path in (s.path, s.source):
        h.update(Path(path).read_bytes() if path and Path(path).is_file() else b"-")
    h.update(json.dumps([settings, s.student], sort_keys=True).encode())
    return h.hexdigest()


def graded_before(s: Submission, out: Path, digest: str, *, duplicate: bool = False) -> NotebookReport | None:
    """The report already in ``out`` for this very submission, graded the same way, if any."""
    probe = NotebookReport(s.student, s.notebook, str(s.path))
    try:
        text = report_path(probe, out, duplicate).read_text(encoding="utf-8")
        old = NotebookReport.from_dict(json.loads(text))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return old if old.digest == digest and old.path == str(s.path) else None


def hidden_seeds(out: Path, count: int) -> list[int]:
    """``count`` seeds the self-check never shows, fixed per output folder (a rerun uses the same)."""
    secret = Path(out) / SECRET
    if not secret.is_file():
        secret.write_text(str(random.SystemRandom().randrange(1 << 62)), encoding="utf-8")
    rng = random.Random(int(secret.read_text(encoding="utf-8").strip() or 0))
    return sorted(rng.sample(range(1_000, 1_000_000), count))
