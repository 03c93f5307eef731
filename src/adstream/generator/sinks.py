"""Where generated or replayed records go: Kafka, JSON-lines files, stdout."""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, Protocol, TextIO

from confluent_kafka import KafkaError, Message, Producer

from adstream.errors import AdstreamError
from adstream.services.kafka_client import producer_config, require_broker, topic_partitions
from adstream.settings import Settings

SinkName = Literal["kafka", "file", "stdout"]
_POLL_EVERY: Final = 10_000


class Sink(Protocol):
    """Receives records; `close` makes everything sent durable or raises."""

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        """Send records (parallel lists)."""

    def close(self) -> None:
        """Flush everything; raise AdstreamError when a record could not be delivered."""


class KafkaSink:
    """An idempotent producer; the first delivery error is raised, never ignored."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
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
            try:
                produce(topic, value, key)
            except BufferError:
                poll(0.05)
                produce(topic, value, key)
            if index % _POLL_EVERY == 0:
                poll(0)
        self._raise_on_failure()

    def close(self) -> None:
        """Wait until every record is acknowledged by the broker."""
        remaining = self.producer.flush(120)
        if remaining:
            raise AdstreamError(f"{remaining} records were not delivered within 120 s")
        self._raise_on_failure()

    def _raise_on_failure(self) -> None:
        if self.failed:
            raise AdstreamError(f"{self.failed} records failed delivery; first: {self.first_error}")


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
