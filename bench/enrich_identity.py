"""Benchmark: what exactly-once by identity (the Kinesis path) costs a micro-batch.

Tables are filled through `BatchWriter` in Kinesis mode (batches of outcome records, event
times moving forward over two days as in a live stream) to at least 100,000 rows in
enriched_ad_data and in impressions. Then each measured batch holds new outcome records at
the newest times and, for a tenth, copies of records already written, as a restarted
at-least-once join puts them on the streams: copies of recent records (a join replays from its
last checkpoint), then, as the worst case, copies spread over the whole two days. For each
batch the new rows of every base table are computed with the identity check and without it
(the writer's `unseen` replaced by a pass-through), alternately, and the difference is what
the check costs; then the batch is written with the check, which must add exactly its new
outcomes.

Results: bench/results/enrich_identity.json and a Markdown table on stdout.

    .venv/bin/python bench/enrich_identity.py [--rows 100000] [--batch 2000] [--runs 5]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from adstream.enrich import writer as writer_module
from adstream.enrich.identity import rejection_lookback, unseen
from adstream.enrich.kinesis_reader import outcome_frame
from adstream.enrich.offsets import all_committed_offsets
from adstream.enrich.rules import EnrichRules
from adstream.enrich.session import build_session, spark_conf
from adstream.enrich.writer import BatchWriter, KinesisOutcomes
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
)
from adstream.lakehouse.catalog import ensure_tables, open_catalog, row_counts
from adstream.lakehouse.tables import TABLES
from adstream.services.kinesis_poller import ShardRecord
from adstream.settings import load_settings

RESULTS: Final = Path(__file__).parent / "results" / "enrich_identity.json"
T0: Final = datetime(2026, 11, 1, tzinfo=UTC)
SPAN: Final = timedelta(days=2)
SEQUENCE_BASE: Final = 49590338271490256608559692538361571095921575989136588898
BASE_TABLES: Final = ("enriched_ad_data", "impressions", "unmatched_clicks", "rejected_events")
SHARE: Final = {JOINED_TOPIC: 0.4, IMPRESSIONS_OUT_TOPIC: 0.4, UNMATCHED_CLICKS_TOPIC: 0.1}
"""Of each batch's records; the rest are rejections."""

JsonValue = str | int | float | None


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def outcome(topic: str, n: int, at: datetime) -> str:
    """The JSON the join writes for outcome number `n` of `topic`, at event time `at`."""
    common: dict[str, JsonValue] = {"ad_id": f"ad-{n % 500}", "campaign_id": f"cmp-{n % 200}"}
    common |= {"publisher_id": f"pub-{n % 400}", "geo_location": "US", "device_type": "phone"}
    common |= {"platform": ("iOS", "web", "tablet", "ctv", "android")[n % 5]}
    source: dict[str, JsonValue] = {"source_partition": n % 4, "source_offset": None}
    source["source_sequence_number"] = str(SEQUENCE_BASE + n)
    record: dict[str, JsonValue]
    if topic == JOINED_TOPIC:
        record = common | {"impression_id": f"imp-{n}", "ad_type": "video"}
        record |= {"impression_time": iso(at - timedelta(seconds=n % 90)), "click_time": iso(at)}
        record |= {"bid_price": 1 + n % 70, "click_price": round(0.01 + (n % 300) / 1000, 6)}
    elif topic == IMPRESSIONS_OUT_TOPIC:
        record = common | {"impression_id": f"imp-{n}", "ad_type": "video", "event_time": iso(at)}
        record |= {"bid_price": 1 + n % 70} | source
    elif topic == UNMATCHED_CLICKS_TOPIC:
        record = common | {"impression_id": f"orphan-{n}", "event_time": iso(at)}
        record |= {"click_price": 0.25} | source
    else:
        record = {"stream": "clicks", "reason": "late_event", "detail": "late", "raw_payload": "{}"}
        record |= source | {"rejected_at": iso(at + timedelta(seconds=5))}
    return json.dumps(record)


class Stream:
    """Outcome records as they arrive: numbered, event times moving forward."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.sequence = 0
        self.written: list[ShardRecord] = []

    def batch(self, size: int, copies: float = 0.0, recent: bool = True) -> list[ShardRecord]:
        """`size` records: new outcomes and, for a share `copies`, copies of earlier records
        (of the last ten batches' worth, or of all written so far)."""
        records = []
        copied = int(size * copies)
        for topic, share in (*SHARE.items(), (REJECTED_EVENTS_TOPIC, 0.1)):
            for _ in range(int((size - copied) * share)):
                at = T0 + SPAN * (self.sent / self.total)
                value = outcome(topic, self.sent, at)
                records.append(self._record(topic, value))
                self.sent += 1
        pool = self.written[-10 * size :] if recent else self.written
        step = max(1, len(pool) // max(1, copied))
        for earlier in pool[::step][:copied]:
            records.append(self._record(earlier.topic, earlier.data.decode()))
        self.written += records
        return records

    def _record(self, topic: str, value: str) -> ShardRecord:
        self.sequence += 1
        return ShardRecord(topic, self.sequence % 4, SEQUENCE_BASE + self.sequence, value.encode())


def pass_through(rows: Any, *_: Any) -> Any:
    return rows


def use_identity_check(check: bool) -> None:
    """The writer's `unseen`, or `pass_through` in its place.

    The writer imports `unseen` by name, so it is swapped in the writer's module namespace.
    """
    vars(writer_module)["unseen"] = unseen if check else pass_through


def timed(write: BatchWriter, spark: Any, records: list[ShardRecord], batch_id: int) -> float:
    began = time.monotonic()
    write(outcome_frame(spark, records), batch_id)
    return time.monotonic() - began


def check_seconds(write: BatchWriter, batch: Any, first: bool) -> float:
    """Seconds the identity check adds to computing the new rows of every base table."""
    spent = {True: 0.0, False: 0.0}
    for table in TABLES:
        if table.name not in BASE_TABLES:
            continue
        for check in (first, not first):
            use_identity_check(check)
            began = time.monotonic()
            write.rows(table, batch).count()
            spent[check] += time.monotonic() - began
    use_identity_check(True)
    return spent[True] - spent[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--fill-batch", type=int, default=25_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as folder:
        settings = load_settings(
            data_dir=Path(folder), spark_master="local[2]", spark_driver_memory="1g"
        )
        ensure_tables(settings)
        spark = build_session(spark_conf(settings))
        spark.sparkContext.setLogLevel("ERROR")
        catalog = open_catalog(settings)
        write = BatchWriter(
            EnrichRules(),
            all_committed_offsets(catalog, "kinesis"),
            kinesis=KinesisOutcomes(rejection_lookback(timedelta(1), timedelta(1)), {}),
        )
        fill_total = int(args.rows / SHARE[JOINED_TOPIC]) + 1
        stream = Stream(fill_total + args.batch * args.runs * 2)
        batch_id = 0
        began = time.monotonic()
        while row_counts(settings)["enriched_ad_data"] < args.rows:
            timed(write, spark, stream.batch(args.fill_batch), batch_id)
            batch_id += 1
        filled = row_counts(settings)
        print(f"filled in {time.monotonic() - began:.0f} s: {filled}", file=sys.stderr)

        results: dict[str, dict[str, list[float]]] = {}
        for scenario in ("recent", "spread"):
            checks, batches = [], []
            for run in range(args.runs):
                before = row_counts(settings)
                copies = int(args.batch * 0.1)
                records = stream.batch(args.batch, copies=0.1, recent=scenario == "recent")
                batch = outcome_frame(spark, records).persist()
                batch.count()
                checks.append(check_seconds(write, batch, first=run % 2 == 0))
                batch.unpersist()
                batches.append(timed(write, spark, records, batch_id))
                batch_id += 1
                after = row_counts(settings)
                added = sum(after[name] - before[name] for name in BASE_TABLES)
                if added != len(records) - copies:
                    raise SystemExit(f"{added} rows added for {len(records) - copies} new ones")
                print(
                    f"{scenario} {run}: batch {batches[-1]:.2f} s, check {checks[-1]:.2f} s",
                    file=sys.stderr,
                )
            results[scenario] = {"batch_seconds": batches, "check_seconds": checks}
        spark.stop()
    result = {
        "rows_before": filled,
        "batch_records": args.batch,
        "copies": 0.1,
        "scenarios": results,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tables before: {filled}; batches of {args.batch:,} records, a tenth copies")
    print("| copies of | batch, median | identity check, median (min-max) |")
    print("|---|---|---|")
    for scenario, figures in results.items():
        checks = figures["check_seconds"]
        print(
            f"| {scenario} | {statistics.median(figures['batch_seconds']):.2f} s "
            f"| {statistics.median(checks):.2f} s ({min(checks):.2f}-{max(checks):.2f}) |"
        )


if __name__ == "__main__":
    main()
