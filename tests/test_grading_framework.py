"""The grading framework: the check registry, what a check says to a learner, the helpers check
authors use, nbgrader metadata validation, marking, restoring locked cells, and the self-check.

The example checks live in tests/fixtures/fixture_checks.py: ``99-double`` (a function, 3 points)
and ``99-charges`` (a predicted number, 2 points).
"""

import copy
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

import evbroker as eb
from evbroker.build import ROOT, generate_exercise, read_notebook, write_notebook
from evbroker.grading import (
    CheckFailed,
    NotAnswered,
    Trial,
    call_answer,
    check,
    expect_callable,
    expect_equal,
    expect_number,
    get_check,
    register,
    registered,
    run_broker,
    score,
    trials,
)
from evbroker.grading.__main__ import main as grading_main
from evbroker.grading.assess import assess
from evbroker.grading.cells import metadata, validate_solution
from evbroker.grading.execution import CellRun, NotebookRun, run_notebook
from evbroker.grading.friendly import MESSAGE
from evbroker.grading.gradebook import gradebook_text, write_feedback
from evbroker.grading.marking import Question, mark
from evbroker.grading.progress import ProgressBar
from evbroker.grading.reports import NotebookReport
from evbroker.grading.restore import restore_locked_cells
from evbroker.grading.selfcheck import self_check
from evbroker.grading.submissions import find_submissions
from evbroker.grading.tables import text_table

FIXTURES = Path(__file__).parent / "fixtures"
SOLUTION = FIXTURES / "solutions" / "99_fixture.ipynb"
sys.path.insert(0, str(FIXTURES))
import fixture_checks  # noqa: E402  (registers 99-double and 99-charges)


def stub(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


# ---------------------------------------------------------------------------- registry


def test_a_registered_check_is_found_by_id_with_its_points_and_title():
    c = get_check("99-double")
    assert (c.id, c.points, c.title, c.notebook) == ("99-double", 3, "double a number", "99")
    assert [c.id for c in registered("99")] == ["99-double", "99-charges"]


def test_a_check_that_moved_to_another_exercise_keeps_its_id_and_is_listed_there():
    """06-fewest-workers is asked in exercise 08 (backpressure) and keeps the id gradebooks know."""
    assert get_check("06-fewest-workers").notebook == "08"
    assert [c.id for c in registered("08")] == ["06-predict-depth", "06-fewest-workers"]
    assert [c.id for c in registered("06")] == ["06-fix-poison", "06-retry-backoff"]


def test_an_unknown_id_suggests_the_closest_one():
    with pytest.raises(eb.EvbrokerError, match="no check '99-dubble'; did you mean '99-double'"):
        get_check("99-dubble")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"check_id": "99.1", "points": 1, "title": "t"}, "must look like 'NN-some-words'"),
        ({"check_id": "Double", "points": 1, "title": "t"}, "must look like"),
        ({"check_id": "98-x", "points": 0, "title": "t"}, "points must be a number > 0"),
        ({"check_id": "98-x", "points": 1, "title": " "}, "title must be"),
        ({"check_id": "98-x", "points": 1, "title": "t", "exercise": "8"}, "two-digit number such as '08'"),
    ],
)
def test_register_rejects_bad_ids_points_and_titles(kwargs, problem):
    with pytest.raises(eb.EvbrokerError, match=problem):
        register(**kwargs)


def test_an_id_cannot_be_taken_twice_by_different_functions():
    with pytest.raises(eb.EvbrokerError, match=r"already registered by fixture_checks\.check_double"):

        @register("99-double", points=3, title="double a number")
        def other(answer):
            return None


# ---------------------------------------------------------------------------- what a check says


def test_a_right_answer_prints_its_points(capsys):
    check("99-double", lambda x: x * 2)
    assert capsys.readouterr().out == "✔ 99-double double a number — 3/3 points\n"


def test_a_wrong_answer_fails_with_what_went_wrong_and_how_to_replay_it():
    with pytest.raises(CheckFailed) as caught:
        check("99-double", lambda x: x + x if x > 0 else x)
    failure = caught.value
    assert isinstance(failure, AssertionError), "nbgrader and nbval must see a failing cell"
    assert "double(-" in failure.reason and "got -" in failure.reason
    assert failure.replay == "seed=0, sign: a negative number"
    assert str(failure).endswith("\nReplay: seed=0, sign: a negative number")
    assert failure._render_traceback_()[0] == "✘ 99-double double a number — 0/3 points"


def test_a_wrong_prediction_is_rejected_without_revealing_the_number():
    assert fixture_checks.charges_after_crash_before_ack() == 2
    for wrong in (1, 3, 0):
        with pytest.raises(CheckFailed) as caught:
            score("99-charges", wrong)
        assert f"got {wrong}" in str(caught.value)
        assert "2" not in str(caught.value)


@pytest.mark.parametrize("answer", ["2", True, [2]])
def test_a_prediction_of_the_wrong_type_says_a_number_is_expected(answer):
    with pytest.raises(CheckFailed, match="should be a number"):
        score("99-charges", answer)


def test_a_stub_answer_is_reported_as_not_answered():
    with pytest.raises(NotAnswered, match="Not answered yet"):
        check("99-double", stub)
    with pytest.raises(NotAnswered, match="still None"):
        check("99-charges", None)


@register("97-handler", points=2, title="a handler that charges once")
def _handler_check(handle):
    expect_callable(handle, "handle", params=2)
    for t in trials(seeds=range(3)):
        with t:
            b = eb.Broker(seed=t.seed)
            b.queue("payments")
            b.worker("payments", handle)
            b.publish("payments", {"order": "o1"})
            run_broker(b)
            expect_equal(len(b.effects("charge")), 1, what="charges for order o1", reveal=True)


def test_a_stub_handler_run_by_the_broker_is_not_answered_rather_than_a_processing_failure():
    with pytest.raises(NotAnswered):
        score("97-handler", stub)


def test_a_stub_inside_a_callable_object_is_caught_in_the_trace():
    class Handler:
        def __call__(self, msg, ctx):
            return stub()

    with pytest.raises(NotAnswered):
        score("97-handler", Handler())


def test_a_handler_check_passes_and_fails_in_the_learners_terms():
    assert score("97-handler", lambda msg, ctx: ctx.effect("charge")).points == 2
    with pytest.raises(CheckFailed, match="charges for order o1: expected 1, got 0") as caught:
        score("97-handler", lambda msg, ctx: None)
    assert caught.value.replay == "seed=0"
    with pytest.raises(CheckFailed, match=r"handle should take 2 argument\(s\); yours is handle\(msg\)"):
        score("97-handler", lambda msg: None)


@register("97-partial", points=2, title="partial credit")
def _partial_check(answer):
    return answer


def test_a_check_may_give_partial_credit_but_only_within_its_points(capsys):
    check("97-partial", 1)
    assert capsys.readouterr().out == "◐ 97-partial partial credit — 1/2 points\n"
    for bad in (0, 3, "1"):
        with pytest.raises(eb.EvbrokerError, match="returned"):
            score("97-partial", bad)


# ---------------------------------------------------------------------------- helpers for authors


def test_trials_cover_every_scenario_for_every_seed_with_readable_replays():
    runs = list(trials(seeds=[1, 2], faults={"none": None, "lost acks": "F"}, workers=[1, 3]))
    assert len(runs) == 8
    assert [(t.seed, t["faults"], t["workers"]) for t in runs[:3]] == [(1, None, 1), (2, None, 1), (1, None, 3)]
    assert runs[-1].replay == "seed=2, faults: lost acks, workers: 3"
    with pytest.raises(eb.EvbrokerError, match="at least one seed"):
        list(trials(seeds=[]))
    with pytest.raises(eb.EvbrokerError, match="must be a dict"):
        list(trials(faults="x"))


def test_a_trial_adds_its_replay_to_failures_but_keeps_an_explicit_one():
    with pytest.raises(CheckFailed) as caught, Trial(4, {"k": 1}, {"k": "one"}):
        raise CheckFailed("wrong")
    assert caught.value.replay == "seed=4, k: one"
    with pytest.raises(CheckFailed) as caught, Trial(4):
        raise CheckFailed("wrong", replay="b = make(seed=9)")
    assert caught.value.replay == "b = make(seed=9)"


def test_call_answer_turns_the_learners_errors_into_feedback():
    def broken(x):
        return {}[x]

    def misconfigured():
        eb.Broker(seed=0).queue("q", guarantee="at-least-one")

    with pytest.raises(CheckFailed, match=r"broken\(3\) raised KeyError: 3"):
        call_answer(broken, 3, what="broken(3)")
    with pytest.raises(CheckFailed, match="rejected by the broker: guarantee must be one of"):
        call_answer(misconfigured)
    with pytest.raises(NotAnswered):
        call_answer(stub)


def test_expect_helpers_explain_what_they_wanted():
    with pytest.raises(CheckFailed, match="should be a function you define with `def build"):
        expect_callable(3, "build")
    assert expect_number(2.5) == 2.5


def test_expect_number_takes_numpy_numbers_by_value_and_refuses_subclasses():
    np = pytest.importorskip("numpy")

    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    assert type(expect_number(np.int64(6))) is int and expect_number(np.int64(6)) == 6
    assert type(expect_number(np.float32(0.5))) is float
    with pytest.raises(CheckFailed, match="should be a plain number such as 3; got a Yes"):
        expect_number(Yes(0))
    for wrong in (True, "6", float("nan"), np.float64("nan")):
        with pytest.raises(CheckFailed, match="should be a number such as 3"):
            expect_number(wrong)
    with pytest.raises(CheckFailed, match="copies: expected 1, got 2"):
        expect_equal(2, 1, what="copies", reveal=True)
    with pytest.raises(CheckFailed, match=r"^copies: got 2, which is not right\. Count again\.$"):
        expect_equal(2, 1, what="copies", hint="Count again.")


# ---------------------------------------------------------------------------- nbgrader metadata


def test_the_fixture_solution_agrees_with_its_checks():
    assert validate_solution(SOLUTION) == []


def edited_solution(tmp_path, change):
    nb = read_notebook(SOLUTION)
    change(nb)
    path = tmp_path / SOLUTION.name
    write_notebook(nb, path)
    return validate_solution(path)


def cell_by_id(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda nb: cell_by_id(nb, "99-double").metadata.nbgrader.update(points=4), "worth 4 points but check"),
        (lambda nb: cell_by_id(nb, "99-double").metadata.nbgrader.update(locked=False), "should be locked"),
        (lambda nb: setattr(cell_by_id(nb, "99-double"), "source", 'check("99-charges", double)'), "exactly once"),
        (
            lambda nb: setattr(cell_by_id(nb, "setup"), "source", "### BEGIN SOLUTION\n### END SOLUTION"),
            "not an answer",
        ),
        (lambda nb: setattr(cell_by_id(nb, "double-answer"), "source", "### BEGIN SOLUTION\nx"), "never closed"),
        (lambda nb: cell_by_id(nb, "setup").metadata.nbgrader.update(grade_id="intro"), "already used"),
        (lambda nb: cell_by_id(nb, "setup").metadata.nbgrader.update(grade_id="set up"), "only letters"),
        (lambda nb: cell_by_id(nb, "setup").metadata.nbgrader.pop("schema_version"), "lacks 'schema_version'"),
        (lambda nb: nb.cells.remove(cell_by_id(nb, "99-charges")), "'99-charges' is registered but no graded cell"),
    ],
)
def test_validation_finds_metadata_that_disagrees_with_nbgrader_or_the_checks(tmp_path, change, problem):
    problems = edited_solution(tmp_path, change)
    assert any(problem in p for p in problems), problems


def test_cell_metadata_helper_builds_nbgrader_dicts():
    assert metadata("graded", "02-x", points=3) == {
        "solution": False,
        "grade": True,
        "locked": True,
        "grade_id": "02-x",
        "schema_version": 3,
        "points": 3,
    }
    assert metadata("answer", "02-x-answer")["solution"] is True
    with pytest.raises(eb.EvbrokerError, match="points= is needed"):
        metadata("graded", "02-x")
    with pytest.raises(eb.EvbrokerError, match="one of 'answer', 'graded', 'locked'"):
        metadata("test", "02-x")


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_committed_solution_agrees_with_its_checks(path):
    assert validate_solution(path) == []


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "exercises").glob("*.ipynb")), ids=lambda p: p.name)
def test_every_shipped_exercise_fails_only_because_its_answers_are_missing(path):
    """Run as shipped, every graded cell reports "not answered" and no other cell errors."""
    result = assess(path, cell_timeout=120, timeout=600)
    assert result.status == "ok", result.notes
    assert {q.id: q.status for q in result.questions} == {q.id: "unanswered" for q in result.questions}
    assert result.questions, "an exercise has graded cells"
    assert result.cell_errors == []


# ---------------------------------------------------------------------------- marking


def graded(nb):
    from evbroker.grading.cells import graded_cells

    return graded_cells(nb)


def marked(**runs):
    """Mark the fixture solution as if its cells had run as given (by cell index)."""
    nb = read_notebook(SOLUTION)
    cells = {i: CellRun(i, "ok") for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    cells.update({int(k[1:]): v for k, v in runs.items()})
    return {q.id: q for q in mark(nb, graded(nb), NotebookRun(cells))}


def test_marking_reads_the_points_each_check_printed():
    qs = marked(
        c4=CellRun(4, "ok", stdout="hello\n✔ 99-double double a number — 3/3 points\n"),
        c7=CellRun(7, "ok", stdout="◐ 99-charges predict the charges — 1/2 points\n"),
    )
    assert (qs["99-double"].points, qs["99-double"].status) == (3, "passed")
    assert (qs["99-charges"].points, qs["99-charges"].status) == (1, "partial")


def test_marking_gives_nothing_for_a_check_that_printed_no_result_or_claims_too_much():
    qs = marked(c4=CellRun(4, "ok", stdout=""), c7=CellRun(7, "ok", stdout="✔ 99-charges x — 9/2 points"))
    assert (qs["99-double"].points, qs["99-double"].status) == (0, "error")
    assert qs["99-charges"].points == 2, "points are capped at the source's points"


def test_marking_tells_failures_unanswered_errors_timeouts_and_cells_not_run_apart():
    qs = marked(
        c4=CellRun(4, "error", "CheckFailed", "double(3): expected 6, got 7.\nReplay: seed=1"),
        c7=CellRun(7, "timeout", evalue="stopped after 2 s"),
    )
    assert (qs["99-double"].status, qs["99-double"].message) == (
        "failed",
        "double(3): expected 6, got 7.\nReplay: seed=1",
    )
    assert qs["99-charges"].status == "timeout" and "loop forever" in qs["99-charges"].message
    qs = marked(
        c6=CellRun(6, "error", "NotImplementedError"),
        c7=CellRun(7, "error", "NameError", "name 'charges' is not defined"),
        c4=CellRun(4, "error", "NameError", "name 'double' is not defined"),
    )
    assert qs["99-charges"].status == "unanswered", "a NameError after an unanswered answer cell"
    assert qs["99-double"].status == "error", "a NameError with no unanswered cell before it"
    qs = marked(c7=CellRun(7, "not-run"))
    assert qs["99-charges"].status == "not-run"


# ---------------------------------------------------------------------------- restoring locked cells


def test_restoring_undoes_edits_to_locked_cells_and_keeps_the_learners_own_cells():
    source = read_notebook(SOLUTION)
    sub = copy.deepcopy(source)
    cell_by_id(sub, "99-double").source = 'print("✔ 99-double double a number — 3/3 points")'
    cell_by_id(sub, "double-answer").source = "def double(x):\n    return x"
    sub.cells.insert(4, new_code_cell("helper = 1"))
    sub.cells.append(copy.deepcopy(cell_by_id(source, "99-charges")))
    sub.cells.remove(cell_by_id(sub, "setup"))
    sub.cells.remove(cell_by_id(sub, "q-charges"))

    restored = restore_locked_cells(sub, source)

    nb = restored.nb
    assert cell_by_id(nb, "99-double").source == 'check("99-double", double)'
    assert cell_by_id(nb, "double-answer").source == "def double(x):\n    return x"
    assert any(c.source == "helper = 1" for c in nb.cells)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids.count("99-charges") == 1
    assert ids.index("setup") == ids.index("intro") + 1, "put back after its neighbour"
    assert restored.edited == ["99-double"]
    assert restored.reinserted == ["setup", "q-charges"]
    assert restored.duplicates == ["99-charges"]
    assert cell_by_id(sub, "99-double").source.startswith("print"), "the submission itself is not changed"


def test_a_missing_graded_cell_is_reported_not_invented():
    source = read_notebook(SOLUTION)
    sub = copy.deepcopy(source)
    sub.cells.remove(cell_by_id(sub, "99-charges"))
    restored = restore_locked_cells(sub, source)
    assert restored.missing_graded == ["99-charges"]
    assert "graded cell '99-charges' is missing" in restored.notes()[0]


# ---------------------------------------------------------------------------- submissions, gradebook


def test_submissions_are_found_in_student_folders_nbgrader_folders_and_flat_files(tmp_path):
    sources = [tmp_path / "src" / "02_queues.ipynb", tmp_path / "src" / "05_idempotence.ipynb"]
    nb = read_notebook(SOLUTION)
    tagged = generate_exercise(nb, "05_idempotence")
    files = {
        "ada/02_queues.ipynb": nb,
        "bob/ps1/05_idempotence.ipynb": nb,
        "cyd_02_queues.ipynb": nb,
        "dee.ipynb": tagged,
        "eve/.ipynb_checkpoints/02_queues-checkpoint.ipynb": nb,
        "fay/homework.ipynb": nb,
        "gus/05-my-copy.ipynb": nb,
    }
    for name, content in files.items():
        write_notebook(content, tmp_path / "in" / name)

    found = {(s.student, s.source.stem if s.source else None) for s in find_submissions(tmp_path / "in", sources)}

    assert found == {
        ("ada", "02_queues"),
        ("bob", "05_idempotence"),
        ("cyd", "02_queues"),
        ("dee", "05_idempotence"),
        ("fay", None),
        ("gus", None),
    }


def report(student, notebook, *questions, statuses=()):
    return NotebookReport(student, notebook, f"{student}/{notebook}.ipynb", list(questions), list(statuses))


def test_the_gradebook_has_a_column_per_question_and_a_row_per_notebook(tmp_path):
    reports = [
        report("bob", "03_b", Question("03-x", "x", 2, 2, "passed")),
        report("ada", "02_a", Question("02-p", "p", 1.5, 3, "partial"), Question("02-q", "q", 0, 2, "failed", "no")),
        report("ada", "03_b", Question("03-x", "x", 0, 2, "not-run"), statuses=["kernel-died", "cell-timeout"]),
    ]
    assert gradebook_text(reports).splitlines() == [
        "student,notebook,02-p,02-q,03-x,total,max,status",
        "ada,02_a,1.5,0,,1.5,5,ok",
        "ada,03_b,,,0,0,2,kernel-died;cell-timeout",
        "bob,03_b,,,2,2,2,ok",
    ]
    paths = write_feedback(reports, tmp_path)
    assert [p.name for p in paths] == ["ada.md", "bob.md"]
    text = paths[0].read_text()
    assert "Total: 1.5 / 7 points" in text
    assert "| 02-q | q | 0 / 2 | ✘ not yet right |" in text
    assert "Status: kernel-died;cell-timeout" in text


def test_the_text_table_lists_each_question_and_the_total():
    r = report("", "02_a", Question("02-p", "predict", 3, 3, "passed"), Question("02-q", "build", 0, 2, "unanswered"))
    lines = text_table(r).splitlines()
    assert lines[0].split() == ["question", "title", "points", "result"]
    assert lines[2].split() == ["02-p", "predict", "3", "/", "3", "✔", "passed"]
    assert lines[3].split() == ["02-q", "build", "0", "/", "2", "…", "not", "answered"]
    assert lines[-1].split() == ["total", "3", "/", "5"]


def test_the_progress_bar_writes_one_line_per_step_when_not_on_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(2, stream=stream, width=4)
    bar.step("ada 02: 3/5 ok")
    bar.step("bob 02: 5/5 ok")
    assert stream.getvalue().splitlines() == ["grading ██░░ 1/2 ada 02: 3/5 ok", "grading ████ 2/2 bob 02: 5/5 ok"]


# ---------------------------------------------------------------------------- in a real kernel


@pytest.fixture
def exercise(tmp_path, monkeypatch):
    """The fixture exercise as shipped, with the fixture checks importable by its kernel."""
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))
    path = tmp_path / "exercises" / SOLUTION.name
    write_notebook(generate_exercise(read_notebook(SOLUTION), SOLUTION.stem), path)
    return path


@pytest.mark.slow
def test_in_a_kernel_stub_cells_and_check_cells_speak_to_the_learner(exercise):
    nb = read_notebook(exercise)
    run = run_notebook(nb, exercise.parent, cell_timeout=30, timeout=120)
    answer = cell_by_id(nb, "charges-answer").outputs[0]
    assert (answer.ename, answer.traceback) == ("NotImplementedError", MESSAGE)
    failed = cell_by_id(nb, "99-double").outputs[0]
    assert failed.ename == "NotAnswered"
    assert failed.traceback[0] == "✘ 99-double double a number — 0/3 points"
    assert run.status == "ok"


@pytest.mark.slow
def test_self_check_prints_points_per_question_and_the_total(exercise):
    out = io.StringIO()
    shutil.copytree(FIXTURES / "solutions", exercise.parent.parent / "solutions")
    report = self_check(exercise.parent.parent / "solutions" / SOLUTION.name, out=out)
    assert (report.points, report.max_points, report.status) == (5, 5, "ok")
    text = out.getvalue()
    assert re.search(r"\n99-double +double a number +3 / 3  ✔ passed\n", text)
    assert re.search(r"\ntotal +5 / 5\n", text)


@pytest.mark.slow
def test_self_check_command_on_an_unanswered_exercise(exercise):
    shutil.copytree(FIXTURES / "solutions", exercise.parent.parent / "solutions")
    nb = read_notebook(exercise)
    cell_by_id(nb, "99-charges").source = 'check("99-charges", 2)'
    write_notebook(nb, exercise)
    result = subprocess.run(
        [sys.executable, "-m", "evbroker.grading", "check", str(exercise)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(FIXTURES)},
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\n99-double +double a number +0 / 3  … not answered\n", result.stdout)
    assert re.search(r"\n99-charges +predict the charges +2 / 2  ✔ passed\n", result.stdout)
    assert re.search(r"\ntotal +2 / 5\n", result.stdout)
    assert "you changed the check cell '99-charges'" in result.stdout


def test_validate_command_reports_problems_with_a_nonzero_exit(tmp_path, capsys):
    nb = read_notebook(SOLUTION)
    nb.cells.insert(0, new_markdown_cell("### BEGIN SOLUTION\n### END SOLUTION"))
    write_notebook(nb, tmp_path / SOLUTION.name)
    assert grading_main(["validate", str(SOLUTION)]) == 0
    assert grading_main(["validate", str(tmp_path / SOLUTION.name)]) == 1
    assert "cell 1: has solution markers but no nbgrader metadata" in capsys.readouterr().err
