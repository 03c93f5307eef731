"""The enrichment job: one Structured Streaming query over the four outcome topics.

Run by the launcher as `python -m adstream.enrich.job PARAMS.json`. Reads committed records
only (read_committed), splits each micro-batch by topic and appends to the tables through
`BatchWriter`. Bounded runs (Trigger.AvailableNow) exit 0 when everything present at the start
is written; endless runs stop cleanly on SIGTERM or SIGINT. On Kinesis the records come from
the job's own micro-batch loop instead (`adstream.enrich.kinesis_reader`), into the same writer.
"""

import fcntl
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from adstream.enrich.kinesis_reader import read_kinesis
from adstream.enrich.maintain import Maintainer, Retention
from adstream.enrich.offsets import (
    OffsetMap,
    all_committed_offsets,
    missing_tables,
    starting_offsets,
)
from adstream.enrich.params import EXIT_FAILED, EXIT_LOCKED, LOGGER, RUNNING, EnrichParams
from adstream.enrich.rules import EnrichRules
from adstream.enrich.session import UTC, build_session
from adstream.enrich.warmup import warm_up
from adstream.enrich.writer import BatchWriter
from adstream.errors import AdstreamError
from adstream.events.outcomes import OUTCOME_TOPICS
from adstream.lakehouse.catalog import connect

log = logging.getLogger(LOGGER)

QUERY_NAME: Final = "adstream-enrich"


def outcome_records(spark: SparkSession, params: EnrichParams, starting: str) -> DataFrame:
    """The committed records of the four outcome topics: topic, partition, offset, value."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", params.bootstrap_servers)
        .option("subscribe", ",".join(OUTCOME_TOPICS))
        .option("kafka.isolation.level", "read_committed")
        .option("startingOffsets", starting)
        .option("maxOffsetsPerTrigger", str(params.max_batch_records))
        .load()
        .selectExpr("topic", "partition", "offset", "CAST(value AS STRING) AS value")
    )


def _log_entries(folder: Path) -> list[Path]:
    return [path for path in folder.glob("[0-9]*") if path.name.isdigit()]


def _resume_point(params: EnrichParams, committed: dict[str, OffsetMap]) -> str:
    """`startingOffsets` for a query without checkpoint; ignored by Spark when there is one.

    A checkpoint that has committed batches while a table has taken nothing in belongs to
    tables that are gone (deleted, or a new warehouse), or predates a table (one added by an
    upgrade): it is set aside, so the tables are built from the topics instead of silently
    missing everything before it. Each table still skips what it holds.
    """
    checkpoint = Path(params.checkpoint_dir)
    if _log_entries(checkpoint / "commits") and missing_tables(committed):
        stale = checkpoint.with_name(checkpoint.name + ".stale")
        log.warning(
            "%s hold nothing the checkpoint has seen; moving it to %s",
            ", ".join(missing_tables(committed)),
            stale,
        )
        shutil.rmtree(stale, ignore_errors=True)
        checkpoint.rename(stale)
    if _log_entries(checkpoint / "offsets"):
        log.info("resuming from the checkpoint %s", checkpoint)
        return "earliest"
    starting = starting_offsets(committed, params.partitions)
    log.info("no checkpoint: starting after the offsets the tables hold: %s", starting)
    return starting


def rules(params: EnrichParams) -> EnrichRules:
    """The enrichment rules (SPEC section 5) with the job's premium threshold and multiplier."""
    return EnrichRules(Decimal(params.premium_threshold), Decimal(params.revenue_multiplier))


def start(spark: SparkSession, params: EnrichParams) -> StreamingQuery:
    """Start the query: from the checkpoint, or after what the tables already hold."""
    # Read after taking the lock: no other job can write the tables from here on.
    committed = all_committed_offsets(connect(params.catalog_type, params.catalog_properties))
    starting = _resume_point(params, committed)
    writer = (
        outcome_records(spark, params, starting)
        .writeStream.queryName(QUERY_NAME)
        .foreachBatch(BatchWriter(rules(params), committed))
        .option("checkpointLocation", params.checkpoint_dir)
    )
    if params.bounded:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{params.trigger_interval_ms} milliseconds")
    return writer.start()


def read_kafka(spark: SparkSession, params: EnrichParams, signals: "Signals") -> None:
    """Run the streaming query until it ends (bounded, finished) or a signal stops it."""
    for bounded in (params.bounded, True):
        if signals.stop.is_set():
            log.info("stopped before the query started")
            return
        query = start(spark, replace(params, bounded=bounded))
        log.info("query %s started (%s)", query.id, "bounded" if bounded else "endless")
        wait(query, signals, bounded=bounded)
        if bounded or not signals.finish.is_set():
            return
        log.info("finishing: writing what the outcome topics hold now")


class Signals:
    """What the launcher asked for: stop now (SIGTERM, SIGINT) or finish (SIGUSR1)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.finish = threading.Event()

    def install(self) -> None:
        """Handle the signals (again after the SparkContext, which takes SIGINT for itself)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        signal.signal(signal.SIGUSR1, lambda *_: self.finish.set())


def wait(query: StreamingQuery, signals: Signals, *, bounded: bool) -> None:
    """Until the query ends by itself (bounded), or a signal asks to stop (or, endless, finish).

    Logs `RUNNING` once the query has made its first trigger: from then on it takes each
    committed outcome record within a trigger interval.
    """
    running = False
    # Short waits, so a signal is handled between them rather than inside a JVM call. (Typed
    # as int, but PySpark takes any number of seconds: it calls the JVM with int(s * 1000).)
    while not query.awaitTermination(0.25):  # type: ignore[arg-type]
        if not running and _triggered(query):
            running = True
            log.info("%s first trigger done", RUNNING)
        if signals.stop.is_set():
            log.info("stopping")
            query.stop()
            return
        if not bounded and signals.finish.is_set():
            _stop_between_batches(query)
            return


def _triggered(query: StreamingQuery) -> bool:
    return query.lastProgress is not None or query.status["message"].startswith("Waiting")


def _stop_between_batches(query: StreamingQuery) -> None:
    """Stop the query once no micro-batch with data runs (a stopped batch would be redone)."""
    while query.isActive:
        status = query.status
        if not (status["isTriggerActive"] and status["isDataAvailable"]):
            break
        time.sleep(0.1)
    query.stop()


@contextmanager
def exclusive(lock_file: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `lock_file` if no other process does; yield whether we do."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def run(spark: SparkSession, params: EnrichParams, signals: Signals) -> None:
    """Run the job on `spark` until it is done (bounded, finished) or a signal stops it.

    What every run of the job does: in the process `adstream enrich` starts (`main`) and in a
    Glue job's session (`adstream.enrich.glue`).

    Raises:
        StreamingQueryException: the Kafka query failed.
        AdstreamError: the job failed (e.g. Kinesis or the catalog stopped answering).
    """
    for key, value in UTC.items():  # a Glue job's session is given as it is
        spark.conf.set(key, value)
    if params.warm_up_dir is not None:  # its first batch holds the first results a user waits for
        warm_up(spark, rules(params), Path(params.warm_up_dir))
    maintainer = None
    if not params.bounded and params.maintain_interval_ms > 0:
        maintainer = Maintainer(
            spark,
            lambda: connect(params.catalog_type, params.catalog_properties),
            Retention(
                snapshots=timedelta(milliseconds=params.snapshot_retention_ms),
                orphans=timedelta(milliseconds=params.orphan_age_ms),
            ),
            timedelta(milliseconds=params.maintain_interval_ms),
        )
        maintainer.start()
    try:
        if params.source == "kinesis":
            read_kinesis(spark, params, signals, rules(params))
        else:
            read_kafka(spark, params, signals)
    finally:
        if maintainer is not None:
            maintainer.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the job described by the parameters file; the exit code tells the launcher how.

    An endless run ends on SIGTERM or SIGINT (a batch it interrupts is redone by the next run),
    or finishes on SIGUSR1: it then writes everything the outcome topics hold at that moment
    (Trigger.AvailableNow, in the same session; on Kinesis, each shard read to its tip) and
    exits. That is how `adstream run` ends its enrichment once the join is done.
    """
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per JVM callback otherwise
    params = EnrichParams.from_json(Path(args[0]).read_text())
    if params.lock_file is None:  # the launcher always gives its job process one
        raise ValueError("the job process needs its lock file")
    signals = Signals()
    signals.install()
    with exclusive(Path(params.lock_file)) as locked:
        if not locked:
            log.error("another enrichment job is running on this data directory")
            return EXIT_LOCKED
        spark = build_session(params.spark_conf)
        signals.install()
        try:
            run(spark, params, signals)
        except StreamingQueryException as error:
            log.error("the enrichment query failed: %s", error)
            return EXIT_FAILED
        except AdstreamError as error:
            log.error("the enrichment failed: %s", error)
            return EXIT_FAILED
        finally:
            spark.stop()
    log.info("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
