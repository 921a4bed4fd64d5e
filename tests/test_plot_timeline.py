"""The swimlane timeline: lanes are the run's actors, every hop an arrow, every kind its marker."""

import matplotlib.pyplot as plt
import pytest

import evbroker as eb
from evbroker import scenarios as sc
from evbroker.views import timeline as tl


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def legend_labels(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def lane_names(ax):
    return [t.get_gid()[len("lane:") :] for t in ax.texts if (t.get_gid() or "").startswith("lane:")]


def poison(msg, ctx):
    raise ValueError("cannot parse the order")


def kinds_zoo():
    """Runs that between them hold every kind of trace event."""
    runs = [sc.payments(g, f) for g in eb.GUARANTEES for f in sc.FAULTS]
    b = eb.Broker(seed=0)
    b.topic("nobody.listens")
    b.queue("dlq")
    b.queue("orders", max_deliveries=2, dead_letter="dlq")
    b.worker("orders", poison)
    b.publish("orders", {"order": 1})
    b.publish("nobody.listens", {"x": 1})
    b.run()
    runs.append(b)
    # an AMQP-like queue whose consumer dies, and an outside call repeated with its key
    b = eb.Broker(seed=0)
    b.queue("cards", crash_detection="disconnect")
    crash = eb.Faults(crash_before_ack=lambda m: m.attempt == 1)
    b.worker("cards", lambda m, c: (c.call("charge", idempotency_key=m.key), c.effect("receipt")), faults=crash)
    b.publish("cards", {"order": 1}, key="order-1")
    b.run()
    runs.append(b)
    return runs


def test_lanes_are_the_trace_actors_producer_first_and_workers_under_their_queue():
    b = sc.queue_demo("stacked", workers=2, messages=3)
    ax = eb.plot.timeline(b)
    assert lane_names(ax) == [
        "producer",
        "user.signed_up",
        "email",
        "email-1",
        "email-2",
        "billing",
        "billing-1",
        "billing-2",
        "analytics",
        "analytics-1",
        "analytics-2",
    ]
    assert set(lane_names(ax)) == set(b.trace.actors)


def test_idle_workers_still_get_a_lane_under_their_queue():
    b = sc.queue_demo("queue", workers=4, messages=2)
    assert tl.layout(b.trace).lane_names == ["producer", "jobs", "jobs-1", "jobs-2", "jobs-3", "jobs-4"]


def test_every_marker_kind_in_the_trace_is_in_the_legend_and_no_other():
    seen = set()
    for run in kinds_zoo():
        ax = eb.plot.timeline(run)
        labels = legend_labels(ax)
        present = set(run.trace.kinds())
        seen |= present
        for kind, marker in eb.plot.MARKERS.items():
            assert (marker.label in labels) == (kind in present), (kind, labels)
        plt.close(ax.figure)
    assert set(eb.plot.MARKERS) <= seen  # the zoo really covers every marker


def test_markers_differ_in_shape_not_only_in_colour():
    shapes = [(m.marker, m.face) for m in eb.plot.MARKERS.values()]
    assert len({m for m, _ in shapes}) == len(shapes)


def test_every_hop_is_an_arrow_and_every_processing_a_bar():
    b = sc.payments("at-least-once", "crash before ack")
    lay = tl.layout(b.trace)
    hops = sum(1 for e in b.trace if e.kind in ("publish", "route", "deliver"))
    acks = sum(1 for e in b.trace if e.kind == "ack")
    assert len([a for a in lay.arrows["hop"] if a is not None]) == hops
    assert len(lay.arrows["ack"]) == acks
    bars = lay.bars["done"] + lay.bars["cut"]
    assert len(bars) == len(b.trace.where(kind="process"))
    assert all(x1 > x0 for x0, x1, *_ in bars)


def test_hops_lean_forward_and_chain_from_where_the_last_one_ended():
    """Zero-time hops are drawn slanted: publish -> deliver of one message form one path."""
    b = eb.Broker()
    b.queue("q")
    b.worker("q", lambda m, c: None)
    b.publish("q", 1)
    b.run()
    lay = tl.layout(b.trace)
    (px, _, pu, _, _), (dx, _, du, _, _) = lay.arrows["hop"]
    assert pu > 0 and du > 0
    assert dx == pytest.approx(px + pu)
    assert lay.bars["done"][0][0] == pytest.approx(dx + du)


def test_a_crash_cuts_the_bar_and_shows_down_time():
    b = eb.Broker()
    b.queue("q")
    b.worker("q", lambda m, c: None, faults=eb.Faults(crash_during_process=lambda m: m.attempt == 1))
    b.publish("q", 1)
    b.run()
    lay = tl.layout(b.trace)
    assert len(lay.bars["cut"]) == 1 and len(lay.bars["done"]) == 1
    assert len(lay.down) == 1


def test_four_messages_are_fully_labelled_with_ids_and_attempts():
    b = sc.payments("at-least-once", "crash before ack")
    ax = eb.plot.timeline(b)
    texts = {t.get_text() for t in ax.texts}
    assert {"m1", "m2", "m3", "m4", "m2 \u00b7 try 2", "charge"} <= texts


def test_500_messages_render_without_ids_and_say_so():
    b = sc.queue_demo("queue", workers=4, messages=500, interval=0.01)
    ax = eb.plot.timeline(b)
    ax.figure.canvas.draw()
    texts = {t.get_text() for t in ax.texts}
    assert "m250" not in texts
    assert "500 messages: ids left out" in ax.get_xlabel()
    assert sum(len(c.get_paths()) for c in ax.collections if c.get_hatch() is None and hasattr(c, "get_paths")) >= 500
    assert len(ax.texts) < 40  # lane names only, not one text per message


def test_labels_can_be_forced_either_way():
    b = sc.queue_demo("queue", workers=2, messages=20)
    on = {t.get_text() for t in eb.plot.timeline(b, labels=True).texts}
    off = {t.get_text() for t in eb.plot.timeline(sc.payments(), labels=False).texts}
    assert "m17" in on
    assert "m1" not in off


def test_window_zooms_in():
    b = sc.queue_demo("queue", workers=2, messages=200, interval=0.1)
    ax = eb.plot.timeline(b, window=(5, 8))
    assert ax.get_xlim()[0] < 5 < 8 < ax.get_xlim()[1] < 9


def test_a_workflow_colours_each_order_s_chain_alike():
    run = eb.workflows.run_orders(style="orchestration", orders=2)
    lay = tl.layout(run.trace)
    assert list(lay.chains) == ["m1", "m2"]
    colours = {bar[3] for bar in lay.bars["done"]}
    assert colours == set(lay.chains.values())
    ax = eb.plot.timeline(run)
    assert "m1 and all it caused" in legend_labels(ax)


def test_colour_by_message_gives_each_message_its_own_colour():
    run = eb.workflows.run_orders(style="choreography", orders=1)
    lay = tl.layout(run.trace, colour_by="message")
    assert lay.chains == {}
    assert len({bar[3] for bar in lay.bars["done"]}) > 2


@pytest.mark.parametrize("source", [lambda b: b, lambda b: b.trace, lambda b: type("Run", (), {"trace": b.trace})()])
def test_accepts_a_broker_a_trace_or_a_run(source):
    b = sc.payments()
    ax = eb.plot.timeline(source(b))
    assert lane_names(ax) == ["checkout", "payments", "payments-1", "payments-2"]


def test_draws_on_a_given_axes_and_returns_it():
    _fig, ax = plt.subplots()
    assert eb.plot.timeline(sc.payments(), ax=ax) is ax


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: eb.plot.timeline({"not": "a run"}), ["Broker, a Trace or a run result", "dict"]),
        (lambda: eb.plot.timeline(sc.payments(), labels="some"), ["labels must be"]),
        (lambda: eb.plot.timeline(sc.payments(), window=(3, 1)), ["window must be a pair"]),
        (lambda: eb.plot.timeline(sc.payments(), colour_by="order"), ["colour_by", "chain"]),
    ],
)
def test_bad_input_teaches(call, words):
    with pytest.raises(eb.EvbrokerError) as err:
        call()
    for w in words:
        assert w in str(err.value)


def test_same_run_same_picture():
    a = tl.layout(sc.payments("exactly-once", "slow consumer").trace)
    b = tl.layout(sc.payments("exactly-once", "slow consumer").trace)
    assert (a.arrows, a.bars, a.points, a.labels) == (b.arrows, b.bars, b.points, b.labels)


def test_an_empty_trace_draws_empty_lanes():
    b = eb.Broker()
    b.queue("q")
    ax = eb.plot.timeline(b)
    assert lane_names(ax) == ["q"]
    assert ax.get_legend() is None
