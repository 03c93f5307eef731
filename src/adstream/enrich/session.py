"""The Spark session of the enrichment job: jars, Iceberg catalog, UTC."""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pyspark.sql import SparkSession

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import spark_catalog_conf
from adstream.settings import Settings

_SPARK_JARS = (
    "iceberg-spark-runtime-3.5_2.12",
    "iceberg-aws-bundle",
    "spark-sql-kafka-0-10_2.12",
    "spark-token-provider-kafka-0-10_2.12",
    "kafka-clients",
    "commons-pool2",
    "sqlite-jdbc",
)

UTC: Final = {"spark.sql.session.timeZone": "UTC"}
"""The session's time zone: what a time without a zone is read in, and what `decode` parses the
join's times in. Set on every session the job runs in, a Glue job's too."""


def spark_home(settings: Settings) -> Path:
    """Checkpoint, parameters and logs of the enrichment job live here."""
    return settings.data_dir.resolve() / "spark"


def base_conf(master: str) -> dict[str, str]:
    """Settings every adstream Spark session shares (also the unit tests' session)."""
    conf = {
        "spark.master": master,
        **UTC,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "WARN",
        # Python workers must run in this environment, not whatever `python3` is first.
        "spark.pyspark.python": sys.executable,
    }
    if master.startswith("local"):
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    return conf


def spark_conf(settings: Settings) -> dict[str, str]:
    """The enrichment job's Spark configuration.

    Raises:
        AdstreamError: the jars fetched by `make setup` are missing.
    """
    jar_dir = settings.lib_dir / "spark"
    jars = sorted(jar_dir.glob("*.jar"))
    missing = [name for name in _SPARK_JARS if not any(j.name.startswith(name) for j in jars)]
    if missing:
        raise AdstreamError(f"Spark jars not found in {jar_dir} ({missing[0]}); run `make setup`")
    return {
        **base_conf(settings.spark_master),
        "spark.app.name": "adstream-enrich",
        "spark.driver.memory": settings.spark_driver_memory,
        # Scratch files (shuffle, and a copy of every jar) in the data directory, not in /tmp,
        # where a killed JVM would leave them.
        "spark.local.dir": str(spark_home(settings) / "scratch"),
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.sql.extensions": (
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
        ),
        # Micro-batches are small; adaptive execution merges partitions further.
        "spark.sql.shuffle.partitions": "4",
        **spark_catalog_conf(settings),
    }


def build_session(conf: Mapping[str, str]) -> SparkSession:
    """A Spark session with `conf` (the JVM starts here, not at import)."""
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
