"""Where generated or replayed records go: Kafka, Kinesis, JSON-lines files, stdout."""

import hashlib
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaError, Message, Producer

from adstream.errors import AdstreamError
from adstream.services import aws
from adstream.services.kafka_client import (
    DELIVERY_TIMEOUT_S,
    producer_config,
    require_broker,
    topic_partitions,
)
from adstream.services.kinesis import require_streams
from adstream.settings import Settings

log = logging.getLogger(__name__)

_POLL_EVERY: Final = 10_000
_WAITING_EVERY_S: Final = 1.0


class Sink(Protocol):
    """Receives records; `close` makes everything sent durable or raises."""

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Send records (parallel lists)."""

    def close(self) -> None:
        """Flush everything; raise AdstreamError when a record could not be delivered."""


class KafkaSink:
    """An idempotent producer; the first delivery error is raised, never ignored.

    While it waits for the broker (its buffer full, or flushing at the end), it calls `waiting`
    about once a second: `adstream run` checks its services there, so a broker that stopped is
    restarted while the generator holds its records, which are then delivered, once each.
    """

    def __init__(
        self,
        settings: Settings,
        topics: tuple[str, ...],
        waiting: Callable[[], None] = lambda: None,
    ) -> None:
        require_broker(settings)
        existing = topic_partitions(settings)
        for topic in topics:
            if topic not in existing:
                raise AdstreamError(
                    f"topic {topic} does not exist at {settings.bootstrap_servers}; "
                    "`adstream up` creates adstream's topics"
                )
        self.failed = 0
        self.first_error: str | None = None
        self.waiting = waiting
        self.producer = Producer({**producer_config(settings), "on_delivery": self._on_delivery})

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = f"{message.topic()}: {error.str()}"

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Queue records, waiting for the producer when its buffer is full."""
        produce, poll = self.producer.produce, self.producer.poll
        for index, (topic, key, value) in enumerate(zip(topics, keys, values, strict=True)):
            waited_since = time.monotonic()
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:  # full: wait for acknowledgements (or delivery timeouts)
                    poll(0.05)
                    if time.monotonic() - waited_since >= _WAITING_EVERY_S:
                        self.waiting()
                        waited_since = time.monotonic()
            if index % _POLL_EVERY == 0:
                poll(0)
        self._raise_on_failure()

    def close(self) -> None:
        """Wait until the broker has acknowledged every record, or the producer gave up on it.

        The producer answers for each record within its delivery timeout, so the wait ends;
        the margin covers the answers' way back.
        """
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S + 30
        while (remaining := self.producer.flush(_WAITING_EVERY_S)) and time.monotonic() < deadline:
            self.waiting()
        if remaining:
            raise AdstreamError(
                f"{remaining} records were not delivered within {DELIVERY_TIMEOUT_S + 30} s"
            )
        self._raise_on_failure()

    def _raise_on_failure(self) -> None:
        if self.failed:
            raise AdstreamError(f"{self.failed} records failed delivery; first: {self.first_error}")


class KinesisSink:
    """PutRecords in batches within Kinesis' limits; failed records are sent again, only they.

    A record's partition key is its impression_id (SPEC section 9); a record without one (a
    malformed line) is keyed by a hash of its bytes. Throttled or failed records of a batch are
    retried with exponential backoff and jitter until `retry_for` seconds pass, then the first
    error is raised: nothing is dropped silently, and a record the service accepted is never
    sent again.
    """

    MAX_RECORDS: Final = 500
    MAX_REQUEST_BYTES: Final = 5 * 1024 * 1024
    MAX_RECORD_BYTES: Final = 1024 * 1024
    """Per record: its data plus its partition key."""
    MAX_KEY_CHARS: Final = 256
    LINGER_S: Final = 0.05
    """A batch is put once its first record has waited this long, full or not: a sparse stream
    (clicks are a few per cent of the traffic) arrives as promptly as a dense one, as with
    Kafka's linger.ms. Otherwise its records would arrive seconds after the impressions they
    belong with, behind the join's watermark."""

    def __init__(
        self, settings: Settings, topics: tuple[str, ...], retry_for: float = 120.0
    ) -> None:
        require_streams(settings, topics)
        self.settings = settings
        self.client = aws.client(settings, "kinesis")
        self.retry_for = retry_for
        self.streams = {topic: settings.stream_name(topic) for topic in topics}
        self.batches: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
        self.sizes = dict.fromkeys(topics, 0)
        self.opened = dict.fromkeys(topics, 0.0)
        self.sent = 0
        self.retried = 0

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Add records to their stream's batch; a batch full or past its linger is put now."""
        for topic, key, value in zip(topics, keys, values, strict=True):
            data = value.encode()
            partition_key = _partition_key(key, data, self.MAX_KEY_CHARS)
            size = len(data) + len(partition_key.encode())
            if size > self.MAX_RECORD_BYTES:
                raise AdstreamError(
                    f"a record for {topic} is {size:,} bytes with its key; Kinesis takes at most "
                    f"{self.MAX_RECORD_BYTES:,}"
                )
            batch = self.batches[topic]
            if len(batch) == self.MAX_RECORDS or self.sizes[topic] + size > self.MAX_REQUEST_BYTES:
                self._put(topic)
                batch = self.batches[topic]
            if not batch:
                self.opened[topic] = time.monotonic()
            batch.append({"Data": data, "PartitionKey": partition_key})
            self.sizes[topic] += size
        lingered = time.monotonic() - self.LINGER_S
        for topic, batch in self.batches.items():
            if batch and self.opened[topic] <= lingered:
                self._put(topic)

    def close(self) -> None:
        """Put every batch still open."""
        for topic in self.batches:
            if self.batches[topic]:
                self._put(topic)

    def _put(self, topic: str) -> None:
        pending = self.batches[topic]
        self.batches[topic], self.sizes[topic] = [], 0
        stream = self.streams[topic]
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                answer = self.client.put_records(StreamName=stream, Records=pending)
            except ClientError as error:  # the whole call refused: nothing was stored
                if aws.error_code(error) not in _RETRIED:
                    raise AdstreamError(
                        f"could not put to {stream}: {aws.describe(error)}"
                    ) from error
                first_error = aws.describe(error)
            except BotoCoreError as error:
                raise aws.unreachable(self.settings, error) from error
            else:
                results = answer["Records"]
                failed = [
                    r for r, result in zip(pending, results, strict=True) if "ErrorCode" in result
                ]
                self.sent += len(pending) - len(failed)
                if not failed:
                    return
                first = next(result for result in results if "ErrorCode" in result)
                first_error = f"{first['ErrorCode']}: {first.get('ErrorMessage', '')}"
                pending = failed
            attempt += 1
            self.retried += len(pending)
            if time.monotonic() > deadline:
                raise AdstreamError(
                    f"{len(pending):,} records could not be put to {stream} within "
                    f"{self.retry_for:.0f} s; first error: {first_error}"
                )
            log.debug("retrying %d records to %s: %s", len(pending), stream, first_error)
            time.sleep(min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))


_RETRIED: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "LimitExceededException",
        "KMSThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
"""Refusals of a whole PutRecords call that pass with time."""


def _partition_key(key: str | None, data: bytes, max_chars: int) -> str:
    if key and len(key) <= max_chars:
        return key
    return hashlib.sha256(key.encode() if key else data).hexdigest()


class FileSink:
    """One JSON-lines file per topic in a folder, ready for `adstream produce`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.files: dict[str, TextIO] = {}

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Append each record to `<folder>/<topic>.jsonl`."""
        for topic, value in zip(topics, values, strict=True):
            file = self.files.get(topic)
            if file is None:
                file = self.files[topic] = (self.folder / f"{topic}.jsonl").open("w")
            file.write(value)
            file.write("\n")

    def close(self) -> None:
        """Close every file."""
        for file in self.files.values():
            file.close()


class StdoutSink:
    """Records as JSON lines on standard output (both streams interleaved)."""

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Print each record on its own line."""
        sys.stdout.write("".join(f"{value}\n" for value in values))

    def close(self) -> None:
        """Flush standard output."""
        sys.stdout.flush()
