"""Run the real join job over crafted or generated input and read back every outcome."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from adstream.events.outcomes import (
    ALL_TOPICS,
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    Stream,
)
from adstream.events.reference import SourceRecord
from adstream.events.schema import INPUT_STREAMS
from adstream.join.launcher import run_join
from adstream.platform import on_aws, read_records
from adstream.services import aws
from adstream.services.kafka_client import admin_client, producer_config
from adstream.services.process import wait_until
from adstream.settings import Settings
from adstream.verify import expected_outcomes, read_source_records


def impression(iid: str, time: str, **changes: Any) -> dict[str, Any]:
    """A valid impression (SPEC section 2) of `iid` at `time`, with `changes` applied."""
    record = {
        "ad_id": "ad-1",
        "impression_id": iid,
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "event_time": time,
        "device_type": "phone",
        "geo_location": "US",
        "platform": "iOS",
        "ad_type": "video",
        "bid_price": 12.5,
    }
    return {**record, **changes}


def click(iid: str, time: str, **changes: Any) -> dict[str, Any]:
    """A valid click of `iid` at `time`, with `changes` applied."""
    record = {
        "ad_id": "ad-1",
        "impression_id": iid,
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "event_time": time,
        "device_type": "phone",
        "geo_location": "US",
        "platform": "iOS",
        "click_price": 0.4,
    }
    return {**record, **changes}


def recreate_topics(settings: Settings, partitions: int) -> None:
    """Empty every adstream topic (delete and create), so a test sees only its own records."""
    delete_topics(settings)
    admin = admin_client(settings)
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in ALL_TOPICS]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()
    wait_until(  # created is not yet visible: the broker's metadata follows the controller
        lambda: set(ALL_TOPICS) <= set(admin.list_topics(timeout=30).topics),
        timeout=60,
        what="topics to be created",
    )


def delete_topics(settings: Settings) -> None:
    """Delete every adstream topic and wait until the broker no longer lists them."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=30).topics) & set(ALL_TOPICS)
    if existing:
        for future in admin.delete_topics(list(existing), operation_timeout=30).values():
            future.result()
        wait_until(
            lambda: not set(admin.list_topics(timeout=30).topics) & set(ALL_TOPICS),
            timeout=60,
            what="topics to be deleted",
        )


def produce(settings: Settings, records: Iterable[tuple[Stream, str | bytes, str | None]]) -> None:
    """Send (stream, raw value, key) records in order; wait until all are acknowledged.

    On Kinesis one PutRecord after the other (a record without key gets its position as key),
    so that the order in each shard is the order given.
    """
    if on_aws(settings):
        kinesis = aws.client(settings, "kinesis")
        for number, (stream, value, key) in enumerate(records):
            kinesis.put_record(
                StreamName=settings.stream_name(INPUT_STREAMS[stream].topic),
                Data=value.encode() if isinstance(value, str) else value,
                PartitionKey=key or str(number),
            )
        return
    producer = Producer(producer_config(settings))
    for stream, value, key in records:
        producer.produce(INPUT_STREAMS[stream].topic, value, key)
    assert producer.flush(60) == 0


def source_records(settings: Settings) -> list[SourceRecord]:
    """The raw input as the reference recomputation reads it."""
    return read_source_records(settings)


@dataclass(frozen=True)
class JoinOutputs:
    """What the job committed, keyed by the source record each outcome came from."""

    joined: list[dict[str, Any]]  # sorted by (impression_id, click_time)
    unique_impressions: list[tuple[int, int]]  # (partition, offset), sorted; a copy shows twice
    unmatched_clicks: list[tuple[int, int]]
    rejected: list[tuple[str, str, int, int]]  # (stream, reason, partition, offset), sorted

    def total(self) -> int:
        """How many input records these outcomes account for."""
        return (
            len(self.joined)
            + len(self.unique_impressions)
            + len(self.unmatched_clicks)
            + len(self.rejected)
        )

    def outcome_of(self, stream: Stream, partition: int, offset: int) -> list[str]:
        """Every outcome recorded for one input record (exactly one when all is well)."""
        found = [
            reason for s, reason, p, o in self.rejected if (s, p, o) == (stream, partition, offset)
        ]
        if stream == "impressions" and (partition, offset) in self.unique_impressions:
            found.append("unique")
        if stream == "clicks" and (partition, offset) in self.unmatched_clicks:
            found.append("unmatched")
        return found


def run_bounded_join(settings: Settings) -> JoinOutputs:
    """Run `adstream join --bounded` to its end and read back all four outcome topics."""
    run_join(settings, bounded=True)
    return read_outputs(settings)


def read_outputs(settings: Settings) -> JoinOutputs:
    """The committed contents of the outcome topics."""

    def rows(topic: str) -> list[dict[str, Any]]:
        return [json.loads(r.value, parse_float=Decimal) for r in read_records(settings, topic)]

    return JoinOutputs(
        joined=sorted(rows(JOINED_TOPIC), key=_joined_key),
        unique_impressions=sorted(_source(r) for r in rows(IMPRESSIONS_OUT_TOPIC)),
        unmatched_clicks=sorted(_source(r) for r in rows(UNMATCHED_CLICKS_TOPIC)),
        rejected=sorted(
            (r["stream"], r["reason"], *_source(r)) for r in rows(REJECTED_EVENTS_TOPIC)
        ),
    )


def _source(row: dict[str, Any]) -> tuple[int, int]:
    """The partition and offset of an outcome's input record (on Kinesis: the shard number and
    the sequence number, as `StoredRecord` has them)."""
    offset = row["source_offset"]
    if offset is None:
        offset = int(row["source_sequence_number"])
    return row["source_partition"], offset


def expected_outputs(settings: Settings, records: list[SourceRecord] | None = None) -> JoinOutputs:
    """The outcomes the batch recomputation gives for the input topics (or `records`)."""
    expected = expected_outcomes(settings, source_records(settings) if records is None else records)
    return JoinOutputs(
        joined=sorted(expected.joined, key=_joined_key),
        unique_impressions=sorted((r.partition, r.offset) for r in expected.unique_impressions),
        unmatched_clicks=sorted((r.partition, r.offset) for r in expected.unmatched_clicks),
        rejected=sorted(
            (r.stream, reason.value, r.partition, r.offset) for r, reason in expected.rejected
        ),
    )


def assert_same_outputs(actual: JoinOutputs, expected: JoinOutputs) -> None:
    """Outcome by outcome, record by record (one assert each, so a failure says which)."""
    assert actual.rejected == expected.rejected
    assert actual.unique_impressions == expected.unique_impressions
    assert actual.unmatched_clicks == expected.unmatched_clicks
    assert actual.joined == expected.joined


def _joined_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["impression_id"], row["click_time"]


def join_settings(kafka: Settings, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a join run against the session broker with its own data directory."""
    return kafka.model_copy(update={"data_dir": data_dir, **overrides})
