"""Benchmark: the join job alone in bounded mode on a generated dataset.

Starts a private broker (own data dir and ports), preloads N events with every fault knob on
(fixed seed), then runs `adstream join --bounded` three times, each time from a fresh data
directory (so it reads everything again), and reports the median events/s: wall time of the whole
command, including JVM start-up and the final commit. Before the events are written it runs the
join as often on the empty topics: the median of those is the fixed cost (JVM and job start-up,
planning, the final checkpoint, shut-down), and events / (median time - fixed cost) is the
processing rate alone. Results: bench/results/join_throughput.json.

    .venv/bin/python bench/join_throughput.py [--events 200000] [--runs 3] [--parallelism 1]
"""

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.join.launcher import run_join
from adstream.services.kafka import KafkaBroker
from adstream.settings import Settings, load_settings
from generator_throughput import free_port, summary

RESULTS = Path(__file__).parent / "results" / "join_throughput.json"
FAULTS = {
    "out_of_order_fraction": 0.05,
    "late_fraction": 0.01,
    "duplicate_impression_fraction": 0.03,
    "duplicate_click_fraction": 0.05,
    "orphan_click_fraction": 0.05,
    "invalid_fraction": 0.02,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as root:
        settings = load_settings(
            data_dir=Path(root) / "broker",
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            seed=7,
            rate=0,
            events=args.events,
            start_time=datetime(2026, 11, 1, tzinfo=UTC),
            join_parallelism=args.parallelism,
            **FAULTS,
        )
        broker = KafkaBroker(settings)
        broker.start()
        try:
            empty_runs = []
            for run in range(1, args.runs + 1):
                empty = settings.model_copy(update={"data_dir": Path(root) / f"empty-{run}"})
                empty_runs.append(timed_join(empty))
                print(f"empty input, run {run}: {empty_runs[-1]:.1f} s", flush=True)
            fixed_cost = statistics.median(empty_runs)
            generate(settings, KafkaSink(settings, INPUT_TOPICS))
            durations = []
            for run in range(1, args.runs + 1):
                fresh = settings.model_copy(update={"data_dir": Path(root) / f"join-{run}"})
                durations.append(timed_join(fresh))
                print(f"run {run}: {durations[-1]:.1f} s", flush=True)
        finally:
            broker.stop()

    rates = [args.events / seconds for seconds in durations]
    median_seconds = statistics.median(durations)
    processing_rate = args.events / (median_seconds - fixed_cost)

    result = {
        "benchmark": "join_throughput",
        "events": args.events,
        "runs": args.runs,
        "parallelism": args.parallelism,
        "fault_fractions": FAULTS,
        "events_per_s": summary(rates),
        "seconds": durations,
        "empty_input_seconds": empty_runs,
        "fixed_cost_seconds": fixed_cost,
        "processing_events_per_s": processing_rate,
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
        f"{processing_rate:,.0f} events/s processing alone"
    )


def timed_join(settings: Settings) -> float:
    """Seconds of one whole `adstream join --bounded`."""
    began = time.perf_counter()
    run_join(settings, bounded=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
