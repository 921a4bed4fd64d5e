"""DeliveryExplorer, headless: set each control, and the run changes the way the guarantee says."""

import matplotlib.pyplot as plt
import pytest

import evbroker as eb
from evbroker import scenarios as sc


@pytest.fixture
def w():
    explorer = eb.widgets.DeliveryExplorer()
    yield explorer
    explorer.close()


def charges_per_order(b):
    keys = [c.key for c in b.effects("charge")]
    return {k: keys.count(k) for k in dict.fromkeys(keys)}


def test_at_most_once_and_a_crash_before_processing_loses_a_payment(w):
    w.fault.value = "crash before processing"
    w.guarantee.value = "at-most-once"
    assert charges_per_order(w.result) == {"order-1": 1, "order-3": 1, "order-4": 1}
    assert w.summary["never_charged"] == 1 and w.summary["lost"] == 1
    assert "never charged (the payment was lost): order-2" in w.summary_html.value


def test_at_least_once_and_a_crash_before_ack_charges_twice(w):
    w.guarantee.value = "at-least-once"
    w.fault.value = "crash before ack"
    assert charges_per_order(w.result)["order-2"] == 2
    assert w.summary["charged_twice"] == 1 and w.summary["redeliveries"] == 1
    assert "charged more than once: order-2" in w.summary_html.value


@pytest.mark.parametrize("fault", ["crash before processing", "crash before ack", "lost ack"])
def test_exactly_once_neither_loses_nor_charges_twice(w, fault):
    w.guarantee.value = "exactly-once"
    w.fault.value = fault
    assert charges_per_order(w.result) == {f"order-{n}": 1 for n in range(1, 5)}
    assert "every order charged exactly once" in w.summary_html.value


def test_exactly_once_processing_cannot_take_back_a_card_charge_made_twice_at_once(w):
    """The slow worker and its redelivery both call the provider before either commits."""
    w.guarantee.value = "exactly-once"
    w.fault.value = "slow consumer"
    assert charges_per_order(w.result)["order-2"] == 2
    assert len(w.result.trace.where(kind="dedup")) == 1  # its database writes were rolled back


@pytest.fixture(scope="module")
def shared():
    """One explorer driven through every setting (each case changes one or two controls)."""
    explorer = eb.widgets.DeliveryExplorer()
    yield explorer
    explorer.close()


@pytest.mark.parametrize("guarantee", eb.GUARANTEES)
@pytest.mark.parametrize("fault", sc.FAULTS)
def test_summary_numbers_are_the_run_s_stats_and_effects(shared, guarantee, fault):
    w = shared
    w.guarantee.value = guarantee
    w.fault.value = fault
    b = w.result
    stats = b.stats("payments")
    assert w.summary["charges"] == len(b.effects("charge"))
    assert w.summary["orders"] == 4
    for key in ("lost", "duplicates", "redeliveries", "dead_lettered"):
        assert w.summary[key] == stats[key]
    for label in ("orders", "charges", "lost", "duplicates", "redeliveries"):
        assert f">{label}<" in w.summary_html.value
    assert f"<b>{w.summary['charges']}</b>" in w.summary_html.value
    # and the explorer's run is the scenario's run, event for event
    assert b.trace == sc.payments(guarantee, fault).trace


def test_seed_moves_the_fault_to_another_order(w):
    w.seed.value = 1
    assert charges_per_order(w.result)["order-3"] == 2


def test_every_change_redraws_the_picture(w):
    first = w.image.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    w.guarantee.value = "exactly-once"
    assert w.image.value != first
    assert w.image.value == w.png
    assert w.updates == 2


def test_a_callback_error_is_shown_not_swallowed():
    def remembers_too_late(msg, ctx):
        ctx.effect("charge", order=msg.key)
        ctx.remember(msg.key, when="later")

    w = eb.widgets.DeliveryExplorer(handler=remembers_too_late)
    assert isinstance(w.error, eb.EvbrokerError)
    assert "ctx.remember(..., when=...) must be one of" in w.error_text
    assert w.errors.outputs[0]["output_type"] == "error"
    assert w.result is None


def test_an_unexpected_error_shows_its_traceback_and_keeps_the_last_picture(w, monkeypatch):
    before = (w.result, w.image.value)

    def broken():
        raise RuntimeError("the scenario fell over")

    monkeypatch.setattr(w, "compute", broken)
    w.guarantee.value = "exactly-once"
    assert "RuntimeError: the scenario fell over" in w.error_text
    assert "Traceback" in w.error_text
    assert (w.result, w.image.value) == before
    monkeypatch.undo()
    w.guarantee.value = "at-most-once"  # fixed: the error goes away
    assert w.error is None and w.error_text == ""


def test_explorers_do_not_leak_pyplot_figures():
    before = plt.get_fignums()
    w = eb.widgets.DeliveryExplorer()
    for g in eb.GUARANTEES:
        w.guarantee.value = g
    assert plt.get_fignums() == before


def test_text_fallback_names_controls_and_numbers(w):
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith(
        "DeliveryExplorer(guarantee='at-least-once', fault='crash before ack', seed=0, broker=None): "
        "orders 4, charges 5"
    )


def test_controls_are_built_once_and_kept(w):
    children, controls = w.children, (w.guarantee, w.fault, w.seed)
    w.guarantee.value = "exactly-once"
    w.fault.value = "lost ack"
    assert w.children == children and (w.guarantee, w.fault, w.seed) == controls
    assert len(w.figure.axes) == 1  # one axes, redrawn in place


def test_the_broker_dropdown_runs_the_scenario_on_a_preset(w):
    """RabbitMQ requeues a crashed consumer's payment at once; SQS waits out its 30 s timeout."""
    w.fault.value = "crash before ack"
    w.broker.value = "rabbitmq"
    crash = w.result.trace.where(kind="crash")[0].time
    assert [e.kind for e in w.result.trace.where(kind="requeue")] == ["requeue"]
    assert w.result.trace.where(kind="redeliver")[0].time == crash
    assert "like rabbitmq" in w.figure.axes[0].get_title(loc="left")
    w.broker.value = "sqs"
    assert w.result.trace.where(kind="redeliver")[0].time == crash + 29.0  # delivered at 0.5, visible again at 30.5
    assert charges_per_order(w.result)["order-2"] == 2
    w.broker.value = None
    assert w.result.trace.where(kind="timeout")[0].time == 3.5


def test_the_exactly_once_story_names_processing_not_delivery(w):
    w.guarantee.value = "exactly-once"
    assert "exactly-once processing: at-least-once delivery" in w.summary_html.value
    assert "idempotency key" in w.summary_html.value
