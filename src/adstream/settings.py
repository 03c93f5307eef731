"""One typed, validated settings object: defaults → adstream.toml → ADSTREAM_* → CLI flags.

Built once by the CLI entry point and passed down; no other module reads the environment.
"""

import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from adstream.errors import AdstreamError

ENV_PREFIX: Final = "ADSTREAM_"
DEFAULT_CONFIG_FILE: Final = Path("adstream.toml")
PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
LONGEST_TRANSACTION: Final = timedelta(hours=1)
"""The local broker's limit on a transaction's timeout (`transaction.max.timeout.ms`)."""


def _seconds(value: Any) -> Any:
    """Durations are given in seconds everywhere ("90", 90, 1.5); ISO-8601 ("PT90S") works too."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


Seconds = Annotated[timedelta, BeforeValidator(_seconds)]
CatalogType = Literal["sql", "rest", "glue"]
Platform = Literal["local", "aws"]
StateBackend = Literal["hashmap", "rocksdb"]
QueryEngine = Literal["duckdb", "athena"]


class Settings(BaseSettings):
    """Every setting of adstream. Each field is also an `ADSTREAM_<NAME>` variable and a flag."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    # Where things live.
    data_dir: Path = Field(Path(".adstream"), description="Data directory of this instance.")
    lib_dir: Path = Field(
        PROJECT_ROOT / "lib", description="Folder of the jars fetched by `make setup`."
    )

    # Where it runs (SPEC section 9; docs/aws.md).
    platform: Platform = Field(
        "local",
        description="local: Kafka and files on this machine; aws: Kinesis, S3, Glue (the real "
        "services, or the emulator with --emulator).",
    )
    aws_region: str = Field("us-east-1", description="AWS region of every AWS client.")
    aws_endpoint_url: str | None = Field(
        None,
        description="Send every AWS request (Python, Flink, Spark) to this endpoint instead of "
        "AWS's own, e.g. an emulator; unset: the real AWS endpoints.",
    )
    aws_emulator: bool = Field(
        False,
        description="Use the local AWS API emulator (moto) of this data directory, on "
        "127.0.0.1: `adstream up` starts it; dummy credentials.",
    )
    aws_emulator_port: int = Field(
        4566, ge=1, le=65535, description="Port of the local AWS API emulator."
    )
    stream_prefix: str = Field(
        "",
        pattern=r"^[a-zA-Z0-9_.-]{0,64}$",
        description="Prepended to each topic name to name its Kinesis stream.",
    )
    stream_shards: int = Field(
        2, ge=1, le=500, description="Shards of each Kinesis stream adstream creates."
    )

    # Event streams.
    kafka_bootstrap_servers: str | None = Field(
        None, description="Use this Kafka cluster instead of the local broker (host:port,...)."
    )
    kafka_host: str = Field("127.0.0.1", description="Address the local broker binds to.")
    kafka_port: int = Field(9092, ge=1, le=65535, description="Port of the local broker.")
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="KRaft controller port of the local broker."
    )
    kafka_heap: str = Field("1g", pattern=r"^\d+[mg]$", description="Java heap of the broker.")
    topic_partitions: int = Field(2, ge=1, le=64, description="Partitions per topic.")
    startup_timeout: Seconds = Field(
        timedelta(minutes=3), description="How long to wait for a service to come up."
    )

    # Generator (SPEC section 8).
    seed: int = Field(1, description="Seed of the generator: the same seed gives the same events.")
    rate: float = Field(
        1000.0, ge=0.0, description="Events per second to produce; 0 = as fast as possible."
    )
    events: int | None = Field(None, ge=0, description="Stop after this many events.")
    duration: Seconds | None = Field(None, description="Stop after this long (seconds).")
    start_time: datetime | None = Field(
        None, description="Event time of the first event (UTC); default: now."
    )
    event_time_rate: float = Field(
        1000.0,
        gt=0.0,
        description="Events per second of event time when --rate is 0 (unthrottled).",
    )
    out_of_order_fraction: float = Field(
        0.02, ge=0, le=1, description="Share of events delayed by less than the out-of-orderness."
    )
    late_fraction: float = Field(
        0.001, ge=0, le=1, description="Share of events delayed far behind the watermark."
    )
    duplicate_impression_fraction: float = Field(
        0.005, ge=0, le=1, description="Share of impressions sent twice with different times."
    )
    duplicate_click_fraction: float = Field(
        0.01, ge=0, le=1, description="Share of clicks sent twice."
    )
    orphan_click_fraction: float = Field(
        0.005, ge=0, le=1, description="Clicks without an impression, as a share of all clicks."
    )
    invalid_fraction: float = Field(
        0.001, ge=0, le=1, description="Share of events replaced by an invalid record."
    )

    # Join semantics (SPEC section 3).
    attribution_window: Seconds = Field(
        timedelta(minutes=10), description="Attribution window W (seconds)."
    )
    out_of_orderness: Seconds = Field(
        timedelta(seconds=5), description="Watermark out-of-orderness D (seconds)."
    )
    idle_timeout: Seconds = Field(
        timedelta(seconds=10), description="Source idle timeout (seconds)."
    )
    future_bound: Seconds = Field(
        timedelta(hours=1),
        description="Events further ahead of the clock than this are future_timestamp (seconds).",
    )
    checkpoint_interval: Seconds = Field(
        timedelta(seconds=2),
        description="Flink checkpoint (and commit) interval (seconds): how soon the join's "
        "results become visible.",
    )
    join_transaction_timeout: Seconds = Field(
        timedelta(minutes=15),
        description="How long the join's Kafka transactions may stay open (seconds; at most the "
        "local broker's limit, an hour): well above the checkpoint interval plus a restart. A "
        "join paused for longer (a stopped process, a long GC pause) finds its open transactions "
        "aborted by the broker and stops; `adstream run` restarts it from the checkpoint "
        "before them, which writes their outcomes again.",
    )
    dedup_horizon: Seconds = Field(
        timedelta(hours=1),
        description="How long the join remembers an impression_id for deduplication (seconds).",
    )
    join_parallelism: int = Field(1, ge=1, le=64, description="Parallelism of the join job.")
    join_state_backend: StateBackend = Field(
        "hashmap",
        description="Where the join keeps its state: hashmap (on the Java heap, fastest) or "
        "rocksdb (on local disk, for state larger than the heap).",
    )
    flink_local_heap: str | None = Field(
        None,
        pattern=r"^\d+[mg]$",
        description="Java heap of the join's local Flink mini-cluster (without --cluster); "
        "unset: the JVM's default, a quarter of physical memory.",
    )
    flink_local_gc_time_ratio: int = Field(
        2,
        ge=1,
        le=99,
        description="G1's GCTimeRatio for the join's local mini-cluster JVM (without --cluster): "
        "its heap grows only when collecting takes over 1/(1+N) of the time. With the JVM's own "
        "12 it grows to its maximum, far above the live state (docs/benchmarks.md).",
    )
    flink_python: Path = Field(
        PROJECT_ROOT / ".venv-flink" / "bin" / "python",
        description="Python of the Flink environment (made by `make setup`).",
    )

    # Standalone Flink cluster (`adstream up --cluster`, `adstream join --cluster`).
    flink_rest_port: int = Field(
        8081, ge=1, le=65535, description="REST port (and web UI) of the local Flink cluster."
    )
    flink_rpc_port: int = Field(
        6123,
        ge=1,
        le=65000,
        description="First of the cluster's RPC ports: JobManager, blob server, then one per "
        "TaskManager.",
    )
    flink_taskmanagers: int = Field(
        2, ge=1, le=16, description="TaskManager processes of the local Flink cluster."
    )
    flink_task_slots: int = Field(1, ge=1, le=16, description="Task slots per TaskManager.")
    flink_jobmanager_memory: str = Field(
        "1024m", pattern=r"^\d+[mg]$", description="Process memory of the JobManager."
    )
    flink_taskmanager_memory: str = Field(
        "1536m", pattern=r"^\d+[mg]$", description="Process memory of each TaskManager."
    )

    # Iceberg catalog and warehouse (SPEC section 6; see docs/enrich.md).
    catalog_type: CatalogType | None = Field(
        None,
        description="Iceberg catalog kind: sql (JDBC/SQLAlchemy), rest or glue (the AWS Glue "
        "Data Catalog); default: sql on local, glue on aws.",
    )
    catalog_uri: str | None = Field(
        None,
        description="Catalog address: a SQLAlchemy URL for sql (default: SQLite file "
        "<data-dir>/lakehouse/catalog.db), the endpoint for rest; unused for glue.",
    )
    warehouse: str | None = Field(
        None,
        description="Where table files live: a folder, file:// or s3:// URL (default: "
        "<data-dir>/lakehouse/warehouse; on aws an s3://bucket/prefix URL is required, except "
        "with the emulator: s3://adstream-lakehouse/warehouse).",
    )
    catalog_properties: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Iceberg catalog properties for both pyiceberg and Spark "
        "(e.g. client.region, s3.endpoint); a TOML table or a JSON object.",
    )

    # Queries (`adstream query`; on AWS, Athena: SPEC section 9, docs/aws.md).
    query_engine: QueryEngine = Field(
        "duckdb",
        description="Where `adstream query` runs: duckdb (the tables' current snapshots, read "
        "on this machine) or athena (Amazon Athena, the SQL translated from DuckDB's dialect).",
    )
    athena_workgroup: str = Field(
        "adstream",
        pattern=r"^[a-zA-Z0-9._-]{1,128}$",
        description="Athena workgroup the queries run in.",
    )
    athena_output_location: str | None = Field(
        None,
        pattern=r"^s3://[^/]+",
        description="S3 URL Athena writes query results to (s3://bucket/prefix/); unset: the "
        "workgroup's configured location.",
    )
    athena_timeout: Seconds = Field(
        timedelta(minutes=10),
        gt=timedelta(0),
        description="How long to wait for an Athena query before stopping it (seconds).",
    )

    # Enrichment (SPEC section 5).
    premium_threshold: Decimal = Field(
        Decimal("50.00"),
        ge=0,
        max_digits=18,
        decimal_places=6,
        description="An ad is premium when its bid_price is above this (USD).",
    )
    revenue_multiplier: Decimal = Field(
        Decimal("1.2"),
        gt=0,
        max_digits=18,
        decimal_places=12,
        description="click_revenue = click_price times this, rounded half-up to 6 places.",
    )
    enrich_trigger_interval: Seconds = Field(
        timedelta(seconds=2), description="Micro-batch interval of the enrichment job (seconds)."
    )
    enrich_max_batch_records: int = Field(
        500_000,
        ge=1,
        description="At most this many outcome records per micro-batch (bounds a catch-up's "
        "memory).",
    )
    spark_master: str = Field("local[*]", description="Spark master of the enrichment job.")
    spark_driver_memory: str = Field(
        "1g", pattern=r"^\d+[mg]$", description="Java heap of the Spark driver."
    )

    # Table maintenance (`adstream maintain`, and the enrichment on an interval; docs/maintain.md).
    maintain_snapshot_retention: Seconds = Field(
        timedelta(hours=1),
        description="Snapshots older than this are expired (seconds); the newest that records "
        "the enrichment's positions is always kept.",
    )
    maintain_orphan_age: Seconds = Field(
        timedelta(days=3),
        ge=timedelta(days=1),
        description="Unreferenced files older than this are removed (seconds; at least a day, "
        "so no write in progress is taken for an orphan).",
    )
    maintain_interval: Seconds = Field(
        timedelta(minutes=10),
        description="The enrichment maintains the tables this often while it runs (seconds; 0: "
        "never).",
    )

    # The whole pipeline (`adstream run`; docs/run.md).
    restarts: int = Field(
        3,
        ge=0,
        description="How many times in a row `adstream run` restarts a job, or the broker it "
        "started, that stops unexpectedly, each after a wait twice the last (1 s first); one "
        "that then runs 10 minutes has them all again.",
    )

    # Dashboard (`adstream dashboard`, also started by `adstream run`; docs/dashboard.md).
    dashboard_host: str = Field(
        "127.0.0.1",
        description="Address the dashboard binds to; any but a loopback address needs "
        "dashboard_password.",
    )
    dashboard_port: int = Field(
        8765, ge=0, le=65535, description="Port of the dashboard; 0 = any free port."
    )
    dashboard_refresh: Seconds = Field(
        timedelta(seconds=5),
        gt=timedelta(0),
        description="How often the dashboard page refreshes itself (seconds).",
    )
    dashboard_password: SecretStr | None = Field(
        None,
        description="When set, the dashboard asks for it (HTTP Basic auth, user adstream). "
        "Give it in the environment or the settings file, not as a flag.",
    )

    @field_validator("start_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Settings":
        if self.kafka_port == self.kafka_controller_port:
            raise ValueError("kafka_port and kafka_controller_port must differ")
        if self.flink_rest_port in self.flink_rpc_ports:
            raise ValueError("flink_rest_port must lie outside the flink_rpc_port range")
        if self.aws_emulator and self.aws_endpoint_url is not None:
            raise ValueError("aws_emulator and aws_endpoint_url exclude each other")
        return self

    @model_validator(mode="after")
    def _transactions_outlive_checkpoints(self) -> "Settings":
        if not self.checkpoint_interval < self.join_transaction_timeout <= LONGEST_TRANSACTION:
            raise ValueError(
                "join_transaction_timeout must exceed checkpoint_interval and be at most "
                f"{LONGEST_TRANSACTION.total_seconds():.0f} s (the broker's limit)"
            )
        return self

    @property
    def flink_rpc_ports(self) -> range:
        """The cluster's fixed RPC ports: JobManager, blob server, one per TaskManager."""
        return range(self.flink_rpc_port, self.flink_rpc_port + 2 + self.flink_taskmanagers)

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap servers clients connect to."""
        return self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def aws_endpoint(self) -> str | None:
        """Where AWS clients send requests (the emulator, a configured one); None: AWS's own."""
        if self.aws_emulator:
            return f"http://127.0.0.1:{self.aws_emulator_port}"
        return self.aws_endpoint_url

    @property
    def iceberg_catalog(self) -> CatalogType:
        """The catalog kind in effect: `catalog_type`, else the platform's (SPEC section 9)."""
        if self.catalog_type is not None:
            return self.catalog_type
        return "glue" if self.platform == "aws" else "sql"

    def stream_name(self, topic: str) -> str:
        """The Kinesis stream of a topic (SPEC section 9)."""
        return f"{self.stream_prefix}{topic}"

    @property
    def uses_local_kafka(self) -> bool:
        """Whether adstream runs the broker itself (no external cluster configured)."""
        return self.kafka_bootstrap_servers is None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) win over the environment; the settings file is merged by `load`."""
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings: defaults, then the settings file, then ADSTREAM_*, then flags.

    Args:
        config_file: the settings file; None means `./adstream.toml` when it exists.
        **flags: values given on the command line; None means "not given".

    Raises:
        AdstreamError: the file cannot be read or a value is invalid (one clear line).
    """
    file_values = _read_config_file(config_file)
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        from_env_and_flags = Settings(**given)
        env_and_flags = from_env_and_flags.model_dump(exclude_unset=True)
        return Settings.model_validate({**file_values, **env_and_flags})
    except ValidationError as error:
        raise AdstreamError(_describe(error)) from error


def _read_config_file(config_file: Path | None) -> dict[str, Any]:
    path = config_file or DEFAULT_CONFIG_FILE
    if config_file is None and not path.exists():
        return {}
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except FileNotFoundError as error:
        raise AdstreamError(f"settings file {path} does not exist") from error
    except tomllib.TOMLDecodeError as error:
        raise AdstreamError(f"settings file {path} is not valid TOML: {error}") from error
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise AdstreamError(f"settings file {path}: unknown setting {unknown[0]!r}")
    return values


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    return f"invalid setting {name} ({ENV_PREFIX}{name.upper()}): {first['msg']}"
