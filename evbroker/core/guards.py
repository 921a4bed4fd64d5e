"""What the broker does when the code it runs goes wrong: handler bugs, handler misuse, loops.

The broker calls these on its rare paths (an exception, a refused call), so its hot paths
stay as they are. Each one keeps the broker's state consistent and says what happened in
the learner's terms.
"""

from __future__ import annotations

import traceback
import warnings
from typing import TYPE_CHECKING, Any

from evbroker.core.trace import WIDTH, rows
from evbroker.errors import EvbrokerError, is_real, one_of

if TYPE_CHECKING:
    from evbroker.core.broker import Broker, _Copy, _Queue, _Worker
    from evbroker.core.message import Context, Message

#: How ``Broker(handler_errors=...)`` reports a handler that raises (see :class:`HandlerFailed`).
HANDLER_ERRORS = ("warn", "raise", "record")
#: How long a chain of publications may get, each published by a handler while handling the
#: one before, before the broker calls it a runaway loop.
MAX_CHAIN = 1000
#: The longest wait a retry backoff grows to, unless ``retry_delay`` itself is longer: past
#: it, virtual times get so large that an ``ack_timeout`` added to them vanishes in rounding.
MAX_RETRY_DELAY = 3600.0
#: ``run()`` looks at its backlog every this many events (about half a second of CPU).
WATCH_EVERY = 50_000
#: A backlog (scheduled items plus copies waiting in queues) this large that grew over each of
#: the last ``WATCH_ROUNDS`` looks is a run publishing faster than it can ever finish.
WATCH_BACKLOG = 100_000
WATCH_ROUNDS = 3


class HandlerFailed(UserWarning):
    """A handler raised: its own exception and traceback, shown at its first failure.

    The broker's side of the story (a processing failure, then a redelivery, a dead letter
    or a loss) is in the trace as usual, kind ``"handler-error"``, with the traceback kept
    in the event's ``data["traceback"]``.

    WHY A WARNING, AND WHEN. A handler bug is the news: the learner should see the exception
    and the line that raised it at once, not after a hundred redeliveries end in "cannot
    settle". But lessons also fail handlers on purpose (a poison message, a gateway that is
    down), and a notebook must stay deterministic and quiet. So, with the default
    ``Broker(handler_errors="warn")``:

    - the first failure of each handler in a broker warns, once, with the traceback;
    - a queue with ``max_deliveries`` does not warn: a delivery limit says failures are
      expected, and the dead letters tell the story (as an SQS redrive policy does);
    - ``NotImplementedError`` does not warn: it is an exercise stub not filled in yet, and the
      checks say so.

    ``Broker(handler_errors="record")`` keeps only the trace (for runs that fail on purpose);
    ``handler_errors="raise"`` stops the run at the first failure with the handler's own
    exception as the cause, so the notebook shows its traceback.
    """


def check_handler_errors(value: object) -> str:
    if value not in HANDLER_ERRORS:
        raise one_of("Broker(handler_errors=...)", value, HANDLER_ERRORS)
    return value  # type: ignore[return-value]


def handler_traceback(error: BaseException) -> str:
    """The handler's own frames of ``error``'s traceback (the broker's frames left out), as text.

    A notebook cell's file name holds the kernel's process id; it is shown as ``<cell>`` so
    the text is the same on every run.
    """
    frames = traceback.extract_tb(error.__traceback__)
    frames = [f for f in frames if "/evbroker/core/" not in f.filename.replace("\\", "/")] or frames
    lines = []
    for f in frames:
        name = "<cell>" if "ipykernel_" in f.filename or f.filename.startswith("<") else f.filename
        lines.append(f'  File "{name}", line {f.lineno}, in {f.name}')
        if f.line:
            lines.append(f"    {f.line.strip()}")
    lines.append(f"{type(error).__name__}: {error}")
    return "\n".join(lines)


def _failing_line(error: BaseException) -> int:
    """The line number the handler raised from (its innermost frame outside the broker)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/evbroker/core/" not in f.filename]
    return (frames[-1].lineno or 0) if frames else 0


def _handler_name(w: _Worker) -> str:
    return getattr(w.handler, "__name__", type(w.handler).__name__)


def on_handler_error(b: Broker, w: _Worker, c: _Copy, attempt: int, error: BaseException) -> dict:
    """A handler raised (an ordinary exception): warn or stop as ``b.handler_errors`` says.

    Returns the data kept on the trace's ``handler-error`` event.
    """
    text = handler_traceback(error)
    mode = b.handler_errors
    name = _handler_name(w)
    if mode == "record" or isinstance(error, NotImplementedError):
        return {"error": type(error).__name__, "traceback": text}
    first = (w.queue.name, name) not in b._failed_handlers
    b._failed_handlers.add((w.queue.name, name))
    story = (
        f"handler {name} (worker {w.name}) raised {type(error).__name__} on {c.id} "
        f"(attempt {attempt}, queue {w.queue.name!r}): {error}\n"
        f"Traceback of the handler (most recent call last):\n{text}\n"
    )
    if first and w.queue.max_deliveries is None:
        warnings.warn_explicit(
            story
            + "The broker takes this for a processing failure and "
            + ("drops the copy (at-most-once)" if w.queue.guarantee == "at-most-once" else "redelivers the copy")
            + "; that story is in b.trace (kind 'handler-error'). Failing on purpose? "
            "Broker(handler_errors='record') keeps the trace without this warning; "
            "handler_errors='raise' stops the run at the failure.",
            HandlerFailed,
            f"handler {name}",
            _failing_line(error),
            module="evbroker",
        )
    return {"error": type(error).__name__, "traceback": text}


def handler_refused(b: Broker, w: _Worker, c: _Copy, attempt: int) -> None:
    """An EvbrokerError came out of a handler (a refused call): undo the delivery, so nothing
    is left half-done. The worker is free, the copy is back at the head of its queue (the
    delivery counts: the handler did run), and the next ``run()`` tries it again (and meets the same error) rather
    than returning quietly with the copy stuck."""
    q = c.queue
    if w.state == "busy" and w.current is c:
        w.state = "idle"
        q.free += 1
        w.current = None
    if c.awaiting == attempt:
        c.awaiting = 0
        q.inflight -= 1
    q.ready.appendleft(c)
    b._stalled[q.name] = q


def stop_at_failure(b: Broker, w: _Worker, c: _Copy, attempt: int, error: Exception) -> None:
    """``handler_errors="raise"``: record the failure, put the copy back, stop with the handler's exception."""
    q = c.queue
    text = handler_traceback(error)
    b._events.extend(
        (
            b._clock.now,
            "handler-error",
            w.name,
            c.id,
            attempt,
            f"handler raised {type(error).__name__}: {error}",
            None,
            q.name,
            {"error": type(error).__name__, "traceback": text},
        )
    )
    handler_refused(b, w, c, attempt)
    raise EvbrokerError(
        f"handler {_handler_name(w)} (worker {w.name}) raised {type(error).__name__} on {c.id} "
        f"(attempt {attempt}, queue {q.name!r}): {error}\n"
        f"Traceback of the handler (most recent call last):\n{text}\n"
        "The run stops here (Broker(handler_errors='raise')); fix the handler and run again: the copy is "
        "back at the head of its queue."
    ) from error


def warn_effect_name(name: object, effects: list) -> None:
    """``b.effects('chrage')``: no effect has that name, but one is close: say so."""
    names = list(dict.fromkeys(e.name for e in effects))
    if not isinstance(name, str):
        return
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    if close:
        warnings.warn(
            f"b.effects({name!r}): no effect is called {name!r}, but {close[0]!r} is; did you mean "
            f"b.effects({close[0]!r})? (effects so far: {', '.join(names)})",
            EffectNameWarning,
            stacklevel=3,
        )


class EffectNameWarning(UserWarning):
    """``b.effects(name)`` found nothing, and the name is close to one that exists (a typo?)."""


def claim_lost(b: Broker, w: _Worker, c: _Copy, attempt: int) -> None:
    """The work was rolled back over a ``ctx.remember(key, when="claim")``: the delivery fails
    (a nack), so the copy comes back and the handler decides again with what is committed now."""
    q = c.queue
    w.state = "idle"
    q.free += 1
    w.current = None
    if q.guarantee == "at-most-once":
        b._lose(c, "its claim was taken meanwhile and at-most-once never redelivers")
    elif c.awaiting == attempt:
        b._settle(c)
        b._fail(c, "its claim was taken meanwhile: decide again")
    if w.backlog:  # copies pushed to it meanwhile (prefetch > 1) are next
        b._take_backlog(w)
    b._dispatch(q)


def in_handler(b: Broker, call: str) -> EvbrokerError:
    """A handler called ``b.run()`` or ``b.publish()``: refuse, pointing at ``ctx.publish``."""
    w = b._handling
    where = f"handler {_handler_name(w)} (worker {w.name})" if w is not None else "a handler"
    if call == "run":
        why = (
            "b.run() inside a handler would run the clock from inside one of its own events (time would "
            "run backwards for the rest of this delivery). The broker runs handlers; a handler only reacts"
        )
    else:
        why = (
            "b.publish() inside a handler would publish at once, outside the handler's commit: a rolled-back "
            "or crashed attempt would still have published"
        )
    return EvbrokerError(
        f"{where} called b.{call}(): {why}. Use ctx.publish(dest, payload, key=...) to publish from a handler: "
        "it is sent when the work commits, with the effects (an outbox)"
    )


def call_predicate(b: Broker, chance: Any, msg: Message) -> bool:
    """Call a fault predicate; if it raises, say which worker, message and predicate."""
    try:
        return bool(chance(msg))
    except EvbrokerError:
        _release(b, msg)
        raise
    except Exception as exc:
        _release(b, msg)
        fault, workers = "a fault", []
        q = b._queues.get(msg.queue) if msg.queue is not None else None
        for w in q.workers if q is not None else b._workers.values():
            for name in w.faults.active():
                if getattr(w.faults, name) is chance:
                    fault = f"Faults({name}=...)"
                    workers.append(w.name)
        who = f"worker {', '.join(dict.fromkeys(workers))}" if workers else "a publish"
        raise EvbrokerError(
            f"{who}: the predicate {fault} ({getattr(chance, '__name__', chance)}) raised "
            f"{type(exc).__name__}: {exc} on {msg.id} (attempt {msg.attempt}, payload {msg.payload!r}); "
            "a fault predicate takes the message and returns True or False, e.g. "
            "lambda m: m.id == 'm2' and m.attempt == 1"
        ) from exc


def _release(b: Broker, msg: Message) -> None:
    """A callable the broker runs for a delivery failed: free the worker holding it, if any."""
    for w in b._workers.values():
        c = w.current
        if c is not None and c.id == msg.id and w.attempt == msg.attempt and c.queue.name == msg.queue:
            handler_refused(b, w, c, w.attempt)
            return


def call_service_time(b: Broker, w: _Worker, msg: Message) -> Any:
    """Call a worker's service_time(msg); if it raises, say which worker, message and callable."""
    st = w.service_time
    try:
        value = st(msg)  # type: ignore[operator]
        if not is_real(value) or value <= 0:
            _release(b, msg)  # the broker's check that follows says what is wrong with it
        return value
    except EvbrokerError:
        _release(b, msg)
        raise
    except Exception as exc:
        _release(b, msg)
        raise EvbrokerError(
            f"worker {w.name!r}: service_time {getattr(st, '__name__', st)}(msg) raised "
            f"{type(exc).__name__}: {exc} on {msg.id} (attempt {msg.attempt}, payload {msg.payload!r}); "
            "it must return how long this message takes, e.g. lambda m: 2 if m.payload['big'] else 1"
        ) from exc


def retry_delay(q: _Queue, failures: int) -> float:
    """``retry_delay * retry_backoff ** (failures - 1)``, capped (see :data:`MAX_RETRY_DELAY`)."""
    if not q.retry_delay:
        return 0.0
    cap = max(MAX_RETRY_DELAY, q.retry_delay)
    if q.retry_backoff > 1 and failures > 1:
        # Stop before the power overflows: past the cap it no longer matters.
        steps = 0
        delay = q.retry_delay
        while steps < failures - 1 and delay < cap:
            delay *= q.retry_backoff
            steps += 1
        return min(delay, cap)
    return min(q.retry_delay * q.retry_backoff ** (failures - 1), cap)


def dedupe_id(b: Broker, c: _Copy) -> Any:
    """What an exactly-once queue dedupes a copy by: its message id, or, for a copy another
    queue dead-lettered into it, the id and that queue (two queues can dead-letter two copies
    of one message into a shared dead-letter queue: both must arrive)."""
    topic = c.topic
    if topic != c.queue.name and topic in b._queues:
        return (c.id, topic)
    return c.id


def publish_outbox(b: Broker, w: _Worker, c: _Copy, ctx: Context) -> None:
    """Publish what a committed handler published, remembering how long each chain of
    handler-to-handler publications is (see :func:`check_chain`)."""
    parent = b._chains.get(c.id)
    depth = 1 if parent is None else parent[0] + 1
    for dest, payload, key in ctx.publications:
        mid = b._new_id()
        b._chains[mid] = (depth, c.id)
        b._do_publish(mid, dest, payload, key, w.name, w.faults, 0, None)


def check_chain(b: Broker, msg: Message, dest: str, worker: str) -> None:
    """Refuse a ``ctx.publish`` that would make a chain of publications longer than
    :data:`MAX_CHAIN`: a handler publishing into its own flow for ever (a runaway loop)."""
    link = b._chains.get(msg.id)
    if link is None or link[0] < MAX_CHAIN:
        return
    hops = [(worker, dest)]
    publishers = {e[3]: (e[2], e[6]) for e in rows(b._events) if e[1] == "publish"}
    mid: str | None = msg.id
    while mid is not None and len(hops) < 12:
        hops.append(publishers.get(mid, ("?", "?")))
        mid = b._chains.get(mid, (0, None))[1]
    loop = list(dict.fromkeys(hops))
    shown = "; ".join(f"{by} publishes into {to!r}" for by, to in reversed(loop))
    raise EvbrokerError(
        f"runaway loop: {msg.id} is the {link[0]}th message in a chain where each was published by a handler "
        f"handling the one before, and worker {worker} publishes the next into {dest!r}. The loop: {shown}. "
        f"The broker stopped it after {MAX_CHAIN} hops (a real broker would let it run until something "
        "fills up); give the loop an end, e.g. a hop count in the payload, or stop with b.run(until=...)"
    )


def busiest_publisher(b: Broker) -> str:
    """Which handler published the most, and where: the likely loop when a run does not settle."""
    counts: dict[tuple[str, str], int] = {}
    actors = b._actors
    for e in rows(b._events[-200_000 * WIDTH :]):
        if e[1] == "publish" and actors.get(e[2]) == "worker":
            pair = (e[2], e[6])
            counts[pair] = counts.get(pair, 0) + 1
    if not counts:
        return ""
    (worker, dest), n = max(counts.items(), key=lambda kv: kv[1])
    handler = getattr(b._workers[worker].handler, "__name__", "handler")
    return f" The likely loop: worker {worker} (handler {handler}) published into {dest!r} {n} times."


def run_watched(b: Broker, until: float | None) -> int:
    """Run ``b``'s clock for up to ``b.max_events`` events; return how many happened.

    Every :data:`WATCH_EVERY` events it looks at the backlog. Handlers that publish more than
    they consume (each message publishing two, say) make a backlog that only grows: such a
    run is stopped after a few looks, within seconds and a bounded memory, with an error
    naming the busiest publishing handler, instead of filling memory until ``max_events``.
    A large workload published up front has a large backlog too, but one that shrinks.
    """
    clock = b._clock
    limit = b.max_events
    total = 0
    grew = 0
    last = None
    while total < limit:
        step = min(WATCH_EVERY, limit - total)
        done = clock.run(until, step)
        total += done
        if done < step:
            break
        backlog = len(clock) + sum(len(q.ready) for q in b._queues.values())
        grew = grew + 1 if last is not None and backlog > last else 0
        last = backlog
        if grew >= WATCH_ROUNDS and backlog > WATCH_BACKLOG:
            raise EvbrokerError(
                f"runaway run: after {total} events (now t={clock.now:g}) {backlog} messages and timers are "
                f"waiting, and the pile grew at each of the last {WATCH_ROUNDS} checks: handlers publish "
                "faster than the run can ever finish." + busiest_publisher(b) + " Give the loop an end "
                "(publish fewer messages than you receive), or stop at a time with b.run(until=...)."
            )
    return total
