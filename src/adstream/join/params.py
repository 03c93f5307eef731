"""The join job's parameters: plain data handed from the app environment to the Flink process."""

import json
from dataclasses import asdict, dataclass
from typing import Final

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
class JoinParams:
    """Everything the Flink job needs, JSON-serialisable (the Flink venv has no pydantic)."""

    connectors: Connectors
    attribution_window_ms: int
    out_of_orderness_ms: int
    idle_timeout_ms: int
    future_bound_ms: int
    checkpoint_interval_ms: int
    state_ttl_ms: int
    state_backend: str
    parallelism: int
    bounded: bool
    checkpoint_dir: str
    savepoint_dir: str
    connector_jars: tuple[str, ...]
    restore_from: str | None = None
    cluster_address: str | None = None
    rest_port: int | None = None
    """Port of the local mini-cluster's REST API (on 127.0.0.1); unused on a cluster."""

    def to_json(self) -> str:
        """Serialise for the job process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "JoinParams":
        """Read what `to_json` wrote."""
        values = json.loads(text)
        values["connectors"] = Connectors(**values["connectors"])
        values["connector_jars"] = tuple(values["connector_jars"])
        return cls(**values)
