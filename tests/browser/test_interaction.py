"""Clicking the explorers in JupyterLab changes what the semantics say it must.

A learner clicks a toggle and picks from a dropdown; the kernel reruns the scenario and the
summary and the timeline redraw. These tests do exactly that in Chromium and read the page:

* delivery guarantees (lesson 04's ``DeliveryExplorer``): a crash before the ack charges an order
  twice under at-least-once and once under exactly-once; a crash before processing loses a
  payment under at-most-once and not under at-least-once; the timeline picture changes each time;
* workflows (lesson 03's ``WorkflowExplorer``): a declined payment compensates orders that the
  happy path completes, in either style, and switching style redraws the timeline;
* every exercise: its first check cell shows a verdict with 0 points for the stub as shipped and
  full points once the answer cell holds the answer from solutions/, as feedback, not a traceback.

The lesson and exercise tests skip only while their notebook does not exist. The explorers are
also driven on scratch notebooks, so the widgets are proven in JupyterLab before the lessons land.
"""

from __future__ import annotations

import nbformat
import pytest

from .notebook_files import exercise_notebooks, find_notebook, read_committed, read_notebook, write_scratch_notebook
from .notebook_page import NotebookPage, problems

pytestmark = pytest.mark.browser

DELIVERY_LESSON = find_notebook("notebooks", "04")
WORKFLOW_LESSON = find_notebook("notebooks", "03")
EXERCISES = exercise_notebooks()


def numbers(nb: NotebookPage, explorer) -> dict[str, int]:
    """The explorer's summary table as numbers, e.g. {"orders": 4, "charges": 5, ...}."""
    rows = nb.table(explorer)
    assert rows, f"the explorer shows no summary table; it shows {explorer.inner_text()[-600:]!r}"
    return {k: int(v) for k, v in rows[0].items() if v.lstrip("-").isdigit()}


def drive_delivery_explorer(nb: NotebookPage) -> None:
    explorer = nb.explorer("DeliveryExplorer(")

    nb.choose(explorer, "at-least-once")
    nb.choose(explorer, "crash before ack")
    s = numbers(nb, explorer)
    assert s["charged twice"] >= 1 and s["charges"] > s["orders"], f"at-least-once, crash before ack: {s}"
    assert s["never charged"] == 0 and s["lost"] == 0, s
    picture = nb.image_digest(explorer)

    assert nb.choose(explorer, "exactly-once")
    s = numbers(nb, explorer)
    assert s["charges"] == s["orders"] and s["charged twice"] == 0 and s["never charged"] == 0, f"exactly-once: {s}"
    assert nb.image_digest(explorer) != picture, "the timeline did not change for exactly-once"
    picture = nb.image_digest(explorer)

    assert nb.choose(explorer, "at-most-once")
    assert nb.choose(explorer, "crash before processing")
    s = numbers(nb, explorer)
    assert s["never charged"] >= 1 and s["lost"] >= 1 and s["charged twice"] == 0, f"at-most-once, crash: {s}"
    assert nb.image_digest(explorer) != picture, "the timeline did not change for at-most-once"
    picture = nb.image_digest(explorer)

    assert nb.choose(explorer, "at-least-once")
    s = numbers(nb, explorer)
    assert s["never charged"] == 0 and s["redeliveries"] >= 1 and s["charges"] == s["orders"], f"redelivered: {s}"
    assert nb.image_digest(explorer) != picture

    found = problems(nb.report())
    assert found == [], found


def drive_workflow_explorer(nb: NotebookPage) -> None:
    explorer = nb.explorer("WorkflowExplorer(")

    def outcomes() -> list[str]:
        rows = nb.table(explorer, caption="saga state")
        assert rows, f"the explorer shows no saga state table; it shows {explorer.inner_text()[-600:]!r}"
        return [row["outcome"] for row in rows]

    def ledger() -> dict[str, int]:
        return {k: int(v) for k, v in nb.table(explorer, caption="ledger")[0].items()}

    nb.choose(explorer, "orchestration")
    nb.choose(explorer, "none")
    orders = len(outcomes())
    assert outcomes() == ["completed"] * orders, outcomes()
    money = ledger()
    assert money["charged"] == money["shipped"] == orders and money["refunded"] == money["released"] == 0, money
    picture = nb.image_digest(explorer)

    assert nb.choose(explorer, "payment declined")
    assert outcomes() == ["compensated"] * orders, f"a declined payment must compensate every order: {outcomes()}"
    declined = ledger()
    assert declined["released"] == declined["reserved"] and declined["shipped"] == 0, declined
    assert nb.image_digest(explorer) != picture, "the timeline did not change for a declined payment"
    picture = nb.image_digest(explorer)

    assert nb.choose(explorer, "choreography")
    assert outcomes() == ["compensated"] * orders, f"choreography compensates the same orders: {outcomes()}"
    assert ledger() == declined, "the two styles must reach the same business outcome"
    assert nb.image_digest(explorer) != picture, "switching style did not redraw the timeline"

    assert nb.choose(explorer, "shipping unavailable")
    assert outcomes() == ["compensated"] * orders, outcomes()
    money = ledger()
    assert money["refunded"] == money["charged"] >= 1 and money["released"] == money["reserved"], money

    found = problems(nb.report())
    assert found == [], found


# -------------------------------------------------------------------- the lessons


@pytest.mark.skipif(DELIVERY_LESSON is None, reason="notebooks/04_*.ipynb (delivery guarantees) does not exist yet")
def test_delivery_lesson_guarantee_and_fault_change_the_money_and_the_timeline(open_notebook):
    nb = open_notebook(DELIVERY_LESSON)
    nb.run_all()
    drive_delivery_explorer(nb)


@pytest.mark.skipif(WORKFLOW_LESSON is None, reason="notebooks/03_*.ipynb (workflows) does not exist yet")
def test_workflow_lesson_style_and_failure_change_the_saga_state(open_notebook):
    nb = open_notebook(WORKFLOW_LESSON)
    nb.run_all()
    drive_workflow_explorer(nb)


# -------------------------------------------------------------------- the widgets on their own


def test_delivery_explorer_answers_clicks_in_jupyterlab(lab_root, open_notebook, screenshots):
    path = write_scratch_notebook(
        lab_root,
        "delivery_explorer.ipynb",
        [nbformat.v4.new_code_cell("import evbroker as eb\neb.widgets.DeliveryExplorer()")],
    )
    nb = open_notebook(path)
    nb.run_all()
    drive_delivery_explorer(nb)
    nb.screenshot(screenshots / "harness-delivery-explorer.png")


def _has_workflow_explorer() -> bool:
    import evbroker as eb

    return hasattr(eb.widgets, "WorkflowExplorer")


@pytest.mark.skipif(not _has_workflow_explorer(), reason="evbroker.widgets.WorkflowExplorer does not exist yet")
def test_workflow_explorer_answers_clicks_in_jupyterlab(lab_root, open_notebook, screenshots):
    path = write_scratch_notebook(
        lab_root,
        "workflow_explorer.ipynb",
        [nbformat.v4.new_code_cell("import evbroker as eb\neb.widgets.WorkflowExplorer()")],
    )
    nb = open_notebook(path)
    nb.run_all()
    drive_workflow_explorer(nb)
    nb.screenshot(screenshots / "harness-workflow-explorer.png")


# -------------------------------------------------------------------- an exercise's check cell


def drive_check_cell(
    nb: NotebookPage, answer: int, check: int, solution: str, wrong: str | None = None, unanswered: str = ""
) -> None:
    """Run up to the check cell as shipped (the stub), then with a wrong answer, then with the solution,
    and read the check cell's feedback each time: a verdict line with the points and a reason, never
    a traceback. `unanswered` is text the stub's feedback must contain."""

    def feedback(index: int = check) -> str:
        text = nb.outputs(index).inner_text()
        assert "Traceback" not in text, f"cell {index} shows a traceback instead of feedback:\n{text}"
        return text

    nb.run_cells(list(range(check + 1)))  # one by one, as a learner does: the stub's error does not stop us
    feedback(answer)  # a stub that raises shows what to do, not a traceback
    shown = feedback()
    assert "✘" in shown and "0/" in shown and unanswered in shown, shown

    if wrong is not None:
        nb.set_source(answer, wrong)
        nb.run_cells([answer, check])
        shown = feedback()
        assert "✘" in shown and "0/" in shown, shown

    nb.set_source(answer, solution)
    nb.run_cells([answer, check])
    shown = feedback()
    assert "✔" in shown and "points" in shown and "✘" not in shown, shown
    # Cells below the check were not run on purpose; everything above must be clean.
    others = [
        p
        for p in problems(nb.report())
        if not p.startswith((f"cell {answer} ", f"cell {check} ")) and not p.endswith("never ran")
    ]
    assert others == [], others


def _first_graded_check(exercise: dict) -> tuple[int, int]:
    """(answer cell, check cell): the first code cell that calls check(...) and the answer cell above it."""
    cells = exercise["cells"]

    def nbgrader(cell: dict) -> dict:
        return cell.get("metadata", {}).get("nbgrader", {})

    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and nbgrader(cell).get("grade") and "check(" in "".join(cell["source"]):
            for j in range(i - 1, -1, -1):
                if cells[j]["cell_type"] == "code" and nbgrader(cells[j]).get("solution"):
                    return j, i
    raise AssertionError("no graded check cell with an answer cell above it")


@pytest.mark.skipif(not EXERCISES, reason="exercises/NN_*.ipynb do not exist yet")
@pytest.mark.parametrize("exercise", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_an_exercise_check_cell_shows_its_feedback(exercise, open_notebook):
    answer, check = _first_graded_check(read_committed(exercise))
    solution = read_committed(f"solutions/{exercise.name}")["cells"][answer]["source"]
    nb = open_notebook(exercise)
    drive_check_cell(nb, answer, check, "".join(solution))


def test_a_check_cell_shows_its_feedback_in_jupyterlab(lab_root, open_notebook, screenshots):
    """The grading feedback on a scratch exercise: not answered, wrong, right."""
    grader = nbformat.v4.new_code_cell(
        "from evbroker.grading import CheckFailed, check, register\n\n"
        '@register("99-double", points=2, title="double it")\n'
        "def _(double):\n"
        "    if double(2) != 4:\n"
        '        raise CheckFailed(f"double(2) gave {double(2)}, not twice 2")\n'
    )
    answer = nbformat.v4.new_code_cell("def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()")
    answer.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "99-double-answer", "locked": False}
    graded = nbformat.v4.new_code_cell('check("99-double", double)')
    graded.metadata["nbgrader"] = {"solution": False, "grade": True, "grade_id": "99-double", "points": 2}
    path = write_scratch_notebook(lab_root, "exercise.ipynb", [grader, answer, graded])
    nb = open_notebook(path)
    assert _first_graded_check(read_notebook(lab_root / path)) == (1, 2)
    drive_check_cell(
        nb,
        1,
        2,
        solution="def double(x):\n    return 2 * x",
        wrong="def double(x):\n    return x + 2 + 1",
        unanswered="Not answered yet",
    )
    nb.screenshot(screenshots / "harness-exercise.png")
