"""Benchmark: where the time of `adstream run` goes, from its start to the printed accounting.

Each run is `adstream run --events N --rate R` on a fresh data directory (own ports), as a user
starts it. Its milestones, in seconds from the command's start:

- from its own lines: Kafka ready, the join and the enrichment running, the pipeline ready (the
  generator starts then), the generator done, the finish (`finished ... after the generator`)
  and the accounting printed (the command's exit);
- from the join's log: the Java gateway up, the statements registered, the job planned and
  submitted, and its first checkpoint complete (Flink's own log: the mini-cluster starting);
- from the enrichment's log: the query started, its first trigger done, its first commit;
- the first enriched row: when the query layer first counts a row of enriched_ad_data
  (polled every 0.25 s from the generator's start).

Then `adstream verify` must pass. Reported per milestone as median (min-max) over the runs,
with the two headline figures: time to first row (from the generator's start) and time to
finish (from the generator's end to the accounting).

Results: bench/results/run_timeline.json and a Markdown table on stdout.

    .venv/bin/python bench/run_timeline.py [--events 90000] [--rate 1000] [--runs 3]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import row_counts
from adstream.lakehouse.tables import ENRICHED_AD_DATA
from adstream.settings import Settings
from harness import Instance, spread

RESULTS: Final = Path(__file__).parent / "results" / "run_timeline.json"
ADSTREAM: Final = str(Path(sys.executable).with_name("adstream"))
OWN_LINES: Final = {
    "kafka ready": "Kafka ready",
    "enrichment running": "enrichment running after",
    "join running": "join running after",
    "pipeline ready": "pipeline ready after",
    "generator started": "generating traffic",
    "generator done": "generator done",
    "join drained": "the enrichment writes what remains",
    "finished": "after the generator",
}
"""Milestone -> the text of the first `adstream run` line that marks it."""
JOB_LOGS: Final = {
    "join: Java gateway up": ("flink/join.log", "Java gateway up"),
    "join: statements registered": ("flink/join.log", "statements registered"),
    "join: planned and submitted": ("flink/join.log", "job id:"),
    "join: first checkpoint": ("flink/join.log", "running:"),
    "enrichment: query started": ("spark/enrich.log", "started (endless)"),
    "enrichment: first trigger done": ("spark/enrich.log", "running:"),
    "enrichment: first commit": ("spark/enrich.log", "now at offsets"),
}
"""Milestone -> (log under the data directory, text of its first line that marks it)."""
MINI_CLUSTER: Final = ("flink/log", "Starting Flink Mini Cluster")
STAMP: Final = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
ORDER: Final = (
    "kafka ready",
    "join: Java gateway up",
    "join: statements registered",
    "join: mini-cluster starting",
    "join: planned and submitted",
    "enrichment: query started",
    "enrichment: first trigger done",
    "enrichment running",
    "join: first checkpoint",
    "join running",
    "pipeline ready",
    "generator started",
    "enrichment: first commit",
    "first enriched row",
    "generator done",
    "join drained",
    "finished",
    "accounting printed",
)


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def timed_run(events: int, rate: int, data_dir: Path) -> dict[str, Any]:
    """One `adstream run`: its milestones (seconds from its start) and verification."""
    instance = Instance.fresh(data_dir)
    env, settings = instance.env(), instance.settings()
    command = [ADSTREAM, "run", "--events", str(events), "--rate", str(rate), "--seed", "42"]
    started_at = time.time()
    began = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None and process.stdout is not None
    milestones: dict[str, float] = {}
    generating = threading.Event()
    done = threading.Event()
    poller = threading.Thread(
        target=_first_row, args=(settings, began, generating, done, milestones)
    )
    poller.start()
    lines = []
    try:
        for line in process.stderr:
            at = time.monotonic() - began
            lines.append(f"{at:7.1f} s  {line.rstrip()}")
            log(lines[-1][:160])
            for milestone, text in OWN_LINES.items():
                if text in line and milestone not in milestones:
                    milestones[milestone] = at
                    if milestone == "generator started":
                        generating.set()
        stdout = process.stdout.read()
        code = process.wait()
        milestones["accounting printed"] = time.monotonic() - began
    finally:
        done.set()
        generating.set()
        poller.join()
    if code != 0:
        raise SystemExit(f"adstream run failed: {lines[-1] if lines else 'no output'}")
    milestones |= _from_job_logs(data_dir, started_at)
    verified = _verify(env)
    return {
        "milestones_s": {name: round(milestones[name], 2) for name in ORDER if name in milestones},
        "time_to_first_row_s": round(
            milestones["first enriched row"] - milestones["generator started"], 2
        ),
        "time_to_finish_s": round(
            milestones["accounting printed"] - milestones["generator done"], 2
        ),
        "bounded_restart": any("stayed pending" in line for line in lines),
        "verified": verified,
        "accounting": stdout.strip().splitlines(),
    }


def _first_row(
    settings: Settings,
    began: float,
    generating: threading.Event,
    done: threading.Event,
    milestones: dict[str, float],
) -> None:
    """Poll enriched_ad_data's row count from the generator's start until it has a row."""
    generating.wait()
    while not done.is_set():
        polled = time.monotonic() - began
        try:
            if row_counts(settings)[ENRICHED_AD_DATA] > 0:
                milestones["first enriched row"] = polled
                return
        except AdstreamError:  # the tables are being created
            pass
        done.wait(0.25)


def _from_job_logs(data_dir: Path, started_at: float) -> dict[str, float]:
    """Milestones from the jobs' time-stamped logs, in seconds from `started_at`."""
    found: dict[str, float] = {}
    for milestone, (name, text) in JOB_LOGS.items():
        at = _first_stamp(data_dir / name, text)
        if at is not None:
            found[milestone] = at - started_at
    for flink_log in sorted((data_dir / MINI_CLUSTER[0]).glob("*.log")):
        at = _first_stamp(flink_log, MINI_CLUSTER[1])
        if at is not None:
            found["join: mini-cluster starting"] = at - started_at
    return found


def _first_stamp(path: Path, text: str) -> float | None:
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        stamp = STAMP.match(line)
        if stamp and text in line:
            moment = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
            return moment.timestamp()
    return None


def _verify(env: dict[str, str]) -> bool:
    subprocess.run([ADSTREAM, "up"], env=env, check=True, capture_output=True)
    try:
        result = subprocess.run([ADSTREAM, "verify"], env=env, capture_output=True, text=True)
    finally:
        subprocess.run([ADSTREAM, "down"], env=env, check=False, capture_output=True)
    log(result.stdout.strip().splitlines()[-1] if result.stdout else result.stderr.strip())
    return result.returncode == 0


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each milestone and headline figure as median, min and max over the runs."""
    names = [name for name in ORDER if all(name in run["milestones_s"] for run in runs)]
    return {
        "milestones_s": {name: spread([r["milestones_s"][name] for r in runs]) for name in names},
        "time_to_first_row_s": spread([r["time_to_first_row_s"] for r in runs]),
        "time_to_finish_s": spread([r["time_to_finish_s"] for r in runs]),
        "bounded_restarts": sum(r["bounded_restart"] for r in runs),
        "all_verified": all(r["verified"] for r in runs),
    }


def render(results: dict[str, Any]) -> str:
    """The Markdown table docs/benchmarks.md shows."""
    summary = results["summary"]

    def cell(figure: dict[str, float]) -> str:
        return f"{figure['median']:.1f} ({figure['min']:.1f}-{figure['max']:.1f})"

    rows = [
        f"`adstream run --events {results['events']:,} --rate {results['rate']:,}`, "
        f"{len(results['runs'])} runs, medians (min-max), seconds from the command's start:",
        "",
        "| milestone | s |",
        "|---|---|",
        *(f"| {name} | {cell(f)} |" for name, f in summary["milestones_s"].items()),
        "",
        f"Time to first row (generator start to first enriched row): "
        f"{cell(summary['time_to_first_row_s'])} s. Time to finish (generator end to the "
        f"printed accounting): {cell(summary['time_to_finish_s'])} s. Bounded restarts: "
        f"{summary['bounded_restarts']}. verify: "
        f"{'OK in every run' if summary['all_verified'] else 'FAILED'}.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=90_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs = []
    with tempfile.TemporaryDirectory(prefix="adstream-timeline-") as work:
        for number in range(1, args.runs + 1):
            log(f"run {number}/{args.runs}")
            runs.append(timed_run(args.events, args.rate, Path(work) / f"run-{number}"))
    results = {
        "benchmark": "run_timeline",
        "measured_at": measured_at,
        "events": args.events,
        "rate": args.rate,
        "cpus": os.cpu_count(),
        "runs": runs,
        "summary": summarize(runs),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))


if __name__ == "__main__":
    main()
