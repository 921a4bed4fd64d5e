"""The picture of a search's space and the widget that walks its violations (headless, Agg)."""

import numpy as np
import pytest
from test_explore import charged_once, checkout, idempotent, naive

import evbroker as eb
from evbroker.views.schedules import HOLDS, point_label


@pytest.fixture(scope="module")
def broken():
    return eb.explore(checkout(naive), charged_once, max_faults=2)


@pytest.fixture(scope="module")
def holds():
    return eb.explore(checkout(idempotent), charged_once, max_faults=2)


def test_the_grid_has_one_cell_per_schedule_coloured_by_its_outcome(broken):
    import matplotlib.pyplot as plt

    ax = eb.plot.schedule_grid(broken)
    cells = ax.images[0].get_array()
    drawn = int(np.count_nonzero(~np.isnan(np.asarray(cells, dtype=float))))
    # every schedule of one or two faults is a cell; the fault-free run is the title's
    assert drawn == broken.schedules - 1
    assert int(np.nansum(np.asarray(cells, dtype=float) == 0.0)) == len(broken.violations)
    assert "the fault-free run holds" in ax.get_title(loc="left")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "m1·1 ack lost" in labels and "m1 publish: confirm lost" in labels
    plt.close(ax.figure)


def test_a_point_label_names_message_delivery_and_fault():
    assert point_label(eb.FaultPoint("crash_before_ack", "m2", 1, "payments")) == "m2·1 crash before ack"


def test_the_grid_refuses_what_is_not_a_search_result():
    with pytest.raises(eb.EvbrokerError, match=r"result of eb.explore"):
        eb.plot.schedule_grid([1, 2])


def test_the_explorer_lists_violations_smallest_first_and_draws_the_one_picked(broken):
    w = eb.widgets.ScheduleExplorer(broken)
    assert w.error is None and w.png
    options = [label for label, _ in w.schedule.options]
    assert len(options) == len(broken.violations)
    assert options[0].startswith("1. m1 delivery 1: the worker is slow")
    assert w.result is broken.violations[0]
    first_png, updates = w.png, w.updates
    last = len(options) - 1
    w.schedule.value = last
    assert w.result is broken.violations[last] and w.updates == updates + 1 and w.png != first_png
    assert w.summary == {"schedules": broken.schedules, "violations": len(broken.violations), "faults": 2}
    assert "eb.Faults(" in w.summary_html.value
    w.close()


def test_the_explorer_of_a_search_that_holds_says_so(holds):
    w = eb.widgets.ScheduleExplorer(holds)
    assert w.result is None and w.error is None
    assert f"all {holds.schedules} schedules (up to 2 faults) hold" in w.summary_html.value
    assert HOLDS  # the colour the message is drawn in
    w.close()


def test_the_explorer_refuses_what_is_not_a_search_result():
    with pytest.raises(eb.EvbrokerError, match=r"ScheduleExplorer needs the result of eb.explore"):
        eb.widgets.ScheduleExplorer(checkout(naive))
