"""`make bench`: adstream side by side with the alternatives, on this machine, in one run.

1. Throughput (bounded): one dataset is generated into the input topics of a private broker;
   each contender processes all of it, `--runs` times, from a fresh data directory and with
   the output topics emptied: wall time, events/s, CPU seconds and peak memory of all its
   processes (bench/harness.py), and its attributed clicks checked row by row against SPEC
   section 3 for its own attribution window. A wrong contender is reported wrong, not ranked.
2. Freshness (steady state): `adstream run --rate R --duration S` for each offered rate; the
   time from a click's production (its Kafka timestamp) to its attributed row being visible to
   the query layer (polled every second), as p50 / p95 / p99, and whether the pipeline kept up.
3. Scaling: adstream's throughput and peak memory at several dataset sizes and attribution
   windows.

Results: bench/results/compare.json (or --output) and the tables printed as Markdown (what
docs/benchmarks.md shows).

    .venv/bin/python bench/compare.py            # the full run (hours)
    .venv/bin/python bench/compare.py --quick    # a spot check in a few minutes
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import psutil
from pyiceberg.expressions import GreaterThanOrEqual, Reference
from pyiceberg.expressions.literals import literal

from adstream.errors import AdstreamError
from adstream.events.outcomes import CLICKS_TOPIC
from adstream.events.validation import ValidEvent, validate
from adstream.query import Scan, run_fixed_query
from adstream.services.kafka_client import read_topic
from adstream.services.process import stop
from adstream.settings import Settings
from adstream.verify import read_source_records
from contenders.output_table import TABLE as CONTENDER_TABLE
from harness import (
    Dataset,
    Instance,
    Row,
    Usage,
    Verdict,
    become_subreaper,
    broker_process_ids,
    check,
    clear_topics,
    expected_rows,
    free_ports,
    measure,
    percentile,
    preload,
    private_broker,
    produced_rows,
    ratio,
    spread,
)

BENCH: Final = Path(__file__).resolve().parent
PYTHON: Final = sys.executable
ADSTREAM: Final = str(Path(sys.executable).with_name("adstream"))
RESULTS: Final = BENCH / "results" / "compare.json"
SECTIONS: Final = ("throughput", "freshness", "scaling")
KEPT_UP_P99_S: Final = 60.0
"""A pipeline keeps up with a rate when 99 % of the clicks are queryable within this."""
W: Final = timedelta(minutes=10)
"""adstream's attribution window (the default), and the Spark-only contender's."""


@dataclass(frozen=True)
class Contender:
    """A command that processes the preloaded topics, and where its attributed clicks end up."""

    name: str
    what: str
    script: str
    window: timedelta | None  # None: produces no attributed clicks (the floor)
    table: str | None
    options: tuple[str, ...] = ()
    by_default: bool = True  # False: measured only when named with --only

    def argv(self, bootstrap: str, data_dir: Path, window: timedelta | None) -> list[str]:
        """The command line for one run."""
        argv = [PYTHON, str(BENCH / "contenders" / self.script), "--bootstrap-servers", bootstrap]
        if self.table is not None:
            argv += ["--data-dir", str(data_dir)]
        if window is not None:
            argv += ["--window-seconds", str(window.total_seconds())]
        return argv + list(self.options)


ADSTREAM_AS_BUILT: Final = Contender(
    "adstream",
    "adstream as built: Flink event-time join, then Spark enrichment into Iceberg",
    "adstream_bounded.py",
    W,
    "ad_analytics.enriched_ad_data",
)
CONTENDERS: Final = (
    ADSTREAM_AS_BUILT,
    Contender(
        "adstream_rocksdb",
        "adstream with the join's state in RocksDB and a 1 GiB heap",
        "adstream_bounded.py",
        W,
        "ad_analytics.enriched_ad_data",
        ("--state-backend", "rocksdb", "--flink-heap", "1g"),
        by_default=False,  # at least 6x slower than the default here: docs/benchmarks.md
    ),
    Contender(
        "adstream_gc_default",
        "adstream with the JVM's own heap sizing (G1's GCTimeRatio 12) for the join",
        "adstream_bounded.py",
        W,
        "ad_analytics.enriched_ad_data",
        ("--gc-time-ratio", "12"),
        by_default=False,  # adstream before 2026-12-06: as fast, twice the memory
    ),
    Contender(
        "interval_merge",
        "original design: Flink interval join of +-30 s, Spark MERGE INTO per micro-batch",
        "interval_merge.py",
        timedelta(seconds=30),
        CONTENDER_TABLE,
    ),
    Contender(
        "spark_only",
        "Spark only: Structured Streaming stream-stream join and enrichment, append to Iceberg",
        "spark_only.py",
        W,
        CONTENDER_TABLE,
    ),
    Contender(
        "kafka_floor",
        "floor: Kafka's consumer performance tool reads the input topics raw",
        "kafka_floor.py",
        None,
        None,
    ),
)


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    events: int
    runs: int
    rates: tuple[int, ...]
    duration_s: int
    warm_up_s: int
    scaling_sizes: tuple[int, ...]
    scaling_windows: tuple[timedelta, ...]
    scaling_window_events: int
    timeout_s: float


FULL: Final = Plan(
    events=2_000_000,
    runs=3,
    rates=(5_000, 20_000),
    duration_s=120,
    warm_up_s=30,
    scaling_sizes=(500_000, 1_000_000, 2_000_000),
    scaling_windows=(timedelta(minutes=1), timedelta(minutes=10)),
    scaling_window_events=1_000_000,
    timeout_s=4 * 3600,
)
QUICK: Final = Plan(
    events=20_000,
    runs=1,
    rates=(5_000,),
    duration_s=60,
    warm_up_s=30,
    scaling_sizes=(),
    scaling_windows=(),
    scaling_window_events=0,
    timeout_s=900,
)


def log(message: str) -> None:
    """A progress line."""
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")}


# ---- throughput --------------------------------------------------------------------------


class Expectations:
    """The recomputation per attribution window, made once per dataset."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records = read_source_records(settings)
        self._rows: dict[timedelta, list[Row]] = {}

    def rows(self, window: timedelta) -> list[Row]:
        """SPEC section 3's attributed clicks for `window`."""
        if window not in self._rows:
            log(f"recomputing SPEC section 3 for W = {window} (plain Python)")
            self._rows[window] = expected_rows(self.settings, self.records, window)
        return self._rows[window]


def run_contender(
    contender: Contender,
    settings: Settings,
    expectations: Expectations,
    workdir: Path,
    plan: Plan,
    window: timedelta | None = None,
) -> dict[str, Any]:
    """`plan.runs` measured runs of one contender over the preloaded topics, each checked."""
    window = window or contender.window
    events = len(expectations.records)
    usages: list[Usage] = []
    verdicts: list[Verdict] = []
    stages: list[dict[str, float]] = []
    for number in range(1, plan.runs + 1):
        clear_topics(settings)  # every output topic of the run before
        # A data directory never used before: adstream derives its consumer group and
        # transactional ids from it, and a group that read these topics would resume at their end.
        data_dir = Path(tempfile.mkdtemp(prefix=f"{contender.name}-{number}-", dir=workdir))
        log(f"{contender.name}: run {number}/{plan.runs} over {events:,} events")
        usage = measure_contender(contender, settings, data_dir, window, plan.timeout_s)
        usages.append(usage)
        join_s = _join_seconds(data_dir.with_suffix(".log"))
        if join_s is not None:
            stages.append({"join": join_s, "after_join": usage.wall_s - join_s})
        log(
            f"{contender.name}: {usage.wall_s:.1f} s, {events / usage.wall_s:,.0f} events/s, "
            f"{usage.cpu_s:.0f} CPU s, peak {usage.peak_rss_bytes / 2**20:,.0f} MiB"
            + (f", the join {join_s:.1f} s of it" if join_s is not None else "")
        )
        if contender.table is not None and window is not None:
            verdict = check(expectations.rows(window), produced_rows(data_dir, contender.table))
            verdicts.append(verdict)
            log(f"{contender.name}: {'correct' if verdict.correct else 'WRONG'}: {verdict}")
        shutil.rmtree(data_dir, ignore_errors=True)
    row = summarize_runs(contender, window, events, usages, verdicts)
    if stages:  # adstream: the join, then the enrichment and its JVM start (the rest of the wall)
        row["stage_s"] = {name: spread([s[name] for s in stages]) for name in stages[0]}
    return row


def _join_seconds(run_log: Path) -> float | None:
    """The join's own time in an adstream run's log (`adstream: join finished in X s`)."""
    found = re.search(r"join finished in ([\d.]+) s", run_log.read_text(errors="replace"))
    return float(found.group(1)) if found else None


def measure_contender(
    contender: Contender,
    settings: Settings,
    data_dir: Path,
    window: timedelta | None,
    timeout: float,
) -> Usage:
    """One run, measured (bench/harness.py)."""
    argv = contender.argv(settings.bootstrap_servers, data_dir, window)
    data_dir.mkdir(parents=True, exist_ok=True)
    return measure(
        argv, _env(), data_dir.with_suffix(".log"), broker_process_ids(settings), timeout
    )


def summarize_runs(
    contender: Contender,
    window: timedelta | None,
    events: int,
    usages: Sequence[Usage],
    verdicts: Sequence[Verdict],
) -> dict[str, Any]:
    """One row of the throughput table (before ratios)."""
    return {
        "contender": contender.name,
        "what": contender.what,
        "window_s": window.total_seconds() if window is not None else None,
        "events": events,
        "runs": len(usages),
        "wall_s": spread([u.wall_s for u in usages]),
        "events_per_s": spread([events / u.wall_s for u in usages]),
        "cpu_s": spread([u.cpu_s for u in usages]),
        "peak_rss_mib": spread([u.peak_rss_bytes / 2**20 for u in usages]),
        # The floor reads and counts every record itself (its script fails otherwise).
        "correct": all(v.correct for v in verdicts) if verdicts else None,
        "verdicts": [_verdict(v) for v in verdicts],
    }


def _verdict(verdict: Verdict) -> dict[str, Any]:
    fields = asdict(verdict)
    fields["expected_revenue"] = str(verdict.expected_revenue)
    fields["produced_revenue"] = str(verdict.produced_revenue)
    return fields


def with_ratios(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> list[dict[str, Any]]:
    """Each row's medians relative to adstream's (the baseline row)."""
    measures = ("wall_s", "events_per_s", "cpu_s", "peak_rss_mib")
    return [
        {
            **row,
            "ratio_to_adstream": {
                m: ratio(row[m]["median"], baseline[m]["median"]) for m in measures
            },
        }
        for row in rows
    ]


# ---- freshness ---------------------------------------------------------------------------


@dataclass
class Visibility:
    """When each attributed click was first seen by the query layer (epoch seconds)."""

    seen: dict[tuple[str, int], float]
    polls: int = 0


def poll_visibility(settings: Settings, since: datetime, done: threading.Event) -> Visibility:
    """Every second until `done`: the attributed clicks `adstream query` sees now."""
    visibility = Visibility({})
    last_error = ""
    scan = Scan(
        GreaterThanOrEqual(term=Reference("click_time"), value=literal(since.isoformat())),
        ("impression_id", "click_time"),
    )
    while not done.is_set():
        began = time.time()
        try:
            rows = run_fixed_query(
                settings,
                "SELECT impression_id, epoch_ms(click_time) FROM enriched_ad_data",
                {},
                {"enriched_ad_data": scan},
            ).rows
        except AdstreamError as error:  # no table yet: the run is starting
            if str(error) != last_error:
                log(f"freshness poll: {error}")
            last_error, rows = str(error), []
        for impression_id, click_ms in rows:
            visibility.seen.setdefault((impression_id, click_ms), began)
        visibility.polls += 1
        done.wait(max(0.0, 1.0 - (time.time() - began)))
    return visibility


def produced_at(settings: Settings) -> dict[tuple[str, int], float]:
    """(impression_id, click event time) -> when the first such click was produced (epoch s)."""
    first: dict[tuple[str, int], float] = {}
    for record in read_topic(settings, CLICKS_TOPIC):
        event = validate(record.value, "clicks", now_ms=record.timestamp_ms, future_bound_ms=10**12)
        if not isinstance(event, ValidEvent):
            continue
        key = (event.fields["impression_id"], event.event_time)
        first[key] = min(first.get(key, float("inf")), record.timestamp_ms / 1000)
    return first


def latency_summary(
    latencies: Sequence[tuple[float, float]], measured_from: float, measured_to: float
) -> dict[str, Any]:
    """p50/p95/p99 of (production time, latency) pairs produced in [from, to), and the trend.

    Kept up: 99 % of the clicks were visible within `KEPT_UP_P99_S`, and the latency of the
    last third of that span is no more than twice (and at most 10 s above) that of the first
    third. A pipeline falling behind has a growing latency; one that shows nothing until the
    run's finish has a huge one.
    """
    inside = sorted((at, lag) for at, lag in latencies if measured_from <= at < measured_to)
    if not inside:
        raise RuntimeError("no attributed click became visible in the measured span")
    lags = [lag for _, lag in inside]
    third = (measured_to - measured_from) / 3
    first = [lag for at, lag in inside if at < measured_from + third]
    last = [lag for at, lag in inside if at >= measured_to - third]
    first_p50 = percentile(first, 0.5) if first else None
    last_p50 = percentile(last, 0.5) if last else None
    kept_up = (
        percentile(lags, 0.99) <= KEPT_UP_P99_S
        and first_p50 is not None
        and last_p50 is not None
        and last_p50 <= max(2 * first_p50, first_p50 + 10.0)
    )
    return {
        "clicks": len(lags),
        "p50_s": percentile(lags, 0.5),
        "p95_s": percentile(lags, 0.95),
        "p99_s": percentile(lags, 0.99),
        "max_s": max(lags),
        "first_third_p50_s": first_p50,
        "last_third_p50_s": last_p50,
        "kept_up": kept_up,
    }


def freshness(rate: int, plan: Plan, workdir: Path) -> dict[str, Any]:
    """`plan.runs` steady-state runs at `rate` events/s, summarized."""
    runs = [freshness_run(rate, plan, workdir, n) for n in range(1, plan.runs + 1)]
    return summarize_freshness(rate, plan, runs)


def summarize_freshness(rate: int, plan: Plan, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row of the freshness table: each figure's median and min-max over the runs."""
    return {
        "offered_rate": rate,
        "duration_s": plan.duration_s,
        "warm_up_s": plan.warm_up_s,
        "runs": len(runs),
        "produced_events_per_s": _spread_or_none(
            [_produced_rate(r["generator"]) for r in runs if r["generator"]]
        ),
        **{key: spread([r[key] for r in runs]) for key in ("clicks", "p50_s", "p95_s", "p99_s")},
        "kept_up_runs": sum(bool(r["kept_up"]) for r in runs),
        "kept_up": all(r["kept_up"] for r in runs),
        "per_run": list(runs),
    }


def _produced_rate(generator_line: str) -> float:
    """`... in 120.0 s, 4,970 events/s` -> 4970.0."""
    return float(generator_line.rsplit(", ", 1)[-1].split()[0].replace(",", ""))


def _spread_or_none(values: list[float]) -> dict[str, float] | None:
    return spread(values) if values else None


def freshness_run(rate: int, plan: Plan, workdir: Path, number: int) -> dict[str, Any]:
    """One steady-state `adstream run` at `rate` events/s, its clicks' latencies."""
    data_dir = workdir / f"fresh-{rate}-{number}"
    instance = Instance.fresh(data_dir)
    env, settings = instance.env(), instance.settings()
    subprocess.run([ADSTREAM, "up"], env=env, check=True, capture_output=True)
    try:
        log(
            f"freshness: run {number}/{plan.runs}: adstream run --rate {rate} "
            f"--duration {plan.duration_s}"
        )
        started = datetime.now(UTC)
        done = threading.Event()
        polled: dict[str, Visibility] = {}
        poller = threading.Thread(
            target=lambda: polled.setdefault("v", poll_visibility(settings, started, done))
        )
        poller.start()
        run_log = workdir / f"fresh-{rate}-{number}.log"
        with run_log.open("w") as output:
            run = subprocess.Popen(
                [ADSTREAM, "run", "--rate", str(rate), "--duration", str(plan.duration_s)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                code = run.wait()
            except BaseException:  # stopped: Ctrl-C, as a user would, so it cleans up
                stop([run], name="adstream run", signum=signal.SIGINT, timeout=600)
                raise
            finally:
                done.set()
                poller.join()
        if code != 0:
            raise RuntimeError(f"adstream run failed; see {run_log}")
        produced = produced_at(settings)
    finally:
        subprocess.run([ADSTREAM, "down"], env=env, check=False, capture_output=True)
    visibility = polled["v"]
    pairs = [
        (produced[k], seen - produced[k]) for k, seen in visibility.seen.items() if k in produced
    ]
    # The generator starts once the pipeline is ready: the span is its traffic's, not the run's.
    begin = min(produced.values())
    summary = latency_summary(pairs, begin + plan.warm_up_s, begin + plan.duration_s - 10)
    generated = [line for line in run_log.read_text().splitlines() if "generator done" in line]
    shutil.rmtree(data_dir, ignore_errors=True)
    result = {
        "poll_interval_s": 1.0,
        "polls": visibility.polls,
        "generator": generated[-1].split(": ", 1)[-1] if generated else None,
        **summary,
    }
    log(
        f"freshness: {rate:,} events/s: p50 {summary['p50_s']:.1f} s, p99 "
        f"{summary['p99_s']:.1f} s, kept up: {summary['kept_up']}"
    )
    return result


# ---- the whole run -----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "java": subprocess.run(
            ["java", "-version"], capture_output=True, text=True, check=False
        ).stderr.splitlines()[0],
        "load_average_at_start": os.getloadavg(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def throughput_section(
    settings: Settings, dataset: Dataset, plan: Plan, workdir: Path, contenders: Sequence[Contender]
) -> list[dict[str, Any]]:
    """Preload once, then every contender."""
    log(f"preloading {dataset.events:,} events (seed {dataset.seed})")
    preload(settings, dataset)
    expectations = Expectations(settings)
    rows = [run_contender(c, settings, expectations, workdir, plan) for c in contenders]
    return with_ratios(rows, rows[0])


def scaling_section(
    settings: Settings, plan: Plan, workdir: Path, measured: dict[tuple[int, timedelta], Any]
) -> list[dict[str, Any]]:
    """adstream at each size (window W) and at each window (one size), one preload per size.

    `measured`: rows already measured, by (events, window), e.g. the throughput section's.
    """
    cases = sorted(
        {(size, W) for size in plan.scaling_sizes}
        | {(plan.scaling_window_events, window) for window in plan.scaling_windows}
    )
    rows = dict(measured)
    for size in sorted({size for size, _ in cases}):
        windows = [w for s, w in cases if s == size and (s, w) not in rows]
        if not windows:
            continue
        log(f"scaling: {size:,} events, W = {', '.join(map(str, windows))}")
        preload(settings, Dataset(events=size))
        expectations = Expectations(settings)
        for window in windows:
            rows[size, window] = run_contender(
                ADSTREAM_AS_BUILT, settings, expectations, workdir, plan, window
            )
    return [rows[case] for case in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A spot check in a few minutes.")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[c.name for c in CONTENDERS],
        help="These contenders (adstream always runs first: every ratio is to it). Default: all "
        "but adstream_rocksdb.",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="Keep the sections of the existing --output file that this run does not measure, "
        "and its correct scaling rows (only the others are measured again).",
    )
    parser.add_argument("--runs", type=int, help="Runs per measurement (default: 3; quick: 1).")
    parser.add_argument(
        "--rates", type=int, nargs="+", help="Offered rates of the freshness runs (events/s)."
    )
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=SECTIONS, help="What to measure."
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.runs is not None:
        plan = replace(plan, runs=args.runs)
    if args.rates:
        plan = replace(plan, rates=tuple(args.rates))
    contenders = (
        [c for c in CONTENDERS if c.name in args.only]
        if args.only
        else [c for c in CONTENDERS if c.by_default]
    )
    if contenders[0] is not ADSTREAM_AS_BUILT:
        contenders.insert(0, ADSTREAM_AS_BUILT)  # every ratio is to adstream's figures

    earlier = json.loads(args.output.read_text()) if args.merge and args.output.exists() else None
    become_subreaper()
    # SIGTERM unwinds like Ctrl-C: contenders, runs and the private broker are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = datetime.now(UTC)
    dataset = Dataset(events=plan.events)
    results: dict[str, Any] = {
        "benchmark": "compare",
        "quick": args.quick,
        "plan": asdict(plan),
        "machine": machine(),
        "dataset": dataset.describe(),
        "measured_at": started.isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="adstream-compare-") as work:
        workdir = Path(work)
        port, controller = free_ports(2)
        with private_broker(workdir / "broker", port, controller) as settings:
            measured: dict[tuple[int, timedelta], Any] = {}
            for row in earlier.get("scaling", []) if earlier else []:
                if row["correct"]:
                    measured[row["events"], timedelta(seconds=row["window_s"])] = row
            if "throughput" in args.sections:
                results["throughput"] = throughput_section(
                    settings, dataset, plan, workdir, contenders
                )
                measured[dataset.events, W] = results["throughput"][0]  # adstream as built
            if "scaling" in args.sections:
                results["scaling"] = scaling_section(settings, plan, workdir, measured)
        if "freshness" in args.sections:
            results["freshness"] = [freshness(rate, plan, workdir) for rate in plan.rates]
    results["took_s"] = (datetime.now(UTC) - started).total_seconds()
    if earlier:
        results = merge(earlier, results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(results))


def merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """`later`'s results, with the sections only `earlier` measured carried over (and dated)."""
    merged = dict(later)
    measured_at = {**earlier.get("section_measured_at", {})}
    for section in SECTIONS:
        if section in later:
            measured_at[section] = later["measured_at"]
        elif section in earlier:
            merged[section] = earlier[section]
            measured_at.setdefault(section, earlier["measured_at"])
    merged["section_measured_at"] = measured_at
    return merged


# ---- the report --------------------------------------------------------------------------


def _mmm(figure: dict[str, float], digits: int = 0) -> str:
    return (
        f"{figure['median']:,.{digits}f} ({figure['min']:,.{digits}f}–{figure['max']:,.{digits}f})"
    )


def _x(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "–"


def render(results: dict[str, Any]) -> str:
    """The results as the Markdown tables of docs/benchmarks.md (the sections measured)."""
    lines: list[str] = []
    for title, rows, table in (
        ("Throughput (bounded)", results.get("throughput"), _throughput_table),
        ("Freshness (steady state)", results.get("freshness"), _freshness_table),
        ("Scaling (adstream)", results.get("scaling"), _scaling_table),
    ):
        if rows:
            lines += [f"### {title}", "", *table(rows), ""]
    return "\n".join(lines)


def _throughput_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| contender | W | correct | wall s | events/s | CPU s | peak MiB "
        "| × adstream (wall, events/s, CPU, memory) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        correct = _correct(row["correct"])
        ratios = row["ratio_to_adstream"]
        lines.append(
            f"| {row['contender']} | {_window(row['window_s'])} | {correct} | "
            f"{_mmm(row['wall_s'], 1)} | {_mmm(row['events_per_s'])} | {_mmm(row['cpu_s'])} | "
            f"{_mmm(row['peak_rss_mib'])} | {_x(ratios['wall_s'])}, "
            f"{_x(ratios['events_per_s'])}, {_x(ratios['cpu_s'])}, {_x(ratios['peak_rss_mib'])} |"
        )
    for row in rows:
        if row["correct"] is False:
            verdict = row["verdicts"][0]
            lines.append("")
            lines.append(
                f"{row['contender']}: {verdict['produced_rows']:,} rows for "
                f"{verdict['expected_rows']:,} expected; {verdict['matching']:,} match, "
                f"{verdict['missing']:,} missing, "
                f"{verdict['extra']:,} extra; revenue {verdict['produced_revenue']} USD for "
                f"{verdict['expected_revenue']} USD."
            )
    return lines


def _freshness_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| offered events/s | produced events/s | clicks measured | p50 s | p95 s | p99 s "
        "| kept up |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        produced = row["produced_events_per_s"]
        kept = f"{row['kept_up_runs']} of {row['runs']} runs"
        lines.append(
            f"| {row['offered_rate']:,} | {_mmm(produced) if produced else '–'} | "
            f"{_mmm(row['clicks'])} | {_mmm(row['p50_s'], 1)} | {_mmm(row['p95_s'], 1)} | "
            f"{_mmm(row['p99_s'], 1)} | {kept if row['kept_up'] else f'**no** ({kept})'} |"
        )
    return lines


def _scaling_table(rows: list[dict[str, Any]]) -> list[str]:
    first = rows[0]
    lines = [
        "| events | W | correct | wall s | events/s | peak MiB | × first row (events/s, memory) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        speed = ratio(row["events_per_s"]["median"], first["events_per_s"]["median"])
        memory = ratio(row["peak_rss_mib"]["median"], first["peak_rss_mib"]["median"])
        lines.append(
            f"| {row['events']:,} | {_window(row['window_s'])} | {_correct(row['correct'])} | "
            f"{_mmm(row['wall_s'], 1)} | "
            f"{_mmm(row['events_per_s'])} | {_mmm(row['peak_rss_mib'])} | "
            f"{_x(speed)}, {_x(memory)} |"
        )
    return lines


def _correct(correct: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a (counts only)"}[correct]


def _window(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


if __name__ == "__main__":
    main()
