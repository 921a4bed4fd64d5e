"""The flow graph: who talks to whom, from the trace, laid out the same way every time."""

import matplotlib.pyplot as plt
import pytest

import evbroker as eb
from evbroker import scenarios as sc
from evbroker.views.flow import positions

SERVICES = {"inventory", "payment", "shipping", "email"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_stacked_fan_out_edges_carry_message_counts():
    f = eb.plot.flow(sc.queue_demo("stacked", workers=2, messages=4))
    g = f.graph
    assert dict(g.nodes(data="role")) == {
        "producer": "producer",
        "user.signed_up": "topic",
        "email": "queue",
        "billing": "queue",
        "analytics": "queue",
    }
    assert {(a, b): m for a, b, m in g.edges(data="messages")} == {
        ("producer", "user.signed_up"): 4,
        ("user.signed_up", "email"): 4,
        ("user.signed_up", "billing"): 4,
        ("user.signed_up", "analytics"): 4,
    }
    assert g.nodes["billing"]["workers"] == 2


def test_workers_as_nodes_show_how_a_queue_spreads_its_copies():
    g = eb.plot.flow(sc.queue_demo("queue", workers=3, messages=7), workers=True).graph
    assert [(b, m) for a, b, m in g.edges(data="messages") if a == "jobs"] == [
        ("jobs-1", 3),
        ("jobs-2", 2),
        ("jobs-3", 2),
    ]


def test_orchestration_is_a_hub():
    g = eb.plot.flow(eb.workflows.run_orders(style="orchestration", orders=2)).graph
    hub = "order-saga"
    for service in SERVICES:
        assert g.has_edge(hub, service) and g.has_edge(service, hub)
        assert set(g.successors(service)) == {hub}  # services only answer the orchestrator


def test_choreography_is_a_chain():
    g = eb.plot.flow(eb.workflows.run_orders(style="choreography", orders=2)).graph
    # no one talks to every service, and the happy path reads left to right, service by service
    assert not any(SERVICES <= set(g.successors(n)) | set(g.predecessors(n)) for n in g)
    x = {n: p[0] for n, p in positions(g).items()}
    assert x["shop"] < x["order.placed"] < x["inventory"] < x["payment"] < x["shipping"] < x["email"]


def test_layout_is_deterministic_and_left_to_right():
    run = eb.workflows.run_orders(style="choreography", failure="shipping unavailable", orders=2)
    first = positions(eb.plot.flow(run).graph)
    again = positions(eb.plot.flow(eb.workflows.run_orders("choreography", "shipping unavailable", 2)).graph)
    assert first == again
    g = eb.plot.flow(run).graph
    forward = [(a, b) for a, b in g.edges if first[a][0] < first[b][0]]
    assert len(forward) > len(g.edges) / 2


def test_returns_ax_and_graph_with_a_stable_repr():
    _fig, ax = plt.subplots()
    f = eb.plot.flow(sc.payments(), ax=ax)
    got_ax, graph = f
    assert got_ax is ax
    assert repr(f) == "<Flow: 2 nodes, 1 edges>"
    assert list(graph.edges) == [("checkout", "payments")]


def test_bad_source_teaches():
    with pytest.raises(eb.EvbrokerError, match=r"eb\.plot\.flow needs a Broker"):
        eb.plot.flow([1, 2])
