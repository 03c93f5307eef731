"""The enrichment job's parameters: plain data handed from the CLI process to the Spark process."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from adstream.enrich.offsets import SourceKind
from adstream.settings import CatalogType

EXIT_FAILED: Final = 1
EXIT_LOCKED: Final = 3
"""Another enrichment job holds this data directory's lock."""
LOGGER: Final = "adstream.enrich"
"""The job's logger: its lines in the log read `<time> <level> adstream.enrich: <message>`."""
RUNNING: Final = "running:"
"""Logged once the query has made its first trigger (its sources and tables are open)."""


def logged(marker: str) -> str:
    """How a marker appears in the job's log."""
    return f"{LOGGER}: {marker}"


@dataclass(frozen=True)
class OutcomeStreams:
    """Where the job reads the outcome records, as the platform seam finds them."""

    source: SourceKind
    partitions: dict[str, int]
    """Kafka: the partition count of each outcome topic (Kinesis shards are listed as read)."""
    aws_settings: dict[str, Any]
    """Kinesis: the settings the AWS client and the stream names come from (region, endpoint,
    emulator, stream prefix; never credentials, which come from the AWS chain)."""


@dataclass(frozen=True)
class EnrichParams:
    """Everything the Spark job needs, JSON-serialisable."""

    bootstrap_servers: str
    partitions: dict[str, int]
    """Partition count of each outcome topic (Spark needs every partition's start offset)."""
    spark_conf: dict[str, str]
    catalog_type: CatalogType
    catalog_properties: dict[str, str]
    """pyiceberg's view of the catalog, to read what the tables have taken in."""
    checkpoint_dir: str
    """Where Spark keeps the Kafka query's stream positions (a folder, or an S3 URL on Glue)."""
    lock_file: str | None
    """Held by the job process `adstream enrich` starts, so that no two jobs write one data
    directory's tables; None in a session whose owner sees to that (a Glue job runs once at a
    time: MaxConcurrentRuns 1)."""
    trigger_interval_ms: int
    max_batch_records: int
    bounded: bool
    premium_threshold: str
    revenue_multiplier: str
    source: SourceKind = "kafka"
    """Where the outcome records are read: Kafka (`bootstrap_servers`, `partitions`) or Kinesis
    (`aws_settings`)."""
    aws_settings: dict[str, Any] = field(default_factory=dict)
    maintain_interval_ms: int = 0
    """Maintain the tables this often while the query runs endless (0: never; docs/maintain.md)."""
    snapshot_retention_ms: int = 3_600_000
    orphan_age_ms: int = 3 * 86_400_000
    warm_up_dir: str | None = None
    """Scratch folder where the job first warms its write path up (`adstream.enrich.warmup`);
    None: no warm-up (bounded runs, and Glue, where no one waits for a first result)."""

    def to_json(self) -> str:
        """Serialise for the job process."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "EnrichParams":
        """Read what `to_json` wrote."""
        return cls(**json.loads(text))
