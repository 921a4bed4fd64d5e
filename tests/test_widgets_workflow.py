"""WorkflowExplorer, headless: style, failure, faults and seed drive the order workflow."""

import pytest

import evbroker as eb


@pytest.fixture
def w():
    explorer = eb.widgets.WorkflowExplorer()
    yield explorer
    explorer.close()


def test_defaults_complete_every_order_by_orchestration(w):
    assert w.result.style == "orchestration"
    assert w.summary["outcomes"] == {"order-1": "completed", "order-2": "completed"}
    assert w.summary["ledger"]["charged"] == 2


def test_switching_style_runs_the_other_style(w):
    w.style.value = "choreography"
    assert w.result.style == "choreography" and w.other.style == "orchestration"
    assert w.summary["outcomes"] == {"order-1": "completed", "order-2": "completed"}


@pytest.mark.parametrize("style", ["orchestration", "choreography"])
def test_a_failure_compensates_every_order(w, style):
    w.style.value = style
    w.failure.value = "shipping unavailable"
    assert set(w.summary["outcomes"].values()) == {"compensated"}
    ledger = w.summary["ledger"]
    assert ledger["reserved"] == ledger["released"] and ledger["charged"] == ledger["refunded"] == 2
    assert "compensated" in w.summary_html.value and "order-2" in w.summary_html.value


def test_faults_switch_on_delivery_faults_and_the_business_still_adds_up(w):
    w.faults.value = True
    assert w.result.faults is not None
    kinds = set(w.result.trace.kinds())
    assert kinds & {"crash", "ack-lost", "delivery-lost"}
    assert w.summary["ledger"]["charged"] - w.summary["ledger"]["refunded"] == 2


def test_seed_changes_the_faulty_run(w):
    w.faults.value = True
    first = w.result.trace
    w.seed.value = 5
    assert w.result.trace != first


def test_measures_of_both_styles_side_by_side(w):
    m = w.summary["measures"]
    assert set(m) == {"orchestration", "choreography"}
    assert m["orchestration"]["messages"] == w.result.measures.messages
    assert m["choreography"]["messages"] == w.other.measures.messages
    assert m["orchestration"]["places"] == 1 and m["choreography"]["places"] == 4
    assert "the two styles, same orders" in w.summary_html.value


def test_runs_are_reused_when_a_setting_comes_back(w):
    first = w.result
    w.style.value = "choreography"
    w.style.value = "orchestration"
    assert w.result is first


def test_text_fallback(w):
    assert w._repr_mimebundle_()["text/plain"] == (
        "WorkflowExplorer(style='orchestration', failure='none', delivery faults=False, seed=0): "
        "order-1 completed, order-2 completed"
    )
