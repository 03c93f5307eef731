"""Contender (b), the Spark half: enrich the joined rows, MERGE every micro-batch into Iceberg.

A Structured Streaming query reads `bench_b_joined` (the Flink interval join's output) from the
beginning, and for each micro-batch: decodes the JSON rows, applies SPEC section 5 with
adstream's own rules (`adstream.enrich.rules.enrich`: invalid rows, e.g. a click before its
impression, are dropped), keeps one row per (ad_id, impression_id) because MERGE allows at most
one source row per target row (the last to arrive: the joined topic is keyed by impression_id,
so that is the highest offset), and upserts it:

    MERGE INTO adstream.bench.attributed_clicks t USING batch s
    ON t.ad_id = s.ad_id AND t.impression_id = s.impression_id
    WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *

Across micro-batches, too, the last row to arrive wins. The table keeps Iceberg's defaults
(copy-on-write MERGE: each batch rewrites the data files holding a matched row).

The query runs on a processing-time trigger while the Flink job writes. The entry point then
writes the topic's final end offsets (JSON, partition to offset) to this process's stdin; the
query stops once its last micro-batch has reached them, and the process exits 0. Stdin closed
without offsets means the run was abandoned: the query stops at once and the exit code is 1.

    .venv/bin/python bench/contenders/interval_merge_spark.py PARAMS.json < FINAL_OFFSETS
"""

import json
import logging
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from interval_merge_params import JOINED_TOPIC, SparkJobParams
from output_table import OUTPUT_COLUMNS, SPARK_TABLE
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from adstream.enrich.decode import KAFKA_COLUMNS, decode
from adstream.enrich.rules import REJECTION_DETAIL, EnrichRules, check, enrich
from adstream.enrich.session import build_session
from adstream.lakehouse.tables import JOINED_COLUMNS

log = logging.getLogger("interval_merge.spark")

BATCH_VIEW = "batch"
MERGE = f"""
MERGE INTO {SPARK_TABLE} t
USING {BATCH_VIEW} s
ON t.ad_id = s.ad_id AND t.impression_id = s.impression_id
WHEN MATCHED THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *"""
_POLL_S = 1


def joined_records(spark: SparkSession, params: SparkJobParams) -> DataFrame:
    """The joined topic from its beginning: topic, partition, offset, value."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", params.bootstrap_servers)
        .option("subscribe", JOINED_TOPIC)
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr(*KAFKA_COLUMNS[:3], "CAST(value AS STRING) AS value")
    )


def last_per_key(rows: DataFrame) -> DataFrame:
    """One row per (ad_id, impression_id): the last to arrive (highest offset of its key)."""
    arrival = Window.partitionBy("ad_id", "impression_id").orderBy(
        F.col("partition").desc(), F.col("offset").desc()
    )
    return rows.withColumn("_arrival", F.row_number().over(arrival)).where("_arrival = 1")


def upserts(batch: DataFrame, rules: EnrichRules) -> DataFrame:
    """The rows one micro-batch merges: valid, enriched, one per key, in table columns."""
    valid = check(decode(batch, JOINED_COLUMNS)).where(F.col(REJECTION_DETAIL).isNull())
    return enrich(last_per_key(valid), rules).select(*OUTPUT_COLUMNS)


class MergeBatch:
    """The foreachBatch function: one MERGE INTO per micro-batch."""

    def __init__(self, rules: EnrichRules) -> None:
        self.rules = rules

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Upsert the batch's rows into the table."""
        began = time.monotonic()
        upserts(batch, self.rules).createOrReplaceTempView(BATCH_VIEW)
        batch.sparkSession.sql(MERGE)
        log.info("batch %d merged in %.1f s", batch_id, time.monotonic() - began)


def start(spark: SparkSession, params: SparkJobParams) -> StreamingQuery:
    """Start the streaming MERGE on a processing-time trigger."""
    rules = EnrichRules(Decimal(params.premium_threshold), Decimal(params.revenue_multiplier))
    return (
        joined_records(spark, params)
        .writeStream.queryName("bench-interval-merge")
        .foreachBatch(MergeBatch(rules))
        .option("checkpointLocation", params.checkpoint_dir)
        .trigger(processingTime=f"{params.trigger_interval_ms} milliseconds")
        .start()
    )


def read_final_offsets(received: dict[str, dict[str, int] | None], done: threading.Event) -> None:
    """Wait for the entry point's final end offsets on stdin (None when it closes without)."""
    text = sys.stdin.read().strip()
    received["ends"] = json.loads(text) if text else None
    done.set()


def reached(progress: dict[str, Any] | None, ends: dict[str, int]) -> bool:
    """Whether the last micro-batch read the topic up to `ends` (partition to end offset)."""
    if progress is None:
        return False
    read: dict[str, int] = progress["sources"][0]["endOffset"].get(JOINED_TOPIC, {})
    return all(read.get(partition, -1) >= end for partition, end in ends.items())


def run_until_final_offsets(query: StreamingQuery) -> int:
    """Let the query run until it has merged everything up to the final offsets; exit code."""
    received: dict[str, dict[str, int] | None] = {}
    done = threading.Event()
    threading.Thread(target=read_final_offsets, args=(received, done), daemon=True).start()
    while not query.awaitTermination(_POLL_S):  # raises when the query failed
        if not done.is_set():
            continue
        ends = received["ends"]
        if ends is None:
            log.error("stdin closed without final offsets: stopping")
            query.stop()
            return 1
        if reached(query.lastProgress, ends):
            log.info("merged everything up to %s: stopping", ends)
            query.stop()
            return 0
    log.error("the query ended by itself")
    return 1


def main(argv: list[str]) -> int:
    """Run the streaming MERGE described by the parameters file."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    params = SparkJobParams.from_json(Path(argv[1]).read_text())
    spark = build_session(params.spark_conf)
    try:
        return run_until_final_offsets(start(spark, params))
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
