"""Build the kit's notebooks: execute lessons and solutions, generate exercises from solutions.

    python -m evbroker.build notebooks [paths...] [--jobs N] [--timeout S]
    python -m evbroker.build exercises [--check] [--solutions DIR] [--exercises DIR]

``notebooks`` runs each notebook top to bottom in a fresh ``python3`` kernel of the current
environment (cwd = the notebook's folder, inline matplotlib, ``PYTHONHASHSEED=0``) and writes
it back in place with its outputs and its widget state. The result is deterministic: execution
counts run 1, 2, 3...; timing metadata is dropped; widget model ids are renamed to ids derived
from the notebook's name and the widget's creation order, so a second build rewrites the same
bytes. A cell that raises (unless tagged ``raises-exception``) or writes to stderr fails the
build, naming the notebook and the cell, and that notebook is left untouched. Kernels talk over
Unix sockets in a private folder (no TCP port to race other kernels for); a kernel that never
answers, or a cell reply the kernel lost, gets one fresh kernel, said on stderr, instead of a
crash or a wait of a whole cell timeout.

``exercises`` writes ``exercises/NN_name.ipynb`` for every ``solutions/NN_name.ipynb``, the way
nbgrader's ``generate_assignment`` does: in solution cells, the code between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` +
``raise NotImplementedError()`` (markdown: ``YOUR ANSWER HERE``); lines between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed; outputs and execution
counts are cleared; nbgrader metadata is kept. ``--check`` writes nothing and exits 1 when the
committed exercises differ from what would be generated.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import nbformat.reader
from nbformat import NotebookNode

if TYPE_CHECKING:
    from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "python3"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class BuildError(Exception):
    """A notebook could not be built; the message names the notebook and the cell."""


# ---------------------------------------------------------------------------- reading, writing


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook as nbformat v4.5, giving cells without an id a stable one."""
    nb = nbformat.reader.reads(Path(path).read_text(encoding="utf-8"))
    if nb.get("nbformat") != 4:
        nb = nbformat.convert(nb, 4)
    nb.nbformat_minor = max(nb.get("nbformat_minor", 0), 5)
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell["id"] = _stable_hex(f"{path.stem}/cell/{index}", 8)
    nbformat.validate(nb)
    return nb


def notebook_text(nb: NotebookNode) -> str:
    """The exact text ``nbformat.write`` puts in a file (sorted keys, one-space indent, final newline)."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb: NotebookNode, path: Path) -> bool:
    """Write ``nb`` to ``path`` unless the file already holds exactly that text; True if written."""
    text = notebook_text(nb)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _stable_hex(seed: str, length: int = 32) -> str:
    return hashlib.sha1(seed.encode("utf-8")).hexdigest()[:length]


# ---------------------------------------------------------------------------- executing


def kernel_env(mpl_backend: str = INLINE_BACKEND) -> dict[str, str]:
    """The environment a kit kernel runs in: this one, plus fixed hashing, plotting and dates."""
    env = dict(os.environ)
    env.update(
        {
            "MPLBACKEND": mpl_backend,
            "PYTHONHASHSEED": "0",
            "SOURCE_DATE_EPOCH": "0",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
    )
    return env


def notebook_client(nb: NotebookNode, cwd: Path, *, ipc_dir: Path | None = None, **options: object) -> NotebookClient:
    """An nbclient client for a fresh ``python3`` kernel of this environment, started in ``cwd``.

    With ``ipc_dir`` (a private folder, short path) the kernel's five sockets are Unix sockets in
    that folder: nothing listens on TCP, the folder's permissions keep other users out, and no
    port is picked by one process for another to bind later (picking free TCP ports and binding
    them are two steps, and another kernel started in between can take the same port). Without
    it, the sockets are TCP on localhost, encrypted (CurveZMQ) when pyzmq supports it, which also
    keeps the kernel from warning about plain-text TCP on stderr. ``reply_grace`` (seconds, off
    by default) ends the wait for a reply the kernel lost (see ``evbroker.kernel_client``).
    """
    import zmq
    from traitlets.config import Config

    from evbroker.kernel_client import WatchedNotebookClient

    if ipc_dir is not None:
        manager = {"transport": "ipc", "ip": str(Path(ipc_dir) / "kernel"), "transport_encryption": "disabled"}
    else:
        manager = {"transport_encryption": "auto" if zmq.has("curve") else "disabled"}
    options.setdefault("record_timing", False)
    return WatchedNotebookClient(
        nb,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(cwd)}},
        config=Config({"KernelManager": manager}),
        **options,
    )


KERNEL_STARTS = 2  # a kernel that never answers or loses a reply is replaced once, then the build fails
STARTUP_TIMEOUT = 60  # seconds a new kernel has to answer its first request
REPLY_GRACE = 30  # seconds a cell's reply may lag behind the kernel going idle before it counts as lost


class _KernelNeverAnswered(Exception):
    """The kernel died or stayed silent before the first cell ran: nothing of the notebook ran yet."""


def execute_notebook(
    path: Path, *, timeout: float = 600, startup_timeout: float = STARTUP_TIMEOUT, reply_grace: float = REPLY_GRACE
) -> NotebookNode:
    """Run ``path`` top to bottom in a fresh kernel and return it, normalised; raise BuildError on failure.

    The kernel talks over Unix sockets in a private temporary folder (see ``notebook_client``).
    Two kernel failures that are not the notebook's doing get one more try, each said on stderr:
    a kernel that dies or does not answer within ``startup_timeout`` seconds before the first
    cell runs, and a cell that finished in the kernel (idle) whose reply has not arrived
    ``reply_grace`` seconds later (seen on a busy machine; without this the build would wait out
    the whole cell timeout). The notebook then runs again from the top in a fresh kernel, which
    gives the same outputs (the build is deterministic). A second failure fails the build.
    """
    from evbroker.kernel_client import ReplyLost

    path = Path(path).resolve()
    for _ in range(KERNEL_STARTS - 1):
        try:
            return _execute_once(path, timeout, startup_timeout, reply_grace)
        except _KernelNeverAnswered as exc:
            print(f"build: {_show(path)}: the kernel never answered ({exc}); trying a fresh one", file=sys.stderr)
        except ReplyLost as exc:
            print(f"build: {_show(path)}: {exc}; running it again in a fresh kernel", file=sys.stderr)
    try:
        return _execute_once(path, timeout, startup_timeout, reply_grace)
    except _KernelNeverAnswered as exc:
        raise BuildError(
            f"{_show(path)}: {KERNEL_STARTS} fresh kernels in a row never answered (last: {exc}); "
            "is the machine out of memory or processes?"
        ) from None
    except ReplyLost as exc:
        raise BuildError(f"{_show(path)}: {exc}, in {KERNEL_STARTS} fresh kernels in a row") from None


def _execute_once(path: Path, timeout: float, startup_timeout: float, reply_grace: float) -> NotebookNode:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = read_notebook(path)
    with tempfile.TemporaryDirectory(prefix="evbroker-kernel-") as ipc_dir:
        client = notebook_client(
            nb,
            path.parent,
            ipc_dir=Path(ipc_dir),
            timeout=timeout,
            startup_timeout=startup_timeout,
            reply_grace=reply_grace,
            store_widget_state=True,
            allow_errors=False,
        )
        try:
            client.execute(env=kernel_env())
        except CellExecutionError as exc:
            index = _failed_cell(nb)
            detail = ANSI_ESCAPE.sub("", str(exc))
            raise BuildError(f"{_show(path)}: {_describe_cell(nb, index)} raised an error:\n{detail}") from None
        except CellTimeoutError:
            raise BuildError(f"{_show(path)}: a cell ran longer than {timeout:g} s (the build timeout)") from None
        except (DeadKernelError, RuntimeError, TimeoutError) as exc:
            # RuntimeError: jupyter_client's "Kernel died before replying to kernel_info" and
            # "Kernel didn't respond in N seconds"; nbclient's execute runs its own event loop.
            if client.code_cells_executed == 0:
                raise _KernelNeverAnswered(str(exc) or type(exc).__name__) from None
            if isinstance(exc, DeadKernelError):
                raise BuildError(f"{_show(path)}: the kernel died while running it") from None
            raise BuildError(f"{_show(path)}: the kernel connection failed: {exc}") from None
        finally:
            # nbclient leaves its exit-time clean-up registered when the kernel fails to start.
            atexit.unregister(client._cleanup_kernel)
    problems = list(stderr_problems(nb))
    if problems:
        raise BuildError(f"{_show(path)}: " + "; ".join(problems))
    return normalise(nb, path.stem)


def stderr_problems(nb: NotebookNode) -> Iterable[str]:
    """Yield one description per cell that wrote to stderr (a warning, a log line)."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                first = out.get("text", "").strip().splitlines()[:1]
                yield f"{_describe_cell(nb, index)} wrote to stderr: {first[0] if first else ''!r}"
                break


def _failed_cell(nb: NotebookNode) -> int:
    """The index of the cell whose error stopped the run (nbclient stops at the first one)."""
    for index in range(len(nb.cells) - 1, -1, -1):
        cell = nb.cells[index]
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index
    return -1


def _describe_cell(nb: NotebookNode, index: int) -> str:
    if index < 0:
        return "a cell"
    first = next((line for line in nb.cells[index].source.splitlines() if line.strip()), "")
    return f"cell {index + 1} ({first.strip()[:60]!r})"


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------- normalising


def normalise(nb: NotebookNode, name: str) -> NotebookNode:
    """Make an executed notebook byte-stable: counts, metadata, stream chunks, widget ids."""
    _renumber(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.metadata.pop("collapsed", None)
            cell.outputs = merge_adjacent_streams(cell.outputs)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.get("language_info", {}).pop("version", None)
    return _stable_widget_ids(nb, name)


def merge_adjacent_streams(outputs: list) -> list:
    """Join back-to-back stdout (or stderr) chunks into one output.

    How a cell's printing is cut into messages depends on when the kernel flushes, so the
    same cell can give one output or several; joined, it is always the same. Streams are
    not moved across a figure or a widget in between.
    """
    merged: list = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (
            last is not None
            and out.get("output_type") == "stream"
            and last.get("output_type") == "stream"
            and out.get("name") == last.get("name")
        ):
            last["text"] = last["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def _renumber(nb: NotebookNode) -> None:
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.strip():
            cell.execution_count = None
            cell.outputs = []
            continue
        count += 1
        cell.execution_count = count
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                out["execution_count"] = count


def widget_model_ids(nb: NotebookNode) -> list[str]:
    """Every widget model id in ``nb``: stored state first (creation order), then displayed views."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    ids = dict.fromkeys(state)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view and view.get("model_id"):
                ids.setdefault(view["model_id"], None)
    return list(ids)


def _stable_widget_ids(nb: NotebookNode, name: str) -> NotebookNode:
    """Rename widget model ids (random per kernel) to ids fixed by notebook name and creation order.

    Each new id starts with its creation number in hex, so the stored widget state, written with
    sorted keys, stays in creation order (the picture check compares image widgets in that order).
    """
    ids = widget_model_ids(nb)
    if not ids:
        return nb
    text = json.dumps(nb, ensure_ascii=False)
    renames = {old: f"{n:04x}{_stable_hex(f'{name}/widget/{n}', 28)}" for n, old in enumerate(ids)}
    pattern = re.compile("|".join(re.escape(old) for old in renames))
    text = pattern.sub(lambda m: renames[m.group(0)], text)
    return nbformat.from_dict(json.loads(text))


# ---------------------------------------------------------------------------- exercises


def generate_exercise(solution: NotebookNode, name: str) -> NotebookNode:
    """The learner's copy of a solution notebook: answers stubbed, hidden tests removed, no outputs."""
    nb = nbformat.from_dict(json.loads(json.dumps(solution)))
    nb.metadata.pop("widgets", None)
    nb.metadata["evbroker"] = {"notebook": name, "generated_from": f"solutions/{name}.ipynb"}
    for index, cell in enumerate(nb.cells):
        where = f"solutions/{name}.ipynb cell {index + 1}"
        cell.source = strip_region(cell.source, BEGIN_HIDDEN, END_HIDDEN, stub=None, where=where)
        cell.source = _stub_answer(cell, where)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def _stub_answer(cell: NotebookNode, where: str) -> str:
    is_solution = bool(cell.metadata.get("nbgrader", {}).get("solution"))
    has_marker = BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source
    if has_marker and not is_solution:
        raise BuildError(
            f"{where}: has {BEGIN_SOLUTION!r} but is not a solution cell; add "
            '"nbgrader": {"solution": true, "grade": false, "locked": false, "grade_id": "..."} to its metadata'
        )
    if not is_solution:
        return cell.source
    stub: tuple[str, ...] = CODE_STUB if cell.cell_type == "code" else (MARKDOWN_STUB,)
    if not has_marker:
        return "\n".join(stub)
    return strip_region(cell.source, BEGIN_SOLUTION, END_SOLUTION, stub=stub, where=where)


def strip_region(source: str, begin: str, end: str, *, stub: Sequence[str] | None, where: str) -> str:
    """Replace every ``begin``...``end`` block (markers included) by ``stub`` lines at the marker's indent."""
    if begin not in source and end not in source:
        return source
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == begin:
            if inside:
                raise BuildError(f"{where}: line {number}: {begin!r} again before {end!r}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub or ())
        elif marker == end:
            if not inside:
                raise BuildError(f"{where}: line {number}: {end!r} without a {begin!r} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise BuildError(f"{where}: {begin!r} is never closed by {end!r}")
    return "\n".join(out)


def planned_exercises(solutions: Path, exercises: Path) -> dict[Path, str]:
    """Map each exercise file to the text it should hold, generated from ``solutions``."""
    plan = {}
    for src in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        nb = generate_exercise(read_notebook(src), src.stem)
        plan[exercises / src.name] = notebook_text(nb)
    return plan


def exercise_drift(solutions: Path, exercises: Path) -> list[str]:
    """What differs between ``exercises`` and what ``solutions`` generates (empty when in sync)."""
    plan = planned_exercises(solutions, exercises)
    problems = []
    for path, text in plan.items():
        if not path.exists():
            problems.append(f"{_show(path)} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{_show(path)} differs from what {_show(solutions / path.name)} generates")
    for path in sorted(exercises.glob("*.ipynb")):
        if path not in plan:
            problems.append(f"{_show(path)} has no source in {_show(solutions)}")
    return problems


def build_exercises(solutions: Path, exercises: Path) -> list[Path]:
    """Write every exercise generated from ``solutions``; return the files that changed."""
    return [path for path, text in planned_exercises(solutions, exercises).items() if _write_text(path, text)]


def _write_text(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


# ---------------------------------------------------------------------------- command line


@dataclass(frozen=True)
class Built:
    path: Path
    seconds: float
    changed: bool
    error: str = ""


def build_notebook(path: Path, timeout: float = 600) -> Built:
    """Execute ``path`` and write it back in place (unless it failed)."""
    start = time.perf_counter()
    try:
        nb = execute_notebook(path, timeout=timeout)
    except BuildError as exc:
        return Built(path, time.perf_counter() - start, False, str(exc))
    return Built(path, time.perf_counter() - start, write_notebook(nb, path))


def default_notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "solutions").glob("*.ipynb"))


def _build_all(paths: list[Path], timeout: float, jobs: int) -> Iterable[Built]:
    """Build ``paths`` in order of the list; with jobs > 1, several at once in separate processes."""
    if jobs == 1:
        yield from (build_notebook(path, timeout) for path in paths)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(build_notebook, paths, [timeout] * len(paths))


def _notebooks_command(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or default_notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"build: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(paths), 4))
    failures = 0
    for built in _build_all(paths, args.timeout, jobs):
        if built.error:
            failures += 1
            print(f"FAILED {built.error}", file=sys.stderr)
        else:
            state = "updated" if built.changed else "unchanged"
            print(f"{state:9} {_show(built.path.resolve())} ({built.seconds:.1f} s)")
    if failures:
        print(f"build: {failures} of {len(paths)} notebook(s) failed; those files were not changed", file=sys.stderr)
    return 1 if failures else 0


def _exercises_command(args: argparse.Namespace) -> int:
    solutions, exercises = Path(args.solutions), Path(args.exercises)
    try:
        if args.check:
            drift = exercise_drift(solutions, exercises)
            for line in drift:
                print(f"out of date: {line}", file=sys.stderr)
            if drift:
                print("build: run `make exercises` and commit the result", file=sys.stderr)
                return 1
            print(f"exercises in sync with {_show(solutions.resolve())}")
            return 0
        changed = build_exercises(solutions, exercises)
    except BuildError as exc:
        print(f"build: {exc}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {_show(path.resolve())}")
    print(f"{len(changed)} exercise notebook(s) changed")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evbroker.build", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    nbs = sub.add_parser("notebooks", help="execute lessons and solutions in place, with outputs")
    nbs.add_argument("paths", nargs="*", help="notebooks to build (default: notebooks/*.ipynb solutions/*.ipynb)")
    nbs.add_argument("--jobs", type=int, default=0, help="notebooks run in parallel (default: CPUs, at most 4)")
    nbs.add_argument("--timeout", type=float, default=600, help="seconds one cell may run (default 600)")
    nbs.set_defaults(run=_notebooks_command)
    ex = sub.add_parser("exercises", help="generate exercises/ from solutions/")
    ex.add_argument("--check", action="store_true", help="write nothing; exit 1 if exercises/ is out of date")
    ex.add_argument("--solutions", default=str(ROOT / "solutions"), help="source folder (default: solutions/)")
    ex.add_argument("--exercises", default=str(ROOT / "exercises"), help="output folder (default: exercises/)")
    ex.set_defaults(run=_exercises_command)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
