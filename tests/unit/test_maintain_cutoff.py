"""Which snapshots maintenance may expire: never one the enrichment still reads (issue 17)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest
from pyiceberg.table import Table
from pyspark.sql import SparkSession

from adstream.enrich import maintain as maintain_module
from adstream.enrich.maintain import Retention, expiry_cutoff, maintain
from adstream.enrich.offsets import POSITIONS_PROPERTY, SUMMED_PROPERTY
from adstream.lakehouse.catalog import ensure_tables, load_table
from adstream.lakehouse.tables import CAMPAIGN_METRICS_MINUTE, IMPRESSIONS, TABLES
from adstream.settings import load_settings

KAFKA = POSITIONS_PROPERTY["kafka"]
KINESIS = POSITIONS_PROPERTY["kinesis"]


def _commit(table: Table, properties: dict[str, str]) -> datetime:
    """Append an empty batch with `properties` in its snapshot summary; return its time."""
    table.append(pa.Table.from_pylist([], schema=table.schema().as_arrow()), properties)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC)


def test_the_newest_snapshot_with_positions_and_all_after_it_stay(tmp_path: Path) -> None:
    table = load_table(ensure_tables(load_settings(data_dir=tmp_path)), IMPRESSIONS)
    _commit(table, {KAFKA: '{"impressions_out":{"0":4}}'})
    newest_positions = _commit(table, {KAFKA: '{"impressions_out":{"0":9}}'})
    _commit(table, {})  # a compaction: no positions
    now = datetime.now(UTC) + timedelta(seconds=1)

    # Retention 0: everything before the newest positions may go, not that snapshot.
    assert expiry_cutoff(table, IMPRESSIONS, now, {}) == newest_positions
    # A longer retention reaching further back wins.
    long_ago = now - timedelta(days=1)
    assert expiry_cutoff(table, IMPRESSIONS, long_ago, {}) == long_ago


def test_positions_of_either_source_and_the_summed_snapshots_stay(tmp_path: Path) -> None:
    catalog = ensure_tables(load_settings(data_dir=tmp_path))
    impressions = load_table(catalog, IMPRESSIONS)
    summed_up_to = _commit(impressions, {KINESIS: '{"impressions_out":{"0":1}}'})
    summed_id = impressions.current_snapshot().snapshot_id  # type: ignore[union-attr]
    _commit(impressions, {KINESIS: '{"impressions_out":{"0":2}}'})
    now = datetime.now(UTC) + timedelta(seconds=1)
    # campaign_metrics_minute has summed impressions up to the first of those snapshots.
    summed = {IMPRESSIONS: summed_id}
    assert expiry_cutoff(impressions, IMPRESSIONS, now, summed) == summed_up_to

    metrics = load_table(catalog, CAMPAIGN_METRICS_MINUTE)
    newest_sum = _commit(metrics, {SUMMED_PROPERTY: f'{{"impressions": {summed_id}}}'})
    _commit(metrics, {})
    assert expiry_cutoff(metrics, CAMPAIGN_METRICS_MINUTE, now, summed) == newest_sum
    # Another table does not keep a snapshot for a summed-up marker that is not its own.
    assert expiry_cutoff(metrics, IMPRESSIONS, now, {}) == now


def test_a_stop_request_ends_maintenance_after_the_table_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = ensure_tables(load_settings(data_dir=tmp_path))
    begun: list[str] = []

    def maintained(*args: Any) -> str:  # in place of the Spark procedures on one table
        begun.append(args[2].name)
        return args[2].name

    monkeypatch.setattr(maintain_module, "_maintain_table", maintained)
    retention = Retention(snapshots=timedelta(hours=1), orphans=timedelta(days=3))
    spark = cast(SparkSession, None)  # not reached
    everything = list(maintain(spark, catalog, retention))
    assert everything == begun == [table.name for table in TABLES]

    begun.clear()
    one = list(maintain(spark, catalog, retention, stopped=lambda: bool(begun)))
    assert one == begun == [TABLES[0].name]  # asked to stop during the first: no other begun
