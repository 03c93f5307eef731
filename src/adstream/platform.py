"""The platform seam (SPEC section 9): the one module that picks Kafka or Kinesis.

Everything else asks here for the event streams' services, a sink to produce to and the
records of a stream, and never tests `settings.platform` itself.
"""

from collections.abc import Callable
from typing import Any, Final

from adstream.enrich.params import OutcomeStreams
from adstream.errors import AdstreamError
from adstream.events.outcomes import ALL_TOPICS, INPUT_TOPICS, OUTCOME_TOPICS
from adstream.generator.sinks import KafkaSink, KinesisSink, Sink
from adstream.join.streams import JoinStreams, KafkaStreams, KinesisStreams
from adstream.lakehouse.catalog import warehouse, warehouse_bucket
from adstream.services import aws, kinesis
from adstream.services.aws_emulator import AwsEmulator
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import (
    ensure_topics,
    offset_span,
    read_topic,
    require_broker,
    topic_partitions,
)
from adstream.services.records import StoredRecord
from adstream.settings import Settings


def on_aws(settings: Settings) -> bool:
    """Whether the event streams are Kinesis streams."""
    return settings.platform == "aws"


def start_services(settings: Settings) -> list[str]:
    """Start what the platform needs locally and create the streams; return what to tell."""
    if not on_aws(settings):
        if not settings.uses_local_kafka:
            raise AdstreamError(
                "kafka_bootstrap_servers points at an external cluster; adstream only manages "
                "its local broker"
            )
        if KafkaBroker(settings).start():
            return []
        return [f"Kafka already running at {settings.bootstrap_servers}"]
    told = []
    if settings.aws_emulator:
        emulator = AwsEmulator(settings)
        if not emulator.start():
            told.append(f"AWS emulator already running at {emulator.endpoint}")
    created = kinesis.ensure_streams(settings)
    told.append(
        f"Kinesis streams at {settings.aws_endpoint or settings.aws_region}: "
        f"{', '.join(created) + ' created' if created else 'all there'}"
    )
    bucket = warehouse_bucket(settings)
    if bucket is not None:
        state = "created" if aws.ensure_bucket(settings, bucket) else "there"
        told.append(f"warehouse {warehouse(settings)}: bucket {bucket} {state}")
    return told


def stop_services(settings: Settings) -> list[str]:
    """Stop this data directory's Kafka and emulator, whichever run; return what to tell."""
    told = []
    if not KafkaBroker(settings).stop():
        told.append(f"Kafka is not running (data dir {settings.data_dir})")
    if AwsEmulator(settings).stop():
        told.append("AWS emulator stopped; its streams, buckets and tables are gone with it")
    elif settings.aws_emulator:
        told.append(f"the AWS emulator is not running (data dir {settings.data_dir})")
    return told


def status_lines(settings: Settings) -> tuple[list[str], bool]:
    """The platform's services and streams, and whether the event streams are reachable."""
    lines = []
    broker = KafkaBroker(settings).status()
    if broker.pid is None:
        lines.append(f"kafka: stopped (data dir {settings.data_dir})")
    else:
        lines.append(f"kafka: running, pid {broker.pid}, at {broker.bootstrap_servers}")
        lines += [f"  topic {t}: {n} partitions" for t, n in broker.topics.items()]
    emulator = AwsEmulator(settings).status()
    if emulator.pid is not None:
        lines.append(f"aws emulator: running, pid {emulator.pid}, at {emulator.endpoint}")
    elif settings.aws_emulator:
        lines.append(f"aws emulator: stopped (data dir {settings.data_dir})")
    if not on_aws(settings):
        return lines, broker.pid is not None
    reachable = kinesis.reachable(settings)
    if reachable:
        shards = kinesis.stream_shards(settings)
        lines.append(f"kinesis: {len(shards)} of {len(ALL_TOPICS)} streams")
        lines += [f"  stream {name}: {n} open shards" for name, n in shards.items()]
    else:
        lines.append(f"kinesis: not reachable at {settings.aws_endpoint or settings.aws_region}")
    return lines, reachable


def event_sink(
    settings: Settings, topics: tuple[str, ...], waiting: Callable[[], None] = lambda: None
) -> Sink:
    """A sink producing to the platform's streams of `topics`.

    A Kafka sink calls `waiting` while it waits for the broker; Kinesis needs nothing of it.
    """
    if on_aws(settings):
        return KinesisSink(settings, topics)
    return KafkaSink(settings, topics, waiting)


def read_records(settings: Settings, topic: str) -> list[StoredRecord]:
    """Every record of a topic's stream as it stands now."""
    if on_aws(settings):
        return kinesis.read_stream(settings, topic)
    return read_topic(settings, topic)


def require_local(settings: Settings, what: str) -> None:
    """Refuse what runs only on the local platform so far, with one clear line."""
    if on_aws(settings):
        raise AdstreamError(
            f"{what} runs on the local platform only so far; on aws, `up`, `status`, `down`, "
            "`generate`, `produce`, `join` and `verify` work (docs/aws.md)"
        )


def join_streams(settings: Settings) -> JoinStreams:
    """The event streams as the join job reads and writes them."""
    if on_aws(settings):
        return KinesisStreams(settings)
    return KafkaStreams(settings)


AWS_CONNECTION: Final = (
    "platform",
    "aws_region",
    "aws_endpoint_url",
    "aws_emulator",
    "aws_emulator_port",
    "stream_prefix",
)
"""The settings a process needs to reach the Kinesis streams (no secrets among them)."""


def outcome_streams(settings: Settings) -> OutcomeStreams:
    """Where the enrichment reads the outcome records: Kafka topics, or Kinesis streams.

    Missing topics are created; missing streams are an error (`adstream up` creates them).
    """
    if on_aws(settings):
        kinesis.require_streams(settings, OUTCOME_TOPICS)
        connection = settings.model_dump(mode="json", include=set(AWS_CONNECTION))
        return OutcomeStreams("kinesis", partitions={}, aws_settings=connection)
    require_broker(settings)
    ensure_topics(settings)
    partitions = topic_partitions(settings)
    return OutcomeStreams(
        "kafka", partitions={topic: partitions[topic] for topic in OUTCOME_TOPICS}, aws_settings={}
    )


def aws_connection(values: dict[str, Any]) -> Settings:
    """Settings to reach the streams, from what `outcome_streams` gave a job process.

    Built without reading the environment or a settings file: the job gets its settings from
    the process that started it, like every other parameter.
    """
    return Settings.model_construct(**values)


def local_service(settings: Settings) -> KafkaBroker | AwsEmulator | None:
    """What adstream runs on this machine for the event streams.

    The Kafka broker, the AWS emulator, or nothing (AWS itself).
    """
    if not on_aws(settings):
        return KafkaBroker(settings)
    return AwsEmulator(settings) if settings.aws_emulator else None


def input_counts(settings: Settings) -> tuple[int, int]:
    """Records in the impressions and the clicks stream now."""
    if on_aws(settings):
        impressions, clicks = (len(kinesis.read_stream(settings, t)) for t in INPUT_TOPICS)
    else:
        impressions, clicks = (offset_span(settings, topic) for topic in INPUT_TOPICS)
    return impressions, clicks
