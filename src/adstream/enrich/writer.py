"""Each micro-batch of outcome records to the tables, exactly once (docs/enrich.md).

Before writing, a batch drops the records at or below the offsets a table has taken in
(`adstream.enrich.offsets`), and each commit records the new offsets in its snapshot. So a
replayed batch (a crash between a table commit and Spark's commit log, a lost checkpoint, a
restart from older offsets) adds nothing twice, and each table can be committed on its own.
The four base tables are appended to; campaign_metrics_minute has the minutes the batch
touches rewritten (`adstream.enrich.metrics`). After enriched_ad_data, the other four commit
concurrently.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from adstream.enrich import metrics
from adstream.enrich.decode import decode
from adstream.enrich.offsets import (
    OFFSETS_PROPERTY,
    TABLE_SOURCES,
    OffsetMap,
    format_offsets,
    merge,
)
from adstream.enrich.rules import REJECTION_DETAIL, EnrichRules, enrich, invalid
from adstream.enrich.rules import now_to_the_millisecond as now
from adstream.events.outcomes import JOINED_STREAM, JOINED_TOPIC, REJECTED_EVENTS_TOPIC, Reason
from adstream.events.schema import MAX_RAW_PAYLOAD_BYTES
from adstream.lakehouse.catalog import CATALOG_NAME
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    CAMPAIGN_METRICS_MINUTE_TABLE,
    ENRICHED_AD_DATA,
    ENRICHED_AD_DATA_TABLE,
    IMPRESSIONS_TABLE,
    JOINED_COLUMNS,
    REJECTED_EVENTS,
    REJECTED_EVENTS_TABLE,
    TABLES,
    TableDefinition,
)

log = logging.getLogger(__name__)


def table_name(table: TableDefinition, catalog: str = CATALOG_NAME) -> str:
    """The table as Spark names it: `adstream.ad_analytics.<name>`."""
    return f"{catalog}.{table.identifier}"


def _after(offsets: OffsetMap, topics: tuple[str, ...]) -> Column:
    """Records of `topics` above the offsets already taken in."""
    condition = F.lit(False)
    for topic in topics:
        taken = F.lit(-1)
        for partition, offset in offsets.get(topic, {}).items():
            taken = F.when(F.col("partition") == partition, F.lit(offset)).otherwise(taken)
        condition = condition | ((F.col("topic") == topic) & (F.col("offset") > taken))
    return condition


def _of_topic(records: DataFrame, topic: str) -> DataFrame:
    return records.where(F.col("topic") == topic)


class BatchWriter:
    """The `foreachBatch` function: one commit per table that has new records in the batch."""

    def __init__(
        self, rules: EnrichRules, committed: dict[str, OffsetMap], catalog: str = CATALOG_NAME
    ) -> None:
        """Start from the offsets the tables have taken in (`all_committed_offsets`)."""
        self.rules = rules
        self.committed = committed
        self.catalog = catalog

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Write one micro-batch (Kafka columns: topic, partition, offset, value)."""
        batch.persist()
        try:
            seen: OffsetMap = {}
            for row in batch.groupBy("topic", "partition").agg(F.max("offset")).collect():
                seen.setdefault(row[0], {})[row[1]] = row[2]
            # The attributed clicks first, on their own: they are what a user waits for. Then
            # the other tables side by side: their Spark jobs and commits are independent, and
            # overlapping them ends a batch sooner (docs/enrich.md).
            first, *others = TABLES
            self._write(first, batch, seen, batch_id)
            with ThreadPoolExecutor(len(others), thread_name_prefix="adstream-write") as pool:
                list(pool.map(lambda table: self._write(table, batch, seen, batch_id), others))
        finally:
            batch.unpersist()

    def _write(
        self, table: TableDefinition, batch: DataFrame, seen: OffsetMap, batch_id: int
    ) -> None:
        sources = TABLE_SOURCES[table.name]
        before = self.committed[table.name]
        after = merge(before, {topic: seen[topic] for topic in sources if topic in seen})
        if after == before:
            return
        # The new offsets are committed even when no row results (e.g. only valid joined rows
        # for rejected_events), so a restart without checkpoint need not re-read them.
        records = batch.where(_after(before, sources))
        if table.name == CAMPAIGN_METRICS_MINUTE:
            rows, replace = self._touched_minutes(records)
        else:
            rows, replace = self.rows(table, records), False
        writer = rows.writeTo(table_name(table, self.catalog)).option(
            f"snapshot-property.{OFFSETS_PROPERTY}", format_offsets(after)
        )
        if replace:
            writer.overwritePartitions()  # exactly the minutes `rows` has
        else:
            writer.append()
        self.committed[table.name] = after
        level = logging.INFO if self.catalog == CATALOG_NAME else logging.DEBUG  # a warm-up
        log.log(
            level, "batch %d: %s now at offsets %s", batch_id, table.name, format_offsets(after)
        )

    def _touched_minutes(self, records: DataFrame) -> tuple[DataFrame, bool]:
        """The metrics rows of the minutes new records touch, and whether there are any.

        Each such minute's rows are what the table holds plus the new records' summary.
        """
        summary = metrics.summarize(
            self.rows(IMPRESSIONS_TABLE, records),
            self.rows(ENRICHED_AD_DATA_TABLE, records),
            self.rules,
        )
        minutes = metrics.touched_minutes(summary)
        if not minutes:
            return metrics.combine(summary), False
        held = records.sparkSession.table(
            table_name(CAMPAIGN_METRICS_MINUTE_TABLE, self.catalog)
        ).where(metrics.in_minutes(minutes))
        return metrics.combine(held, summary), True

    def rows(self, table: TableDefinition, records: DataFrame) -> DataFrame:
        """The table's rows for new records of its source topics, in its column order."""
        if table.name == ENRICHED_AD_DATA:
            return enrich(decode(_of_topic(records, JOINED_TOPIC), JOINED_COLUMNS), self.rules)
        if table.name == REJECTED_EVENTS:
            return self._rejected(records)
        (topic,) = TABLE_SOURCES[table.name]
        return decode(_of_topic(records, topic), table.columns).select(*table.column_names)

    def _rejected(self, records: DataFrame) -> DataFrame:
        table = REJECTED_EVENTS_TABLE
        from_join = decode(_of_topic(records, REJECTED_EVENTS_TOPIC), table.columns).select(
            *table.column_names
        )
        joined = invalid(decode(_of_topic(records, JOINED_TOPIC), JOINED_COLUMNS))
        invalid_rows = joined.select(
            F.lit(JOINED_STREAM).alias("stream"),
            F.lit(Reason.INVALID_JOINED_ROW.value).alias("reason"),
            F.col(REJECTION_DETAIL).alias("detail"),
            F.substring(F.col("value"), 1, MAX_RAW_PAYLOAD_BYTES).alias("raw_payload"),
            F.col("partition").alias("source_partition"),
            F.col("offset").alias("source_offset"),
            now().alias("rejected_at"),
        )
        return from_join.unionByName(invalid_rows)
