"""The one exception the kit raises, and the helpers that make its messages teach.

Every message names the bad value, what was allowed, and the likely fix, e.g.::

    guarantee must be one of 'at-most-once', 'at-least-once', 'exactly-once'
    (got 'at-least-one'); did you mean 'at-least-once'?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvbrokerError(Exception):
    """Raised for every mistake the kit can explain: bad set-up, bad input, a run that cannot settle."""


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` when ``value`` is close to one of ``allowed``, else ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def one_of(what: str, value: object, allowed: Iterable[str]) -> EvbrokerError:
    """Build the standard "must be one of" error for a value outside a fixed set of names."""
    allowed = list(allowed)
    shown = ", ".join(repr(a) for a in allowed) if allowed else "(none defined yet)"
    return EvbrokerError(f"{what} must be one of {shown} (got {value!r}){did_you_mean(value, allowed)}")


def check_positive(what: str, value: object, *, allow_zero: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float if it is a positive number (or zero when allowed), else raise."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvbrokerError(f"{what} must be a number {bound} (got {value!r}){hint}")
    if value != value or value in (float("inf"), float("-inf")):
        raise EvbrokerError(f"{what} must be a finite number {bound} (got {value!r}){hint}")
    if value < 0 or (value == 0 and not allow_zero):
        raise EvbrokerError(f"{what} must be a number {bound} (got {value!r}){hint}")
    return float(value)
