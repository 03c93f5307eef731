"""Start the Flink join job from the app environment: parameters, checkpoints, logs, exit."""

import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

from adstream.errors import AdstreamError
from adstream.join.params import STARTED, JoinParams, Runtime, logged
from adstream.join.streams import InputEnd
from adstream.platform import join_streams
from adstream.services.flink_cluster import FlinkCluster
from adstream.services.flink_rest import FlinkRest
from adstream.services.process import LogTail, free_port, last_error, spawn, stop, wait_until
from adstream.settings import Settings

log = logging.getLogger(__name__)

_JOB_MODULE: Final = "adstream.join.job"
_SUBMITTED: Final = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")
_NOT_RESTORABLE: Final = re.compile(r"Failed to rollback to checkpoint/savepoint (\S+?)\.?\s")
_OTHER_STATE_LAYOUT: Final = "org.apache.flink.util.StateMigrationException"
"""What Flink raises when a restored state's layout differs from the job's (adstream_join's
state changed): it names no checkpoint."""
_TERMINAL_STATES: Final = frozenset({"FINISHED", "FAILED", "CANCELED"})
_POLL_S: Final = 0.5
_PARAMS_FILE: Final = "join-params.json"
_REFUSED_COMMIT: Final = re.compile(
    rb"Kafka refused to commit the transaction of checkpoint (\d+) "
)
"""What the join logs when the broker refuses a checkpoint's transaction, and stops
(`RefusedCommitStops.REFUSED` in java/)."""


def flink_home(settings: Settings) -> Path:
    """Checkpoints, parameters and logs of the join job live here."""
    return settings.data_dir.resolve() / "flink"


def join_log(settings: Settings) -> Path:
    """What the job process writes: its own lines, and the Flink client's."""
    return flink_home(settings) / "join.log"


def job_failure(settings: Settings, output: str) -> str:
    """What went wrong, from the job's output, in one line.

    A checkpoint or savepoint the job cannot restore (written by a job whose operators or
    state differ: another version of the join) names the way out rather than Flink's own
    advice, which is to drop the state it cannot map.
    """
    found = _NOT_RESTORABLE.search(output)
    if found is None and _OTHER_STATE_LAYOUT not in output:
        return last_error(output)
    restored = found[1] if found else "the join's checkpoint or savepoint"
    home = flink_home(settings)
    return (
        f"cannot restore {restored}: a join whose operators or state differ wrote it (another "
        f"adstream version); finish that job with a bounded run of its own version, or move "
        f"{home / 'checkpoints'} and {home / 'savepoints'} away to start from the committed "
        "offsets (docs/join.md)"
    )


class RefusedCommits:
    """Checkpoints of the local join whose Kafka transactions the broker refused to commit.

    A checkpoint's outcome records are committed after the checkpoint completes; if the broker
    has aborted the transaction by then (it stayed open past `join_transaction_timeout`: the
    join was paused, or the broker failed meanwhile), its records are not written. The join's
    sink then fails the job before any later checkpoint commits
    (java/.../RefusedCommitStops.java), and `adstream run`, watching Flink's log for it (each
    JVM the job starts rewrites that log), starts it again, from the checkpoint before
    (`restore_point`).
    """

    def __init__(self, settings: Settings) -> None:
        self.log_dir = flink_home(settings) / "log"
        self.logs = {path: LogTail(path) for path in self.log_dir.glob("*.log")}

    def new(self) -> set[int]:
        """The checkpoints refused since the last call."""
        found: set[int] = set()
        for path in self.log_dir.glob("*.log"):
            if path not in self.logs:  # a log that appeared since: all of it is new
                self.logs[path] = LogTail(path, whole=True)
            found |= {int(n) for n in _REFUSED_COMMIT.findall(self.logs[path].new_lines())}
        return found


def discard_refused(home: Path, checkpoint: int) -> Path | None:
    """Delete a refused checkpoint and those after it; return the one before it, to restore.

    None (and nothing deleted) if the one before is not there any more.

    A checkpoint whose transaction the broker refused has read input whose outcomes were never
    written, and so has every later one: only the checkpoint before it replays them. The join
    stops at the refusal, so nothing after it has committed, and the checkpoints kept
    (`execution.checkpointing.num-retained`) still hold the one before.
    """
    refused = list(home.glob(f"checkpoints/*/chk-{checkpoint}/_metadata"))
    if not refused:
        return None
    since = max(path.stat().st_mtime for path in refused)
    completed = {folder: (folder / "_metadata").stat().st_mtime for folder in _completed(home)}
    before = [folder for folder, at in completed.items() if at < since]
    restore = max(before, key=completed.__getitem__, default=None)
    if restore is None or (
        restore.name.startswith("chk-") and restore.name != f"chk-{checkpoint - 1}"
    ):
        return None  # the one before is gone: restoring an older one would repeat outcomes
    for folder, at in completed.items():
        if at >= since:
            shutil.rmtree(folder)
    return restore


def restore_point(home: Path) -> Path | None:
    """The checkpoint or savepoint a join starting now restores: the newest.

    Unless the job's last JVM (its log, which the next one rewrites) found a checkpoint's Kafka
    transaction refused: then that checkpoint and those after it are deleted, and the one
    before it, whose replay writes the refused outcomes again, is the newest.
    """
    refused: set[int] = set()
    for path in (home / "log").glob("*.log"):
        with path.open("rb") as lines:
            refused.update(int(n) for line in lines for n in _REFUSED_COMMIT.findall(line))
    if refused and any(home.glob(f"checkpoints/*/chk-{min(refused)}/_metadata")):
        checkpoint = min(refused)
        before = discard_refused(home, checkpoint)
        if before is None:
            log.error(
                "Kafka refused to commit the join's checkpoint %d, and the checkpoint before it "
                "is gone: the outcomes it held are lost (`adstream verify` shows them)",
                checkpoint,
            )
        else:
            log.warning(
                "Kafka refused to commit the join's checkpoint %d: it and those after it are "
                "deleted, and %s, before it, writes its outcomes again",
                checkpoint,
                before.name,
            )
    return latest_checkpoint(home)


def local_rest(settings: Settings) -> FlinkRest:
    """The REST API of the mini-cluster the local join runs in (its port is in its parameters)."""
    params = JoinParams.from_json((flink_home(settings) / _PARAMS_FILE).read_text())
    if params.runtime is None or params.runtime.rest_port is None:
        raise AdstreamError("the join does not run in a local mini-cluster")
    return FlinkRest(f"http://127.0.0.1:{params.runtime.rest_port}")


def has_read_to(settings: Settings, end: InputEnd) -> bool:
    """Whether the local join has handed downstream every input record before `end`."""
    return join_streams(settings).has_read_to(local_rest(settings), end)


def _completed(home: Path) -> list[Path]:
    """The completed checkpoints and savepoints under a job home (folders with `_metadata`)."""
    return [
        path.parent
        for path in (
            *home.glob("checkpoints/*/chk-*/_metadata"),
            *home.glob("savepoints/savepoint-*/_metadata"),
        )
    ]


def latest_checkpoint(home: Path) -> Path | None:
    """The newest completed checkpoint or savepoint under a job home."""
    return max(
        _completed(home), key=lambda path: (path / "_metadata").stat().st_mtime, default=None
    )


def drained_until_ms(home: Path, settings: Settings) -> int:
    """Until when (epoch ms) ids that a drained run left may be in the job's state.

    A drain moves what each id knows to a state with the dedup horizon as its processing-time
    TTL, and every drain ends in a savepoint: so the newest savepoint's time plus the horizon
    bounds them (AdJoin reads that state only until then). 0 without any savepoint.
    """
    savepoints = list(home.glob("savepoints/savepoint-*/_metadata"))
    if not savepoints:
        return 0
    newest = max(path.stat().st_mtime for path in savepoints)
    return int((newest + settings.dedup_horizon.total_seconds()) * 1000)


def join_params(
    settings: Settings, *, bounded: bool, cluster_address: str | None = None
) -> JoinParams:
    """The job's parameters from the settings; restores `restore_point` if there is one."""
    home = flink_home(settings)
    restore = restore_point(home)
    jars = sorted((settings.lib_dir / "flink").glob("*.jar"))
    if not jars:
        raise AdstreamError(
            f"Flink connector jars not found in {settings.lib_dir / 'flink'}; "
            "run `make setup` first"
        )
    runtime = Runtime.from_settings(
        settings,
        home,
        bounded=bounded,
        restore_from=str(restore) if restore else None,
        cluster_address=cluster_address,
        rest_port=free_port() if cluster_address is None else None,
        drained_until_ms=drained_until_ms(home, settings),
    )
    return JoinParams.from_settings(
        settings,
        join_streams(settings).connectors(),
        bounded=bounded,
        connector_jars=tuple(str(jar) for jar in jars),
        runtime=runtime,
    )


def start_join(
    settings: Settings, *, bounded: bool, cluster: bool = False, detached: bool = False
) -> subprocess.Popen[bytes]:
    """Start the job process; its output goes to `<data>/flink/join.log`.

    Locally the job runs in a Flink mini-cluster inside the process (`.venv-flink`'s Python);
    with `cluster` the process is the `flink run` client, which submits the job to the
    standalone cluster of `adstream up --cluster` and waits for it (attached mode).
    """
    streams = join_streams(settings)
    streams.require()  # creates missing topics
    if not settings.flink_python.exists():
        raise AdstreamError(
            f"Flink environment not found ({settings.flink_python}); run `make setup` first"
        )
    standalone = FlinkCluster(settings) if cluster else None
    if standalone is not None:
        standalone.require_running(settings.join_parallelism)
    params = join_params(
        settings,
        bounded=bounded,
        cluster_address=standalone.address if standalone is not None else None,
    )
    restoring = params.runtime.restore_from if params.runtime is not None else None
    home = flink_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    params_file = home / _PARAMS_FILE
    params_file.write_text(params.to_json())
    log.info(
        "starting the join (W=%s, D=%s, idle %s, checkpoints every %s, %s state, parallelism %d"
        "%s%s%s)",
        settings.attribution_window,
        settings.out_of_orderness,
        settings.idle_timeout,
        settings.checkpoint_interval,
        settings.join_state_backend,
        settings.join_parallelism,
        ", bounded" if bounded else "",
        f", on the cluster at {standalone.rest_url}" if standalone is not None else "",
        f", restoring {restoring}" if restoring else "",
    )
    command = [str(settings.flink_python), "-m", _JOB_MODULE, str(params_file)]
    # PyFlink starts the mini-cluster's JVM with JVM_ARGS and writes Flink's own log under
    # FLINK_LOG_DIR (by default a folder of .venv-flink, which every instance overwrites).
    environment = {**os.environ, "FLINK_LOG_DIR": str(home / "log"), **streams.environment()}
    # G1 sized by the JVM's own GCTimeRatio (12) grows the heap to its maximum long before the
    # state needs it; with a lower ratio and free ratios it stays near the live state, as fast
    # (docs/benchmarks.md, "adstream's memory").
    jvm_args = [
        f"-XX:GCTimeRatio={settings.flink_local_gc_time_ratio}",
        "-XX:MinHeapFreeRatio=10",
        "-XX:MaxHeapFreeRatio=30",
    ]
    if settings.flink_local_heap is not None:
        jvm_args.append(f"-Xmx{settings.flink_local_heap}")
    environment["JVM_ARGS"] = " ".join(jvm_args)
    if standalone is not None:
        # The client runs the same module with .venv-flink's Python; the connector jars
        # (`pipeline.jars`) are uploaded with the job graph to the cluster's blob server.
        command = [
            *standalone.script("flink"),
            "run",
            "--jobmanager",
            standalone.address,
            "--pyModule",
            _JOB_MODULE,
            str(params_file),
        ]
        environment = {
            **standalone.environment(),
            **streams.environment(),
            "PYFLINK_CLIENT_EXECUTABLE": str(settings.flink_python),
        }
    # detached: a terminal's Ctrl-C does not reach it
    return spawn(command, join_log(settings), env=environment, detached=detached)


def run_join(settings: Settings, *, bounded: bool, cluster: bool = False) -> None:
    """Run the job until Ctrl-C or SIGTERM, or, bounded, until the input's current end is done.

    A bounded run ends once the job has handed on the input as it stood when the run started:
    it is then drained (the watermark jumps to the end of time, so every pending
    result is emitted) and stopped with a savepoint that the next run restores. Locally Ctrl-C
    stops the job with a savepoint, pending results kept; on the cluster it cancels the job
    (its checkpoints are retained for the next run).
    """
    began = time.monotonic()
    log_file = join_log(settings)
    output = LogTail(log_file)
    streams = join_streams(settings)
    process = start_join(settings, bounded=bounded, cluster=cluster)  # creates missing topics
    standalone = FlinkCluster(settings) if cluster else None
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        end = streams.end() if bounded else None
        drained = end is None
        while process.poll() is None:
            rest = standalone if standalone is not None else local_rest(settings)
            if not drained and end is not None and streams.has_read_to(rest, end):
                drained = _drain(process, standalone, output.text(), settings)
                if drained:
                    log.info("the join has read the input to its end; draining")
            time.sleep(_POLL_S)
        code = process.wait()
    except BaseException:  # Ctrl-C, SIGTERM, or an error while watching: never leave it running
        stop([process], name="the join job")  # with a savepoint
        if standalone is not None:
            _cancel(standalone, _submitted_job(output.text()))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if standalone is not None:
        _check_cluster_job(standalone, code, output.text())
    elif code != 0:
        failure = job_failure(settings, output.text())
        raise AdstreamError(f"the join job failed (exit {code}): {failure}; see {log_file}")
    log.info("join finished in %.1f s", time.monotonic() - began)


def _drain(
    process: subprocess.Popen[bytes],
    cluster: FlinkCluster | None,
    client_output: str,
    settings: Settings,
) -> bool:
    """Ask the job to drain and stop with a savepoint; False when it cannot be asked yet."""
    if cluster is None:
        if logged(STARTED) not in client_output:
            return False  # its signal handlers are not installed yet: SIGUSR1 would kill it
        process.send_signal(signal.SIGUSR1)  # the job process stops itself (job.py)
        return True
    job_id = _submitted_job(client_output)
    if job_id is None or cluster.job_state(job_id) != "RUNNING":
        return False
    return cluster.stop_job(job_id, drain=True, directory=flink_home(settings) / "savepoints")


def _check_cluster_job(cluster: FlinkCluster, code: int, output: str) -> None:
    """Raise unless the client succeeded and the cluster reports the job FINISHED."""
    job_id = _submitted_job(output)
    state = None
    if job_id is not None:
        if code == 0:  # the attached client returns once the job is over; REST has the last word
            wait_until(
                lambda: cluster.job_state(job_id) in _TERMINAL_STATES,
                timeout=60,
                what=f"job {job_id} to end on the Flink cluster",
                interval=1.0,
            )
        state = cluster.job_state(job_id)
        log.info("cluster job %s: %s", job_id, state)
    if code == 0 and state == "FINISHED":
        return
    reason = cluster.job_failure(job_id) if state == "FAILED" and job_id else None
    raise AdstreamError(
        f"the join job failed on the Flink cluster ({state or f'client exit {code}'}): "
        f"{reason or _root_cause(output)}"
    )


def _cancel(cluster: FlinkCluster, job_id: str | None) -> None:
    if job_id is not None and cluster.job_state(job_id) not in _TERMINAL_STATES:
        log.info("cancelling job %s on the Flink cluster", job_id)
        cluster.cancel_job(job_id)
        # A next run must not overlap with it (same consumer group and transactional ids).
        wait_until(
            lambda: cluster.job_state(job_id) in _TERMINAL_STATES,
            timeout=60,
            what=f"job {job_id} to be cancelled",
            interval=0.5,
        )


def _submitted_job(output: str) -> str | None:
    found = _SUBMITTED.findall(output)
    return found[-1] if found else None


def _root_cause(output: str) -> str:
    """The innermost cause in the client's output (its own wrapper exception left out)."""
    wrapper = output.find("ProgramAbortException")
    return last_error(output if wrapper < 0 else output[: output.rfind("\n", 0, wrapper) + 1])
