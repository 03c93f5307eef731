"""Fault matrix: `adstream run` while its broker, join or enrichment is killed (-9), verified.

For each fault, one `adstream run --events N --rate R` in a data directory and ports of its own
(the run starts, and so supervises, its own broker); while the generator runs, the fault is
injected `--times` times, spread over the generation: the join once while a checkpoint is in
progress (Flink's REST API says so), the enrichment once while a micro-batch writes its tables
(new data files in the warehouse within the last half second), the rest at the moments the
produced count reaches its share. After the run: `adstream up`, `adstream verify` (its table of
expected and stored counts per outcome gives the records lost and duplicated), `adstream down`.
Seconds to recover: from each injection until what was killed runs again (the job's log says it
runs, or the broker answers).

Results: bench/results/fault_matrix.json and a Markdown table on stdout (docs/reliability.md).

    .venv/bin/python bench/fault_matrix.py [--events 200000] [--rate 1000] [--times 3]
        [--faults join enrichment broker]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Final

import psutil

from adstream.enrich import params as enrich_params
from adstream.enrich.launcher import enrich_log
from adstream.join import params as join_params
from adstream.join.launcher import join_log, local_rest
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import broker_reachable
from adstream.services.process import LogTail
from adstream.settings import Settings
from harness import Instance

RESULTS: Final = Path(__file__).parent / "results" / "fault_matrix.json"
ADSTREAM: Final = str(Path(sys.executable).with_name("adstream"))
FAULTS: Final = ("join", "enrichment", "broker")
PRODUCED: Final = re.compile(r"produced ([\d,]+) events")
VERIFY_ROW: Final = re.compile(r"^(\S.*?)\s+([\d,]+)\s+([\d,]+)(\s+<--.*)?$")


@dataclass
class Run:
    """An `adstream run` in the background, its stderr lines collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def produced(self) -> int:
        """Events produced so far, from the newest progress line."""
        found = (PRODUCED.search(line) for line in reversed(self.lines))
        return next((int(m[1].replace(",", "")) for m in found if m), 0)


def reached(run: Run, events: int) -> bool:
    """Whether `events` are produced; an error if the generator is done first."""
    if any("generator done" in line for line in run.lines[-5:]) or run.process.poll() is not None:
        raise SystemExit("the generator ended before every fault was injected: raise --events")
    return run.produced() >= events


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def job_group(settings: Settings, module: str) -> int:
    """The process group of this instance's job `module` (the job process and its JVM)."""
    home = str(settings.data_dir.resolve())
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if module in cmdline and any(home in part for part in cmdline):
            return os.getpgid(process.pid)
    raise SystemExit(f"no {module} process of {home}")


def checkpoint_in_progress(settings: Settings) -> bool:
    rest = local_rest(settings)
    job = rest.running_job()
    if job is None:
        return False
    counts = rest.rest("GET", f"/jobs/{job}/checkpoints")["counts"]
    return bool(counts["in_progress"])


def batch_writing(settings: Settings) -> bool:
    """Whether a data file appeared in the warehouse within the last half second."""
    warehouse = settings.data_dir / "lakehouse" / "warehouse"
    newest = max((p.stat().st_mtime for p in warehouse.rglob("*.parquet")), default=0.0)
    return time.time() - newest < 0.5


def inject(fault: str, settings: Settings, precise: bool) -> Callable[[], bool]:
    """Kill -9 what `fault` names (at a telling moment when `precise`); return 'runs again'."""
    if fault == "broker":
        pid = KafkaBroker(settings).process.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return lambda: broker_reachable(settings, timeout=1.0)
    module, log_file, marker, moment = {
        "join": (
            "adstream.join.job",
            join_log(settings),
            join_params.logged(join_params.RUNNING),
            checkpoint_in_progress,
        ),
        "enrichment": (
            "adstream.enrich.job",
            enrich_log(settings),
            enrich_params.logged("query "),  # its query started: it reads and writes again
            batch_writing,
        ),
    }[fault]
    if precise:
        wait_for(lambda: moment(settings), 120, f"the moment to kill the {fault}")
    group = job_group(settings, module)
    output = LogTail(log_file)
    os.killpg(group, signal.SIGKILL)
    return lambda: output.contains(marker)


def verify(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """`adstream verify`'s expected and stored count per outcome (the broker started for it)."""
    subprocess.run([ADSTREAM, "up"], env=env, check=True, capture_output=True)
    try:
        result = subprocess.run([ADSTREAM, "verify"], env=env, capture_output=True, text=True)
    finally:
        subprocess.run([ADSTREAM, "down"], env=env, capture_output=True)
    rows = {}
    for line in result.stdout.splitlines()[2:-2]:
        match = VERIFY_ROW.match(line.strip())
        if match and not match[1].startswith("campaign_metrics_minute"):
            rows[match[1]] = (int(match[2].replace(",", "")), int(match[3].replace(",", "")))
    if not rows:
        raise SystemExit(f"verify printed no counts: {result.stdout}{result.stderr}")
    return rows | {"verify OK": (int(result.returncode == 0), 1)}


@dataclass(frozen=True)
class Outcome:
    """One fault's campaign: how often it was injected and what verify found after it."""

    fault: str
    injected: int
    restarts_reported: int
    records_lost: int
    records_duplicated: int
    verified: bool
    seconds_to_recover: list[float]
    accounting: str
    restart_lines: list[str]


def campaign(fault: str, events: int, rate: int, times: int) -> Outcome:
    """One run with `fault` injected `times` times; what verify says after it."""
    with tempfile.TemporaryDirectory(prefix="adstream-faults-") as root:
        instance = Instance.fresh(Path(root) / "data")
        env, settings = instance.env(), instance.settings()
        run = Run(
            subprocess.Popen(
                [ADSTREAM, "run", "--events", str(events), "--rate", str(rate)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        threading.Thread(target=run.read, daemon=True).start()
        recoveries = []
        for number in range(times):
            due = (number + 1) * events // (times + 1)
            wait_for(partial(reached, run, due), 1800, f"{due:,} events produced")
            began = time.monotonic()
            runs_again = inject(fault, settings, precise=number == 0)
            wait_for(runs_again, 600, f"the {fault} to run again")
            recoveries.append(time.monotonic() - began)
            print(
                f"  {fault} killed ({number + 1}/{times}), running again after "
                f"{recoveries[-1]:.1f} s",
                flush=True,
            )
        stdout, _ = run.process.communicate(timeout=3600)
        if run.process.returncode != 0:
            raise SystemExit(f"adstream run failed: {''.join(run.lines[-5:])}")
        counts = verify(env)
    lost = sum(max(0, expected - stored) for expected, stored in counts.values())
    duplicated = sum(max(0, stored - expected) for expected, stored in counts.values())
    restarts = [line.strip() for line in run.lines if "restarting it in" in line]
    return Outcome(
        fault=f"kill -9 {fault}",
        injected=times,
        restarts_reported=len(restarts),
        records_lost=lost,
        records_duplicated=duplicated,
        verified=counts["verify OK"][0] == 1,
        seconds_to_recover=recoveries,
        accounting=stdout,
        restart_lines=restarts,
    )


def save(args: argparse.Namespace, results: list[Outcome]) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "benchmark": "fault_matrix",
        "events": args.events,
        "rate": args.rate,
        "results": [asdict(result) for result in results],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    args = parser.parse_args()

    results: list[Outcome] = []
    for fault in args.faults:
        print(f"kill -9 {fault}, {args.times} times, {args.events:,} events", flush=True)
        results.append(campaign(fault, args.events, args.rate, args.times))
        save(args, results)  # after each: a later campaign that fails keeps the earlier ones
    print("| fault | injected | restarts | lost | duplicated | verify | seconds to recover |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        seconds = ", ".join(f"{s:.1f}" for s in r.seconds_to_recover)
        print(
            f"| {r.fault} | {r.injected} | {r.restarts_reported} | {r.records_lost} "
            f"| {r.records_duplicated} | {'OK' if r.verified else 'FAILED'} | {seconds} |"
        )


if __name__ == "__main__":
    main()
