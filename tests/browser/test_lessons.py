"""Every lesson, run top to bottom in JupyterLab, shows no error, every widget and every plot.

Parametrized over notebooks/NN_*.ipynb as they exist: a lesson added later is tested without
touching this file. Each lesson is pictured after running in artifacts/screenshots/<name>.png;
look at those pictures, they are what a learner sees. The same checks also run on a scratch
lesson built with the project's own build (``evbroker.build``), so they are proven on a notebook
committed the way lessons are, outputs and widget state included.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from .notebook_files import lesson_notebooks, read_committed, read_notebook, write_scratch_notebook
from .notebook_page import RUN_TIMEOUT, NotebookPage, problems

pytestmark = pytest.mark.browser

LESSONS = lesson_notebooks()


def check_lesson(nb: NotebookPage, committed: dict, screenshot: Path, record_property) -> None:
    """Run all; picture it; then no problem a learner would see, and at least one widget and one plot."""
    outcome = nb.run_all(timeout=RUN_TIMEOUT)
    report = nb.report()
    nb.screenshot(screenshot)  # before asserting: a failing lesson is pictured too
    for step, seconds in nb.timings.items():
        record_property(f"{step}_seconds", round(seconds, 2))

    assert outcome != "timeout", f"{nb.path} did not finish within {RUN_TIMEOUT:.0f} s (EVBROKER_BROWSER_TIMEOUT)"
    # run_all() says "failed" when any cell raised, also one tagged raises-exception on purpose;
    # problems() tells those apart, and names any cell that never ran.
    found = problems(report, committed)
    assert found == [], f"{nb.path} in JupyterLab:\n  " + "\n  ".join(found)
    # Every lesson has at least one explorer widget and one timeline, and both must be on screen.
    assert report.widgets > 0, f"{nb.path} shows no widget"
    assert report.images > 0, f"{nb.path} shows no plot"


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_clean_in_jupyterlab(lesson, open_notebook, screenshots, record_property):
    check_lesson(open_notebook(lesson), read_committed(lesson), screenshots / f"{lesson.stem}.png", record_property)


SCRATCH_LESSON = [
    nbformat.v4.new_markdown_cell(
        "# A scratch lesson\nA static timeline, an explorer and a quiz, built like a lesson."
    ),
    nbformat.v4.new_code_cell("import evbroker as eb\nimport matplotlib.pyplot as plt"),
    nbformat.v4.new_code_cell(
        'b = eb.scenarios.payments("at-least-once", "crash before ack")\n'
        "eb.plot.timeline(b)\nplt.show()\n"
        'len(b.effects("charge"))'
    ),
    nbformat.v4.new_code_cell("eb.widgets.DeliveryExplorer()"),
    nbformat.v4.new_code_cell(
        "eb.widgets.Quiz([{'q': 'Who gets a message from a queue?', 'choices': ['one worker', 'every worker'],\n"
        "                  'answer': 0, 'explain': 'A queue hands each message to one of its workers.'}])"
    ),
]


def test_a_built_scratch_lesson_passes_the_lesson_checks(lab_root, open_notebook, screenshots, record_property):
    from evbroker.build import build_notebook

    path = write_scratch_notebook(lab_root, "00_scratch_lesson.ipynb", SCRATCH_LESSON)
    built = build_notebook(lab_root / path, timeout=RUN_TIMEOUT)
    assert not built.error, built.error
    committed = read_notebook(lab_root / path)
    assert sum(1 for o in committed["cells"][2]["outputs"] if "image/png" in o.get("data", {})) == 1
    check_lesson(open_notebook(path), committed, screenshots / "harness-lesson.png", record_property)
