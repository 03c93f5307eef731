"""Benchmark: the join's state and memory over several dedup horizons, event time running fast.

An endless run's state must stop growing once it holds one dedup horizon of impression ids. To
see that without waiting hours, a private broker is preloaded with `--events` events (every
fault knob on) whose event time advances `--event-time-rate` events per second of event time,
starting hours in the past (so nothing is a future timestamp): with the defaults, 4,800,000
events span 40 minutes of event time, four horizons of `--dedup-horizon` 10 minutes. Then
`adstream join` runs endlessly over them, as a user starts it, reading at full speed: event time
runs many times faster than the wall clock. Every 2 s it samples

- how far it has read (the sources' offsets, so the event time reached);
- the size of its latest completed checkpoint: with the hashmap backend each checkpoint holds
  the whole keyed state;
- the Flink JVM's heap in use (its TaskManager's metric) and resident memory; every
  `LIVE_EVERY`-th sample also the heap right after a full collection (`jcmd <pid> GC.run`,
  then `GC.heap_info`): the live set.

When the join has read everything it is stopped (SIGTERM, as Ctrl-C). Reported per horizon
of event time: the largest checkpoint (with the changelog: the state plus the changes not yet
materialized), the largest live heap, the smallest heap sample and the largest resident memory.
Flat after the first horizon is the target (issue 15).
Results: bench/results/join_soak.json and a Markdown table on stdout.

    .venv/bin/python bench/join_soak.py [--events 4800000] [--event-time-rate 2000]
        [--dedup-horizon 600] [--attribution-window 120]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import psutil

from adstream.errors import AdstreamError
from adstream.events.outcomes import INPUT_TOPICS
from adstream.join.launcher import local_rest
from adstream.services.kafka_client import end_offsets
from adstream.services.process import stop
from adstream.settings import Settings
from harness import Dataset, free_ports, preload, private_broker

RESULTS: Final = Path(__file__).parent / "results" / "join_soak.json"
ADSTREAM: Final = str(Path(sys.executable).with_name("adstream"))
SAMPLE_S: Final = 2.0
LIVE_EVERY: Final = 8
"""Every this many samples the heap is read after a full collection: the live set."""


@dataclass(frozen=True)
class Sample:
    """One look at the running join."""

    wall_s: float
    read_share: float
    event_time_s: float
    checkpoint_bytes: int | None
    heap_used_bytes: int | None
    live_heap_bytes: int | None
    rss_bytes: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4_800_000)
    parser.add_argument("--event-time-rate", type=float, default=2_000.0)
    parser.add_argument("--dedup-horizon", type=float, default=600.0, help="seconds")
    parser.add_argument("--attribution-window", type=float, default=120.0, help="seconds")
    args = parser.parse_args()
    span_s = args.events / args.event_time_rate
    # Far enough back that the last event is still hours behind the clock.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=span_s + 6 * 3600)
    dataset = Dataset(events=args.events, seed=11, start_time=start)

    with tempfile.TemporaryDirectory(prefix="adstream-soak-") as work:
        port, controller = free_ports(2)
        with private_broker(Path(work) / "broker", port, controller) as broker:
            settings = broker.model_copy(update={"event_time_rate": args.event_time_rate})
            began = time.monotonic()
            preload(settings, dataset)
            print(
                f"preloaded {args.events:,} events in {time.monotonic() - began:.0f} s "
                f"({span_s / 60:.0f} min of event time)",
                flush=True,
            )
            samples = soak(settings, Path(work) / "join", args, span_s)

    horizons = per_horizon(samples, args.dedup_horizon)
    result = {
        "benchmark": "join_soak",
        "events": args.events,
        "event_time_rate": args.event_time_rate,
        "dedup_horizon_s": args.dedup_horizon,
        "attribution_window_s": args.attribution_window,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "horizons": horizons,
        "samples": [asdict(s) for s in samples],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(render(horizons))


def soak(
    settings: Settings, data_dir: Path, args: argparse.Namespace, span_s: float
) -> list[Sample]:
    """Run `adstream join` over the preloaded input, sampling it until it has read it all."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")},
        "ADSTREAM_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "ADSTREAM_DATA_DIR": str(data_dir),
        "ADSTREAM_DEDUP_HORIZON": str(args.dedup_horizon),
        "ADSTREAM_ATTRIBUTION_WINDOW": str(args.attribution_window),
    }
    ends = end_offsets(settings, INPUT_TOPICS)
    total = sum(ends.values())
    join_settings = settings.model_copy(update={"data_dir": data_dir})
    process = subprocess.Popen([ADSTREAM, "join"], env=env, stdin=subprocess.DEVNULL)
    began = time.monotonic()
    samples: list[Sample] = []
    try:
        while process.poll() is None:
            time.sleep(SAMPLE_S)
            sample = look(
                join_settings,
                process,
                ends,
                total,
                span_s,
                time.monotonic() - began,
                live=len(samples) % LIVE_EVERY == LIVE_EVERY - 1,
            )
            if sample is None:
                continue
            samples.append(sample)
            print(
                f"{sample.wall_s:6.0f} s: read {sample.read_share:6.1%}, event time "
                f"{sample.event_time_s / 60:5.1f} min, checkpoint "
                f"{mib(sample.checkpoint_bytes)} MiB, heap {mib(sample.heap_used_bytes)} MiB"
                + (
                    f" (live {mib(sample.live_heap_bytes)} MiB)"
                    if sample.live_heap_bytes is not None
                    else ""
                )
                + f", RSS {mib(sample.rss_bytes)} MiB",
                flush=True,
            )
            if sample.read_share >= 1.0 and sample.checkpoint_bytes is not None:
                break
        if process.poll() is not None:
            raise SystemExit(f"adstream join ended early (exit {process.returncode})")
    finally:
        stop([process], name="adstream join")  # SIGTERM, as Ctrl-C: it stops with a savepoint
    return samples


def look(
    settings: Settings,
    process: subprocess.Popen[bytes],
    ends: dict[tuple[str, int], int],
    total: int,
    span_s: float,
    wall_s: float,
    *,
    live: bool,
) -> Sample | None:
    """One sample of the running join; None while its REST API or job is not up."""
    jvm = largest(process.pid)
    try:
        rest = local_rest(settings)
        job_id = rest.running_job()
        if job_id is None:
            return None
        emitted = rest.source_offsets(job_id)
        checkpoints = rest.rest("GET", f"/jobs/{job_id}/checkpoints")
        heap = heap_used(rest)
        live_heap = None
        if live and jvm is not None:
            live_heap = live_heap_bytes(jvm.pid)
    except (AdstreamError, FileNotFoundError):
        return None
    read = sum(min(emitted.get(key, -1) + 1, end) for key, end in ends.items())
    completed = (checkpoints.get("latest") or {}).get("completed") or {}
    return Sample(
        wall_s=round(wall_s, 1),
        read_share=read / total,
        event_time_s=span_s * read / total,
        checkpoint_bytes=completed.get("state_size"),
        heap_used_bytes=heap,
        live_heap_bytes=live_heap,
        rss_bytes=jvm.memory_info().rss if jvm is not None else 0,
    )


def heap_used(rest: Any) -> int | None:
    """The heap in use of the mini-cluster's one TaskManager (its JVM is the job's)."""
    managers = rest.rest("GET", "/taskmanagers")["taskmanagers"]
    if not managers:
        return None
    path = f"/taskmanagers/{managers[0]['id']}/metrics?get=Status.JVM.Memory.Heap.Used"
    values = rest.rest("GET", path)
    return int(float(values[0]["value"])) if values else None


def live_heap_bytes(pid: int) -> int | None:
    """The heap in use right after a full collection (`jcmd`: `GC.run`, then `GC.heap_info`)."""
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, check=False)
    info = subprocess.run(
        ["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"heap\s+total \d+K, used (\d+)K", info)
    return int(found.group(1)) * 1024 if found else None


def largest(root: int) -> psutil.Process | None:
    """The process under `root` with the most resident memory (the Flink JVM)."""
    found: tuple[int, psutil.Process] | None = None
    for process in psutil.Process(root).children(recursive=True):
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        if found is None or rss > found[0]:
            found = (rss, process)
    return found[1] if found else None


def per_horizon(samples: list[Sample], horizon_s: float) -> list[dict[str, Any]]:
    """For each horizon of event time read: the largest checkpoint, least heap, largest RSS."""
    rows = []
    count = int(max(s.event_time_s for s in samples) // horizon_s) + 1
    for index in range(count):
        inside = [
            s for s in samples if index * horizon_s <= s.event_time_s < (index + 1) * horizon_s
        ]
        if not inside:
            continue
        checkpoints = [s.checkpoint_bytes for s in inside if s.checkpoint_bytes is not None]
        heaps = [s.heap_used_bytes for s in inside if s.heap_used_bytes is not None]
        lives = [s.live_heap_bytes for s in inside if s.live_heap_bytes is not None]
        rows.append(
            {
                "horizon": index + 1,
                "samples": len(inside),
                "wall_s": [inside[0].wall_s, inside[-1].wall_s],
                "checkpoint_max_bytes": max(checkpoints, default=None),
                "heap_min_bytes": min(heaps, default=None),
                "live_heap_max_bytes": max(lives, default=None),
                "rss_max_bytes": max(s.rss_bytes for s in inside),
            }
        )
    return rows


def mib(value: int | None) -> str:
    """Bytes as MiB, or a dash."""
    return "-" if value is None else f"{value / 2**20:,.0f}"


def render(horizons: list[dict[str, Any]]) -> str:
    """The per-horizon table, as docs/benchmarks.md shows it."""
    lines = [
        "| horizon of event time | wall s | largest checkpoint MiB | live heap MiB (largest) | "
        "least heap in use MiB | largest RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in horizons:
        lines.append(
            f"| {row['horizon']} | {row['wall_s'][0]:.0f}–{row['wall_s'][1]:.0f} | "
            f"{mib(row['checkpoint_max_bytes'])} | {mib(row['live_heap_max_bytes'])} | "
            f"{mib(row['heap_min_bytes'])} | "
            f"{mib(row['rss_max_bytes'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
