"""One worker: a real OS process in a Redis consumer group, running the kit's handler.

The loop is what a careful Redis Streams consumer does by hand:

1. every so often, ``XAUTOCLAIM`` an entry that has sat unacked in the group's pending entries
   list for longer than ``ack_timeout`` (that is the only way anything is ever redelivered);
   its delivery counter, read with ``XPENDING``, is the attempt; past ``max_deliveries`` it
   goes to the ``<queue>.dead`` stream instead;
2. otherwise ``XREADGROUP ... >`` a new entry (``NOACK`` under at-most-once: Redis forgets it
   at once), blocking with a timeout when there is nothing;
3. run the handler, wait its service time, then commit its effects, publications and dedupe
   records in one ``MULTI``/``EXEC`` (``WATCH``-ed dedupe keys roll it back when another
   delivery committed first), and ``XACK``.

Faults are the kit's own :class:`~evbroker.Faults`, and a crash is a real death (``os._exit``).
Everything is written to Redis as it happens, so a killed process loses nothing it wrote.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import redis

from evbroker.core.faults import NO_FAULTS, Faults
from evbroker.core.message import Message, check_effect_name, check_remember
from evbroker.core.trace import effect_detail, row
from evbroker.errors import EvbrokerError, did_you_mean
from evbroker.real.keys import Keys

#: Exit code of a worker that died of a fault it has already written into the trace.
CRASHED = 3
#: Exit code of a worker that stopped the run with an EvbrokerError (written to the errors list).
FAILED = 4

# XACK the copy; count the ack and trace it, or trace a late ack (someone else claimed it and
# acked first: Redis accepts an XACK from anyone, so the second one finds nothing pending).
_ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if n == 1 then
  redis.call('HINCRBY', KEYS[2], 'acked', 1)
  redis.call('RPUSH', KEYS[3], ARGV[3])
else
  redis.call('RPUSH', KEYS[3], ARGV[4])
end
return n
"""


# XREADGROUP one new entry and, in the same step, count the delivery, mark the worker busy and
# trace the delivery (as JSON: the one row not pickled), so a fresh delivery costs one round trip.
# Under exactly-once it also says whether the message id's dedupe record exists.
_READ_PART = """
local args = {'XREADGROUP', 'GROUP', ARGV[R + 1], ARGV[R + 2], 'COUNT', 1}
if ARGV[R + 3] == '1' then table.insert(args, 'NOACK') end
table.insert(args, 'STREAMS')
for i = S, #KEYS do table.insert(args, KEYS[i]) end
for i = S, #KEYS do table.insert(args, '>') end
local res = redis.call(unpack(args))
if not res then return false end
local done = {}
local first = nil
for _, s in ipairs(res) do
  for _, e in ipairs(s[2]) do
    local f = e[2]
    local mid = ''
    for i = 1, #f, 2 do if f[i] == 'id' then mid = f[i + 1] end end
    if not first then first = mid end
    redis.call('HINCRBY', ARGV[R + 7], 'reads', 1)
    redis.call('HINCRBY', ARGV[R + 7], 'deliveries', 1)
    redis.call('RPUSH', ARGV[R + 8],
      cjson.encode({tonumber(ARGV[R + 4]), 'deliver', ARGV[R + 5], mid, 1, '', ARGV[R + 2], ARGV[R + 5]}))
    if ARGV[R + 9] ~= '' then table.insert(done, redis.call('EXISTS', ARGV[R + 9] .. mid)) end
  end
end
redis.call('HSET', ARGV[R + 6], ARGV[R + 2], first .. ' 1')
return {res, done}
"""
_READ = "local R, S = 0, 1\n" + _READ_PART

# Commit a handler's effects and trace rows, count the processing, ack (or not), free the worker,
# and read the next entry: atomically, in one command. ARGV: msg id, group, entry id, worker, ack?,
# ack row, late-ack row, n rows, m effects, read next?, the read's 9 arguments, the rows, the effects.
_COMMIT = (
    """
local n, m = tonumber(ARGV[8]), tonumber(ARGV[9])
local R, S = 10, 7
local rows = {}
for i = 1, n do rows[i] = ARGV[R + 9 + i] end
local effects = {}
for i = 1, m do effects[i] = ARGV[R + 9 + n + i] end
if m > 0 then redis.call('RPUSH', KEYS[2], unpack(effects)) end
redis.call('HINCRBY', KEYS[3], 'processed', 1)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('RPUSH', KEYS[1], unpack(rows))
if ARGV[5] == '1' then
  if redis.call('XACK', KEYS[6], ARGV[2], ARGV[3]) == 1 then
    redis.call('HINCRBY', KEYS[3], 'acked', 1)
    redis.call('RPUSH', KEYS[1], ARGV[6])
  else
    redis.call('RPUSH', KEYS[1], ARGV[7])
  end
end
redis.call('HSET', KEYS[5], ARGV[4], '')
if ARGV[10] ~= '1' then return false end
"""
    + _READ_PART
)


def _row(*fields: Any) -> bytes:
    """A trace row (:func:`evbroker.core.trace.row`), pickled for the broker's trace list."""
    return pickle.dumps(row(*fields))


class RealContext:
    """``ctx`` on the real broker: the same calls as the simulator's Context.

    ``effect``, ``publish`` and ``remember(..., "commit")`` are buffered and written with the
    commit (one MULTI/EXEC); ``call`` reaches its outside system at once and is never rolled back.
    """

    def __init__(self, w: WorkerLoop, msg: Message, now: float) -> None:
        self.msg = msg
        self.worker = w.name
        self.queue = msg.queue
        self.now = now
        self.rng: random.Random = w.rng
        self._w = w
        self.effects: list[tuple[str, dict]] = []
        self.publications: list[tuple[str, Any, Any]] = []
        self.remembered: list[tuple[Any, str]] = []

    def effect(self, name: str, **data: Any) -> None:
        """Record a side effect, written to Redis with the commit."""
        check_effect_name(name)
        self.effects.append((name, data))

    def publish(self, dest: str, payload: Any, key: Any = None) -> None:
        """Publish a new message when the work commits (XADD inside the commit's MULTI: an outbox)."""
        spec = self._w.spec
        if dest not in spec["topics"] and dest not in spec["queues"]:
            known = [*spec["topics"], *spec["queues"]]
            raise EvbrokerError(
                f"ctx.publish: no topic or queue named {dest!r}{did_you_mean(dest, known) or '.'} "
                f"Known: {', '.join(known) or '(none)'}; declare it before b.run()"
            )
        self.publications.append((dest, payload, key))

    def call(self, system: str, idempotency_key: Any = None, **data: Any) -> bool:
        """Call an outside system now (a payment provider): it happens at once, never rolled back.

        The system drops a repeat of an ``idempotency_key`` it has already seen (as Stripe's
        Idempotency-Key header does). Returns True if the call took effect.
        """
        if not isinstance(system, str) or not system:
            raise EvbrokerError(f"ctx.call needs a non-empty system name such as 'bank' (got {system!r})")
        return self._w.call(self, system, idempotency_key, data)

    def seen(self, key: Any) -> bool:
        """True if ``key`` was remembered (and committed) by this queue's service before."""
        w = self._w
        return bool(w.r.exists(w.keys.remembered(self.queue, key)))

    def remember(self, key: Any, when: str = "commit") -> None:
        """Record ``key`` in this queue's dedupe store: at "commit" (right), "start" or "after-ack"."""
        check_remember(key, when)
        if when == "start":
            self._w.r.set(self._w.keys.remembered(self.queue, key), 1)
        else:
            self.remembered.append((key, when))

    def __repr__(self) -> str:
        return f"<RealContext {self.worker} handling {self.msg.id} attempt {self.msg.attempt}>"


class WorkerLoop:
    """The body of one worker process; ``spec`` is a plain dict the broker builds."""

    def __init__(self, spec: dict[str, Any], notify: Any) -> None:
        self.spec = spec
        self.notify = notify
        self.name: str = spec["name"]
        self.queue: str = spec["queue"]
        self.keys = Keys(spec["prefix"])
        self.handler: Callable = spec["handler"]
        self.faults: Faults = spec["faults"]
        self.service_time = spec["service_time"]
        self.guarantee: str = spec["guarantee"]
        self.noack = self.guarantee == "at-most-once"
        self.time_unit: float = spec["time_unit"]
        self.t0: float = spec["t0"]
        self.ack_timeout: float = spec["ack_timeout"]
        self.max_deliveries: int | None = spec["max_deliveries"]
        self.settle_limit: int = spec["settle_limit"]
        self.rng = random.Random(f"{spec['seed']}:{self.name}:{spec['incarnation']}")
        self.streams: list[str] = spec["streams"]
        url, kwargs = spec["connect"]
        self.r: redis.Redis = redis.Redis.from_url(url, **kwargs) if url else redis.Redis(**kwargs)
        self.read_script = self.r.register_script(_READ)
        self.ack_sha = self.r.script_load(_ACK)
        self.commit_sha = self.r.script_load(_COMMIT)  # EVALSHA in pipelines: no SCRIPT EXISTS round trip
        self.min_idle_ms = max(1, int(self.ack_timeout * self.time_unit * 1000))
        self.claim_every = min(self.ack_timeout * self.time_unit / 10, 0.05)
        self.stats = self.keys.stats(self.queue)
        self.prefetched: Any = None  # entries the last commit read, to handle next

    # ---------------------------------------------------------------- helpers

    def now(self) -> float:
        return round((time.monotonic() - self.t0) / self.time_unit, 3)

    def draw(self, chance: Any, msg: Message) -> bool:
        if callable(chance):
            return bool(chance(msg))
        if not chance:
            return False
        return chance >= 1 or self.rng.random() < chance

    def row(
        self, t: float, kind: str, msg: Message, detail: str, to: str | None = None, data: dict | None = None
    ) -> bytes:
        """A trace row of this worker about ``msg`` (its id, attempt and this queue), pickled."""
        return _row(t, kind, self.name, msg.id, msg.attempt, detail, to, self.queue, data)

    def tell(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.notify.send_bytes(b".")

    def die(self, pipe: Any, rows: list[bytes], msg: Message | None, lost_reason: str | None) -> None:
        """Write the crash (and, under at-most-once, the loss), then end the process for real."""
        if lost_reason and msg is not None:
            rows.append(_row(self.now(), "lost", self.queue, msg.id, msg.attempt, lost_reason, None, self.queue))
            pipe.hincrby(self.stats, "lost", 1)
        if rows:
            pipe.rpush(self.keys.trace, *rows)
        pipe.hset(self.keys.busy, self.name, "")
        pipe.execute()
        self.tell()
        os._exit(CRASHED)

    def fail_run(self, text: str) -> None:
        self.r.rpush(self.keys.errors, text)
        self.r.hset(self.keys.busy, self.name, "")
        self.tell()
        os._exit(FAILED)

    # ---------------------------------------------------------------- the loop

    def run(self) -> None:
        group, me = self.queue, self.name
        last_claim = 0.0
        worked = True
        new = dict.fromkeys(self.streams, ">")
        while True:
            if os.getppid() != self.spec["parent"]:
                os._exit(0)  # the broker's process is gone
            if self.prefetched:  # the last commit already read the next entry
                got, self.prefetched = self.prefetched, None
                for i, (s, eid, fields) in enumerate(got[0]):
                    self.handle(s, eid, fields, False, bool(got[1][i]) if got[1] else False)
                continue
            if not self.noack and time.monotonic() - last_claim >= self.claim_every:
                last_claim = time.monotonic()
                for s in self.streams:
                    res = self.r.xautoclaim(s, group, me, self.min_idle_ms, "0-0", count=1)
                    if res[1] and res[1][0][1]:
                        eid, fields = res[1][0]
                        worked = True
                        self.handle(s, eid, fields, True)
                        break
                else:
                    res = None
                if res is not None:
                    continue
            got = self.read()
            if not got:
                if worked:
                    worked = False
                    self.tell()  # idle: the broker may check whether the run has settled
                block = max(1, int(self.claim_every * 1000)) if not self.noack else 200
                res = self.r.xreadgroup(group, me, new, count=1, block=block, noack=self.noack)
                for s, items in res or ():
                    for eid, fields in items:
                        worked = True
                        self.handle(s.decode(), eid, fields, False, self.delivered(fields[b"id"].decode()))
                continue
            worked = True
            entries, done = got
            for i, (s, eid, fields) in enumerate(entries):
                self.handle(s, eid, fields, False, bool(done[i]) if done else False)

    def read_args(self, now: float) -> list[Any]:
        k, q = self.keys, self.queue
        done = k.done(q, "") if self.guarantee == "exactly-once" else ""
        return [q, self.name, "1" if self.noack else "0", now, q, k.busy, self.stats, k.trace, done]

    def read(self) -> Any:
        """XREADGROUP one new entry and record its delivery, in one round trip (a Lua script)."""
        return self.parse_read(self.read_script(keys=self.streams, args=self.read_args(self.now())))

    @staticmethod
    def parse_read(res: Any) -> Any:
        if not res:
            return None
        streams, done = res
        entries = []
        for s, items in streams:
            for eid, flat in items:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                entries.append((s.decode(), eid, fields))
        return entries, done

    def delivered(self, mid: str) -> bool:
        """Record a fresh delivery read by a blocking XREADGROUP; under exactly-once, whether it is done."""
        p = self.r.pipeline()
        p.hincrby(self.stats, "reads", 1)
        p.hincrby(self.stats, "deliveries", 1)
        p.hset(self.keys.busy, self.name, f"{mid} 1")
        p.rpush(self.keys.trace, _row(self.now(), "deliver", self.queue, mid, 1, "", self.name, self.queue))
        p.exists(self.keys.done(self.queue, mid))
        done = bool(p.execute()[-1])
        return self.guarantee == "exactly-once" and done

    def handle(self, stream: str, eid: bytes, fields: dict, claimed: bool, done: bool = False) -> None:
        """One entry: ``claimed`` from the pending entries list, or fresh (its delivery already recorded)."""
        keys, q, stats = self.keys, self.queue, self.stats
        mid = fields[b"id"].decode()
        attempt = 1
        p = self.r.pipeline()
        rows: list[bytes] = []
        now = self.now()
        if claimed:
            info = self.r.xpending_range(stream, q, eid, eid, 1)
            attempt = info[0]["times_delivered"] if info else 2
            reason = f"idle in the pending entries list for more than ack_timeout {self.ack_timeout:g}"
            rows.append(_row(now, "timeout", q, mid, attempt - 1, reason, None, q))
            if self.max_deliveries is not None and attempt > self.max_deliveries:
                detail = f"after {attempt - 1} deliveries (delivery counter {attempt}: XADD to {q}.dead, XACK)"
                rows.append(_row(now, "dead-letter", q, mid, attempt - 1, detail, f"{q}.dead", q))
                p.xadd(keys.dead(q), {**fields, b"deliveries": str(attempt - 1)})
                p.xack(stream, q, eid)
                p.hincrby(stats, "dead_lettered", 1)
                p.rpush(keys.trace, *rows)
                p.execute()
                return
            if self.max_deliveries is None and attempt > self.settle_limit:
                self.fail_run(
                    f"queue {q!r} cannot settle: message {mid} has been delivered {attempt - 1} times and never "
                    f"acknowledged. Give the queue a limit, e.g. b.queue({q!r}, ..., max_deliveries=3), so the copy "
                    "goes to dead letters, fix the handler or the ack_timeout, or stop earlier with b.run(until=...)."
                )
            rows.append(_row(now, "redeliver", q, mid, attempt, "reclaimed with XAUTOCLAIM", None, q))
            rows.append(_row(now, "deliver", q, mid, attempt, "", self.name, q))
            p.hincrby(stats, "redeliveries", 1)
            p.hincrby(stats, "deliveries", 1)
            p.hset(keys.busy, self.name, f"{mid} {attempt}")
            if self.guarantee == "exactly-once":
                p.exists(keys.done(q, mid))
            p.rpush(keys.trace, *rows)
            res = p.execute()
            done = self.guarantee == "exactly-once" and bool(res[-2])
            rows = []
            p = self.r.pipeline()
        topic = fields[b"t"].decode()
        msg = Message(mid, pickle.loads(fields[b"p"]), pickle.loads(fields[b"k"]), topic, q, attempt)
        f = self.faults
        if f is not NO_FAULTS:
            lost = "worker crashed before processing" if self.noack else None
            if f.lose_delivery and self.draw(f.lose_delivery, msg):
                rows.append(_row(now, "delivery-lost", q, mid, attempt, "the worker never got it", self.name, q))
                if self.noack:
                    rows.append(_row(now, "lost", q, mid, attempt, "delivery lost", None, q))
                    p.hincrby(stats, "lost", 1)
                p.hset(keys.busy, self.name, "")
                p.rpush(keys.trace, *rows)
                p.execute()
                return
            if f.crash_before_process and self.draw(f.crash_before_process, msg):
                rows.append(_row(now, "crash", self.name, mid, attempt, "before processing", None, q))
                self.die(p, rows, msg, lost)
        if done:
            self._dedup_ack(stream, eid, msg, now)
            return
        self.process(stream, eid, msg, now)

    def _dedup_ack(self, stream: str, eid: bytes, msg: Message, now: float) -> None:
        p = self.r.pipeline()
        p.rpush(
            self.keys.trace,
            self.row(now, "dedup", msg, "already processed: acked without running the handler"),
        )
        self._ack(p, stream, eid, msg, now)
        p.hset(self.keys.busy, self.name, "")
        p.execute()

    def _ack(self, p: Any, stream: str, eid: bytes, msg: Message, now: float) -> None:
        q = self.queue
        late = "another consumer claimed it and acked first: nothing left to ack"
        p.evalsha(
            self.ack_sha,
            3,
            stream,
            self.stats,
            self.keys.trace,
            q,
            eid,
            self.row(now, "ack", msg, "", q),
            self.row(now, "late-ack", msg, late, q),
        )

    def process(self, stream: str, eid: bytes, msg: Message, start: float) -> None:
        keys, q, f = self.keys, self.queue, self.faults
        ctx = RealContext(self, msg, start)
        error: BaseException | None = None
        try:
            self.handler(msg, ctx)
        except EvbrokerError as exc:
            self.fail_run(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a processing failure, as Redis sees it: no XACK
            error = exc
        duration = self.service_time(msg) if callable(self.service_time) else self.service_time
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < float("inf"):
            self.fail_run(
                f"worker {self.name!r}: service_time(msg) for {msg.id} must be a number > 0 (got {duration!r}); "
                "the service_time callable must return how long this message takes"
            )
        if f.slow and self.draw(f.slow, msg):
            duration += f.slow_by
            detail = f"slow: takes {duration:g} (ack_timeout {self.ack_timeout:g})"
        else:
            detail = f"takes {duration:g}"
        rows = [self.row(start, "process", msg, detail)]
        if duration * self.time_unit >= 0.005:  # long work: show it under way (a kill then cuts the bar short)
            self.r.rpush(keys.trace, rows.pop())
        lost = "worker crashed during processing" if self.noack else None
        if f.crash_during_process and self.draw(f.crash_during_process, msg):
            time.sleep(duration * self.time_unit / 2)
            rows.append(self.row(self.now(), "crash", msg, "during processing: the work was never committed"))
            self.die(self.r.pipeline(), rows, msg, lost)
        if duration * self.time_unit >= 1e-6:
            time.sleep(duration * self.time_unit)
        now = self.now()
        if error is not None:
            reason = f"handler raised {type(error).__name__}: {error}"
            rows.append(self.row(now, "handler-error", msg, reason))
            p = self.r.pipeline()
            if self.noack:
                rows.append(_row(now, "lost", q, msg.id, msg.attempt, reason, None, q))
                p.hincrby(self.stats, "lost", 1)
            p.rpush(keys.trace, *rows)
            p.hset(keys.busy, self.name, "")  # no nack in Redis: the entry waits to be reclaimed
            p.execute()
            return
        crash = bool(f.crash_before_ack) and self.draw(f.crash_before_ack, msg)
        lose_ack = not crash and not self.noack and bool(f.lose_ack) and self.draw(f.lose_ack, msg)
        if not ctx.publications and not ctx.remembered and self.guarantee != "exactly-once":
            self.commit_fast(stream, eid, ctx, rows, now, "crash" if crash else "lose" if lose_ack else "ack")
            if crash:
                self.tell()
                os._exit(CRASHED)
            return
        while True:
            p = self.commit(ctx, list(rows), now)
            if crash:
                p.rpush(
                    keys.trace,
                    self.row(now, "crash", msg, "after processing, before the ack"),
                )
            elif not self.noack:
                if lose_ack:
                    p.rpush(
                        keys.trace,
                        self.row(now, "ack-lost", msg, "the broker never hears it", q),
                    )
                else:
                    self._ack(p, stream, eid, msg, now)
            if not crash:
                for key, when in ctx.remembered:
                    if when == "after-ack":
                        p.set(keys.remembered(q, key), 1)
            p.hset(keys.busy, self.name, "")
            try:
                p.execute()
                break
            except redis.WatchError:
                continue  # a dedupe key was written between the check and EXEC: check again
        if crash:
            self.tell()
            os._exit(CRASHED)

    def commit_fast(self, stream: str, eid: bytes, ctx: RealContext, rows: list[bytes], now: float, how: str) -> None:
        """The common commit (effects only, no dedupe keys, no publications) and the ack, in one script.

        A Lua script runs atomically, as MULTI/EXEC does, in one command instead of one per write.
        """
        q, msg, name = self.queue, ctx.msg, self.name
        # The rows (and the effects) travel as one pickled list each: fewer arguments, one RPUSH.
        batch: list[Any] = list(rows)  # already pickled rows, then plain tuples
        effects = []
        mid, attempt = msg.id, msg.attempt
        for ename, data in ctx.effects:
            detail = effect_detail(ename, data)
            batch.append((now, "effect", name, mid, attempt, detail, None, q, {"name": ename, **data}))
            effects.append((now, ename, name, q, mid, attempt, msg.key, data))
        batch.append((now, "complete", name, mid, attempt, "", None, q, None))
        if how == "crash":
            batch.append((now, "crash", name, mid, attempt, "after processing, before the ack", None, q, None))
        elif how == "lose" and not self.noack:
            batch.append((now, "ack-lost", name, mid, attempt, "the broker never hears it", q, q, None))
        rows = [pickle.dumps(batch)]
        effects = [pickle.dumps(effects)] if effects else []
        ack = "1" if how == "ack" and not self.noack else "0"
        late = "another consumer claimed it and acked first: nothing left to ack"
        res = self.r.evalsha(
            self.commit_sha,
            6 + len(self.streams),
            self.keys.trace,
            self.keys.effects,
            self.stats,
            self.keys.unique(q),
            self.keys.busy,
            stream,
            *self.streams,
            msg.id,
            q,
            eid,
            name,
            ack,
            self.row(now, "ack", msg, "", q),
            self.row(now, "late-ack", msg, late, q),
            len(rows),
            len(effects),
            "0" if how == "crash" else "1",
            *self.read_args(now),
            *rows,
            *effects,
        )
        self.prefetched = self.parse_read(res)

    def commit(self, ctx: RealContext, rows: list[bytes], now: float) -> Any:
        """Queue the commit (effects, publications, dedupe records) in a MULTI; return the pipeline.

        Under exactly-once (or with ``remember(..., "commit")``), the dedupe keys are WATCH-ed
        first: if another delivery wrote one meanwhile, EXEC would fail, so nothing is applied.
        """
        keys, q, msg = self.keys, self.queue, ctx.msg
        watched = [keys.remembered(q, k) for k, when in ctx.remembered if when == "commit"]
        if self.guarantee == "exactly-once":
            watched.append(keys.done(q, msg.id))
        ids: list[str] = []
        if ctx.publications:
            last = self.r.incrby(keys.ids, len(ctx.publications))
            ids = [f"m{n}" for n in range(last - len(ctx.publications) + 1, last + 1)]
        p = self.r.pipeline()
        if watched:
            p.watch(*watched)
            conflict = None
            if self.guarantee == "exactly-once" and p.exists(keys.done(q, msg.id)):
                conflict = f"{msg.id} was committed by another delivery meanwhile"
            else:
                for k, when in ctx.remembered:
                    if when == "commit" and p.exists(keys.remembered(q, k)):
                        conflict = f"key {k!r} was already recorded"
                        break
            if conflict:
                p.unwatch()
                p.multi()
                rows.append(self.row(now, "dedup", msg, f"{conflict}: rolled back, nothing applied"))
                p.rpush(keys.trace, *rows)
                return p
            p.multi()
        for name, data in ctx.effects:
            rows.append(self.row(now, "effect", msg, effect_detail(name, data), data={"name": name, **data}))
            p.rpush(keys.effects, pickle.dumps((now, name, self.name, q, msg.id, msg.attempt, msg.key, data)))
        for k, when in ctx.remembered:
            if when == "commit":
                p.set(keys.remembered(q, k), 1)
        if self.guarantee == "exactly-once":
            p.set(keys.done(q, msg.id), 1)
        p.hincrby(self.stats, "processed", 1)
        p.sadd(keys.unique(q), msg.id)
        rows.append(self.row(now, "complete", msg, ""))
        for mid, (dest, payload, key) in zip(ids, ctx.publications, strict=True):
            published = publish_into(p, self.keys, self.spec["topics"], now, mid, dest, payload, key, self.name)
            rows.extend(pickle.dumps(r) for r in published)
        p.rpush(keys.trace, *rows)
        return p

    def call(self, ctx: RealContext, system: str, idem: Any, data: dict) -> bool:
        keys, msg, q = self.keys, ctx.msg, self.queue
        now = self.now()
        if idem is not None and not self.r.sadd(keys.calls(system), repr(idem)):
            self.r.rpush(
                keys.trace,
                self.row(now, "dedup", msg, f"{system} already saw idempotency key {idem!r}: call dropped"),
            )
            return False
        p = self.r.pipeline()
        p.rpush(keys.effects, pickle.dumps((now, system, self.name, q, msg.id, msg.attempt, msg.key, data)))
        p.rpush(
            keys.trace,
            self.row(now, "effect", msg, "call " + effect_detail(system, data), data={"name": system, **data}),
        )
        p.execute()
        return True


def publish_into(
    p: Any,
    keys: Keys,
    topics: dict[str, list[str]],
    now: float,
    mid: str,
    dest: str,
    payload: Any,
    key: Any,
    by: str,
    detail: str = "",
    counts: dict[str, int] | None = None,
) -> list[tuple]:
    """Queue one publish on pipeline ``p`` (XADD and counters); return its trace rows, as tuples.

    With ``counts``, the copies per queue are added there for the caller to write in one go.
    """
    rows = [(now, "publish", by, mid, None, detail, dest, None, None)]
    fields = {"id": mid, "p": pickle.dumps(payload), "k": pickle.dumps(key), "t": dest}
    bound = topics.get(dest)
    if bound is None:  # a queue's own stream
        queues = [dest]
    elif not bound:
        rows.append((now, "unroutable", dest, mid, None, "no consumer group reads this stream", None, None, None))
        return rows
    else:
        queues = bound
        rows.extend((now, "route", dest, mid, None, "", q, q, None) for q in bound)
    p.xadd(keys.stream(dest), fields)
    for q in queues:
        if counts is None:
            p.hincrby(keys.stats(q), "copies", 1)
        else:
            counts[q] = counts.get(q, 0) + 1
    return rows


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(spec: dict[str, Any], notify: Any) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the notebook, which then closes us
    for fd in spec.get("close_fds", ()):
        with contextlib.suppress(OSError):
            os.close(fd)  # e.g. the pipe that keeps the embedded server alive: only the owner holds it
    if os.getppid() != spec["parent"]:
        os._exit(0)
    loop = None
    try:
        loop = WorkerLoop(spec, notify)
        loop.run()
    except redis.ConnectionError:
        os._exit(0)  # the server went away: the broker is closing
    except Exception as exc:  # a bug outside the handler: stop the run with it rather than crash-loop
        with contextlib.suppress(Exception):
            text = f"worker {spec['name']!r} stopped: {type(exc).__name__}: {exc}"
            if loop is not None:
                loop.fail_run(text)
        os._exit(FAILED)
