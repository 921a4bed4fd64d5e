"""Where a submission's code runs: a kernel process in a bubblewrap sandbox, under resource limits.

This module knows processes, folders and limits, and nothing about brokers or checks. Each
kernel gets:

- its own home and working folder, a small tmpfs holding only the submission (read-only);
- read-only views of the Python installation and the ``evbroker`` package, and nothing else of
  the file system: not ``solutions/``, not the other submissions, not the grader's output folder;
- its own network namespace (no network at all), its own process namespace (it cannot see or
  signal the grader or anyone else), a new session (no terminal to inject keystrokes into);
- hard limits on memory, CPU seconds, processes and file size (set by the kernel on itself
  before it reads any record), and room to write only in its home and ``/tmp``, each a
  tmpfs of ``Limits.disk`` bytes;
- ``--die-with-parent``: when the grader kills the sandbox (or dies), every process the
  notebook started dies with it, detached or not.

Without bubblewrap (``bwrap``) the grader refuses to run unless asked to run unsandboxed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import evbroker
from evbroker.errors import EvbrokerError

#: The Debian/Ubuntu package that provides ``bwrap``.
BWRAP_PACKAGE = "bubblewrap"
HOME = "/home/learner"


@dataclass(frozen=True)
class Limits:
    """What one kernel may use: bytes of memory (address space), CPU seconds, processes, bytes per file."""

    memory: int = 2 * 1024**3
    cpu: int = 900
    nproc: int = 256
    fsize: int = 64 * 1024**2
    disk: int = 256 * 1024**2  # the home folder and /tmp are each a tmpfs of this size (sandboxed only)


def bwrap_path() -> str | None:
    """The bubblewrap executable, if it is installed and can create namespaces here."""
    found = shutil.which("bwrap")
    if not found:
        return None
    probe = subprocess.run(
        [found, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        timeout=30,
    )
    return found if probe.returncode == 0 else None


def require_sandbox(unsandboxed: bool) -> str | None:
    """The ``bwrap`` to use, or None when the teacher chose ``--unsandboxed``; an error when neither."""
    if unsandboxed:
        return None
    found = bwrap_path()
    if found is None:
        raise EvbrokerError(
            "grading runs every submission in a sandbox, and bubblewrap ('bwrap') is not available "
            f"here; install it (sudo apt-get install -y {BWRAP_PACKAGE}), or pass --unsandboxed to run "
            "submissions with your own rights (only for notebooks you trust: every row will say so)"
        )
    return found


class Sandbox:
    """One kernel process for one submission, started in ``scratch``; :meth:`kill` ends all it started."""

    def __init__(self, scratch: Path, limits: Limits, *, bwrap: str | None, readable: tuple[Path, ...] = ()) -> None:
        self.scratch = Path(scratch)
        self.limits = limits
        self.bwrap = bwrap
        self.readable = tuple(Path(p).resolve() for p in readable)
        self.proc: subprocess.Popen | None = None
        self.read_fd = self.write_fd = -1

    def start(self) -> tuple[int, int]:
        """Start the kernel; return (fd to read its records, fd to write records to it)."""
        to_kernel_r, to_kernel_w = os.pipe()
        from_kernel_r, from_kernel_w = os.pipe()
        settings = {**asdict(self.limits), "in": to_kernel_r, "out": from_kernel_w}
        python = [sys.executable, "-m", "evbroker.grading.kernel", json.dumps(settings)]
        command = self._bwrap_command() + python if self.bwrap else python
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": HOME if self.bwrap else str(self.scratch),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "agg",
            "MPLCONFIGDIR": "/tmp/matplotlib" if self.bwrap else str(self.scratch / ".matplotlib"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(str(p) for p in self.readable),
        }
        self.proc = subprocess.Popen(
            command,
            cwd=self.scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_kernel_r, from_kernel_w),
            start_new_session=True,
        )
        os.close(to_kernel_r)
        os.close(from_kernel_w)
        self.read_fd, self.write_fd = from_kernel_r, to_kernel_w
        return self.read_fd, self.write_fd

    def _bwrap_command(self) -> list[str]:
        assert self.bwrap
        cmd = [self.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        cmd += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        size = str(self.limits.disk)
        cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/tmp"]
        package = Path(evbroker.__file__).resolve().parent
        for path in _mounts([Path(sys.base_prefix), Path(sys.prefix), package, *self.readable]):
            cmd += ["--ro-bind", str(path), str(path)]
        cmd += ["--size", size, "--tmpfs", HOME]  # a home in memory: a full disk is the sandbox's problem
        for item in sorted(self.scratch.iterdir()):
            cmd += ["--ro-bind", str(item.resolve()), f"{HOME}/{item.name}"]
        cmd += ["--chdir", HOME]
        return cmd

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """End the kernel and everything it started (the whole sandbox), and close the pipes."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.read_fd = self.write_fd = -1


def _mounts(paths: list[Path]) -> list[Path]:
    """The folders to mount read-only: existing, outside /usr, none inside another."""
    chosen: list[Path] = []
    for path in sorted({p.resolve() for p in paths if p.exists()}, key=lambda p: len(p.parts)):
        if path == Path("/usr") or Path("/usr") in path.parents:
            continue
        if any(parent == path or parent in path.parents for parent in chosen):
            continue
        chosen.append(path)
    return chosen
