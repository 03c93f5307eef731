"""The enrichment stage through the real Spark job (SPEC sections 4-6): topics to Iceberg tables.

Crafted join outputs, in the exact JSON the join writes, are produced transactionally into the
four outcome topics; `adstream enrich --bounded` writes the tables, read back with pyiceberg
(and with Spark SQL for the interop check).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from adstream.enrich.launcher import checkpoint_dir
from adstream.enrich.params import RUNNING
from adstream.enrich.rules import OTHER_PLATFORM, PLATFORM_CATEGORIES
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_STREAM,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    Reason,
)
from adstream.lakehouse.catalog import open_catalog
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    IMPRESSIONS,
    NAMESPACE,
    REJECTED_EVENTS,
    TABLES,
    UNMATCHED_CLICKS,
)
from adstream.services.kafka_client import DELIVERY_TIMEOUT_S, producer_config
from adstream.services.process import group_runs, wait_until
from adstream.settings import Settings
from tests.cli import ADSTREAM, adstream
from tests.conftest import instance_env
from tests.join_harness import recreate_topics

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
UNSET = object()  # a field left out of the JSON altogether


def iso(moment: datetime) -> str:
    """A time as the join writes it: `2026-11-01T08:00:01.500Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_json(record: dict[str, Any]) -> str:
    """JSON like the join's: prices as plain numbers with 6 decimals, times as strings."""

    def value(item: Any) -> str:
        if isinstance(item, Decimal):
            return format(item, "f")
        if isinstance(item, datetime):
            return json.dumps(iso(item))
        return json.dumps(item)

    return "{" + ", ".join(f'"{k}": {value(v)}' for k, v in record.items() if v is not UNSET) + "}"


@dataclass
class Sent:
    """One record produced to an outcome topic, where it landed, and what a joined row becomes."""

    topic: str
    record: dict[str, Any] | str
    derived: dict[str, Any] | None = None  # a valid joined row: its derived columns
    detail: str | None = None  # an invalid joined row: why
    partition: int = -1
    offset: int = -1
    sequence_number: str | None = None  # on Kinesis: where it landed (offset is then unused)

    @property
    def value(self) -> str:
        return self.record if isinstance(self.record, str) else to_json(self.record)


def valid_joined(
    record: dict[str, Any], premium: bool, duration: float, category: str, revenue: str
) -> Sent:
    derived = {
        "is_premium_ad": premium,
        "engagement_duration": duration,
        "platform_category": category,
        "click_revenue": Decimal(revenue),
    }
    return Sent(JOINED_TOPIC, record, derived=derived)


def invalid_joined(record: dict[str, Any] | str, detail: str) -> Sent:
    return Sent(JOINED_TOPIC, record, detail=detail)


def produce(settings: Settings, records: list[Sent], *, aborted: Sequence[Sent] = ()) -> None:
    """Produce `records` in one committed transaction, as the join does (after `aborted` in an
    aborted one); fill in each record's partition and offset."""
    producer = Producer(
        {
            **producer_config(settings),
            "transactional.id": f"test-enrich-{uuid.uuid4()}",
            # As long as the producer retries a record (librdkafka wants no less).
            "transaction.timeout.ms": DELIVERY_TIMEOUT_S * 1000,
            "delivery.report.only.error": False,
        }
    )
    producer.init_transactions(30)
    if aborted:
        producer.begin_transaction()
        for sent in aborted:
            producer.produce(sent.topic, sent.value, _key(sent))
        producer.flush(30)
        producer.abort_transaction(30)
    producer.begin_transaction()
    for sent in records:

        def delivered(error: Any, message: Any, sent: Sent = sent) -> None:
            assert error is None, error
            sent.partition, sent.offset = message.partition(), message.offset()

        producer.produce(sent.topic, sent.value, _key(sent), on_delivery=delivered)
    producer.commit_transaction(30)
    assert producer.flush(30) == 0
    assert all(sent.offset >= 0 for sent in records)


def _key(sent: Sent) -> str | None:
    if isinstance(sent.record, dict) and isinstance(sent.record.get("impression_id"), str):
        return str(sent.record["impression_id"])
    return None


def joined(iid: str, **changes: Any) -> dict[str, Any]:
    record = {
        "ad_id": "ad-1",
        "impression_id": iid,
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "impression_time": T0,
        "click_time": T0 + timedelta(seconds=1.5),
        "geo_location": "US",
        "platform": "iOS",
        "device_type": "phone",
        "ad_type": "video",
        "bid_price": Decimal("12.500000"),
        "click_price": Decimal("0.400000"),
    }
    return {**record, **changes}


def impression(iid: str, partition: int, offset: int, **changes: Any) -> dict[str, Any]:
    record = {
        "ad_id": "ad-2",
        "impression_id": iid,
        "campaign_id": "cmp-2",
        "publisher_id": "pub-2",
        "event_time": T0 + timedelta(minutes=1),
        "device_type": "desktop",
        "geo_location": "DE",
        "platform": "web",
        "ad_type": "banner",
        "bid_price": Decimal("3.250000"),
        "source_partition": partition,
        "source_offset": offset,
        "source_sequence_number": None,
    }
    return {**record, **changes}


def click(iid: str, partition: int, offset: int, **changes: Any) -> dict[str, Any]:
    record = {
        "ad_id": "ad-3",
        "impression_id": iid,
        "campaign_id": "cmp-3",
        "publisher_id": "pub-3",
        "event_time": T0 + timedelta(minutes=2),
        "device_type": "tablet",
        "geo_location": "FR",
        "platform": "android",
        "click_price": Decimal("0.120000"),
        "source_partition": partition,
        "source_offset": offset,
        "source_sequence_number": None,
    }
    return {**record, **changes}


def rejected(stream: str, reason: str, raw: str, partition: int, offset: int) -> dict[str, Any]:
    return {
        "stream": stream,
        "reason": reason,
        "detail": f"{reason} detail",
        "raw_payload": raw,
        "source_partition": partition,
        "source_offset": offset,
        "rejected_at": T0 + timedelta(seconds=3.123),
        "source_sequence_number": None,
    }


def batch_a() -> list[Sent]:
    return [
        valid_joined(joined("j-plain"), False, 1.5, "Mobile", "0.480000"),
        valid_joined(
            joined(
                "j-premium",
                platform=" Connected_TV ",
                bid_price=Decimal("50.000001"),
                click_price=Decimal("2.345678"),
                click_time=T0 + timedelta(minutes=10),
            ),
            True,
            600.0,
            "CTV",
            "2.814814",  # 2.8148136
        ),
        valid_joined(
            joined(
                "j-midnight",
                platform=None,
                device_type=None,
                bid_price=Decimal("50.000000"),
                click_price=Decimal("9999.999999"),
                impression_time=datetime(2026, 11, 1, 23, 59, 59, 999000, tzinfo=UTC),
                click_time=datetime(2026, 11, 2, 0, 0, 0, 250000, tzinfo=UTC),
            ),
            False,
            0.251,
            "Other",
            "11999.999999",  # 11999.9999988
        ),
        valid_joined(
            joined("j-same-time", click_time=T0, platform="TABLET", extra=1),
            False,
            0.0,
            "Tablet",
            "0.480000",
        ),
        invalid_joined(
            joined("j-click-first", click_time=T0 - timedelta(seconds=1)),
            "click_time 2026-11-01T07:59:59.000Z is not >= "
            "impression_time 2026-11-01T08:00:00.000Z",
        ),
        invalid_joined(
            joined("j-free", bid_price=Decimal("0.000000")), "bid_price 0.000000 is not > 0"
        ),
        invalid_joined(joined("j-no-ad", ad_id=UNSET), "ad_id is null"),
        invalid_joined("not json at all", "ad_id is null"),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("i-1", 0, 10)),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("i-2", 1, 4, device_type=None, ad_type=None)),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("j-plain", 1, 5, bid_price=Decimal("9999.999999"))),
        Sent(UNMATCHED_CLICKS_TOPIC, click("u-1", 0, 7)),
        Sent(UNMATCHED_CLICKS_TOPIC, click("u-2", 1, 8, platform=None)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("impressions", "malformed_json", "{bad", 0, 1)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("clicks", "duplicate_click", '{"a": 1}', 1, 2)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("clicks", "late_event", "x" * 1000, 0, 3)),
    ]


def aborted() -> list[Sent]:
    return [
        Sent(JOINED_TOPIC, joined("j-aborted")),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("i-aborted", 0, 99)),
        Sent(UNMATCHED_CLICKS_TOPIC, click("u-aborted", 0, 98)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("clicks", "late_event", "aborted", 0, 97)),
    ]


# ---- expected rows ------------------------------------------------------------------------

VOLATILE = {ENRICHED_AD_DATA: "processed_time", REJECTED_EVENTS: "rejected_at"}
"""Times the job sets to the wall clock (rejected_at only for the rows it rejects itself)."""


def expected_tables(sent: list[Sent]) -> dict[str, list[dict[str, Any]]]:
    """The rows each table must hold for the records sent (volatile time columns left out)."""
    tables: dict[str, list[dict[str, Any]]] = {table.name: [] for table in TABLES}
    for item in sent:
        record = item.record
        if item.derived is not None:
            assert isinstance(record, dict)
            row = {k: v for k, v in record.items() if k != "extra"}
            tables[ENRICHED_AD_DATA].append(row | item.derived)
        elif item.detail is not None:
            tables[REJECTED_EVENTS].append(
                {
                    "stream": JOINED_STREAM,
                    "reason": Reason.INVALID_JOINED_ROW.value,
                    "detail": item.detail,
                    "raw_payload": item.value,
                    "source_partition": item.partition,
                    "source_offset": item.offset if item.sequence_number is None else None,
                    "source_sequence_number": item.sequence_number,
                }
            )
        else:
            assert isinstance(record, dict)
            name = {
                IMPRESSIONS_OUT_TOPIC: IMPRESSIONS,
                UNMATCHED_CLICKS_TOPIC: UNMATCHED_CLICKS,
                REJECTED_EVENTS_TOPIC: REJECTED_EVENTS,
            }[item.topic]
            tables[name].append(record)
    tables[CAMPAIGN_METRICS_MINUTE] = expected_metrics(
        tables[IMPRESSIONS], tables[ENRICHED_AD_DATA]
    )
    tables[DASHBOARD_METRICS_MINUTE] = expected_dashboard_metrics(tables[CAMPAIGN_METRICS_MINUTE])
    return {name: _sorted(rows) for name, rows in tables.items()}


def expected_dashboard_metrics(minute_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """dashboard_metrics_minute: those rows summed per minute and dimension, in plain Python."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in minute_rows:
        for dimension, key in (
            ("campaign", row["campaign_id"]),
            ("publisher", row["publisher_id"]),
            ("platform_category", row["platform_category"]),
            ("total", None),
        ):
            total = sums.setdefault(
                (row["minute"], dimension, key),
                {"impressions": 0, "spend": Decimal(0), "clicks": 0, "click_revenue": Decimal(0)},
            )
            for column in total:
                total[column] += row[column]
    return [
        {"minute": minute, "dimension": dimension, "id": key, **total}
        for (minute, dimension, key), total in sums.items()
    ]


def expected_metrics(
    impressions: list[dict[str, Any]], clicks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """campaign_metrics_minute recomputed from rows of the base tables, in plain Python."""

    def minute(moment: datetime) -> datetime:
        return moment.replace(second=0, microsecond=0)

    def category(platform: str | None) -> str:
        return PLATFORM_CATEGORIES.get((platform or "").strip().lower(), OTHER_PLATFORM)

    sums: dict[tuple[Any, ...], dict[str, Any]] = {}

    def row(key: tuple[Any, ...]) -> dict[str, Any]:
        zero = {"impressions": 0, "premium_impressions": 0, "spend": Decimal(0), "clicks": 0}
        return sums.setdefault(key, zero | {"click_revenue": Decimal(0), "durations": []})

    for imp in impressions:
        key = (minute(imp["event_time"]), imp["campaign_id"], imp["publisher_id"])
        total = row((*key, category(imp["platform"])))
        total["impressions"] += 1
        total["premium_impressions"] += imp["bid_price"] > Decimal("50.00")
        total["spend"] += imp["bid_price"] / 1000
    for clicked in clicks:
        key = (minute(clicked["click_time"]), clicked["campaign_id"], clicked["publisher_id"])
        total = row((*key, clicked["platform_category"]))
        total["clicks"] += 1
        total["click_revenue"] += clicked["click_revenue"]
        ms = clicked["click_time"] - clicked["impression_time"]
        total["durations"].append(ms // timedelta(milliseconds=1))
    rows = []
    for (at, campaign, publisher, platform), total in sums.items():
        durations = sorted(total.pop("durations"))
        n, shown = total["impressions"], len(durations)
        median = None
        if shown:
            middle = durations[(shown - 1) // 2] + durations[shown // 2]
            median = middle / 2000
        rows.append(
            {
                "minute": at,
                "campaign_id": campaign,
                "publisher_id": publisher,
                "platform_category": platform,
                **total,
                "spend": total["spend"].quantize(Decimal("1e-9")),
                "click_revenue": total["click_revenue"].quantize(Decimal("1e-6")),
                "ctr": total["clicks"] / n if n else None,
                "premium_share": total["premium_impressions"] / n if n else None,
                "median_engagement_duration": median,
                "engagement_durations_ms": durations,
            }
        )
    return rows


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def read_tables(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, read with pyiceberg; the volatile time columns are checked (set, in
    the last hour, to the millisecond) and left out."""
    catalog = open_catalog(settings)
    tables = {}
    for table in TABLES:
        rows = catalog.load_table(f"{NAMESPACE}.{table.name}").scan().to_arrow().to_pylist()
        for row in rows:
            volatile = VOLATILE.get(table.name)
            if volatile and (table.name != REJECTED_EVENTS or row["stream"] == JOINED_STREAM):
                moment = row.pop(volatile)
                assert moment.microsecond % 1000 == 0
                assert timedelta(0) <= datetime.now(UTC) - moment < timedelta(hours=1)
        tables[table.name] = _sorted(rows)
    return tables


def snapshot_ids(settings: Settings) -> dict[str, list[int]]:
    catalog = open_catalog(settings)
    return {
        table.name: [
            s.snapshot_id for s in catalog.load_table(f"{NAMESPACE}.{table.name}").snapshots()
        ]
        for table in TABLES
    }


# ---- running the job ----------------------------------------------------------------------


def enrich_bounded(settings: Settings) -> None:
    """`adstream enrich --bounded` as a user runs it; on failure show its output and log."""
    env = {
        **instance_env(settings),
        "ADSTREAM_SPARK_MASTER": "local[2]",
        "ADSTREAM_SPARK_DRIVER_MEMORY": "768m",
    }
    result = adstream("enrich", "--bounded", env=env, timeout=300)
    log = settings.data_dir / "spark" / "enrich.log"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
    assert result.returncode == 0, f"{result.stderr}\n--- enrich.log ---\n{tail}"


@pytest.fixture(scope="module")
def batch_a_topics(kafka: Settings) -> Iterator[list[Sent]]:
    """The outcome topics hold batch A (and one aborted transaction) only."""
    recreate_topics(kafka, partitions=2)
    sent = batch_a()
    produce(kafka, sent, aborted=aborted())
    yield sent


@pytest.fixture(scope="module")
def lake(
    kafka: Settings, batch_a_topics: list[Sent], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """An instance whose tables were written by one bounded run over batch A."""
    settings = kafka.model_copy(update={"data_dir": tmp_path_factory.mktemp("enrich-a")})
    enrich_bounded(settings)
    return settings


def test_tables_hold_exactly_the_outcomes_enriched(
    lake: Settings, batch_a_topics: list[Sent]
) -> None:
    expected = expected_tables(batch_a_topics)
    actual = read_tables(lake)
    for table in TABLES:  # one assert per table, so a failure names it
        assert actual[table.name] == expected[table.name], table.name


def test_tables_are_partitioned_iceberg_v2(lake: Settings) -> None:
    catalog = open_catalog(lake)
    partitioned_by = {
        ENRICHED_AD_DATA: "click_time",
        IMPRESSIONS: "event_time",
        UNMATCHED_CLICKS: "event_time",
        REJECTED_EVENTS: "rejected_at",
    }
    for name, column in partitioned_by.items():
        table = catalog.load_table(f"{NAMESPACE}.{name}")
        assert table.format_version == 2
        [field] = table.spec().fields
        assert (table.schema().find_column_name(field.source_id), str(field.transform)) == (
            column,
            "day",
        )
    for name, transform in (
        (CAMPAIGN_METRICS_MINUTE, "identity"),
        (DASHBOARD_METRICS_MINUTE, "hour"),
    ):
        metrics = catalog.load_table(f"{NAMESPACE}.{name}")
        [field] = metrics.spec().fields
        assert (metrics.schema().find_column_name(field.source_id), str(field.transform)) == (
            "minute",
            transform,
        )
    files = catalog.load_table(f"{NAMESPACE}.{ENRICHED_AD_DATA}").inspect.files().to_pylist()
    days = {file["partition"]["click_time_day"] for file in files}
    assert len(days) == 2  # j-midnight was clicked on the next day


SPARK_SQL_DUMP = """
import json, os, sys, time
os.environ["TZ"] = "UTC"
time.tzset()
from adstream.enrich.session import build_session, spark_conf
from adstream.lakehouse.tables import TABLES
from adstream.settings import load_settings
settings = load_settings(data_dir=sys.argv[1], spark_master="local[1]")
spark = build_session(spark_conf(settings))
for table in TABLES:
    for row in spark.table(f"adstream.{table.identifier}").collect():
        print(json.dumps([table.name, row.asDict()], default=str))
spark.stop()
"""


def test_spark_sql_reads_the_same_rows_as_pyiceberg(lake: Settings) -> None:
    dump = subprocess.run(
        [sys.executable, "-c", SPARK_SQL_DUMP, str(lake.data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr[-3000:]
    from_spark: dict[str, list[str]] = {table.name: [] for table in TABLES}
    for line in dump.stdout.splitlines():
        name, row = json.loads(line)
        from_spark[name].append(json.dumps(row, sort_keys=True))

    catalog = open_catalog(lake)
    for table in TABLES:
        rows = catalog.load_table(f"{NAMESPACE}.{table.name}").scan().to_arrow().to_pylist()
        from_pyiceberg = [
            json.dumps(
                {
                    k: (v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v)
                    for k, v in row.items()
                },
                sort_keys=True,
                default=str,
            )
            for row in rows
        ]
        assert sorted(from_spark[table.name]) == sorted(from_pyiceberg), table.name
        assert from_pyiceberg, table.name


def test_adstream_enrich_asked_to_finish_writes_everything_and_exits(
    kafka: Settings, batch_a_topics: list[Sent], tmp_path: Path
) -> None:
    """SIGUSR1 to an endless `adstream enrich` (docs/enrich.md): its job finishes, then it exits 0,
    leaving nothing running."""
    settings = kafka.model_copy(update={"data_dir": tmp_path / "data"})
    env = {
        **instance_env(settings),
        "ADSTREAM_SPARK_MASTER": "local[2]",
        "ADSTREAM_SPARK_DRIVER_MEMORY": "768m",
    }
    job_log = settings.data_dir / "spark" / "enrich.log"
    with (tmp_path / "enrich.out").open("wb") as output:
        endless = subprocess.Popen(
            [ADSTREAM, "enrich"], env=env, stdout=output, stderr=output, start_new_session=True
        )
    try:
        wait_until(
            lambda: endless.poll() is None
            and job_log.exists()
            and RUNNING in job_log.read_text(errors="replace"),
            timeout=300,
            interval=0.5,
            what="the endless job running",
        )
        endless.send_signal(signal.SIGUSR1)
        code = endless.wait(timeout=300)
        assert code == 0, (tmp_path / "enrich.out").read_text(errors="replace")
        wait_until(
            lambda: not group_runs(endless.pid), timeout=60, interval=0.5, what="its processes' end"
        )
    finally:  # whatever failed, nothing of it stays running
        if group_runs(endless.pid):
            os.killpg(endless.pid, signal.SIGKILL)
        endless.wait()
    assert read_tables(settings) == expected_tables(batch_a_topics)


def test_replays_lost_checkpoints_and_lost_tables_write_everything_once(
    kafka: Settings, batch_a_topics: list[Sent], tmp_path: Path
) -> None:
    settings = kafka.model_copy(update={"data_dir": tmp_path / "data"})
    enrich_bounded(settings)
    expected_a = expected_tables(batch_a_topics)
    assert read_tables(settings) == expected_a
    snapshots_a = snapshot_ids(settings)

    # Nothing new: the second run commits nothing.
    enrich_bounded(settings)
    assert snapshot_ids(settings) == snapshots_a
    assert read_tables(settings) == expected_a

    # The checkpoint is lost and new records arrive: only those are added.
    batch_b = [
        valid_joined(joined("j-b1", platform="laptop"), False, 1.5, "Desktop", "0.480000"),
        invalid_joined(
            joined("j-b2", click_price=Decimal("-1.000000")), "click_price -1.000000 is not > 0"
        ),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("i-b1", 0, 20)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("impressions", "late_event", "{}", 1, 21)),
    ]
    produce(kafka, batch_b)
    shutil.rmtree(checkpoint_dir(settings))
    enrich_bounded(settings)
    expected_ab = expected_tables(batch_a_topics + batch_b)
    assert read_tables(settings) == expected_ab

    # A crash after enriched_ad_data committed batch B but before the other tables did, and
    # before Spark recorded the batch: the replay completes the others, adds nothing twice.
    catalog = open_catalog(settings)
    for name in (
        IMPRESSIONS,
        UNMATCHED_CLICKS,
        REJECTED_EVENTS,
        CAMPAIGN_METRICS_MINUTE,
        DASHBOARD_METRICS_MINUTE,
    ):
        table = catalog.load_table(f"{NAMESPACE}.{name}")
        table.manage_snapshots().set_current_snapshot(snapshots_a[name][-1]).commit()
    assert read_tables(settings)[IMPRESSIONS] == expected_a[IMPRESSIONS]
    for commit in (checkpoint_dir(settings) / "commits").iterdir():
        commit.unlink()
    enrich_bounded(settings)
    assert read_tables(settings) == expected_ab

    # The tables are dropped but the checkpoint is kept: they are rebuilt from the topics.
    for table in TABLES:
        catalog.drop_table(f"{NAMESPACE}.{table.name}")
    enrich_bounded(settings)
    assert read_tables(settings) == expected_ab
