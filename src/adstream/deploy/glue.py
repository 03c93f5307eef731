"""The Glue 5.0 streaming job: `dist/glue/`.

    adstream_enrich.py              the job's script (deploy/glue/adstream_enrich.py), which runs
                                    `adstream.enrich.glue`
    adstream-<version>-py3-none-any.whl
                                    adstream itself (`pip wheel --no-deps`)
    job-arguments.json              every job argument: the settings, the Iceberg catalog, the
                                    Python packages, the checkpoint

Glue installs `--additional-python-modules` with pip, with `--no-deps`
(`--python-modules-installer-option`): adstream's wheel requires everything the app needs, Spark
among it, which Glue has. So the packages the job needs are listed one by one instead, pinned to
this environment's versions with everything they require: `GLUE_NEEDS` (by their names in
pyproject.toml) less Glue's Spark (`GLUE_PROVIDED`).

The code's place follows the template's layout (deploy/adstream.yaml): under the stack's
`s3://<bucket>/<prefix>/`, the warehouse is `warehouse/`, the code `glue/` and the checkpoint
`checkpoints/enrich/`; so the warehouse setting names it.
"""

import json
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Final

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from adstream.deploy.python import SOURCE_ROOT, pinned, pip, run
from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import spark_catalog_conf
from adstream.settings import PROJECT_ROOT, Settings

GLUE_DIR: Final = "glue"
SCRIPT: Final = "adstream_enrich.py"
ARGUMENTS_FILE: Final = "job-arguments.json"
ICEBERG_EXTENSIONS: Final = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
GLUE_NEEDS: Final = ("boto3", "confluent-kafka", "pyarrow", "pydantic-settings", "pyiceberg")
"""What the job imports beyond Spark: the settings; AWS; the Iceberg catalog, whose S3 files
pyiceberg reads with pyarrow; and confluent-kafka, which the platform seam imports though the
job does not use Kafka on Glue."""
GLUE_PROVIDED: Final = ("pyspark", "py4j")
"""Glue's Spark."""
SETTINGS_ALWAYS: Final = ("platform", "aws_region", "stream_prefix", "warehouse")
SETTINGS_WHEN_SET: Final = (
    "catalog_properties",
    "premium_threshold",
    "revenue_multiplier",
    "enrich_trigger_interval",
    "enrich_max_batch_records",
)
_WAREHOUSE: Final = re.compile(r"^(s3://[a-z0-9][a-z0-9.-]+(?:/[^/]+)*)/warehouse$")


def stack_location(settings: Settings) -> str:
    """`s3://<bucket>/<prefix>`: where the template puts the warehouse, the code, the checkpoint.

    Raises:
        AdstreamError: the warehouse is not `s3://<bucket>/<prefix>/warehouse`.
    """
    found = _WAREHOUSE.match(settings.warehouse or "")
    if found is None:
        raise AdstreamError(
            "`adstream package` needs the stack's warehouse: set warehouse = "
            '"s3://<bucket>/<prefix>/warehouse" (ADSTREAM_WAREHOUSE, --warehouse), as '
            "deploy/adstream.yaml lays it out"
        )
    return found[1]


def job_settings(settings: Settings) -> dict[str, object]:
    """The job's `--adstream-settings`: where it runs, and the enrichment settings set here."""
    names = {*SETTINGS_ALWAYS, *(n for n in SETTINGS_WHEN_SET if n in settings.model_fields_set)}
    values: dict[str, object] = settings.model_dump(mode="json", include=names)
    values["platform"] = "aws"
    return values


def requirements() -> list[str]:
    """The Python packages for `--additional-python-modules`, pinned."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    wanted = {canonicalize_name(name) for name in GLUE_NEEDS}
    roots = [
        dependency
        for dependency in project["project"]["dependencies"]
        if canonicalize_name(Requirement(dependency).name) in wanted
    ]
    return pinned(roots, provided=GLUE_PROVIDED)


def job_arguments(settings: Settings, wheel: str, modules: list[str]) -> dict[str, str]:
    """Every argument of the Glue job, as the template's DefaultArguments hold them."""
    base = stack_location(settings)
    values = job_settings(settings)
    # The catalog the job builds from these settings on Glue: Settings as the job reads them.
    on_glue = Settings.model_validate(values)
    conf = {"spark.sql.extensions": ICEBERG_EXTENSIONS, **spark_catalog_conf(on_glue)}
    return {
        "--job-language": "python",
        "--datalake-formats": "iceberg",
        # Glue takes several Spark confs in one value, joined by " --conf ".
        "--conf": " --conf ".join(f"{key}={value}" for key, value in conf.items()),
        "--additional-python-modules": ",".join([f"{base}/{GLUE_DIR}/{wheel}", *modules]),
        "--python-modules-installer-option": "--no-deps",
        "--adstream-settings": json.dumps(values),
        "--checkpoint-location": f"{base}/checkpoints/enrich/",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
    }


def build_wheel(output: Path, progress: Callable[[str], None]) -> Path:
    """The wheel of adstream, built from a copy of the sources (the tree stays clean).

    Raises:
        AdstreamError: the build fails.
    """
    progress("building adstream's wheel (pip wheel --no-deps)")
    for old in output.glob("adstream-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="adstream-wheel-") as scratch:
        tree = Path(scratch)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(PROJECT_ROOT / name, tree / name)
        shutil.copytree(
            SOURCE_ROOT / "adstream",
            tree / "src" / "adstream",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        run(pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(output), scratch), "pip wheel")
    wheels = sorted(output.glob("adstream-*.whl"))
    if len(wheels) != 1:
        raise AdstreamError(f"pip wheel left {len(wheels)} adstream wheels in {output}")
    return wheels[0]


def build_glue_job(settings: Settings, output: Path, progress: Callable[[str], None]) -> list[Path]:
    """Build `output/glue/`: the script, the wheel and the job arguments; return their paths.

    Raises:
        AdstreamError: the warehouse is not the stack's, or a build step fails.
    """
    stack_location(settings)  # before any build: the arguments need it
    script = PROJECT_ROOT / "deploy" / GLUE_DIR / SCRIPT
    if not script.exists():
        raise AdstreamError(f"{script} not found: `adstream package` runs in the source tree")
    folder = output / GLUE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(script, folder / SCRIPT)
    wheel = build_wheel(folder, progress)
    arguments = job_arguments(settings, wheel.name, requirements())
    (folder / ARGUMENTS_FILE).write_text(json.dumps(arguments, indent=2) + "\n")
    return [folder / SCRIPT, wheel, folder / ARGUMENTS_FILE]
