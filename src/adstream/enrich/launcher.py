"""Start the Spark enrichment job from the app environment: parameters, checkpoint, logs, exit."""

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from adstream.enrich.params import EXIT_LOCKED, EnrichParams, OutcomeStreams
from adstream.enrich.session import spark_conf, spark_home
from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import catalog_properties, ensure_tables, row_counts
from adstream.platform import outcome_streams
from adstream.services import aws
from adstream.services.process import LogTail, spawn, stop
from adstream.settings import Settings

log = logging.getLogger(__name__)


def checkpoint_dir(settings: Settings) -> Path:
    """The Spark checkpoint of the enrichment query."""
    return spark_home(settings) / "checkpoint"


def enrich_log(settings: Settings) -> Path:
    """What the job process writes: its own lines, and Spark's warnings."""
    return spark_home(settings) / "enrich.log"


def enrich_params(
    settings: Settings,
    streams: OutcomeStreams,
    *,
    bounded: bool,
    spark_conf: dict[str, str],
    checkpoint_location: str,
    lock_file: str | None,
    warm_up_dir: str | None,
) -> EnrichParams:
    """The job's parameters: its work from the settings and streams, its process's as given.

    How its process runs (Spark session, checkpoint, lock, warm-up) is the caller's. The one
    builder of every way the job runs: the process `adstream enrich` starts
    (`local_params`) and a Glue job (`adstream.enrich.glue`).
    """
    return EnrichParams(
        bootstrap_servers=settings.bootstrap_servers,
        partitions=streams.partitions,
        spark_conf=spark_conf,
        catalog_type=settings.iceberg_catalog,
        catalog_properties=catalog_properties(settings),
        checkpoint_dir=checkpoint_location,
        lock_file=lock_file,
        trigger_interval_ms=_ms(settings.enrich_trigger_interval),
        max_batch_records=settings.enrich_max_batch_records,
        bounded=bounded,
        premium_threshold=str(settings.premium_threshold),
        revenue_multiplier=str(settings.revenue_multiplier),
        source=streams.source,
        aws_settings=streams.aws_settings,
        maintain_interval_ms=_ms(settings.maintain_interval),
        snapshot_retention_ms=_ms(settings.maintain_snapshot_retention),
        orphan_age_ms=_ms(settings.maintain_orphan_age),
        warm_up_dir=warm_up_dir,
    )


def _ms(duration: timedelta) -> int:
    return round(duration.total_seconds() * 1000)


def local_params(settings: Settings, streams: OutcomeStreams, *, bounded: bool) -> EnrichParams:
    """The parameters of the job process `adstream enrich` starts.

    Its Spark session has the jars of `make setup`; its checkpoint, lock and warm-up are under
    the data directory.

    Raises:
        AdstreamError: the Spark jars are missing.
    """
    home = spark_home(settings)
    return enrich_params(
        settings,
        streams,
        bounded=bounded,
        spark_conf=spark_conf(settings),
        checkpoint_location=str(checkpoint_dir(settings)),
        lock_file=str(home / "enrich.lock"),
        warm_up_dir=None if bounded else str(home / "warm-up"),
    )


def prepare(settings: Settings) -> OutcomeStreams:
    """Check the outcome streams (creating missing Kafka topics) and create missing tables.

    Raises:
        AdstreamError: a Kinesis stream is missing, or a service does not answer.
    """
    streams = outcome_streams(settings)
    ensure_tables(settings)
    return streams


def job_environment(settings: Settings) -> dict[str, str]:
    """Variables the job's Spark JVM needs.

    With the emulator, its dummy credentials; with a local master, a loopback address (a local
    job needs no network interface).
    """
    environment = aws.sdk_environment(settings)
    if settings.spark_master.startswith("local"):
        environment["SPARK_LOCAL_IP"] = "127.0.0.1"
    return environment


def describe(settings: Settings, streams: OutcomeStreams, *, bounded: bool) -> None:
    """Log what is starting."""
    log.info(
        "starting the enrichment (%s from %s, premium above %s, revenue x %s%s)",
        settings.spark_master,
        streams.source,
        settings.premium_threshold,
        settings.revenue_multiplier,
        ", bounded" if bounded else f", every {settings.enrich_trigger_interval}",
    )


def start_enrich(
    settings: Settings, *, bounded: bool, detached: bool = False
) -> subprocess.Popen[bytes]:
    """Check the outcome streams, create missing tables, start the job.

    The job logs to `<data>/spark/enrich.log`. Missing Kafka topics are created (Kinesis
    streams must exist).

    SIGTERM or SIGINT stops the job cleanly (a batch it interrupts is redone by the next run,
    exactly once). `detached` starts it in a session of its own, so a terminal's Ctrl-C reaches
    only the caller, which stops it.
    """
    streams = prepare(settings)
    params = local_params(settings, streams, bounded=bounded)
    home = spark_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    params_file = home / "enrich-params.json"
    params_file.write_text(params.to_json())
    describe(settings, streams, bounded=bounded)
    environment = dict(os.environ) | job_environment(settings)
    command = [sys.executable, "-m", "adstream.enrich.job", str(params_file)]
    return spawn(command, enrich_log(settings), env=environment, detached=detached)


def run_enrich(settings: Settings, *, bounded: bool) -> None:
    """Run the job to its end: a bounded run exits when everything present is written.

    Raises:
        AdstreamError: the job failed, or another one runs on this data directory.
    """
    began = time.monotonic()
    log_file = enrich_log(settings)
    output = LogTail(log_file)
    process = start_enrich(settings, bounded=bounded)
    # SIGUSR1 (finish, docs/enrich.md) is the job's: passed on, it does not end this process
    # and leave the job running.
    previous = signal.signal(signal.SIGUSR1, lambda signum, _: process.send_signal(signum))
    try:
        code = process.wait()
    except BaseException:  # Ctrl-C or SIGTERM: never leave the job running
        stop([process], name="the enrichment job")
        raise
    finally:
        signal.signal(signal.SIGUSR1, previous)
    if code == EXIT_LOCKED:
        raise AdstreamError(
            f"another enrichment job is running on data directory {settings.data_dir}"
        )
    if code < 0:
        raise AdstreamError(f"the enrichment job was killed (signal {-code}); see {log_file}")
    if code != 0:
        raise AdstreamError(
            f"the enrichment job failed (exit {code}): {output.last_error()}; see {log_file}"
        )
    counts = ", ".join(f"{name} {count:,}" for name, count in row_counts(settings).items())
    log.info("enrichment finished in %.1f s; rows: %s", time.monotonic() - began, counts)
