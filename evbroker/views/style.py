"""How the views look: a colour-blind safe palette and one marker per kind of trace event.

Colours follow Okabe & Ito's palette, which stays distinguishable under the common forms of
colour blindness. Colour is never the only carrier of meaning: every event kind has its own
marker shape, and message ids are written next to what they label.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Okabe-Ito colours, in the order messages get them (yellow and black are kept for markers).
MESSAGE_COLOURS: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#D55E00",  # vermillion
)
INK = "#222222"
FAINT = "#9a9a9a"
LANE_LINE = "#c8c8c8"
BAND = "#f3f3f3"
DOWN = "#bdbdbd"
BAD = "#D55E00"  # vermillion: something went wrong
NOTE = "#F0E442"  # yellow: an effect happened
CALL = "#56B4E9"  # sky blue: an outside call happened (never rolled back)

#: Figure width that fits a notebook cell, in inches.
NOTEBOOK_WIDTH = 10.0
#: Resolution the widgets render at.
WIDGET_DPI = 96


@dataclass(frozen=True, slots=True)
class Marker:
    """How one kind of trace event is drawn: marker shape, size, fill and legend text."""

    marker: str
    size: float
    face: str
    edge: str
    label: str


#: One marker per event kind drawn as a point. Shapes differ, so the legend works in grey too.
MARKERS: dict[str, Marker] = {
    "crash": Marker("X", 11, BAD, INK, "crash (worker died)"),
    "delivery-lost": Marker("v", 9, "white", BAD, "delivery lost on the way"),
    "ack-lost": Marker("^", 9, "white", BAD, "ack lost on the way back"),
    "timeout": Marker("s", 8, "white", INK, "timeout: no ack in time"),
    "redeliver": Marker("$\u21bb$", 13, INK, INK, "redelivery (attempt + 1)"),
    "dedup": Marker("D", 8, "white", "#009E73", "dedupe: done before, skipped"),
    "effect": Marker("*", 14, NOTE, INK, "effect: own database write, committed"),
    "call": Marker("P", 11, CALL, INK, "outside call: happened, never rolled back"),
    "call-deduped": Marker("p", 10, "white", "#009E73", "outside call: key seen, nothing done"),
    "requeue": Marker("d", 9, "white", INK, "requeue: connection closed, back at once"),
    "dead-letter": Marker("$\u2620$", 14, INK, INK, "dead letter (out of tries)"),
    "late-ack": Marker("o", 8, "white", FAINT, "late ack: ignored"),
    "handler-error": Marker("$\u26a1$", 14, BAD, BAD, "handler error (raised)"),
    "lost": Marker("$\u2716$", 12, BAD, BAD, "lost for good"),
    "unroutable": Marker("$\u2298$", 13, INK, INK, "unroutable: nobody bound"),
    "confirm-lost": Marker("<", 9, "white", BAD, "publish confirm lost"),
}

#: Where each point marker sits: on the lane of the event's actor, or of the other end.
HOP_KINDS = ("publish", "route", "deliver", "ack")


def message_colour(index: int) -> str:
    """The colour of the ``index``-th message (cycling through the palette)."""
    return MESSAGE_COLOURS[index % len(MESSAGE_COLOURS)]
