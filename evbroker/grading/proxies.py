"""What the grader holds of a learner's kernel, and what the kernel may hold of the grader.

A learner's function arrives as a :class:`RemoteFunction`: the checks call it like any
function, and each call travels to the kernel as a record. The grader's objects a check hands
to it (a broker, a context, a fault plan) reach the kernel as references, but only the kit's
objects, and only their public attributes (:func:`may_reference`); the grader's own modules,
classes and files never do.
"""

from __future__ import annotations

import inspect
import random
import types
from typing import Any

from evbroker.errors import EvbrokerError
from evbroker.grading.channel import Channel, error_fields
from evbroker.grading.scoring import _Unanswered


class RemoteFunction:
    """A learner's function that stays in the kernel: calling it sends a record and waits for the answer."""

    def __init__(self, channel: Channel, desc: dict[str, Any]) -> None:
        self._channel, self._desc = channel, desc
        name = desc.get("name") if type(desc.get("name")) is str else "answer"
        self.__name__ = self.__qualname__ = name[:80]
        params = [p for p in desc.get("params", []) if type(p) is str]
        kinds = inspect.Parameter
        sig = [kinds(f"a{i}", kinds.POSITIONAL_ONLY) for i, p in enumerate(params) if p != "*"]
        if "*" in params:
            sig.append(kinds("args", kinds.VAR_POSITIONAL))
        self.__signature__ = inspect.Signature(sig)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._channel.call(self._desc, args, kwargs)
        except NotImplementedError as exc:  # a stub: past the broker's except Exception, as scoring.guard does
            raise _Unanswered() from exc

    def __repr__(self) -> str:
        return f"<function {self.__name__} in the learner's kernel>"


class RemoteObject:
    """Something else of the learner's (not a value, not a function): public attributes are read over the pipe."""

    def __init__(self, channel: Channel, desc: dict[str, Any]) -> None:
        self._channel, self._desc = channel, desc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._channel.getattr(self._desc, name)

    def __repr__(self) -> str:
        return f"<{self._desc.get('name', 'object')} in the learner's kernel>"


def may_reference(obj: Any) -> bool:
    """Which of the grader's objects a kernel may hold a reference to: the kit's, never the grader's."""
    if isinstance(obj, (types.ModuleType, type)):
        return False
    if isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        owner = getattr(obj, "__self__", None)
        return owner is None or may_reference(owner) or isinstance(owner, random.Random)
    module = type(obj).__module__ or ""
    kit = module.startswith("evbroker.") and not module.startswith("evbroker.grading")
    return kit or isinstance(obj, random.Random)


def _message(**fields: Any) -> Any:
    from evbroker.core.message import Message

    return Message(**fields)


def _exception(error: Any) -> BaseException:
    name, message, kit = error_fields(error)
    if kit:
        return EvbrokerError(message)
    if name == "NotImplementedError":
        return NotImplementedError(message)
    if name == "NameError":
        return NameError(message)
    if name == "Reject":  # the kit's "no, for a business reason", which the broker treats as an answer
        from evbroker.workflows.service import Reject

        return Reject(message or "rejected")
    return type(name if name.isidentifier() else "Error", (Exception,), {})(message)


def configure(channel: Channel) -> None:
    """Make ``channel`` (the grader's end) turn kernel references into stand-ins, and back."""
    channel.proxy = lambda desc: (
        RemoteFunction(channel, desc) if desc.get("kind") == "function" else RemoteObject(channel, desc)
    )
    channel.message = _message
    channel.exception = _exception
    channel.may_reference = may_reference
    make_ref = channel.ref
    channel.ref = lambda obj: dict(obj._desc) if isinstance(obj, (RemoteFunction, RemoteObject)) else make_ref(obj)
