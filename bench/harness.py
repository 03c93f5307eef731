"""The comparison harness (issue 6): one private broker, one preloaded dataset, every contender
measured the same way and checked by the same verification.

A contender is a command that processes everything in `ad_impressions` and `ad_clicks` and
exits when its result is committed. `measure` runs it as a child of this process and reports
its wall time, CPU seconds (user + system of every process it started: this process is made a
child subreaper, so even processes their parents did not wait for are reaped here and counted)
and peak memory (the largest sum of resident set sizes over its processes, sampled every
0.2 s). `check` compares its attributed clicks with SPEC section 3 recomputed in plain Python
(`adstream.events.reference`) for the contender's attribution window.
"""

import ctypes
import os
import resource
import signal
import socket
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import psutil
from confluent_kafka.admin import NewTopic

from adstream.events.outcomes import ALL_TOPICS, INPUT_TOPICS
from adstream.events.reference import SourceRecord
from adstream.events.timestamps import parse_event_time
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.lakehouse.catalog import open_catalog
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import admin_client
from adstream.services.process import spawn, stop
from adstream.settings import Settings, load_settings
from adstream.verify import click_revenue, expected_outcomes

FAULTS: Final = {
    "out_of_order_fraction": 0.05,
    "late_fraction": 0.01,
    "duplicate_impression_fraction": 0.03,
    "duplicate_click_fraction": 0.05,
    "orphan_click_fraction": 0.05,
    "invalid_fraction": 0.02,
}
"""Fault fractions of every benchmark dataset (the same as the join benchmark's)."""

SAMPLE_INTERVAL_S: Final = 0.2
_PR_SET_CHILD_SUBREAPER: Final = 36


@dataclass(frozen=True)
class Dataset:
    """A generated input: its size, seed, first event time and fault fractions."""

    events: int
    seed: int = 42
    start_time: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    faults: dict[str, float] = field(default_factory=lambda: dict(FAULTS))

    def describe(self) -> dict[str, Any]:
        """What the results file says about it."""
        return {
            "events": self.events,
            "seed": self.seed,
            "start_time": self.start_time.isoformat(),
            **self.faults,
        }


@dataclass(frozen=True)
class Usage:
    """What one run of a contender took."""

    wall_s: float
    cpu_s: float
    peak_rss_bytes: int


@dataclass(frozen=True)
class Verdict:
    """A contender's attributed clicks against the recomputation, row by row."""

    expected_rows: int
    produced_rows: int
    matching: int
    missing: int  # expected rows it did not produce
    extra: int  # rows it produced that are not expected (or produced more than once)
    expected_revenue: Decimal
    produced_revenue: Decimal

    @property
    def correct(self) -> bool:
        """The same rows, each once."""
        return self.missing == 0 and self.extra == 0


@contextmanager
def private_broker(data_dir: Path, port: int, controller_port: int) -> Iterator[Settings]:
    """A Kafka broker of our own (own data dir and ports), stopped on exit."""
    settings = load_settings(
        data_dir=data_dir, kafka_port=port, kafka_controller_port=controller_port
    )
    broker = KafkaBroker(settings)
    broker.start()
    try:
        yield settings
    finally:
        broker.stop()


def preload(settings: Settings, dataset: Dataset, partitions: int = 2) -> int:
    """Empty every adstream topic, then generate the dataset into the input topics."""
    clear_topics(settings, ALL_TOPICS)
    admin = admin_client(settings)
    new = [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in INPUT_TOPICS]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()
    generated = settings.model_copy(
        update={
            "seed": dataset.seed,
            "rate": 0.0,
            "events": dataset.events,
            "start_time": dataset.start_time,
            **dataset.faults,
        }
    )
    report = generate(generated, KafkaSink(generated, INPUT_TOPICS))
    return report.events


def clear_topics(settings: Settings, keep_out: Iterable[str] = ()) -> None:
    """Delete every topic but the input topics (and `keep_out` too), waiting until gone."""
    admin = admin_client(settings)
    keep = set(INPUT_TOPICS) - set(keep_out)
    doomed = [t for t in admin.list_topics(timeout=30).topics if t not in keep]
    doomed = [t for t in doomed if not t.startswith("__")]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, operation_timeout=60).values():
        future.result()
    deadline = time.monotonic() + 120
    while set(doomed) & set(admin.list_topics(timeout=30).topics):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics not deleted: {doomed}")
        time.sleep(0.5)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (distinct: all bound at once, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class Instance:
    """A private adstream instance for one `adstream run`: its data directory and ports."""

    data_dir: Path
    kafka_port: int
    controller_port: int
    dashboard_port: int

    @classmethod
    def fresh(cls, data_dir: Path) -> "Instance":
        """`data_dir` with ports nothing listens on."""
        return cls(data_dir, *free_ports(3))

    def env(self) -> dict[str, str]:
        """The environment a user would set for it (none of the caller's ADSTREAM_* settings)."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")},
            "ADSTREAM_DATA_DIR": str(self.data_dir),
            "ADSTREAM_KAFKA_PORT": str(self.kafka_port),
            "ADSTREAM_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "ADSTREAM_DASHBOARD_PORT": str(self.dashboard_port),
        }

    def settings(self) -> Settings:
        """Its settings, for reading its topics and tables from here."""
        return load_settings(
            data_dir=self.data_dir,
            kafka_port=self.kafka_port,
            kafka_controller_port=self.controller_port,
        )


def become_subreaper() -> None:
    """Orphaned descendants are reparented to this process (Linux), so `measure` counts them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _reap_orphans() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _await_descendants(me: psutil.Process, excluded: set[int], timeout_s: float = 60.0) -> None:
    """Reap every descendant but `excluded`, waiting for those still running: a process is in
    RUSAGE_CHILDREN only once reaped, and a JVM may end a moment after the process it served."""
    deadline = time.monotonic() + timeout_s
    while True:
        _reap_orphans()
        left = [p for p in me.children(recursive=True) if p.pid not in excluded]
        if not left or time.monotonic() > deadline:
            return
        time.sleep(SAMPLE_INTERVAL_S)


def _tree_rss(root: psutil.Process, excluded: set[int]) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        if process.pid in excluded:
            continue
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # it ended between listing and reading
    return total


def measure(
    argv: Sequence[str], env: dict[str, str], log: Path, broker_pids: set[int], timeout_s: float
) -> Usage:
    """Run a contender to its end; raise with its log's tail if it fails.

    Memory is sampled over all descendants of this process but the broker's (orphans come here
    too); CPU is the growth of this process's RUSAGE_CHILDREN (every reaped descendant).
    """
    _reap_orphans()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = psutil.Process()
    peak = 0
    began = time.perf_counter()
    log.write_bytes(b"")
    # Its own process group: stopping the benchmark stops every process the contender made.
    process = spawn(argv, log, env=env)
    try:
        while process.poll() is None:
            peak = max(peak, _tree_rss(me, broker_pids) - me.memory_info().rss)
            if time.perf_counter() - began > timeout_s:
                raise RuntimeError(f"{argv[0]} took longer than {timeout_s:.0f} s; see {log}")
            time.sleep(SAMPLE_INTERVAL_S)
    except BaseException:
        stop([process], name=argv[0], signum=signal.SIGKILL)
        raise
    wall = time.perf_counter() - began
    _await_descendants(me, broker_pids)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{' '.join(argv[:3])} failed ({process.returncode}): " + "\n".join(tail)
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Usage(wall, cpu, peak)


def broker_process_ids(settings: Settings) -> set[int]:
    """The broker's process and its descendants (left out of every contender's memory)."""
    pid = KafkaBroker(settings).process.pid()
    if pid is None:
        return set()
    root = psutil.Process(pid)
    return {root.pid, *(child.pid for child in root.children(recursive=True))}


Row = tuple[str, int, Decimal]
"""(impression_id, click time in epoch milliseconds, click_revenue): what `check` compares."""


def expected_rows(settings: Settings, records: list[SourceRecord], window: timedelta) -> list[Row]:
    """SPEC section 3 and click_revenue recomputed for attribution window `window`."""
    outcomes = expected_outcomes(
        settings.model_copy(update={"attribution_window": window}), records
    )
    return [
        (
            row["impression_id"],
            _ms(parse_event_time(row["click_time"])),
            click_revenue(row["click_price"], settings.revenue_multiplier),
        )
        for row in outcomes.joined
    ]


def _ms(value: int | None) -> int:
    if value is None:
        raise ValueError("the reference wrote a time it cannot read back")
    return value


def produced_rows(data_dir: Path, identifier: str) -> list[Row]:
    """A contender's table (impression_id, click_time, click_revenue), read with pyiceberg."""
    table = open_catalog(load_settings(data_dir=data_dir)).load_table(identifier)
    arrow = table.scan(selected_fields=("impression_id", "click_time", "click_revenue")).to_arrow()
    return [
        (row["impression_id"], int(row["click_time"].timestamp() * 1000), row["click_revenue"])
        for row in arrow.to_pylist()
    ]


def check(expected: Sequence[Row], produced: Sequence[Row]) -> Verdict:
    """Compare as multisets: a row produced twice is one matching and one extra."""
    want, got = Counter(expected), Counter(produced)
    matching = sum((want & got).values())
    return Verdict(
        expected_rows=len(expected),
        produced_rows=len(produced),
        matching=matching,
        missing=len(expected) - matching,
        extra=len(produced) - matching,
        expected_revenue=sum((row[2] for row in expected), Decimal(0)),
        produced_revenue=sum((row[2] for row in produced if row[2] is not None), Decimal(0)),
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` percentile, linearly interpolated between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max (the form of every reported figure)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratio(value: float, baseline: float) -> float | None:
    """`value` relative to adstream's (None when adstream's is zero)."""
    return value / baseline if baseline else None
