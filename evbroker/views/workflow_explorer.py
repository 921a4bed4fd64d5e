"""WorkflowExplorer: the order workflow as a choreography or an orchestration, side by side."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from evbroker.core.faults import Faults
from evbroker.views.explorer import Explorer, html_table
from evbroker.views.flow import flow, legend_handles

#: The delivery faults the "faults" switch turns on, on every service (and the orchestrator).
FAULTS_ON = Faults(crash_before_ack=0.1, lose_ack=0.1, lose_delivery=0.1)
STYLE_STORIES = {
    "orchestration": "one orchestrator (a saga) sends each service a command and waits for its reply",
    "choreography": "no one is in charge: each service reacts to an event and announces the next",
}
FAILURE_STORIES = {
    "none": "every order goes through",
    "payment declined": "every card is declined: the stock reserved for it must be released",
    "shipping unavailable": "no carrier serves the address: the stock must be released and the card refunded",
}
#: How many runs an explorer keeps: runs are deterministic, so a setting seen before is reused.
KEEP_RUNS = 32


def _workflows() -> Any:
    from evbroker import workflows

    return workflows


class WorkflowExplorer(Explorer):
    """Run the order workflow in either style, with a failure and delivery faults, and compare.

    Controls (ipywidgets, set ``.value`` to drive it): ``style`` ("orchestration",
    "choreography"), ``failure`` ("none", "payment declined", "shipping unavailable"),
    ``faults`` (a checkbox: :data:`FAULTS_ON` on every worker, or none), ``seed``.
    ``result`` is the chosen style's run (:func:`evbroker.workflows.run_orders`, with
    ``.broker``, ``.trace``, ``.outcomes``, ``.ledger``, ``.states``, ``.measures``) and
    ``other`` the same orders in the other style. ``summary`` holds ``outcomes``, ``ledger``
    and ``measures`` (one dict per style: messages, deliveries, places, finished_at).

    Shows the timeline, the flow graph (a hub for orchestration, a chain for choreography),
    each order's saga state, and the two styles' measures side by side.
    """

    def __init__(
        self,
        style: str = "orchestration",
        failure: str = "none",
        faults: bool = False,
        seed: int = 0,
        *,
        orders: int = 2,
    ) -> None:
        wf = _workflows()
        self.orders = orders
        self.other: Any = None
        self._runs: dict[tuple, Any] = {}
        self.style = widgets.ToggleButtons(options=list(wf.STYLES), value=style, description="style")
        self.failure = widgets.Dropdown(options=list(wf.FAILURES), value=failure, description="failure")
        self.faults = widgets.Checkbox(value=faults, description="delivery faults", indent=False)
        self.seed = widgets.IntSlider(value=seed, min=0, max=20, description="seed")
        super().__init__([self.style, self.failure, self.faults, self.seed])

    def control_rows(self) -> list[widgets.Widget]:
        return [self.style, widgets.HBox([self.failure, self.faults, self.seed])]

    def run(self, style: str) -> Any:
        """The run for ``style`` at the current failure, faults and seed (kept: runs are deterministic)."""
        key = (style, self.failure.value, self.faults.value, self.seed.value, self.orders)
        run = self._runs.get(key)
        if run is None:
            run = _workflows().run_orders(
                style=style,
                failure=self.failure.value,
                orders=self.orders,
                faults=FAULTS_ON if self.faults.value else None,
                seed=self.seed.value,
            )
            if len(self._runs) >= KEEP_RUNS:
                self._runs.pop(next(iter(self._runs)))
            self._runs[key] = run
        return run

    def compute(self) -> Any:
        styles = list(_workflows().STYLES)
        chosen = self.style.value
        other = next(s for s in styles if s != chosen)
        self.other = self.run(other)
        return self.run(chosen)

    def summarise(self, run: Any) -> tuple[dict[str, Any], str]:
        runs = {run.style: run, self.other.style: self.other}
        measures = {}
        for name, r in runs.items():
            m = r.measures
            measures[name] = {
                "messages": m.messages,
                "deliveries": m.deliveries,
                "places": len(m.defined_in),
                "finished_at": m.finished_at,
            }
        summary = {"outcomes": dict(run.outcomes), "ledger": dict(run.ledger), "measures": measures}
        text = (
            f"<b>{html.escape(run.style)}</b>: {html.escape(STYLE_STORIES[run.style])}.<br>"
            f"<b>{html.escape(run.failure)}</b>: {html.escape(FAILURE_STORIES[run.failure])}."
            + (" Delivery faults on: crashes before the ack, lost acks and lost deliveries." if run.faults else "")
            + states_html(run)
            + '<div style="display:flex;flex-wrap:wrap;column-gap:28px;align-items:flex-start">'
            + f"<div>{html_table(run.ledger.items(), caption='<b>ledger</b> (business effects)')}</div>"
            + f"<div>{measures_html(runs, run.style)}</div></div>"
        )
        return summary, text

    def draw(self, run: Any) -> None:
        title = (
            f"{run.style} \u00b7 {run.failure} \u00b7 {'faults' if run.faults else 'no faults'} \u00b7 seed {run.seed}"
        )
        split, right = self.draw_timeline(run.trace, title, below=3.0)
        graph_ax = self.axes("flow", left=0.3, right=right, top=0.35, bottom=0.1, band=(0.0, split))
        drawn = flow(run, ax=graph_ax, title="who talks to whom (messages sent)", legend=False)
        self.paste_legend(legend_handles(drawn.graph), graph_ax)

    def describe(self) -> str:
        values = ", ".join(f"{c.description}={c.value!r}" for c in self.controls)
        outcomes = ", ".join(f"{o} {v}" for o, v in self.summary.get("outcomes", {}).items())
        return f"WorkflowExplorer({values}): {outcomes}" if outcomes else f"WorkflowExplorer({values})"


def states_html(run: Any) -> str:
    """Each order's saga state as an HTML table: a column per step, then current and outcome."""
    steps = list(_workflows().ORDER_STEPS)
    cell = "padding:2px 8px;border:1px solid #ddd;text-align:left"
    head = "".join(f'<th style="{cell}">{html.escape(h)}</th>' for h in ["order", *steps, "current", "outcome"])
    rows = []
    for order, state in run.states.items():
        cells = [order, *(state.cell(s) for s in steps), state.current or "-", state.outcome or "running"]
        rows.append("<tr>" + "".join(f'<td style="{cell}">{html.escape(str(c))}</td>' for c in cells) + "</tr>")
    who = "the orchestrator's log" if run.style == "orchestration" else "rebuilt from every service's effects"
    return (
        f'<table style="border-collapse:collapse;margin:6px 0"><caption style="text-align:left">'
        f"<b>saga state</b> ({who})</caption><tr>{head}</tr>{''.join(rows)}</table>"
    )


def measures_html(runs: dict[str, Any], chosen: str) -> str:
    """The two styles' measures side by side, the chosen one in bold."""
    cell = "padding:2px 10px;border:1px solid #ddd;text-align:center"
    names = list(runs)
    head = f'<th style="{cell}"></th>' + "".join(
        f'<th style="{cell}">{"&#9654; " if n == chosen else ""}{html.escape(n)}</th>' for n in names
    )

    def row(label: str, values: list[Any]) -> str:
        tds = "".join(f'<td style="{cell}">{html.escape(str(v))}</td>' for v in values)
        return f'<tr><td style="{cell};text-align:left">{html.escape(label)}</td>{tds}</tr>'

    ms = [runs[n].measures for n in names]
    body = [
        row("messages sent", [m.messages for m in ms]),
        row("deliveries", [m.deliveries for m in ms]),
        row("places the flow is written", [len(m.defined_in) for m in ms]),
        row("links between services", [m.coupling.number_of_edges() for m in ms]),
        row("last order settled at", ["-" if m.finished_at is None else f"{m.finished_at:g}" for m in ms]),
    ]
    return (
        f'<table style="border-collapse:collapse;margin:6px 0"><caption style="text-align:left">'
        f"<b>the two styles, same orders</b></caption><tr>{head}</tr>{''.join(body)}</table>"
    )
