"""The join's compiled plan, cached: a job is planned once per version of its SQL, not per start.

Registering the join's views and optimizing its statement set take some 10 s of every start of
the job (docs/benchmarks.md), and the result depends only on the SQL, the planner's options and
the jars. So the launcher's jobs run from a Flink compiled plan (`CompiledPlan`, the JSON form
of the optimized plan) kept in a cache folder, keyed by a digest of all that:

- A plan is compiled with its tables by identifier only (`table.plan.compile.catalog-objects`
  IDENTIFIER): their options (brokers, consumer group, transactional ids, stream ARNs) are
  looked up in the session when it is loaded. So one plan serves every instance, whatever its
  data directory and ports, and the digest leaves out those options (`_WHERE`).
- A start with the plan cached registers only the functions and tables, loads the plan and
  executes it; a start without registers the views too, compiles the plan, stores it and
  executes it. Either way the job runs from a compiled plan, so its operators get the same
  uids in every run (Flink sets them on compiled plans only, `table.exec.uid.generation`): a
  checkpoint of one restores in the next, compiled or loaded.
- Options read when the plan is translated, not compiled (the state TTL, `adstream_join`'s
  options, the run's `drained-until` among them) are taken from the session at each start.

Jobs that no launcher starts (MSF) are planned from the SQL as before (`adstream.join.job`).
"""

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from adstream.join import sql
from adstream.join.params import Connectors, JoinParams

if TYPE_CHECKING:  # PyFlink is imported where it is used: the key is computed without it
    from pyflink.table import StatementSet, TableEnvironment, TableResult

log = logging.getLogger("adstream.join")

_WHERE: Final = frozenset(
    {
        "properties.bootstrap.servers",
        "properties.group.id",
        "sink.transactional-id-prefix",
        "stream.arn",
        "aws.region",
        "aws.endpoint",
    }
)
"""Connector options that say where a table's records are, never how they are planned."""


def digest(params: JoinParams, flink_version: str) -> str:
    """The key of the join's plan.

    What the plan depends on: the SQL (the options of `_WHERE` left out), `adstream_join`'s
    options, Flink's version and the jars (name, size, time).
    """
    runtime = params.runtime
    general = dataclasses.replace(
        params,
        connectors=_without_where(params.connectors),
        runtime=None if runtime is None else dataclasses.replace(runtime, drained_until_ms=0),
    )
    jars = [
        (Path(jar).name, found.st_size, found.st_mtime_ns)
        for jar in params.connector_jars
        if (found := Path(jar).stat())
    ]
    content = {
        "flink": flink_version,
        "jars": jars,
        "statements": [
            *sql.tables(general),
            *sql.views(general),
            sql.decided_query(),
            *sql.inserts(),
        ],
        "options": sql.join_options(general),  # the dedup horizon (the state TTL) among them
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def _without_where(connectors: Connectors) -> Connectors:
    def general(options: dict[str, str]) -> dict[str, str]:
        return {key: "?" if key in _WHERE else value for key, value in options.items()}

    return dataclasses.replace(
        connectors,
        sources={name: general(options) for name, options in connectors.sources.items()},
        sinks={name: general(options) for name, options in connectors.sinks.items()},
    )


def execute(
    t_env: "TableEnvironment",
    params: JoinParams,
    cache: Path,
    statements: Callable[[], "StatementSet"],
) -> "TableResult":
    """Run the join from its plan in `cache`, compiled and stored first if it is not there.

    The plan is compiled from `statements()`. `t_env` is configured, its functions and tables
    registered. A cached plan that cannot be loaded (a file cut short) is compiled again; a
    cache that cannot be written is logged, and the plan used all the same.
    """
    from pyflink.table import TableResult
    from pyflink.version import __version__ as flink_version

    began = time.monotonic()
    config = t_env.get_config()
    config.set("table.plan.compile.catalog-objects", "IDENTIFIER")
    config.set("table.plan.restore.catalog-objects", "IDENTIFIER")
    plan_file = cache / f"join-{digest(params, flink_version)}.json"
    if plan_file.exists():
        try:
            loaded = _load(t_env, plan_file.read_text())
        except Exception as error:  # the plan is compiled again below, or that fails clearly
            log.warning(
                "the cached plan %s cannot be loaded (%s); planning again",
                plan_file,
                str(error).strip().splitlines()[0][:200],
            )
        else:
            log.info("plan loaded in %.1f s (%s)", time.monotonic() - began, plan_file.name)
            return TableResult(loaded.execute())
    compiled = statements()._j_statement_set.compilePlan()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        written = plan_file.with_suffix(f".{os.getpid()}.tmp")
        written.write_text(compiled.asJsonString())
        os.replace(written, plan_file)  # whole or not at all, should two jobs compile at once
    except OSError as error:
        log.warning("the plan cannot be cached in %s (%s)", cache, error)
    log.info("plan compiled in %.1f s (%s)", time.monotonic() - began, plan_file.name)
    return TableResult(compiled.execute())


def _load(t_env: "TableEnvironment", plan: str) -> Any:
    """The Java CompiledPlan of the JSON `plan`, its tables looked up in `t_env`."""
    from pyflink.java_gateway import get_gateway

    reference = get_gateway().jvm.org.apache.flink.table.api.PlanReference.fromJsonString(plan)
    return t_env._j_tenv.loadPlan(reference)
