"""Queue depth over time: copies waiting, read from the trace."""

import matplotlib.pyplot as plt
import pytest

import evbroker as eb
from evbroker import scenarios as sc


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_four_messages_on_two_workers_leave_two_waiting_for_one_time_unit():
    assert eb.plot.depths(sc.queue_demo("queue", workers=2, messages=4).trace) == {"jobs": [(0.0, 2), (1.0, 0)]}


def test_a_redelivery_puts_the_copy_back_in_the_queue():
    series = eb.plot.depths(sc.payments("at-least-once", "crash before ack").trace)["payments"]
    assert (1.5, 1) in series  # order-4 waits while both workers are busy or down
    assert series[-1][1] == 0


def test_more_workers_drain_faster():
    def drained_at(workers):
        series = eb.plot.depths(sc.queue_demo("queue", workers=workers, messages=12, interval=0.25).trace)["jobs"]
        return max(series, key=lambda p: p[1])[1], series[-1][0]

    (peak1, end1), (peak3, end3) = drained_at(1), drained_at(3)
    assert peak3 < peak1
    assert end3 < end1


def test_two_runs_share_an_axes_with_labels():
    _fig, ax = plt.subplots()
    eb.plot.queue_depth(sc.queue_demo("queue", 1, 6), ax, label="1 worker")
    out = eb.plot.queue_depth(sc.queue_demo("queue", 3, 6), ax, label="3 workers")
    assert out is ax
    assert [line.get_label() for line in ax.get_lines()] == ["1 worker: jobs", "3 workers: jobs"]
    assert ax.get_lines()[0].get_linestyle() != ax.get_lines()[1].get_linestyle()


def test_unknown_queue_teaches():
    with pytest.raises(eb.EvbrokerError, match="did you mean 'jobs'"):
        eb.plot.queue_depth(sc.queue_demo(), queues=["job"])
