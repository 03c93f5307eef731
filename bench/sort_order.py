"""Benchmark: does sorting the compacted day partitions help the dashboard's queries?

The dashboard reads two day-partitioned tables through a time window: enriched_ad_data's
click_time (the freshness of its summary) and rejected_events' rejected_at (its rejected counts).
A day of real volume compacts into files of several row groups, and pyiceberg (pyarrow) skips a
row group whose statistics lie outside the window: the narrower each row group's time range,
the fewer it reads.

This writes one day of both tables, `--clicks` and `--rejected` rows in `--appends` commits
moving forward through the day (the streaming writer's order), twice: once compacted by
bin-packing alone, once as `adstream maintain` compacts them (Iceberg's sort strategy on the
partition's time column). It reports each layout's files, row groups, and how many row groups an
hour's window overlaps, and the latency of the dashboard's two queries over an hour ending at
several times of the day and over the whole day, the layouts' runs alternating. The answers are
checked to be the same in both.

Results: bench/results/sort_order.json and a Markdown table on stdout.

    .venv/bin/python bench/sort_order.py [--clicks 10000000] [--rejected 3000000] [--appends 96]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from adstream.dashboard import queries
from adstream.enrich.maintain import SORTED, compaction
from adstream.enrich.session import build_session, spark_conf
from adstream.lakehouse.catalog import CATALOG_NAME, ensure_tables, open_catalog
from adstream.lakehouse.tables import (
    ENRICHED_AD_DATA_TABLE,
    NAMESPACE,
    REJECTED_EVENTS_TABLE,
    TABLE_BY_NAME,
)
from adstream.settings import Settings, load_settings
from maintain_tables import latencies

RESULTS: Final = Path(__file__).parent / "results" / "sort_order.json"
DAY_START: Final = datetime(2026, 11, 1, tzinfo=UTC)
DAY: Final = timedelta(days=1)
TABLES: Final = tuple(TABLE_BY_NAME[name] for name in SORTED)
LAYOUTS: Final = ("bin-pack", "sorted")
WINDOW_ENDS: Final = (6, 12, 18, 24)  # hours into the day


def enriched_rows(
    spark: SparkSession, first: int, count: int, start: datetime, span: timedelta
) -> DataFrame:
    """`count` attributed clicks with click_time in [start, start + span), in random order."""
    seconds = span.total_seconds()
    return (
        spark.range(first, first + count)
        .withColumn("t", F.lit(start.timestamp()) + F.rand(first) * seconds)
        .select(
            F.concat(F.lit("ad-"), (F.col("id") % 5000).cast("string")).alias("ad_id"),
            F.concat(F.lit("imp-"), F.sha1(F.col("id").cast("string"))).alias("impression_id"),
            F.concat(F.lit("campaign-"), (F.col("id") % 200).cast("string")).alias("campaign_id"),
            F.concat(F.lit("publisher-"), (F.col("id") % 500).cast("string")).alias("publisher_id"),
            (F.col("t") - F.rand(first + 1) * 600).cast("timestamp").alias("impression_time"),
            F.col("t").cast("timestamp").alias("click_time"),
            F.element_at(
                F.array(*map(F.lit, ("US", "DE", "FR", "GB", "IN", "BR"))),
                (F.col("id") % 6 + 1).cast("int"),
            ).alias("geo_location"),
            F.element_at(
                F.array(*map(F.lit, ("ios", "android", "web", "roku"))),
                (F.col("id") % 4 + 1).cast("int"),
            ).alias("platform"),
            F.element_at(
                F.array(*map(F.lit, ("phone", "tablet", "desktop", "tv"))),
                (F.col("id") % 4 + 1).cast("int"),
            ).alias("device_type"),
            F.element_at(
                F.array(*map(F.lit, ("banner", "video", "native"))),
                (F.col("id") % 3 + 1).cast("int"),
            ).alias("ad_type"),
            F.round(F.rand(first + 2) * 20, 6).alias("bid_price"),
            F.round(F.rand(first + 3) * 2, 6).alias("click_price"),
            (F.rand(first + 4) > 0.8).alias("is_premium_ad"),
            (F.rand(first + 5) * 600).alias("engagement_duration"),
            F.element_at(
                F.array(*map(F.lit, ("Mobile", "Tablet", "Desktop", "CTV"))),
                (F.col("id") % 4 + 1).cast("int"),
            ).alias("platform_category"),
            F.round(F.rand(first + 6) * 3, 6).alias("click_revenue"),
            (F.col("t") + 8).cast("timestamp").alias("processed_time"),
        )
    )


def rejected_rows(
    spark: SparkSession, first: int, count: int, start: datetime, span: timedelta
) -> DataFrame:
    """`count` rejected records with rejected_at in [start, start + span), in random order."""
    seconds = span.total_seconds()
    reasons = (
        "MISSING_FIELD",
        "INVALID_JSON",
        "LATE_EVENT",
        "DUPLICATE_IMPRESSION",
        "BAD_TIMESTAMP",
    )
    return (
        spark.range(first, first + count)
        .withColumn("t", F.lit(start.timestamp()) + F.rand(first) * seconds)
        .select(
            F.element_at(
                F.array(*map(F.lit, ("impressions", "clicks", "joined"))),
                (F.col("id") % 3 + 1).cast("int"),
            ).alias("stream"),
            F.element_at(F.array(*map(F.lit, reasons)), (F.col("id") % 5 + 1).cast("int")).alias(
                "reason"
            ),
            F.lit("field is missing or invalid").alias("detail"),
            F.concat(
                F.lit('{"impression_id": "'),
                F.sha2(F.col("id").cast("string"), 256),
                F.lit('", "event_time": "bad", "campaign_id": "campaign-'),
                (F.col("id") % 200).cast("string"),
                F.lit('", "bid_price": 1.25}'),
            ).alias("raw_payload"),
            (F.col("id") % 2).cast("int").alias("source_partition"),
            F.col("id").alias("source_offset"),
            F.col("t").cast("timestamp").alias("rejected_at"),
            F.lit(None).cast("string").alias("source_sequence_number"),
        )
    )


ROWS: Final[dict[str, Callable[..., DataFrame]]] = {
    ENRICHED_AD_DATA_TABLE.name: enriched_rows,
    REJECTED_EVENTS_TABLE.name: rejected_rows,
}


def write_day(spark: SparkSession, counts: dict[str, int], appends: int) -> float:
    """The day written, `appends` commits per table in time order (the same rows every time)."""
    began = time.monotonic()
    span = DAY / appends
    for number in range(appends):
        for table in TABLES:
            per = counts[table.name] // appends
            rows = ROWS[table.name](spark, number * per, per, DAY_START + span * number, span)
            target = f"{CATALOG_NAME}.{NAMESPACE}.{table.name}"
            schema = spark.table(target).schema
            rows.select(*(F.col(f.name).cast(f.dataType) for f in schema)).writeTo(target).append()
        if (number + 1) % 8 == 0:
            print(
                f"  {number + 1}/{appends} appends, {time.monotonic() - began:.0f} s",
                file=sys.stderr,
            )
    return time.monotonic() - began


def compact(spark: SparkSession, layout: str) -> float:
    """Both tables compacted: bin-packed only, or as `adstream maintain` does (sorted by time)."""
    began = time.monotonic()
    for table in TABLES:
        spark.sql(compaction(table, sort=layout == "sorted")).collect()
    return time.monotonic() - began


def row_groups(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per table: data files, row groups, and how many row groups an hour's window overlaps."""
    catalog = open_catalog(settings)
    found = {}
    for table in TABLES:
        loaded = catalog.load_table(f"{NAMESPACE}.{table.name}")
        ranges = []
        files = loaded.inspect.data_files().to_pylist()
        for file in files:
            metadata = pq.ParquetFile(file["file_path"].removeprefix("file://")).metadata
            index = metadata.schema.names.index(table.partitioned_by)
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(index).statistics
                ranges.append((stats.min, stats.max))
        hours = [DAY_START + timedelta(hours=h) for h in range(25)]
        overlapping = [
            sum(1 for low, high in ranges if low < end and high >= start)
            for start, end in pairwise(hours)
        ]
        found[table.name] = {
            "data_files": len(files),
            "bytes": sum(file["file_size_in_bytes"] for file in files),
            "row_groups": len(ranges),
            "row_groups_an_hour_overlaps": statistics.median(overlapping),
        }
    return found


def plans(settings: Settings) -> dict[str, Callable[[], Any]]:
    found: dict[str, Callable[[], Any]] = {}
    for hours in WINDOW_ENDS:
        window = queries.Window(queries.DEFAULT_WINDOW_MINUTES, DAY_START + timedelta(hours=hours))
        found[f"summary, the hour to {hours:02d}:00"] = partial(queries.summary, settings, window)
        found[f"rejected, the hour to {hours:02d}:00"] = partial(queries.rejected, settings, window)
    day = queries.Window(queries.MAX_WINDOW_MINUTES, DAY_START + DAY)
    found["summary, the day"] = partial(queries.summary, settings, day)
    found["rejected, the day"] = partial(queries.rejected, settings, day)
    return found


def timed(layouts: dict[str, Settings], runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each query's latencies per layout (their runs alternating), once their answers agree."""
    queued = {label: plans(settings) for label, settings in layouts.items()}
    for name in queued["bin-pack"]:
        answers = {
            json.dumps(
                queued[label][name]().model_dump(mode="json", exclude={"freshness_lag_seconds"}),
                sort_keys=True,
            )
            for label in layouts
        }
        if len(answers) != 1:
            raise SystemExit(f"{name}: the layouts answer differently")
    return latencies(queued, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--rejected", type=int, default=3_000_000)
    parser.add_argument("--appends", type=int, default=96)
    parser.add_argument("--query-runs", type=int, default=15)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    counts = {ENRICHED_AD_DATA_TABLE.name: args.clicks, REJECTED_EVENTS_TABLE.name: args.rejected}
    with tempfile.TemporaryDirectory(prefix="adstream-bench-sort-") as folder:
        layouts = {
            label: load_settings(
                data_dir=Path(folder) / label, spark_master="local[2]", spark_driver_memory="4g"
            )
            for label in LAYOUTS
        }
        write_seconds, compaction = {}, {}
        for label, settings in layouts.items():
            ensure_tables(settings)
            spark = build_session(spark_conf(settings))
            spark.sparkContext.setLogLevel("ERROR")
            print(f"{label}: writing {counts} rows in {args.appends} appends", file=sys.stderr)
            write_seconds[label] = write_day(spark, counts, args.appends)
            compaction[label] = compact(spark, label)
            print(f"  {label} compaction: {compaction[label]:.1f} s", file=sys.stderr)
            spark.stop()
        shapes = {label: row_groups(settings) for label, settings in layouts.items()}
        print(json.dumps(shapes, indent=2), file=sys.stderr)
        latency = timed(layouts, args.query_runs)
    result = {
        "rows": counts,
        "appends": args.appends,
        "write_seconds": write_seconds,
        "compaction_seconds": compaction,
        "layout": shapes,
        "latency": latency,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| query | bin-pack, median ms (p95) | sorted, median ms (p95) |",
        "|---|---|---|",
    ]
    for name, binpack in result["latency"]["bin-pack"].items():
        ordered = result["latency"]["sorted"][name]
        lines.append(
            f"| {name} | {binpack['median'] * 1000:.0f} ({binpack['p95'] * 1000:.0f}) "
            f"| {ordered['median'] * 1000:.0f} ({ordered['p95'] * 1000:.0f}) |"
        )
    lines += [
        "",
        "| table | layout | data files | MiB | row groups | row groups an hour overlaps |",
        "|---|---|---|---|---|---|",
    ]
    for label, shape in result["layout"].items():
        for table, facts in shape.items():
            lines.append(
                f"| {table} | {label} | {facts['data_files']} | {facts['bytes'] / 2**20:.0f} "
                f"| {facts['row_groups']} | {facts['row_groups_an_hour_overlaps']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
