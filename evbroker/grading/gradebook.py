"""Write what the grader found: ``gradebook.csv``, one feedback file per student, one JSON per notebook.

``gradebook.csv`` has one row per (student, notebook): ``student, notebook``, one column per
question id (points earned; empty when the question belongs to another notebook),
``total, max, status``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from evbroker.grading.outcome import format_points
from evbroker.grading.reports import NotebookReport
from evbroker.grading.tables import markdown_section

GRADEBOOK = "gradebook.csv"


def safe_name(text: str) -> str:
    """A file name for a student or notebook name: letters of any script kept, never two names alike.

    The name is Unicode-normalised (NFC), so "Zoë" typed either way is one student; characters
    a file name should not hold become "_", and then a short hash of the exact name is added,
    so "a/b" and "a_b" (or "Zoë" and "Zoé", which both stay as they are) never share a file.
    """
    text = unicodedata.normalize("NFC", text)
    kept = "".join(c if c.isalnum() or c in "_.-" else "_" for c in text).strip("._")[:80]
    if kept == text and kept.lower() == kept and kept:
        return kept
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{kept or 'unnamed'}-{digest}"


def report_path(report: NotebookReport, out: Path, duplicate: bool = False) -> Path:
    """Where a notebook's report goes; a second submission of one exercise gets its own file."""
    name = safe_name(report.notebook)
    if duplicate:
        name += "-" + hashlib.sha256(report.path.encode("utf-8")).hexdigest()[:8]
    return out / "reports" / safe_name(report.student) / f"{name}.json"


def save_report(report: NotebookReport, out: Path, duplicate: bool = False) -> Path:
    path = report_path(report, out, duplicate)
    _write_atomically(path, json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n")
    return path


def question_columns(reports: Iterable[NotebookReport]) -> list[str]:
    """Question ids in notebook order, then in the order the notebook asks them."""
    columns: dict[str, None] = {}
    for report in sorted(reports, key=lambda r: r.notebook):
        for q in report.questions:
            columns.setdefault(q.id, None)
    return list(columns)


def gradebook_text(reports: list[NotebookReport]) -> str:
    columns = question_columns(reports)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "notebook", *columns, "total", "max", "status"])
    for r in sorted(reports, key=lambda r: (r.student, r.notebook, r.path)):
        points = {q.id: format_points(q.points) for q in r.questions}
        row = [r.student, r.notebook, *(points.get(c, "") for c in columns)]
        writer.writerow([*row, format_points(r.points), format_points(r.max_points), r.status])
    return buffer.getvalue()


def write_gradebook(reports: list[NotebookReport], out: Path) -> Path:
    path = out / GRADEBOOK
    _write_atomically(path, gradebook_text(reports))
    return path


def write_feedback(reports: list[NotebookReport], out: Path) -> list[Path]:
    """One markdown file per student, ``feedback/<student>.md``, with a section per notebook."""
    by_student: dict[str, list[NotebookReport]] = {}
    for r in sorted(reports, key=lambda r: (r.student, r.notebook)):
        by_student.setdefault(r.student, []).append(r)
    written = []
    for student, own in by_student.items():
        twice = {n for n, k in Counter(r.notebook for r in own).items() if k > 1}
        counted = [r for r in own if r.notebook not in twice]
        total = sum(r.points for r in counted)
        most = sum(r.max_points for r in counted)
        head = f"# Feedback for {student}\n\nTotal: {format_points(total)} / {format_points(most)} points\n\n"
        if twice:
            head += (
                f"**Submitted more than once: {', '.join(sorted(twice))}.** Each copy is graded below and "
                "none is counted in the total: your teacher decides which one counts.\n\n"
            )
        path = out / "feedback" / f"{safe_name(student)}.md"
        _write_atomically(path, head + "\n".join(markdown_section(r) for r in own))
        written.append(path)
    return written


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
