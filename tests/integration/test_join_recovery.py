"""Exactly-once through a crash: kill -9 the join mid-stream, restart, nothing lost or doubled.

The endless runs keep their state in RocksDB under a capped heap (the defaults, hashmap state on
an uncapped heap, are what every other join test runs, and the bounded finish here).
"""

import json
import os
import signal
import subprocess
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest

from adstream.errors import AdstreamError
from adstream.events.outcomes import INPUT_TOPICS, JOINED_TOPIC
from adstream.generator.runner import generate
from adstream.generator.sinks import KafkaSink
from adstream.join import launcher
from adstream.join.launcher import has_read_to, latest_checkpoint, local_rest
from adstream.platform import join_streams
from adstream.services.flink_rest import FlinkRest
from adstream.services.kafka_client import read_topic
from adstream.services.process import wait_until
from adstream.settings import Settings
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import instance_env
from tests.integration.test_join import at
from tests.join_harness import (
    assert_same_outputs,
    click,
    expected_outputs,
    impression,
    join_settings,
    produce,
    read_outputs,
    recreate_topics,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 1, tzinfo=UTC)
HEAP = "512m"
STATE = {"ADSTREAM_JOIN_STATE_BACKEND": "rocksdb", "ADSTREAM_FLINK_LOCAL_HEAP": HEAP}


def start_join(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`adstream join` (unbounded) in its own process group, as a user would run it."""
    # No source is ever called idle, so lateness cannot depend on how loaded the machine is.
    env = (
        instance_env(settings)
        | STATE
        | {
            "ADSTREAM_CHECKPOINT_INTERVAL": "1",
            "ADSTREAM_IDLE_TIMEOUT": "3600",
        }
    )
    with log.open("ab") as output:
        return subprocess.Popen(
            [ADSTREAM, "join"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=interruptible,
        )


def job_jvm(process: subprocess.Popen[bytes]) -> psutil.Process:
    """The one JVM in the job's process group (the mini-cluster)."""
    jvms = [
        p
        for p in psutil.process_iter(["name"])
        if p.info["name"] == "java" and _group(p.pid) == process.pid
    ]
    assert len(jvms) == 1, jvms
    return jvms[0]


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def alive(process: subprocess.Popen[bytes], log: Path) -> bool:
    """True while the job runs; a job that died fails the test with its last words."""
    if process.poll() is not None:
        pytest.fail(f"the join exited with {process.returncode}: {log.read_text()[-2000:]}")
    return True


def test_kill_minus_nine_then_restarts_lose_and_duplicate_nothing(
    kafka: Settings, tmp_path: Path
) -> None:
    settings = join_settings(
        kafka,
        tmp_path / "recovery",
        seed=12,
        rate=0.0,
        events=150_000,
        start_time=START,
        out_of_order_fraction=0.05,
        late_fraction=0.005,
        duplicate_impression_fraction=0.02,
        duplicate_click_fraction=0.05,
        orphan_click_fraction=0.05,
        invalid_fraction=0.01,
    )
    recreate_topics(settings, partitions=1)
    generate(settings, KafkaSink(settings, INPUT_TOPICS))
    expected = expected_outputs(settings)
    log = tmp_path / "join-runs.log"

    first = start_join(settings, log)
    try:
        # Mid-stream: a checkpoint has committed some results, far from all of them.
        wait_until(
            lambda: alive(first, log)
            and latest_checkpoint(settings.data_dir / "flink") is not None
            and len(read_topic(settings, JOINED_TOPIC, idle_timeout=2)) > 0,
            timeout=600,
            interval=1.0,
            what="the first committed results",
        )
        jvm = job_jvm(first)
        assert [a for a in jvm.cmdline() if a.startswith(("-Xmx", "-XX:GCTimeRatio"))] == [
            f"-XX:GCTimeRatio={settings.flink_local_gc_time_ratio}",
            f"-Xmx{HEAP}",
        ]  # the heap's cap and the collector's sizing
        assert any("librocksdbjni" in m.path for m in jvm.memory_maps())  # state in RocksDB
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    committed_before_kill = read_outputs(settings).total()
    assert 0 < committed_before_kill < expected.total()  # the kill really was mid-stream

    # Restarted, it resumes from that checkpoint; stopped with Ctrl-C, it saves a savepoint.
    second = start_join(settings, log)
    try:
        wait_until(
            lambda: alive(second, log) and read_outputs(settings).total() > committed_before_kill,
            timeout=600,
            interval=2.0,
            what="the restarted join to commit more",
        )
    finally:
        os.killpg(second.pid, signal.SIGINT)
    second.wait(timeout=300)
    assert "/savepoint-" in str(latest_checkpoint(settings.data_dir / "flink"))

    # A bounded run resumes from the savepoint, reads to the end and drains: every outcome out.
    # It keeps its state on the heap (the default): a savepoint restores into either backend,
    # and the drain may have to flush most of the input at once (a stream with nothing left to
    # read holds the watermark back until then), which RocksDB does at some 1,500 rows/s here.
    result = adstream("join", "--bounded", env=instance_env(settings), timeout=900)
    assert result.returncode == 0, result.stderr
    assert log.read_text().count("restoring") == 1 and "restoring" in result.stderr
    assert_same_outputs(read_outputs(settings), expected)


def source_unread_times(rest: FlinkRest) -> dict[str, int]:
    """Milliseconds since each source of the running job read a record, by vertex name."""
    try:
        job_id = rest.running_job()
    except AdstreamError:
        return {}
    if job_id is None:
        return {}
    idle = {}
    for vertex in rest.rest("GET", f"/jobs/{job_id}")["vertices"]:
        if vertex["name"].startswith("Source:"):
            path = f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"
            names = [m["id"] for m in rest.rest("GET", path) if m["id"].endswith(".sourceIdleTime")]
            query = urllib.parse.urlencode({"get": ",".join(names)})
            values = [int(m["value"]) for m in rest.rest("GET", f"{path}?{query}")]
            if values:
                idle[vertex["name"]] = min(values)
    return idle


def sources_unread_for(rest: FlinkRest, milliseconds: int) -> bool:
    """Whether every source of the running job has read no record for `milliseconds`."""
    unread = source_unread_times(rest).values()
    return len(unread) == 2 and min(unread) > milliseconds


def test_a_drain_long_after_the_input_stopped_emits_every_result(
    kafka: Settings, tmp_path: Path
) -> None:
    """Nothing read anywhere calls no source idle (java/.../InputIdleness.java): a drain long
    after the last record (twice the idle timeout) still carries its final watermark through
    both sources (Flink 2.2 drops it from a source that is idle, FLINK-40499), and every
    result within D of the end comes out, exact."""
    idle_timeout = timedelta(seconds=5)
    settings = join_settings(
        kafka,
        tmp_path / "idle-drain",
        seed=14,
        rate=0.0,
        events=20_000,
        start_time=START,
        idle_timeout=idle_timeout,
        duplicate_impression_fraction=0.02,
        duplicate_click_fraction=0.05,
        invalid_fraction=0.01,
    )
    recreate_topics(settings, partitions=2)
    generate(settings, KafkaSink(settings, INPUT_TOPICS))
    expected = expected_outputs(settings)
    end = join_streams(settings).end()

    job = launcher.start_join(settings, bounded=False, detached=True)
    try:
        wait_until(
            lambda: job.poll() is None and has_read_to(settings, end),
            timeout=600,
            what="the join to read its input",
        )
        wait_until(
            lambda: sources_unread_for(
                local_rest(settings), 2 * idle_timeout // timedelta(milliseconds=1)
            ),
            timeout=120,
            what="both sources to have read nothing for twice the idle timeout",
        )
        job.send_signal(signal.SIGUSR1)  # drain, as `adstream run` does
        assert job.wait(timeout=300) == 0
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert_same_outputs(read_outputs(settings), expected)


def test_a_click_behind_the_watermark_while_its_stream_was_idle_is_late_not_lost(
    kafka: Settings, tmp_path: Path
) -> None:
    """While no click comes the join's watermark follows the impressions alone. A click that
    then arrives behind it, though on time in its own partition, is a `late_event`: the join's
    operator would drop it without a trace (a row behind its watermark)."""
    idle_timeout = timedelta(seconds=2)
    settings = join_settings(kafka, tmp_path / "idle-stream", idle_timeout=idle_timeout)
    recreate_topics(settings, partitions=1)
    produce(
        settings,
        [
            ("impressions", json.dumps(impression("x", at(0, 0))), "x"),
            ("clicks", json.dumps(click("elsewhere", at(0, 0))), "elsewhere"),
        ],
    )
    job = launcher.start_join(settings, bounded=False, detached=True)
    fillers = iter(range(1_000_000))

    def impressions_flow() -> bool:
        """One more impression, two minutes after x: the impressions alone move the
        watermark past x, once the clicks stream has been idle (no click for the idle
        timeout while impressions are read)."""
        filler = f"filler-{next(fillers)}"
        produce(settings, [("impressions", json.dumps(impression(filler, at(0, 120))), filler)])
        return True

    try:
        wait_until(
            lambda: job.poll() is None
            and impressions_flow()
            and (0, 0) in read_outputs(settings).unique_impressions,
            timeout=600,
            what="impression x to be decided",
        )
        # A click on x, 10 s after it: within D of its own partition's newest click.
        produce(settings, [("clicks", json.dumps(click("x", at(0, 10))), "x")])
        wait_until(
            lambda: read_outputs(settings).outcome_of("clicks", 0, 1) == ["late_event"],
            timeout=120,
            what="the click on x to be rejected as late (not dropped)",
        )
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    assert read_outputs(settings).joined == []
