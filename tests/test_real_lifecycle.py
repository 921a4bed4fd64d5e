"""The embedded Redis server lives exactly as long as its owner, whatever way the owner ends.

A broker's server and workers must be gone, and its temporary folder removed, after close(),
after a test that fails inside a ``with`` block, after a whole pytest run with a failing test,
and after an owner that is killed (a notebook kernel that dies runs no atexit) or interrupted.
Each test waits for the processes' exits (pidfd / Popen.wait), never on a sleep.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evbroker.real import RedisBroker
from evbroker.real import server as servers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def embedded_only(monkeypatch):
    """These tests are about the embedded server: an external one named in the environment is set aside."""
    monkeypatch.delenv(servers.URL_VARIABLE, raising=False)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line mentions ``text`` (the server's config and the watchdog name the folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_exit(pid: int, timeout: float = 20) -> None:
    """Block until process ``pid`` (not our child) has exited: an event, through a pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"process {pid} still running after {timeout}s"
    finally:
        os.close(fd)


def assert_nothing_left(folder: str) -> None:
    assert not Path(folder).exists(), f"{folder} was left behind"
    assert processes_mentioning(folder) == [], "a redis-server or watchdog outlived its owner"


needs_linux = pytest.mark.skipif(not hasattr(os, "pidfd_open") or not Path("/proc").is_dir(), reason="Linux only")


@needs_linux
def test_close_stops_the_embedded_server_and_removes_its_folder():
    b = RedisBroker(time_unit=0.02)
    folder = b._server.folder
    assert Path(folder, "redis.sock").exists() and processes_mentioning(folder)
    b.queue("q")
    b.worker("q", lambda m, ctx: None, count=2)
    b.publish("q", 1)
    b.run()
    pids = [w.process.pid for w in b._workers.values()]
    b.close()
    assert_nothing_left(folder)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    b.close()  # twice is fine


@needs_linux
def test_a_test_failing_inside_a_with_block_leaves_nothing():
    folder = None
    with pytest.raises(RuntimeError):
        with RedisBroker() as b:
            folder = b._server.folder
            raise RuntimeError("a failing assertion in the middle of a lesson")
    assert_nothing_left(folder)


@needs_linux
def test_an_external_servers_keys_are_all_removed_on_close():
    with RedisBroker() as owner:
        with RedisBroker(url=owner.server_url, time_unit=0.02) as b:
            b.topic("t")
            b.queue("q", bind="t", max_deliveries=1, ack_timeout=1)
            b.worker("q", lambda m, ctx: ctx.effect("e"))
            b.publish("t", 1)
            b.run()
            prefix = b.keys.prefix
            assert owner.redis.keys(prefix + "*")
        assert owner.redis.keys(prefix + "*") == []


OWNER = textwrap.dedent(
    """
    import sys
    from evbroker.real import RedisBroker

    b = RedisBroker(time_unit=0.02)
    b.queue("q")
    b.worker("q", lambda m, ctx: ctx.effect("e"), count=2, service_time=1e6)
    b.publish("q", 1)
    b.wait("deliver", msg="m1")
    pids = [w.process.pid for w in b._workers.values()]
    print(b._server.folder, b._server.watchdog.pid, *pids, flush=True)
    b.run()  # busy for a million time units: only a signal ends this
    """
)


def start_owner() -> tuple[subprocess.Popen, str, list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    line = proc.stdout.readline().split()
    assert line, proc.stderr.read()
    return proc, line[0], [int(p) for p in line[1:]]


@needs_linux
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_an_owner_that_is_killed_or_interrupted_takes_its_server_and_workers_with_it(sig):
    """SIGKILL is a dead kernel (no atexit runs); SIGINT a Ctrl-C; SIGTERM a kernel shut down."""
    proc, folder, pids = start_owner()
    assert Path(folder).exists()
    proc.send_signal(sig)
    proc.wait(20)
    proc.stdout.close()
    proc.stderr.close()
    for pid in pids:  # the watchdog, then the workers
        wait_exit(pid)
    assert_nothing_left(folder)


SUITE = textwrap.dedent(
    """
    from evbroker.real import RedisBroker

    def test_fails_inside_a_broker(record):
        with RedisBroker() as b:
            record(b)
            assert False, "a failing test"

    def test_forgets_to_close(record):
        b = RedisBroker()
        record(b)
        b.queue("q")
        b.worker("q", lambda m, ctx: None)
        b.publish("q", 1)
        b.run()

    import pytest

    @pytest.fixture
    def record():
        def write(b):
            with open("folders.txt", "a") as f:
                f.write(f"{b._server.folder} {b._server.watchdog.pid}\\n")
        return write
    """
)


@needs_linux
@pytest.mark.slow
def test_a_pytest_run_with_a_failing_test_leaves_no_server_and_no_folder(tmp_path):
    (tmp_path / "test_inner.py").write_text(SUITE)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    rows = [line.split() for line in (tmp_path / "folders.txt").read_text().splitlines()]
    assert len(rows) == 2
    for folder, watchdog in rows:
        wait_exit(int(watchdog))
        assert_nothing_left(folder)


def test_the_url_variable_is_the_default_server(monkeypatch):
    monkeypatch.setenv(servers.URL_VARIABLE, "redis://127.0.0.1:1/0")
    with pytest.raises(Exception, match=r"127\.0\.0\.1:1"):
        RedisBroker()
