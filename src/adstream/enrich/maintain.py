"""Table maintenance: small files compacted, manifests rewritten, old snapshots and orphans gone.

Iceberg's own Spark procedures do the work, table by table, on the Spark session they are given:
`adstream maintain`'s, or the enrichment's own between its commits (`Maintainer`). They may run
while the enrichment commits: a compaction commits group by group (partial progress) and a
group whose files a commit replaced meanwhile is left for the next run; a procedure whose
commit conflicts is run again. What they never touch is what exactly-once rests on
(docs/maintain.md): the newest snapshot that records the positions a table has taken in, and,
on Kinesis, the base-table snapshots campaign_metrics_minute has summed up to, stay with every
snapshot after them.
"""

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyspark.sql import SparkSession

from adstream.enrich.launcher import job_environment
from adstream.enrich.offsets import POSITIONS_PROPERTY, SUMMED_PROPERTY, summed_snapshots
from adstream.enrich.session import build_session, spark_conf, spark_home
from adstream.enrich.writer import table_name
from adstream.lakehouse.catalog import CATALOG_NAME, load_table, open_catalog
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    REJECTED_EVENTS,
    TABLES,
    TableDefinition,
)
from adstream.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPACTION_OPTIONS: Final = {
    # Any partition with two small files or more is compacted, into files of Iceberg's target
    # size (512 MiB); files under 75 % of it are small. A day still being written thus has its
    # newest file rewritten with what arrived since, until it is big: at a few thousand events
    # a second, a few dozen files a day, each byte rewritten two or three times.
    "min-input-files": "2",
    # Each group of files commits on its own: one that conflicts with a concurrent commit
    # fails alone, and the next run takes it up again.
    "partial-progress.enabled": "true",
    "partial-progress.max-failed-commits": "1000",
}
SORTED: Final = (ENRICHED_AD_DATA, REJECTED_EVENTS)
"""The tables the dashboard reads through a window of their partition column (the freshness,
the rejected counts): compacted sorted by it, so that an hour's window reads the row groups of
that hour, not of the whole day (a day's file holds several; bench/sort_order.py). The others
are bin-packed only: no query of the dashboard filters them, and a sort costs more to write."""
_CONFLICTS: Final = ("CommitFailedException", "ValidationException", "CommitStateUnknownException")
_ATTEMPTS: Final = 4


@dataclass(frozen=True)
class Footprint:
    """What a table is made of at one moment."""

    data_files: int
    data_bytes: int
    manifests: int
    snapshots: int


@dataclass(frozen=True)
class TableMaintenance:
    """What maintaining one table did."""

    table: str
    before: Footprint
    after: Footprint
    snapshots_expired: int
    orphans_removed: int

    def describe(self) -> str:
        """One line: data files, bytes, manifests and snapshots before and after; orphans."""
        b, a = self.before, self.after
        return (
            f"{self.table}: data files {b.data_files:,} -> {a.data_files:,} "
            f"({_mib(b.data_bytes)} -> {_mib(a.data_bytes)}), "
            f"manifests {b.manifests:,} -> {a.manifests:,}, "
            f"snapshots {b.snapshots:,} -> {a.snapshots:,} ({self.snapshots_expired:,} expired), "
            f"orphan files removed {self.orphans_removed:,}"
        )


@dataclass(frozen=True)
class Retention:
    """How long snapshots and unreferenced files are kept."""

    snapshots: timedelta
    orphans: timedelta


def maintain_lakehouse(settings: Settings) -> Iterator[str]:
    """`adstream maintain`: every table maintained in a Spark session of its own; a line each.

    Raises:
        AdstreamError: a table is missing (nothing has written the lakehouse yet), or the Spark
            jars are.
    """
    catalog = open_catalog(settings)
    for table in TABLES:
        load_table(catalog, table.name)
    began = time.monotonic()
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per JVM call otherwise
    log_file = spark_home(settings) / "maintain.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    yield f"starting Spark (its log: {log_file})"
    os.environ.update(job_environment(settings))  # for the Spark JVM this process starts
    with _stderr_to(log_file):  # the JVM keeps it: Spark's warnings go to the log
        spark = build_session(spark_conf(settings) | {"spark.app.name": "adstream-maintain"})
    try:
        retention = Retention(settings.maintain_snapshot_retention, settings.maintain_orphan_age)
        for done in maintain(spark, catalog, retention):
            yield done.describe()
    finally:
        spark.stop()
    yield f"tables maintained in {time.monotonic() - began:.1f} s"


def maintain(
    spark: SparkSession,
    catalog: Catalog,
    retention: Retention,
    *,
    now: datetime | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[TableMaintenance]:
    """Maintain the lakehouse's tables through `spark`, each yielded once done.

    `catalog` reads their snapshots. No table is begun once `stopped()` says so (what each
    procedure did is committed already): a job asked to stop waits for one table at most.
    """
    moment = now or datetime.now(UTC)
    summed = summed_snapshots(catalog)
    for table in TABLES:
        if stopped():
            return
        yield _maintain_table(spark, catalog, table, retention, moment, summed)


def _maintain_table(
    spark: SparkSession,
    catalog: Catalog,
    table: TableDefinition,
    retention: Retention,
    now: datetime,
    summed: Mapping[str, int],
) -> TableMaintenance:
    name = table_name(table)
    before = footprint(spark, name)
    call = f"CALL {CATALOG_NAME}.system"
    ident = f"table => '{table.identifier}'"
    _retried(lambda: spark.sql(compaction(table, sort=table.name in SORTED)))
    _retried(lambda: spark.sql(f"{call}.rewrite_manifests({ident})").collect())
    # Read after the compaction: its snapshot is the newest, and must not hide what is kept.
    current = catalog.load_table(table.identifier)
    keep_from = expiry_cutoff(current, table.name, now - retention.snapshots, summed)
    _retried(
        lambda: spark.sql(
            f"{call}.expire_snapshots({ident}, older_than => {_timestamp(keep_from)}, "
            "retain_last => 1)"
        ).collect()
    )
    kept = {snapshot.snapshot_id for snapshot in catalog.load_table(table.identifier).snapshots()}
    orphans = _retried(
        lambda: spark.sql(
            f"{call}.remove_orphan_files({ident}, "
            f"older_than => {_timestamp(now - retention.orphans)}, prefix_listing => true)"
        ).collect()
    )
    after = footprint(spark, name)
    return TableMaintenance(
        table=table.name,
        before=before,
        after=after,
        snapshots_expired=len({snapshot.snapshot_id for snapshot in current.snapshots()} - kept),
        orphans_removed=len(orphans),
    )


def compaction(table: TableDefinition, *, sort: bool) -> str:
    """The CALL that compacts `table`: bin-packing, or sorting by its partition column."""
    options = ", ".join(f"'{key}', '{value}'" for key, value in COMPACTION_OPTIONS.items())
    strategy = ""
    if sort:
        strategy = f"strategy => 'sort', sort_order => '{table.partitioned_by} ASC NULLS LAST', "
    return (
        f"CALL {CATALOG_NAME}.system.rewrite_data_files(table => '{table.identifier}', "
        f"{strategy}options => map({options}))"
    )


def expiry_cutoff(
    table: Table, name: str, retain_from: datetime, summed: Mapping[str, int]
) -> datetime:
    """When the snapshots of `table` (`name`) start that must stay: `retain_from` at the latest.

    Earlier when a snapshot the enrichment still reads is older: the newest of the current
    history that records positions (of either source), the newest of campaign_metrics_minute
    that records what it has summed, and the snapshot of a base table summed up to (the
    enrichment reads what the table appended since). Snapshots after those stay too.
    """
    kept = [retain_from]
    ancestors = list(ancestors_of(table.current_snapshot(), table.metadata))
    keys = [*POSITIONS_PROPERTY.values()]
    if name == CAMPAIGN_METRICS_MINUTE:
        keys.append(SUMMED_PROPERTY)
    for key in keys:
        newest = next(
            (s for s in ancestors if s.summary is not None and s.summary.get(key) is not None), None
        )
        if newest is not None:
            kept.append(_time_of(newest.timestamp_ms))
    summed_id = summed.get(name)
    if summed_id is not None:
        snapshot = table.snapshot_by_id(summed_id)
        if snapshot is not None:
            kept.append(_time_of(snapshot.timestamp_ms))
    return min(kept)


def footprint(spark: SparkSession, name: str) -> Footprint:
    """Data files, bytes, manifests and snapshots of the table Spark calls `name`."""
    files = spark.sql(
        "SELECT count(*) AS n, coalesce(sum(file_size_in_bytes), 0) AS bytes "
        f"FROM {name}.data_files"
    ).first()
    manifests = spark.sql(f"SELECT count(*) AS n FROM {name}.manifests").first()
    snapshots = spark.sql(f"SELECT count(*) AS n FROM {name}.snapshots").first()
    assert files is not None and manifests is not None and snapshots is not None
    return Footprint(files["n"], files["bytes"], manifests["n"], snapshots["n"])


class Maintainer:
    """Maintains the tables on an interval, in a thread of the enrichment's driver."""

    def __init__(
        self,
        spark: SparkSession,
        connect: Callable[[], Catalog],
        retention: Retention,
        interval: timedelta,
    ) -> None:
        self._spark = spark
        self._connect = connect
        self._retention = retention
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="adstream-maintain", daemon=True)

    def start(self) -> None:
        """First maintenance an interval from now."""
        self._thread.start()

    def stop(self) -> None:
        """Let the table under way be maintained, then stop (no other table, no other run)."""
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval.total_seconds()):
            began, count = time.monotonic(), 0
            try:
                for done in maintain(
                    self._spark, self._connect(), self._retention, stopped=self._stopped.is_set
                ):
                    log.info("maintained %s", done.describe())
                    count += 1
            except Exception as error:  # the next interval tries again; the writes go on
                log.warning("table maintenance failed, trying again later: %s", error)
                continue
            took = time.monotonic() - began
            if count < len(TABLES):
                log.info(
                    "maintenance stopped after %d of %d tables, %.1f s", count, len(TABLES), took
                )
            else:
                log.info("tables maintained in %.1f s", took)


def _retried(action: Callable[[], T]) -> T:
    """`action`, run again (up to `_ATTEMPTS` times in all) when its commit conflicted."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return action()
        except Exception as error:
            if attempt == _ATTEMPTS or not any(kind in str(error) for kind in _CONFLICTS):
                raise
            log.info("maintenance commit conflicted (attempt %d), retrying: %s", attempt, error)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Standard error (file descriptor 2) appended to `path` within the block, for a child."""
    saved = os.dup(2)
    with path.open("ab") as target:
        os.dup2(target.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _timestamp(moment: datetime) -> str:
    """A Spark SQL timestamp literal (the sessions run in UTC)."""
    return f"TIMESTAMP '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _time_of(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB"
