"""The grader's side of a sandboxed kernel: start it, run cells with a time limit, fetch values, restart.

Knows processes, time limits and the record protocol; nothing about brokers or checks. What
the kernel's references become on this side (stand-ins for the learner's functions) is given
by whoever starts the session (see :mod:`evbroker.grading.proxies`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evbroker.grading.boundary import ProtocolError
from evbroker.grading.channel import Channel, ChannelClosed, ChannelTimeout, error_fields
from evbroker.grading.sandbox import Limits, Sandbox

OK, ERROR, TIMEOUT, DIED, BROKEN = "ok", "error", "timeout", "died", "broken"
#: Seconds a new kernel may take to say it is ready.
START_LIMIT = 60.0


@dataclass
class CellOutcome:
    """How a cell went: "ok", "error" (with the error's name and message), "timeout", "died" or "broken"."""

    status: str
    ename: str = ""
    evalue: str = ""


class KernelSession:
    """One sandboxed kernel at a time for one submission; :meth:`restart` replaces it with a fresh one."""

    def __init__(
        self,
        scratch: Path,
        limits: Limits,
        *,
        bwrap: str | None,
        readable: tuple[Path, ...] = (),
        configure: Callable[[Channel], None] = lambda channel: None,
    ) -> None:
        self.scratch, self.limits, self.bwrap, self.readable = scratch, limits, bwrap, readable
        self.configure = configure
        self.sandbox: Sandbox | None = None
        self.channel: Channel
        self.audits: list[str] = []

    def start(self) -> None:
        self.sandbox = Sandbox(self.scratch, self.limits, bwrap=self.bwrap, readable=self.readable)
        read_fd, write_fd = self.sandbox.start()
        self.channel = Channel(read_fd, write_fd, "grader", strict=True)
        self.channel.on_audit = self._audit
        self.configure(self.channel)
        self.channel.deadline = time.monotonic() + START_LIMIT
        ready = self.channel.receive()
        if ready["op"] != "ready":
            raise ProtocolError("the kernel did not start with a ready record")

    def _audit(self, record: dict[str, Any]) -> None:
        event, detail = record.get("event"), record.get("detail")
        self.audits.append(f"{str(event)[:40]} {str(detail)[:120]}")

    def alive(self) -> bool:
        return self.sandbox is not None and self.sandbox.alive()

    def stop(self) -> None:
        """Kill the kernel and all it started; the next :meth:`restart` starts a fresh one."""
        if self.sandbox is not None:
            self.sandbox.kill()
            self.sandbox = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def run(self, source: str, limit: float) -> CellOutcome:
        """Run one cell's source, at most ``limit`` seconds."""
        self.channel.deadline = time.monotonic() + limit
        try:
            reply = self.channel.request({"op": "run", "source": source})
        except ChannelTimeout:
            return CellOutcome(TIMEOUT, evalue=f"stopped after {limit:g} s")
        except ChannelClosed:
            return CellOutcome(DIED, evalue="the kernel died while running this cell")
        except ProtocolError as exc:
            return CellOutcome(BROKEN, evalue=f"the kernel broke the grader's protocol: {exc}")
        if reply["op"] != "done":
            return CellOutcome(BROKEN, evalue="the kernel answered a cell with something else")
        if reply.get("ok") is True:
            return CellOutcome(OK)
        name, message, _ = error_fields(reply.get("error"))
        return CellOutcome(ERROR, name, message)

    def answer(self, names: list[str], limit: float) -> list[Any]:
        """The values the kernel holds under ``names``, as they crossed (a NameError if one is missing)."""
        self.channel.deadline = time.monotonic() + limit
        values = self.channel.result(self.channel.request({"op": "answer", "names": names}))
        if type(values) is not list or len(values) != len(names):
            raise ProtocolError("the kernel sent the wrong number of answers")
        return values

    def replay(self, sources: dict[int, str], limit: float) -> dict[int, str]:
        """Run ``sources`` again in a new kernel; return the ones that would not finish now, and why."""
        dropped: dict[int, str] = {}
        for index, source in sources.items():
            outcome = self.run(source, limit)
            if outcome.status not in (OK, ERROR):
                dropped[index] = outcome.evalue
                self.restart()
        return dropped
