"""QueueExplorer, headless: one taker, every subscriber a copy, or both stacked."""

import pytest

import evbroker as eb


@pytest.fixture
def w():
    explorer = eb.widgets.QueueExplorer()
    yield explorer
    explorer.close()


def test_a_queue_gives_each_message_to_one_worker(w):
    assert w.summary == {"published": 4, "deliveries": 4, "per_worker": {"jobs-1": 2, "jobs-2": 2}}
    w.workers.value = 3
    w.messages.value = 7
    assert w.summary["deliveries"] == 7
    assert w.summary["per_worker"] == {"jobs-1": 3, "jobs-2": 2, "jobs-3": 2}


def test_pub_sub_gives_every_subscriber_its_own_copy(w):
    w.mode.value = "pub/sub"
    w.workers.value = 3
    assert w.summary["deliveries"] == 3 * 4
    assert w.summary["per_worker"] == {"email-1": 4, "billing-1": 4, "analytics-1": 4}
    assert "each copied to 3 services" in w.summary_html.value


def test_stacked_spreads_each_service_s_copies_over_its_workers(w):
    w.mode.value = "stacked"
    w.workers.value = 2
    per = w.summary["per_worker"]
    for service in ("email", "billing", "analytics"):
        assert per[f"{service}-1"] + per[f"{service}-2"] == 4
    assert w.summary["deliveries"] == 12


def test_more_workers_drain_the_queue_sooner(w):
    w.messages.value = 12
    w.workers.value = 1
    slow = eb.plot.depths(w.result.trace)["jobs"][-1][0]
    w.workers.value = 4
    fast = eb.plot.depths(w.result.trace)["jobs"][-1][0]
    assert fast < slow


def test_the_run_is_the_scenario_s_run(w):
    w.mode.value = "stacked"
    from evbroker import scenarios as sc
    from evbroker.views.queue_explorer import INTERVAL

    assert w.result.trace == sc.queue_demo("stacked", 2, 4, interval=INTERVAL).trace


def test_picture_changes_with_the_mode(w):
    before = w.png
    w.mode.value = "pub/sub"
    assert w.png != before and w.image.value == w.png and w.error is None
