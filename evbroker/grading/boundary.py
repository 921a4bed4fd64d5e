"""What crosses between the grader and a submission's kernel, and what never does.

The grader (trusted) and the kernel that runs a learner's notebook (untrusted, sandboxed)
share nothing but two pipes. One JSON record per line travels on them:

    grader -> kernel   {"op": "run", "source": ...}          run a cell's source
                       {"op": "answer", "names": [...]}       send the values these names hold
    either way         {"op": "call", "ref": n, "args": [...], "kwargs": {...}}
                       {"op": "getattr", "ref": n, "name": "..."}   a public attribute only
                       {"op": "return", "value": ...} | {"op": "raise", "error": {...}}
    kernel -> grader   {"op": "done", "ok": bool, "error": {...}}   a cell finished
                       {"op": "audit", "event": "...", "detail": "..."}  something a learner should not do

What crosses is plain data: ``None``, ``bool``, ``int``, ``float``, ``str``, lists, and the
tagged forms below, checked strictly on arrival (exact built-in types, bounded size and depth).

    {"~tuple": [...]}          a tuple          {"~dict": [[k, v], ...]}   a dict
    {"~message": {...}}        an evbroker Message (a named tuple of plain data)
    {"~ref": n, "side": "grader"|"kernel", "kind": "function"|"object", "name": str, "params": [...]}
                               something that stays where it lives; calls on it travel as records
    {"~refused": "why"}        a value the kernel would not send by value (a subclass of int ...)
    {"~kit": {"type": "Saga", "state": {...}}}
                               a kit object an answer is built of (Saga, Step, Service, Reaction),
                               as its attributes; the grader rebuilds it, functions inside as references

What never crosses: objects, functions, modules, exceptions with tracebacks, file paths of the
grader. An answer the learner computes reaches the checks as a value or as a reference whose
every use is a record on the pipe; the checks, the registry and the scores live only in the
grader's process, which the kernel cannot see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

#: The longest record either side accepts (bytes), and the deepest nesting of a value.
MAX_RECORD = 8 * 1024 * 1024
MAX_DEPTH = 40
OPS = frozenset({"run", "answer", "call", "getattr", "return", "raise", "done", "audit", "ready"})
TAGS = frozenset({"~tuple", "~dict", "~message", "~ref", "~refused", "~kit"})
#: Kit objects an answer may be built of, sent as their state: a Saga of Steps, a Service and its Reactions.
KIT_CLASSES = {
    "Saga": "evbroker.workflows.saga",
    "Step": "evbroker.workflows.saga",
    "Service": "evbroker.workflows.service",
    "Reaction": "evbroker.workflows.service",
}
MESSAGE_FIELDS = ("id", "payload", "key", "topic", "queue", "attempt")


class ProtocolError(BaseException):
    """A record that breaks the rules above: the kernel sent something no honest kernel sends.

    A ``BaseException``, so that no ``except Exception`` in a broker or a check swallows it.
    """


def dump(record: dict[str, Any]) -> bytes:
    """One record as a line of JSON (ASCII only, so a line break inside a value cannot split it)."""
    return json.dumps(record, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode() + b"\n"


def load(line: bytes) -> dict[str, Any]:
    """Parse one record and check its shape; :class:`ProtocolError` when it is not one."""
    if len(line) > MAX_RECORD:
        raise ProtocolError(f"a record of {len(line)} bytes (at most {MAX_RECORD})")
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a JSON record: {exc}") from None
    if type(record) is not dict or type(record.get("op")) is not str or record["op"] not in OPS:
        raise ProtocolError(f"not a record with a known op: {str(record)[:80]}")
    return record


def check_plain(value: Any, depth: int = 0) -> None:
    """Raise :class:`ProtocolError` unless ``value`` (decoded JSON) holds only exact JSON types and known tags."""
    if depth > MAX_DEPTH:
        raise ProtocolError("a value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return
    if kind is float:
        return
    if kind is list:
        for item in value:
            check_plain(item, depth + 1)
        return
    if kind is dict and len(value) >= 1:
        tag = next(iter(value))
        if tag not in TAGS:
            raise ProtocolError(f"an unknown tag {str(tag)[:40]!r}")
        body = value[tag]
        if tag in ("~message", "~kit"):
            if type(body) is not dict:
                raise ProtocolError(f"{tag} holding a {type(body).__name__}")
            items = body.values() if tag == "~message" else [body.get("type"), body.get("state")]
        else:
            items = value.values()
        for item in items:
            check_plain(item, depth + 1)
        return
    raise ProtocolError(f"a value of type {kind.__name__}")


def encode(value: Any, make_ref: Callable[[Any], dict[str, Any]], depth: int = 0) -> Any:
    """``value`` as plain data; what is not plain data becomes a reference made by ``make_ref``."""
    if depth > MAX_DEPTH:
        return {"~refused": "a value nested too deeply"}
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value
    if kind is list:
        return [encode(v, make_ref, depth + 1) for v in value]
    if kind is tuple:
        return {"~tuple": [encode(v, make_ref, depth + 1) for v in value]}
    if kind is dict:
        return {"~dict": [[encode(k, make_ref, depth + 1), encode(v, make_ref, depth + 1)] for k, v in value.items()]}
    if _is_message(value):
        return {"~message": {f: encode(getattr(value, f), make_ref, depth + 1) for f in MESSAGE_FIELDS}}
    if KIT_CLASSES.get(kind.__name__) == kind.__module__:
        return {"~kit": {"type": kind.__name__, "state": encode(_state(value), make_ref, depth + 1)}}
    by_value = real_number(value)
    if by_value is not None:
        return by_value
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return {
            "~refused": f"a subclass of {_builtin_base(value)} ({kind.__name__}); use a plain {_builtin_base(value)}"
        }
    return make_ref(value)


def decode(value: Any, resolve: Callable[[dict[str, Any]], Any], message: Callable[..., Any] | None = None) -> Any:
    """The inverse of :func:`encode` for data that passed :func:`check_plain`."""
    if type(value) is list:
        return [decode(v, resolve, message) for v in value]
    if type(value) is not dict:
        return value
    tag, body = next(iter(value.items()))
    if tag == "~tuple":
        _expect(body, list, tag)
        return tuple(decode(v, resolve, message) for v in body)
    if tag == "~dict":
        _expect(body, list, tag)
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ProtocolError("a ~dict entry that is not a [key, value] pair")
            key = decode(pair[0], resolve, message)
            try:
                out[key] = decode(pair[1], resolve, message)
            except TypeError:
                raise ProtocolError("a ~dict key that cannot be a key") from None
        return out
    if tag == "~message":
        _expect(body, dict, tag)
        if set(body) != set(MESSAGE_FIELDS):
            raise ProtocolError("a ~message without exactly the fields of a Message")
        fields = {f: decode(body[f], resolve, message) for f in MESSAGE_FIELDS}
        return message(**fields) if message else fields
    if tag == "~ref":
        return resolve(value)
    if tag == "~refused":
        _expect(body, str, tag)
        return Refused(body)
    if tag == "~kit":
        _expect(body, dict, tag)
        name = body.get("type")
        if type(name) is not str or name not in KIT_CLASSES:
            raise ProtocolError(f"a ~kit object of type {str(name)[:40]!r}")
        state = decode(body.get("state"), resolve, message)
        if type(state) is not dict or not all(type(k) is str for k in state):
            raise ProtocolError("a ~kit object whose state is not a dict of attributes")
        import importlib

        cls = getattr(importlib.import_module(KIT_CLASSES[name]), name)
        obj = cls.__new__(cls)
        for attr, item in state.items():
            object.__setattr__(obj, attr, item)
        return obj
    raise ProtocolError(f"an unknown tag {tag!r}")


class Refused:
    """A value the kernel would not send as plain data; ``why`` says what it was."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.why}>"


def real_number(value: Any) -> int | float | None:
    """A number from numpy (or another real-number type that is not a built-in subclass), by value."""
    import numbers

    kind = type(value)
    if kind in (bool, int, float):
        return None
    from_numpy = (getattr(kind, "__module__", "") or "").split(".")[0] == "numpy"
    if isinstance(value, (int, float, bool)) and not from_numpy:
        return None  # a learner's own subclass of a built-in: refused, not converted
    if isinstance(value, numbers.Integral):
        if kind.__name__ == "bool_":
            return None
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if not math.isnan(number) else None
    return None


def error_record(exc: BaseException) -> dict[str, Any]:
    """An exception as data: its type's name, its message and whether it is the kit's own error."""
    names = [k.__name__ for k in type(exc).__mro__]
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "evbroker": "EvbrokerError" in names}


def _state(value: Any) -> dict[str, Any]:
    if hasattr(value, "__dict__"):
        return dict(vars(value))
    slots = [s for k in type(value).__mro__ for s in getattr(k, "__slots__", ())]
    return {s: getattr(value, s) for s in slots if hasattr(value, s)}


def _is_message(value: Any) -> bool:
    kind = type(value)
    return kind.__name__ == "Message" and getattr(kind, "_fields", None) == MESSAGE_FIELDS


def _builtin_base(value: Any) -> str:
    for base in (bool, int, float, str, list, tuple, dict):
        if isinstance(value, base):
            return base.__name__
    return type(value).__name__


def _expect(body: Any, kind: type, tag: str) -> None:
    if type(body) is not kind:
        raise ProtocolError(f"{tag} holding a {type(body).__name__}")
