"""Benchmark: `adstream run` end to end, and its freshness lag at a steady rate.

Throughput: `adstream run --events N --rate 0` on a fresh data directory (own ports), from the
command's start to its exit: Kafka, both JVM jobs starting, generation, the running join
drained, the running enrichment writing the last rows, the accounting printed.
Repeated, reported as events/s (median, min-max); each run's accounting must add up.

Freshness: one `adstream run --rate R --duration S`; the progress lines' "freshness lag" (now
minus the newest click_time in enriched_ad_data) after a warm-up, as median / p90 / max.

Results: bench/results/pipeline_throughput.json and stdout.

    .venv/bin/python bench/pipeline_throughput.py [--events 1000000] [--runs 3]
        [--rate 2000] [--duration 180] [--warm-up 60]
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

from harness import Instance

RESULTS = Path(__file__).parent / "results" / "pipeline_throughput.json"
ADSTREAM = str(Path(sys.executable).with_name("adstream"))
LAG = re.compile(r"freshness lag ([\d.]+) s")


def run(args: list[str], data_dir: Path) -> tuple[float, str, list[tuple[float, str]]]:
    """`adstream run ARGS` in its own instance: seconds, stdout, timed stderr lines."""
    env = Instance.fresh(data_dir).env()
    began = time.perf_counter()
    process = subprocess.Popen(
        [ADSTREAM, "run", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None and process.stdout is not None
    lines = []
    for line in process.stderr:
        lines.append((time.perf_counter() - began, line.rstrip()))
        print(f"  {lines[-1][0]:6.1f} s  {line.rstrip()[:150]}", flush=True)
    stdout = process.stdout.read()
    if process.wait() != 0:
        raise SystemExit(f"adstream run failed: {lines[-1][1] if lines else 'no output'}")
    return time.perf_counter() - began, stdout, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=180)
    parser.add_argument("--warm-up", type=int, default=60)
    args = parser.parse_args()

    seconds = []
    for number in range(1, args.runs + 1):
        print(f"run {number}/{args.runs}: {args.events:,} events, --rate 0", flush=True)
        with tempfile.TemporaryDirectory(prefix="adstream-bench-") as data_dir:
            took, accounting, _ = run(["--events", str(args.events), "--rate", "0"], Path(data_dir))
        inputs = sum(int(n.replace(",", "")) for n in re.findall(r"in ([\d,]+) =", accounting))
        if inputs != args.events:
            raise SystemExit(f"accounting does not add up to {args.events}: {accounting}")
        print(accounting, end="")
        seconds.append(took)
    rates = [args.events / took for took in seconds]

    print(f"freshness: --rate {args.rate} for {args.duration} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="adstream-bench-") as data_dir:
        _, _, lines = run(
            ["--rate", str(args.rate), "--duration", str(args.duration)], Path(data_dir)
        )
    generating = [line for at, line in lines if "produced" in line and at >= args.warm_up]
    lags = sorted(float(m.group(1)) for line in generating if (m := LAG.search(line)))
    if not lags:
        raise SystemExit("no freshness lag observed after the warm-up")

    result = {
        "benchmark": "pipeline_throughput",
        "events": args.events,
        "runs": args.runs,
        "seconds": seconds,
        "events_per_s": {
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        },
        "freshness": {
            "rate": args.rate,
            "duration_s": args.duration,
            "warm_up_s": args.warm_up,
            "samples": len(lags),
            "median_s": statistics.median(lags),
            "p90_s": lags[int(0.9 * (len(lags) - 1))],
            "max_s": lags[-1],
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
