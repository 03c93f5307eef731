"""Outcome records decoded into typed rows: each topic by its own columns, and times parsed
exactly whatever form they come in (a local Spark session: integration)."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, Row, SparkSession

from adstream.enrich.decode import KAFKA_COLUMNS, decode, decode_by_topic, of_topic
from adstream.events.outcomes import IMPRESSIONS_OUT_TOPIC, JOINED_TOPIC
from adstream.lakehouse.tables import IMPRESSIONS_TABLE, JOINED_COLUMNS

pytestmark = pytest.mark.integration

TOPICS = {JOINED_TOPIC: JOINED_COLUMNS, IMPRESSIONS_OUT_TOPIC: IMPRESSIONS_TABLE.columns}


def records(spark: SparkSession, values: list[tuple[str, dict[str, Any] | str]]) -> DataFrame:
    """Kafka records of (topic, JSON object or raw text), at offsets 0, 1, ... of partition 0."""
    rows = [
        (topic, 0, offset, value if isinstance(value, str) else json.dumps(value))
        for offset, (topic, value) in enumerate(values)
    ]
    return spark.createDataFrame(rows, "topic string, partition int, offset long, value string")


# The join writes every time as the first form; a hand-made joined row may hold any other.
TIMES = [
    ("2026-11-01T08:00:01.500Z", datetime(2026, 11, 1, 8, 0, 1, 500_000, tzinfo=UTC)),
    ("2026-11-01T23:59:59.999Z", datetime(2026, 11, 1, 23, 59, 59, 999_000, tzinfo=UTC)),
    ("2026-11-01T10:00:01.500+02:00", datetime(2026, 11, 1, 8, 0, 1, 500_000, tzinfo=UTC)),
    ("2026-11-01T08:00:01Z", datetime(2026, 11, 1, 8, 0, 1, tzinfo=UTC)),
    ("2026-11-01T08:00:01.500", datetime(2026, 11, 1, 8, 0, 1, 500_000, tzinfo=UTC)),  # UTC
    ("2026-11-01T08:00:01.500ZZ", None),
    ("2026-02-30T08:00:01.500Z", None),
    ("2026-11-01T25:00:01.500Z", None),
    ("yesterday", None),
    (None, None),
]


def micros(time: datetime | Row | None) -> int | None:
    """A time, or a row's one timestamp (PySpark's, in local time), as epoch microseconds."""
    if isinstance(time, Row):
        time = time[0] if time[0] is None else time[0].astimezone(UTC)
    return None if time is None else round(time.timestamp() * 1_000_000)


@pytest.mark.parametrize(("text", "expected"), TIMES, ids=[str(t) for t, _ in TIMES])
def test_each_form_of_a_time_is_parsed_exactly(
    spark: SparkSession, text: str | None, expected: datetime | None
) -> None:
    batch = records(spark, [(JOINED_TOPIC, {"impression_id": "i-1", "click_time": text})])

    decoded = decode(batch, JOINED_COLUMNS)
    by_topic = of_topic(decode_by_topic(batch, TOPICS, raw=[]), JOINED_TOPIC)

    assert [micros(row) for row in decoded.select("click_time").collect()] == [micros(expected)]
    assert [micros(row) for row in by_topic.select("click_time").collect()] == [micros(expected)]


def test_a_batch_decoded_once_gives_each_topic_its_own_rows(spark: SparkSession) -> None:
    joined = {
        "impression_id": "i-1",
        "click_time": "2026-11-01T08:00:02.000Z",
        "bid_price": 12.5,
        "click_price": 0.4,
    }
    shown = {"impression_id": "i-2", "event_time": "2026-11-01T08:00:00.000Z", "bid_price": 3}
    batch = records(
        spark,
        [
            (JOINED_TOPIC, joined),
            (IMPRESSIONS_OUT_TOPIC, shown),
            (JOINED_TOPIC, "{not json"),
            (IMPRESSIONS_OUT_TOPIC, {"impression_id": "i-3", "bid_price": "a string"}),
        ],
    )

    decoded = decode_by_topic(batch, TOPICS, raw=[JOINED_TOPIC])
    once = {topic: of_topic(decoded, topic).collect() for topic in TOPICS}
    apart = {
        topic: decode(batch.where(batch.topic == topic), columns).collect()
        for topic, columns in TOPICS.items()
    }

    # The raw text is kept for the topics that need it, and only for them.
    for row in once[IMPRESSIONS_OUT_TOPIC]:
        assert row["value"] is None
    strip = [name for name in KAFKA_COLUMNS if name != "value"]
    for topic, columns in TOPICS.items():
        names = [*strip, *(c.name for c in columns)]
        assert [[r[n] for n in names] for r in once[topic]] == [
            [r[n] for n in names] for r in apart[topic]
        ]
    assert [r["value"] for r in once[JOINED_TOPIC]] == [json.dumps(joined), "{not json"]
    first, broken = once[JOINED_TOPIC]
    assert (first["impression_id"], first["bid_price"], first["click_price"]) == (
        "i-1",
        Decimal("12.500000"),
        Decimal("0.400000"),
    )
    assert micros(Row(first["click_time"])) == micros(datetime(2026, 11, 1, 8, 0, 2, tzinfo=UTC))
    assert broken["impression_id"] is None
    assert [(r["impression_id"], r["bid_price"]) for r in once[IMPRESSIONS_OUT_TOPIC]] == [
        ("i-2", Decimal("3.000000")),
        ("i-3", None),
    ]
