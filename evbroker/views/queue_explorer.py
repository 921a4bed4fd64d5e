"""QueueExplorer: one taker or every subscriber its own copy, and what more workers change."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from evbroker import scenarios
from evbroker.core.broker import Broker
from evbroker.core.trace import Trace
from evbroker.views import style
from evbroker.views.depth import queue_depth
from evbroker.views.explorer import Explorer, html_table
from evbroker.views.lanes import lanes
from evbroker.views.sources import worker_queues

#: How the explorer spaces the publishes: one message every this much time.
INTERVAL = 0.25
MODE_STORIES = {
    "queue": "one queue, competing workers: each message goes to exactly one of them",
    "pub/sub": "one topic, one queue per subscribing service: every service gets its own copy of every message",
    "stacked": "a topic fans out to three services; each service's queue spreads its copies over its own workers",
}


def per_worker(trace: Trace) -> dict[str, int]:
    """Copies each worker finished processing, every worker listed (zero included)."""
    counts = {lane.name: 0 for lane in lanes(trace) if lane.role == "worker"}
    for e in trace:
        if e.kind == "complete":
            counts[e.actor] = counts.get(e.actor, 0) + 1
    return counts


def crew(mode: str, workers: int) -> str:
    """Who reads, in words: what the workers slider means in each mode."""
    plural = "s" if workers != 1 else ""
    if mode == "queue":
        return f"{workers} competing worker{plural}"
    if mode == "pub/sub":
        return f"{workers} subscribing service{plural}, one worker each"
    return f"3 services \u00d7 {workers} worker{plural}"


class QueueExplorer(Explorer):
    """Compare a queue, pub/sub and the two stacked, for any number of workers and messages.

    Controls (ipywidgets, set ``.value`` to drive it): ``mode`` ("queue", "pub/sub",
    "stacked"), ``workers`` (competing workers in a queue; subscribing services in pub/sub;
    workers per service when stacked), ``messages``. ``result`` is the run's
    :class:`~evbroker.Broker` (from :func:`evbroker.scenarios.queue_demo`, a message every
    0.25 time units); ``summary`` holds ``published``, ``deliveries`` and ``per_worker``.
    Shows the timeline, the messages each consumer processed and each queue's depth.
    """

    figsize = (style.NOTEBOOK_WIDTH, 6.0)

    def __init__(self, mode: str = "queue", workers: int = 2, messages: int = 4) -> None:
        self.mode = widgets.ToggleButtons(options=list(scenarios.QUEUE_MODES), value=mode, description="mode")
        self.workers = widgets.IntSlider(value=workers, min=1, max=4, description="workers")
        self.messages = widgets.IntSlider(value=messages, min=1, max=20, description="messages")
        super().__init__([self.mode, self.workers, self.messages])

    def control_rows(self) -> list[widgets.Widget]:
        return [self.mode, widgets.HBox([self.workers, self.messages])]

    def compute(self) -> Broker:
        return scenarios.queue_demo(self.mode.value, self.workers.value, self.messages.value, interval=INTERVAL)

    def summarise(self, b: Broker) -> tuple[dict[str, Any], str]:
        counts = per_worker(b.trace)
        published = len(b.trace.where(kind="publish"))
        deliveries = len(b.trace.where(kind="deliver"))
        summary = {"published": published, "deliveries": deliveries, "per_worker": counts}
        mode = self.mode.value
        if mode == "queue":
            verdict = f"{published} messages, {deliveries} deliveries: each message went to one worker."
        else:
            services = len(b.trace.where(kind="route")) // max(published, 1)
            verdict = f"{published} messages, each copied to {services} services: {deliveries} deliveries." + (
                " Within a service, each copy went to one of its workers." if mode == "stacked" else ""
            )
        text = (
            f"<b>{html.escape(mode)}</b>: {html.escape(MODE_STORIES[mode])}"
            + html_table([("published", published), ("deliveries", deliveries), *counts.items()])
            + html.escape(verdict)
        )
        return summary, text

    def draw(self, b: Broker) -> None:
        title = f"{self.mode.value}: {crew(self.mode.value, self.workers.value)}, {self.messages.value} messages"
        split, _ = self.draw_timeline(b.trace, title, below=2.4)
        middle = style.NOTEBOOK_WIDTH * 0.4
        left = self.axes(
            "consumers", left=1.3, right=style.NOTEBOOK_WIDTH - middle + 0.3, top=0.35, bottom=0.5, band=(0, split)
        )
        right = self.axes("depth", left=middle + 0.6, right=0.3, top=0.35, bottom=0.5, band=(0, split))
        counts = per_worker(b.trace)
        owners = worker_queues(b.trace)
        names = list(counts)
        colours = [
            style.message_colour(list(dict.fromkeys(owners.values())).index(owners[n])) if n in owners else style.FAINT
            for n in names
        ]
        left.barh(range(len(names)), [counts[n] for n in names], color=colours, edgecolor=style.INK, linewidth=0.5)
        # the counts are written at the bars' ends and the names beside them: no ticks to lay out
        for i, n in enumerate(names):
            left.text(counts[n], i, f" {counts[n]}", va="center", fontsize=8)
            left.text(-0.02, i, n, va="center", ha="right", fontsize=8, transform=left.get_yaxis_transform())
        left.set_ylim(len(names) - 0.5, -0.5)
        left.set_xlim(0, max([*counts.values(), 1]) * 1.2)
        left.set_title("messages processed per consumer", fontsize=10, loc="left")
        left.set_axis_off()
        queue_depth(b, right, title="queue depth", legend=False)
        self.paste_legend(right.get_lines(), right, inside=True)
