"""The simulated broker: topics, queues, workers, acks, redelivery and dead letters.

Everything that changes broker state lives in this file; the scheduler only calls back into
it at virtual times, and the trace only records what happened. Real-broker behaviour each
knob mirrors is named in the docstrings.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from evbroker.core import guards, setup_checks
from evbroker.core.dispatch import UNSET, push_dispatch
from evbroker.core.faults import NO_FAULTS, Faults, check_publish_faults
from evbroker.core.message import Context, Effect, Message
from evbroker.core.outside import CALL, CALL_DEDUPED, OutsideSystems
from evbroker.core.payloads import ATOMS, snapshot
from evbroker.core.presets import check_crash_detection, check_prefetch, get_preset
from evbroker.core.scheduler import COMPLETE, PUBLISH, RESTART, SKIP, TIMEOUT, Entry, Scheduler
from evbroker.core.trace import Trace
from evbroker.core.trace import effect_detail as _effect_detail
from evbroker.core.trace import row as _row
from evbroker.core.validate import (
    check_hashable,
    keywords_checked,
    refuse_lazy_result,
)
from evbroker.errors import EvbrokerError, check_positive, did_you_mean, is_whole, one_of

GUARANTEES = ("at-most-once", "at-least-once", "exactly-once")
#: How many times a publish is retried when its confirmation keeps getting lost.
MAX_PUBLISH_RETRIES = 3
PRODUCER = "producer"
_INF = float("inf")
# Messages are NamedTuples; the hot path builds them with the plain tuple constructor:
# _new(Message, (every field, in order)) is the same object as Message(...), made without the
# keyword-handling __new__ that NamedTuple generates, which costs more than the tuple itself.
_new = tuple.__new__


@dataclass(slots=True)
class _Copy:
    """One message's copy in one queue, as the broker tracks it."""

    id: str
    payload: Any
    key: Any
    topic: str
    queue: _Queue
    attempt: int = 0  # deliveries so far; an ack or a timeout for an earlier attempt is stale
    awaiting: int = 0  # the attempt whose ack the broker is waiting for; 0: none in flight
    last_failure: str = ""
    duration: float = 0.0  # how long the latest delivery's processing takes
    holder: Any = None  # the worker the latest delivery went to
    committed: bool = False  # some delivery of it has committed its work


@dataclass(slots=True)
class _Queue:
    name: str
    guarantee: str
    ack_timeout: float
    max_deliveries: int | None
    dead_letter: str | None
    retry_delay: float
    retry_backoff: float
    ready: deque = field(default_factory=deque)
    workers: list = field(default_factory=list)
    rr: int = 0
    free: int = 0  # how many of its workers are idle right now
    waiting: int = 0  # copies between a failure and their delayed redelivery
    inflight: int = 0
    # Ack deadlines of deliveries, (time, seq, copy, attempt), in time order since ack_timeout
    # is fixed per queue; `timer` is the one scheduled item, for the earliest that still counts.
    deadlines: deque = field(default_factory=deque)
    timer: Entry | None = None
    keys: set = field(default_factory=set)  # the service's dedupe store (ctx.remember)
    ids: set = field(default_factory=set)  # exactly-once: message ids committed
    dead_letters: list = field(default_factory=list)
    copies: int = 0
    deliveries: int = 0
    processed: int = 0
    unique: int = 0  # distinct copies among the processed ones (a copy is one message in one queue)
    lost: int = 0
    dead_lettered: int = 0
    acked: int = 0
    redeliveries: int = 0
    crash_detection: str = "timeout"  # or "disconnect": a dead consumer's unacked copies come back at once
    default_prefetch: int | None = 1  # what workers get without prefetch= (a preset may change it)
    push: bool = False  # some worker has prefetch != 1: push dispatch (see dispatch.py)


@dataclass(slots=True)
class _Worker:
    name: str
    queue: _Queue
    handler: Callable[[Message, Context], Any]
    service_time: float | Callable[[Message], float]
    faults: Faults
    restart_after: float
    takes: str = ""  # the trace's "takes 1" for a fixed service time
    state: str = "idle"  # "idle" | "busy" | "down"; the queue's `free` counts the idle ones
    outages: int = 0  # outages under way: the worker stays down until the last one ends
    current: _Copy | None = None  # the copy being processed
    attempt: int = 0  # and which delivery of it
    done: Entry | None = None  # its scheduled completion, cancelled if the worker dies first
    midway: Entry | None = None  # a scheduled crash during processing
    restart: Entry | None = None  # its scheduled restart after a crash
    prefetch: int | None = 1  # unacked copies it may hold; None: no limit
    backlog: deque = field(default_factory=deque)  # pushed copies waiting for it: (copy, attempt, msg)


class Broker(setup_checks.DeclaredNames):
    """A deterministic, in-memory message broker on a virtual clock.

    >>> b = Broker(seed=0)
    >>> b.topic("user.signed_up")
    >>> b.queue("email", bind="user.signed_up")
    >>> b.worker("email", lambda msg, ctx: ctx.effect("email", to=msg.payload["user"]))
    ['email-1']
    >>> b.publish("user.signed_up", {"user": "ada"})
    'm1'
    >>> b.run()
    >>> [e.data for e in b.effects("email")]
    [{'to': 'ada'}]

    ``settle_limit`` is how many deliveries of one copy (with no ``max_deliveries``) count as
    "this will never settle"; ``max_events`` bounds one ``run()`` call, so a handler that
    publishes forever stops with an error instead of hanging the notebook (and a chain of
    handlers publishing into each other is stopped after ``guards.MAX_CHAIN`` hops, naming the
    loop). ``handler_errors`` says how a handler that raises is reported: "warn" (its
    traceback, at its first failure), "record" (the trace only) or "raise" (stop the run);
    see :class:`~evbroker.core.guards.HandlerFailed` for why.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        settle_limit: int = 100,
        max_events: int = 5_000_000,
        handler_errors: str = "warn",
    ) -> None:
        setup_checks.check_seed(seed)
        setup_checks.check_limit("settle_limit", settle_limit)
        setup_checks.check_limit("max_events", max_events)
        self.seed = seed
        self.rng = random.Random(seed)
        self.settle_limit = settle_limit
        self.max_events = max_events
        self._clock = Scheduler()
        self._topics: dict[str, list[_Queue]] = {}
        self._queues: dict[str, _Queue] = {}
        self._workers: dict[str, _Worker] = {}
        self._worker_counts: dict[str, int] = {}
        self._actors: dict[str, str] = {}
        self._events: list = []  # the trace, flat: the nine fields of each row in turn (see _row)
        self._trace = Trace._of_cells(self._events, self._actors)  # a live view of the record
        # The callbacks scheduled for every message, bound once: a scheduled item then holds no
        # object of its own that the garbage collector would have to keep scanning.
        self._on_publish = self._do_publish
        self._on_complete = self._complete
        self._on_deadline = self._deadline
        self._effects: list[Effect] = []
        self._outside = OutsideSystems()
        self._next_id = 0
        self.handler_errors = guards.check_handler_errors(handler_errors)
        self._failed_handlers: set[tuple[str, str]] = set()  # (queue, handler) that raised already
        self._handling: _Worker | None = None  # the worker whose handler is running right now
        self._publish_faults: list[Faults] = []  # faults handed to publish(), checked by run()
        self._stalled: dict[str, _Queue] = {}  # queues holding a copy a refused handler call put back
        self._chains: dict[str, tuple[int, str]] = {}  # handler-published id -> (chain length, parent id)

    # ------------------------------------------------------------------ set-up

    @property
    def now(self) -> float:
        """The current virtual time."""
        return self._clock.now

    @property
    def trace(self) -> Trace:
        """Everything that happened so far, as an :class:`~evbroker.Trace`."""
        return self._trace

    def topic(self, name: str) -> None:
        """Declare a topic: every queue bound to it gets its own copy of each message.

        Mirrors a RabbitMQ fanout exchange, an SNS topic, or a Kafka topic read by several
        consumer groups.
        """
        self._check_new_name(name, "topic")
        self._topics[name] = []
        self._actors[name] = "topic"

    @keywords_checked
    def queue(
        self,
        name: str,
        bind: str | Iterable[str] | None = None,
        *,
        guarantee: str = "at-least-once",
        ack_timeout: float = UNSET(5.0),
        max_deliveries: int | None = UNSET(None),
        dead_letter: str | None = None,
        retry_delay: float = 0.0,
        retry_backoff: float = 1.0,
        crash_detection: str = UNSET("timeout"),
        like: str | None = None,
    ) -> None:
        """Declare a queue: each copy in it goes to exactly one of its workers.

        - ``bind``: a topic name or a list of them; the queue gets a copy of every message
          published there. A queue can also be published to directly by name.
        - ``guarantee``: "at-most-once" (auto-ack: the broker forgets a copy once sent),
          "at-least-once" (manual ack after processing, like RabbitMQ ``basic.ack`` or SQS
          ``DeleteMessage``), "exactly-once" (exactly-once *processing*: at-least-once delivery
          plus a dedupe record of message ids that the consumer writes in the same transaction
          as its own database writes, ``ctx.effect``; an outside call, ``ctx.call``, is not in
          that transaction and needs an idempotency key).
        - ``ack_timeout``: how long the broker waits for an ack before it redelivers (SQS's
          visibility timeout, RabbitMQ's consumer timeout, Kafka's ``max.poll.interval.ms``).
        - ``max_deliveries``: after this many failed deliveries the copy is dead-lettered
          (SQS ``maxReceiveCount``, RabbitMQ quorum queues' ``delivery-limit``).
        - ``dead_letter``: a queue that receives dead-lettered copies (a DLQ); without one,
          they are kept aside and listed by :meth:`dead_letters`.
        - ``retry_delay`` / ``retry_backoff``: wait before a failed copy goes back to the head
          of the queue: ``retry_delay * retry_backoff ** (n - 1)`` before the n-th redelivery.
        - ``crash_detection``: how the queue notices a dead consumer. ``"timeout"`` (default):
          only when ``ack_timeout`` runs out, as SQS (visibility timeout) and Redis Streams
          (idle pending entries) do; a consumer that is alive but slow looks exactly like a dead
          one. ``"disconnect"``: its unacked copies are requeued as soon as its connection
          drops, as AMQP brokers (RabbitMQ) do when a consumer process dies; ``ack_timeout``
          (RabbitMQ's ``consumer_timeout``) is then only for consumers that hang.
        - ``like``: a preset of a real broker's documented defaults, ``"rabbitmq"``,
          ``"rabbitmq-quorum"``, ``"sqs"`` or ``"redis-streams"`` (see
          :mod:`evbroker.core.presets` for each value and its source); it sets
          ``crash_detection``, ``ack_timeout``, ``max_deliveries`` and the workers' default
          ``prefetch``. Arguments you pass yourself win over the preset.
        """
        self._check_new_name(name, "queue")
        if guarantee not in GUARANTEES:
            raise one_of("guarantee", guarantee, GUARANTEES)
        if isinstance(bind, str) and bind.lower() in GUARANTEES and bind not in self._topics:
            raise EvbrokerError(
                f"queue {name!r}: {bind!r} was given as the second argument, which is bind (the topic); a "
                f"guarantee is given by name: b.queue({name!r}, guarantee={bind.lower()!r})"
            )
        preset = None if like is None else get_preset(like)
        detection_given = not isinstance(crash_detection, UNSET)
        if guarantee == "at-most-once" and detection_given:
            raise EvbrokerError(
                f"queue {name!r}: crash_detection={crash_detection!r} means nothing under at-most-once: the "
                "broker forgets a copy once it is sent, so it never waits to notice a dead consumer and never "
                "redelivers. Drop crash_detection=, or use guarantee='at-least-once'"
            )
        limits = [
            given for given, value in (("max_deliveries", max_deliveries), ("dead_letter", dead_letter))
            if value is not None and not isinstance(value, UNSET)
        ]
        if guarantee == "at-most-once" and limits:
            given = limits[0]
            raise EvbrokerError(
                f"queue {name!r}: {given}= has no effect on an at-most-once queue: it never redelivers (the "
                "broker forgets a copy once sent), so no copy ever runs out of deliveries or reaches a dead-letter "
                "queue. Use guarantee='at-least-once' to retry and dead-letter, or drop "
                f"{given}="
            )
        if isinstance(ack_timeout, UNSET):
            ack_timeout = preset.ack_timeout if preset else ack_timeout.value
        if isinstance(max_deliveries, UNSET):
            at_most_once = guarantee == "at-most-once"  # never redelivers: no limit to count
            max_deliveries = preset.max_deliveries if preset and not at_most_once else max_deliveries.value
        if not detection_given:
            crash_detection = preset.crash_detection if preset else crash_detection.value
        crash_detection = check_crash_detection(name, crash_detection)
        check_positive(
            f"queue {name!r}: ack_timeout",
            ack_timeout,
            hint="; it is how long the broker waits for an ack before redelivering",
        )
        if max_deliveries is not None and (not is_whole(max_deliveries) or max_deliveries < 1):
            raise setup_checks.max_deliveries_error(name, max_deliveries)
        check_positive(
            f"queue {name!r}: retry_delay", retry_delay, allow_zero=True, hint="; 0 puts a failed copy back at once"
        )
        check_positive(
            f"queue {name!r}: retry_backoff",
            retry_backoff,
            hint="; 1 keeps the delay fixed, 2 doubles it after each failure",
        )
        topics = setup_checks.bind_list(name, bind)
        for t in topics:
            self._check_topic(t, f"queue {name!r}: bind")
        if dead_letter is not None and dead_letter not in self._queues:
            raise EvbrokerError(
                f"queue {name!r}: dead_letter={dead_letter!r} is not a queue"
                f"{did_you_mean(dead_letter, self._queues)}; declare it first with "
                f"b.queue({dead_letter!r})"
            )
        if max_deliveries is not None:
            max_deliveries = int(max_deliveries)
        q = _Queue(
            name, guarantee, float(ack_timeout), max_deliveries, dead_letter, float(retry_delay), float(retry_backoff)
        )
        q.crash_detection = crash_detection
        if preset is not None and guarantee != "at-most-once":
            q.default_prefetch = preset.prefetch
        self._queues[name] = q
        self._actors[name] = "queue"
        for t in dict.fromkeys(topics):
            self._topics[t].append(q)

    def bind(self, queue: str, topic: str) -> None:
        """Bind an existing queue to an existing topic (it gets copies of later publishes)."""
        q = self._get_queue(queue, "bind")
        self._check_topic(topic, f"bind({queue!r}, ...)")
        if q not in self._topics[topic]:
            self._topics[topic].append(q)

    @keywords_checked
    def worker(
        self,
        queue: str,
        handler: Callable[[Message, Context], Any],
        count: int = 1,
        *,
        name: str | None = None,
        service_time: float | Callable[[Message], float] = 1.0,
        faults: Faults | None = None,
        restart_after: float = 2.0,
        prefetch: int | None = UNSET(1),
    ) -> list[str]:
        """Start ``count`` competing consumers on ``queue``; returns their names.

        By default each worker takes one copy at a time (RabbitMQ ``prefetch_count=1``, fair
        dispatch); free workers take turns in registration order. Default names are
        ``"<queue>-1"``, ``"<queue>-2"``... A worker that crashes comes back ``restart_after``
        later, like a restarted pod.

        ``prefetch`` is how many unacked copies a worker may hold: ``1`` (fair dispatch: a copy
        goes only to a free worker), ``n`` or ``None`` (no limit: RabbitMQ's default without
        ``basic.qos``): copies are pushed round-robin as they arrive and wait in the worker's
        own buffer, so a slow worker builds a backlog while the others idle. The default is 1,
        or the queue preset's (``like="rabbitmq"`` has no limit). At-most-once auto-acks, so
        there is nothing for a prefetch to limit (RabbitMQ ignores it for auto-ack consumers).
        """
        q = self._get_queue(queue, "worker")
        if isinstance(prefetch, UNSET):
            prefetch = q.default_prefetch
        else:
            prefetch = check_prefetch(f"worker {queue!r}", prefetch)
            if q.guarantee == "at-most-once" and prefetch != 1:
                raise EvbrokerError(
                    f"worker {queue!r}: prefetch={prefetch!r} means nothing on an at-most-once queue: prefetch "
                    "limits unacked copies, and at-most-once acks each copy as it is sent (RabbitMQ ignores "
                    "basic.qos for auto-ack consumers). Drop prefetch=, or use guarantee='at-least-once'"
                )
        if not is_whole(count) or count < 1:
            raise setup_checks.count_error(queue, count)
        count = int(count)
        faults = setup_checks.check_worker(queue, handler, service_time, faults, restart_after)
        names = setup_checks.worker_names(self._actors, self._worker_counts, queue, name, count)
        for wname in names:
            w = _Worker(wname, q, handler, service_time, faults, float(restart_after))
            w.prefetch = prefetch
            if prefetch != 1:
                q.push = True
            if not callable(service_time):
                w.takes = f"takes {service_time:g}"
            self._workers[wname] = w
            self._actors[wname] = "worker"
            q.workers.append(w)
            q.free += 1
        self._dispatch(q)
        return names

    def outage(self, worker: str, start: float, end: float) -> None:
        """Take a worker (or every worker of a queue) down from ``start`` to ``end``.

        Work in progress at ``start`` is abandoned, as when a pod is killed. Messages that
        arrive meanwhile wait in the queue: the consumer being down loses nothing.
        """
        if worker in self._queues:
            targets = list(self._queues[worker].workers)
        elif worker in self._workers:
            targets = [self._workers[worker]]
        else:
            raise EvbrokerError(
                f"outage: {worker!r} is neither a worker nor a queue"
                f"{did_you_mean(worker, [*self._workers, *self._queues])}; "
                f"workers are {', '.join(self._workers) or '(none yet)'}"
            )
        if not targets:
            raise EvbrokerError(
                f"outage: queue {worker!r} has no workers yet, so the outage would take nobody down; "
                f"declare them first with b.worker({worker!r}, handler), then the outage"
            )
        check_positive("outage: start", start, allow_zero=True)
        check_positive("outage: end", end)
        if start < self.now:
            raise EvbrokerError(
                f"outage: start={start!r} is in the past (now is {self.now:g}); use start >= {self.now:g}"
            )
        if end <= start:
            raise EvbrokerError(
                f"outage: end={end!r} must be after start={start!r}; the worker is down from start to end"
            )
        for w in targets:
            self._clock.at(float(start), RESTART, self._outage_begin, w)
            self._clock.at(float(end), RESTART, self._outage_end, w)

    # ------------------------------------------------------------------ publishing

    def publish(
        self,
        dest: str,
        payload: Any = None,
        at: float | None = None,
        key: Any = None,
        *,
        by: str = PRODUCER,
        faults: Faults | None = None,
    ) -> str:
        """Publish ``payload`` to a topic or a queue, now or ``at`` a later time.

        Returns the message id ("m1", "m2", ...). ``key`` is the business key (an order
        number) that survives producer retries; ``by`` names the producer on the timeline;
        ``faults`` (``lose_confirm``) makes the producer retry with a new message id.

        The payload is copied now (a real client serialises it): editing the object after
        this call, even for a publish ``at`` a later time, does not change the message.
        """
        if self._handling is not None:
            raise guards.in_handler(self, "publish")
        if dest not in self._queues and dest not in self._topics:
            self._check_destination(dest, where="publish")
        now = self._clock.now
        if at is None:
            at = now
        elif not (type(at) in (int, float) and now <= at < _INF):  # the common case needs no more checks
            check_positive("publish: at", at, allow_zero=True)
            if at < now:
                raise EvbrokerError(
                    f"publish: at={at!r} is in the past (now is {now:g}); use at >= {now:g}, or at=None for now"
                )
        if by is not PRODUCER or faults is not None:
            setup_checks.check_publisher(by, faults)
        if faults is not None and faults.active() != ["lose_confirm"]:
            self._publish_faults.append(faults)  # checked at run(), once the workers are declared
        if key is not None and type(key) not in ATOMS:
            check_hashable(key, "publish(..., key=...)")
        if type(payload) not in ATOMS:
            payload = snapshot(payload, "publish: payload")
        self._next_id += 1
        mid = f"m{self._next_id}"
        self._clock.at(float(at), PUBLISH, self._on_publish, mid, dest, payload, key, by, faults)
        return mid

    def _new_id(self) -> str:
        self._next_id += 1
        return f"m{self._next_id}"

    def _do_publish(
        self,
        mid: str,
        dest: str,
        payload: Any,
        key: Any,
        by: str,
        faults: Faults | None,
        retry: int = 0,
        retry_of: str | None = None,
    ) -> None:
        now = self._clock.now
        if by not in self._actors:
            self._actors[by] = "producer"
        events = self._events
        detail = f"retry of {retry_of}" if retry_of else ""
        events.extend((now, "publish", by, mid, None, detail, dest, None, None))
        targets = self._topics.get(dest)
        if targets is None:  # a direct publish to a queue
            self._enqueue(mid, payload, key, dest, self._queues[dest])
        elif not targets:
            events.extend(_row(now, "unroutable", dest, mid, None, "no queue is bound to this topic"))
        else:
            for q in targets:
                events.extend((now, "route", dest, mid, None, "", q.name, q.name, None))
                self._enqueue(mid, payload, key, dest, q)
        if faults is not None and faults.lose_confirm and retry < MAX_PUBLISH_RETRIES:
            probe = Message(mid, payload, key, dest, None, retry + 1)
            if self._draw(faults.lose_confirm, probe):
                events.extend(
                    _row(now, "confirm-lost", by, mid, None, f"will publish again in {faults.retry_after:g}", dest)
                )
                self._clock.at(
                    now + faults.retry_after,
                    PUBLISH,
                    self._on_publish,
                    self._new_id(),
                    dest,
                    payload,
                    key,
                    by,
                    faults,
                    retry + 1,
                    mid,
                )

    def _enqueue(self, mid: str, payload: Any, key: Any, topic: str, q: _Queue) -> None:
        q.copies += 1
        q.ready.append(_Copy(mid, payload, key, topic, q))
        if q.free or q.push:
            self._dispatch(q)

    # ------------------------------------------------------------------ delivery

    def _dispatch(self, q: _Queue) -> None:
        """Hand ready copies to free workers: FIFO, prefetch 1, round robin among free workers."""
        if q.push:  # a worker with prefetch != 1: copies are pushed to workers that have room
            push_dispatch(self, q)
            return
        workers = q.workers
        n = len(workers)
        ready = q.ready
        while ready and q.free:
            rr = q.rr
            for i in range(n):
                w = workers[(rr + i) % n]
                if w.state == "idle":
                    q.rr = (rr + i + 1) % n
                    self._deliver(ready.popleft(), w)
                    break
            else:  # unreachable while q.free counts idle workers; stop rather than spin
                return

    def _deliver(self, c: _Copy, w: _Worker) -> None:
        q = c.queue
        if c.attempt >= self.settle_limit and q.max_deliveries is None:
            q.ready.appendleft(c)  # the broker still holds the copy: stats and a later run() see it
            raise EvbrokerError(
                f"queue {q.name!r} cannot settle: message {c.id} has been delivered {c.attempt} times "
                f"and never acknowledged (last failure: {c.last_failure or 'unknown'}). "
                f"Give the queue a limit, e.g. b.queue({q.name!r}, ..., max_deliveries=3), so the copy "
                f"goes to dead letters, fix the handler or the ack_timeout, or stop earlier with b.run(until=...)."
            )
        clock = self._clock
        events = self._events
        now = clock.now
        c.attempt = attempt = c.attempt + 1
        c.duration = 0.0
        c.holder = w
        q.deliveries += 1
        payload = c.payload if type(c.payload) in ATOMS else snapshot(c.payload)  # a fresh copy per delivery
        msg = _new(Message, (c.id, payload, c.key, c.topic, q.name, attempt))
        events.extend((now, "deliver", q.name, c.id, attempt, "", w.name, q.name, None))
        at_most_once = q.guarantee == "at-most-once"
        if not at_most_once:
            q.inflight += 1
            c.awaiting = attempt
            q.deadlines.append((now + q.ack_timeout, clock.reserve(), c, attempt))
            if q.timer is None:
                self._arm(q)
        f = w.faults
        if f is not NO_FAULTS:
            if f.lose_delivery and self._draw(f.lose_delivery, msg):
                events.extend(
                    _row(now, "delivery-lost", q.name, c.id, attempt, "the worker never got it", w.name, q.name)
                )
                if at_most_once:
                    self._lose(c, "delivery lost")
                elif q.crash_detection == "disconnect":
                    self._requeue_soon(c, attempt, "the connection dropped with the delivery on it")
                return
            if f.crash_before_process and self._draw(f.crash_before_process, msg):
                self._crash(w, "before processing", c, attempt)
                if at_most_once:
                    self._lose(c, "worker crashed before processing")
                return
        if w.state != "idle":  # pushed to a busy worker (prefetch > 1): it waits in the worker's buffer
            w.backlog.append((c, attempt, msg))
            return
        self._process(c, w, attempt, msg)

    def _process(self, c: _Copy, w: _Worker, attempt: int, msg: Message) -> None:
        """The worker starts on a copy it was given: dedupe check, then the handler."""
        q = c.queue
        clock = self._clock
        events = self._events
        now = clock.now
        f = w.faults
        if q.guarantee == "exactly-once" and guards.dedupe_id(self, c) in q.ids:
            self._dedup(
                w,
                c,
                attempt,
                "already processed (its dedupe record was committed with its work): acked without running the handler",
            )
            self._ack(c, w, attempt)
            return
        w.state = "busy"
        q.free -= 1
        w.current = c
        w.attempt = attempt
        ctx = Context(self, msg, w.name, now)
        error: BaseException | None = None
        self._handling = w
        try:
            result = w.handler(msg, ctx)
            if result is not None:
                refuse_lazy_result(result, w.name, c.id, w.handler)
        except EvbrokerError:
            self._handling = None
            guards.handler_refused(self, w, c, attempt)
            raise
        except Exception as exc:  # a processing failure, as the real broker sees it
            error = exc
            if self.handler_errors == "raise":
                self._handling = None
                guards.stop_at_failure(self, w, c, attempt, exc)
        except BaseException:  # KeyboardInterrupt: leave nothing half-done
            self._handling = None
            guards.handler_refused(self, w, c, attempt)
            raise
        self._handling = None
        duration = w.service_time
        if callable(duration):
            duration = self._service_time(w, msg)
        if f is not NO_FAULTS and f.slow and self._draw(f.slow, msg):
            duration += f.slow_by
            detail = f"slow: takes {duration:g} (ack_timeout {q.ack_timeout:g})"
        else:
            detail = w.takes if duration is w.service_time else f"takes {duration:g}"
        c.duration = duration
        events.extend((now, "process", w.name, c.id, attempt, detail, None, q.name, None))
        for row in ctx.calls:  # outside calls the handler made: they happened now, whatever comes next
            events.extend(row)
        if f is not NO_FAULTS and f.crash_during_process and self._draw(f.crash_during_process, msg):
            w.midway = clock.at(now + duration / 2, COMPLETE, self._crash_midway, w, c, attempt)
        w.done = clock.at(now + duration, COMPLETE, self._on_complete, w, c, attempt, msg, ctx, error)

    def _service_time(self, w: _Worker, msg: Message) -> float:
        st = w.service_time
        if not callable(st):
            return st
        value = guards.call_service_time(self, w, msg)
        return check_positive(
            f"worker {w.name!r}: service_time(msg) for {msg.id}",
            value,
            hint="; the service_time callable must return how long this message takes",
        )

    def _complete(
        self, w: _Worker, c: _Copy, attempt: int, msg: Message, ctx: Context, error: BaseException | None
    ) -> None:
        w.done = None
        q = c.queue
        if error is not None:
            w.state = "idle"
            q.free += 1
            w.current = None
            reason = f"handler raised {type(error).__name__}: {error}"
            data = guards.on_handler_error(self, w, c, attempt, error)
            self._events.extend(
                _row(self._clock.now, "handler-error", w.name, c.id, attempt, reason, None, q.name, data)
            )
            if q.guarantee == "at-most-once":
                self._lose(c, reason)
            elif c.awaiting == attempt:  # a nack: no need to wait for the timeout
                self._settle(c)
                self._fail(c, reason)
            if w.backlog:
                self._take_backlog(w)
            self._dispatch(q)
            return
        if self._commit(w, c, attempt, ctx):  # a claim was taken meanwhile: decide again
            guards.claim_lost(self, w, c, attempt)
            return
        f = w.faults
        if f is not NO_FAULTS and f.crash_before_ack and self._draw(f.crash_before_ack, msg):
            self._crash(w, "after processing, before the ack", c, attempt)
            return
        if q.guarantee != "at-most-once":
            if f is not NO_FAULTS and f.lose_ack and self._draw(f.lose_ack, msg):
                self._events.extend(
                    _row(
                        self._clock.now,
                        "ack-lost",
                        w.name,
                        c.id,
                        attempt,
                        "the broker never hears it",
                        q.name,
                        q.name,
                    )
                )
                if q.crash_detection == "disconnect":  # over AMQP only a broken connection loses an ack
                    self._requeue_soon(c, attempt, "the connection dropped with the ack on it")
            else:
                self._ack(c, w, attempt)
        if ctx.remembered:
            for key, when in ctx.remembered:
                if when == "after-ack":
                    q.keys.add(key)
        # The worker is free once its ack has left. Freeing it only now (same instant) keeps a
        # copy it just published into its own queue from reaching it before its ack or crash.
        w.state = "idle"
        q.free += 1
        w.current = None
        if w.backlog:
            self._take_backlog(w)
        if q.ready:
            self._dispatch(q)

    def _commit(self, w: _Worker, c: _Copy, attempt: int, ctx: Context) -> bool:
        """Apply a finished handler's effects, publications and dedupe records, atomically.

        ``attempt`` is the delivery that did the work (the copy may have been redelivered since).
        Returns True when the work was rolled back over a ``"claim"`` key: the delivery fails.
        """
        q = c.queue
        now = self._clock.now
        events = self._events
        conflict = None
        token = guards.dedupe_id(self, c) if q.guarantee == "exactly-once" else c.id
        if q.guarantee == "exactly-once" and token in q.ids:
            conflict = f"{c.id} was committed by another delivery meanwhile"
        else:
            for key, when in ctx.remembered:
                if (when == "commit" or when == "claim") and key in q.keys:
                    conflict = f"key {key!r} was already recorded"
                    if when == "claim":
                        self._dedup(w, c, attempt, f"{conflict}: rolled back, to decide again")
                        return True
                    break
        if conflict:
            rolled = f"{conflict}: rolled back, nothing applied"
            if ctx.calls:
                rolled += " (but its outside calls had already happened: a call is never rolled back)"
            self._dedup(w, c, attempt, rolled)
            if q.guarantee == "at-most-once":  # forgotten once sent, and now its work is void too
                self._lose(c, "its work was rolled back and at-most-once never redelivers")
            return
        for name, data in ctx.effects:
            self._effects.append(Effect(now, name, w.name, q.name, c.id, attempt, c.key, data))
            events.extend(
                _row(
                    now,
                    "effect",
                    w.name,
                    c.id,
                    attempt,
                    _effect_detail(name, data),
                    None,
                    q.name,
                    {"name": name, **data},
                )
            )
        for key, when in ctx.remembered:
            if when == "commit" or when == "claim":
                q.keys.add(key)
        if q.guarantee == "exactly-once":
            q.ids.add(token)
        q.processed += 1
        if not c.committed:  # its first commit: redeliveries of one copy are its duplicates
            c.committed = True
            q.unique += 1
        events.extend((now, "complete", w.name, c.id, attempt, "", None, q.name, None))
        if ctx.publications:
            guards.publish_outbox(self, w, c, ctx)

    def _settle(self, c: _Copy) -> None:
        """The broker stops waiting for this delivery's ack: it is no longer in flight."""
        c.awaiting = 0
        c.queue.inflight -= 1

    def _ack(self, c: _Copy, w: _Worker, attempt: int) -> None:
        q = c.queue
        if c.awaiting == attempt:
            c.awaiting = 0  # as _settle(c)
            q.inflight -= 1
            q.acked += 1
            self._events.extend((self._clock.now, "ack", w.name, c.id, attempt, "", q.name, q.name, None))
        else:
            self._events.extend(
                _row(
                    self._clock.now,
                    "late-ack",
                    w.name,
                    c.id,
                    attempt,
                    "this delivery already timed out: ignored",
                    q.name,
                    q.name,
                )
            )

    def _arm(self, q: _Queue) -> None:
        """Schedule the queue's earliest ack deadline that still counts (its ack has not come).

        Deadlines whose ack came are dropped here, so an ack never has to touch the scheduler:
        the mirror of a visibility timeout that is simply not checked once the message is deleted.
        The item keeps the sequence number reserved at delivery, so it runs exactly when a
        timer scheduled at delivery would have.
        """
        deadlines = q.deadlines
        while deadlines and deadlines[0][2].awaiting != deadlines[0][3]:
            deadlines.popleft()
        if deadlines:
            time, seq = deadlines[0][:2]
            q.timer = self._clock.at_seq(time, TIMEOUT, seq, self._on_deadline, q)
        else:
            q.timer = None

    def _deadline(self, q: _Queue) -> object:
        """An ack deadline is reached: a timeout if the ack has not come, else nothing at all."""
        _, _, c, attempt = q.deadlines.popleft()
        expired = c.awaiting == attempt
        if expired:
            self._timeout(c, attempt)  # may deliver again, adding deadlines; the timer is still set
        self._arm(q)
        return None if expired else SKIP

    def _timeout(self, c: _Copy, attempt: int) -> None:
        q = c.queue
        self._settle(c)
        reason = f"no ack within {q.ack_timeout:g}"
        if c.duration > q.ack_timeout:
            reason += f" (processing takes {c.duration:g}: longer than ack_timeout, so it can never ack in time)"
        self._events.extend(_row(self._clock.now, "timeout", q.name, c.id, attempt, reason, None, q.name))
        self._fail(c, reason)

    def _fail(self, c: _Copy, reason: str) -> None:
        """A delivery failed: dead-letter the copy, or send it back to the head of its queue."""
        q = c.queue
        c.last_failure = reason
        if q.max_deliveries is not None and c.attempt >= q.max_deliveries:
            self._dead_letter(c, reason)
            return
        delay = guards.retry_delay(q, c.attempt)
        q.waiting += 1
        if delay:
            self._clock.at(self._clock.now + delay, TIMEOUT, self._redeliver, c)
        else:
            self._redeliver(c)

    def _redeliver(self, c: _Copy) -> None:
        q = c.queue
        q.waiting -= 1
        q.redeliveries += 1
        self._events.extend(
            _row(
                self._clock.now, "redeliver", q.name, c.id, c.attempt + 1, "back to the head of the queue", None, q.name
            )
        )
        q.ready.appendleft(c)
        self._dispatch(q)

    def _dead_letter(self, c: _Copy, reason: str) -> None:
        q = c.queue
        q.dead_lettered += 1
        q.dead_letters.append(Message(c.id, c.payload, c.key, c.topic, q.name, c.attempt))
        detail = f"after {c.attempt} deliveries ({reason})"
        self._events.extend(
            _row(self._clock.now, "dead-letter", q.name, c.id, c.attempt, detail, q.dead_letter, q.name)
        )
        if q.dead_letter is not None:
            self._enqueue(c.id, c.payload, c.key, q.name, self._queues[q.dead_letter])

    def _dedup(self, w: _Worker, c: _Copy, attempt: int, detail: str) -> None:
        """Trace work recognised as already done: skipped, or rolled back (``detail`` says which)."""
        self._events.extend(_row(self._clock.now, "dedup", w.name, c.id, attempt, detail, None, c.queue.name))

    def _lose(self, c: _Copy, reason: str) -> None:
        c.queue.lost += 1
        self._events.extend(_row(self._clock.now, "lost", c.queue.name, c.id, c.attempt, reason, None, c.queue.name))

    # ------------------------------------------------------------------ crashes

    def _crash(self, w: _Worker, why: str, c: _Copy | None, attempt: int | None = None) -> None:
        """The worker dies: its unfinished work is void, and it restarts ``restart_after`` later.

        ``c`` and ``attempt`` are the copy and the delivery it held, if any.
        """
        now = self._clock.now
        if w.state == "idle":
            w.queue.free -= 1
        w.state = "down"
        w.current = None
        for entry in (w.done, w.midway):
            if entry is not None:
                Scheduler.cancel(entry)
        w.done = w.midway = None
        self._events.extend(_row(now, "crash", w.name, c.id if c else None, attempt, why, None, w.queue.name))
        w.restart = self._clock.at(now + w.restart_after, RESTART, self._restart, w)
        w.backlog.clear()  # copies pushed to it and not started die with the process
        if w.queue.crash_detection == "disconnect":
            self._disconnect(w)

    def _disconnect(self, w: _Worker) -> None:
        """The worker's connection closed: every copy it holds unacked goes back at once (AMQP)."""
        for _, _, c, attempt in w.queue.deadlines:
            if c.holder is w and c.awaiting == attempt:
                self._requeue_soon(c, attempt, "its consumer's connection closed")

    def _requeue_soon(self, c: _Copy, attempt: int, reason: str) -> None:
        """Requeue this delivery at this instant, once the current step is done (never re-entrantly)."""
        self._clock.at(self._clock.now, TIMEOUT, self._requeue, c, attempt, reason)

    def _requeue(self, c: _Copy, attempt: int, reason: str) -> None:
        if c.awaiting != attempt:  # acked or timed out meanwhile
            return
        q = c.queue
        self._settle(c)
        detail = f"{reason}: requeued at once, no need to wait for ack_timeout"
        self._events.extend(_row(self._clock.now, "requeue", q.name, c.id, attempt, detail, None, q.name))
        self._fail(c, reason)

    def _take_backlog(self, w: _Worker) -> None:
        """A worker with prefetch > 1 became idle: it starts on the copies waiting in its buffer."""
        backlog = w.backlog
        while backlog and w.state == "idle":
            c, attempt, msg = backlog.popleft()
            self._process(c, w, attempt, msg)

    def _outside_call(self, ctx: Context, system: str, key: Any, data: dict) -> bool:
        """A handler calls an outside system now: it takes effect unless the system has seen ``key``."""
        msg = ctx.msg
        now = self._clock.now
        shown = {**data, "idempotency_key": key} if key is not None else data
        if self._outside.seen(system, key):
            detail = f"{system}: idempotency key {key!r} seen before, so nothing happened"
            ctx.calls.append(
                (now, CALL_DEDUPED, ctx.worker, msg.id, msg.attempt, detail, None, msg.queue, {"name": system, **shown})
            )
            return False
        self._outside.record(system, key)
        self._effects.append(
            Effect(now, system, ctx.worker, msg.queue, msg.id, msg.attempt, msg.key, dict(data), CALL, key)
        )
        detail = _effect_detail(system, shown) + ": happened now, never rolled back"
        row = (now, CALL, ctx.worker, msg.id, msg.attempt, detail, None, msg.queue, {"name": system, **shown})
        ctx.calls.append(row)
        return True

    def _crash_midway(self, w: _Worker, c: _Copy, attempt: int) -> None:
        w.midway = None
        self._crash(w, "during processing: the work was never committed", c, attempt)
        if c.queue.guarantee == "at-most-once":
            self._lose(c, "worker crashed during processing")

    def _restart(self, w: _Worker) -> object:
        w.restart = None
        if w.outages:  # down from a crash, and now also in an outage: it comes back when that ends
            return SKIP
        w.state = "idle"
        w.queue.free += 1
        self._events.extend(_row(self._clock.now, "restart", w.name, None, None, "", None, w.queue.name))
        self._dispatch(w.queue)

    def _outage_begin(self, w: _Worker) -> None:
        w.outages += 1
        if w.state != "down":
            c = w.current
            self._crash(w, "outage" + (": work in progress abandoned" if c else ""), c, w.attempt if c else None)
            if c is not None and c.queue.guarantee == "at-most-once":
                self._lose(c, "worker taken down during processing")
            if w.restart is not None:  # it stays down until the outage ends
                Scheduler.cancel(w.restart)
                w.restart = None
        # Already down from a crash: its restart stands; whichever is later, that restart or
        # the outage's end, brings it back.

    def _outage_end(self, w: _Worker) -> None:
        w.outages -= 1
        if not w.outages and w.restart is None:
            self._restart(w)

    # ------------------------------------------------------------------ running

    def run(self, until: float | None = None) -> None:
        """Process scheduled events in time order: all of them, or those up to ``until``.

        With ``until``, the clock stops there and a later ``run()`` resumes where it left off.
        Without it, the clock stops at the last thing that happened (an ack timeout that was
        never needed, because the ack came, does not count).
        """
        if self._handling is not None:
            raise guards.in_handler(self, "run")
        clock = self._clock
        if until is not None:
            check_positive("run: until", until, allow_zero=True)
            if until < clock.now:
                raise EvbrokerError(
                    f"run: until={until!r} is in the past (now is {clock.now:g}); use until >= {clock.now:g}"
                )
        if self._publish_faults:
            worker_faults = [w.faults for w in self._workers.values()]
            for faults in self._publish_faults:
                check_publish_faults(faults, worker_faults)
            self._publish_faults.clear()
        if self._stalled:  # a copy put back by a refused handler call: try it again, loudly
            stalled = list(self._stalled.values())
            self._stalled.clear()
            for q in stalled:
                self._dispatch(q)
        # After max_events, one more event that does something means the run is not settling.
        if guards.run_watched(self, until) == self.max_events and clock.run(until, 1):
            raise EvbrokerError(
                f"run did not settle after {self.max_events} events (now t={clock.now:g}); a handler may be "
                "publishing messages forever. Stop at a time with b.run(until=...), or raise "
                "Broker(max_events=...) if the workload really is that large." + guards.busiest_publisher(self)
            )
        if until is not None:
            clock.now = float(until)

    # ------------------------------------------------------------------ results

    def stats(self, queue: str) -> dict[str, int]:
        """Counts for one queue.

        ``copies`` routed in; ``deliveries`` made; ``processed`` handler completions that
        committed (duplicates included); ``unique_processed`` distinct messages among them;
        ``duplicates`` = processed - unique_processed; ``lost`` (at-most-once);
        ``dead_lettered``; ``acked``; ``redeliveries``; ``pending`` (still queued, in flight
        or waiting to be retried).
        """
        q = self._get_queue(queue, "stats")
        unique = q.unique
        return {
            "copies": q.copies,
            "deliveries": q.deliveries,
            "processed": q.processed,
            "unique_processed": unique,
            "duplicates": q.processed - unique,
            "lost": q.lost,
            "dead_lettered": q.dead_lettered,
            "acked": q.acked,
            "redeliveries": q.redeliveries,
            "pending": len(q.ready) + q.inflight + q.waiting,
        }

    def effects(self, name: str | None = None, *, start: int = 0) -> list[Effect]:
        """Side effects that took effect (all, or those called ``name``), in the order they did.

        Database writes (``ctx.effect``) count when their work commits; outside calls
        (``ctx.call``, ``Effect.kind == "call"``) count when the handler makes them, unless the
        outside system dropped a repeat of an idempotency key it had seen. ``name`` may be an
        effect name or an outside system's name.

        ``start`` skips the first ``start`` effects of the whole record: a reader that keeps its
        place (``start = how many it has read``) gets only what is new, without re-reading the rest.
        """
        if not is_whole(start) or start < 0:
            raise EvbrokerError(
                f"effects: start must be a whole number >= 0 (got {start!r}); it is how many effects "
                "you have already read, e.g. start=len(seen)"
            )
        effects = self._effects[start:] if start else self._effects
        if name is None:
            return list(effects)
        found = [e for e in effects if e.name == name]
        if not found and not start and self._effects:
            guards.warn_effect_name(name, self._effects)
        return found

    def dead_letters(self, queue: str) -> list[Message]:
        """Copies of ``queue`` that ran out of deliveries, in the order they were set aside."""
        # Copies: editing one (to fix it and publish it again) leaves the record as it was.
        return [m._replace(payload=snapshot(m.payload)) for m in self._get_queue(queue, "dead_letters").dead_letters]

    def __repr__(self) -> str:
        return (
            f"<Broker seed={self.seed} t={self.now:g} topics={self.topics} queues={self.queues} "
            f"workers={self.workers} events={len(self._trace)}>"
        )

    # ------------------------------------------------------------------ helpers

    def _draw(self, chance: Any, msg: Message) -> bool:
        if callable(chance):
            return guards.call_predicate(self, chance, msg)
        if chance >= 1:
            return True
        return self.rng.random() < chance
