"""Outside systems: a payment provider, an email service, called from a handler with ``ctx.call``.

Two kinds of effect reach the world from a consumer:

- a write to the consumer's **own database** (``ctx.effect``) is buffered and committed when
  processing completes, atomically with the dedupe record of exactly-once processing, so a
  duplicate's write can be rolled back before anyone sees it;
- a call to an **outside system** (``ctx.call``) happens the moment the handler makes it and is
  never rolled back: no payment provider takes part in your database transaction. Repeating it
  is safe only when the outside system dedupes by an **idempotency key** the consumer sends, as
  payment APIs do (Stripe's ``Idempotency-Key`` header, for instance): a second call with a key
  the system has already seen is answered from its record and changes nothing.

:class:`OutsideSystems` is the broker's record of every outside system and the keys each has
seen. It lives for one broker run and is deterministic like everything else.
"""

from __future__ import annotations

from typing import Any

from evbroker.errors import EvbrokerError

#: Trace kinds of an outside call: it took effect, or the system recognised its key and did nothing.
CALL = "call"
CALL_DEDUPED = "call-deduped"


def check_call(system: object, idempotency_key: object) -> None:
    """Raise a teaching error for a bad system name or an idempotency key that cannot be stored."""
    if not isinstance(system, str) or not system:
        raise EvbrokerError(
            f"ctx.call needs the outside system's name as a non-empty string, such as 'payments' (got {system!r})"
        )
    if idempotency_key is None:
        return
    try:
        hash(idempotency_key)
    except TypeError:
        raise EvbrokerError(
            f"ctx.call({system!r}, idempotency_key=...) needs a hashable key such as a string or a tuple "
            f"(got {idempotency_key!r}, a {type(idempotency_key).__name__}); the outside system stores the "
            "keys it has seen, so use e.g. msg.key, msg.payload['order'] or f\"charge-{msg.payload['order']}\""
        ) from None


class OutsideSystems:
    """The keys each outside system has seen: ``seen(system, key)`` and ``record(system, key)``."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, set[Any]] = {}

    def seen(self, system: str, key: Any) -> bool:
        """True when ``system`` already took a call with idempotency key ``key``."""
        return key is not None and key in self._keys.get(system, ())

    def record(self, system: str, key: Any) -> None:
        """``system`` took a call with ``key``: a later call with the same key is a repeat."""
        if key is not None:
            self._keys.setdefault(system, set()).add(key)

    def systems(self) -> list[str]:
        """The outside systems called so far, in first-call order."""
        return list(self._keys)
