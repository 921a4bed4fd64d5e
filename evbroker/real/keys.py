"""Every Redis key one RedisBroker uses, under its one prefix (removed on close)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Keys:
    prefix: str

    def stream(self, name: str) -> str:
        """The stream of a topic, or a queue's own stream (direct publishes)."""
        return f"{self.prefix}s:{name}"

    def dead(self, queue: str) -> str:
        return f"{self.prefix}s:{queue}.dead"

    def stats(self, queue: str) -> str:
        return f"{self.prefix}stats:{queue}"

    def unique(self, queue: str) -> str:
        return f"{self.prefix}uniq:{queue}"

    def done(self, queue: str, mid: str) -> str:
        """exactly-once: the dedupe record of one message id, written with its effects."""
        return f"{self.prefix}done:{queue}:{mid}"

    def remembered(self, queue: str, key: Any) -> str:
        """A business key in the service's dedupe store (``ctx.remember``)."""
        return f"{self.prefix}key:{queue}:{key!r}"

    def calls(self, system: str) -> str:
        """The idempotency keys an outside system has seen (``ctx.call``)."""
        return f"{self.prefix}calls:{system}"

    @property
    def trace(self) -> str:
        return f"{self.prefix}trace"

    @property
    def effects(self) -> str:
        return f"{self.prefix}effects"

    @property
    def ids(self) -> str:
        return f"{self.prefix}ids"

    @property
    def busy(self) -> str:
        """worker name -> "msg attempt" while it holds a copy, "" when idle."""
        return f"{self.prefix}busy"

    @property
    def errors(self) -> str:
        """Errors a worker process hit that must stop the run (a handler raising EvbrokerError)."""
        return f"{self.prefix}errors"
