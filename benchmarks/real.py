"""RedisBroker throughput against a bare redis-py XADD / XREADGROUP / XACK loop, same server, same run.

The workload is the same on both: N messages XADDed to one stream by this process (pipelined
500 at a time), read one at a time by one consumer in another process (a consumer group,
COUNT 1), each acked with XACK. The bare loop does nothing else. RedisBroker does what a lesson
sees: an at-least-once queue whose worker runs a handler recording one effect per message, with
the trace, the counters and the effects written to Redis as it goes, and ``run()`` returning
once everything has settled.

    .venv/bin/python benchmarks/real.py            # N = 5000, best of 3
    .venv/bin/python benchmarks/real.py 20000 5    # N, repeats

Prints messages per second for each and the ratio RedisBroker / bare (target: at least 0.5).
Times are wall-clock seconds: two processes and a server are at work.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

import redis

from evbroker.real import RedisBroker

CHUNK = 500


def handle(msg, ctx) -> None:
    ctx.effect("done", n=msg.payload)


def run_broker(url: str, n: int) -> float:
    """Seconds for N messages through a RedisBroker (publish, deliver, handle, commit, ack, settle)."""
    with RedisBroker(url=url, time_unit=0.001) as b:
        b.queue("jobs", guarantee="at-least-once", ack_timeout=60_000)
        b.worker("jobs", handle, service_time=1e-6)
        start = time.perf_counter()
        for i in range(n):
            b.publish("jobs", i)
        b.run()
        took = time.perf_counter() - start
        assert b.stats("jobs")["acked"] == n, b.stats("jobs")
    return took


def _bare_consumer(url: str, stream: str, n: int) -> None:
    r = redis.Redis.from_url(url)
    done = 0
    while done < n:
        res = r.xreadgroup("g", "c1", {stream: ">"}, count=1, block=1000)
        for _, entries in res or ():
            for eid, _fields in entries:
                r.xack(stream, "g", eid)
                done += 1


def run_bare(url: str, n: int, run_id: int) -> float:
    """Seconds for N messages through the bare loop."""
    r = redis.Redis.from_url(url)
    stream = f"bench:bare:{run_id}"
    r.xgroup_create(stream, "g", id="$", mkstream=True)
    start = time.perf_counter()
    consumer = multiprocessing.get_context("fork").Process(target=_bare_consumer, args=(url, stream, n))
    consumer.start()
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.xadd(stream, {"id": f"m{i}", "p": str(i)})
        if (i + 1) % CHUNK == 0:
            p.execute()
    p.execute()
    consumer.join()
    took = time.perf_counter() - start
    assert not r.xpending(stream, "g")["pending"]
    r.delete(stream)
    return took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with RedisBroker() as server:  # one embedded server for both
        url = server.server_url
        broker_times, bare_times = [], []
        for i in range(repeats):  # interleaved, so a busy moment of the machine hits both alike
            broker_times.append(run_broker(url, n))
            bare_times.append(run_bare(url, n, i))
        broker, bare = min(broker_times), min(bare_times)
    print(f"messages: {n}, best of {repeats}, embedded redis-server {server._server.version}")
    print(f"RedisBroker      {n / broker:10,.0f} msgs/s")
    print(f"bare redis-py    {n / bare:10,.0f} msgs/s")
    print(f"ratio            {bare / broker:10.2f}   (RedisBroker / bare loop; target >= 0.5)")


if __name__ == "__main__":
    main()
