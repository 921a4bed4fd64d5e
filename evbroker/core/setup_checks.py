"""The set-up checks every broker with the kit's set-up API makes, written once.

:class:`evbroker.Broker` and the real backend (:class:`evbroker.real.RedisBroker`) declare
topics, queues and workers with the same calls, so a learner's slip gets the same error on
both. The checks read plain dicts (name -> topic, queue or kind of actor); each broker keeps
its own state and decides what to store (only :func:`worker_names` moves a counter on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evbroker.core.faults import NO_FAULTS, Faults
from evbroker.core.validate import check_arity, check_not_lazy
from evbroker.errors import EvbrokerError, check_positive, did_you_mean

#: Why a queue cannot be bound to another queue, as the simulator says it.
BIND_WHY = " (a queue gets a copy of what is published to the topics it is bound to)"


def check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EvbrokerError(f"seed must be an int such as 0 or 42 (got {seed!r})")


def check_limit(label: str, value: object) -> None:
    """Refuse a limit (``settle_limit``, ``max_events``) that is not a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvbrokerError(f"{label} must be a whole number >= 1 (got {value!r})")


def check_new_name(actors: Mapping[str, str], name: object, what: str) -> None:
    """Refuse a topic, queue or worker name that is empty or already taken (names are shared)."""
    if not isinstance(name, str) or not name.strip():
        raise EvbrokerError(f"{what} name must be a non-empty string such as 'billing' (got {name!r})")
    if name in actors:
        raise EvbrokerError(
            f"{what} name {name!r} is already used by a {actors[name]}; names are shared by "
            f"topics, queues and workers, so pick another, e.g. {name + '-2'!r}"
        )


def check_topic(topics: Mapping, queues: Mapping, topic: object, where: str, why: str = BIND_WHY) -> None:
    """Refuse a name that is not a declared topic, with a did-you-mean; ``why`` follows "queues bind to topics"."""
    if topic in topics:
        return
    known = ", ".join(topics) or "(none yet)"
    if topic in queues:
        raise EvbrokerError(f"{where}: {topic!r} is a queue, not a topic; queues bind to topics{why}. Topics: {known}")
    close = did_you_mean(topic, topics)
    raise EvbrokerError(
        f"{where}: no topic named {topic!r}{close or '.'} Topics: {known}; "
        f"{'or ' if close else ''}declare it first with b.topic({topic!r})"
    )


def check_destination(topics: Mapping, queues: Mapping, dest: object, where: str) -> None:
    """Refuse a publish destination that is neither a declared topic nor a declared queue."""
    if dest in topics or dest in queues:
        return
    known = [*topics, *queues]
    close = did_you_mean(dest, known)
    raise EvbrokerError(
        f"{where}: no topic or queue named {dest!r}{close or '.'} Known: {', '.join(known) or '(none yet)'}; "
        f"{'or ' if close else ''}declare it with b.topic({dest!r}) or b.queue({dest!r})"
    )


def find_queue(queues: Mapping[str, Any], topics: Mapping, name: object, where: str) -> Any:
    """The queue called ``name``, or an error saying what it is instead (a topic, a typo)."""
    q = queues.get(name)  # type: ignore[call-overload]
    if q is not None:
        return q
    known = ", ".join(queues) or "(none yet)"
    if name in topics:
        raise EvbrokerError(
            f"{where}: {name!r} is a topic, not a queue; workers read from a queue bound to it, e.g. "
            f"b.queue('email', bind={name!r}) then b.worker('email', handler). Queues: {known}"
        )
    close = did_you_mean(name, queues)
    raise EvbrokerError(
        f"{where}: no queue named {name!r}{close or '.'} Queues: {known}; "
        f"{'or ' if close else ''}declare it with b.queue({name!r})"
    )


def max_deliveries_error(name: str, max_deliveries: object) -> EvbrokerError:
    return EvbrokerError(
        f"queue {name!r}: max_deliveries must be None (retry forever) or a whole number >= 1 "
        f"(got {max_deliveries!r}); e.g. max_deliveries=3"
    )


def bind_list(name: str, bind: str | Iterable[str] | None) -> list:
    """The topics a queue's ``bind=`` names, as a list (one name, a list of them, or None)."""
    if bind is None:
        return []
    if isinstance(bind, str):
        return [bind]
    if isinstance(bind, (list, tuple, set, frozenset)):
        return list(bind)
    raise EvbrokerError(
        f"queue {name!r}: bind must be None, a topic name or a list of topic names (got {bind!r}); "
        "e.g. bind='user.signed_up' or bind=['orders', 'refunds']"
    )


def count_error(queue: str, count: object) -> EvbrokerError:
    return EvbrokerError(f"worker {queue!r}: count must be a whole number >= 1 (got {count!r})")


def check_handler(handler: object, where: str) -> None:
    """Refuse a handler that is not a plain function taking ``(msg, ctx)``."""
    if not callable(handler):
        raise EvbrokerError(
            f"{where}: handler must be a function handler(msg, ctx) (got {handler!r}); "
            "define def handle(msg, ctx): ... and pass handle, without calling it"
        )
    check_arity(handler, 2, f"{where}: handler", "handler(msg, ctx)")
    check_not_lazy(handler, where)


def check_worker(queue: str, handler: object, service_time: object, faults: object, restart_after: object) -> Faults:
    """Check a worker's handler, service time, faults and restart delay; return its faults (NO_FAULTS for None)."""
    check_handler(handler, f"worker {queue!r}")
    if callable(service_time):
        check_arity(service_time, 1, f"worker {queue!r}: service_time", "service_time(msg) -> float")
    else:
        check_positive(
            f"worker {queue!r}: service_time", service_time, hint="; it is how long one message takes to process"
        )
    if faults is None:
        faults = NO_FAULTS
    elif not isinstance(faults, Faults):
        raise EvbrokerError(f"worker {queue!r}: faults must be eb.Faults(...) or None (got {faults!r})")
    check_positive(
        f"worker {queue!r}: restart_after", restart_after, hint="; it is how long a crashed worker stays down"
    )
    return faults


def worker_names(actors: Mapping[str, str], counts: dict[str, int], queue: str, name: object, count: int) -> list[str]:
    """The names of ``count`` new workers on ``queue``: ``name``, or ``"<name or queue>-<n>"`` numbered on.

    Every name is checked before ``counts`` (the last number used per base name) moves on, so a
    refused call changes nothing.
    """
    if name is not None and (not isinstance(name, str) or not name):
        raise EvbrokerError(f"worker {queue!r}: name must be a non-empty string (got {name!r})")
    if name is not None and count == 1:
        names = [name]
    else:
        base = name or queue
        first = counts.get(base, 0) + 1
        names = [f"{base}-{n}" for n in range(first, first + count)]
    for wname in names:
        check_new_name(actors, wname, "worker")
    if name is None or count > 1:
        counts[base] = first + count - 1
    return names


def check_publisher(by: object, faults: object) -> None:
    """Refuse a ``publish(by=...)`` that is not a producer name, or ``faults=`` that are not Faults."""
    if not isinstance(by, str) or not by:
        raise EvbrokerError(f"publish: by must be a producer name such as 'orders' (got {by!r})")
    if faults is not None and not isinstance(faults, Faults):
        raise EvbrokerError(f"publish: faults must be eb.Faults(...) or None (got {faults!r})")


__all__ = [
    "BIND_WHY",
    "DeclaredNames",
    "bind_list",
    "check_destination",
    "check_handler",
    "check_limit",
    "check_new_name",
    "check_publisher",
    "check_seed",
    "check_topic",
    "check_worker",
    "count_error",
    "find_queue",
    "max_deliveries_error",
    "worker_names",
]


class DeclaredNames:
    """What a broker with the kit's set-up API says about its names, and the checks on them.

    A broker that inherits it keeps ``_topics``, ``_queues``, ``_workers`` (name -> its own
    record of each) and ``_actors`` (name -> "topic", "queue", "worker" or "producer").
    """

    _topics: dict[str, Any]
    _queues: dict[str, Any]
    _workers: dict[str, Any]
    _actors: dict[str, str]
    #: What follows "queues bind to topics" when a queue is named where a topic belongs.
    _bind_why: str = BIND_WHY

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    @property
    def queues(self) -> list[str]:
        return list(self._queues)

    @property
    def workers(self) -> list[str]:
        return list(self._workers)

    def _check_new_name(self, name: object, what: str) -> None:
        check_new_name(self._actors, name, what)

    def _check_topic(self, topic: object, where: str) -> None:
        check_topic(self._topics, self._queues, topic, where, self._bind_why)

    def _check_destination(self, dest: object, where: str) -> None:
        if dest not in self._topics and dest not in self._queues:
            check_destination(self._topics, self._queues, dest, where)

    def _get_queue(self, name: object, where: str) -> Any:
        return find_queue(self._queues, self._topics, name, where)
