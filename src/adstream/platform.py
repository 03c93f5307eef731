"""The platform seam (SPEC section 9): the one module that picks Kafka or Kinesis.

Everything else asks here for the event streams' services, a sink to produce to and the
records of a stream, and never tests `settings.platform` itself.
"""

from adstream.errors import AdstreamError
from adstream.events.outcomes import ALL_TOPICS
from adstream.generator.sinks import KafkaSink, KinesisSink, Sink
from adstream.services import kinesis
from adstream.services.aws_emulator import AwsEmulator
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import StoredRecord, read_topic
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
    return told


def stop_services(settings: Settings) -> list[str]:
    """Stop this data directory's Kafka and emulator, whichever run; return what to tell."""
    told = []
    if not KafkaBroker(settings).stop():
        told.append(f"Kafka is not running (data dir {settings.data_dir})")
    if AwsEmulator(settings).stop():
        told.append("AWS emulator stopped; its streams, buckets and tables are gone with it")
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


def event_sink(settings: Settings, topics: tuple[str, ...]) -> Sink:
    """A sink producing to the platform's streams of `topics`."""
    if on_aws(settings):
        return KinesisSink(settings, topics)
    return KafkaSink(settings, topics)


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
            "`generate`, `produce` and `verify` work (docs/aws.md)"
        )
