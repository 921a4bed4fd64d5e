"""Checks for the exercise notebooks, and the tools that run them.

In an exercise notebook (learner side)::

    from evbroker.grading import check
    check("02-stacked-topology", build_topology)   # prints "✔ ... 3/3 points" or raises CheckFailed

In ``evbroker/grading/checks_NN.py`` (check authors)::

    from evbroker.grading import CheckFailed, register, trials, expect_equal

    @register("02-stacked-topology", points=3, title="stacked topology")
    def _(build_topology): ...

Writing an exercise (``solutions/NN_name.ipynb``; ``exercises/`` is generated from it):

- answer cell: nbgrader ``{"solution": true, "grade": false, "locked": false, "grade_id": ...}``;
  the answer sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; a value answer
  names its variable before the markers (``charges = None``) so the exercise still lints;
- graded cell: ``{"solution": false, "grade": true, "locked": true, "grade_id": "NN-name",
  "points": P}`` holding just ``check("NN-name", answer)``; P equals the check's points;
- every nbgrader cell also carries ``"schema_version": 3`` (``cells.metadata()`` builds them);
- ``python -m evbroker.grading validate solutions/NN_name.ipynb`` checks all of that;
  ``make notebooks`` then ``make exercises`` regenerate outputs and exercises.

From a terminal: ``python -m evbroker.grading check exercises/02_x.ipynb`` (self-check) and
``python -m evbroker.grading grade FOLDER --out DIR`` (classroom grader). Those load nbclient
only when used, so importing this package in a notebook stays light.
"""

from __future__ import annotations

from evbroker.grading.authoring import (
    Trial,
    call_answer,
    expect,
    expect_answered,
    expect_callable,
    expect_close,
    expect_equal,
    expect_number,
    run_broker,
    trials,
)
from evbroker.grading.friendly import install_friendly_errors
from evbroker.grading.outcome import CheckFailed, NotAnswered, Result
from evbroker.grading.registry import Check, get_check, load_checks, register, registered
from evbroker.grading.scoring import check, score

__all__ = [
    "Check",
    "CheckFailed",
    "NotAnswered",
    "Result",
    "Trial",
    "call_answer",
    "check",
    "expect",
    "expect_answered",
    "expect_callable",
    "expect_close",
    "expect_equal",
    "expect_number",
    "get_check",
    "install_friendly_errors",
    "load_checks",
    "register",
    "registered",
    "run_broker",
    "score",
    "trials",
]

install_friendly_errors()
