"""Set-up and call checks that turn a learner's slip into an error that teaches.

Kept apart from the broker so that the broker's own code stays about brokering: each check
here names the bad value, what was allowed, and the likely fix.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from evbroker.errors import EvbrokerError, did_you_mean

#: What a value's text looks like when it is only a memory address (``<object at 0x7f...>``).
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = frozenset({str, int, float, bool, type(None)})


def check_arity(fn: Callable, n: int, where: str, shape: str) -> None:
    """Refuse ``fn`` unless it can be called with ``n`` positional arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*([None] * n))
    except TypeError:
        raise EvbrokerError(
            f"{where} must take {n} argument{'s' if n > 1 else ''}: {shape} (got {getattr(fn, '__name__', fn)}{sig})"
        ) from None


def lazy_kind(fn: object) -> str | None:
    """``"async def"`` or ``"generator"`` when calling ``fn`` would only build a coroutine or generator."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    call = target if inspect.isfunction(target) or inspect.ismethod(target) else type(target).__dict__.get("__call__")
    if inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call):
        return "async def"
    if inspect.isasyncgenfunction(target) or inspect.isasyncgenfunction(call):
        return "async generator"
    if inspect.isgeneratorfunction(target) or inspect.isgeneratorfunction(call):
        return "generator"
    return None


def _lazy_advice(kind: str, name: str) -> str:
    return (
        f"handler {name} is {'an' if kind.startswith('a') else 'a'} {kind} function: calling it only builds "
        f"{'a coroutine' if kind == 'async def' else 'a ' + kind} and runs none of its body, yet the broker would "
        "count the message as processed and ack it. Handlers are plain functions: write def "
        f"{name}(msg, ctx): ... without async{' and without yield' if 'generator' in kind else ''} (the "
        "simulator's clock stands in for awaiting: service_time says how long the work takes)"
    )


def check_not_lazy(handler: object, where: str) -> None:
    """Refuse ``async def`` and generator handlers at set-up."""
    kind = lazy_kind(handler)
    if kind is not None:
        raise EvbrokerError(f"{where}: " + _lazy_advice(kind, getattr(handler, "__name__", "handler")))


def refuse_lazy_result(result: object, worker: str, msg_id: str, handler: object) -> None:
    """A handler returned a coroutine or generator: close it (so Python does not warn) and refuse it."""
    if inspect.iscoroutine(result):
        kind = "async def"
    elif inspect.isgenerator(result):
        kind = "generator"
    elif inspect.isasyncgen(result):
        kind = "async generator"
    else:
        return
    close = getattr(result, "close", None)
    if close is not None:
        close()
    name = getattr(handler, "__name__", "handler")
    raise EvbrokerError(f"worker {worker!r} on {msg_id}: " + _lazy_advice(kind, name))


def keywords_checked(method: Callable) -> Callable:
    """Wrap a set-up method so a misspelt keyword, or one of its keyword-only settings passed by
    position, gets an error with a did-you-mean instead of Python's TypeError."""
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]  # without self
    names = [p.name for p in params]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keyword_only = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    label = method.__name__

    @functools.wraps(method)
    def checked(self: Any, *args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in names:
                raise EvbrokerError(
                    f"{label}() got {key}=..., but it has no such setting{did_you_mean(key, names)} "
                    f"(settings: {', '.join(names)})"
                )
        if len(args) > len(positional):
            extra = args[len(positional) :]
            shown = ", ".join(f"{n}={v!r}" for n, v in zip(keyword_only, extra, strict=False))
            raise EvbrokerError(
                f"{label}() takes {', '.join(positional)} by position; everything else by name, so the call "
                f"says which setting each value is: got {len(extra)} more value{'s' if len(extra) > 1 else ''} "
                f"({', '.join(map(repr, extra))}); write e.g. {label}(..., {shown or keyword_only[0] + '=...'})"
            )
        return method(self, *args, **kwargs)

    return checked


def check_stable_text(value: object, where: str) -> None:
    """Refuse a value whose text is a memory address: it would differ on every run."""
    if type(value) in _PLAIN:
        return
    if _ADDRESS.search(str(value)):
        raise EvbrokerError(
            f"{where}={value!r} has no stable text: it shows a memory address, so the trace's table would "
            "change from one run to the next. Record plain data (a string, a number, a dict of them), e.g. "
            "the object's id or name"
        )


def check_hashable(key: object, where: str) -> None:
    """Refuse an unhashable key at the call, not after a hundred failed deliveries."""
    try:
        hash(key)
    except TypeError:
        raise EvbrokerError(
            f"{where} needs a hashable key such as a string or a tuple (got {key!r}); "
            "use e.g. msg.key or msg.payload['order'], or tuple(...) for a list"
        ) from None
