"""Run a notebook in its own kernel, cell by cell, with a per-cell and a total time limit.

Unlike a lesson build, a run here never stops at an error: a failing check is an answer to
record, not a broken notebook. A cell that runs past its limit is interrupted and the run goes
on; a dead kernel or the total limit (counted once the kernel has started) stops the run, and
the cells left are marked "not-run".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nbformat import NotebookNode

from evbroker.build import kernel_env, notebook_client

if TYPE_CHECKING:
    from nbclient import NotebookClient

OK, ERROR, TIMEOUT, NOT_RUN = "ok", "error", "timeout", "not-run"
KERNEL_DIED, TOTAL_TIMEOUT, KERNEL_FAILED = "kernel-died", "timeout", "kernel-failed"
TIMED_OUT = "CellTimeout"  # the ename nbclient reports for a cell it interrupted


@dataclass
class CellRun:
    """How one code cell went: ``status`` is "ok", "error", "timeout" or "not-run"."""

    index: int
    status: str = NOT_RUN
    ename: str = ""
    evalue: str = ""
    stdout: str = ""
    headline: str = ""  # the first line IPython showed for an error (a check's "✘ ..." line)


@dataclass
class NotebookRun:
    """A whole run: per-cell results, and ``status`` "ok", "kernel-died", "timeout" or "kernel-failed"."""

    cells: dict[int, CellRun] = field(default_factory=dict)
    status: str = "ok"
    detail: str = ""
    seconds: float = 0.0


def run_notebook(nb: NotebookNode, cwd: Path, *, cell_timeout: float = 60, timeout: float = 600) -> NotebookRun:
    """Execute every code cell of ``nb`` (in place: outputs are written into it) and report."""
    start = time.monotonic()
    run = asyncio.run(_run(nb, Path(cwd), cell_timeout, timeout))
    run.seconds = time.monotonic() - start
    return run


async def _run(nb: NotebookNode, cwd: Path, cell_timeout: float, timeout: float) -> NotebookRun:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    run = NotebookRun({i: CellRun(i) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()})
    replies: dict[int, dict] = {}
    client = notebook_client(
        nb,
        cwd,
        allow_errors=True,
        timeout=cell_timeout,
        iopub_timeout=min(4.0, cell_timeout),
        interrupt_on_timeout=True,  # then go on with the next cell
        error_on_timeout={"ename": TIMED_OUT, "evalue": "", "traceback": []},
        shutdown_kernel="immediate",
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.update({cell_index: execute_reply}),
    )
    try:
        async with client.async_setup_kernel(env=kernel_env("agg")):
            await _run_cells(client, nb, run, replies, cell_timeout, timeout)
    except Exception as exc:  # the kernel could not start, or the connection broke
        if run.status == "ok":
            run.status, run.detail = KERNEL_FAILED, f"{type(exc).__name__}: {exc}"
    return run


async def _run_cells(
    client: NotebookClient, nb: NotebookNode, run: NotebookRun, replies: dict, cell_timeout: float, timeout: float
) -> None:
    """Run the cells one by one until the end, a dead kernel, or the total limit (counted from here)."""
    from nbclient.exceptions import DeadKernelError

    deadline = time.monotonic() + timeout
    for count, (index, cell_run) in enumerate(run.cells.items(), start=1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            run.status, run.detail = TOTAL_TIMEOUT, f"the notebook ran longer than {timeout:g} s in total"
            return
        client.timeout = max(1, round(min(cell_timeout, remaining)))
        try:
            await client.async_execute_cell(nb.cells[index], index, execution_count=count)
        except DeadKernelError:
            cell_run.status = ERROR
            cell_run.ename, cell_run.evalue = "DeadKernelError", "the kernel died while running this cell"
            run.status, run.detail = KERNEL_DIED, f"the kernel died while running cell {index + 1}"
            return
        _record(cell_run, nb.cells[index], replies.get(index, {}).get("content", {}), client.timeout)


def _record(cell_run: CellRun, cell: NotebookNode, reply: dict, limit: float) -> None:
    if reply.get("ename") == TIMED_OUT:
        cell_run.status, cell_run.evalue = TIMEOUT, f"stopped after {limit:g} s"
        return
    if reply.get("status") == "aborted":
        cell_run.status, cell_run.evalue = NOT_RUN, "the kernel skipped it"
        return
    cell_run.status = OK
    stdout = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            cell_run.status, cell_run.ename, cell_run.evalue = ERROR, out.get("ename", ""), out.get("evalue", "")
            cell_run.headline = next(iter(out.get("traceback") or []), "")
        elif out.get("output_type") == "stream" and out.get("name") == "stdout":
            stdout.append(out.get("text", ""))
    cell_run.stdout = "".join(stdout)
