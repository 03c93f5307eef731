"""Which outcome records each table has taken in: the job's exactly-once bookkeeping.

Every snapshot the job commits carries, in its summary, the highest position per topic and
partition the table has taken in so far, a cumulative JSON map: Kafka offsets
(`adstream.kafka-offsets`), or on Kinesis the sequence numbers per shard number
(`adstream.kinesis-sequence-numbers`; exact Python ints, however many digits). The tables
themselves are thus the record of progress: the job skips what they hold, whatever its Spark
checkpoint says (docs/enrich.md). Pure Python over pyiceberg: no engine needed to read it.
"""

import json
from collections.abc import Mapping
from typing import Final, Literal

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    OUTCOME_TOPICS,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
)
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    IMPRESSIONS,
    REJECTED_EVENTS,
    TABLE_BY_NAME,
    TABLES,
    UNMATCHED_CLICKS,
)

SourceKind = Literal["kafka", "kinesis"]
"""Where the outcome records come from, and so what their positions are."""

POSITIONS_PROPERTY: Final[dict[SourceKind, str]] = {
    "kafka": "adstream.kafka-offsets",
    "kinesis": "adstream.kinesis-sequence-numbers",
}
"""Snapshot summary key: the highest position per topic and partition the table has taken in.

One key per kind of source, so that positions of one never hide records of the other."""
OFFSETS_PROPERTY: Final = POSITIONS_PROPERTY["kafka"]

SEQUENCE_DIGITS: Final = 129
"""Digits of the largest Kinesis sequence number (the API's pattern: `0|([1-9]\\d{0,128})`)."""

SUMMED_PROPERTY: Final = "adstream.summed-snapshots"
"""Snapshot summary key of campaign_metrics_minute on Kinesis: the snapshot of each base table
it has summed up to (`{"enriched_ad_data": id, "impressions": id}`)."""

TABLE_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    ENRICHED_AD_DATA: (JOINED_TOPIC,),
    IMPRESSIONS: (IMPRESSIONS_OUT_TOPIC,),
    UNMATCHED_CLICKS: (UNMATCHED_CLICKS_TOPIC,),
    # Rejected records of the join, and the joined rows that fail validation.
    REJECTED_EVENTS: (REJECTED_EVENTS_TOPIC, JOINED_TOPIC),
    # The unique impressions and the valid joined rows, summed per minute.
    CAMPAIGN_METRICS_MINUTE: (IMPRESSIONS_OUT_TOPIC, JOINED_TOPIC),
    # The minutes those touch, summed again from campaign_metrics_minute.
    DASHBOARD_METRICS_MINUTE: (IMPRESSIONS_OUT_TOPIC, JOINED_TOPIC),
}
"""The topics each table is fed from."""

OffsetMap = dict[str, dict[int, int]]
"""topic -> partition -> highest offset taken in."""


def merge(*maps: OffsetMap) -> OffsetMap:
    """The highest offset of each topic and partition over all `maps`."""
    merged: OffsetMap = {}
    for offsets in maps:
        for topic, partitions in offsets.items():
            target = merged.setdefault(topic, {})
            for partition, offset in partitions.items():
                target[partition] = max(offset, target.get(partition, -1))
    return merged


def format_offsets(offsets: OffsetMap) -> str:
    """The JSON stored in the snapshot summary (partitions as strings, sorted)."""
    return json.dumps(
        {
            topic: {str(p): offsets[topic][p] for p in sorted(offsets[topic])}
            for topic in sorted(offsets)
        },
        separators=(",", ":"),
    )


def parse_offsets(text: str) -> OffsetMap:
    """Read what `format_offsets` wrote."""
    return {
        topic: {int(p): int(offset) for p, offset in partitions.items()}
        for topic, partitions in json.loads(text).items()
    }


def sequence_key(sequence_number: int | str) -> str:
    """A Kinesis sequence number as the batch's `offset` column holds it.

    Zero-padded to `SEQUENCE_DIGITS`: no Spark number type holds every sequence number (they
    exceed a long and decimal(38)), and fixed-width digit strings order like the numbers, so
    comparisons and maxima over the column stay exact.
    """
    digits = str(int(sequence_number))
    if len(digits) > SEQUENCE_DIGITS:
        raise ValueError(f"not a Kinesis sequence number: {digits}")
    return digits.zfill(SEQUENCE_DIGITS)


def committed_offsets(table: Table, kind: SourceKind = "kafka") -> OffsetMap:
    """The positions a table has taken in, from the snapshots of its current history.

    Each recorded map is cumulative, so merging them gives the latest; snapshots the job did
    not write (compaction, maintenance) carry none and are skipped. After a rollback, what the
    rolled-back snapshots took in counts as not taken.
    """
    recorded: list[OffsetMap] = []
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        text = snapshot.summary.get(POSITIONS_PROPERTY[kind]) if snapshot.summary else None
        if isinstance(text, str):
            recorded.append(parse_offsets(text))
    return merge(*recorded)


def all_committed_offsets(catalog: Catalog, kind: SourceKind = "kafka") -> dict[str, OffsetMap]:
    """`committed_offsets` of every table, by table name."""
    return {
        table.name: committed_offsets(catalog.load_table(table.identifier), kind)
        for table in TABLES
    }


def summed_snapshots(catalog: Catalog) -> dict[str, int]:
    """The base-table snapshots campaign_metrics_minute has summed up to (Kinesis path).

    From its newest snapshot that records them; empty when none does (nothing summed yet).
    """
    table = catalog.load_table(TABLE_BY_NAME[CAMPAIGN_METRICS_MINUTE].identifier)
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        text = snapshot.summary.get(SUMMED_PROPERTY) if snapshot.summary else None
        if isinstance(text, str):
            return {name: int(snapshot_id) for name, snapshot_id in json.loads(text).items()}
    return {}


def lowest_taken(committed: Mapping[str, OffsetMap], topic: str, partition: int) -> int | None:
    """Where every table fed by a partition has got to: the lowest position they have taken.

    None when one of them has taken nothing from it yet (read it from its beginning).
    """
    fed = [table for table, sources in TABLE_SOURCES.items() if topic in sources]
    taken = [committed.get(table, {}).get(topic, {}).get(partition) for table in fed]
    known = [position for position in taken if position is not None]
    return min(known) if len(known) == len(taken) else None


def starting_offsets(committed: Mapping[str, OffsetMap], partitions: Mapping[str, int]) -> str:
    """Spark's `startingOffsets` JSON: where every table fed by a partition has got to.

    A partition resumes after the lowest offset any of its tables has taken in; one that some
    table has taken nothing from yet starts at the earliest offset (-2).
    """
    positions: dict[str, dict[str, int]] = {}
    for topic in OUTCOME_TOPICS:
        positions[topic] = {}
        for partition in range(partitions[topic]):
            taken = lowest_taken(committed, topic, partition)
            positions[topic][str(partition)] = -2 if taken is None else taken + 1
    return json.dumps(positions)


def missing_tables(committed: Mapping[str, OffsetMap]) -> list[str]:
    """Tables holding nothing of what the job has taken in.

    All of them when no table has taken anything; else those that have taken nothing from a
    topic another table has taken from (a table added by an upgrade, or a dropped one).
    """
    taken = {topic for offsets in committed.values() for topic, parts in offsets.items() if parts}
    return [
        table
        for table, sources in TABLE_SOURCES.items()
        if not committed.get(table) and (not taken or taken.intersection(sources))
    ]
