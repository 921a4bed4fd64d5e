"""The swimlane (Lamport) diagram of a run: time across, one lane per actor, every hop an arrow.

The layout (where each arrow, bar and marker goes) is computed from the trace alone by
:func:`layout`; :func:`timeline` draws it with a handful of matplotlib collections, so a run
of 500 messages draws as fast as one of 4.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from evbroker.core.trace import Trace, TraceEvent
from evbroker.errors import EvbrokerError, one_of
from evbroker.views import style
from evbroker.views.lanes import Lane, lanes
from evbroker.views.sources import actor_roles, as_trace, chains, message_order

#: Up to this many messages (in the window shown) every bar, marker and hop gets its label.
FULL_LABELS_UP_TO = 12
#: Past FULL_LABELS_UP_TO messages, effects still get their names up to this many of them.
EFFECT_NAMES_UP_TO = 40
COLOUR_BY = ("auto", "message", "chain")
#: Up to this many chains get a line each in the legend.
CHAIN_LEGEND_UP_TO = 6
#: How far a zero-time hop leans, as a fraction of the time shown.
SLANT = 0.014
#: The k-th message whose hops leave one lane at one instant leans k half-slants further, up to
#: this many: its arrows still end at their events' times, their tails part.
STAGGER_CAP = 4
#: Markers of one lane at one instant (an effect and a crash) stack across the lane, this far
#: apart (in lanes) and at most STACK_REACH from its middle; their x stays their event's time.
STACK_GAP = 0.42
STACK_REACH = 0.3
BAR_HEIGHT = 0.42
#: A copy waiting in a worker's own buffer (prefetch > 1) is drawn this far above its lane.
BUFFER_LIFT = 0.34
DOWN_HEIGHT = 0.16

#: Markers labelled with a name (the effect's, the outside system's) above them.
_NAMED_POINTS = ("effect", "call", "call-deduped")
#: Markers that sit on the lane of the event's actor and get the message id as their label.
_LABELLED_POINTS = (
    "crash",
    "delivery-lost",
    "ack-lost",
    "redeliver",
    "dedup",
    "lost",
    "dead-letter",
    "unroutable",
    "handler-error",
    "confirm-lost",
    "requeue",
)


@dataclass
class Layout:
    """Everything the diagram draws, in data coordinates (x = time, y = lane index)."""

    lanes: list[Lane]
    slant: float
    t0: float
    t1: float
    messages: dict[str, int]
    window: tuple[float, float] | None
    # arrows: style -> (x, y, dx, dy, colour)
    arrows: dict[str, list[tuple[float, float, float, float, str] | None]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # processing bars: style ("done" or "cut") -> (x0, x1, lane, colour, label)
    bars: dict[str, list[tuple[float, float, int, str, str]]] = field(default_factory=lambda: defaultdict(list))
    down: list[tuple[float, float, int]] = field(default_factory=list)
    points: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    # copies waiting in a queue: (x0, x1, lane, colour)
    waits: list[tuple[float, float, float, str]] = field(default_factory=list)
    # colour per chain (the producer's message that started it), when colouring by chain
    chains: dict[str, str] = field(default_factory=dict)
    # labels: (x, y, text, kind) where kind says how to place it
    labels: list[tuple[float, float, str, str]] = field(default_factory=list)

    @property
    def lane_names(self) -> list[str]:
        return [lane.name for lane in self.lanes]


def _label(msg: str | None, attempt: int | None) -> str:
    if msg is None:
        return ""
    return msg if not attempt or attempt == 1 else f"{msg} \u00b7 try {attempt}"


#: The kinds of event drawn as an arrow from ``actor`` to ``to``.
_HOP_EVENTS = ("publish", "route", "deliver", "dead-letter", "ack", "late-ack", "ack-lost")
#: Lanes a message passes through without taking time: hops leaving them continue a hop's path.
_PASS_THROUGH = ("topic", "queue")


def _hop_levels(trace: list[TraceEvent], roles: dict[str, str]) -> tuple[list[int], dict[tuple, int], dict[tuple, int]]:
    """How the zero-time hops of each message at each instant chain into one path.

    Returns, per event, how many hops of its message follow it at the same instant (0 for a hop
    that ends the path, so its head sits at the event's time); per (message, time, lane) how
    many hops leave that lane at that instant (its tail sits that many slants back); and per
    (message, time) the message's place in a burst (hops leaving one lane at one instant).
    """
    lead = [0] * len(trace)
    after: dict[tuple, int] = {}
    for i in range(len(trace) - 1, -1, -1):
        e = trace[i]
        if e.kind not in _HOP_EVENTS or e.to is None or e.msg is None:
            continue
        if roles.get(e.to) in _PASS_THROUGH:
            lead[i] = after.get((e.msg, e.time, e.to), 0)
        if roles.get(e.actor) in _PASS_THROUGH:
            key = (e.msg, e.time, e.actor)
            after[key] = max(after.get(key, 0), lead[i] + 1)
    groups: dict[tuple[str, float], dict[str, int]] = {}
    burst: dict[tuple, int] = {}
    for e in trace:
        if e.kind in _HOP_EVENTS and e.to is not None and e.msg is not None:
            group = groups.setdefault((e.actor, e.time), {})
            k = group.setdefault(e.msg, len(group))
            burst[(e.msg, e.time)] = max(burst.get((e.msg, e.time), 0), min(k, STAGGER_CAP))
    return lead, after, burst


def layout(trace: Trace, window: tuple[float, float] | None = None, colour_by: str = "auto") -> Layout:
    """Work out every arrow, bar and marker of the timeline of ``trace``.

    Every mark sits at its event's time in the trace, exactly: a bar spans process to
    complete (or crash, handler error, dedupe), a marker (effect, outside call, crash, timeout,
    redelivery, dead letter, ...) is at its event's time, and every hop arrow's head is at the
    time of the event it leads to. Hops (publish, route, deliver, ack) take no virtual time in
    the model; only the arrows carry the offset that makes them readable: an arrow leans
    forward by a small ``slant`` of time, *ending* at its event's time, and the zero-time hops
    one message takes through topics and queues at one instant chain backwards from there (a
    publish that is delivered at once arrives at the queue one slant before the delivery
    arrives at the worker, at the time of both). Messages whose hops leave one lane at the
    same instant (a burst of publishes) lean a little further each, so their arrows part.
    Markers of one lane at one instant (an effect and a crash at the end of a bar) stack
    up and down the lane, keeping their time.

    ``colour_by``: ``"message"`` gives every message its own colour; ``"chain"`` gives a
    message the colour of the producer's message that caused it (an order and every command,
    reply and event it led to); ``"auto"`` picks "chain" when workers publish, else "message".
    """
    if colour_by not in COLOUR_BY:
        raise one_of("timeline: colour_by", colour_by, COLOUR_BY)
    lane_list = lanes(trace)
    y = {lane.name: i for i, lane in enumerate(lane_list)}
    times = [e.time for e in trace]
    t0, t1 = (min(0.0, min(times)), max(times)) if times else (0.0, 1.0)  # the clock starts at 0
    if window is not None:
        t0, t1 = window
    span = max(t1 - t0, 1e-9)
    if not times or t1 == t0:
        span = 1.0
    d = SLANT * span
    out = Layout(lane_list, d, t0, t1, message_order(trace), window)
    roots = chains(trace)
    caused = any(r != m for m, r in roots.items())
    if colour_by == "chain" or (colour_by == "auto" and caused):
        firsts = list(dict.fromkeys(roots[m] for m in out.messages))
        out.chains = {r: style.message_colour(i) for i, r in enumerate(firsts)}
        colours = {m: out.chains[roots[m]] for m in out.messages}
    else:
        colours = {m: style.message_colour(i) for m, i in out.messages.items()}
    roles = actor_roles(trace)
    events = list(trace)
    lead, after, burst = _hop_levels(events, roles)
    # open processing spans by (worker, message): a worker holds one copy at a time
    spans: dict[tuple[str, str | None], tuple[float, int, str, int | None]] = {}
    downs: dict[str, float] = {}
    barred: set[tuple[str, str | None, int | None]] = set()
    queued: dict[tuple[str | None, str | None], float] = {}
    delivered: dict[tuple[str | None, str | None], tuple[int, int]] = {}  # (event, arrow) of a delivery
    named: dict[tuple[str, str | None, float, str], int] = {}  # one marker per handler and kind
    handed: dict[tuple[str | None, str | None], float] = {}  # (message, worker): when it arrived
    # markers on a lane: [kind, x, lane, text], stacked per (lane, time) once all are known
    marks: list[list[Any]] = []
    # labels in drawing order: a finished label, or the index of the mark it names
    notes: list[tuple[float, float, str, str] | int] = []

    def slant(m: str | None, t: float) -> float:
        """The lean of ``m``'s arrows at ``t``: a little more for each later message of a burst."""
        return d * (1 + burst.get((m, t), 0) / 2)

    def hop(i: int, style_name: str, a: str, b: str | None, colour: str, reach: float = 1.0) -> tuple[float, float]:
        """The arrow of hop event ``i`` from ``a`` to ``b``: (tail x, head x), head at its time."""
        e = events[i]
        s = slant(e.msg, e.time)
        x1 = e.time - lead[i] * s
        if roles.get(a) in _PASS_THROUGH:
            x0 = e.time - after.get((e.msg, e.time, a), 1) * s
        else:
            x0 = x1 - s
        if a in y and b in y:
            ya, yb = y[a], y[b]
            out.arrows[style_name].append((x0, ya, x1 - x0, (yb - ya) * reach, colour))
        return x0, x1

    def point(kind: str, x: float, lane: str | None, text: str = "") -> int | None:
        if lane not in y:
            return None
        marks.append([kind, x, lane, text])
        if text:
            notes.append(len(marks) - 1)
        return len(marks) - 1

    def lost_hop(i: int, style_name: str, a: str, b: str | None, colour: str, kind: str, text: str) -> None:
        """A hop that never arrives: it stops half a lane short of its target, at a marker at its time."""
        if a not in y or b not in y or y[a] == y[b]:
            return
        ya, yb = y[a], y[b]
        reach = 1 - 0.5 / abs(yb - ya)
        _, x1 = hop(i, style_name, a, b, colour, reach)
        stop = ya + (yb - ya) * reach
        out.points[kind].append((x1, stop))
        notes.append((x1, stop, text, kind))

    for i, e in enumerate(events):
        kind, m = e.kind, e.msg
        colour = colours.get(m, style.INK) if m else style.INK
        q = e.queue
        if kind == "publish":
            x0, x1 = hop(i, "hop", e.actor, e.to, colour)
            if e.to in y and roles.get(e.to, "queue") == "queue":
                queued[(m, e.to)] = x1
            if roles.get(e.actor) == "producer":  # a worker's publish is named by the bar it feeds
                text = m + (f" ({e.detail})" if e.detail else "")
                notes.append((x0, y.get(e.actor, 0), text, "publish"))
        elif kind == "route":
            _, queued[(m, e.to)] = hop(i, "hop", e.actor, e.to, colour)
        elif kind == "deliver":
            index = len(out.arrows["hop"])
            x0, x1 = hop(i, "hop", e.actor, e.to, colour)
            since = queued.pop((m, q), None)
            if since is not None and x0 - since > 2 * d and e.actor in y:
                out.waits.append((since, x0, y[e.actor], colour))
            delivered[(m, q)] = (i, index if len(out.arrows["hop"]) > index else -1)
            handed[(m, e.to)] = x1
        elif kind == "delivery-lost":
            # the core records the delivery first: take its arrow back and draw it falling short
            deliver, index = delivered.get((m, q), (i, -1))
            if index >= 0:
                out.arrows["hop"][index] = None
            lost_hop(deliver, "hop", e.actor, e.to, colour, kind, _label(m, e.attempt))
        elif kind == "process":
            since = handed.pop((m, e.actor), None)
            if since is not None and e.time - since > 2 * d and e.actor in y:  # pushed early: it waited in the buffer
                out.waits.append((since, e.time, y[e.actor] - BUFFER_LIFT, colour))
            spans[(e.actor, m)] = (e.time, y.get(e.actor, 0), colour, e.attempt)
        elif kind in ("complete", "handler-error", "dedup", "crash"):
            opened = spans.pop((e.actor, m), None) if m else None
            if opened is not None:
                x0, lane_y, c, attempt = opened
                out.bars["done" if kind == "complete" else "cut"].append((x0, e.time, lane_y, c, _label(m, attempt)))
                barred.add((e.actor, m, e.time))
            had_bar = (e.actor, m, e.time) in barred
            if kind != "complete":
                point(kind, e.time, e.actor, "" if had_bar else _label(m, e.attempt))
            if kind == "crash":
                downs.setdefault(e.actor, e.time)
        elif kind == "restart":
            began = downs.pop(e.actor, None)
            if began is not None and e.actor in y:
                out.down.append((began, e.time, y[e.actor]))
        elif kind in ("effect", "call", "call-deduped"):
            # one handler's effects (or calls) at one instant share one marker, their names joined
            name = str((e.data or {}).get("name", "effect" if kind == "effect" else "call"))
            key = (e.actor, m, e.time, kind)
            index = named.get(key)
            if index is None:
                found = point(kind, e.time, e.actor, name)
                if found is not None:
                    named[key] = found
            elif name not in marks[index][3].split(", "):
                marks[index][3] += f", {name}"
        elif kind in ("ack", "late-ack", "ack-lost"):
            if kind == "ack":
                hop(i, "ack", e.actor, e.to, colour)
            elif kind == "late-ack":
                _, x1 = hop(i, "late", e.actor, e.to, style.FAINT)
                point(kind, x1, e.to, "late ack ignored")
            else:
                lost_hop(i, "ack", e.actor, e.to, colour, kind, "ack lost")
        elif kind in ("timeout", "redeliver", "lost", "unroutable", "requeue"):
            text = _label(m, e.attempt) if kind in _LABELLED_POINTS else ""
            point(kind, e.time, e.actor, text)
            if kind in ("redeliver", "requeue"):
                queued[(m, q)] = e.time
            elif kind == "lost":
                queued.pop((m, q), None)
        elif kind == "dead-letter":
            point(kind, e.time, e.actor, _label(m, e.attempt))
            queued.pop((m, q), None)
            if e.to:
                _, queued[(m, e.to)] = hop(i, "hop", e.actor, e.to, colour)
        elif kind == "confirm-lost":
            point(kind, e.time, e.actor, f"{m}: no confirm" if m else "")
    # markers of one lane at one instant stack up and down the lane: their x stays their time
    stacks: dict[tuple[str, float], list[int]] = defaultdict(list)
    for index, (_kind, x, lane, _text) in enumerate(marks):
        stacks[(lane, x)].append(index)
    place: dict[int, float] = {}
    for (lane, _x), members in stacks.items():
        n = len(members)
        gap = min(STACK_GAP, 2 * STACK_REACH / (n - 1)) if n > 1 else 0.0
        for k, index in enumerate(members):
            place[index] = y[lane] + (k - (n - 1) / 2) * gap
    for index, (kind, x, _lane, _text) in enumerate(marks):
        out.points[kind].append((x, place[index]))
    for note in notes:
        if isinstance(note, int):
            kind, x, _lane, text = marks[note]
            out.labels.append((x, place[note], text, kind))
        else:
            out.labels.append(note)
    end = max(t1, max(times, default=t1))
    for (_actor, m), (x0, lane_y, c, attempt) in spans.items():  # still processing when the run stopped
        out.bars["cut"].append((x0, max(end, x0), lane_y, c, _label(m, attempt)))
    for (m, q), since in queued.items():  # still waiting when the run stopped
        if q in y and end - since > 2 * d:
            out.waits.append((since, end, y[q], colours.get(m, style.INK)))
    for actor, began in downs.items():  # still down when the run stopped
        if actor in y:
            out.down.append((began, max(end, began + d), y[actor]))
    return out


def timeline(
    source: Any,
    ax: Any = None,
    *,
    labels: bool | str = "auto",
    window: tuple[float, float] | None = None,
    title: str | None = None,
    legend: bool = True,
    colour_by: str = "auto",
) -> Any:
    """Draw a run as a swimlane diagram and return the matplotlib ``Axes``.

    ``source`` is a :class:`~evbroker.Broker`, a :class:`~evbroker.Trace` or a workflow run
    (anything with a ``.trace``). Time runs left to right; there is one lane per actor
    (producers, topics, each queue with its workers under it). Each hop is an arrow in the
    message's colour: publish, route and deliver go down the lanes, acks come back up. A bar
    on a worker's lane is the time it spent processing a copy (hatched when the work was cut
    short: a crash, a handler error, a rolled-back duplicate); hatched grey is a worker that
    is down. An outside call (``ctx.call``) is a blue plus at the start of the bar, when the
    handler made it (a hollow pentagon when the outside system recognised its key and did
    nothing); a database write (``ctx.effect``) is a star at the bar's end, when it committed.
    Crashes, lost deliveries and acks, timeouts, redeliveries, dedupe skips, effects,
    dead letters, late acks, handler errors, lost copies and unroutable publishes each have
    their own marker shape, listed in the legend.

    Every bar, marker and arrow tip sits at its event's time in the trace, exactly. Hops take
    no virtual time in the simulator (a delivery and the start of processing happen at the same
    instant), so an arrow leans slightly forward to be told apart and *ends* at its hop's time;
    the hops one message takes through a topic and a queue at one instant chain back from
    there. Markers at one instant on one lane (an effect and the crash right after it) stack
    up and down the lane instead of side by side, so their x stays their time.

    - ``labels``: ``"auto"`` writes message ids and attempts when at most
      ``FULL_LABELS_UP_TO`` messages are shown and leaves them out for bigger runs; ``True``
      or ``False`` force it.
    - ``window=(t0, t1)``: show only that stretch of time (zoom into a big run).
    - ``colour_by``: ``"message"`` (each message its own colour), ``"chain"`` (each message
      the colour of the producer's message that led to it: one colour per order in a
      workflow), or ``"auto"`` (chain when workers publish messages of their own).
    """
    import matplotlib.pyplot as plt

    trace = as_trace(source, "eb.plot.timeline")
    if labels not in ("auto", True, False):
        raise EvbrokerError(f"timeline: labels must be 'auto', True or False (got {labels!r})")
    if window is not None:
        if not (isinstance(window, (tuple, list)) and len(window) == 2 and window[0] < window[1]):
            raise EvbrokerError(f"timeline: window must be a pair (t0, t1) with t0 < t1 (got {window!r})")
        window = (float(window[0]), float(window[1]))
    lay = layout(trace, window, colour_by)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize(len(lay.lanes)), layout="constrained")
    draw(ax, lay, labels=labels, title=title, legend=legend, trace=trace)
    return ax


def figsize(n_lanes: int, width: float = style.NOTEBOOK_WIDTH) -> tuple[float, float]:
    """A figure size that gives every lane room to breathe at notebook width."""
    per_lane = 0.42 if n_lanes <= 10 else 0.32
    return (width, max(2.6, 1.1 + per_lane * n_lanes))


def _shown_messages(lay: Layout, trace: Trace) -> int:
    if lay.t0 is None:
        return len(lay.messages)
    return len({e.msg for e in trace if e.msg is not None and lay.t0 <= e.time <= lay.t1})


def draw(
    ax: Any,
    lay: Layout,
    *,
    labels: bool | str = "auto",
    title: str | None = None,
    legend: bool = True,
    trace: Trace | None = None,
) -> list[Any]:
    """Draw a computed :class:`Layout` on ``ax`` (not cleared first); return the legend handles.

    With ``legend=False`` nothing is drawn for the legend, and the caller can use the returned
    handles (the explorers draw the legend once and reuse it).
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(lay.lanes)
    d = lay.slant
    shown = _shown_messages(lay, trace) if trace is not None else len(lay.messages)
    full = shown <= FULL_LABELS_UP_TO if labels == "auto" else bool(labels)
    many = shown > 60

    # lanes: a thin line per lane, a light band behind every other queue group
    pad = 4 * d
    x_lo = (lay.t0 if lay.window else _leftmost(lay)) - pad
    x_hi = (lay.t1 if lay.window else _rightmost(lay)) + pad
    groups: dict[str, list[int]] = {}
    for i, lane in enumerate(lay.lanes):
        groups.setdefault(lane.group, []).append(i)
    band = 0
    for lane_group in groups.values():
        if len(lane_group) > 1:
            if band % 2 == 0:
                ax.axhspan(min(lane_group) - 0.5, max(lane_group) + 0.5, color=style.BAND, zorder=0, lw=0)
            band += 1
    ax.hlines(range(n), x_lo, x_hi, colors=style.LANE_LINE, linewidth=0.8, zorder=1)

    # processing bars and down time
    handles: list[Any] = []
    bar_alpha = 0.55 if many else 0.85
    for kind, hatch in (("done", None), ("cut", "////")):
        bars = lay.bars.get(kind)
        if not bars:
            continue
        h = BAR_HEIGHT / 2
        verts = [[(x0, yy - h), (x1, yy - h), (x1, yy + h), (x0, yy + h)] for x0, x1, yy, _, _ in bars]
        faces = [c for _, _, _, c, _ in bars]
        # work that took no time at all is a bar of no width: its outline, in its colour, shows it
        edges = [c if x1 <= x0 else (style.INK if hatch else "none") for x0, x1, _, c, _ in bars]
        ax.add_collection(
            PolyCollection(
                verts,
                facecolors=faces,
                edgecolors=edges,
                linewidths=[1.6 if x1 <= x0 else 0.4 for x0, x1, *_ in bars],
                alpha=bar_alpha if not hatch else 0.55,
                hatch=hatch,
                zorder=3,
            )
        )
        handles.append(
            Patch(
                facecolor=style.FAINT,
                edgecolor=style.INK if hatch else "none",
                hatch=hatch,
                alpha=0.8,
                label="processing" if kind == "done" else "processing cut short",
            )
        )
    if lay.down:
        h = DOWN_HEIGHT / 2
        verts = [[(x0, yy - h), (x1, yy - h), (x1, yy + h), (x0, yy + h)] for x0, x1, yy in lay.down]
        ax.add_collection(
            PolyCollection(verts, facecolors="white", edgecolors=style.DOWN, hatch="xxx", linewidths=0.6, zorder=2.5)
        )
        handles.append(Patch(facecolor="white", edgecolor=style.DOWN, hatch="xxx", label="worker down"))

    # copies waiting in a queue (or in a worker's buffer): a thin line along the lane, nudged apart per message
    if lay.waits:
        from matplotlib.collections import LineCollection

        segs = []
        for i, (x0, x1, yy, _c) in enumerate(lay.waits):
            off = ((i % 5) - 2) * 0.07
            segs.append([(x0, yy + off), (x1, yy + off)])
        ax.add_collection(
            LineCollection(
                segs,
                colors=[c for *_, c in lay.waits] if not many else style.FAINT,
                linewidths=2.2 if not many else 0.8,
                alpha=0.6 if not many else 0.12,
                capstyle="butt",
                zorder=2,
            )
        )
        handles.append(Line2D([], [], color=style.FAINT, lw=2.2, label="waiting (queue or worker buffer)"))

    # arrows: one quiver per style
    arrow_styles = {
        "hop": dict(width=0.0016 if not many else 0.0007, alpha=0.95 if not many else 0.3, zorder=4),
        "ack": dict(width=0.0011 if not many else 0.0005, alpha=0.9 if not many else 0.25, zorder=4),
        "late": dict(width=0.0009, alpha=0.9, zorder=4),
    }
    legend_arrow = {"hop": "hop: publish, route, deliver", "ack": "ack (back to the queue)"}
    for name, kw in arrow_styles.items():
        arrows = [a for a in lay.arrows.get(name, ()) if a is not None]
        if not arrows:
            continue
        xs, ys, us, vs, cs = zip(*arrows, strict=True)
        ax.quiver(
            xs,
            ys,
            us,
            vs,
            color=list(cs),
            angles="xy",
            scale_units="xy",
            scale=1,
            headwidth=5,
            headlength=6,
            headaxislength=5.5,
            **kw,
        )
        if name in legend_arrow:
            handles.append(
                Line2D(
                    [],
                    [],
                    color=style.INK,
                    lw=1.4 if name == "hop" else 0.8,
                    marker=">",
                    markersize=5,
                    markevery=[1],
                    label=legend_arrow[name],
                )
            )

    if lay.chains and len(lay.chains) <= CHAIN_LEGEND_UP_TO:
        for root, colour in lay.chains.items():
            handles.append(Line2D([], [], color=colour, lw=5, label=f"{root} and all it caused"))

    # point markers, one scatter per kind, in the order of the KINDS table
    for kind, mk in style.MARKERS.items():
        pts = lay.points.get(kind)
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        ax.scatter(
            xs,
            ys,
            marker=mk.marker,
            s=mk.size**2,
            facecolors=mk.face,
            edgecolors=mk.edge,
            linewidths=1.0 if not mk.marker.startswith("$") else 0.0,
            zorder=6,
        )
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker=mk.marker,
                markersize=mk.size * 0.8,
                markerfacecolor=mk.face,
                markeredgecolor=mk.edge,
                markeredgewidth=1.0 if not mk.marker.startswith("$") else 0.0,
                label=mk.label,
            )
        )

    # labels
    if full:
        _draw_labels(ax, lay)
    elif labels == "auto" and len(lay.points.get("effect", ())) <= EFFECT_NAMES_UP_TO:
        _draw_effect_names(ax, lay)
    note = ""
    if not full and shown > FULL_LABELS_UP_TO:
        note = f"        ({shown} messages: ids left out; labels=True shows them, window=(t0, t1) zooms in)"

    # axes
    low, high = n - 0.5, -0.85 if full else -0.5
    if full or (labels == "auto" and len(lay.points.get("effect", ())) <= EFFECT_NAMES_UP_TO):
        low, high = _name_room(lay, low, high)
    ax.set_ylim(low, high)
    ax.set_xlim(x_lo, x_hi)
    ax.set_yticks([])
    # lane names as plain texts left of the axes (cheaper to draw than tick labels)
    names = ax.get_yaxis_transform()
    for i, lane in enumerate(lay.lanes):
        ax.text(
            -0.008,
            i,
            _lane_text(lane),
            transform=names,
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold" if lane.role == "queue" else "normal",
            fontstyle="italic" if lane.role == "topic" else "normal",
            gid=f"lane:{lane.name}",
            clip_on=False,
        )
    ax.set_xlabel("virtual time" + note, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=11, loc="left")
    if legend and handles:
        legend_at(ax, handles)
    return handles


def legend_at(ax: Any, handles: list[Any]) -> Any:
    """The timeline's legend, just right of ``ax``."""
    return ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=7.5,
        frameon=False,
        handlelength=1.8,
        borderaxespad=0.0,
    )


def margins(lay: Layout, legend: bool = True) -> tuple[float, float]:
    """Room (inches) the lane names need on the left and the legend on the right, estimated.

    Lets a caller lay the axes out once by hand instead of running a layout engine on every
    redraw (the explorers redraw on every click).
    """
    longest = max((len(_lane_text(lane)) for lane in lay.lanes), default=4)
    left = 0.25 + longest * 0.072
    right = 2.3 if legend else 0.2
    return left, right


def _rightmost(lay: Layout) -> float:
    """The right end of everything drawn, with room for the last marker."""
    xs = [lay.t1]
    xs += [x + u for arrows in lay.arrows.values() for a in arrows if a is not None for x, _, u, _, _ in [a]]
    xs += [x for pts in lay.points.values() for x, _ in pts]
    xs += [x1 for bars in lay.bars.values() for _, x1, _, _, _ in bars]
    return max(xs) + lay.slant


def _leftmost(lay: Layout) -> float:
    """The left end of everything drawn: hops at the first instant start a few slants before it."""
    xs = [lay.t0]
    xs += [x for arrows in lay.arrows.values() for a in arrows if a is not None for x, *_ in [a]]
    return min(xs)


def _lane_text(lane: Lane) -> str:
    if lane.role == "worker" or lane.name == lane.role:
        return lane.name
    if lane.role == "queue":
        return f"{lane.name} [queue]"
    if lane.role == "topic":
        return f"{lane.name} (topic)"
    return f"{lane.name} ({lane.role})"


def _stacked(yy: float) -> int:
    """Where a marker sits on its lane: -1 stacked above the middle, 1 below it, 0 on it."""
    off = yy - round(yy)
    return 0 if abs(off) < 1e-9 else (1 if off > 0 else -1)


def _name(ax: Any, x: float, yy: float, text: str) -> None:
    """An effect's or outside call's name: under its marker, or above it if stacked above another."""
    above = _stacked(yy) < 0
    ax.text(
        x,
        yy - 0.2 if above else yy + 0.2,
        text,
        fontsize=7,
        ha="center",
        va="bottom" if above else "top",
        color=style.INK,
        zorder=7,
        clip_on=True,
    )


def _name_room(lay: Layout, low: float, high: float) -> tuple[float, float]:
    """The y limits widened so the names of markers stacked off the middle of a lane fit."""
    for _x, yy, _text, kind in lay.labels:
        if kind in _NAMED_POINTS and _stacked(yy):
            low, high = max(low, yy + 0.5), min(high, yy - 0.5)
    return low, high


def _draw_effect_names(ax: Any, lay: Layout) -> None:
    """Only the effects' names, each dropped when it repeats the one before it on its lane."""
    before: dict[int, str] = {}
    for x, yy, text, kind in lay.labels:
        if kind in _NAMED_POINTS and before.get(round(yy)) != text:
            before[round(yy)] = text
            _name(ax, x, yy, text)


def _draw_labels(ax: Any, lay: Layout) -> None:
    """Message ids and attempts next to bars, publishes and markers."""
    for x0, _x1, yy, _c, text in lay.bars.get("done", []) + lay.bars.get("cut", []):
        ax.text(
            x0,
            yy - BAR_HEIGHT / 2 - 0.04,
            text,
            fontsize=7.5,
            ha="left",
            va="bottom",
            color=style.INK,
            zorder=7,
            clip_on=True,
        )
    last_end: dict[tuple[float, int], float] = {}
    # roughly one character of 7.5 pt text, in time units, on axes about 7 inches wide
    char = (lay.slant / SLANT) / 7.0 * (0.6 * 7.5 / 72)
    for x, yy, text, kind in lay.labels:
        if kind == "publish":
            row = next((r for r in (0, 1) if x >= last_end.get((yy, r), -math.inf)), None)
            if row is None:
                continue  # a burst: the first ids stand for the group; the bars carry the rest
            last_end[(yy, row)] = x + (len(text) + 1) * char
            ax.text(
                x, yy - 0.12 - 0.24 * row, text, fontsize=7.5, ha="left", va="bottom", color=style.INK, clip_on=True
            )
        elif kind == "late-ack":
            ax.text(x - lay.slant, yy - 0.14, text, fontsize=7, ha="right", va="bottom", color=style.FAINT, zorder=7)
        elif kind in _NAMED_POINTS:
            _name(ax, x, yy, text)
        elif kind in ("delivery-lost", "ack-lost"):
            ax.text(
                x + lay.slant, yy, text, fontsize=7, ha="left", va="center", color=style.BAD, zorder=7, clip_on=True
            )
        else:  # beside a marker stacked with others, else just under its right side
            stacked = _stacked(yy) != 0
            ax.text(
                x + lay.slant * (1.2 if stacked else 0.6),
                yy if stacked else yy + 0.16,
                text,
                fontsize=7,
                ha="left",
                va="center" if stacked else "top",
                color=style.BAD if kind in ("crash", "lost", "delivery-lost", "ack-lost") else style.INK,
                zorder=7,
                clip_on=True,
            )
