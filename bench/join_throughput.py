"""Benchmark: the join job alone in bounded mode on a generated dataset.

Starts a private broker (own data dir and ports), preloads N events with every fault knob on
(fixed seed), then runs `adstream join --bounded` three times, each time from a fresh data
directory (so it reads everything again), and reports the median events/s: wall time of the whole
command, including JVM start-up and the final commit. Before that it does the same with 1,000
events on a broker of their own: the median of those runs is the fixed cost (JVM and job
start-up, planning, the final checkpoint and drain, shut-down), and the other events over the
time beyond the fixed cost is the processing rate alone. During each run it samples the resident
memory of the largest process the run started (the Flink JVM) every half second: its peak.
Results: bench/results/join_throughput.json.

    .venv/bin/python bench/join_throughput.py [--events 200000] [--runs 3] [--parallelism 1]
"""

import argparse
import json
import logging
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.join.launcher import run_join
from adstream.services.kafka import KafkaBroker
from adstream.settings import Settings, load_settings
from generator_throughput import free_port, summary
from harness import FAULTS

RESULTS = Path(__file__).parent / "results" / "join_throughput.json"
STARTUP_EVENTS = 1_000
"""The fixed cost is measured as the time for this few events (a run with none cannot drain)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as root:
        settings = load_settings(
            config_file=None,
            seed=7,
            rate=0,
            start_time=datetime(2026, 11, 1, tzinfo=UTC),
            join_parallelism=args.parallelism,
            **FAULTS,
        )
        small_runs, _ = timed_runs(settings, Path(root) / "small", STARTUP_EVENTS, args.runs)
        durations, peaks = timed_runs(settings, Path(root) / "full", args.events, args.runs)

    rates = [args.events / seconds for seconds in durations]
    median_seconds = statistics.median(durations)
    fixed_cost = statistics.median(small_runs)
    processing_rate = (args.events - STARTUP_EVENTS) / (median_seconds - fixed_cost)

    result = {
        "benchmark": "join_throughput",
        "events": args.events,
        "runs": args.runs,
        "parallelism": args.parallelism,
        "fault_fractions": FAULTS,
        "events_per_s": summary(rates),
        "seconds": durations,
        "seconds_for_startup_events": small_runs,
        "startup_events": STARTUP_EVENTS,
        "fixed_cost_seconds": fixed_cost,
        "processing_events_per_s": processing_rate,
        "jvm_peak_rss_mib": [round(peak / 2**20) for peak in peaks],
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    rate = result["events_per_s"]
    print(
        f"join alone, bounded: median {rate['median']:,.0f} events/s "
        f"(min {rate['min']:,.0f}, max {rate['max']:,.0f}) over {args.runs} runs; "
        f"{fixed_cost:.1f} s of the median {median_seconds:.1f} s is the fixed cost, so "
        f"{processing_rate:,.0f} events/s processing alone; Flink JVM peak RSS "
        f"{statistics.median(peaks) / 2**20:,.0f} MiB (median)"
    )


def timed_runs(
    settings: Settings, root: Path, events: int, runs: int
) -> tuple[list[float], list[int]]:
    """Seconds and the JVM's peak RSS of each of `runs` bounded joins over `events` events."""
    settings = settings.model_copy(
        update={
            "data_dir": root / "broker",
            "kafka_port": free_port(),
            "kafka_controller_port": free_port(),
            "events": events,
        }
    )
    broker = KafkaBroker(settings)
    broker.start()
    try:
        generate(settings, KafkaSink(settings, INPUT_TOPICS))
        broker_pid = broker.process.pid()
        durations, peaks = [], []
        for run in range(1, runs + 1):
            seconds, peak = timed_join(
                settings.model_copy(update={"data_dir": root / str(run)}), broker_pid
            )
            durations.append(seconds)
            peaks.append(peak)
            print(
                f"{events:,} events, run {run}: {seconds:.1f} s, "
                f"JVM peak RSS {peak / 2**20:,.0f} MiB",
                flush=True,
            )
        return durations, peaks
    finally:
        broker.stop()


def timed_join(settings: Settings, broker_pid: int | None) -> tuple[float, int]:
    """Seconds of one whole `adstream join --bounded`, and the largest RSS of a process in it."""
    done = threading.Event()
    peak = [0]

    def sample() -> None:
        me = psutil.Process()
        while not done.wait(0.5):
            for process in me.children(recursive=True):
                try:
                    if process.pid != broker_pid and process.ppid() != broker_pid:
                        peak[0] = max(peak[0], process.memory_info().rss)
                except psutil.Error:
                    continue  # it ended between listing and reading

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    try:
        run_join(settings, bounded=True)
        return time.perf_counter() - began, peak[0]
    finally:
        done.set()
        sampler.join()


if __name__ == "__main__":
    main()
