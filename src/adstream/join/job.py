"""The Flink join job: runs inside `.venv-flink` (PyFlink), started by `adstream join`.

python -m adstream.join.job PARAMS_JSON_FILE
"""

import logging
import sys
from pathlib import Path

from pyflink.table import EnvironmentSettings, StatementSet, TableEnvironment

from adstream.join import sql
from adstream.join.params import JoinParams

log = logging.getLogger("adstream.join")


def configure(t_env: TableEnvironment, params: JoinParams) -> None:
    """Checkpointing, state, time zone and connector jars, all from the parameters."""
    config = t_env.get_config()
    for key, value in {
        "table.local-time-zone": "UTC",
        "parallelism.default": str(params.parallelism),
        "pipeline.jars": ";".join(Path(jar).resolve().as_uri() for jar in params.connector_jars),
        "pipeline.name": "adstream-join",
        "execution.checkpointing.interval": f"{params.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": Path(params.checkpoint_dir).resolve().as_uri(),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": "hashmap",
        # Keyed state (duplicate detection, partition watermarks) is kept this long after last use.
        "table.exec.state.ttl": f"{params.state_ttl_ms} ms",
        # Mini-batch would turn the event-time numbering into an updating stream.
        "table.exec.mini-batch.enabled": "false",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "3",
        "restart-strategy.fixed-delay.delay": "2 s",
    }.items():
        config.set(key, value)
    if params.restore_from:
        config.set("execution.state-recovery.path", params.restore_from)


def build_join(t_env: TableEnvironment, params: JoinParams) -> StatementSet:
    """Register sources, views and sinks; return the one StatementSet of all four outcomes."""
    for statement in sql.statements(params):
        t_env.execute_sql(statement)
    statement_set = t_env.create_statement_set()
    for insert in sql.inserts():
        statement_set.add_insert_sql(insert)
    return statement_set


def main(argv: list[str]) -> int:
    """Run the job until the input ends (bounded) or forever; log the parameters first."""
    logging.basicConfig(level=logging.INFO, format="adstream-join: %(message)s")
    params = JoinParams.from_json(Path(argv[1]).read_text())
    log.info("parameters: %s", params.to_json())
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure(t_env, params)
    result = build_join(t_env, params).execute()
    job_client = result.get_job_client()
    if job_client is not None:
        log.info("job id: %s", job_client.get_job_id())
    result.wait()
    log.info("job finished")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
