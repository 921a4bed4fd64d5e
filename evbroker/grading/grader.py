"""The classroom grader: grade a folder of submitted notebooks into a gradebook.

    python -m evbroker.grading grade FOLDER --out DIR [--jobs N] [--cell-timeout S] [--timeout S]
                                            [--source solutions/] [--memory MB] [--unsandboxed]
    evbroker-grade FOLDER --out DIR ...        (the same, as an installed script)

Each submission (see :mod:`evbroker.grading.submissions` for the folder layouts) is graded by
its own worker process, which restores the locked cells from the source solution, runs the
learner's cells in a sandboxed kernel (:mod:`evbroker.grading.sandbox`) and judges the answers
itself (:mod:`evbroker.grading.judge`); several run at once. The output folder gets
``gradebook.csv``, ``summary.png``, ``feedback/<student>.md`` and
``reports/<student>/<notebook>.json``, each written as soon as a notebook is graded, so an
interrupted run keeps what it graded and a rerun skips the unchanged submissions it graded.
A broken submission (invalid JSON, an endless loop, a dying kernel, a deleted check cell)
gets a status and zero for what could not be graded; it never stops the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing.context import BaseContext
from pathlib import Path

from evbroker.build import ROOT, read_notebook
from evbroker.errors import EvbrokerError
from evbroker.grading.cells import graded_cells
from evbroker.grading.gradebook import save_report, write_feedback, write_gradebook
from evbroker.grading.outcome import format_points
from evbroker.grading.progress import ProgressBar
from evbroker.grading.reports import NotebookReport, ungraded
from evbroker.grading.resume import fingerprint, graded_before, hidden_seeds
from evbroker.grading.sandbox import Limits, require_sandbox
from evbroker.grading.submissions import Submission, duplicates, find_submissions
from evbroker.grading.worker import run_job

#: Extra seconds a worker gets beyond --timeout (kernel start and shutdown) before it is killed.
WORKER_GRACE = 60.0
#: How many seeds beyond the self-check's each function answer is tried on.
HIDDEN_SEEDS = 10


def worker_context() -> BaseContext:
    """Where worker processes come from: a fork server that has imported the worker (POSIX), else spawn.

    Starting from the fork server skips re-importing nbformat and nbclient for every notebook.
    As with any multiprocessing, a script that calls the grader must guard its top level with
    ``if __name__ == "__main__":``.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["evbroker.grading.worker"])
    return context


class Grader:
    """Grades submissions in parallel worker processes and keeps the gradebook up to date."""

    def __init__(
        self,
        out: Path,
        *,
        jobs: int = 2,
        cell_timeout: float = 60,
        timeout: float = 600,
        grace: float = WORKER_GRACE,
        limits: Limits | None = None,
        unsandboxed: bool = False,
        check_modules: Sequence[str] = (),
    ) -> None:
        self.out = Path(out)
        self.grace = grace
        self.jobs = max(1, jobs)
        self.cell_timeout = cell_timeout
        self.timeout = timeout
        self.limits = limits or Limits()
        self.unsandboxed = unsandboxed
        self.bwrap = require_sandbox(unsandboxed)
        self.check_modules = list(check_modules)
        self.reports: list[NotebookReport] = []
        self._twice: set[Path] = set()
        self._lock = threading.Lock()
        self._running: set[multiprocessing.Process] = set()

    def grade(self, submissions: list[Submission], progress: ProgressBar | None = None) -> list[NotebookReport]:
        self.out.mkdir(parents=True, exist_ok=True)
        work = self.out / ".scratch"
        shutil.rmtree(work, ignore_errors=True)  # what a killed run left behind
        work.mkdir()
        self._twice = duplicates(submissions)
        hidden = hidden_seeds(self.out, HIDDEN_SEEDS)
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [pool.submit(self.grade_one, s, work / f"job{n}", hidden) for n, s in enumerate(submissions)]
            try:
                for future in as_completed(futures):
                    report = future.result()
                    self._record(report)
                    if progress:
                        progress.step(f"{report.student} {report.notebook}: {_summary(report)}")
            finally:
                for future in futures:
                    future.cancel()
                self._kill_running()
                shutil.rmtree(work, ignore_errors=True)
        write_feedback(self.reports, self.out)
        if any(r.questions for r in self.reports):
            from evbroker.grading.summary import draw_summary

            draw_summary(self.reports, self.out)
        return self.reports

    def grade_one(self, submission: Submission, stem: Path, hidden: Sequence[int] = ()) -> NotebookReport:
        """Grade one submission in a worker process; a report comes back whatever happens.

        ``stem`` is where the job's files go (``stem.job.json``, ``stem.result.json``, ``stem.log``,
        and the kernel's scratch folder ``stem.scratch/``).
        """
        report = self._grade_one(submission, stem, list(hidden))
        if self.unsandboxed and "unsandboxed" not in report.statuses:
            report.statuses.append("unsandboxed")
            report.notes.append(
                "graded without a sandbox (--unsandboxed): the submission ran with the teacher's rights"
            )
        if submission.path in self._twice and "duplicate-submission" not in report.statuses:
            report.statuses.append("duplicate-submission")
            report.notes.append(f"{submission.student} handed in {report.notebook} more than once; not added up")
        return report

    def _grade_one(self, s: Submission, stem: Path, hidden: list[int]) -> NotebookReport:
        if s.source is None:
            note = f"could not tell which exercise {s.path.name} answers; name it like the exercise"
            return ungraded(s.student, s.notebook, str(s.path), [], "no-source", note)
        try:
            settings = [self.cell_timeout, self.timeout, asdict(self.limits), self.unsandboxed, hidden]
            digest = fingerprint(s, settings)
            before = graded_before(s, self.out, digest, duplicate=s.path in self._twice)
            if before is not None:
                return before
            status, note = self._run_worker(s, stem, hidden)
            if status == "ok":
                report = NotebookReport.from_dict(json.loads(_with_suffix(stem, ".result.json").read_text("utf-8")))
                report.digest = digest
                return report
        except Exception as exc:  # the grader's own trouble must not cost the other students their grades
            status, note = "grader-error", f"the grader failed on this notebook: {type(exc).__name__}: {exc}"
        return ungraded(s.student, s.notebook, str(s.path), _graded_or_none(s.source), status, note)

    def _run_worker(self, s: Submission, stem: Path, hidden: list[int]) -> tuple[str, str]:
        """Run one job in a worker process: ("ok", "") or a status and what went wrong."""
        job = {
            "student": s.student,
            "path": str(s.path.resolve()),
            "source": str(s.source.resolve()) if s.source else None,
            "cell_timeout": self.cell_timeout,
            "timeout": self.timeout,
            "result": str(_with_suffix(stem, ".result.json")),
            "scratch": str(_with_suffix(stem, ".scratch")),
            "limits": asdict(self.limits),
            "bwrap": self.bwrap,
            "hidden_seeds": hidden,
            "check_modules": self.check_modules,
        }
        job_path, log_path = _with_suffix(stem, ".job.json"), _with_suffix(stem, ".log")
        job_path.write_text(json.dumps(job), encoding="utf-8")
        proc = worker_context().Process(target=run_job, args=(str(job_path), str(log_path), dict(os.environ)))
        with self._lock:
            proc.start()
            self._running.add(proc)
        try:
            proc.join(self.timeout + self.grace)
            if proc.is_alive():
                proc.kill()
                proc.join()
                return "timeout", f"killed after {self.timeout + self.grace:g} s: the notebook would not stop"
        finally:
            with self._lock:
                self._running.discard(proc)
        if proc.exitcode != 0 or not Path(job["result"]).is_file():
            return "grader-error", f"the grader's worker exited with code {proc.exitcode}{_last_line(log_path)}"
        return "ok", ""

    def _record(self, report: NotebookReport) -> None:
        self.reports.append(report)
        save_report(report, self.out, Path(report.path) in self._twice)
        write_gradebook(self.reports, self.out)
        write_feedback([r for r in self.reports if r.student == report.student], self.out)

    def _kill_running(self) -> None:
        with self._lock:
            for proc in self._running:
                proc.kill()


def _with_suffix(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def _last_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.exists() else []
    return f" ({lines[-1]})" if lines else ""


def _graded_or_none(source: Path) -> list:
    try:
        return graded_cells(read_notebook(source))
    except Exception:
        return []


def _summary(report: NotebookReport) -> str:
    return f"{format_points(report.points)}/{format_points(report.max_points)} {report.status}"


def grade_folder(
    folder: Path,
    out: Path,
    *,
    source: Path,
    jobs: int = 2,
    cell_timeout: float = 60,
    timeout: float = 600,
    show_progress: bool = True,
    limits: Limits | None = None,
    unsandboxed: bool = False,
    check_modules: Sequence[str] = (),
) -> list[NotebookReport]:
    """Grade every submission under ``folder`` against the solutions in ``source``; write to ``out``."""
    sources = sorted(Path(source).glob("*.ipynb"))
    submissions = find_submissions(Path(folder), sources)
    grader = Grader(
        out,
        jobs=jobs,
        cell_timeout=cell_timeout,
        timeout=timeout,
        limits=limits,
        unsandboxed=unsandboxed,
        check_modules=check_modules,
    )
    progress = ProgressBar(len(submissions)) if show_progress else None
    return grader.grade(submissions, progress)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evbroker.grading grade",
        description="Grade a folder of submitted exercise notebooks into a gradebook.",
    )
    p.add_argument(
        "folder", type=Path, help="submissions: FOLDER/<student>/<NN_name>.ipynb or FOLDER/<student>_<NN_name>.ipynb"
    )
    p.add_argument("--out", type=Path, default=Path("gradebook"), help="output folder (default: gradebook/)")
    p.add_argument("--source", type=Path, default=ROOT / "solutions", help="solution notebooks (default: solutions/)")
    p.add_argument(
        "--jobs",
        type=int,
        default=(os.cpu_count() or 2) + 1,
        help="notebooks graded at once (default: CPUs + 1, since a grader and its kernel take turns)",
    )
    p.add_argument("--cell-timeout", type=float, default=60, help="seconds one cell may run (default 60)")
    p.add_argument(
        "--timeout", type=float, default=600, help="seconds all of one notebook's cells may take (default 600)"
    )
    p.add_argument("--memory", type=int, default=2048, help="megabytes of memory one kernel may use (default 2048)")
    p.add_argument(
        "--unsandboxed",
        action="store_true",
        help="run submissions without a sandbox, with your own rights (only where bubblewrap is missing "
        "and you trust every notebook; every gradebook row says so)",
    )
    p.add_argument(
        "--checks", action="append", default=[], help="an extra module of checks to import (its questions' checks)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.folder.is_dir():
        print(f"grade: {args.folder} is not a folder of submissions", file=sys.stderr)
        return 2
    if not any(args.source.glob("*.ipynb")):
        print(f"grade: no source notebooks in {args.source}; pass --source solutions/", file=sys.stderr)
        return 2
    try:
        reports = grade_folder(
            args.folder,
            args.out,
            source=args.source,
            jobs=args.jobs,
            cell_timeout=args.cell_timeout,
            timeout=args.timeout,
            limits=Limits(memory=args.memory * 1024**2, cpu=int(args.timeout) + 60),
            unsandboxed=args.unsandboxed,
            check_modules=args.checks,
        )
    except EvbrokerError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    if not reports:
        print(f"grade: no .ipynb files under {args.folder}", file=sys.stderr)
        return 2
    bad = sum(r.status != "ok" for r in reports)
    print(f"graded {len(reports)} notebook(s), {bad} with problems; see {args.out / 'gradebook.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
