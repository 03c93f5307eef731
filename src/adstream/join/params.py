"""The join job's parameters: plain data handed from the app environment to the Flink process."""

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class JoinParams:
    """Everything the Flink job needs, JSON-serialisable (the Flink venv has no pydantic)."""

    bootstrap_servers: str
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
    transactional_id_prefix: str
    consumer_group: str
    connector_jars: tuple[str, ...]
    restore_from: str | None = None
    cluster_address: str | None = None

    def to_json(self) -> str:
        """Serialise for the job process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "JoinParams":
        """Read what `to_json` wrote."""
        values = json.loads(text)
        values["connector_jars"] = tuple(values["connector_jars"])
        return cls(**values)
