"""Broker presets: ``b.queue(name, like="sqs")`` sets a queue up with a real broker's defaults.

A preset sets how the queue notices a dead consumer (``crash_detection``), how long it waits for
an ack (``ack_timeout``), how many deliveries a message gets before it is dead-lettered
(``max_deliveries``) and the default ``prefetch`` of the workers that later read the queue.
Arguments you pass yourself always win over the preset.

The kit's time unit is read as one second here, so a 30-minute timeout is ``1800``.

Sources, each checked against the product's own documentation:

- ``"rabbitmq"`` (classic queue, AMQP 0-9-1, manual acks): a consumer's unacknowledged messages
  are requeued when its channel or connection closes, which for a crashed process is at once
  (heartbeats catch a host that vanished; rabbitmq.com/docs/confirms, "Automatic requeueing");
  ``consumer_timeout`` defaults to 1,800,000 ms = 30 minutes and is meant for consumers that hang
  (rabbitmq.com/docs/consumers, "Delivery acknowledgement timeout"); classic queues have no
  delivery limit; the prefetch count is unlimited unless the consumer sets ``basic.qos``
  ("A value of 0 is treated as infinite", rabbitmq.com/docs/consumer-prefetch), so messages are
  pushed round-robin, as the Work Queues tutorial shows before it introduces ``prefetch_count=1``.
- ``"rabbitmq-quorum"``: the same, plus RabbitMQ 4's quorum-queue ``delivery-limit``, 20 by
  default: past it a message is dead-lettered, or dropped without a dead-letter exchange
  (rabbitmq.com/docs/quorum-queues, "Poison message handling": "Starting with RabbitMQ 4.0,
  the delivery limit for quorum queues defaults to 20"; rabbitmq-server pull request #11937).
- ``"sqs"`` (standard queue): a crash is noticed only when the visibility timeout runs out,
  30 seconds by default (docs.aws.amazon.com, SQS Developer Guide, "Visibility timeout";
  ``ChangeMessageVisibility``: "The default visibility timeout for a message is 30 seconds");
  without a redrive policy nothing is ever moved to a dead-letter queue (``maxReceiveCount``
  lives in the redrive policy, "Using dead-letter queues"): the message is received again and
  again until its retention period ends; ``ReceiveMessage`` returns one message unless asked for
  more (``MaxNumberOfMessages`` defaults to 1), so each worker holds one at a time.
- ``"redis-streams"`` (a consumer group read with ``XREADGROUP``): a delivered entry sits in the
  group's pending entries list until ``XACK``; a crashed consumer's entries are taken over only
  when another consumer claims those idle for at least a ``min-idle-time`` that the claiming
  consumer chooses (``XAUTOCLAIM``, redis.io/docs/latest/commands/xautoclaim): there is no
  server default, the kit picks 60; Redis counts deliveries but moves nothing to a dead-letter
  stream by itself; the kit reads with ``COUNT 1``.

Kafka is not a preset: its consumer group notices a dead consumer through
``session.timeout.ms``, rebalances the partitions, and the next owner replays from the last
committed offset. That belongs to a partitioned log, which the kit does not model yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from evbroker.errors import EvbrokerError, did_you_mean

CRASH_DETECTIONS = ("timeout", "disconnect")


@dataclass(frozen=True, slots=True)
class Preset:
    """A real broker's documented defaults, as queue and worker settings of the kit."""

    name: str
    crash_detection: str
    ack_timeout: float
    max_deliveries: int | None
    prefetch: int | None  # the default prefetch of workers on the queue; None = unlimited
    source: str

    def settings(self) -> dict[str, object]:
        """The settings a preset fills in, by argument name."""
        return {
            "crash_detection": self.crash_detection,
            "ack_timeout": self.ack_timeout,
            "max_deliveries": self.max_deliveries,
            "prefetch": self.prefetch,
        }


PRESETS: dict[str, Preset] = {
    "rabbitmq": Preset(
        "rabbitmq",
        "disconnect",
        1800.0,
        None,
        None,
        "RabbitMQ classic queue: requeue on connection close; consumer_timeout 30 min; no delivery limit; "
        "no prefetch limit unless basic.qos is set",
    ),
    "rabbitmq-quorum": Preset(
        "rabbitmq-quorum",
        "disconnect",
        1800.0,
        20,
        None,
        "RabbitMQ 4 quorum queue: requeue on connection close; consumer_timeout 30 min; delivery-limit 20; "
        "no prefetch limit unless basic.qos is set",
    ),
    "sqs": Preset(
        "sqs",
        "timeout",
        30.0,
        None,
        1,
        "Amazon SQS standard queue: visibility timeout 30 s; no dead-letter queue without a redrive policy; "
        "MaxNumberOfMessages 1",
    ),
    "redis-streams": Preset(
        "redis-streams",
        "timeout",
        60.0,
        None,
        1,
        "Redis Streams consumer group: pending entries reclaimed by XAUTOCLAIM after a min-idle-time the "
        "consumer chooses (60 here); no dead-letter stream; XREADGROUP COUNT 1",
    ),
}


def get_preset(like: object) -> Preset:
    """The preset called ``like``, or an error naming the presets and the closest one."""
    preset = PRESETS.get(like) if isinstance(like, str) else None
    if preset is not None:
        return preset
    shown = ", ".join(repr(p) for p in PRESETS)
    hint = did_you_mean(like, PRESETS)
    if isinstance(like, str) and like.lower().startswith("kafka"):
        hint += (
            "; Kafka is not a preset: its consumer groups (session timeout, rebalance, replay from the "
            "last committed offset) belong to a partitioned log, which the kit does not model yet"
        )
    raise EvbrokerError(f"queue like= must be one of {shown} (got {like!r}){hint}")


def check_crash_detection(queue: str, value: object) -> str:
    """Return ``value`` when it is a crash-detection mode, else raise a teaching error."""
    if value in CRASH_DETECTIONS:
        return value  # type: ignore[return-value]
    raise EvbrokerError(
        f"queue {queue!r}: crash_detection must be one of 'timeout' (only ack_timeout notices a dead "
        f"consumer, as SQS and Redis Streams do) or 'disconnect' (its unacked copies are requeued as soon "
        f"as its connection drops, as AMQP brokers do) (got {value!r}){did_you_mean(value, CRASH_DETECTIONS)}"
    )


def check_prefetch(where: str, value: object) -> int | None:
    """Return ``value`` when it is a prefetch (a whole number >= 1, or None), else raise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvbrokerError(
            f"{where}: prefetch must be a whole number >= 1 or None for no limit (got {value!r}); "
            "1 is fair dispatch (RabbitMQ basic.qos prefetch_count=1), None is RabbitMQ's default push "
            "with no limit"
            + ("; RabbitMQ's prefetch_count=0 means no limit: write prefetch=None" if value == 0 else "")
        )
    return value
