"""The join as an Amazon Managed Service for Apache Flink application (SPEC section 9).

MSF gives an application the property groups of its configuration (deploy/adstream.yaml) as a
JSON file, a list of `{"PropertyGroupId": ..., "PropertyMap": {...}}`. adstream's group holds
Settings fields by their names, validated as every other source of settings is, so a property
MSF passes means what the same `ADSTREAM_*` variable or flag means.

MSF runs the Python file its group `kinesis.analytics.flink.run.options` names:
`adstream_msf/main.py` of the zip `adstream package` builds, which calls `main` here. The
settings become the job's parameters through the same builder as `adstream join`
(`JoinParams.from_settings`, the streams of `KinesisStreams`), and the same job is submitted
(`adstream.join.job.submit`). The service runs checkpoints, state, parallelism and restarts and
loads the application's jar: the parameters carry neither a runtime nor jars, and `main` returns
once the job is submitted. `--local` runs the package anywhere else PyFlink is (against AWS or an
emulator): the job runs in a mini-cluster in this process, with the package's jar on
`pipeline.jars` and checkpoints as `adstream join` keeps them, and `main` waits for it;
`--bounded` then reads what the input streams hold when the job starts, emits every result and
ends.
"""

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Final

import adstream
from adstream.errors import AdstreamError
from adstream.join.params import STARTED, JoinParams, Runtime
from adstream.join.streams import KinesisStreams
from adstream.settings import Settings, load_settings

log = logging.getLogger("adstream.join")

RUNTIME_PROPERTIES: Final = Path("/etc/flink/application_properties.json")
"""Where MSF writes the application's property groups."""
SETTINGS_GROUP: Final = "adstream"


def runtime_settings(path: Path = RUNTIME_PROPERTIES) -> Settings:
    """The settings in the `adstream` property group of the runtime properties at `path`.

    Raises:
        AdstreamError: the file is missing or not MSF's format, the group is missing, or a
            property is not a valid setting (one clear line).
    """
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise AdstreamError(
            f"no runtime properties at {path}: is this a Managed Flink application?"
        ) from error
    except (OSError, ValueError) as error:
        raise AdstreamError(f"cannot read the runtime properties at {path}: {error}") from error
    try:
        by_id = {group["PropertyGroupId"]: group["PropertyMap"] for group in groups}
    except (TypeError, KeyError) as error:
        raise AdstreamError(
            f"{path} is not a list of PropertyGroupId/PropertyMap objects"
        ) from error
    if SETTINGS_GROUP not in by_id:
        raise AdstreamError(
            f"the runtime properties at {path} have no property group {SETTINGS_GROUP!r} "
            f"(groups: {', '.join(sorted(by_id)) or 'none'})"
        )
    return load_settings(**by_id[SETTINGS_GROUP])


def msf_params(settings: Settings, *, local_jar: Path | None, bounded: bool) -> JoinParams:
    """The job's parameters: on MSF (`local_jar` None) without runtime and jars, else with both.

    Raises:
        AdstreamError: the settings are not aws's, a stream is missing or AWS does not answer.
    """
    if settings.platform != "aws":  # an MSF application reads and writes Kinesis streams only
        raise AdstreamError(f"property group {SETTINGS_GROUP!r}: platform must be aws")
    streams = KinesisStreams(settings)
    streams.require()
    runtime = None
    if local_jar is not None:
        home = settings.data_dir.resolve() / "flink-msf"  # apart from `adstream join`'s
        runtime = Runtime.from_settings(settings, home, bounded=bounded)
    return JoinParams.from_settings(
        settings,
        streams.connectors(to_latest=bounded),
        bounded=bounded,
        connector_jars=(str(local_jar),) if local_jar is not None else (),
        runtime=runtime,
    )


def main(argv: list[str], *, jar: Path) -> int:
    """Submit the join; with `--local`, run it here and wait for it to end.

    Args:
        argv: the command line after the program name.
        jar: the package's jar (`lib/adstream-msf.jar`), put on `pipeline.jars` with `--local`.
    """
    parser = argparse.ArgumentParser(
        prog="adstream_msf/main.py", description="The adstream join on MSF (docs/aws.md)."
    )
    parser.add_argument(
        "--properties",
        type=Path,
        default=RUNTIME_PROPERTIES,
        help=f"the runtime properties (JSON) [default: {RUNTIME_PROPERTIES}, where MSF puts them]",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="run outside MSF: a mini-cluster in this process, the jar on pipeline.jars, "
        "checkpoints under the data directory; wait for the job",
    )
    parser.add_argument(
        "--bounded",
        action="store_true",
        help="with --local: read what the input streams hold now, emit every result, end",
    )
    args = parser.parse_args(argv)
    if args.bounded and not args.local:
        parser.error("--bounded runs only with --local")
    # PyFlink (and its JVM) only now: the settings above are read without it.
    from adstream.join.job import log_to_stderr, submit

    log_to_stderr()
    log.info("adstream %s from %s", adstream.__version__, Path(adstream.__file__).parent)
    try:
        settings = runtime_settings(args.properties)
        params = msf_params(settings, local_jar=jar if args.local else None, bounded=args.bounded)
    except AdstreamError as error:
        log.error("error: %s", error)
        return 1
    log.info("parameters: %s", params.to_json())
    # The JVM PyFlink starts inherits this environment: with the emulator, its dummy
    # credentials and JSON instead of CBOR (nothing on AWS).
    os.environ.update(KinesisStreams(settings).environment())
    result = submit(params)
    job_client = result.get_job_client()
    log.info("%s %s", STARTED, job_client.get_job_id() if job_client is not None else "?")
    if args.local:
        result.wait()  # raises when the job failed
        log.info("job finished")
    return 0
