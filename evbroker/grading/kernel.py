"""The kernel a submission runs in: an IPython shell inside the sandbox, driven by records.

Started by :mod:`evbroker.grading.sandbox` as ``python -m evbroker.grading.kernel LIMITS``
with the grader's pipes on file descriptors 3 (in) and 4 (out). It sets its resource limits
before it reads anything, runs the cells it is sent, sends the values of answer names as
plain data, and calls the learner's functions when the grader asks, with the grader's
objects (a broker, a context) standing in as references whose every use travels back as a
record. Nothing it sends is trusted: the grader checks every record.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from typing import Any

IN_FD, OUT_FD = 3, 4
#: Audit events a learner's notebook has no reason to raise (reported to the grader as they happen).
SUSPECT_EVENTS = frozenset(
    {
        "os.kill",
        "os.killpg",
        "os.fork",
        "os.forkpty",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "subprocess.Popen",
        "socket.connect",
        "socket.bind",
        "sys.setprofile",
        "sys.settrace",
    }
)
SUSPECT_PATHS = ("/proc/", "solutions", "gradebook", "submitted", "submissions")


def set_limits(limits: dict[str, int]) -> None:
    """Memory (address space), CPU seconds, processes and file size, as hard limits."""
    table = {
        "memory": resource.RLIMIT_AS,
        "cpu": resource.RLIMIT_CPU,
        "nproc": resource.RLIMIT_NPROC,
        "fsize": resource.RLIMIT_FSIZE,
    }
    for name, value in limits.items():
        if name in table and value:
            resource.setrlimit(table[name], (int(value), int(value)))


def main() -> None:
    settings = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    set_limits(settings)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    Kernel(settings.get("in", IN_FD), settings.get("out", OUT_FD)).serve_forever()


class Kernel:
    def __init__(self, read_fd: int = IN_FD, write_fd: int = OUT_FD) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        from evbroker.core.message import Message
        from evbroker.errors import EvbrokerError
        from evbroker.grading.channel import Channel

        self.EvbrokerError = EvbrokerError
        self.shell = InteractiveShell.instance()
        self.channel = Channel(read_fd, write_fd, "kernel")
        self.channel.proxy = self.proxy
        self.channel.message = Message
        self.channel.exception = self.exception
        self.channel.serve_extra = self.serve_extra
        self.active = False
        serve = self.channel.serve

        def serve_as_learner(record: dict[str, Any]) -> dict[str, Any]:
            was, self.active = self.active, True
            try:
                return serve(record)
            finally:
                self.active = was

        self.channel.serve = serve_as_learner
        make_ref = self.channel.ref
        self.channel.ref = lambda obj: dict(obj._desc) if isinstance(obj, GraderObject) else make_ref(obj)
        sys.addaudithook(self.audit)

    def audit(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        detail = ""
        if event == "subprocess.Popen" and args and args[0] == "fc-list":
            return  # matplotlib building its font cache
        if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            near_proc = path.rstrip("/") == "/proc" or path.startswith("/proc/")
            if (near_proc or any(p in path for p in SUSPECT_PATHS)) and not path.startswith("/proc/self"):
                detail = path
            else:
                return
        elif event not in SUSPECT_EVENTS:
            return
        self.active = False
        try:
            self.channel.send({"op": "audit", "event": event, "detail": detail or repr(args)[:200]})
        finally:
            self.active = True

    def serve_forever(self) -> None:
        from evbroker.grading.channel import ChannelClosed

        self.channel.send({"op": "ready"})
        while True:
            try:
                record = self.channel.receive()
            except ChannelClosed:
                return
            self.channel.send(
                self.channel.serve(record) if record["op"] in ("call", "getattr") else self.serve_extra(record)
            )

    def serve_extra(self, record: dict[str, Any]) -> dict[str, Any]:
        from evbroker.grading.boundary import error_record

        if record["op"] == "run":
            self.active = True
            try:
                result = self.shell.run_cell(record.get("source", ""), store_history=False, silent=True)
            finally:
                self.active = False
            error = result.error_before_exec or result.error_in_exec
            return {"op": "done", "ok": error is None, "error": error_record(error) if error else None}
        if record["op"] == "answer":
            values = []
            for name in record.get("names", []):
                if name not in self.shell.user_ns:
                    return {"op": "raise", "error": {"type": "NameError", "message": name, "evbroker": False}}
                values.append(self.shell.user_ns[name])
            return {"op": "return", "value": self.channel.encode(values)}
        return {"op": "raise", "error": {"type": "ValueError", "message": "unknown op", "evbroker": False}}

    def proxy(self, desc: dict[str, Any]) -> Any:
        return GraderFunction(self, desc) if desc.get("kind") == "function" else GraderObject(self, desc)

    def exception(self, error: Any) -> BaseException:
        from evbroker.grading.channel import error_fields

        name, message, kit = error_fields(error)
        if kit:
            return self.EvbrokerError(message)
        if name == "NotImplementedError":
            return NotImplementedError(message)
        if name == "Reject":
            from evbroker.workflows.service import Reject

            return Reject(message or "rejected")
        builtin = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
        kind = builtin.get(name)
        if isinstance(kind, type) and issubclass(kind, Exception):
            return kind(message)
        return type(name, (Exception,), {})(message)


class GraderObject:
    """An object that lives in the grader (a broker, a context): attribute reads and calls go back as records."""

    def __init__(self, kernel: Kernel, desc: dict[str, Any]) -> None:
        object.__setattr__(self, "_kernel", kernel)
        object.__setattr__(self, "_desc", desc)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._desc.get("methods", ()):
            return GraderMethod(self, name)
        self._kernel.active = False
        try:
            return self._kernel.channel.getattr(self._desc, name)
        finally:
            self._kernel.active = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._kernel.active = False
        try:
            return self._kernel.channel.call(self._desc, args, kwargs)
        finally:
            self._kernel.active = True

    def __repr__(self) -> str:
        return f"<{self._desc.get('name', 'object')}>"


class GraderFunction(GraderObject):
    pass


class GraderMethod:
    """A method of an object that lives in the grader: calling it is one record there and back."""

    def __init__(self, owner: GraderObject, name: str) -> None:
        self._owner, self._name = owner, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kernel = self._owner._kernel
        kernel.active = False
        try:
            return kernel.channel.call_method(self._owner._desc, self._name, args, kwargs)
        finally:
            kernel.active = True

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._owner!r}>"


if __name__ == "__main__":
    main()
