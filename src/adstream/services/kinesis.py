"""Kinesis Data Streams: one stream per topic (SPEC section 9), created, checked and read here.

A shard plays the part of a Kafka partition: `StoredRecord.partition` is the number in its
shard id, `offset` its sequence number.
"""

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from adstream.errors import AdstreamError
from adstream.events.outcomes import ALL_TOPICS
from adstream.services import aws
from adstream.services.process import wait_until
from adstream.services.records import StoredRecord
from adstream.settings import Settings

log = logging.getLogger(__name__)

_ACTIVE_TIMEOUT_S: Final = 300.0
_READ_LIMIT: Final = 10_000
"""GetRecords' largest page."""
_READ_PAUSE_S: Final = 0.2
"""Between GetRecords calls on one shard: AWS allows 5 per second per shard."""


def shard_number(shard_id: str) -> int:
    """The number of a shard id ("shardId-000000000003" -> 3)."""
    return int(shard_id.rsplit("-", 1)[1])


def reachable(settings: Settings) -> bool:
    """Whether Kinesis answers at the configured endpoint."""
    try:
        aws.client(settings, "kinesis").list_streams(Limit=1)
    except (BotoCoreError, ClientError):
        return False
    return True


def ensure_streams(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> list[str]:
    """Create the missing streams (`stream_shards` shards), wait until all are active.

    Returns the names of the streams created.
    """
    kinesis = aws.client(settings, "kinesis")
    created = []
    for topic in topics:
        name = settings.stream_name(topic)
        try:
            kinesis.create_stream(StreamName=name, ShardCount=settings.stream_shards)
            created.append(name)
        except ClientError as error:
            if aws.error_code(error) != "ResourceInUseException":
                raise AdstreamError(
                    f"could not create stream {name}: {aws.describe(error)}"
                ) from error
        except BotoCoreError as error:
            raise aws.unreachable(settings, error) from error
    for topic in topics:
        name = settings.stream_name(topic)
        wait_until(
            lambda name=name: _status(kinesis, name) == "ACTIVE",  # type: ignore[misc]
            timeout=_ACTIVE_TIMEOUT_S,
            what=f"stream {name} to become active",
            interval=1.0,
        )
    return created


def _status(kinesis: Any, name: str) -> str:
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    return str(summary["StreamStatus"])


def describe(
    settings: Settings, topics: tuple[str, ...], *, missing_ok: bool = False
) -> dict[str, dict[str, Any]]:
    """The StreamDescriptionSummary of each topic's stream, by topic.

    Raises:
        AdstreamError: Kinesis does not answer, or refuses (a missing stream too, unless
            `missing_ok`: it is then left out).
    """
    kinesis = aws.client(settings, "kinesis")
    found = {}
    for topic in topics:
        name = settings.stream_name(topic)
        try:
            answer = kinesis.describe_stream_summary(StreamName=name)
        except ClientError as error:
            if missing_ok and aws.error_code(error) == "ResourceNotFoundException":
                continue
            raise AdstreamError(f"cannot describe stream {name}: {aws.describe(error)}") from error
        except BotoCoreError as error:
            raise aws.unreachable(settings, error) from error
        found[topic] = answer["StreamDescriptionSummary"]
    return found


def stream_shards(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> dict[str, int]:
    """Adstream's streams that exist, by name, with their open shard counts."""
    return {
        summary["StreamName"]: int(summary["OpenShardCount"])
        for summary in describe(settings, topics, missing_ok=True).values()
    }


def require_streams(settings: Settings, topics: tuple[str, ...]) -> None:
    """Raise a clear error when Kinesis does not answer or a stream is missing."""
    existing = describe(settings, topics, missing_ok=True)
    for topic in topics:
        if topic not in existing:
            raise AdstreamError(
                f"stream {settings.stream_name(topic)} does not exist at {aws.where(settings)}; "
                "`adstream up --platform aws` creates adstream's streams"
            )


def shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of a stream, open and closed, parents before their children."""
    listed: list[dict[str, Any]] = []
    page = kinesis.list_shards(StreamName=stream)
    while True:
        listed.extend(page["Shards"])
        token = page.get("NextToken")
        if not token:
            break
        page = kinesis.list_shards(NextToken=token)
    ids = {shard["ShardId"] for shard in listed}
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()
    while len(ordered) < len(listed):
        for shard in listed:
            parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")} & ids
            if shard["ShardId"] not in placed and parents <= placed:
                ordered.append(shard)
                placed.add(shard["ShardId"])
    return ordered


def read_stream(settings: Settings, topic: str) -> list[StoredRecord]:
    """Every record of a topic's stream, shard by shard, from the oldest still retained."""
    kinesis = aws.client(settings, "kinesis")
    name = settings.stream_name(topic)
    try:
        return [
            record
            for shard in shards(kinesis, name)
            for record in _read_shard(kinesis, name, topic, shard["ShardId"])
        ]
    except ClientError as error:
        raise AdstreamError(f"cannot read stream {name}: {aws.describe(error)}") from error
    except BotoCoreError as error:
        raise aws.unreachable(settings, error) from error


def _read_shard(kinesis: Any, stream: str, topic: str, shard_id: str) -> Iterator[StoredRecord]:
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    partition = shard_number(shard_id)
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=_READ_LIMIT)
        for record in page["Records"]:
            yield StoredRecord(
                topic,
                partition,
                int(record["SequenceNumber"]),
                int(record["ApproximateArrivalTimestamp"].timestamp() * 1000),
                str(record["PartitionKey"]).encode(),
                bytes(record["Data"]),
            )
        if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
            return  # an open shard read to its end (a closed one ends with no next iterator)
        iterator = page.get("NextShardIterator")
        time.sleep(_READ_PAUSE_S)


def stream_arns(settings: Settings, topics: tuple[str, ...]) -> dict[str, str]:
    """The ARN of each topic's stream, as Kinesis reports it (account and region included)."""
    return {
        topic: str(summary["StreamARN"]) for topic, summary in describe(settings, topics).items()
    }


def input_shards(settings: Settings, topics: tuple[str, ...]) -> set[tuple[str, str]]:
    """(stream name, shard id) of every shard, open or closed, of the topics' streams."""
    kinesis = aws.client(settings, "kinesis")
    found = set()
    for topic in topics:
        name = settings.stream_name(topic)
        try:
            found |= {(name, shard["ShardId"]) for shard in shards(kinesis, name)}
        except ClientError as error:
            raise AdstreamError(f"cannot list shards of {name}: {aws.describe(error)}") from error
        except BotoCoreError as error:
            raise aws.unreachable(settings, error) from error
    return found


def retention(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> dict[str, timedelta]:
    """How long each existing stream of `topics` keeps its records, by stream name."""
    return {
        summary["StreamName"]: timedelta(hours=int(summary["RetentionPeriodHours"]))
        for summary in describe(settings, topics, missing_ok=True).values()
    }
