"""Contender (b): the original design as literally written. Flink ±W interval join, Spark MERGE.

The pipeline the first design described, built as a competent engineer following it would, and
measured as it is (it does not implement SPEC section 3, and the benchmark reports where it
differs): a PyFlink job joins every click with every impression of the same impression_id and
ad_id within ±W in event time (`interval_merge_flink.py`) and writes the pairs to the topic
`bench_b_joined`; a PySpark Structured Streaming job enriches them (SPEC section 5) and MERGEs
each micro-batch into the Iceberg table `bench.attributed_clicks`, an upsert on (ad_id,
impression_id) (`interval_merge_spark.py`).

The two run concurrently, as the streaming design means: the Spark query starts first and
merges while the bounded Flink job reads the input topics to the offsets of its start. Once the
Flink job has ended, this script hands the Spark job the joined topic's final end offsets; the
Spark job stops when it has merged up to them. Exit 0 means everything is committed.

Where it departs from SPEC section 3, by design (it is reported wrong, not fixed): no
validation beyond what the `json` format cannot parse (out-of-range prices pass; a time it
cannot read, e.g. one without `Z`, is null, so that record joins nothing); a
`future_timestamp` record moves its partition's watermark to its year 2099 and, once the
other partitions are done or ahead, everything after it is late and silently dropped by the
join; no impression deduplication (a click joins every copy); a click up to W before its
impression matches (SPEC section 5's validation then drops it); of several clicks of one
impression the last to arrive wins, not the earliest; late events are joined while the join
still holds their partner in state, and dropped silently otherwise.

Everything lives under the data directory: the catalog and warehouse (`lakehouse/`, as
`adstream.lakehouse.catalog.open_catalog` opens them), `flink/` and `spark/` (parameters,
checkpoints, temporary files, logs). This process is a child subreaper, so the JVMs its jobs
leave behind when their Python exits are its children: it waits for them (their CPU time counts
in its RUSAGE_CHILDREN) and leaves no process running.

    .venv/bin/python bench/contenders/interval_merge.py --bootstrap-servers HOST:PORT
        --data-dir DIR [--window-seconds 30]
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic
from interval_merge_params import JOINED_TOPIC, FlinkJobParams, SparkJobParams
from output_table import TABLE, create_output_table

from adstream.enrich.session import spark_conf
from adstream.errors import AdstreamError
from adstream.events.outcomes import CLICKS_TOPIC, INPUT_TOPICS
from adstream.lakehouse.catalog import open_catalog
from adstream.services.kafka_client import (
    admin_client,
    end_offsets,
    require_broker,
    topic_partitions,
)
from adstream.services.process import wait_until
from adstream.settings import Settings, load_settings

HERE: Final = Path(__file__).resolve().parent
_PR_SET_CHILD_SUBREAPER: Final = 36
_POLL_S: Final = 0.5
_STOP_GRACE_S: Final = 30.0
_JVM_EXIT_GRACE_S: Final = 60.0


class ContenderFailed(Exception):
    """A step failed; the message is the one line to print."""


def say(message: str) -> None:
    """One progress line on stderr."""
    print(f"interval_merge: {message}", file=sys.stderr, flush=True)


def become_subreaper() -> None:
    """Make orphaned descendants (a job's JVM outliving its Python) children of this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def recreate_joined_topic(settings: Settings) -> int:
    """Delete `bench_b_joined` if it exists and create it like the input; its partition count."""
    require_broker(settings)
    partitions = topic_partitions(settings)
    missing = [topic for topic in INPUT_TOPICS if topic not in partitions]
    if missing:
        raise ContenderFailed(f"input topic {missing[0]} does not exist")
    admin = admin_client(settings)
    if JOINED_TOPIC in partitions:
        admin.delete_topics([JOINED_TOPIC], operation_timeout=30)[JOINED_TOPIC].result()
        wait_until(
            lambda: JOINED_TOPIC not in admin.list_topics(timeout=30).topics,
            timeout=60,
            what=f"{JOINED_TOPIC} to be deleted",
        )
    count = partitions[CLICKS_TOPIC]
    new = NewTopic(JOINED_TOPIC, num_partitions=count, replication_factor=1)
    admin.create_topics([new], operation_timeout=30)[JOINED_TOPIC].result()
    wait_until(
        lambda: JOINED_TOPIC in admin.list_topics(timeout=30).topics,
        timeout=60,
        what=f"{JOINED_TOPIC} to be created",
    )
    return count


def fresh_folder(path: Path) -> Path:
    """`path`, emptied: checkpoints of an earlier run refer to a topic that no longer exists."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def flink_params(settings: Settings, home: Path, window_ms: int) -> FlinkJobParams:
    """The Flink job's parameters: the connector jar, adstream's D, bounded-run checkpoints."""
    jars = sorted((settings.lib_dir / "flink").glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise ContenderFailed(f"Kafka SQL connector not in {settings.lib_dir / 'flink'}")
    return FlinkJobParams(
        bootstrap_servers=settings.bootstrap_servers,
        window_ms=window_ms,
        out_of_orderness_ms=round(settings.out_of_orderness.total_seconds() * 1000),
        # As `adstream join --bounded`: a bounded job ends with a final checkpoint.
        checkpoint_interval_ms=round(min(settings.checkpoint_interval.total_seconds(), 1) * 1000),
        checkpoint_dir=str(home / "checkpoints"),
        tmp_dir=str(home / "tmp"),
        connector_jars=[str(jar) for jar in jars],
        parallelism=settings.join_parallelism,
    )


def spark_params(settings: Settings, home: Path) -> SparkJobParams:
    """The Spark job's parameters: adstream's session and catalog, files under `home`."""
    conf = spark_conf(settings) | {
        "spark.app.name": "bench-interval-merge",
        "spark.local.dir": str(home / "tmp"),
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={home / 'tmp'}",
    }
    return SparkJobParams(
        bootstrap_servers=settings.bootstrap_servers,
        checkpoint_dir=str(home / "checkpoint"),
        trigger_interval_ms=round(settings.enrich_trigger_interval.total_seconds() * 1000),
        premium_threshold=str(settings.premium_threshold),
        revenue_multiplier=str(settings.revenue_multiplier),
        spark_conf=conf,
    )


@dataclass(frozen=True)
class Job:
    """One job process (a child, in this process group) and the folder of its files."""

    name: str
    process: subprocess.Popen[bytes]
    home: Path

    @property
    def log(self) -> Path:
        """Everything the process printed."""
        return self.home / "job.log"

    def failed(self) -> bool:
        """Whether it has ended with a non-zero exit code."""
        return self.process.poll() not in (None, 0)

    def failure(self) -> str:
        """One line: its exit code and the last error in its log."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line]
        causes = [line for line in lines if line.startswith("Caused by: ")]
        errors = [
            line
            for line in lines
            if not line[0].isspace() and ("Error" in line or "Exception" in line)
        ]
        last = (causes or errors or lines or ["no output"])[-1].strip()[:300]
        return f"the {self.name} job failed (exit {self.process.returncode}): {last}"


def start_job(
    name: str, python: Path, script: str, params_json: str, home: Path, env: dict[str, str]
) -> Job:
    """Start one job process with its parameters file; its output goes to `home/job.log`."""
    params_file = home / "params.json"
    params_file.write_text(params_json)
    (home / "tmp").mkdir(exist_ok=True)
    with (home / "job.log").open("ab") as output:
        process = subprocess.Popen(
            [str(python), str(HERE / script), str(params_file)],
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=home,
            env={**os.environ, **env, "TMPDIR": str(home / "tmp")},
        )
    return Job(name, process, home)


def wait_for(job: Job, other: Job) -> None:
    """Until `job` ends; fail when it fails, or when `other` (running alongside) fails first."""
    while job.process.poll() is None:
        if other.failed():
            raise ContenderFailed(other.failure())
        time.sleep(_POLL_S)
    if job.failed():
        raise ContenderFailed(job.failure())


def stop(jobs: list[Job]) -> None:
    """SIGTERM the jobs still running, SIGKILL those that outlast the grace period."""
    for job in jobs:
        if job.process.poll() is None:
            job.process.terminate()
    for job in jobs:
        try:
            job.process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            job.process.kill()
            job.process.wait()


def _children() -> list[int]:
    """Processes whose parent is this one (after reparenting: orphaned JVMs)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == me:
            found.append(int(stat.parent.name))
    return found


def reap_descendants(grace_s: float) -> None:
    """Wait for every remaining child (the jobs' JVMs exit when their Python is gone)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid:
            continue
        if time.monotonic() > deadline:
            for child in _children():
                os.kill(child, signal.SIGKILL)
        time.sleep(_POLL_S)


def finish_spark(spark: Job, settings: Settings) -> int:
    """Hand the Spark job the joined topic's final end offsets; return the joined row count."""
    ends = end_offsets(settings, (JOINED_TOPIC,))
    stdin: IO[bytes] | None = spark.process.stdin
    assert stdin is not None  # started with stdin=PIPE
    stdin.write(json.dumps({str(partition): end for (_, partition), end in ends.items()}).encode())
    stdin.close()
    return sum(ends.values())


def table_rows(settings: Settings) -> int:
    """Rows in the output table now (from its current snapshot's summary)."""
    snapshot = open_catalog(settings).load_table(TABLE).current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    total = summary.additional_properties.get("total-records") if summary else None
    return int(total) if total is not None else 0


def run(settings: Settings, window_ms: int) -> None:
    """The whole contender: topic, table, both jobs, and the final row count."""
    partitions = recreate_joined_topic(settings)
    create_output_table(settings, replace=True)
    say(f"topic {JOINED_TOPIC} ({partitions} partitions) and table {TABLE} created")
    data_dir = settings.data_dir.resolve()
    flink_home, spark_home = fresh_folder(data_dir / "flink"), fresh_folder(data_dir / "spark")
    began = time.monotonic()
    spark = start_job(
        "Spark",
        Path(sys.executable),
        "interval_merge_spark.py",
        spark_params(settings, spark_home).to_json(),
        spark_home,
        {"SPARK_LOCAL_IP": "127.0.0.1"},
    )
    jobs = [spark]
    try:
        say(f"Spark streaming MERGE started (log {spark_home / 'job.log'})")
        flink = start_job(
            "Flink",
            settings.flink_python,
            "interval_merge_flink.py",
            flink_params(settings, flink_home, window_ms).to_json(),
            flink_home,
            {
                "FLINK_LOG_DIR": str(flink_home / "log"),
                "JVM_ARGS": f"-Djava.io.tmpdir={flink_home / 'tmp'}",
            },
        )
        jobs.append(flink)
        say(f"Flink interval join of ±{window_ms / 1000:g} s started (log {flink_home})")
        wait_for(flink, spark)
        joined = finish_spark(spark, settings)
        say(f"Flink job done after {time.monotonic() - began:.1f} s: {joined:,} joined rows")
        wait_for(spark, flink)
    finally:
        stop(jobs)
        reap_descendants(_JVM_EXIT_GRACE_S)
    say(f"done in {time.monotonic() - began:.1f} s: {table_rows(settings):,} rows in {TABLE}")


def main() -> int:
    """Parse the flags, run, and turn a failure into one line and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--window-seconds", type=float, default=30.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the jobs on the way out
    try:
        become_subreaper()
        settings = load_settings(
            data_dir=args.data_dir, kafka_bootstrap_servers=args.bootstrap_servers
        )
        run(settings, round(args.window_seconds * 1000))
    except (ContenderFailed, AdstreamError, KafkaException, OSError) as error:
        say(f"failed: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
