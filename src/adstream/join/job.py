"""The Flink join job: runs inside `.venv-flink` (PyFlink), started by `adstream join`.

python -m adstream.join.job PARAMS_JSON_FILE
"""

import logging
import signal
import sys
import time
from pathlib import Path
from typing import NamedTuple

from pyflink.common import Configuration, JobClient
from pyflink.java_gateway import get_gateway
from pyflink.table import EnvironmentSettings, StatementSet, TableEnvironment, TableResult

from adstream.join import plans, sql
from adstream.join.params import LOG_PREFIX, RUNNING, STARTED, JoinParams

log = logging.getLogger("adstream.join")
_STOP_DEADLINE_S = 300.0
_FINISH_GRACE_S = 30.0


def environment_settings(params: JoinParams) -> EnvironmentSettings:
    """Streaming mode; locally, the mini-cluster's REST API on loopback at a known port.

    The launcher reads the sources' positions there (`adstream.services.flink_rest`), so they
    are refreshed every second (default: 10 s): a finish drains soon after the input is read.
    The mini-cluster's one task manager serves a slot request at once; if it has stopped (a
    task whose clean-up failed, as Kafka's sink after a long pause, stops it), a restart gives
    up after 15 s rather than 5 minutes, so that `adstream run` starts a new process sooner.
    """
    config = Configuration()
    if params.runtime is not None and params.runtime.rest_port is not None:
        for key, value in {
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": str(params.runtime.rest_port),
            "metrics.fetcher.update-interval": "1000",
            "slot.request.timeout": "15 s",
        }.items():
            config.set_string(key, value)
    return EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build()


def configure(t_env: TableEnvironment, params: JoinParams) -> None:
    """The job's semantics; its jars; and, unless a service runs Flink, how Flink runs it.

    On MSF (`params.runtime` is None) checkpoints, state backend, parallelism and restarts are
    the application's configuration, and its jar is loaded by the service.
    """
    options = {
        "table.local-time-zone": "UTC",
        "pipeline.name": "adstream-join",
        # Chained operators hand each row on as it is instead of copying it first (a copy per
        # operator took 6 % of the JVM's CPU): no operator of the plan keeps a row it was
        # handed (adstream_join keeps a copy of the bytes).
        "pipeline.object-reuse": "true",
        # Keyed state (partition watermarks; the join's per-id entry, which its event-time timers
        # clear sooner) is kept this long after its last write, in processing time.
        "table.exec.state.ttl": f"{params.state_ttl_ms} ms",
        **sql.join_options(params),
    }
    if params.connector_jars:
        options["pipeline.jars"] = ";".join(
            Path(jar).resolve().as_uri() for jar in params.connector_jars
        )
    runtime = params.runtime
    if runtime is not None:
        options |= {
            "parallelism.default": str(runtime.parallelism),
            "execution.checkpointing.interval": f"{runtime.checkpoint_interval_ms} ms",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.dir": Path(runtime.checkpoint_dir).resolve().as_uri(),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.num-retained": "3",
            "state.backend.type": runtime.state_backend,
            # Checkpoints write only what changed since the last one, so their cost follows the
            # traffic, not the state: RocksDB uploads its new files; the heap's state goes through
            # Flink's changelog (every change logged, the whole state written in the background
            # every 10 minutes; docs/join.md).
            "execution.checkpointing.incremental": str(runtime.state_backend == "rocksdb").lower(),
            "state.changelog.enabled": str(runtime.state_backend == "hashmap").lower(),
            "state.changelog.storage": "filesystem",
            "state.changelog.dstl.dfs.base-path": (Path(runtime.checkpoint_dir) / "changelog")
            .resolve()
            .as_uri(),
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "3",
            "restart-strategy.fixed-delay.delay": "2 s",
        }
        if runtime.restore_from:
            options["execution.state-recovery.path"] = runtime.restore_from
            # The job owns what it restores (its own last checkpoint or savepoint) and may delete
            # it once a newer checkpoint subsumes it; the changelog cannot take the full snapshot
            # that the default (NO_CLAIM) demands first.
            options["execution.state-recovery.claim-mode"] = "CLAIM"
    config = t_env.get_config()
    for key, value in options.items():
        config.set(key, value)


def register_tables(t_env: TableEnvironment, params: JoinParams) -> None:
    """Register the functions, sources and sinks."""
    for statement in sql.tables(params):
        t_env.execute_sql(statement)


def join_statements(t_env: TableEnvironment, params: JoinParams) -> StatementSet:
    """Register the views (after the tables); return the one StatementSet of all four outcomes."""
    for statement in sql.views(params):
        t_env.execute_sql(statement)
    # A table object, not CREATE VIEW: Flink 2.2.1 cannot parse a view's PTF call back.
    t_env.create_temporary_view(sql.DECIDED_VIEW, t_env.sql_query(sql.decided_query()))
    statement_set = t_env.create_statement_set()
    for insert in sql.inserts():
        statement_set.add_insert_sql(insert)
    return statement_set


def submit(params: JoinParams) -> TableResult:
    """Create the table environment, configure it, register the join and submit it.

    What every run of the job does, here (`main`) and on MSF (`adstream.join.msf`). A job the
    launcher starts runs from its compiled plan, cached (`adstream.join.plans`).
    """
    began = time.monotonic()
    t_env = TableEnvironment.create(environment_settings(params))
    log.info("Java gateway up in %.1f s", _since(began))
    configure(t_env, params)
    register_tables(t_env, params)
    cache = None if params.runtime is None else params.runtime.plan_cache_dir
    if cache is None:
        statements = join_statements(t_env, params)
        log.info("statements registered in %.1f s", _since(began))
        return statements.execute()
    log.info("statements registered in %.1f s (the tables; the plan next)", _since(began))
    return plans.execute(t_env, params, Path(cache), lambda: join_statements(t_env, params))


def log_to_stderr() -> None:
    """The job's lines, with their prefix, on stderr.

    Its own handler: importing PyFlink (Beam) reconfigures the root logger.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s {LOG_PREFIX} %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str]) -> int:
    """Run the job until it ends or a signal stops it; log the parameters first.

    SIGINT (Ctrl-C) or a SIGTERM to this process alone stops the job with a savepoint, pending
    results kept in its state for the next run. (PyFlink's JVM ignores SIGINT; a SIGTERM to
    the whole process group ends it at once, and the next run restores the last checkpoint.)
    SIGUSR1 drains the job first: the watermark jumps to the end of time, so every pending
    result is emitted and committed. That is how a bounded run ends once it has read the input
    to its end.
    """
    log_to_stderr()
    params = JoinParams.from_json(Path(argv[1]).read_text())
    log.info("parameters: %s", params.to_json())
    runtime = params.runtime
    if runtime is None:  # only adstream's launcher starts this module, always with a runtime
        raise ValueError("the job process needs the runtime of its checkpoints")
    requested: list[bool] = []  # drain or not, in the order the signals came
    for signum, drain in ((signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGUSR1, True)):
        signal.signal(signum, lambda *_, drain=drain: requested.append(drain))
    began = time.monotonic()
    result = submit(params)
    job_client = result.get_job_client()
    assert job_client is not None  # a streaming INSERT always has one
    job_id = str(job_client.get_job_id())
    log.info("%s %s (planned and submitted in %.1f s)", STARTED, job_id, _since(began))
    first_checkpoint = Path(runtime.checkpoint_dir) / job_id
    running = False
    while not requested and not _ended(job_client):
        if not running and any(first_checkpoint.glob("chk-*/_metadata")):
            running = True
            log.info("%s first checkpoint complete %.1f s after start", RUNNING, _since(began))
        time.sleep(0.2)
    if requested:
        drain = requested[0]
        log.info("stopping with a savepoint%s", ", draining first" if drain else "")
        stopped = stop_with_savepoint(job_client, runtime.savepoint_dir, drain=drain)
        log.info("savepoint: %s", stopped.savepoint or "none, the job had ended")
        if stopped.cancelled:
            while not _ended(job_client):
                time.sleep(0.2)
            log.info("job cancelled after its savepoint")
            return 0
    result.wait()  # raises when the job failed
    log.info("job finished")
    return 0


class Stopped(NamedTuple):
    """How a stop with a savepoint ended."""

    savepoint: str | None  # None: the job had ended before it could be stopped
    cancelled: bool  # it hung after its savepoint and was cancelled


def stop_with_savepoint(job_client: JobClient, directory: str, *, drain: bool) -> Stopped:
    """Stop the job, savepoint in `directory`; PyFlink's own wrapper lacks Flink 2's format."""
    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    uri = Path(directory).resolve().as_uri()
    began = time.time()
    deadline = time.monotonic() + _STOP_DEADLINE_S
    while True:
        try:
            stopping = job_client._j_job_client.stopWithSavepoint(drain, uri, formats.CANONICAL)
            while not stopping.isDone():
                hung = _hung_after_savepoint(Path(directory), began)
                if hung is not None:
                    log.warning(
                        "the job has not finished %.0f s after its savepoint was complete "
                        "(a checkpoint still pending as its tasks finish never completes with "
                        "the changelog state backend); cancelling it: the savepoint is "
                        "complete, and a run restored from it commits what this one did not",
                        _FINISH_GRACE_S,
                    )
                    job_client.cancel().result()
                    return Stopped(hung.as_uri(), cancelled=True)
                time.sleep(0.2)
            return Stopped(stopping.get(), cancelled=False)
        except Exception as error:  # e.g. some task is still starting: ask again
            if time.monotonic() > deadline or "connect to the Java server" in str(error):
                raise  # the JVM is gone (a SIGTERM to the process group ends it too)
            if _ended(job_client):
                return Stopped(None, cancelled=False)
            log.info("cannot stop yet (%s); retrying", str(error).splitlines()[0][:200])
            time.sleep(1.0)


def _hung_after_savepoint(directory: Path, since: float) -> Path | None:
    """A savepoint completed after `since` (epoch s) over `_FINISH_GRACE_S` ago, if any.

    A job stopped with a savepoint finishes within a second of it; one that has not after the
    grace hangs in Flink 2.2: a checkpoint triggered as the drain ended (the sinks' writers ask
    for one) is still pending when the tasks finish, and the changelog's upload of it completes
    in the task's mailbox, which a finishing task no longer runs.
    """
    for metadata in directory.glob("savepoint-*/_metadata"):
        written = metadata.stat().st_mtime
        if written >= since and time.time() - written > _FINISH_GRACE_S:
            return metadata.parent
    return None


def _since(began: float) -> float:
    return time.monotonic() - began


def _ended(job_client: JobClient) -> bool:
    try:
        status = job_client.get_job_status().result()
    except Exception:  # the mini-cluster is gone once its job is over
        return True
    ended: bool = status.is_globally_terminal_state()
    return ended


if __name__ == "__main__":
    sys.exit(main(sys.argv))
