"""Which Kafka records each table has taken in: the job's exactly-once bookkeeping.

Every snapshot the job commits carries, in its summary, the highest offset per topic and
partition the table has taken in so far (`adstream.kafka-offsets`, a cumulative JSON map). The
tables themselves are thus the record of progress: the job skips what they hold, whatever its
Spark checkpoint says (docs/enrich.md). Pure Python over pyiceberg: no engine needed to read it.
"""

import json
from collections.abc import Mapping
from typing import Final

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
    ENRICHED_AD_DATA,
    IMPRESSIONS,
    REJECTED_EVENTS,
    TABLES,
    UNMATCHED_CLICKS,
)

OFFSETS_PROPERTY: Final = "adstream.kafka-offsets"
"""Snapshot summary key: the highest offset per topic and partition the table has taken in."""

TABLE_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    ENRICHED_AD_DATA: (JOINED_TOPIC,),
    IMPRESSIONS: (IMPRESSIONS_OUT_TOPIC,),
    UNMATCHED_CLICKS: (UNMATCHED_CLICKS_TOPIC,),
    # Rejected records of the join, and the joined rows that fail validation.
    REJECTED_EVENTS: (REJECTED_EVENTS_TOPIC, JOINED_TOPIC),
    # The unique impressions and the valid joined rows, summed per minute.
    CAMPAIGN_METRICS_MINUTE: (IMPRESSIONS_OUT_TOPIC, JOINED_TOPIC),
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


def committed_offsets(table: Table) -> OffsetMap:
    """The offsets a table has taken in, from the snapshots of its current history.

    Each recorded map is cumulative, so merging them gives the latest; snapshots the job did
    not write (compaction, maintenance) carry none and are skipped. After a rollback, what the
    rolled-back snapshots took in counts as not taken.
    """
    recorded: list[OffsetMap] = []
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        text = snapshot.summary.get(OFFSETS_PROPERTY) if snapshot.summary else None
        if isinstance(text, str):
            recorded.append(parse_offsets(text))
    return merge(*recorded)


def all_committed_offsets(catalog: Catalog) -> dict[str, OffsetMap]:
    """`committed_offsets` of every table, by table name."""
    return {table.name: committed_offsets(catalog.load_table(table.identifier)) for table in TABLES}


def starting_offsets(committed: Mapping[str, OffsetMap], partitions: Mapping[str, int]) -> str:
    """Spark's `startingOffsets` JSON: where every table fed by a partition has got to.

    A partition resumes after the lowest offset any of its tables has taken in; one that some
    table has taken nothing from yet starts at the earliest offset (-2).
    """
    positions: dict[str, dict[str, int]] = {}
    for topic in OUTCOME_TOPICS:
        fed = [table for table, sources in TABLE_SOURCES.items() if topic in sources]
        positions[topic] = {}
        for partition in range(partitions[topic]):
            taken = [committed.get(table, {}).get(topic, {}).get(partition) for table in fed]
            known = [offset for offset in taken if offset is not None]
            start = min(known) + 1 if len(known) == len(taken) else -2
            positions[topic][str(partition)] = start
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
