"""Fault matrix: `adstream run` while its broker, join or enrichment is killed, paused or starved.

For each fault, one `adstream run --events N --rate R` in a data directory and ports of its own
(the run starts, and so supervises, its own broker); while the generator runs, the fault is
injected `--times` times, spread over the generation:

- `join`, `enrichment`, `broker`: kill -9; the join once as a checkpoint starts (its trigger
  predicted from the latest one's), the enrichment once while a micro-batch writes its tables (new
  data files in the warehouse within the last half second);
- `pause`: the join's process group stopped (SIGSTOP) for longer than its Kafka transaction
  timeout (shortened for this run), then continued: the broker has aborted its open
  transactions meanwhile; the first as a checkpoint starts; its run has 3 times `--events`;
- `disk`: the data directory is a small file system of its own (a loop mount; root only),
  filled to the last block for a while, then freed;
- `finish`: kill -9 while the run finishes, after the generator: the join as it drains (each
  time it is asked to, but the last), then the enrichment as it writes what remains.

After the run: `adstream up`, `adstream verify` (its table of expected and stored counts per
outcome gives the records lost and duplicated), `adstream down`. Seconds to recover: from the
end of each fault (the kill, the continue, the freeing) until what was killed runs again (the
job's log says it runs, the broker answers) or, after a pause or a full disk, the tables grow.

Results: bench/results/fault_matrix.json and a Markdown table on stdout (docs/reliability.md).

    .venv/bin/python bench/fault_matrix.py [--events 200000] [--rate 1000] [--times 3]
        [--faults join enrichment broker pause disk finish]
"""

import argparse
import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from adstream.services.process import LogTail, stop
from adstream.settings import Settings
from harness import Instance

RESULTS: Final = Path(__file__).parent / "results" / "fault_matrix.json"
ADSTREAM: Final = str(Path(sys.executable).with_name("adstream"))
TRANSACTION_TIMEOUT_S: Final = 20
PAUSE_S: Final = 30
PAUSE_EVENTS_FACTOR: Final = 3
"""The pause's campaign runs this many times `--events`: each pause holds the join for
`PAUSE_S` and the recovery from a refused checkpoint starts a new process (about 45 s), so
three of them do not fit in 200 s of generation."""
DISK_FULL_S: Final = 10
DISK_BYTES: Final = 4 << 30
FAULTS: Final = {
    "join": "kill -9 join",
    "enrichment": "kill -9 enrichment",
    "broker": "kill -9 broker",
    "pause": f"SIGSTOP join {PAUSE_S} s (transactions time out after {TRANSACTION_TIMEOUT_S} s)",
    "disk": f"data disk full {DISK_FULL_S} s",
    "finish": "kill -9 join or enrichment as the run finishes",
}
DRAINING: Final = "finishing: the join drains and stops with a savepoint"
ENRICHMENT_FINISHING: Final = "finishing: the enrichment writes what remains"
PRODUCED: Final = re.compile(r"produced ([\d,]+) events")
TABLE_ROWS: Final = re.compile(r"tables: ([^;]*);")
INPUT_LINE: Final = re.compile(r"input: ([\d,]+) impressions, ([\d,]+) clicks")
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

    def tail(self) -> str:
        """Its last lines that are not progress lines, in one."""
        said = [line.strip() for line in self.lines if not PRODUCED.search(line)]
        return " | ".join(said[-4:])

    def rows(self) -> int:
        """Rows in the tables, from the newest progress line."""
        found = (TABLE_ROWS.search(line) for line in reversed(self.lines))
        shown = next((m[1] for m in found if m), "")
        return sum(int(part.split()[-1].replace(",", "")) for part in shown.split(", ") if part)


def reached(run: Run, events: int) -> bool:
    """Whether `events` are produced; an error if the generator is done first."""
    if any("generator done" in line for line in run.lines) or run.process.poll() is not None:
        raise SystemExit("the generator ended before every fault was injected: raise --events")
    return run.produced() >= events


def recovered_in(run: Run, recovered: Callable[[], bool]) -> bool:
    """`recovered()`; an error naming the run's last lines if it has ended instead."""
    if run.process.poll() is not None:
        raise SystemExit(f"the run ended (exit {run.process.returncode}): {run.tail()}")
    return recovered()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def job_group(settings: Settings, module: str) -> int:
    """The process group of this instance's job `module` (the job process and its JVM), once
    it runs (the run may be restarting it)."""
    home = str(settings.data_dir.resolve())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if module in cmdline and any(home in part for part in cmdline):
                return os.getpgid(process.pid)
        time.sleep(0.5)
    raise SystemExit(f"no {module} process of {home} for 600 s")


def checkpoint_due(settings: Settings) -> bool:
    """Wait until just after the join's next checkpoint is due; False before its first.

    Flink's REST API caches its checkpoint counts for seconds, and a checkpoint takes
    milliseconds here, so an in-progress count is seldom seen: the next trigger is predicted
    from the latest checkpoint's trigger time and the interval instead (10 ms after it).
    """
    rest = local_rest(settings)
    job = rest.running_job()
    if job is None:
        return False
    latest = rest.rest("GET", f"/jobs/{job}/checkpoints")["latest"]["completed"]
    if latest is None:
        return False
    interval = settings.checkpoint_interval.total_seconds()
    last = latest["trigger_timestamp"] / 1000
    due = last + interval * (math.floor((time.time() - last) / interval) + 1)
    time.sleep(max(0.0, due - time.time() + 0.01))
    return True


def batch_writing(settings: Settings) -> bool:
    """Whether a data file appeared in the warehouse within the last half second."""
    warehouse = settings.data_dir / "lakehouse" / "warehouse"
    newest = max((p.stat().st_mtime for p in warehouse.rglob("*.parquet")), default=0.0)
    return time.time() - newest < 0.5


def inject(fault: str, settings: Settings, run: Run, precise: bool) -> Callable[[], bool]:
    """Inject `fault` (at a telling moment when `precise`) and end it; return 'recovered'."""
    if fault == "broker":
        pid = KafkaBroker(settings).process.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return lambda: broker_reachable(settings, timeout=1.0)
    if fault == "disk":
        filler = fill(settings.data_dir)
        try:
            time.sleep(DISK_FULL_S)
        finally:
            filler.unlink()
        return tables_grow(run)
    if fault == "pause":
        if precise:
            wait_for(lambda: checkpoint_due(settings), 120, "a checkpoint to pause in")
        group = job_group(settings, "adstream.join.job")
        os.killpg(group, signal.SIGSTOP)
        time.sleep(PAUSE_S)
        os.killpg(group, signal.SIGCONT)
        return tables_grow(run)
    return kill(fault, settings, precise)


def kill(job: str, settings: Settings, precise: bool) -> Callable[[], bool]:
    """kill -9 the `job` (at a telling moment when `precise`); return 'it runs again'."""
    module, log_file, marker, moment = {
        "join": (
            "adstream.join.job",
            join_log(settings),
            join_params.logged(join_params.RUNNING),
            checkpoint_due,
        ),
        "enrichment": (
            "adstream.enrich.job",
            enrich_log(settings),
            enrich_params.logged("query "),  # its query started: it reads and writes again
            batch_writing,
        ),
    }[job]
    if precise:
        wait_for(lambda: moment(settings), 120, f"the moment to kill the {job}")
    group = job_group(settings, module)
    output = LogTail(log_file)
    os.killpg(group, signal.SIGKILL)
    return lambda: output.contains(marker)


def inject_finishing(settings: Settings, run: Run, *, last: bool) -> Callable[[], bool]:
    """The finish's faults: kill -9 the join as soon as it is asked to drain (once more than
    before), or, `last`, the enrichment as soon as it is asked to write what remains."""
    if last:
        wait_for(lambda: said(run, ENRICHMENT_FINISHING) > 0, 1800, "the enrichment's finish")
        return kill("enrichment", settings, precise=False)
    drains = said(run, DRAINING)
    wait_for(lambda: said(run, DRAINING) > drains, 1800, "the join asked to drain")
    return kill("join", settings, precise=False)


def said(run: Run, text: str) -> int:
    """How many of the run's lines say `text`."""
    return sum(text in line for line in run.lines)


def tables_grow(run: Run) -> Callable[[], bool]:
    """'The tables have grown since now', from the run's progress lines."""
    rows = run.rows()
    return lambda: run.rows() > rows


def fill(directory: Path) -> Path:
    """A file taking every free block of `directory`'s file system (to be deleted to free it).

    The others write meanwhile, so it grows in ever smaller steps until none fits.
    """
    filler = directory / "disk-filler"
    size = 0
    with filler.open("wb") as output:
        for step in (64 << 20, 1 << 20, 4 << 10):
            while True:
                try:
                    os.posix_fallocate(output.fileno(), size, step)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break
                size += step
    return filler


@contextmanager
def data_directory(root: Path, small_disk: bool) -> Iterator[Path]:
    """`root/data`; for the disk fault, the mount point of a small ext4 file system of its own."""
    data = root / "data"
    if not small_disk:
        yield data
        return
    if os.geteuid() != 0:
        raise SystemExit("the disk fault mounts a file system (a loop device): run it as root")
    image = root / "disk.img"
    with image.open("wb") as sparse:
        sparse.truncate(DISK_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image)], check=True)
    data.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(data)], check=True)
    try:
        yield data
    finally:
        subprocess.run(["umount", "--lazy", str(data)], check=False)


def input_records(report: str) -> int:
    """The input records verify found in the topics (its first line)."""
    found = INPUT_LINE.search(report)
    if found is None:
        raise SystemExit(f"verify named no input: {report}")
    return int(found[1].replace(",", "")) + int(found[2].replace(",", ""))


def verify(env: dict[str, str]) -> tuple[dict[str, tuple[int, int]], str]:
    """`adstream verify`'s expected and stored count per outcome (the broker started for it),
    and its report."""
    subprocess.run([ADSTREAM, "up"], env=env, check=True, capture_output=True)
    try:
        result = subprocess.run([ADSTREAM, "verify"], env=env, capture_output=True, text=True)
    finally:
        subprocess.run([ADSTREAM, "down"], env=env, capture_output=True)
    rows = {}
    for line in result.stdout.splitlines()[2:-2]:
        match = VERIFY_ROW.match(line.strip())
        if match and not match[1].endswith("_metrics_minute rows"):  # the tables of sums
            rows[match[1]] = (int(match[2].replace(",", "")), int(match[3].replace(",", "")))
    if not rows:
        raise SystemExit(f"verify printed no counts: {result.stdout}{result.stderr}")
    return rows | {"verify OK": (int(result.returncode == 0), 1)}, result.stdout + result.stderr


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
    run_error: str | None
    """The run's last line when it failed (it still is verified)."""
    inputs_missing: int
    """Events the generator produced (the broker acknowledged) that the input topics lack."""
    verify_report: str
    events: int
    """The run's `--events`."""


def campaign(fault: str, events: int, rate: int, times: int) -> Outcome:
    """One run with `fault` injected `times` times; what verify says after it."""
    with (
        tempfile.TemporaryDirectory(prefix="adstream-faults-") as root,
        data_directory(Path(root), small_disk=fault == "disk") as data_dir,
    ):
        instance = Instance.fresh(data_dir)
        env, settings = instance.env(), instance.settings()
        if fault == "pause":
            env["ADSTREAM_JOIN_TRANSACTION_TIMEOUT"] = str(TRANSACTION_TIMEOUT_S)
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
        try:
            recoveries = []
            for number in range(times):
                if fault == "finish":
                    recovered = inject_finishing(settings, run, last=number == times - 1)
                else:
                    due = (number + 1) * events // (times + 1)
                    wait_for(partial(reached, run, due), 1800, f"{due:,} events produced")
                    recovered = inject(fault, settings, run, precise=number == 0)
                began = time.monotonic()
                wait_for(
                    partial(recovered_in, run, recovered),
                    600,
                    f"the run to recover from {FAULTS[fault]}",
                )
                recoveries.append(time.monotonic() - began)
                print(
                    f"  {FAULTS[fault]} ({number + 1}/{times}), recovered after "
                    f"{recoveries[-1]:.1f} s",
                    flush=True,
                )
            stdout, _ = run.process.communicate(timeout=3600)
            run_error = run.lines[-1].strip() if run.process.returncode != 0 and run.lines else None
        except BaseException:  # stopped or failed: Ctrl-C, as a user would, so it cleans up
            stop([run.process], name="adstream run", signum=signal.SIGINT)
            raise
        counts, report = verify(env)
    lost = sum(max(0, expected - stored) for expected, stored in counts.values())
    duplicated = sum(max(0, stored - expected) for expected, stored in counts.values())
    restarts = [line.strip() for line in run.lines if "restarting it in" in line]
    return Outcome(
        fault=FAULTS[fault],
        injected=times,
        restarts_reported=len(restarts),
        records_lost=lost,
        records_duplicated=duplicated,
        verified=counts["verify OK"][0] == 1,
        seconds_to_recover=recoveries,
        accounting=stdout,
        restart_lines=restarts,
        run_error=run_error,
        inputs_missing=events - input_records(report),
        verify_report=report,
        events=events,
    )


def save(args: argparse.Namespace, results: list[Outcome], failed: dict[str, str]) -> None:
    """Write this run's campaigns over the same faults' earlier ones; keep the other faults'."""
    RESULTS.parent.mkdir(exist_ok=True)
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    run = {
        "rate": args.rate,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    measured = {result.fault: asdict(result) | run for result in results}
    kept = [r for r in earlier.get("results", []) if r["fault"] not in measured | failed]
    document = {
        "benchmark": "fault_matrix",
        "results": kept + list(measured.values()),
        "campaigns_failed": {
            fault: reason
            for fault, reason in (earlier.get("campaigns_failed", {}) | failed).items()
            if fault not in measured
        },
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--times", type=int, default=3)
    parser.add_argument("--faults", nargs="+", choices=list(FAULTS), default=list(FAULTS))
    args = parser.parse_args()

    results: list[Outcome] = []
    failed: dict[str, str] = {}
    for fault in args.faults:
        events = args.events * (PAUSE_EVENTS_FACTOR if fault == "pause" else 1)
        print(f"{FAULTS[fault]}, {args.times} times, {events:,} events", flush=True)
        try:
            results.append(campaign(fault, events, args.rate, args.times))
        except (SystemExit, Exception) as error:  # this one could not finish: the others run
            failed[FAULTS[fault]] = str(error)
            print(f"  failed: {error}", flush=True)
        save(args, results, failed)  # after each: a later campaign that fails keeps these
    print(
        "| fault | injected | restarts | input lost | outcomes lost | outcomes duplicated "
        "| verify | seconds to recover |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        seconds = ", ".join(f"{s:.1f}" for s in r.seconds_to_recover)
        print(
            f"| {r.fault} | {r.injected} | {r.restarts_reported} | {r.inputs_missing} "
            f"| {r.records_lost} "
            f"| {r.records_duplicated} | {'OK' if r.verified else 'FAILED'} | {seconds} |"
        )
    for fault, reason in failed.items():
        print(f"| {fault} | campaign failed: {reason} ||||||| ")


if __name__ == "__main__":
    main()
