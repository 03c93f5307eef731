"""Exactly-once through a crash: kill -9 the enrichment mid-stream, restart, every row once.

The input is the generator's traffic with two in five records mangled in seeded, hostile ways
(tests/mutations.py): through the whole pipeline, every record is accounted once, and the
tables equal the reference recomputation (what `adstream verify` compares).
"""

import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adstream.lakehouse.catalog import ensure_tables, row_counts
from adstream.query import run_query
from adstream.services.process import wait_until
from adstream.settings import Settings
from adstream.verify import (
    check_metrics,
    expected_outcomes,
    expected_tally,
    read_source_records,
    stored_tally,
)
from tests.cli import ADSTREAM, adstream
from tests.conftest import instance_env
from tests.join_harness import join_settings, produce, recreate_topics, run_bounded_join
from tests.mutations import hostile_traffic

pytestmark = pytest.mark.integration

# Small micro-batches every half second: the kill lands between and inside table commits.
SPARK_ENV = {
    "ADSTREAM_SPARK_MASTER": "local[2]",
    "ADSTREAM_SPARK_DRIVER_MEMORY": "768m",
    "ADSTREAM_ENRICH_TRIGGER_INTERVAL": "0.5",
    "ADSTREAM_ENRICH_MAX_BATCH_RECORDS": "2000",
}


def test_kill_minus_nine_then_restart_writes_every_row_once(
    kafka: Settings, tmp_path: Path
) -> None:
    settings = join_settings(
        kafka,
        tmp_path / "enrich-recovery",
        seed=21,
        rate=0.0,
        events=12_000,
        start_time=datetime(2026, 11, 1, tzinfo=UTC),
        duplicate_impression_fraction=0.03,
        duplicate_click_fraction=0.05,
        orphan_click_fraction=0.05,
        invalid_fraction=0.02,
    )
    recreate_topics(settings, partitions=2)
    produce(settings, hostile_traffic(settings, share=0.4))
    run_bounded_join(settings)
    expected = expected_tally(settings, expected_outcomes(settings, read_source_records(settings)))
    assert expected.input_records() == 12_000  # the reference has an outcome for every record
    env = instance_env(settings) | SPARK_ENV
    ensure_tables(settings)  # as `adstream enrich` does first: count rows from the start

    log = (tmp_path / "enrich.out").open("wb")
    endless = subprocess.Popen(
        [ADSTREAM, "enrich"], env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_until(
            lambda: endless.poll() is None and sum(row_counts(settings).values()) > 0,
            timeout=600,
            interval=0.5,
            what="the first committed rows",
        )
    finally:
        os.killpg(endless.pid, signal.SIGKILL)
        endless.wait()
    # Mid-stream: fewer outcome records stored than expected, counted the same way.
    assert stored_tally(settings).counts.total() < expected.counts.total()

    result = adstream("enrich", "--bounded", env=env, timeout=600)
    assert result.returncode == 0, result.stderr

    assert stored_tally(settings) == expected
    for table, key in (
        ("enriched_ad_data", "impression_id"),
        ("impressions", "source_partition, source_offset"),
        ("unmatched_clicks", "source_partition, source_offset"),
        ("rejected_events", "stream, source_partition, source_offset"),
    ):
        rows, distinct = run_query(
            settings, f"SELECT count(*), count(DISTINCT ({key})) FROM {table}"
        ).rows[0]
        assert rows == distinct, f"{table} holds {rows - distinct} duplicate rows"
    # The per-minute metrics were rewritten across the kill, and still sum the base tables.
    for metrics in check_metrics(settings):
        assert metrics.ok, metrics
        assert metrics.stored_rows > 500  # minutes of many rows, or of a few sums
