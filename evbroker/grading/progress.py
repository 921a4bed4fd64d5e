"""A small progress bar on stderr: redrawn in place on a terminal, one line per step otherwise."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, label: str = "grading", stream: TextIO | None = None, width: int = 24) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, what: str) -> None:
        """Count one more item as finished, described by ``what``."""
        self.done += 1
        filled = round(self.width * self.done / self.total)
        bar = "█" * filled + "░" * (self.width - filled)
        line = f"{self.label} {bar} {self.done}/{self.total} {what}"
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
