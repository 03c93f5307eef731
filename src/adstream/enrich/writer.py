"""Each micro-batch of outcome records to the tables, exactly once (docs/enrich.md).

Before writing, a batch drops the records at or below the positions a table has taken in
(`adstream.enrich.offsets`), and each commit records the new positions in its snapshot. So a
replayed batch (a crash between a table commit and Spark's commit log, a lost checkpoint, a
restart from older positions) adds nothing twice, and each table can be committed on its own.
The four base tables are appended to; campaign_metrics_minute has the minutes the batch
touches rewritten (`adstream.enrich.metrics`), and dashboard_metrics_minute, last, the hours of
those minutes. After enriched_ad_data, the other four commit concurrently.

Records read from Kinesis (`KinesisOutcomes`) are also deduplicated by identity
(`adstream.enrich.identity`), since the join's Kinesis sink may repeat an outcome at a new
position; campaign_metrics_minute then sums the rows the base tables actually appended, after
they have committed.
"""

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from adstream.enrich import metrics
from adstream.enrich.decode import decode_by_topic, of_topic
from adstream.enrich.identity import IDENTITIES, INVALID_JOINED_ROW, JOIN_REJECTION, unseen
from adstream.enrich.offsets import (
    POSITIONS_PROPERTY,
    SUMMED_PROPERTY,
    TABLE_SOURCES,
    OffsetMap,
    SourceKind,
    format_offsets,
    merge,
    sequence_key,
)
from adstream.enrich.rules import REJECTION_DETAIL, EnrichRules, enrich, invalid
from adstream.enrich.rules import now_to_the_millisecond as now
from adstream.errors import AdstreamError
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_STREAM,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    Reason,
)
from adstream.events.schema import MAX_RAW_PAYLOAD_BYTES
from adstream.lakehouse.catalog import CATALOG_NAME
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    CAMPAIGN_METRICS_MINUTE_TABLE,
    DASHBOARD_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE_TABLE,
    ENRICHED_AD_DATA,
    ENRICHED_AD_DATA_TABLE,
    IMPRESSIONS_TABLE,
    JOINED_COLUMNS,
    REJECTED_EVENTS,
    REJECTED_EVENTS_TABLE,
    TABLES,
    UNMATCHED_CLICKS_TABLE,
    TableDefinition,
)

log = logging.getLogger(__name__)


def table_name(table: TableDefinition, catalog: str = CATALOG_NAME) -> str:
    """The table as Spark names it: `adstream.ad_analytics.<name>`."""
    return f"{catalog}.{table.identifier}"


@dataclass(frozen=True)
class KinesisOutcomes:
    """The outcome records come from Kinesis streams (SPEC section 9).

    A batch's `offset` is then a sequence number as `sequence_key` makes it (a zero-padded
    string) and its `partition` the shard number, or null where the source does not tell
    (such records are never skipped by position, only by identity).
    """

    rejection_lookback: timedelta
    """How far before a rejection an earlier copy of it can be (`identity.rejection_lookback`)."""
    summed: dict[str, int]
    """Where campaign_metrics_minute has summed the base tables up to (`summed_snapshots`)."""


def _position(offset: int | None, kind: SourceKind) -> Column:
    """A position as the batch's `offset` column holds it; None: below every position."""
    if kind == "kafka":
        return F.lit(-1 if offset is None else offset)
    return F.lit("" if offset is None else sequence_key(offset))


def _after(offsets: OffsetMap, topics: tuple[str, ...], kind: SourceKind) -> Column:
    """Records of `topics` above the positions already taken in."""
    condition = F.lit(False)
    for topic in topics:
        taken = _position(None, kind)
        for partition, offset in offsets.get(topic, {}).items():
            taken = F.when(F.col("partition") == partition, _position(offset, kind)).otherwise(
                taken
            )
        condition = condition | ((F.col("topic") == topic) & (F.col("offset") > taken))
    return condition


_DECODED: Final = {
    JOINED_TOPIC: JOINED_COLUMNS,
    IMPRESSIONS_OUT_TOPIC: IMPRESSIONS_TABLE.columns,
    UNMATCHED_CLICKS_TOPIC: UNMATCHED_CLICKS_TABLE.columns,
    REJECTED_EVENTS_TOPIC: REJECTED_EVENTS_TABLE.columns,
}
"""The columns each outcome topic's records are decoded into, once per batch."""


class BatchWriter:
    """The `foreachBatch` function: one commit per table that has new records in the batch."""

    def __init__(
        self,
        rules: EnrichRules,
        committed: dict[str, OffsetMap],
        catalog: str = CATALOG_NAME,
        kinesis: KinesisOutcomes | None = None,
    ) -> None:
        """Start from the positions the tables have taken in (`all_committed_offsets`).

        Records come from Kafka, or from Kinesis when `kinesis` says how to treat them.
        """
        self.rules = rules
        self.committed = committed
        self.catalog = catalog
        self.kinesis = kinesis
        self.kind: SourceKind = "kafka" if kinesis is None else "kinesis"
        self.summed = {} if kinesis is None else dict(kinesis.summed)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Write one micro-batch (columns topic, partition, offset, value).

        `offset` is a Kafka offset (a long), or a Kinesis sequence number as `sequence_key`.
        """
        # Only an invalid joined row's text is kept: it is its rejected record's raw_payload.
        decoded = decode_by_topic(batch, _DECODED, raw=[JOINED_TOPIC]).persist()
        try:
            seen: OffsetMap = {}
            unplaced: set[str] = set()  # topics with records of no known partition
            for topic, partition, highest in (
                decoded.groupBy("topic", "partition").agg(F.max("offset")).collect()
            ):
                if partition is None:
                    unplaced.add(topic)
                else:
                    seen.setdefault(topic, {})[partition] = int(highest)
            # The attributed clicks first, on their own: they are what a user waits for. Then
            # the other tables side by side: their Spark jobs and commits are independent, and
            # overlapping them ends a batch sooner (docs/enrich.md). On Kinesis the metrics
            # sum what the base tables appended, so they come after them; the dashboard's
            # grain sums the metrics, so it comes last.
            first, *others = TABLES
            last = [CAMPAIGN_METRICS_MINUTE_TABLE] if self.kinesis is not None else []
            last.append(DASHBOARD_METRICS_MINUTE_TABLE)
            others = [table for table in others if table not in last]

            def write(table: TableDefinition) -> None:
                self._write(table, decoded, seen, unplaced, batch_id)

            write(first)
            with ThreadPoolExecutor(len(others), thread_name_prefix="adstream-write") as pool:
                list(pool.map(write, others))
            for table in last:
                write(table)
        finally:
            decoded.unpersist()

    def _write(
        self,
        table: TableDefinition,
        decoded: DataFrame,
        seen: OffsetMap,
        unplaced: set[str],
        batch_id: int,
    ) -> None:
        sources = TABLE_SOURCES[table.name]
        before = self.committed[table.name]
        after = merge(before, {topic: seen[topic] for topic in sources if topic in seen})
        if after == before and not unplaced.intersection(sources):
            return
        # The new positions are committed even when no row results (e.g. only valid joined
        # rows for rejected_events), so a restart without checkpoint need not re-read them.
        records = decoded.where(_after(before, sources, self.kind))
        summed: dict[str, int] = {}
        if table.name == CAMPAIGN_METRICS_MINUTE:
            rows, replace, summed = self._touched_minutes(records)
        elif table.name == DASHBOARD_METRICS_MINUTE:
            rows, replace = self._rolled_up(records)
        else:
            rows, replace = self.rows(table, records), False
        writer = rows.writeTo(table_name(table, self.catalog)).option(
            f"snapshot-property.{POSITIONS_PROPERTY[self.kind]}", format_offsets(after)
        )
        if summed:
            writer = writer.option(
                f"snapshot-property.{SUMMED_PROPERTY}", json.dumps(summed, sort_keys=True)
            )
        if replace:
            writer.overwritePartitions()  # exactly the minutes (or hours) `rows` has
        else:
            writer.append()
        self.committed[table.name] = after
        self.summed |= summed
        level = logging.INFO if self.catalog == CATALOG_NAME else logging.DEBUG  # a warm-up
        log.log(
            level, "batch %d: %s now at positions %s", batch_id, table.name, format_offsets(after)
        )

    def _touched_minutes(self, records: DataFrame) -> tuple[DataFrame, bool, dict[str, int]]:
        """The metrics rows of the minutes new rows touch, whether there are any, and more.

        Each such minute's rows are what the table holds plus the new rows' summary. The new
        rows are those of the batch's records (Kafka: the tables take in each record once), or
        on Kinesis those the base tables appended since the last summary: what identity let
        through, exactly once however the job stopped between the commits. The third value
        is then the base-table snapshots they sum up to.
        """
        summed: dict[str, int] = {}
        if self.kinesis is None:
            impressions = self.rows(IMPRESSIONS_TABLE, records)
            clicks = self.rows(ENRICHED_AD_DATA_TABLE, records)
        else:
            impressions = self._appended(IMPRESSIONS_TABLE, records.sparkSession, summed)
            clicks = self._appended(ENRICHED_AD_DATA_TABLE, records.sparkSession, summed)
        summary = metrics.summarize(impressions, clicks, self.rules)
        minutes = metrics.touched_minutes(summary)
        if not minutes:
            return metrics.combine(summary), False, summed
        held = records.sparkSession.table(
            table_name(CAMPAIGN_METRICS_MINUTE_TABLE, self.catalog)
        ).where(metrics.in_minutes(minutes))
        return metrics.combine(held, summary), True, summed

    def _rolled_up(self, records: DataFrame) -> tuple[DataFrame, bool]:
        """dashboard_metrics_minute's rows of the hours the records touch, and whether any.

        The minutes the records touch (impressions by event_time, joined rows by click_time;
        repeats and invalid rows included, as summing a minute again changes nothing) are
        summed again from campaign_metrics_minute, which has just taken them in; the hours'
        other minutes stay as they are.
        """
        spark = records.sparkSession
        times = (
            of_topic(records, IMPRESSIONS_OUT_TOPIC)
            .select(F.col("event_time").alias("time"))
            .unionByName(of_topic(records, JOINED_TOPIC).select(F.col("click_time").alias("time")))
        )
        minutes = metrics.touched_minutes(
            times.where(F.col("time").isNotNull()).select(
                F.date_trunc("minute", F.col("time")).alias("minute")
            )
        )
        held = spark.table(table_name(DASHBOARD_METRICS_MINUTE_TABLE, self.catalog))
        if not minutes:
            return held.where(F.lit(False)), False
        summed = spark.table(table_name(CAMPAIGN_METRICS_MINUTE_TABLE, self.catalog)).where(
            metrics.in_minutes(minutes)
        )
        kept = held.where(metrics.in_hours(minutes) & ~metrics.in_minutes(minutes))
        return metrics.roll_up(summed).unionByName(kept), True

    def _appended(
        self, table: TableDefinition, spark: SparkSession, summed: dict[str, int]
    ) -> DataFrame:
        """The rows `table` appended since the snapshot the metrics have summed it up to.

        Records in `summed` the snapshot they now sum up to.

        Raises:
            AdstreamError: that snapshot is no longer in the table's history (it was dropped,
                rolled back or expired): the metrics cannot know what they have counted.
        """
        name = table_name(table, self.catalog)
        history = spark.table(f"{name}.history").where(F.col("is_current_ancestor"))
        current = history.orderBy(F.col("made_current_at").desc()).select("snapshot_id").first()
        done = self.summed.get(table.name)
        if current is None:
            return spark.table(name).where(F.lit(False))
        summed[table.name] = current[0]
        if done == current[0]:
            return spark.table(name).where(F.lit(False))
        scan = spark.read.format("iceberg")
        if done is None:
            return scan.option("snapshot-id", current[0]).load(name)
        if history.where(F.col("snapshot_id") == done).isEmpty():
            raise AdstreamError(
                f"{CAMPAIGN_METRICS_MINUTE} has summed {table.name} up to snapshot {done}, "
                f"which {table.name} no longer has; drop {CAMPAIGN_METRICS_MINUTE} to rebuild it"
            )
        return (
            scan.option("start-snapshot-id", done).option("end-snapshot-id", current[0]).load(name)
        )

    def rows(self, table: TableDefinition, records: DataFrame) -> DataFrame:
        """The table's rows for new records of its source topics, in its column order.

        On Kinesis, less the outcomes the table already holds, each outcome once.
        """
        if table.name == REJECTED_EVENTS:
            return self._rejected(records)
        if table.name == ENRICHED_AD_DATA:
            rows = enrich(of_topic(records, JOINED_TOPIC), self.rules)
        else:
            (topic,) = TABLE_SOURCES[table.name]
            rows = of_topic(records, topic).select(*table.column_names)
        if self.kinesis is None:
            return rows
        return unseen(
            rows,
            IDENTITIES[table.name],
            table_name(table, self.catalog),
            self.kinesis.rejection_lookback,
        )

    def _rejected(self, records: DataFrame) -> DataFrame:
        table = REJECTED_EVENTS_TABLE
        from_join = of_topic(records, REJECTED_EVENTS_TOPIC).select(*table.column_names)
        joined = invalid(of_topic(records, JOINED_TOPIC))
        # Where the invalid joined row was read: its Kafka offset, or its Kinesis sequence
        # number (the batch's zero-padded key without the padding).
        offset, sequence_number = F.col("offset"), F.lit(None).cast("string")
        if self.kinesis is not None:
            offset = F.lit(None).cast("long")
            sequence_number = F.regexp_replace(F.col("offset"), "^0+(?=.)", "")
        invalid_rows = joined.select(
            F.lit(JOINED_STREAM).alias("stream"),
            F.lit(Reason.INVALID_JOINED_ROW.value).alias("reason"),
            F.col(REJECTION_DETAIL).alias("detail"),
            F.substring(F.col("value"), 1, MAX_RAW_PAYLOAD_BYTES).alias("raw_payload"),
            F.col("partition").alias("source_partition"),
            offset.alias("source_offset"),
            now().alias("rejected_at"),
            sequence_number.alias("source_sequence_number"),
        )
        if self.kinesis is None:
            return from_join.unionByName(invalid_rows)
        name, lookback = table_name(table, self.catalog), self.kinesis.rejection_lookback
        return unseen(from_join, JOIN_REJECTION, name, lookback).unionByName(
            unseen(invalid_rows, INVALID_JOINED_ROW, name, lookback)
        )
