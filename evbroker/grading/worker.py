"""Grade one submission in its own process.

The grader starts :func:`run_job` in a fresh process per submission (forked from a server
that has already imported this module, so the start is quick); ``python -m
evbroker.grading.worker JOB.json`` does the same from a shell. The job file names the
submission, its source, the time limits and where to write the report (JSON). A separate
process per submission keeps a runaway notebook (a flood of output, a crashed kernel) from
touching anyone else's grade.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from evbroker.build import read_notebook
from evbroker.grading.assess import assess
from evbroker.grading.cells import graded_cells
from evbroker.grading.reports import NotebookReport, ungraded


def grade_job(job: dict) -> NotebookReport:
    """Grade the submission a job describes; a report comes back even if grading itself fails."""
    source = Path(job["source"]) if job.get("source") else None
    try:
        return assess(
            Path(job["path"]),
            source=source,
            student=job["student"],
            cell_timeout=job["cell_timeout"],
            timeout=job["timeout"],
        )
    except Exception as exc:
        traceback.print_exc()
        note = f"the grader failed on this notebook: {type(exc).__name__}: {exc}"
        name = (source or Path(job["path"])).stem
        return ungraded(job["student"], name, job["path"], _graded(source), "grader-error", note)


def _graded(source: Path | None) -> list:
    try:
        return graded_cells(read_notebook(source)) if source else []
    except Exception:
        return []


def run_job(job_path: str, log_path: str | None = None, env: dict[str, str] | None = None) -> None:
    """Grade the job described in ``job_path``; output (the kernel's too) goes to ``log_path``."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if log_path is not None:
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    report = grade_job(job)
    Path(job["result"]).write_text(json.dumps(report.to_dict(), ensure_ascii=False), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run_job(args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
