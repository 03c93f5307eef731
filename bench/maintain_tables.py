"""Benchmark: what 2,000 micro-batch commits do to the tables and their queries, and maintenance.

The tables are written through the enrichment's own `BatchWriter` (Spark, Iceberg), one commit
per table per micro-batch, as the endless job writes them, with no maintenance: batches of
outcome records whose event times move forward over one day, each batch's records spread over
its slice of the day. First the baseline: the same day in `--baseline-commits` (20) large
commits, in tables of its own. Then the `--commits` small ones. After the first `--early`
commits and after all `--commits`, and again after `adstream maintain` (retention 0), it
measures the largest number of data files in one partition of each table, the snapshots, and
the latency of every dashboard query (over the default hour and over the whole day, ending at
the newest data) and of a day's aggregate through `adstream query`'s `run_query`: medians and
p95 of `--query-runs` runs each. The maintained tables and the baseline are measured in one
pass, their runs of each query alternating, so that the machine's drift does not decide the
comparison. The rows are checked to be the same before and after maintenance.

Results: bench/results/maintain_tables.json and a Markdown table on stdout.

    .venv/bin/python bench/maintain_tables.py [--commits 2000] [--early 20] [--batch 200] \
        [--baseline-commits 20]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pyspark.sql import DataFrame, SparkSession

from adstream.dashboard import queries
from adstream.enrich.offsets import all_committed_offsets
from adstream.enrich.rules import EnrichRules
from adstream.enrich.session import build_session, spark_conf
from adstream.enrich.writer import BatchWriter
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
)
from adstream.lakehouse.catalog import ensure_tables, open_catalog
from adstream.lakehouse.tables import NAMESPACE, TABLES
from adstream.query import run_query
from adstream.settings import Settings, load_settings
from enrich_identity import outcome

RESULTS: Final = Path(__file__).parent / "results" / "maintain_tables.json"
ADSTREAM: Final = Path(sys.executable).parent / "adstream"
T0: Final = datetime(2026, 11, 1, tzinfo=UTC)
DAY: Final = timedelta(days=1)
SHARE: Final = {
    JOINED_TOPIC: 0.4,
    IMPRESSIONS_OUT_TOPIC: 0.4,
    UNMATCHED_CLICKS_TOPIC: 0.1,
    REJECTED_EVENTS_TOPIC: 0.1,
}
DAY_AGGREGATE: Final = (
    "SELECT campaign_id, count(*) AS clicks, sum(click_revenue) AS revenue "
    "FROM enriched_ad_data WHERE click_time >= TIMESTAMPTZ '2026-11-01 00:00:00+00' "
    "AND click_time < TIMESTAMPTZ '2026-11-02 00:00:00+00' GROUP BY campaign_id"
)


class Batches:
    """Micro-batches of outcome records (Kafka columns), event times moving over one day."""

    def __init__(self, spark: SparkSession, size: int, total: int) -> None:
        self.spark = spark
        self.size = size
        self.total = total
        self.sent = 0
        self.offsets: dict[tuple[str, int], int] = {}

    def next(self, number: int) -> DataFrame:
        """Batch `number`: its records spread evenly over its slice of the day, so that
        20 large batches and 2,000 small ones hold the same day."""
        start, step = T0 + DAY * (number / self.total), DAY / self.total / self.size
        rows = []
        for topic, share in SHARE.items():
            for _ in range(int(self.size * share)):
                partition = self.sent % 2
                offset = self.offsets.get((topic, partition), -1) + 1
                self.offsets[(topic, partition)] = offset
                at = start + step * (self.sent % self.size)
                rows.append((topic, partition, offset, outcome(topic, self.sent, at)))
                self.sent += 1
        return self.spark.createDataFrame(
            rows, "topic string, partition int, offset long, value string"
        )


def layout(settings: Settings) -> dict[str, dict[str, int]]:
    """Per table: data files, the most in one partition, snapshots."""
    catalog = open_catalog(settings)
    shape = {}
    for table in TABLES:
        loaded = catalog.load_table(f"{NAMESPACE}.{table.name}")
        files = loaded.inspect.data_files().to_pylist()
        per_partition: dict[str, int] = {}
        for file in files:
            key = json.dumps(file["partition"], default=str, sort_keys=True)
            per_partition[key] = per_partition.get(key, 0) + 1
        shape[table.name] = {
            "data_files": len(files),
            "most_in_a_partition": max(per_partition.values(), default=0),
            "snapshots": len(loaded.snapshots()),
        }
    return shape


def dashboard_queries(settings: Settings, newest: datetime) -> dict[str, Callable[[], Any]]:
    """Every query the dashboard runs, over the default hour and over the day."""
    found: dict[str, Callable[[], Any]] = {}
    for minutes in (queries.DEFAULT_WINDOW_MINUTES, queries.MAX_WINDOW_MINUTES):
        window = queries.Window(minutes, newest)
        found |= {
            f"summary {minutes} min": partial(queries.summary, settings, window),
            f"time series {minutes} min": partial(queries.time_series, settings, window),
            f"top campaigns {minutes} min": partial(queries.top, settings, window, "campaign", 10),
            f"top publishers {minutes} min": partial(
                queries.top, settings, window, "publisher", 10
            ),
            f"platform mix {minutes} min": partial(queries.platform_mix, settings, window),
            f"rejected {minutes} min": partial(queries.rejected, settings, window),
        }
    found["day aggregate (adstream query)"] = lambda: run_query(settings, DAY_AGGREGATE).rows
    return found


def latencies(
    plans: dict[str, dict[str, Callable[[], Any]]], runs: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Per contender, the median and p95 seconds of each of its queries (`plans`: contender ->
    query name -> query, the same names for each) and its runs, after one warm-up run each.
    The contenders' runs of a query alternate, in turn first."""
    contenders = list(plans)
    measured: dict[str, dict[str, dict[str, float]]] = {label: {} for label in contenders}
    for name in plans[contenders[0]]:
        for label in contenders:
            plans[label][name]()
        seconds: dict[str, list[float]] = {label: [] for label in contenders}
        order = list(contenders)
        started = time.monotonic()
        # `runs` rounds, or as many as 30 s allow (3 at least): unmaintained tables are slow.
        rounds = 0
        while rounds < runs and (rounds < 3 or time.monotonic() - started < 30):
            for label in order:
                began = time.perf_counter()
                plans[label][name]()
                seconds[label].append(time.perf_counter() - began)
            order.append(order.pop(0))
            rounds += 1
        for label, times in seconds.items():
            times.sort()
            measured[label][name] = {
                "median": statistics.median(times),
                "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
                "runs": len(times),
            }
        print(
            f"  {name}: "
            + ", ".join(
                f"{label} {measured[label][name]['median'] * 1000:.0f} ms" for label in contenders
            ),
            file=sys.stderr,
        )
    return measured


def answers(settings: Settings, newest: datetime) -> dict[str, Any]:
    """What each query answers, to compare before and after maintenance (the freshness lag,
    which follows the clock, left out; the aggregate's rows in order)."""
    found: dict[str, Any] = {}
    for name, query in dashboard_queries(settings, newest).items():
        answer = query()
        if isinstance(answer, BaseModel):
            found[name] = answer.model_dump(mode="json", exclude={"freshness_lag_seconds"})
        else:
            found[name] = sorted(map(str, answer))
    return found


def measure(
    contenders: dict[str, Settings], newest: datetime, runs: int
) -> dict[str, dict[str, Any]]:
    print(f"{' and '.join(contenders)}: measuring", file=sys.stderr)
    timed = latencies(
        {label: dashboard_queries(s, newest) for label, s in contenders.items()}, runs
    )
    return {
        label: {"layout": layout(s), "latency": timed[label]} for label, s in contenders.items()
    }


def write_tables(
    settings: Settings, commits: int, batch: int, after: Callable[[int], None]
) -> float:
    """`commits` micro-batches of `batch` records into the tables of `settings`, `after(done)`
    called after each; the seconds they took."""
    ensure_tables(settings)
    spark = build_session(spark_conf(settings))
    spark.sparkContext.setLogLevel("ERROR")
    write = BatchWriter(EnrichRules(), all_committed_offsets(open_catalog(settings)))
    batches = Batches(spark, batch, commits)
    began = time.monotonic()
    for number in range(commits):
        write(batches.next(number), number)
        done = number + 1
        if done % 100 == 0:
            rate = done / (time.monotonic() - began)
            print(f"{done:,} commits ({rate:.2f}/s)", file=sys.stderr)
        after(done)
    seconds = time.monotonic() - began
    spark.stop()
    return seconds


def local_settings(folder: str) -> Settings:
    return load_settings(data_dir=Path(folder), spark_master="local[2]", spark_driver_memory="1g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--early", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--baseline-commits", type=int, default=20)
    parser.add_argument("--query-runs", type=int, default=20)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.commits * args.batch % args.baseline_commits:
        parser.error("--baseline-commits must divide the records (--commits × --batch)")
    os.environ["TZ"] = "UTC"
    time.tzset()
    with (
        tempfile.TemporaryDirectory(prefix="adstream-bench-base-") as base_folder,
        tempfile.TemporaryDirectory(prefix="adstream-bench-") as folder,
    ):
        baseline, settings = local_settings(base_folder), local_settings(folder)
        print(f"baseline: {args.baseline_commits} commits", file=sys.stderr)
        baseline_batch = args.commits * args.batch // args.baseline_commits
        write_tables(baseline, args.baseline_commits, baseline_batch, lambda done: None)

        results: dict[str, Any] = {}

        def early(done: int) -> None:
            if done == args.early:
                newest = T0 + DAY * (done / args.commits)
                results["early"] = measure({"early": settings}, newest, args.query_runs)["early"]

        write_seconds = write_tables(settings, args.commits, args.batch, early)
        newest = T0 + DAY
        results["late"] = measure({"late": settings}, newest, args.query_runs)["late"]
        before = answers(settings, newest)

        env = {
            **os.environ,
            "ADSTREAM_DATA_DIR": folder,
            "ADSTREAM_SPARK_MASTER": "local[2]",
            "ADSTREAM_MAINTAIN_SNAPSHOT_RETENTION": "0",
        }
        began = time.monotonic()
        maintained = subprocess.run(
            [str(ADSTREAM), "maintain"], env=env, capture_output=True, text=True, check=False
        )
        if maintained.returncode != 0:
            raise SystemExit(f"adstream maintain failed: {maintained.stderr}")
        maintain_seconds = time.monotonic() - began
        print(maintained.stdout, file=sys.stderr)
        if answers(settings, newest) != before:
            raise SystemExit("the queries answer differently after maintenance")
        results |= measure({"maintained": settings, "baseline": baseline}, newest, args.query_runs)
    result = {
        "commits": args.commits,
        "early_commits": args.early,
        "batch_records": args.batch,
        "baseline_commits": args.baseline_commits,
        "write_seconds": write_seconds,
        "maintain_seconds": maintain_seconds,
        "maintain_output": maintained.stdout.splitlines(),
        **results,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    stages = ("baseline", "early", "late", "maintained")
    heads = (
        f"{result['baseline_commits']} commits (baseline)",
        f"{result['early_commits']} commits",
        f"{result['commits']} commits",
        "maintained",
    )
    lines = [
        "| query | " + " | ".join(f"{h}: median / p95 ms" for h in heads) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for name in result["late"]["latency"]:
        cells = [
            "{:.0f} / {:.0f}".format(
                result[s]["latency"][name]["median"] * 1000,
                result[s]["latency"][name]["p95"] * 1000,
            )
            for s in stages
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| table | "
        + " | ".join(f"{h}: files (most in a partition), snapshots" for h in heads)
        + " |",
    ]
    lines.append("|---|" + "---|" * len(stages))
    for table in result["late"]["layout"]:
        cells = []
        for s in stages:
            shape = result[s]["layout"][table]
            files, most = shape["data_files"], shape["most_in_a_partition"]
            cells.append(f"{files:,} ({most:,}), {shape['snapshots']:,}")
        lines.append(f"| {table} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
