"""Every lesson, run top to bottom in JupyterLab, shows no error, every widget and every plot.

Parametrized over notebooks/NN_*.ipynb as they exist: a lesson added later is tested without
touching this file. Each lesson is pictured after running in artifacts/screenshots/<name>.png;
look at those pictures, they are what a learner sees.
"""

from __future__ import annotations

import pytest

from .notebook_files import lesson_notebooks, read_committed
from .notebook_page import RUN_TIMEOUT, problems

pytestmark = pytest.mark.browser

LESSONS = lesson_notebooks()


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_clean_in_jupyterlab(lesson, open_notebook, screenshots, record_property):
    nb = open_notebook(lesson)
    outcome = nb.run_all(timeout=RUN_TIMEOUT)
    report = nb.report()
    nb.screenshot(screenshots / f"{lesson.stem}.png")  # before asserting: a failing lesson is pictured too
    for step, seconds in nb.timings.items():
        record_property(f"{step}_seconds", round(seconds, 2))

    assert outcome != "timeout", f"{lesson} did not finish within {RUN_TIMEOUT:.0f} s (EVBROKER_BROWSER_TIMEOUT)"
    found = problems(report, read_committed(lesson))
    # run_all() says "failed" when any cell raised, also one tagged raises-exception on purpose;
    # problems() tells those apart, and names any cell that never ran.
    assert found == [], f"{lesson} in JupyterLab:\n  " + "\n  ".join(found)
    # Every lesson has at least one explorer widget and one timeline, and both must be on screen.
    assert report.widgets > 0, f"{lesson} shows no widget"
    assert report.images > 0, f"{lesson} shows no plot"
