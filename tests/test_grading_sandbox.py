"""The grader against a dishonest class: every cheat scores 0 where it was tried and flags its row.

Each student hands in the exercise 04 notebook with every answer right (the solution), except
that the answer cell of ``04-predict-charges`` holds a cheat instead of ``charges = 6``. A cheat
that worked would keep those 2 points; each must get 0 and the row "tampering-suspected",
while the other questions keep their points (one cheat costs only what it touched).
"""

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from evbroker.build import ROOT, read_notebook, write_notebook
from evbroker.grading.boundary import ProtocolError, Refused, check_plain, decode, encode
from evbroker.grading.cells import grade_id
from evbroker.grading.gradebook import safe_name
from evbroker.grading.grader import main
from evbroker.grading.judge import suspicious
from evbroker.grading.outcome import CheckFailed
from evbroker.grading.sandbox import bwrap_path

pytestmark = pytest.mark.slow  # starts sandboxed kernels

SOURCE = ROOT / "solutions" / "04_delivery_guarantees.ipynb"
MARKER = "evbroker-detached-cheat"
PASS_LINE = 'print("✔ 04-predict-charges predict the charges — 2/2 points")'
CHEATS = {
    "print-a-pass-line": 'check = lambda cid, *a: print(f"✔ {cid} x — 3/3 points")',
    "replace-the-registry": "import evbroker.grading.registry as r\nr._CHECKS.clear()",
    "replace-scoring": "import evbroker.grading.scoring as s\ns.score = lambda *a: None",
    "replace-a-helper": "import evbroker.grading.authoring as a\na.expect_equal = lambda *x, **k: None",
    "set-custom-exc": f"get_ipython().set_custom_exc((Exception,), lambda *a, **k: {PASS_LINE})",
    "input-transformer": f"get_ipython().input_transformers_post.append(lambda lines: ['{PASS_LINE}\\n'])",
    "read-the-solutions": (f"text = open({str(SOURCE)!r}).read()\ncharges = int(text.split('charges = ')[2][0])"),
    "read-a-classmate": "import os\nnames = os.listdir('/proc')\ncmd = open('/proc/1/cmdline').read()",
    "detached-rewriter": (
        "import subprocess\nsubprocess.Popen(['sh', '-c', 'exec -a " + MARKER + " sleep 30'], start_new_session=True)"
    ),
    "kill-the-grader": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)",
    "int-that-equals-all": "class Yes(int):\n    def __eq__(self, other):\n        return True\ncharges = Yes(0)",
}


def _with_answer(source: str):
    nb = read_notebook(SOURCE)
    for cell in nb.cells:
        if grade_id(cell) == "04-predict-charges-answer":
            cell.source = source
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed: sudo apt-get install -y bubblewrap")
    root = tmp_path_factory.mktemp("cheats")
    for student, cheat in CHEATS.items():
        write_notebook(_with_answer(cheat), root / "in" / student / SOURCE.name)
    write_notebook(
        _with_answer("import numpy as np\ncharges = np.int64(6)"), root / "in" / "honest-numpy" / SOURCE.name
    )
    write_notebook(_with_answer("charges = 6"), root / "in" / "honest" / SOURCE.name)
    out = root / "out"
    assert main([str(root / "in"), "--out", str(out), "--jobs", "2", "--cell-timeout", "20"]) == 0
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return out, {row["student"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("student", sorted(CHEATS))
def test_every_cheat_scores_zero_where_it_was_tried_and_flags_the_row(graded, student):
    _, book = graded
    row = book[student]
    assert row["04-predict-charges"] == "0"
    assert "tampering-suspected" in row["status"]
    if student == "input-transformer":
        return  # it rewrote every later cell of its own notebook: later answers are gone too
    assert (row["04-predict-storm"], row["04-no-order-lost"], row["04-fix-double-charge"]) == ("2", "3", "3")


def test_honest_answers_get_their_points_numpy_numbers_too(graded):
    _, book = graded
    assert book["honest"]["total"] == book["honest-numpy"]["total"] == "10", (book["honest"], book["honest-numpy"])
    assert book["honest"]["status"] == book["honest-numpy"]["status"] == "ok"


def test_a_detached_process_dies_with_its_sandbox(graded):
    """No process of the submission outlives grading (so none can rewrite the gradebook later)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MARKER.encode() in cmdline:
            alive.append(pid)
    assert alive == []


def test_the_kernel_cannot_see_the_answer_key(graded):
    out, _ = graded
    report = json.loads((out / "reports" / "read-the-solutions" / "04_delivery_guarantees.json").read_text())
    assert any("FileNotFoundError" in e for e in report["cell_errors"])


def test_the_feedback_names_what_looked_like_tampering(graded):
    out, _ = graded
    text = (out / "feedback" / "print-a-pass-line.md").read_text(encoding="utf-8")
    assert "tampering suspected" in text and "'check='" in text


# ---------------------------------------------------------------------------- the boundary, alone


def test_values_cross_as_plain_data_and_subclasses_are_refused():
    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    np = pytest.importorskip("numpy")
    sent = encode([1, 2.5, "x", None, (1, 2), {"a": [True]}, np.int64(7), np.float64(0.5), Yes(0)], lambda o: {})
    check_plain(sent)
    got = decode(sent, lambda d: None)
    assert got[:8] == [1, 2.5, "x", None, (1, 2), {"a": [True]}, 7, 0.5]
    assert type(got[6]) is int and type(got[7]) is float
    assert isinstance(got[8], Refused) and "subclass of int" in got[8].why


@pytest.mark.parametrize("bad", [{"~evil": 1}, {"~kit": {"type": "Broker", "state": {}}}, {"x": 1}])
def test_an_unknown_tag_or_class_is_a_protocol_error(bad):
    with pytest.raises(ProtocolError):
        check_plain(bad)
        decode(bad, lambda d: None)


def test_code_that_reaches_for_the_grader_is_named():
    assert suspicious("check = lambda *a: None") == ["check="]
    assert "set_custom_exc" in suspicious("get_ipython().set_custom_exc((Exception,), f)")
    assert suspicious("charges = 6  # the solutions say so, or the registry") == []
    assert suspicious("registry = {}\nscoring = marking = 1\nsubmitted = True") == []
    assert suspicious("from evbroker.grading import registry") == ["evbroker.grading import"]


def test_file_names_tell_students_apart():
    names = {safe_name(s) for s in ("Zoë", "Zoé", "zoe", "Zoe", "a/b", "a_b")}
    assert len(names) == 6
    assert safe_name("Zoë") == safe_name("Zo\u0065\u0308")  # one student, however the ë was typed


def test_a_runaway_or_greedy_answer_costs_its_own_question_only(tmp_path):
    """An endless set-up function is stopped within the cell limit; 6.9 GB meets the memory limit;
    5 GB of files meet the sandbox's small disk (not the grader's)."""
    if bwrap_path() is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    answers = {
        "loops": "def declare_payments(b):\n    while True:\n        pass",
        "greedy": "def declare_payments(b):\n    hog = bytearray(6_900_000_000)\n    return len(hog)",
        "filler": "for i in range(100):\n    open(f'junk{i}', 'wb').write(b'0' * 50_000_000)",
    }
    for student, source in answers.items():
        nb = read_notebook(SOURCE)
        for cell in nb.cells:
            if grade_id(cell) == "04-no-order-lost-answer":
                cell.source = source
        write_notebook(nb, tmp_path / "in" / student / SOURCE.name)
    out = tmp_path / "out"
    limit = 8  # long enough for an honest check on a busy machine; the endless loop costs this much
    assert main([str(tmp_path / "in"), "--out", str(out), "--cell-timeout", str(limit), "--memory", "1024"]) == 0
    for student in answers:
        report = json.loads((out / "reports" / student / "04_delivery_guarantees.json").read_text())
        points = {q["id"]: q["points"] for q in report["questions"]}
        assert points == {
            "04-predict-charges": 2,
            "04-predict-storm": 2,
            "04-no-order-lost": 0,
            "04-fix-double-charge": 3,
        }
    loops = json.loads((out / "reports" / "loops" / "04_delivery_guarantees.json").read_text())
    assert loops["questions"][2]["status"] == "timeout"
    assert loops["seconds"] < limit + 10, "the cell limit, plus a kernel restart and the other questions"
    greedy = json.loads((out / "reports" / "greedy" / "04_delivery_guarantees.json").read_text())
    assert "MemoryError" in greedy["questions"][2]["message"]
    filler = json.loads((out / "reports" / "filler" / "04_delivery_guarantees.json").read_text())
    assert any("No space left on device" in e for e in filler["cell_errors"])


def test_the_class_edition_holds_lessons_and_exercises_and_no_solutions(tmp_path):
    from evbroker.grading.edition import write_class_edition

    write_class_edition(tmp_path / "class")
    assert sorted(p.name for p in (tmp_path / "class").iterdir()) == ["README.md", "exercises", "notebooks"]
    exercises = sorted(p.name for p in (tmp_path / "class" / "exercises").iterdir())
    assert exercises == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    for path in (tmp_path / "class" / "exercises").iterdir():
        assert "### BEGIN SOLUTION" not in path.read_text(encoding="utf-8")


def test_without_bubblewrap_the_grader_refuses_unless_told_to_run_unsandboxed(tmp_path, monkeypatch, capsys):
    import evbroker.grading.sandbox as sandbox

    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    write_notebook(_with_answer("charges = 6"), tmp_path / "in" / "ada" / SOURCE.name)
    args = [str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "sudo apt-get install -y bubblewrap" in capsys.readouterr().err
    assert main([*args, "--unsandboxed"]) == 0
    [row] = (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert row.endswith(",10,10,unsandboxed")


def test_a_function_answer_tuned_to_the_visible_seeds_fails_on_a_hidden_variant():
    """The grader swaps a check module's SEEDS for seeds the self-check never shows."""
    import types

    from evbroker.grading.authoring import expect_equal
    from evbroker.grading.judge import has_variants, hidden_variant

    module = types.ModuleType("fake_checks")
    exec(  # a check module like checks_04: SEEDS at module level, read by the check
        "SEEDS = range(3)\ndef check(answer):\n    for seed in SEEDS:\n        expect(answer(seed), 2 * seed)\n",
        module.__dict__,
    )
    module.expect = lambda got, want: expect_equal(got, want, what="double", reveal=True)
    sys.modules["fake_checks"] = module
    try:

        def tuned(seed):
            return 2 * seed if seed < 3 else 0

        assert has_variants(module.check)
        module.check(tuned)  # passes the visible seeds
        with pytest.raises(CheckFailed), hidden_variant(module.check, (1234,)):
            module.check(tuned)
        assert module.SEEDS == range(3), "the visible seeds are put back"
    finally:
        del sys.modules["fake_checks"]


def test_a_check_with_a_seeds_keyword_gets_the_hidden_seeds_through_it():
    from evbroker.grading.judge import has_variants, run_hidden_variant

    seen = []

    def check(answer, *, seeds=range(3)):
        seen.extend(seeds)

    assert has_variants(check)
    run_hidden_variant(check, None, (1234, 5678))
    assert seen == [1234, 5678]
