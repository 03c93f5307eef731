"""The enrichment on Kinesis: a micro-batch loop in the driver over the four outcome streams.

Spark 3.5 ships no Kinesis source, and the open-source connectors keep their positions in
their own checkpoint, do not say which shard a record came from (as far as their documentation
shows) and have no Trigger.AvailableNow; so the job polls the streams itself (`ShardPoller`).
Every trigger interval it reads each shard (parents before children) from after what the
tables have committed, at most `max_batch_records` records per batch, and hands them to the
same `BatchWriter` as the Kafka query, as a DataFrame of the same columns: topic, partition
(the shard number), offset (the sequence number as `sequence_key`) and value. It keeps no
checkpoint: a restart resumes after the positions the tables' snapshots hold, and identity
(`adstream.enrich.identity`) keeps the copies an at-least-once join may write out of the
tables.

Bounded: every shard is read to its tip (an empty answer at the tip), written, and the job
exits. Endless: until SIGTERM or SIGINT; on SIGUSR1 it finishes as a bounded run would.
"""

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from pyspark.sql import DataFrame, SparkSession

from adstream.enrich.identity import rejection_lookback
from adstream.enrich.offsets import (
    all_committed_offsets,
    lowest_taken,
    sequence_key,
    summed_snapshots,
)
from adstream.enrich.params import LOGGER, RUNNING, EnrichParams
from adstream.enrich.rules import EnrichRules
from adstream.enrich.writer import BatchWriter, KinesisOutcomes
from adstream.events.outcomes import ALL_TOPICS, OUTCOME_TOPICS
from adstream.lakehouse.catalog import connect
from adstream.platform import aws_connection
from adstream.services import aws, kinesis
from adstream.services.kinesis_poller import ShardPoller, ShardRecord
from adstream.settings import Settings

if TYPE_CHECKING:
    from adstream.enrich.job import Signals

log = logging.getLogger(LOGGER)

RECORD_SCHEMA: Final = "topic STRING, partition INT, offset STRING, value STRING"
"""What `BatchWriter` reads of each record: as from Kafka, with the sequence number as offset."""


def outcome_frame(spark: SparkSession, records: list[ShardRecord]) -> DataFrame:
    """The records as a batch for `BatchWriter` (values as UTF-8 text, like the Kafka path's)."""
    rows = [
        (r.topic, r.shard, sequence_key(r.sequence_number), r.data.decode("utf-8", "replace"))
        for r in records
    ]
    return spark.createDataFrame(rows, RECORD_SCHEMA)


def identity_lookback(settings: Settings) -> timedelta:
    """`rejection_lookback` for the streams' retention (the longest of them, for both sides)."""
    kept = kinesis.retention(settings, ALL_TOPICS).values()
    longest = max(kept)  # the outcome streams exist: the launcher checked
    return rejection_lookback(longest, longest)


def read_kinesis(
    spark: SparkSession, params: EnrichParams, signals: "Signals", rules: EnrichRules
) -> None:
    """Run the micro-batch loop until it is done (bounded, finished) or told to stop."""
    settings = aws_connection(params.aws_settings)
    catalog = connect(params.catalog_type, params.catalog_properties)
    # Read after taking the lock: no other job can write the tables from here on.
    committed = all_committed_offsets(catalog, "kinesis")
    outcomes = KinesisOutcomes(identity_lookback(settings), summed_snapshots(catalog))
    writer = BatchWriter(rules, committed, kinesis=outcomes)
    poller = ShardPoller(
        aws.client(settings, "kinesis"),
        {topic: settings.stream_name(topic) for topic in OUTCOME_TOPICS},
        # The writer keeps `committed` current, so a shard found later starts right too.
        lambda topic, shard: lowest_taken(committed, topic, shard),
        where=aws.where(settings),
    )
    log.info(
        "reading the outcome streams after the positions the tables hold (%s)",
        "bounded" if params.bounded else f"every {params.trigger_interval_ms} ms",
    )
    interval = params.trigger_interval_ms / 1000
    batch_id, running, finishing = 0, False, params.bounded
    while not signals.stop.is_set():
        began = time.monotonic()
        if signals.finish.is_set() and not finishing:
            log.info("finishing: writing what the outcome streams hold now")
            finishing = True
            poller.finish()
        records = poller.poll(params.max_batch_records, to_tip=finishing, stop=signals.stop.is_set)
        if signals.stop.is_set():
            break  # nothing of this batch is committed: the next run reads it again
        if records:
            log.info("batch %d: %d records", batch_id, len(records))
            writer(outcome_frame(spark, records), batch_id)
            batch_id += 1
        if not running:
            running = True
            log.info("%s first batch done", RUNNING)
        if finishing and poller.at_tip:
            return
        if not finishing:
            _wait_for(began + interval, signals)
    log.info("stopping")


def _wait_for(moment: float, signals: "Signals") -> None:
    """Until the monotonic clock reaches `moment`, or a signal comes."""
    while not (signals.stop.is_set() or signals.finish.is_set()):
        left = moment - time.monotonic()
        if left <= 0:
            return
        signals.stop.wait(min(left, 0.25))
