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

from evbroker.core.trace import Trace
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
#: How far apart (in slants) two markers of one message at one instant are drawn.
MARKER_GAP = 1.7
#: Hops that start at the same instant from the same actor fan out by this many slants at most.
STAGGER_CAP = 4
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


def layout(trace: Trace, window: tuple[float, float] | None = None, colour_by: str = "auto") -> Layout:
    """Work out every arrow, bar and marker of the timeline of ``trace``.

    Hops (publish, route, deliver, ack) take no virtual time in the model. So that a reader can
    follow them, a hop is drawn leaning forward by a small ``slant`` of time, and the next hop of
    the same message starts where the previous one ended; hops that begin at the same instant
    from the same actor (a burst of publishes) fan out by half a slant each, a few at most.

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
    cursor: dict[tuple[str, str | None], float] = {}
    stagger: dict[tuple[str, float], dict[str, int]] = {}
    # open processing spans by (worker, message): a worker holds one copy at a time
    spans: dict[tuple[str, str | None], tuple[float, int, str, int | None]] = {}
    downs: dict[str, float] = {}
    barred: set[tuple[str, str | None, int | None]] = set()
    queued: dict[tuple[str | None, str | None], float] = {}
    delivered: dict[tuple[str | None, str | None], tuple[float, int]] = {}
    effects_at: dict[tuple[str, str | None], tuple[float, int]] = {}
    handed: dict[tuple[str | None, str | None], float] = {}  # (message, worker): when it arrived
    roles = actor_roles(trace)

    def start(actor: str, msg: str | None, key: tuple[str, str | None], t: float) -> float:
        """Where a hop or marker of ``msg`` at time ``t`` begins."""
        at = cursor.get(key, -math.inf)
        if at >= t:
            return at
        group = stagger.setdefault((actor, t), {})
        k = group.setdefault(msg or "", len(group))
        return t + min(k, STAGGER_CAP) * d / 2

    def point(kind: str, x: float, lane: str | None, key: tuple[str, str | None] | None, text: str = "") -> None:
        if lane not in y:
            return
        out.points[kind].append((x, y[lane]))
        if text:
            out.labels.append((x, y[lane], text, kind))
        if key is not None:
            cursor[key] = max(cursor.get(key, -math.inf), x + MARKER_GAP * d)

    def arrow(style_name: str, x: float, a: str, b: str | None, colour: str, part: float = 1.0) -> float:
        if a not in y or b not in y:
            return x
        ya, yb = y[a], y[b]
        out.arrows[style_name].append((x, ya, d * part, (yb - ya) * part, colour))
        return x + d * part

    def lost_hop(style_name: str, x0: float, a: str, b: str | None, colour: str, kind: str, text: str) -> float:
        """A hop that never arrives: it stops half a lane short of its target, at a marker."""
        if a not in y or b not in y or y[a] == y[b]:
            return x0
        ya, yb = y[a], y[b]
        part = 1 - 0.5 / abs(yb - ya)
        x1 = arrow(style_name, x0, a, b, colour, part=part)
        stop = ya + (yb - ya) * part
        out.points[kind].append((x1, stop))
        out.labels.append((x1, stop, text, kind))
        return x1

    for e in trace:
        kind, m = e.kind, e.msg
        colour = colours.get(m, style.INK) if m else style.INK
        q = e.queue
        if kind == "publish":
            x0 = start(e.actor, m, (m, None), e.time)
            x1 = arrow("hop", x0, e.actor, e.to, colour)
            cursor[(m, None)] = x1
            if e.to in y and trace.actors.get(e.to, "queue") == "queue":
                cursor[(m, e.to)] = x1
                queued[(m, e.to)] = x1
            if roles.get(e.actor) == "producer":  # a worker's publish is named by the bar it feeds
                text = m + (f" ({e.detail})" if e.detail else "")
                out.labels.append((x0, y.get(e.actor, 0), text, "publish"))
        elif kind == "route":
            x0 = max(e.time, cursor.get((m, None), e.time))
            cursor[(m, e.to)] = queued[(m, e.to)] = arrow("hop", x0, e.actor, e.to, colour)
        elif kind == "deliver":
            x0 = start(e.actor, m, (m, q), e.time)
            since = queued.pop((m, q), None)
            if since is not None and x0 - since > 2 * d and e.actor in y:
                out.waits.append((since, x0, y[e.actor], colour))
            delivered[(m, q)] = (x0, len(out.arrows["hop"]))
            cursor[(m, q)] = arrow("hop", x0, e.actor, e.to, colour)
            handed[(m, e.to)] = cursor[(m, q)]
        elif kind == "delivery-lost":
            # the core records the delivery first: take its arrow back and draw it falling short
            x0, index = delivered.get((m, q), (e.time, None))
            if index is not None:
                out.arrows["hop"][index] = None
            x1 = lost_hop("hop", x0, e.actor, e.to, colour, kind, _label(m, e.attempt))
            cursor[(m, q)] = x1 + MARKER_GAP * d
        elif kind == "process":
            x0 = max(e.time, cursor.get((m, q), e.time))
            since = handed.pop((m, e.actor), None)
            if since is not None and x0 - since > 2 * d and e.actor in y:  # pushed early: it waited in the buffer
                out.waits.append((since, x0, y[e.actor] - BUFFER_LIFT, colour))
            spans[(e.actor, m)] = (x0, y.get(e.actor, 0), colour, e.attempt)
        elif kind in ("complete", "handler-error", "dedup", "crash"):
            opened = spans.pop((e.actor, m), None) if m else None
            if opened is not None:
                x0, lane_y, c, attempt = opened
                x1 = max(e.time, x0 + d / 3)
                out.bars["done" if kind == "complete" else "cut"].append((x0, x1, lane_y, c, _label(m, attempt)))
                barred.add((e.actor, m, e.time))
            had_bar = (e.actor, m, e.time) in barred
            if kind == "crash":
                x = max(e.time, cursor.get((m, q), e.time)) if m else e.time
                point(kind, x, e.actor, (m, q) if m else None, "" if had_bar else _label(m, e.attempt))
                downs.setdefault(e.actor, x)
            elif kind != "complete":
                x = max(e.time, cursor.get((m, q), e.time))
                point(kind, x, e.actor, (m, q), "" if had_bar else _label(m, e.attempt))
        elif kind == "restart":
            began = downs.pop(e.actor, None)
            if began is not None and e.actor in y:
                out.down.append((began, e.time, y[e.actor]))
        elif kind == "effect":
            x = max(e.time, cursor.get((m, q), e.time))
            name = str((e.data or {}).get("name", "effect"))
            previous = effects_at.get((e.actor, m))
            if previous is not None and previous[0] == e.time:  # one handler, several effects: one star
                index = previous[1]
                px, py, text, k = out.labels[index]
                if name not in text.split(", "):
                    out.labels[index] = (px, py, f"{text}, {name}", k)
            else:
                point(kind, x, e.actor, (m, q), name)
                effects_at[(e.actor, m)] = (e.time, len(out.labels) - 1)
        elif kind in ("ack", "late-ack", "ack-lost"):
            x0 = max(e.time, cursor.get((m, q), e.time))
            if kind == "ack":
                cursor[(m, q)] = arrow("ack", x0, e.actor, e.to, colour)
            elif kind == "late-ack":
                x1 = arrow("late", x0, e.actor, e.to, style.FAINT)
                point(kind, x1, e.to, (m, q), "late ack ignored")
            else:
                x1 = lost_hop("ack", x0, e.actor, e.to, colour, kind, "ack lost")
                cursor[(m, q)] = x1 + MARKER_GAP * d
        elif kind in ("call", "call-deduped"):  # made while the handler runs: just inside its bar
            opened = spans.get((e.actor, m))
            x = opened[0] + d / 3 if opened is not None else max(e.time, cursor.get((m, q), e.time))
            point(kind, x, e.actor, None, str((e.data or {}).get("name", "call")))
        elif kind in ("timeout", "redeliver", "lost", "unroutable", "requeue"):
            key = (m, None) if kind == "unroutable" else (m, q)
            x = max(e.time, cursor.get(key, e.time))
            text = _label(m, e.attempt) if kind in _LABELLED_POINTS else ""
            point(kind, x, e.actor, key, text)
            if kind == "redeliver":
                queued[(m, q)] = x
            elif kind == "lost":
                queued.pop((m, q), None)
        elif kind == "dead-letter":
            x = max(e.time, cursor.get((m, q), e.time))
            point(kind, x, e.actor, (m, q), _label(m, e.attempt))
            queued.pop((m, q), None)
            if e.to:
                cursor[(m, e.to)] = queued[(m, e.to)] = arrow("hop", x, e.actor, e.to, colour)
        elif kind == "confirm-lost":
            x = cursor.get((m, None), e.time)
            point(kind, x, e.actor, None, f"{m}: no confirm" if m else "")
    end = max(t1, max(times, default=t1))
    for (_actor, m), (x0, lane_y, c, attempt) in spans.items():  # still processing when the run stopped
        out.bars["cut"].append((x0, max(end, x0 + d / 3), lane_y, c, _label(m, attempt)))
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
    is down. An outside call (``ctx.call``) is a blue plus inside the bar where the handler made
    it (a hollow pentagon when the outside system recognised its key and did nothing), apart from
    the star of a database write (``ctx.effect``) committed at the bar's end.
    Crashes, lost deliveries and acks, timeouts, redeliveries, dedupe skips, effects,
    dead letters, late acks, handler errors, lost copies and unroutable publishes each have
    their own marker shape, listed in the legend.

    Hops take no virtual time in the simulator (a delivery and the start of processing happen
    at the same instant); they are drawn leaning slightly forward so they can be told apart.

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
    x_lo, x_hi = lay.t0 - pad, (lay.t1 if lay.window else _rightmost(lay)) + pad
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
        ax.add_collection(
            PolyCollection(
                verts,
                facecolors=faces,
                edgecolors=style.INK if hatch else "none",
                linewidths=0.4,
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
    ax.set_ylim(n - 0.5, -0.85 if full else -0.5)
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
    """The right end of everything drawn: markers and hops lean past the last event's time."""
    xs = [lay.t1]
    xs += [x + u for arrows in lay.arrows.values() for a in arrows if a is not None for x, _, u, _, _ in [a]]
    xs += [x for pts in lay.points.values() for x, _ in pts]
    xs += [x1 for bars in lay.bars.values() for _, x1, _, _, _ in bars]
    return max(xs) + lay.slant


def _lane_text(lane: Lane) -> str:
    if lane.role == "worker" or lane.name == lane.role:
        return lane.name
    if lane.role == "queue":
        return f"{lane.name} [queue]"
    if lane.role == "topic":
        return f"{lane.name} (topic)"
    return f"{lane.name} ({lane.role})"


def _draw_effect_names(ax: Any, lay: Layout) -> None:
    """Only the effects' names, each dropped when it repeats the one before it on its lane."""
    before: dict[float, str] = {}
    for x, yy, text, kind in lay.labels:
        if kind in _NAMED_POINTS and before.get(yy) != text:
            before[yy] = text
            ax.text(x, yy + 0.2, text, fontsize=7, ha="center", va="top", color=style.INK, zorder=7, clip_on=True)


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
            ax.text(x, yy + 0.2, text, fontsize=7, ha="center", va="top", color=style.INK, zorder=7, clip_on=True)
        elif kind in ("delivery-lost", "ack-lost"):
            ax.text(
                x + lay.slant, yy, text, fontsize=7, ha="left", va="center", color=style.BAD, zorder=7, clip_on=True
            )
        else:
            ax.text(
                x + lay.slant * 0.6,
                yy + 0.16,
                text,
                fontsize=7,
                ha="left",
                va="top",
                color=style.BAD if kind in ("crash", "lost", "delivery-lost", "ack-lost") else style.INK,
                zorder=7,
                clip_on=True,
            )
