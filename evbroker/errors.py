"""The one exception the kit raises, and the helpers that make its messages teach.

Every message names the bad value, what was allowed, and the likely fix, e.g.::

    guarantee must be one of 'at-most-once', 'at-least-once', 'exactly-once'
    (got 'at-least-one'); did you mean 'at-least-once'?
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable


class EvbrokerError(Exception):
    """Raised for every mistake the kit can explain: bad set-up, bad input, a run that cannot settle."""


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` when ``value`` is close to one of ``allowed``, else ``""``."""
    if not isinstance(value, str):
        return ""
    allowed = list(allowed)
    for name in allowed:  # 'AT-LEAST-ONCE': the same name in other letter case
        if isinstance(name, str) and name != value and name.lower() == value.lower():
            return (
                f"; did you mean {name!r} (names are lower-case)?"
                if name == name.lower()
                else f"; did you mean {name!r}?"
            )
    close = difflib.get_close_matches(value, allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def one_of(what: str, value: object, allowed: Iterable[str]) -> EvbrokerError:
    """Build the standard "must be one of" error for a value outside a fixed set of names."""
    allowed = list(allowed)
    shown = ", ".join(repr(a) for a in allowed) if allowed else "(none defined yet)"
    return EvbrokerError(f"{what} must be one of {shown} (got {value!r}){did_you_mean(value, allowed)}")


def check_positive(what: str, value: object, *, allow_zero: bool = False, hint: str = "") -> float:
    """Return ``value`` as a float if it is a positive number (or zero when allowed), else raise.

    Any real number is accepted (``int``, ``float``, NumPy's ``float64`` and ``int64``, a
    ``Fraction``...: every ``numbers.Real``); a bool, NaN and the infinities are refused.
    """
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or type(value).__name__ == "bool_":
        raise EvbrokerError(f"{what} must be a number {bound} (got {value!r}){hint}")
    if not math.isfinite(value):
        raise EvbrokerError(f"{what} must be a finite number {bound} (got {value!r}){hint}")
    if value < 0 or (value == 0 and not allow_zero):
        raise EvbrokerError(f"{what} must be a number {bound} (got {value!r}){hint}")
    return float(value)


def is_real(value: object) -> bool:
    """True for a finite real number that is not a bool (``numbers.Real``, NumPy scalars included)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and type(value).__name__ != "bool_"
        and math.isfinite(value)
    )


def is_whole(value: object) -> bool:
    """True for a whole number that is not a bool (``numbers.Integral``, NumPy ints included)."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and type(value).__name__ != "bool_"
