"""The event streams as the join sees them: Kafka topics or Kinesis streams (SPEC section 9).

`adstream.platform.join_streams` picks one of the two classes here; the launcher and `adstream
run` use it to check that the streams are there, to mark where the input ends, to see whether
the running job has read up to that mark, and to give the job its table connectors.

Exactly-once differs: on Kafka the job reads committed records and writes in transactions; on
Kinesis it writes at least once, and the enrichment skips what it has already committed by the
identity each outcome record carries (docs/aws.md).
"""

import hashlib
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

from adstream.errors import AdstreamError
from adstream.events.outcomes import ALL_TOPICS, INPUT_TOPICS, KEYED_BY_IMPRESSION, OUTCOME_TOPICS
from adstream.events.schema import INPUT_STREAMS
from adstream.join.params import Connectors
from adstream.services import aws, kinesis
from adstream.services.flink_rest import FlinkRest
from adstream.settings import Settings

REFUSED_COMMIT_STOPS: Final = "adstream-sink"
"""The join's Kafka sink connector (java/.../RefusedCommitStopsSinkFactory.java): Kafka's
exactly-once sink, but a transaction the broker refuses to commit fails the job, so that no
later checkpoint commits and the checkpoint before it can write the refused records again."""
_KAFKA_POSITION: Final = """
  source_partition INT METADATA FROM 'partition' VIRTUAL,
  source_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  produced_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  source_sequence_number AS CAST(NULL AS STRING)"""

_KINESIS_POSITION: Final = """
  shard_id STRING METADATA FROM 'shard-id' VIRTUAL,
  source_sequence_number STRING METADATA FROM 'sequence-number' VIRTUAL,
  produced_at TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  source_partition AS CAST(REGEXP_EXTRACT(shard_id, '([0-9]+)$', 1) AS INT),
  source_offset AS CAST(NULL AS BIGINT)"""
"""A shard plays a partition's part: its number; the arrival time stands for the produce time."""


def instance_id(settings: Settings) -> str:
    """A short id unique to this data directory: names its consumer group and transactions."""
    return hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]


def consumer_group(settings: Settings) -> str:
    """The join's Kafka consumer group: Flink commits its offsets there at each checkpoint."""
    return f"adstream-join-{instance_id(settings)}"


@dataclass(frozen=True)
class InputEnd:
    """Where the input streams end at a moment: what a bounded run or a finish reads up to."""

    moment_ms: int
    """When it was taken (epoch milliseconds): Kinesis records that arrived before it."""
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """Kafka: the end offset of every input partition."""


class JoinStreams(Protocol):
    """What the join's launcher needs of the platform's event streams."""

    def require(self) -> None:
        """Raise a clear error unless every stream is reachable (creating missing topics)."""

    def end(self) -> InputEnd:
        """Where the input ends now."""

    def has_read_to(self, rest: FlinkRest, end: InputEnd) -> bool:
        """Whether the job running behind `rest` has handed on every input record before `end`."""

    def connectors(self) -> Connectors:
        """The job's table connectors."""

    def environment(self) -> dict[str, str]:
        """Variables the job process needs in its environment."""


class KafkaStreams:
    """Kafka topics: read committed, written in transactions (exactly once).

    The Kafka client is imported where it is used: the Kinesis path (the join on Managed
    Service for Apache Flink, `adstream.join.msf`) ships without that compiled library.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def require(self) -> None:
        """The broker answers; missing topics are created."""
        from adstream.services.kafka_client import ensure_topics, require_broker

        require_broker(self.settings)
        ensure_topics(self.settings)

    def end(self) -> InputEnd:
        """The end offsets of the input topics."""
        from adstream.services.kafka_client import end_offsets

        return InputEnd(_now_ms(), end_offsets(self.settings, INPUT_TOPICS))

    def has_read_to(self, rest: FlinkRest, end: InputEnd) -> bool:
        """Read off the sources' positions in the REST API.

        They move with every record (a partition with no new record since the job started
        shows in the offsets committed at its checkpoints instead). Input topics are written
        without transactions, so the last record of a partition is at its end offset - 1.
        """
        from adstream.services.kafka_client import caught_up

        try:
            job_id = rest.running_job()
            emitted = rest.source_offsets(job_id) if job_id is not None else None
        except AdstreamError:  # its REST API is not up yet (or no more)
            return False
        if emitted is None:
            return False
        behind = {key: to for key, to in end.offsets.items() if emitted.get(key, -1) + 1 < to}
        return caught_up(self.settings, consumer_group(self.settings), behind)

    def connectors(self) -> Connectors:
        """Read committed, from the consumer group's offsets; written in transactions."""
        instance = instance_id(self.settings)
        servers = self.settings.bootstrap_servers
        sources: dict[str, dict[str, str]] = {
            stream: {
                "connector": "kafka",
                "topic": spec.topic,
                "properties.bootstrap.servers": servers,
                "properties.group.id": consumer_group(self.settings),
                "properties.isolation.level": "read_committed",
                # Without a checkpoint to restore, continue after what earlier runs committed.
                "scan.startup.mode": "group-offsets",
                "properties.auto.offset.reset": "earliest",
                # Bytes, so that invalid UTF-8 is malformed JSON rather than silently replaced.
                "format": "raw",
            }
            for stream, spec in INPUT_STREAMS.items()
        }
        sinks = {}
        for topic in OUTCOME_TOPICS:
            sinks[topic] = {
                "connector": REFUSED_COMMIT_STOPS,
                "adstream.connector": "kafka",
                "topic": topic,
                "properties.bootstrap.servers": servers,
                "sink.delivery-guarantee": "exactly-once",
                "sink.transactional-id-prefix": f"adstream-join-{instance}-{topic}",
                "properties.transaction.timeout.ms": str(
                    int(self.settings.join_transaction_timeout.total_seconds() * 1000)
                ),
                "value.format": "json",
                "value.json.encode.decimal-as-plain-number": "true",
            }
            if topic in KEYED_BY_IMPRESSION:
                sinks[topic] |= {
                    "key.format": "raw",
                    "key.fields": "impression_id",
                    "value.fields-include": "ALL",
                }
        return Connectors(sources, _KAFKA_POSITION, sinks, keyed_sinks="")

    def environment(self) -> dict[str, str]:
        """Nothing: the connector's options say it all."""
        return {}


class KinesisStreams:
    """Kinesis streams, through the project's connector (java/, the official one's options).

    Shard positions are kept in checkpoints; outcomes are written at least once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def require(self) -> None:
        """Kinesis answers and every stream exists (`adstream up` creates them)."""
        kinesis.require_streams(self.settings, ALL_TOPICS)

    def end(self) -> InputEnd:
        """Now: the records that have arrived so far."""
        return InputEnd(_now_ms())

    def has_read_to(self, rest: FlinkRest, end: InputEnd) -> bool:
        """Read off the sources' `tipReachedAt` metrics.

        Every shard of both input streams must have been read to its tip after the mark, and
        what was read before handed on (records still in a reader's queue do not count).
        """
        try:
            job_id = rest.running_job()
            tips = rest.shard_tips(job_id) if job_id is not None else None
        except AdstreamError:
            return False
        if tips is None:
            return False
        shards = kinesis.input_shards(self.settings, INPUT_TOPICS)
        return all(tips.get(shard, 0) >= end.moment_ms for shard in shards)

    def connectors(self, *, to_latest: bool = False) -> Connectors:
        """The streams by ARN, read from the oldest record when there is no checkpoint.

        `to_latest`: each source reads what its shards hold when the job starts, then ends (the
        connector's `scan.bounded.mode`), so the job ends by itself once every pending result
        is emitted: how the MSF application runs bounded outside the service
        (`adstream.join.msf`), where no launcher watches it to drain it.
        """
        arns = kinesis.stream_arns(self.settings, ALL_TOPICS)
        reach = {"aws.region": self.settings.aws_region}
        if self.settings.aws_endpoint is not None:
            reach["aws.endpoint"] = self.settings.aws_endpoint
        sources: dict[str, dict[str, str]] = {
            stream: {
                "connector": "kinesis",
                "stream.arn": arns[spec.topic],
                **reach,
                # Without a checkpoint to restore, from the oldest record the stream holds.
                "source.init.position": "TRIM_HORIZON",
                **({"scan.bounded.mode": "latest"} if to_latest else {}),
                "format": "raw",
            }
            for stream, spec in INPUT_STREAMS.items()
        }
        sinks = {
            topic: {
                "connector": "kinesis",
                "stream.arn": arns[topic],
                **reach,
                "format": "json",
                "json.encode.decimal-as-plain-number": "true",
                # A batch not full is put after this long (default 5 s): results stay fresh.
                "sink.flush-buffer.timeout": "500",
            }
            for topic in OUTCOME_TOPICS
        }
        return Connectors(
            sources, _KINESIS_POSITION, sinks, keyed_sinks="PARTITIONED BY (impression_id)"
        )

    def environment(self) -> dict[str, str]:
        """With the emulator: its dummy credentials, and JSON rather than CBOR."""
        if not self.settings.aws_emulator:
            return {}  # the standard chain: environment, profile, instance role
        # The AWS SDK speaks CBOR to Kinesis by default; the emulator only JSON.
        return aws.sdk_environment(self.settings) | {"CBOR_ENABLED": "false"}


def _now_ms() -> int:
    return int(time.time() * 1000)
