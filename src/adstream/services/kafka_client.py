"""Kafka client configuration, in one place, for every producer, consumer and admin client."""

import logging
import socket
import time
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from adstream.errors import AdstreamError
from adstream.events.outcomes import ALL_TOPICS
from adstream.services.records import StoredRecord
from adstream.settings import Settings

log = logging.getLogger(__name__)
_client_log = logging.getLogger("adstream.librdkafka")
_client_log.setLevel(logging.CRITICAL)  # `--debug` lowers it


def _common(settings: Settings) -> dict[str, Any]:
    # librdkafka's own log lines go to a logger shown only with --debug, so a user sees
    # one clear line from us instead of a stream of connection retries.
    return {"bootstrap.servers": settings.bootstrap_servers, "logger": _client_log}


DELIVERY_TIMEOUT_S: Final = 300
"""How long a producer retries a record (a broker away, restarting) before it reports it
failed: librdkafka's default, written down so that a flush knows when every record has an
answer."""


def producer_config(settings: Settings) -> dict[str, Any]:
    """An idempotent, batching producer: no duplicates on retry, delivery errors reported."""
    return {
        **_common(settings),
        "enable.idempotence": True,
        "message.timeout.ms": DELIVERY_TIMEOUT_S * 1000,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "delivery.report.only.error": True,
    }


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """A consumer that sees committed data only (read_committed) from the earliest offset."""
    return {
        **_common(settings),
        "group.id": group_id,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }


def admin_client(settings: Settings) -> AdminClient:
    """An admin client for the configured cluster."""
    return AdminClient(_common(settings))


def broker_reachable(settings: Settings, timeout: float = 2.0) -> bool:
    """Whether a broker answers a metadata request within `timeout` seconds.

    When no bootstrap server accepts a connection at all, that is the answer at once: the
    client would retry until the timeout.
    """
    if not any(_accepts(server, timeout) for server in settings.bootstrap_servers.split(",")):
        return False
    try:
        admin_client(settings).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _accepts(server: str, timeout: float) -> bool:
    """Whether `host:port` accepts a TCP connection."""
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def require_broker(settings: Settings) -> None:
    """Raise a clear error when no broker answers at the configured address."""
    if not broker_reachable(settings, timeout=5.0):
        hint = "start it with `adstream up`" if settings.uses_local_kafka else "check the address"
        raise AdstreamError(f"Kafka is not reachable at {settings.bootstrap_servers}; {hint}")


def ensure_topics(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> list[str]:
    """Create the missing topics with the configured partition count; return those created."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=30).topics)
    missing = [topic for topic in topics if topic not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(topic, num_partitions=settings.topic_partitions, replication_factor=1)
            for topic in missing
        ],
        operation_timeout=30,
    )
    for topic, future in futures.items():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise AdstreamError(
                    f"could not create topic {topic}: {error.args[0].str()}"
                ) from error
    return missing


def topic_partitions(settings: Settings) -> dict[str, int]:
    """The topics of the cluster with their partition counts (internal topics left out)."""
    metadata = admin_client(settings).list_topics(timeout=10)
    return {
        name: len(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    }


_TRANSIENT: Final = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._WAIT_COORD,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)
"""Errors that pass: the client raises them from `committed` and offset lookups without
marking them retriable (a broker still electing leaders or loading its group coordinator, or
one too busy to answer in time)."""


def transient(error: KafkaException) -> bool:
    """Whether asking again later may succeed."""
    kafka_error: KafkaError = error.args[0]
    return bool(kafka_error.retriable()) or kafka_error.code() in _TRANSIENT


def end_offsets(settings: Settings, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    """The current end offset of every partition of `topics` (waits out a new topic's election)."""
    consumer = Consumer(consumer_config(settings, "adstream-reader"))
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                return _end_offsets(consumer, topics)
            except KafkaException as error:
                if not transient(error) or time.monotonic() > deadline:
                    reason = error.args[0].str()
                    raise AdstreamError(f"cannot read end offsets: {reason}") from error
                time.sleep(0.5)
    finally:
        consumer.close()


def _end_offsets(consumer: Consumer, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    ends = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise AdstreamError(f"cannot read topic {topic}: {metadata.error.str()}")
        for partition in sorted(metadata.partitions):
            tp = TopicPartition(topic, partition)
            ends[(topic, partition)] = consumer.get_watermark_offsets(tp, timeout=30)[1]
    return ends


def offset_span(settings: Settings, topic: str) -> int:
    """Records in a topic written without transactions (each offset is one record)."""
    consumer = Consumer(consumer_config(settings, "adstream-reader"))
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        spans = (
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            for partition in metadata.partitions
        )
        return sum(high - low for low, high in spans)
    finally:
        consumer.close()


def caught_up(settings: Settings, group_id: str, ends: dict[tuple[str, int], int]) -> bool:
    """Whether the group has committed at least `ends` in every partition (nothing to read)."""
    consumer = Consumer(consumer_config(settings, group_id))  # reads offsets, joins no group
    try:
        wanted = [TopicPartition(t, p) for (t, p), end in ends.items() if end > 0]
        if not wanted:
            return True
        try:
            committed = consumer.committed(wanted, timeout=30)
        except KafkaException as error:
            if transient(error):  # e.g. the group coordinator is still starting
                return False
            raise
        return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed)
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, idle_timeout: float = 30.0) -> list[StoredRecord]:
    """Every committed record of `topic` up to its current end (read_committed), in order.

    Raises:
        AdstreamError: no broker answers (one line naming the fix), or the topic is unreadable.
    """
    require_broker(settings)  # else the client retries for its whole timeout, then a traceback
    consumer = Consumer(
        {**consumer_config(settings, "adstream-reader"), "enable.partition.eof": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise AdstreamError(f"cannot read topic {topic}: {metadata.error.str()}")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions
        }
        consumer.assign(partitions)
        records: list[StoredRecord] = []
        last_progress = time.monotonic()
        while not _caught_up(consumer, partitions, ends):
            messages = consumer.consume(num_messages=10_000, timeout=1.0)
            if messages:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > idle_timeout:
                break  # an open transaction holds the end back: stop at what is committed
            for message in messages:
                if message.error() is not None:
                    raise AdstreamError(f"reading {topic}: {message.error().str()}")
                records.append(
                    StoredRecord(
                        topic,
                        message.partition(),
                        message.offset(),
                        message.timestamp()[1],
                        message.key(),
                        message.value(),
                    )
                )
        return records
    finally:
        consumer.close()


def _caught_up(consumer: Consumer, partitions: list[TopicPartition], ends: dict[int, int]) -> bool:
    # A position below 0 means nothing was fetched yet from that partition.
    return all(
        position.offset >= ends[position.partition]
        for position in consumer.position(partitions)
        if ends[position.partition] > 0
    )
