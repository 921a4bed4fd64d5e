"""Keep an embedded redis-server alive exactly as long as the Python process that asked for it.

Run as ``python -m evbroker.real._watchdog FOLDER REDIS_SERVER_BINARY``. It starts the server
on a Unix socket in FOLDER, prints ``ready`` once the socket answers, then blocks reading its
standard input. The owner holds the other end of that pipe: when the owner closes it (``close()``,
interpreter exit) or dies (a killed notebook kernel, which runs no ``atexit``), the read returns
end-of-file, and the watchdog stops the server and removes FOLDER. The server itself is started
with a parent-death signal, so it also dies if the watchdog is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the server's process, between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _answers(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        s.close()


def main(folder: str, binary: str) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # only the owner's pipe decides when we stop
    sock = os.path.join(folder, "redis.sock")
    conf = os.path.join(folder, "redis.conf")
    with open(conf, "w") as f:
        f.write(
            f'port 0\nunixsocket {sock}\nunixsocketperm 700\ndir {folder}\nsave ""\nappendonly no\n'
            'daemonize no\nloglevel warning\nlogfile ""\ndatabases 1\n'
        )
    server = subprocess.Popen(
        [binary, conf],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(sock):
            if server.poll() is not None or time.monotonic() > deadline:
                print("failed", flush=True)
                return 1
            time.sleep(0.01)
        print("ready", flush=True)
        while sys.stdin.buffer.read(1):  # blocks until the owner closes the pipe or dies
            pass
        return 0
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
