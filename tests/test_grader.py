"""The classroom grader on a class of ten: good submissions and every kind of bad one.

The class (tests/fixtures/fixture_class.py) answers fixture exercise 99 (99-double: 3 points,
99-charges: 2 points). It is graded once, through the command line entry point, with two
notebooks at a time, 2 s per cell and 8 s per notebook; each test then reads one outcome.
"""

import csv
import json
import sys
from pathlib import Path

import pytest

from evbroker.build import read_notebook, write_notebook
from evbroker.grading.grader import Grader, main
from evbroker.grading.sandbox import bwrap_path
from evbroker.grading.submissions import Submission

pytestmark = [
    pytest.mark.slow,  # every test here starts kernels
    pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap (bwrap) is needed: sudo apt-get install -y bubblewrap"),
]

FIXTURES = Path(__file__).parent / "fixtures"
#: A cell's time limit: long enough for an honest cell on a busy machine, short enough that the
#: endless loops these tests grade do not drag on.
CELL_LIMIT = 8
sys.path.insert(0, str(FIXTURES))
from fixture_class import INTERRUPT_PROOF_LOOP, NAME, SOLUTION, class_submissions  # noqa: E402


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the whole class once; return the output folder."""
    root = tmp_path_factory.mktemp("class")
    class_submissions(root / "submitted")
    out = root / "graded"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(FIXTURES))
        code = main(
            [
                str(root / "submitted"),
                "--out",
                str(out),
                "--source",
                str(SOLUTION.parent),
                "--jobs",
                "2",
                "--cell-timeout",
                str(CELL_LIMIT),
                "--timeout",
                str(4 * CELL_LIMIT),
                "--checks",
                "fixture_checks",
            ]
        )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def book(graded):
    with open(graded / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def report(graded, student):
    return json.loads((graded / "reports" / student / "99_fixture.json").read_text())


def feedback(graded, student):
    return (graded / "feedback" / f"{student}.md").read_text()


def test_the_gradebook_has_every_student_with_points_per_question(book, graded):
    header = (graded / "gradebook.csv").read_text().splitlines()[0]
    assert header == "student,notebook,99-double,99-charges,total,max,status"
    assert sorted(book) == ["ada", "bob", "cyd", "dee", "eve", "fay", "gus", "hal", "ivy", "jon"]
    assert all(row["notebook"] == "99_fixture" and row["max"] == "5" for row in book.values())


def test_a_right_submission_gets_full_marks(book, graded):
    assert (book["ada"]["99-double"], book["ada"]["99-charges"], book["ada"]["total"]) == ("3", "2", "5")
    assert book["ada"]["status"] == "ok"
    assert "Total: 5 / 5 points" in feedback(graded, "ada")


def test_a_flat_file_is_graded_for_the_student_named_in_it(book):
    assert (book["ivy"]["total"], book["ivy"]["status"]) == ("5", "ok")


def test_wrong_answers_get_zero_and_feedback_saying_what_went_wrong(book, graded):
    assert (book["bob"]["total"], book["bob"]["status"]) == ("0", "ok")
    text = feedback(graded, "bob")
    assert "double(865): expected 1730, got 866." in text
    assert "Replay: seed=0, sign: a positive number" in text
    assert "your predicted number of charges: got 1, which is not right." in text


def test_a_weakened_check_cell_is_restored_so_the_wrong_answer_still_fails(book, graded):
    assert (book["cyd"]["99-double"], book["cyd"]["99-charges"]) == ("0", "2")
    assert "graded cell '99-double' was edited; the original was put back" in feedback(graded, "cyd")


def test_an_unanswered_exercise_is_marked_not_answered(book, graded):
    assert book["dee"]["total"] == "0"
    assert [q["status"] for q in report(graded, "dee")["questions"]] == ["unanswered", "unanswered"]
    assert report(graded, "dee")["cell_errors"] == []


def test_invalid_json_gets_a_status_and_zero(book, graded):
    assert (book["eve"]["total"], book["eve"]["status"]) == ("0", "invalid-notebook")
    assert "it is not valid JSON" in feedback(graded, "eve")


def test_an_endless_answer_cell_is_stopped_and_the_rest_still_graded(book, graded):
    assert (book["fay"]["99-double"], book["fay"]["99-charges"]) == ("0", "2")
    assert book["fay"]["status"] == "cell-timeout"
    assert f"cell 4 was stopped after {CELL_LIMIT} s; the kernel was restarted" in feedback(graded, "fay")
    assert report(graded, "fay")["questions"][0]["message"].startswith(f"cell 4 was stopped after {CELL_LIMIT} s")


def test_a_kernel_that_dies_costs_only_its_own_question(book, graded):
    assert (book["gus"]["99-double"], book["gus"]["99-charges"]) == ("3", "0")
    assert book["gus"]["status"] == "tampering-suspected;kernel-died"  # it called os._exit
    statuses = [q["status"] for q in report(graded, "gus")["questions"]]
    assert statuses == ["passed", "tampering"]


def test_a_missing_graded_cell_scores_zero_for_that_question_only(book, graded):
    assert (book["hal"]["99-double"], book["hal"]["99-charges"]) == ("3", "0")
    assert book["hal"]["status"] == "missing-cells"
    assert "graded cell '99-charges' is missing" in feedback(graded, "hal")


def test_a_cell_that_ignores_interrupts_costs_its_question_within_the_cell_limit(book, graded):
    assert (book["jon"]["99-double"], book["jon"]["99-charges"]) == ("3", "0")
    assert book["jon"]["status"] == "cell-timeout"
    assert report(graded, "jon")["seconds"] < CELL_LIMIT + 10, "the cell's limit, plus a kernel restart"


def test_a_rerun_skips_unchanged_submissions_and_regrades_changed_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))
    write_notebook(read_notebook(SOLUTION), tmp_path / "in" / "ada" / NAME)
    args = [str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--source", str(SOLUTION.parent)]
    args += ["--checks", "fixture_checks", "--jobs", "1"]
    assert main(args) == 0
    first = report(tmp_path / "out", "ada")
    assert main(args) == 0
    assert report(tmp_path / "out", "ada") == first, "the unchanged submission was not graded again"
    nb = read_notebook(SOLUTION)
    nb.cells[6].source = "charges = 1"
    write_notebook(nb, tmp_path / "in" / "ada" / NAME)
    assert main(args) == 0
    assert report(tmp_path / "out", "ada")["questions"][1]["points"] == 0


def test_two_submissions_of_one_exercise_are_reported_not_added_up(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))
    write_notebook(read_notebook(SOLUTION), tmp_path / "in" / "Zoë" / NAME)
    write_notebook(read_notebook(SOLUTION), tmp_path / "in" / "Zoë" / "copy" / NAME)
    write_notebook(read_notebook(SOLUTION), tmp_path / "in" / "Zoé" / NAME)
    args = [str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--source", str(SOLUTION.parent)]
    assert main([*args, "--checks", "fixture_checks"]) == 0
    rows = (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == ["Zoé", "Zoë", "Zoë"]
    assert all(r.endswith("duplicate-submission") for r in rows if r.startswith("Zoë"))
    feedback_files = sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir())
    assert len(feedback_files) == 2
    text = next(p for p in (tmp_path / "out" / "feedback").iterdir() if "Zoë" in p.read_text(encoding="utf-8"))
    assert "Submitted more than once: 99_fixture" in text.read_text(encoding="utf-8")
    assert (tmp_path / "out" / "summary.png").is_file()


def test_a_worker_that_will_not_stop_is_killed_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FIXTURES))
    nb = read_notebook(SOLUTION)
    nb.cells[9].source = INTERRUPT_PROOF_LOOP  # the scratch cell: not graded, so nothing restores it
    path = tmp_path / "zed" / NAME
    write_notebook(nb, path)
    grader = Grader(tmp_path / "out", jobs=1, cell_timeout=30, timeout=0.5, grace=0.1, check_modules=["fixture_checks"])
    [killed] = grader.grade([Submission("zed", path, SOLUTION)])
    assert killed.status == "timeout"
    assert killed.notes == ["killed after 0.6 s: the notebook would not stop"]
    assert (tmp_path / "out" / "gradebook.csv").read_text().splitlines()[1] == "zed,99_fixture,0,0,0,5,timeout"
    assert not (tmp_path / "out" / ".scratch").exists(), "no scratch folder is left behind"


def test_a_notebook_that_matches_no_exercise_is_listed_not_dropped(tmp_path):
    other = tmp_path / "src" / "98_other.ipynb"
    write_notebook(read_notebook(SOLUTION), other)
    write_notebook(read_notebook(SOLUTION), tmp_path / "src" / NAME)
    write_notebook(read_notebook(SOLUTION), tmp_path / "in" / "kim" / "homework.ipynb")
    assert main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--source", str(tmp_path / "src")]) == 0
    rows = (tmp_path / "out" / "gradebook.csv").read_text().splitlines()
    assert rows == ["student,notebook,total,max,status", "kim,homework,0,0,no-source"]


def test_the_command_refuses_a_missing_folder_or_an_empty_source(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    (tmp_path / "in").mkdir()
    assert main([str(tmp_path / "in"), "--source", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a folder of submissions" in err and "no source notebooks" in err
