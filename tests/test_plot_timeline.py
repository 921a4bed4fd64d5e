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


def drawn_runs():
    """Runs whose timelines between them hold every kind of mark, each drawn at a true time."""
    runs = {
        "double charge": sc.payments("at-least-once", "crash before ack"),
        "lost ack": sc.payments("at-least-once", "lost ack"),
        "lost delivery": sc.payments("at-least-once", "lost delivery"),
        "slow consumer, two workers": sc.payments("at-least-once", "slow consumer", workers=2),
        "producer retry": sc.payments("exactly-once", "producer retry"),
        "saga": eb.workflows.run_orders(style="orchestration", failure="payment declined", orders=2),
        "fan-out topic": sc.queue_demo("stacked", workers=2, messages=3),
    }
    b = eb.Broker(seed=0)
    b.queue("cards", crash_detection="disconnect")
    crash = eb.Faults(crash_before_ack=lambda m: m.attempt == 1)
    b.worker(
        "cards",
        lambda m, c: (c.call("charge", idempotency_key=m.key), c.call("notify"), c.effect("receipt")),
        faults=crash,
    )
    b.publish("cards", {"order": 1}, key="order-1")
    b.publish("cards", {"order": 2}, key="order-2", at=0.5)
    b.run()
    runs["outside calls"] = b
    b = eb.Broker(seed=0)
    b.queue("jobs")
    for _ in range(2):
        b.worker("jobs", lambda m, c: c.effect("done"), prefetch=None)
    for i in range(6):
        b.publish("jobs", {"n": i})
    b.run()
    runs["prefetch None backlog"] = b
    b = eb.Broker(seed=0)
    b.topic("nobody.listens")
    b.queue("dlq")
    b.queue("orders", max_deliveries=2, dead_letter="dlq")
    b.worker("orders", poison)
    b.worker("dlq", lambda m, c: c.effect("parked"))
    b.publish("orders", {"order": 1})
    b.publish("nobody.listens", {"x": 1})
    b.run()
    runs["dead letter"] = b
    return runs


def expected_marks(trace):
    """Per marker kind, the (time, lane) of every marker the trace calls for.

    One handler's effects (or outside calls) at one instant share one marker; a lost delivery
    or ack stops between two lanes, so only its time is known.
    """
    from collections import Counter

    marks = {kind: Counter() for kind in eb.plot.MARKERS}
    seen = set()
    for e in trace:
        if e.kind not in eb.plot.MARKERS:
            continue
        if e.kind in ("effect", "call", "call-deduped"):
            if (e.kind, e.actor, e.msg, e.time) in seen:
                continue
            seen.add((e.kind, e.actor, e.msg, e.time))
        lane = None if e.kind in ("delivery-lost", "ack-lost") else e.to if e.kind == "late-ack" else e.actor
        marks[e.kind][(e.time, lane)] += 1
    return {kind: c for kind, c in marks.items() if c}


def drawn_marks(ax, trace):
    """Per marker kind, the (x, y) of every marker drawn: one scatter per kind, in MARKERS order."""
    from matplotlib.collections import PathCollection

    kinds = [k for k in eb.plot.MARKERS if k in set(trace.kinds())]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == len(kinds)
    return {kind: [tuple(xy) for xy in s.get_offsets()] for kind, s in zip(kinds, scatters, strict=True)}


def processing_spans(trace):
    """(start, end, worker) of every processing in the trace: process to its complete or cut."""
    opened, spans = {}, []
    for e in trace:
        if e.kind == "process":
            opened[(e.actor, e.msg)] = e.time
        elif e.kind in ("complete", "handler-error", "dedup", "crash") and (e.actor, e.msg) in opened:
            spans.append((opened.pop((e.actor, e.msg)), e.time, e.actor))
    return sorted(spans)


@pytest.mark.parametrize("name", list(drawn_runs()))
def test_every_mark_sits_at_its_event_s_time_in_the_trace(name):
    """Markers, bars, down time and arrow heads are at trace times; only arrows lean."""
    from matplotlib.collections import PolyCollection
    from matplotlib.quiver import Quiver

    run = drawn_runs()[name]
    trace = run.trace
    ax = eb.plot.timeline(run, labels=True)
    lane = {n: i for i, n in enumerate(lane_names(ax))}
    exact = pytest.approx

    # markers: each kind's x positions are exactly its events' times, on (or stacked across) the lane
    drawn = drawn_marks(ax, trace)
    expected = expected_marks(trace)
    assert set(drawn) == set(expected)
    for kind, points in drawn.items():
        want = sorted(t for (t, _), n in expected[kind].items() for _ in range(n))
        assert sorted(x for x, _ in points) == exact(want, abs=1e-9), (kind, points, want)
        for (t, actor), n in expected[kind].items():
            at = [yy for x, yy in points if abs(x - t) < 1e-9]
            if actor is not None:
                assert sum(abs(yy - lane[actor]) <= tl.STACK_REACH + 1e-9 for yy in at) >= n, (kind, t, actor)

    # processing bars start at the process event and end at its complete (or cut), on the worker's lane
    bars, downs = [], []
    for c in ax.collections:
        if isinstance(c, PolyCollection) and not isinstance(c, Quiver):
            for path in c.get_paths():
                xs, ys = path.vertices[:, 0], path.vertices[:, 1]
                box = (float(xs.min()), float(xs.max()), round(float(ys.mean())))
                (downs if c.get_hatch() == "xxx" else bars).append(box)
    want_bars = [(t0, t1, lane[w]) for t0, t1, w in processing_spans(trace)]
    assert len(bars) == len(want_bars)
    flat = [v for box in sorted(bars) for v in box]
    assert flat == exact([v for box in sorted(want_bars) for v in box], abs=1e-9)
    # down time runs from a crash to the worker's restart (or the end of the run)
    end = max(e.time for e in trace)
    for x0, x1, yy in downs:
        worker = lane_names(ax)[yy]
        crashes = [e.time for e in trace if e.kind == "crash" and e.actor == worker]
        restarts = [e.time for e in trace if e.kind == "restart" and e.actor == worker] + [end]
        assert any(abs(x0 - t) < 1e-9 for t in crashes), (worker, x0, crashes)
        assert any(abs(x1 - t) < 1e-9 for t in restarts), (worker, x1, restarts)

    # arrows: every delivery ends at its time on the worker's lane, every ack at its time on the queue's;
    # every arrow leans forward by at least a slant, none collapses into a vertical line
    heads = []
    slant = tl.SLANT * (max(e.time for e in trace) - min(0.0, min(e.time for e in trace)))
    for q in (c for c in ax.collections if isinstance(c, Quiver)):
        for x, yy, u, v in zip(q.X, q.Y, q.U, q.V, strict=True):
            assert u >= slant * 0.999, (x, yy, u)
            heads.append((x + u, yy + v))
    lost = {(e.msg, e.time) for e in trace if e.kind == "delivery-lost"}
    for e in trace:
        if e.kind == "deliver" and (e.msg, e.time) not in lost:
            target = (e.time, lane[e.to])
        elif e.kind == "ack":
            target = (e.time, lane[e.to])
        else:
            continue
        assert any(abs(hx - target[0]) < 1e-9 and abs(hy - target[1]) < 1e-9 for hx, hy in heads), (e.kind, e)


def test_markers_of_one_instant_on_one_lane_stack_across_it_at_the_same_time():
    b = sc.payments("at-least-once", "crash before ack")
    lay = tl.layout(b.trace)
    (tx, ty), (rx, ry) = lay.points["timeout"][0], lay.points["redeliver"][0]
    assert tx == rx == 3.5
    assert ty != ry and abs(ty - ry) >= 0.3
    assert all(abs(v - lay.lane_names.index("payments")) <= tl.STACK_REACH for v in (ty, ry))


def test_a_handler_s_calls_at_one_instant_share_one_marker_with_both_names():
    b = drawn_runs()["outside calls"]
    lay = tl.layout(b.trace)
    names = [text for _, _, text, kind in lay.labels if kind == "call"]
    assert "charge, notify" in names
    assert len(lay.points["call"]) == len(names)


def test_work_that_took_no_time_is_a_bar_of_no_width_still_drawn():
    """A trace built by hand may start and finish a processing at one instant: a tick, not nothing."""
    E = eb.TraceEvent
    trace = eb.Trace(
        [
            E(0.0, "publish", "shop", "m1", to="q"),
            E(0.0, "deliver", "q", "m1", 1, to="q-1", queue="q"),
            E(0.0, "process", "q-1", "m1", 1, queue="q"),
            E(0.0, "complete", "q-1", "m1", 1, queue="q"),
            E(0.0, "ack", "q-1", "m1", 1, to="q", queue="q"),
        ]
    )
    lay = tl.layout(trace)
    ((x0, x1, *_),) = lay.bars["done"]
    assert x0 == x1 == 0
    ax = eb.plot.timeline(trace)
    (bar,) = [c for c in ax.collections if type(c).__name__ == "PolyCollection"]
    assert bar.get_linewidths()[0] > 1  # its outline, in its colour, is the tick
    assert ax.get_xlim()[0] < x0 < ax.get_xlim()[1]
