"""Grade one submission in its own process.

The grader starts :func:`run_job` in a fresh process per submission (forked from a server
that has already imported this module, so the start is quick); ``python -m
evbroker.grading.worker JOB.json`` does the same from a shell. The job file names the
submission, its source, the limits and where to write the report (JSON). The worker is part
of the grader (trusted): it holds the checks and judges the answers; the submission's own code
runs in a sandboxed kernel the worker drives (see :mod:`evbroker.grading.judge`).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from evbroker.build import read_notebook
from evbroker.grading.assess import _unreadable
from evbroker.grading.cells import graded_cells
from evbroker.grading.judge import Settings, judge
from evbroker.grading.reports import NotebookReport, ungraded
from evbroker.grading.sandbox import Limits


def grade_job(job: dict) -> NotebookReport:
    """Grade the submission a job describes; a report comes back even if grading itself fails."""
    source = Path(job["source"]) if job.get("source") else None
    path = Path(job["path"])
    name = (source or path).stem
    start = time.monotonic()
    try:
        for module in job.get("check_modules", []):
            importlib.import_module(module)
        source_nb = read_notebook(source)
        try:
            nb = read_notebook(path)
        except Exception as exc:
            note = f"could not read {path.name}: {_unreadable(exc)}"
            return ungraded(job["student"], name, str(path), graded_cells(source_nb), "invalid-notebook", note)
        report = NotebookReport(job["student"], name, str(path))
        scratch = Path(job["scratch"])
        scratch.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, scratch / path.name)
        settings = Settings(
            cell_timeout=job["cell_timeout"],
            timeout=job["timeout"],
            limits=Limits(**job.get("limits", {})),
            bwrap=job.get("bwrap"),
            hidden_seeds=tuple(job.get("hidden_seeds", ())),
        )
        judge(nb, source_nb, report, scratch, settings)
        report.seconds = time.monotonic() - start
        return report
    except Exception as exc:
        traceback.print_exc()
        note = f"the grader failed on this notebook: {type(exc).__name__}: {exc}"
        return ungraded(job["student"], name, job["path"], _graded(source), "grader-error", note)
    finally:
        if job.get("scratch"):
            shutil.rmtree(job["scratch"], ignore_errors=True)


def _graded(source: Path | None) -> list:
    try:
        return graded_cells(read_notebook(source)) if source else []
    except Exception:
        return []


def run_job(job_path: str, log_path: str | None = None, env: dict[str, str] | None = None) -> None:
    """Grade the job described in ``job_path``; the worker's own output goes to ``log_path``."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
        for entry in reversed(env.get("PYTHONPATH", "").split(os.pathsep)):
            if entry and entry not in sys.path:
                sys.path.insert(0, entry)
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
