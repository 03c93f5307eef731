"""Benchmark: where a bounded join's start goes, its plan compiled against its plan cached.

Starts a private broker (own data dir and ports), preloads 1,000 events with every fault knob on
(fixed seed), then runs `adstream join --bounded` `--runs` times in each of two ways, the two
alternating (so the machine's drift does not decide), each run from a fresh data directory:

- planned: the cached plan deleted first, so the job registers its views and compiles its plan,
  as every start did before the cache (plus the writing of the plan, a fraction of a second);
- cached: the plan the run before stored is loaded (adstream.join.plans).

From each run's own log (`<data>/flink/join.log`, seconds from the job process's start): the
Java gateway up, the statements registered, the plan ready, the job submitted, the first
checkpoint complete (unless the job finished first); and the wall time of the whole command
(JVM start to exit, the drain and final savepoint included). Medians; results in
bench/results/join_start.json.

    .venv/bin/python bench/join_start.py [--runs 3]
"""

import argparse
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from adstream.join.launcher import join_log, run_join
from adstream.settings import Settings
from harness import FAULTS, Dataset, free_ports, preload, private_broker

RESULTS: Final = Path(__file__).parent / "results" / "join_start.json"
EVENTS: Final = 1_000
MILESTONES: Final = {
    "Java gateway up": r"Java gateway up in ([\d.]+) s",
    "statements registered": r"statements registered in ([\d.]+) s",
    "plan ready": r"plan (?:loaded|compiled) in ([\d.]+) s",
    "job submitted": r"planned and submitted in ([\d.]+) s",
    "first checkpoint": r"first checkpoint complete ([\d.]+) s after start",
}
"""Seconds from the job process's start, off its log (the plan's own seconds are added to the
statements' below, as the plan is timed from there)."""
PLAN_FILE: Final = re.compile(r"plan (?:loaded|compiled) in [\d.]+ s \((join-\w+\.json)\)")


def milestones(log: str) -> dict[str, float]:
    found = {name: float(m[1]) for name, p in MILESTONES.items() if (m := re.search(p, log))}
    found["plan ready"] += found["statements registered"]
    return found


def one_run(settings: Settings) -> tuple[dict[str, float], str]:
    """The milestones of one bounded join, its wall time, and the plan file it used."""
    began = time.perf_counter()
    run_join(settings, bounded=True)
    wall = time.perf_counter() - began
    log = join_log(settings).read_text(errors="replace")
    plan = PLAN_FILE.search(log)
    if plan is None:
        raise SystemExit(f"the join logged no plan: {join_log(settings)}")
    return milestones(log) | {"whole command": wall}, plan[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="adstream-bench-") as root,
        private_broker(Path(root) / "broker", *free_ports(2)) as settings,
    ):
        preload(settings, Dataset(EVENTS, seed=7))
        # A first run, not measured: it names the plan's file (and warms the disk's cache).
        _, name = one_run(settings.model_copy(update={"data_dir": Path(root) / "warm-up"}))
        plan_file = settings.lib_dir / "flink" / "plans" / name
        runs: dict[str, list[dict[str, float]]] = {"planned": [], "cached": []}
        for number in range(args.runs * 2):
            way = ("planned", "cached")[number % 2]
            if way == "planned":
                plan_file.unlink(missing_ok=True)
            measured, _ = one_run(
                settings.model_copy(update={"data_dir": Path(root) / str(number)})
            )
            runs[way].append(measured)
            shown = ", ".join(f"{k} {v:.1f}" for k, v in measured.items())
            print(f"{way} {len(runs[way])}: {shown}", flush=True)

    medians = {
        way: {
            name: statistics.median(times)
            for name in [*MILESTONES, "whole command"]
            if (times := [r[name] for r in measured if name in r])
        }
        for way, measured in runs.items()
    }
    result = {
        "benchmark": "join_start",
        "events": EVENTS,
        "runs": args.runs,
        "fault_fractions": FAULTS,
        "medians_s": medians,
        "runs_s": runs,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| milestone, s from the job's start | planned | cached |")
    print("|---|---|---|")
    for name in [*MILESTONES, "whole command"]:
        cells = [f"{medians[way][name]:.1f}" if name in medians[way] else "–" for way in runs]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
