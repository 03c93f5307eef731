"""Benchmark: unthrottled generator throughput into the local Kafka broker.

Starts a private broker (own data dir and ports), sends N events with `--rate 0` three times,
and reports events/s (median, min-max) next to the generator alone (no sink) as the ceiling.
Results: bench/results/generator_throughput.json and stdout.

    .venv/bin/python bench/generator_throughput.py [--events 1000000] [--runs 3]
"""

import argparse
import json
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import generate, records
from adstream.generator.sinks import KafkaSink
from adstream.services.kafka import KafkaBroker
from adstream.settings import Settings, load_settings

RESULTS = Path(__file__).parent / "results" / "generator_throughput.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def generator_only(settings: Settings) -> float:
    began = time.perf_counter()
    count = sum(len(batch) for batch in records(settings))
    return count / (time.perf_counter() - began)


def into_kafka(settings: Settings) -> float:
    report = generate(settings, KafkaSink(settings, INPUT_TOPICS))
    return report.events / report.seconds


def summary(rates: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as data_dir:
        settings = load_settings(
            data_dir=Path(data_dir),
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            rate=0,
            events=args.events,
            start_time=datetime(2026, 11, 1, tzinfo=UTC),
        )
        broker = KafkaBroker(settings)
        broker.start()
        try:
            alone, kafka = [], []
            for run in range(1, args.runs + 1):
                alone.append(generator_only(settings))
                kafka.append(into_kafka(settings))
                print(
                    f"run {run}: generator alone {alone[-1]:,.0f} events/s, "
                    f"into Kafka {kafka[-1]:,.0f} events/s",
                    flush=True,
                )
        finally:
            broker.stop()

    result = {
        "benchmark": "generator_throughput",
        "events_per_run": args.events,
        "runs": args.runs,
        "generator_alone_events_per_s": summary(alone),
        "into_kafka_events_per_s": summary(kafka),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    into = result["into_kafka_events_per_s"]
    print(
        f"into Kafka: median {into['median']:,.0f} events/s "
        f"(min {into['min']:,.0f}, max {into['max']:,.0f}) over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
