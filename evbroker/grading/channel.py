"""The two pipes between the grader and a kernel, and the references that make calls travel as records.

Both sides use :class:`Channel`. A request waits for its reply and, while it waits, serves the
other side's calls on its own references, so a learner's handler (in the kernel) can call
``ctx.effect`` on a context that lives in the grader while the grader's broker is calling the
handler. See :mod:`evbroker.grading.boundary` for the records themselves.
"""

from __future__ import annotations

import os
import select
import time
import types
from collections.abc import Callable
from typing import Any

from evbroker.grading.boundary import MAX_RECORD, ProtocolError, check_plain, decode, dump, encode, error_record, load

_FUNCTIONS = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.LambdaType)


class ChannelTimeout(BaseException):
    """The other side did not answer before the deadline."""


class ChannelClosed(BaseException):
    """The other side went away (its process ended)."""


class Channel:
    """Records in on ``read_fd``, out on ``write_fd``; references to this side's objects in a table."""

    def __init__(self, read_fd: int, write_fd: int, side: str, *, strict: bool = False) -> None:
        self.read_fd, self.write_fd, self.side = read_fd, write_fd, side
        self.strict = strict  # the grader's side: check every value arriving
        self.deadline: float | None = None
        self.objects: dict[int, Any] = {}
        self._ids: dict[int, int] = {}
        self._buffer = b""
        self.proxy: Callable[[dict[str, Any]], Any] = lambda desc: desc
        self.message: Callable[..., Any] | None = None
        self.on_audit: Callable[[dict[str, Any]], None] = lambda record: None
        self.may_reference: Callable[[Any], bool] = lambda obj: True
        self.serve_extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    # ------------------------------------------------------------------ values

    def ref(self, obj: Any) -> dict[str, Any]:
        """A reference to ``obj`` (kept in this side's table) as the other side will see it."""
        if not self.may_reference(obj):
            return {"~refused": f"a {type(obj).__name__}, which cannot be sent"}
        key = id(obj)
        if key not in self._ids:
            self._ids[key] = len(self.objects) + 1
            self.objects[self._ids[key]] = obj
        params = _params(obj) if callable(obj) else []
        kind = "function" if callable(obj) else "object"
        name = getattr(obj, "__name__", type(obj).__name__)
        desc = {"~ref": self._ids[key], "side": self.side, "kind": kind, "name": str(name), "params": params}
        if kind == "object":  # its methods, so that ``ctx.effect(...)`` is one round trip, not two
            desc["methods"] = _methods(type(obj))
        return desc

    def encode(self, value: Any) -> Any:
        return encode(value, self.ref)

    def decode(self, value: Any) -> Any:
        if self.strict:
            check_plain(value)
        return decode(value, self._resolve, self.message)

    def _resolve(self, desc: dict[str, Any]) -> Any:
        ref, side = desc.get("~ref"), desc.get("side")
        if type(ref) is not int:
            raise ProtocolError("a reference without a number")
        if side == self.side:
            if ref not in self.objects:
                raise ProtocolError(f"a reference to object {ref}, which this side never sent")
            return self.objects[ref]
        if side not in ("grader", "kernel"):
            raise ProtocolError(f"a reference to side {side!r}")
        return self.proxy(desc)

    # ------------------------------------------------------------------ records

    def send(self, record: dict[str, Any]) -> None:
        data = dump(record)
        while data:
            try:
                written = os.write(self.write_fd, data)
            except (BrokenPipeError, OSError):
                raise ChannelClosed("the other side closed its pipe") from None
            data = data[written:]

    def receive(self) -> dict[str, Any]:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_RECORD:
                raise ProtocolError("a record longer than allowed")
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                    raise ChannelTimeout()
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                raise ChannelClosed("the other side ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return load(line)

    def request(self, record: dict[str, Any]) -> dict[str, Any]:
        """Send ``record`` and return its reply ("return", "raise" or "done"), serving calls meanwhile."""
        self.send(record)
        while True:
            reply = self.receive()
            op = reply["op"]
            if op in ("return", "raise", "done"):
                return reply
            if op == "audit":
                self.on_audit(reply)
            elif op in ("call", "getattr"):
                self.send(self.serve(reply))
            else:
                raise ProtocolError(f"a {op!r} record where a reply was expected")

    def serve(self, record: dict[str, Any]) -> dict[str, Any]:
        """Carry out a call or attribute read on one of this side's objects; the reply record."""
        op = record["op"]
        if op not in ("call", "getattr"):
            if self.serve_extra is None:
                raise ProtocolError(f"a {op!r} record sent to the {self.side}")
            return self.serve_extra(record)
        target = self._resolve({"~ref": record.get("ref"), "side": self.side})
        try:
            name = record.get("name") if op == "getattr" else record.get("method")
            if name is not None:
                readable = self.may_reference(target) and not isinstance(target, _FUNCTIONS)
                if type(name) is not str or name.startswith("_") or not readable:
                    raise AttributeError(f"{name!r} is not a public attribute")
                target = getattr(target, name)
            if op == "getattr":
                result = target
            else:
                args = self.decode(record.get("args", []))
                kwargs = self.decode(record.get("kwargs", {"~dict": []}))
                if type(args) is not list or type(kwargs) is not dict or not all(type(k) is str for k in kwargs):
                    raise ProtocolError("call arguments that are not a list and a dict")
                if not callable(target):
                    raise TypeError(f"{type(target).__name__} is not callable")
                result = target(*args, **kwargs)
        except ProtocolError:
            raise
        except (ChannelTimeout, ChannelClosed):
            raise
        except Exception as exc:
            return {"op": "raise", "error": error_record(exc)}
        return {"op": "return", "value": self.encode(result)}

    def call(self, desc: dict[str, Any], args: tuple, kwargs: dict) -> Any:
        """Call the other side's object ``desc`` with ``args``; its result, or its error raised here."""
        reply = self.request(
            {"op": "call", "ref": desc["~ref"], "args": self.encode(list(args)), "kwargs": self.encode(kwargs)}
        )
        return self.result(reply)

    def call_method(self, desc: dict[str, Any], method: str, args: tuple, kwargs: dict) -> Any:
        """Call method ``method`` of the other side's object ``desc`` (one round trip)."""
        record = {"op": "call", "ref": desc["~ref"], "method": method}
        reply = self.request({**record, "args": self.encode(list(args)), "kwargs": self.encode(kwargs)})
        return self.result(reply)

    def getattr(self, desc: dict[str, Any], name: str) -> Any:
        return self.result(self.request({"op": "getattr", "ref": desc["~ref"], "name": name}))

    def result(self, reply: dict[str, Any]) -> Any:
        if reply["op"] == "return":
            return self.decode(reply.get("value"))
        if reply["op"] == "raise":
            raise self.exception(reply.get("error"))
        raise ProtocolError(f"a {reply['op']!r} record where a call's result was expected")

    def exception(self, error: Any) -> BaseException:
        """The other side's error as an exception of this side (overridden per side)."""
        return RuntimeError(str(error))


def error_fields(error: Any) -> tuple[str, str, bool]:
    """(type name, message, is the kit's own error) from an error record, checked."""
    if type(error) is not dict:
        raise ProtocolError("an error record that is not a dict")
    name, message, kit = error.get("type"), error.get("message"), error.get("evbroker")
    if type(name) is not str or type(message) is not str or type(kit) is not bool:
        raise ProtocolError("an error record with fields of the wrong type")
    return name[:100], message[:2000], kit


def _methods(kind: type) -> list[str]:
    names = []
    for name in dir(kind):
        if not name.startswith("_") and isinstance(getattr(kind, name, None), (types.FunctionType,)):
            names.append(name)
    return names


def _params(obj: Any) -> list[str]:
    import inspect

    try:
        return [
            p.name
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ] + (["*"] if any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(obj).parameters.values()) else [])
    except (TypeError, ValueError):
        return ["*"]


__all__ = ["Channel", "ChannelClosed", "ChannelTimeout", "error_fields", "error_record"]
