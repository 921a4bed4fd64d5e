"""Payloads travel like bytes: each copy is its own, so nobody can edit someone else's message.

A real broker holds a message as bytes. The producer's object is serialised at publish, and
every consumer deserialises a fresh object from those bytes; a consumer that edits what it
got changes nothing anywhere else (not another queue's copy, not the next redelivery, not
what the producer still holds). The simulator gets the same guarantee by copying:

- :func:`snapshot` at publish (``b.publish``, ``ctx.publish``, a ``publish(at=...)`` that
  only happens later): the producer may go on editing its dict, the message keeps what was
  published;
- :func:`snapshot` again for every delivery: each handler gets its own object;
- effects are snapshots too (``ctx.effect("charge", order=payload)``): a handler that edits
  its payload after recording an effect does not rewrite the effect.

Copying costs time, so immutable payloads (``str``, numbers, ``bool``, ``None``, ``bytes``, and
tuples and frozensets of them) are passed as they are: they cannot be edited anyway.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from evbroker.errors import EvbrokerError

#: Field names of the dataclasses met so far (None: not a plain dataclass, deep-copied instead).
_FIELDS: dict[type, tuple[str, ...] | None] = {}

#: Types whose values cannot change: passed on without a copy.
ATOMS = frozenset({str, int, float, bool, type(None), bytes, complex, range, type(Ellipsis)})


def snapshot(value: Any, where: str = "payload") -> Any:
    """An independent copy of ``value`` (``value`` itself when it cannot be changed)."""
    if type(value) in ATOMS:
        return value
    return _copy(value, where)


def _copy(value: Any, where: str) -> Any:
    t = type(value)
    if t in ATOMS:
        return value
    if t is dict:
        return {k: _copy(v, where) for k, v in value.items()}
    if t is list:
        return [_copy(v, where) for v in value]
    if t is tuple or t is frozenset:
        items = [_copy(v, where) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value  # nothing inside can change: share it
        return t(items)
    if t is set:
        return {_copy(v, where) for v in value}
    names = _FIELDS.get(t, ()) if t in _FIELDS else _dataclass_fields(t)
    if names and (not hasattr(value, "__dict__") or value.__dict__.keys() <= set(names)):
        # A dataclass (a Command, a Reply): copy its fields; share it if none can change.
        old = [getattr(value, n) for n in names]
        new = [_copy(v, where) for v in old]
        if all(a is b for a, b in zip(new, old, strict=True)):
            return value
        twin = object.__new__(t)
        for n, v in zip(names, new, strict=True):
            object.__setattr__(twin, n, v)
        return twin
    try:
        return copy.deepcopy(value)
    except Exception as exc:
        raise EvbrokerError(
            f"{where}: {value!r} cannot be copied ({type(exc).__name__}: {exc}); a broker carries data (a "
            "message is bytes on the wire), so send plain values: dicts, lists, strings, numbers"
        ) from None


def _dataclass_fields(t: type) -> tuple[str, ...] | None:
    names = tuple(f.name for f in dataclasses.fields(t)) if dataclasses.is_dataclass(t) else None
    _FIELDS[t] = names
    return names
