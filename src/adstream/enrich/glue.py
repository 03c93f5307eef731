"""The enrichment as an AWS Glue 5.0 streaming job (SPEC section 9, docs/aws.md).

Glue runs the job's script (`dist/glue/adstream_enrich.py`, written by `adstream package`),
which calls `main` here with Glue's job arguments: `--adstream-settings`, a JSON object of
settings by their names in `adstream.settings.Settings`; `--checkpoint-location`; and Glue's own
`--JOB_NAME`. The job then takes the path `adstream enrich` takes: the same checks and tables
(`launcher.prepare`), the same parameters (`launcher.enrich_params`) and the same job
(`job.run`): on Kinesis the polling reader into the same `BatchWriter`, exactly once by identity.
Only the Spark session differs: Glue's, configured by the job's `--conf` (the Iceberg catalog
`adstream`, the same `spark_catalog_conf` builds) and `--datalake-formats iceberg` (its jars).

Without awsglue (anywhere but Glue) the arguments are parsed by argparse under the same names
and the job builds its session as `adstream enrich` does (the jars of `make setup`); `--bounded`
then reads what the outcome streams hold, writes it and exits (Glue streaming jobs never end).
"""

import argparse
import json
import logging
import os
from typing import Any, Final

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from adstream.enrich.job import Signals, run
from adstream.enrich.launcher import describe, enrich_params, job_environment, prepare
from adstream.enrich.params import EXIT_FAILED, LOGGER
from adstream.enrich.session import build_session, spark_conf
from adstream.errors import AdstreamError
from adstream.settings import Settings, load_settings

log = logging.getLogger(LOGGER)

ARGUMENTS: Final = ("JOB_NAME", "adstream-settings", "checkpoint-location")
"""The job arguments the script reads (Glue's own `--JOB_NAME` among them)."""


def job_arguments(argv: list[str]) -> tuple[dict[str, Any], bool]:
    """The job arguments by their names with `_` for `-`, and whether to run bounded.

    Glue's `getResolvedOptions` where awsglue is importable (it ignores the arguments it was
    not asked for), else argparse with the same names and `--bounded`.
    """
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        parser = argparse.ArgumentParser(
            prog="adstream_enrich.py", description="The adstream enrichment (docs/aws.md)."
        )
        for name in ARGUMENTS:
            parser.add_argument(f"--{name}", required=name != "JOB_NAME")
        parser.add_argument(
            "--bounded",
            action="store_true",
            help="write what the outcome streams hold now, then exit (not on Glue)",
        )
        parsed = vars(parser.parse_args(argv[1:]))
        return parsed, bool(parsed.pop("bounded"))
    return dict(getResolvedOptions(argv, list(ARGUMENTS))), False


def job_settings(text: str) -> Settings:
    """The settings of `--adstream-settings`, validated as every other source of settings is.

    Raises:
        AdstreamError: not a JSON object, or not valid settings (one clear line).
    """
    try:
        values = json.loads(text)
    except ValueError as error:
        raise AdstreamError(f"--adstream-settings is not JSON: {error}") from error
    if not isinstance(values, dict):
        raise AdstreamError("--adstream-settings must be a JSON object of settings")
    return load_settings(**values)


def run_in_session(
    spark: SparkSession, settings: Settings, *, bounded: bool, checkpoint_location: str
) -> None:
    """Run the job in this process, on `spark` (a Glue job's session, or one built here).

    Raises:
        AdstreamError: the streams or tables are not there, or the job failed.
        StreamingQueryException: the Kafka query failed.
    """
    streams = prepare(settings)
    params = enrich_params(
        settings,
        streams,
        bounded=bounded,
        spark_conf={},  # the session is given
        checkpoint_location=checkpoint_location,
        lock_file=None,  # a Glue job runs once at a time (MaxConcurrentRuns 1)
        warm_up_dir=None,
    )
    describe(settings, streams, bounded=bounded)
    signals = Signals()
    signals.install()
    run(spark, params, signals)


def glue_session(arguments: dict[str, Any]) -> tuple[SparkSession, Any] | None:
    """On Glue, its Spark session and the job, initialised; elsewhere None."""
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
    except ImportError:
        return None
    from pyspark.context import SparkContext

    glue = GlueContext(SparkContext.getOrCreate())
    job = Job(glue)
    job.init(arguments["JOB_NAME"], arguments)
    return glue.spark_session, job


def main(argv: list[str]) -> int:
    """Run the job with these arguments (`sys.argv`); the exit code says how it went."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    arguments, bounded = job_arguments(argv)
    try:
        settings = job_settings(arguments["adstream_settings"])
        on_glue = glue_session(arguments)
        if on_glue is None:
            # The JVM starts in this process: it gets what `adstream enrich` gives its job's.
            os.environ.update(job_environment(settings))
            spark = build_session(spark_conf(settings))
        else:
            spark = on_glue[0]
        try:
            location = arguments["checkpoint_location"]
            run_in_session(spark, settings, bounded=bounded, checkpoint_location=location)
        finally:
            if on_glue is None:
                spark.stop()
    except (AdstreamError, StreamingQueryException) as error:
        log.error("the enrichment failed: %s", error)
        return EXIT_FAILED
    if on_glue is not None:
        on_glue[1].commit()
    log.info("done")
    return 0
