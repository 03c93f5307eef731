"""Benchmark: the whole pipeline on Kafka and on Kinesis (the local AWS emulator), side by side.

For each platform, in turn within each round: `adstream up` (the broker, or the emulator and its
streams), then `adstream run --events N --rate 0` timed from its start to its exit (both JVM
jobs starting, generation, the running join drained, the running enrichment writing the last
rows, the accounting printed), then `adstream verify` (must pass) and `adstream down`. Each
run has a data directory and ports never used before. Reported as events/s, median and range.

What the emulator itself limits (docs/benchmarks.md): moto serves every call in one Python
process, one request at a time per connection, and keeps the records in memory; the join's
sinks send one request at a time to it.

Results: bench/results/platform_throughput.json and stdout.

    .venv/bin/python bench/platform_throughput.py [--events 200000] [--runs 3]
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import Instance, free_ports

RESULTS = Path(__file__).parent / "results" / "platform_throughput.json"
ADSTREAM = str(Path(sys.executable).with_name("adstream"))
PLATFORMS = ("kafka", "kinesis")


def environment(platform_name: str, data_dir: Path) -> dict[str, str]:
    """A fresh instance's environment, on Kafka or on the emulator's Kinesis."""
    env = Instance.fresh(data_dir).env()
    if platform_name == "kinesis":
        (port,) = free_ports(1)
        env |= {
            "ADSTREAM_PLATFORM": "aws",
            "ADSTREAM_AWS_EMULATOR": "1",
            "ADSTREAM_AWS_EMULATOR_PORT": str(port),
        }
    return env


def command(args: list[str], env: dict[str, str]) -> str:
    """Run `adstream ARGS`; its stdout, or exit with its last line."""
    result = subprocess.run([ADSTREAM, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"adstream {args[0]} failed: {last}\n{result.stdout}")
    return result.stdout


def measure(platform_name: str, events: int) -> float:
    """Seconds of one verified `adstream run --events N --rate 0` on the platform."""
    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as data_dir:
        env = environment(platform_name, Path(data_dir))
        command(["up"], env)
        try:
            began = time.perf_counter()
            accounting = command(["run", "--events", str(events), "--rate", "0"], env)
            took = time.perf_counter() - began
            inputs = sum(int(n.replace(",", "")) for n in re.findall(r"in ([\d,]+) =", accounting))
            if inputs != events:
                raise SystemExit(f"accounting does not add up to {events}: {accounting}")
            command(["verify"], env)
        finally:
            subprocess.run([ADSTREAM, "down"], env=env, capture_output=True)
    print(f"  {platform_name}: {took:.1f} s, {events / took:,.0f} events/s, verified", flush=True)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    seconds: dict[str, list[float]] = {name: [] for name in PLATFORMS}
    for number in range(1, args.runs + 1):
        print(f"round {number}/{args.runs}: {args.events:,} events on each platform", flush=True)
        for name in PLATFORMS:
            seconds[name].append(measure(name, args.events))

    result = {
        "benchmark": "platform_throughput",
        "events": args.events,
        "runs": args.runs,
        "platforms": {
            name: {
                "seconds": took,
                "events_per_s": {
                    "median": statistics.median(args.events / s for s in took),
                    "min": args.events / max(took),
                    "max": args.events / min(took),
                },
            }
            for name, took in seconds.items()
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
