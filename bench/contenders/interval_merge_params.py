"""Contender (b): what the entry point hands to its Flink and Spark jobs (plain data, stdlib only).

Both job processes read their parameters from a JSON file written by `interval_merge.py`; this
module imports no engine, so `.venv` (the entry point, the Spark job) and `.venv-flink` (the
Flink job) share it.
"""

import json
from dataclasses import asdict, dataclass
from typing import Any, Self

JOINED_TOPIC = "bench_b_joined"
"""The one topic of this contender: the interval join's output, read by the Spark job."""
"""The columns of the output table, in order."""


class _Json:
    """JSON round trip of a flat frozen dataclass."""

    def to_json(self) -> str:
        """Serialise for the job process."""
        return json.dumps(asdict(self), indent=2)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Read what `to_json` wrote."""
        values: dict[str, Any] = json.loads(text)
        return cls(**values)


@dataclass(frozen=True)
class FlinkJobParams(_Json):
    """The interval join: sources, window, watermarks, sink, checkpoints."""

    bootstrap_servers: str
    window_ms: int
    out_of_orderness_ms: int
    checkpoint_interval_ms: int
    checkpoint_dir: str
    tmp_dir: str
    connector_jars: list[str]
    parallelism: int


@dataclass(frozen=True)
class SparkJobParams(_Json):
    """The streaming MERGE: source topic, trigger, enrichment rules, Spark configuration."""

    bootstrap_servers: str
    checkpoint_dir: str
    trigger_interval_ms: int
    premium_threshold: str
    revenue_multiplier: str
    spark_conf: dict[str, str]
