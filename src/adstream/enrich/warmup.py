"""Warm the enrichment's write path before the pipeline reports itself ready.

The first micro-batch a Spark JVM writes to Iceberg takes seconds more than the ones after it
(class loading and code generation along the decode, Parquet and commit paths: 6.4 s for a
batch of one record against 2-3 s, docs/run.md), and in `adstream run` that first batch holds
the first results a user waits for. So an endless job first writes one synthetic record of
each outcome topic through the same `BatchWriter` into a scratch catalog of the same kind (a
SQLite file and folder under its home, deleted afterwards); the real tables are not touched.
"""

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Final

from pyiceberg import types as iceberg
from pyspark.sql import SparkSession

from adstream.enrich.decode import KAFKA_COLUMNS
from adstream.enrich.rules import EnrichRules
from adstream.enrich.writer import BatchWriter
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
)
from adstream.lakehouse.catalog import connect, create_tables, spark_sql_catalog_conf
from adstream.lakehouse.tables import (
    IMPRESSIONS_TABLE,
    JOINED_COLUMNS,
    REJECTED_EVENTS_TABLE,
    TABLES,
    UNMATCHED_CLICKS_TABLE,
    Column,
)

log = logging.getLogger(__name__)

CATALOG: Final = "adstream_warmup"
_RECORD_COLUMNS: Final = {
    JOINED_TOPIC: JOINED_COLUMNS,
    IMPRESSIONS_OUT_TOPIC: IMPRESSIONS_TABLE.columns,
    UNMATCHED_CLICKS_TOPIC: UNMATCHED_CLICKS_TABLE.columns,
    REJECTED_EVENTS_TOPIC: REJECTED_EVENTS_TABLE.columns,
}
"""The fields of each outcome topic's records, as the join writes them."""


def warm_up(spark: SparkSession, rules: EnrichRules, home: Path) -> None:
    """Write one record of each outcome topic to scratch tables under `home`, then remove them."""
    began = time.monotonic()
    shutil.rmtree(home, ignore_errors=True)
    (home / "warehouse").mkdir(parents=True)
    uri, location = f"sqlite:///{home / 'catalog.db'}", (home / "warehouse").as_uri()
    try:
        create_tables(connect("sql", {"uri": uri, "warehouse": location}, name=CATALOG))
        for key, value in spark_sql_catalog_conf(CATALOG, uri, location).items():
            spark.conf.set(key, value)
        records = spark.createDataFrame(
            [
                (topic, 0, 0, json.dumps({c.name: _sample(c) for c in columns}))
                for topic, columns in _RECORD_COLUMNS.items()
            ],
            "topic STRING, partition INT, offset BIGINT, value STRING",
        ).select(*KAFKA_COLUMNS)
        BatchWriter(rules, {table.name: {} for table in TABLES}, catalog=CATALOG)(records, 0)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    log.info("write path warmed up in %.1f s", time.monotonic() - began)


def _sample(column: Column) -> Any:
    """A valid JSON value for a column: every table gets a row."""
    kind = column.type
    if isinstance(kind, iceberg.StringType):
        return "warm-up"
    if isinstance(kind, iceberg.TimestamptzType):
        return "2026-01-01T00:00:00.000Z"
    if isinstance(kind, iceberg.DecimalType):
        return 1.5
    if isinstance(kind, iceberg.DoubleType):
        return 1.0
    if isinstance(kind, iceberg.BooleanType):
        return False
    return 0
