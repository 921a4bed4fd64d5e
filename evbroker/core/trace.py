"""The record of a run: every hop, crash, ack and effect, in the order it happened.

The broker appends to a trace and never reads it back; plots, widgets and checks read it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from itertools import chain
from typing import Any, NamedTuple, overload

from evbroker.errors import EvbrokerError, did_you_mean

#: Every kind of trace event, with what it means. Views use this for legends and tooltips.
KINDS: dict[str, str] = {
    "publish": "a producer (or a handler) published a message",
    "confirm-lost": "the broker got a publish but the producer never heard the confirmation",
    "route": "a topic copied the message into a bound queue",
    "unroutable": "nobody was bound to the topic: the message was dropped",
    "deliver": "the queue handed a copy to a worker",
    "delivery-lost": "a delivery never reached the worker",
    "process": "the worker started processing a copy",
    "complete": "processing finished and its work was committed",
    "handler-error": "the handler raised: a processing failure",
    "effect": "a write to the consumer's own database committed with its work",
    "call": "a call to an outside system happened (a card charge): made when the handler ran, never rolled back",
    "call-deduped": "an outside system saw an idempotency key again and did nothing",
    "ack": "the broker received the ack and forgot the copy",
    "ack-lost": "the worker sent an ack that never arrived",
    "late-ack": "an ack arrived after the copy had timed out: ignored",
    "crash": "a worker died",
    "restart": "a crashed worker came back",
    "timeout": "no ack within ack_timeout: the broker assumes the worker is dead",
    "requeue": "the consumer's connection closed: its unacked copy came back at once (AMQP)",
    "redeliver": "a copy went back to the head of its queue for another attempt",
    "dedup": "work already done was recognised and skipped (or rolled back)",
    "lost": "a copy was lost for good (at-most-once)",
    "dead-letter": "a copy ran out of attempts and was set aside",
}


class TraceEvent(NamedTuple):
    """One thing that happened at one virtual time.

    ``actor`` is who did it (a producer, topic, queue or worker name); ``to`` is the other end
    of a hop (a publish's destination, the queue a topic routed into, the worker a copy was
    delivered to, the queue an ack went back to); ``queue`` is the queue of the copy involved;
    ``data`` carries an effect's fields.
    """

    time: float
    kind: str
    actor: str
    msg: str | None = None
    attempt: int | None = None
    detail: str = ""
    to: str | None = None
    queue: str | None = None
    data: dict | None = None


_COLUMNS = ("time", "kind", "actor", "msg", "attempt", "detail")
_FIELDS = TraceEvent._fields
#: How many cells one event takes in the flat record: the fields of a TraceEvent, in order.
WIDTH = len(_FIELDS)
#: A row (a plain tuple of the nine fields, in order) seen as a TraceEvent.
_as_event = partial(tuple.__new__, TraceEvent)


def row(
    time: float,
    kind: str,
    actor: str,
    msg: str | None = None,
    attempt: int | None = None,
    detail: str = "",
    to: str | None = None,
    queue: str | None = None,
    data: dict | None = None,
) -> tuple:
    """A trace row: the fields of a TraceEvent as a plain tuple, which the record is extended by.

    The simulator's hot paths write the nine-field tuple out directly, in TraceEvent's field
    order; the real broker's workers pickle rows made here into a Redis list.
    """
    return (time, kind, actor, msg, attempt, detail, to, queue, data)


def effect_detail(name: str, data: dict) -> str:
    """An effect's or outside call's detail text in the trace: ``charge order=order-1 amount=10``."""
    return " ".join([name, *(f"{k}={v}" for k, v in data.items())])


def rows(cells: list) -> Iterator[tuple]:
    """The events of a flat record, each as a plain tuple of its nine fields."""
    return zip(*[iter(cells)] * WIDTH, strict=True)


class Trace(Sequence[TraceEvent]):
    """A sequence of :class:`TraceEvent` with filters and a plain-text table.

    ``actors`` maps every name in the run to its role ("producer", "topic", "queue" or
    "worker"), in the order they were declared or first seen.

    Events are stored flat: one list holding the nine fields of every event, one after the
    other, handed out as TraceEvents. That is 72 bytes of the list per event, where a tuple
    per event would take 120 with its pointer, and there is no object per event for Python's
    garbage collector to watch.
    """

    def __init__(self, events: Iterable[TraceEvent] = (), actors: dict[str, str] | None = None) -> None:
        self._cells: list = []
        for e in events:
            row = tuple(e)
            if len(row) != WIDTH:
                raise EvbrokerError(f"Trace: each event needs the {WIDTH} fields of a TraceEvent (got {e!r})")
            self._cells.extend(row)
        self.actors: dict[str, str] = actors if actors is not None else {}

    @classmethod
    def _of_cells(cls, cells: list, actors: dict[str, str]) -> Trace:
        trace = cls(actors=actors)
        trace._cells = cells
        return trace

    @classmethod
    def _of_rows(cls, events: Iterable[tuple], actors: dict[str, str]) -> Trace:
        """A trace of rows given as tuples of the nine fields."""
        return cls._of_cells(list(chain.from_iterable(events)), actors)

    @overload
    def __getitem__(self, index: int) -> TraceEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Trace: ...
    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        cells = self._cells
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return Trace._of_cells(cells[start * WIDTH : max(start, stop) * WIDTH], self.actors)
            picked = range(start, stop, step)
            return Trace._of_rows((cells[i * WIDTH : (i + 1) * WIDTH] for i in picked), self.actors)
        n = len(self)
        i = operator.index(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("trace index out of range")
        return _as_event(cells[i * WIDTH : (i + 1) * WIDTH])

    def __len__(self) -> int:
        return len(self._cells) // WIDTH

    def __iter__(self) -> Iterator[TraceEvent]:
        return map(_as_event, rows(self._cells))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self._cells == other._cells
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def where(
        self,
        kind: str | Iterable[str] | None = None,
        actor: str | Iterable[str] | None = None,
        msg: str | Iterable[str] | None = None,
    ) -> Trace:
        """Events matching every given filter; each filter is one value or several.

        >>> b.trace.where(kind="effect", msg="m1")        # doctest: +SKIP
        """
        for what, value, example in (
            ("kind", kind, "'deliver'"),
            ("actor", actor, "'billing-1'"),
            ("msg", msg, "'m1'"),
        ):
            _check_filter(what, value, example)
        kinds = _as_set(kind)
        if kinds:
            for k in kinds:
                if k not in KINDS:
                    raise EvbrokerError(
                        f"trace.where(kind=...) got unknown kind {k!r}{did_you_mean(k, KINDS)}; "
                        f"kinds are {', '.join(KINDS)}"
                    )
        actors, msgs = _as_set(actor), _as_set(msg)
        if actors:
            unknown = [a for a in actors if a not in self.actors]
            if unknown and self.actors:
                a = unknown[0]
                raise EvbrokerError(
                    f"trace.where(actor=...) got {a!r}, which is not in this run{did_you_mean(a, self.actors)}; "
                    f"actors are {', '.join(self.actors)}"
                )
        matching = [
            r
            for r in rows(self._cells)
            if (not kinds or r[1] in kinds) and (not actors or r[2] in actors) and (not msgs or r[3] in msgs)
        ]
        return Trace._of_rows(matching, self.actors)

    def kinds(self) -> list[str]:
        """The kinds present in this trace, in first-seen order."""
        return list(dict.fromkeys(self._cells[1::WIDTH]))

    def to_records(self) -> list[dict[str, Any]]:
        """Every event as a plain dict (for pandas, JSON or a test)."""
        return [dict(zip(_FIELDS, r, strict=True)) for r in rows(self._cells)]

    def table(self, limit: int | None = None) -> str:
        """A plain-text table of the events (time, kind, actor, msg, attempt, detail)."""
        events = list(self if limit is None else self[:limit])
        cells = [_COLUMNS] + [
            (
                f"{e.time:g}",
                e.kind,
                e.actor,
                e.msg or "",
                "" if e.attempt is None else str(e.attempt),
                _detail(e),
            )
            for e in events
        ]
        widths = [max(len(r[i]) for r in cells) for i in range(len(_COLUMNS) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in cells]
        if limit is not None and len(self) > limit:
            lines.append(f"... {len(self) - limit} more events")
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        if not self._cells:
            return "<Trace: no events yet; call b.run()>"
        return self.table(limit=40)


def _detail(e: TraceEvent) -> str:
    parts = []
    if e.to is not None:
        parts.append(f"-> {e.to}")
    if e.detail:
        parts.append(e.detail)
    return " ".join(parts)


_WHAT = {"kind": "kinds", "actor": "actor names", "msg": "message ids"}


def _check_filter(what: str, value: object, example: str) -> None:
    """A filter is None, a string, or a list of strings: ``where(msg=1)`` is refused, not matched against nothing."""
    if value is None or isinstance(value, str):
        return
    items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    bad = next((v for v in items if not isinstance(v, str)), None)
    if bad is not None or not isinstance(value, (list, tuple, set, frozenset)):
        shown = bad if bad is not None else value
        raise EvbrokerError(
            f"trace.where({what}=...) takes {_WHAT[what]} such as {example} (got {shown!r}), or a list of them"
            + (f"; message ids are strings: {what}='m{shown}'" if what == "msg" and isinstance(shown, int) else "")
        )


def _as_set(value: str | Iterable[str] | None) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {value}
    return set(value)
