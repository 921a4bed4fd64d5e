"""Grade one submission: run its cells in a sandboxed kernel, judge its answers here, in the grader.

The graded cells (``check("04-x", answer)``) are never run in the kernel. For each one the
grader asks the kernel for the values of the names the cell passes (as plain data, see
:mod:`evbroker.grading.boundary`) and runs the registered check in its own process. A value
answer is judged as the value that arrived; a function answer arrives as a
:class:`RemoteFunction`, and every call the check's broker makes on it travels to the kernel
as a record, as do the learner's calls back on the broker's context. Points therefore never
come from anything the notebook printed or patched.

A cell that runs past its limit, or a kernel that dies, costs that cell: the sandbox is
killed, a new kernel replays the cells that ran before, and grading goes on. Code that reaches
for what a learner has no business touching (the grader's files, other processes, IPython's
hooks, the check machinery) flags the row "tampering suspected" and zeroes the questions it
touched.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import time
import tokenize
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evbroker.grading import proxies
from evbroker.grading.boundary import ProtocolError, Refused
from evbroker.grading.cells import grade_id, graded_cells, is_answer, is_graded
from evbroker.grading.channel import ChannelClosed, ChannelTimeout
from evbroker.grading.marking import CRASHED, FAILED, MISSING, NOT_RUN, PARTIAL, PASSED, UNANSWERED, Question, title
from evbroker.grading.outcome import NOT_ANSWERED_HINT, CheckFailed
from evbroker.grading.registry import get_check
from evbroker.grading.reports import NotebookReport
from evbroker.grading.restore import restore_locked_cells
from evbroker.grading.runner import BROKEN, ERROR, OK, TIMEOUT, KernelSession
from evbroker.grading.sandbox import Limits
from evbroker.grading.scoring import _points, _Unanswered

TAMPERING = "tampering"
#: Names and texts no exercise answer needs; finding one in a learner's code flags the row.
SUSPECT_CODE = re.compile(
    r"set_custom_exc|input_transformers|register_magic|events\.register|ast_transformers|"
    r"/proc\b|\bsolutions\b|gradebook|_CHECKS|get_check|load_checks|"
    r"evbroker\.grading\.(?!check\b)|evbroker\.grading import (?!check\b)|\bimportlib\b|__import__|"
    r"\bsubprocess\b|os\.kill|os\.fork|os\.system|os\.exec|os\._exit|os\.popen|signal\.|\bctypes\b|"
    r"sys\.modules|__builtins__|\bbuiltins\b|settrace|setprofile|gc\.get_objects|__subclasses__|__globals__|"
    r"def __eq__|__eq__=|\bcheck\s*=(?!=)|def\s+check\b"
)


@dataclass
class Settings:
    """Limits and options for judging one submission."""

    cell_timeout: float = 60
    timeout: float = 600
    limits: Limits = field(default_factory=Limits)
    bwrap: str | None = None
    readable: tuple[Path, ...] = ()
    hidden_seeds: tuple[int, ...] = ()


# ---------------------------------------------------------------------------- one submission


def answer_names(source: str, check_id: str) -> tuple[list[str], bool] | None:
    """The names a graded cell hands to its check, and whether it hands them as a tuple."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check" and len(node.args) == 2:
            arg = node.args[1]
            if isinstance(arg, ast.Name):
                return [arg.id], False
            if isinstance(arg, ast.Tuple) and all(isinstance(e, ast.Name) for e in arg.elts):
                return [e.id for e in arg.elts], True
    return None


def suspicious(source: str) -> list[str]:
    """What in ``source`` (comments left out) no answer needs."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        code = " ".join(t.string for t in tokens if t.type != tokenize.COMMENT)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = source
    code = re.sub(r"\s*=\s*", "=", code)
    code = re.sub(r"\s*\.\s*", ".", code)
    return sorted({m.group(0).strip() for m in SUSPECT_CODE.finditer(code)})


def refused_in(value: Any) -> str | None:
    if isinstance(value, Refused):
        return value.why
    if type(value) in (list, tuple):
        return next((r for r in map(refused_in, value) if r), None)
    if type(value) is dict:
        return next((r for r in map(refused_in, [*value.keys(), *value.values()]) if r), None)
    return None


@contextmanager
def hidden_variant(fn: Any, seeds: tuple[int, ...]):
    """Run a check on other seeds than the self-check's: its module's ``SEEDS``, swapped for ``seeds``."""
    module = sys.modules.get(getattr(fn, "__module__", ""))
    old = getattr(module, "SEEDS", None)
    module.SEEDS = seeds  # type: ignore[union-attr]
    try:
        yield
    finally:
        module.SEEDS = old  # type: ignore[union-attr]


def takes_seeds(fn: Any) -> bool:
    """A check with a ``seeds=`` keyword: the grader hands it the hidden seeds that way."""
    try:
        return "seeds" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def has_variants(fn: Any) -> bool:
    """Can the grader try this check on hidden seeds: a ``seeds=`` keyword, or a module ``SEEDS`` it reads."""
    if takes_seeds(fn):
        return True
    module = sys.modules.get(getattr(fn, "__module__", ""))
    code = getattr(fn, "__code__", None)
    return module is not None and hasattr(module, "SEEDS") and code is not None and "SEEDS" in code.co_names


def run_hidden_variant(fn: Any, answer: Any, seeds: tuple[int, ...]) -> Any:
    if takes_seeds(fn):
        return fn(answer, seeds=seeds)
    with hidden_variant(fn, seeds):
        return fn(answer)


def judge(nb: Any, source_nb: Any, report: NotebookReport, scratch: Path, settings: Settings) -> None:
    """Run ``nb`` (a submission, already read) against ``source_nb``; fill ``report``."""
    restored = restore_locked_cells(nb, source_nb)
    nb = restored.nb
    report.notes += restored.notes()
    if restored.missing_graded:
        report.statuses.append("missing-cells")
    graded = {g.grade_id: g for g in graded_cells(source_nb)}
    source_cells = {grade_id(c): c for c in source_nb.cells if is_graded(c)}
    questions: dict[str, Question] = {}
    session = KernelSession(
        scratch, settings.limits, bwrap=settings.bwrap, readable=settings.readable, configure=proxies.configure
    )
    deadline = time.monotonic() + settings.timeout
    replay: list[int] = []
    lost: dict[int, str] = {}  # cells stopped or killed, and why
    unanswered = False
    region: list[int] = []  # answer cells since the last graded cell
    tainted: list[str] = []  # what in the current region looked like tampering
    try:
        session.start()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if time.monotonic() > deadline:
                report.statuses.append("timeout")
                report.notes.append(f"the notebook ran longer than {settings.timeout:g} s in total")
                break
            if is_graded(cell):
                gid = grade_id(cell)
                if gid in graded and gid not in questions:
                    session.audits.clear()
                    q = _question(session, graded[gid], source_cells[gid].source, settings, lost, region, unanswered)
                    if session.audits:
                        tainted += session.audits
                    if tainted:
                        q = Question(
                            q.id, q.title, 0, q.max_points, TAMPERING, "tampering suspected: " + "; ".join(tainted[:3])
                        )
                        report.statuses.append("tampering-suspected")
                        report.notes.append(f"question {gid!r}: tampering suspected ({'; '.join(tainted[:5])})")
                    questions[gid] = q
                    if not session.alive():
                        session.restart()
                        _replay(session, nb, replay, settings, lost)
                region, tainted = [], []
                continue
            region.append(index)
            found = suspicious(cell.source) if is_answer(cell) or grade_id(cell) is None else []
            tainted += [f"cell {index + 1} uses {what!r}" for what in found]
            session.audits.clear()
            outcome = session.run(cell.source, min(settings.cell_timeout, max(1.0, deadline - time.monotonic())))
            tainted += [f"cell {index + 1}: {a}" for a in session.audits]
            if outcome.status in (OK, ERROR):
                replay.append(index)
                if outcome.ename in ("NotImplementedError", "NotAnswered") and is_answer(cell):
                    unanswered = True
                elif (
                    outcome.status == "error"
                    and outcome.ename not in ("NotImplementedError", "NotAnswered")
                    and (is_answer(cell) or grade_id(cell) is None)
                ):
                    report.cell_errors.append(f"cell {index + 1} raised {outcome.ename}: {outcome.evalue[:200]}")
                continue
            lost[index] = outcome.evalue
            if outcome.status == TIMEOUT:
                report.statuses.append("cell-timeout")
                report.notes.append(f"cell {index + 1} was {outcome.evalue}; the kernel was restarted")
            elif outcome.status == BROKEN:
                tainted.append(f"cell {index + 1}: {outcome.evalue}")
            else:
                report.statuses.append("kernel-died")
                report.notes.append(f"the kernel died while running cell {index + 1}; it was restarted")
            session.restart()
            _replay(session, nb, replay, settings, lost)
    except (ChannelClosed, ChannelTimeout, ProtocolError) as exc:
        report.statuses.append("kernel-failed")
        report.notes.append(f"the kernel could not be started or kept running: {type(exc).__name__}: {exc}")
    finally:
        session.stop()
    report.questions = [
        questions.get(gid) or _not_reached(g, report, restored.missing_graded) for gid, g in graded.items()
    ]


def _not_reached(g: Any, report: NotebookReport, missing: list[str]) -> Question:
    if g.grade_id in missing:
        return Question(
            g.grade_id, title(g.grade_id), 0, g.points, MISSING, "the graded cell is missing, so it was not graded"
        )
    why = report.notes[-1] if report.notes else "the notebook stopped before this cell"
    return Question(g.grade_id, title(g.grade_id), 0, g.points, NOT_RUN, f"not run: {why}")


def _replay(session: KernelSession, nb: Any, replay: list[int], settings: Settings, lost: dict[int, str]) -> None:
    """Run again, in the new kernel, the cells that ran before; drop any that will not finish now."""
    dropped = session.replay({i: nb.cells[i].source for i in replay}, settings.cell_timeout)
    lost.update(dropped)
    replay[:] = [i for i in replay if i not in dropped]


def _question(
    session: KernelSession,
    g: Any,
    graded_source: str,
    settings: Settings,
    lost: dict[int, str],
    region: list[int],
    unanswered: bool,
) -> Question:
    name = title(g.grade_id)

    def result(points: float, status: str, message: str) -> Question:
        return Question(g.grade_id, name, points, g.points, status, message)

    wanted = answer_names(graded_source, g.grade_id)
    if wanted is None:
        return result(0, CRASHED, "the graded cell does not hand an answer to its check")
    names, as_tuple = wanted
    try:
        values = session.answer(names, settings.cell_timeout)
    except NameError as exc:
        stopped = [i for i in region if i in lost]
        if stopped:
            return result(0, TIMEOUT, f"cell {stopped[0] + 1} was {lost[stopped[0]]}, so {exc} was never defined")
        if unanswered:
            return result(0, UNANSWERED, f"Not answered yet. {NOT_ANSWERED_HINT}")
        return result(0, CRASHED, f"NameError: name {str(exc)!r} is not defined")
    except (ChannelTimeout, ChannelClosed) as exc:
        session.stop()
        return result(0, CRASHED, f"the kernel did not hand over the answer ({type(exc).__name__})")
    except ProtocolError as exc:
        session.stop()
        return result(0, TAMPERING, f"the kernel broke the grader's protocol: {exc}")
    except Exception as exc:
        return result(0, CRASHED, f"{type(exc).__name__}: {exc}")
    answer = tuple(values) if as_tuple else values[0]
    refused = refused_in(answer)
    if refused:
        return result(0, FAILED, f"{', '.join(names)} should hold plain values; got {refused}")
    check = get_check(g.grade_id)
    session.channel.deadline = time.monotonic() + settings.cell_timeout
    try:
        earned = _run_check(check, answer)
        if settings.hidden_seeds and has_variants(check.fn):
            try:
                run_hidden_variant(check.fn, answer, settings.hidden_seeds)
            except CheckFailed as failure:
                failure.reason = f"on a hidden variant (seeds the self-check does not try): {failure.reason}"
                raise
    except (_Unanswered, NotImplementedError):
        return result(0, UNANSWERED, f"Not answered yet. {NOT_ANSWERED_HINT}")
    except CheckFailed as failure:
        if type(failure).__name__ == "NotAnswered":
            return result(0, UNANSWERED, f"Not answered yet. {NOT_ANSWERED_HINT}")
        return result(0, FAILED, str(failure))
    except ChannelTimeout:
        session.stop()
        return result(
            0,
            TIMEOUT,
            f"the check was stopped after {settings.cell_timeout:g} s: "
            "does your code loop forever or wait on something?",
        )
    except ChannelClosed:
        session.stop()
        return result(0, CRASHED, "the kernel died while the check ran your code (out of memory, or it ended itself)")
    except ProtocolError as exc:
        session.stop()
        return result(0, TAMPERING, f"the kernel broke the grader's protocol: {exc}")
    except RecursionError:
        return result(0, CRASHED, "RecursionError while checking your answer")
    except Exception as exc:
        return result(0, CRASHED, f"{type(exc).__name__}: {str(exc)[:300]}")
    points = _points(check, earned)
    return result(
        points, PASSED if points >= g.points else PARTIAL, f"{format(points, 'g')}/{format(g.points, 'g')} points"
    )


def _run_check(check: Any, answer: Any) -> Any:
    return check.fn(answer)
