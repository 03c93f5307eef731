"""The join job's parameters: plain data handed from the app environment to the Flink process."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # the Flink environment has no pydantic: only the app builds parameters
    from adstream.settings import Settings

LOG_PREFIX: Final = "adstream-join:"
"""Every line the job process logs starts with this (after a time stamp)."""
STARTED: Final = "job id:"
"""Logged once the job is submitted: its signal handlers are installed."""
RUNNING: Final = "running:"
"""Logged once the job has completed its first checkpoint: every task reads, and its sinks
commit."""


def logged(marker: str) -> str:
    """How a marker appears in the job's log."""
    return f"{LOG_PREFIX} {marker}"


@dataclass(frozen=True)
class Connectors:
    """How the job's tables reach the event streams (Kafka topics or Kinesis streams).

    Built by the platform seam (`adstream.platform.join_streams`); the SQL only renders it.
    """

    sources: dict[str, dict[str, str]]
    """Per input stream (`impressions`, `clicks`): the WITH options of its table, raw bytes."""
    source_columns: str
    """The source tables' columns that say where a record came from: `source_partition INT`,
    `source_offset BIGINT`, `source_sequence_number STRING` (computed or metadata, NULL where
    the platform has none) and `produced_at TIMESTAMP_LTZ(3)`."""
    sinks: dict[str, dict[str, str]]
    """Per outcome topic: the WITH options of its table, JSON values."""
    keyed_sinks: str
    """How a sink keyed by impression_id says so in its DDL: a clause after the columns (e.g.
    `PARTITIONED BY (impression_id)`), or "" when the options say it."""


@dataclass(frozen=True)
class Runtime:
    """How Flink runs the job when adstream runs Flink itself: checkpoints, state, restarts.

    Also the parallelism and savepoints, in a mini-cluster or the standalone cluster. None on
    Managed Service for Apache Flink, whose application configuration sets all of these
    (deploy/adstream.yaml), so the job leaves them to the service.
    """

    checkpoint_interval_ms: int
    state_backend: str
    parallelism: int
    checkpoint_dir: str
    savepoint_dir: str
    restore_from: str | None = None
    cluster_address: str | None = None
    rest_port: int | None = None
    """Port of the local mini-cluster's REST API (on 127.0.0.1); unused on a cluster."""
    drained_until_ms: int = 0
    """Until when (epoch ms) the state restored may hold ids a drained run left (docs/join.md):
    the newest savepoint's time plus the dedup horizon; 0 when there is no savepoint."""
    plan_cache_dir: str | None = None
    """Where compiled plans of the job are kept (`adstream.join.plans`); None: planned anew."""

    @classmethod
    def from_settings(
        cls,
        settings: "Settings",
        home: Path,
        *,
        bounded: bool,
        restore_from: str | None = None,
        cluster_address: str | None = None,
        rest_port: int | None = None,
        drained_until_ms: int = 0,
    ) -> "Runtime":
        """Checkpoints and savepoints under `home`, the rest from the settings."""
        return cls(
            # A bounded run ends at the first checkpoint that has the input's end: keep it close.
            checkpoint_interval_ms=_ms(
                min(settings.checkpoint_interval.total_seconds(), 1.0)
                if bounded
                else settings.checkpoint_interval.total_seconds()
            ),
            state_backend=settings.join_state_backend,
            parallelism=settings.join_parallelism,
            checkpoint_dir=str(home / "checkpoints"),
            savepoint_dir=str(home / "savepoints"),
            restore_from=restore_from,
            cluster_address=cluster_address,
            rest_port=rest_port,
            drained_until_ms=drained_until_ms,
            plan_cache_dir=str(settings.lib_dir / "flink" / "plans"),
        )


@dataclass(frozen=True)
class JoinParams:
    """Everything the Flink job needs, JSON-serialisable (the Flink venv has no pydantic)."""

    connectors: Connectors
    attribution_window_ms: int
    out_of_orderness_ms: int
    idle_timeout_ms: int
    future_bound_ms: int
    state_ttl_ms: int
    bounded: bool
    connector_jars: tuple[str, ...]
    """Put on `pipeline.jars`; none on MSF, which loads the application's jar itself."""
    runtime: Runtime | None
    """None: the service runs checkpoints, state, parallelism and restarts (MSF)."""

    @classmethod
    def from_settings(
        cls,
        settings: "Settings",
        connectors: Connectors,
        *,
        bounded: bool,
        connector_jars: tuple[str, ...],
        runtime: Runtime | None,
    ) -> "JoinParams":
        """The job's parameters: its semantics from the settings, the rest as given.

        The one builder of every way the job runs: `adstream join` (`adstream.join.launcher`)
        and the MSF application (`adstream.join.msf`).
        """
        return cls(
            connectors=connectors,
            attribution_window_ms=_ms(settings.attribution_window.total_seconds()),
            out_of_orderness_ms=_ms(settings.out_of_orderness.total_seconds()),
            idle_timeout_ms=_ms(settings.idle_timeout.total_seconds()),
            future_bound_ms=_ms(settings.future_bound.total_seconds()),
            state_ttl_ms=_ms(settings.dedup_horizon.total_seconds()),
            bounded=bounded,
            connector_jars=connector_jars,
            runtime=runtime,
        )

    def to_json(self) -> str:
        """Serialise for the job process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "JoinParams":
        """Read what `to_json` wrote."""
        values = json.loads(text)
        values["connectors"] = Connectors(**values["connectors"])
        values["connector_jars"] = tuple(values["connector_jars"])
        if values["runtime"] is not None:
            values["runtime"] = Runtime(**values["runtime"])
        return cls(**values)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
