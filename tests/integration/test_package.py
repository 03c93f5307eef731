"""`adstream package` (SPEC section 9): the MSF application zip and the Glue job, run as built.

The package is built once, by the real CLI. The MSF zip is unzipped into an empty folder and
run from there with PyFlink, in a Python environment that cannot import the project's source
tree, against the emulator's Kinesis: its outcomes equal the reference recomputation. The Glue
script runs with the project's Python (no awsglue: its argparse fallback) and adstream from the
built wheel, against the emulator's Kinesis, S3 and Glue: the tables hold exactly the outcomes
enriched, and every package it imported is one the job arguments install (or Glue's Spark).
The job arguments are exactly those the CloudFormation template gives the job, and the
Athena SQL is every shipped query's translation.
"""

import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
import sqlglot
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from adstream.athena import athena_sql
from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import generate
from adstream.platform import event_sink
from adstream.services.kinesis import ensure_streams
from adstream.settings import PROJECT_ROOT, Settings
from adstream.shipped_queries import SHIPPED_QUERIES
from tests.cli import adstream
from tests.integration.test_deploy_template import (
    BUCKET,
    PREFIX,
    REGION,
    STREAM_PREFIX,
    resolved_properties,
)
from tests.integration.test_enrich import batch_a
from tests.integration.test_enrich_kinesis import assert_tables, lake, on_kinesis, put
from tests.join_harness import assert_same_outputs, expected_outputs, read_outputs

pytestmark = pytest.mark.integration

FLINK_PYTHON: Final = PROJECT_ROOT / ".venv-flink" / "bin" / "python"
GLUE_SPARK: Final = {"pyspark", "py4j", "numpy", "psutil"}
"""Glue's Spark, and what its PySpark imports (numpy; psutil when present)."""
RECORD_IMPORTS: Final = """
import json, runpy, sys
record, script = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
before = set(sys.modules)
try:
    runpy.run_path(script, run_name="__main__")
finally:
    import adstream
    with open(record, "w") as out:
        json.dump({"modules": sorted({m.split(".")[0] for m in set(sys.modules) - before}),
                   "adstream": adstream.__file__}, out)
"""
"""Runs a script as Python would, then notes the top-level modules it imported."""


PROBE: Final = """
import importlib.util, json, sys
found = [importlib.util.find_spec(name) is not None for name in ("pyflink", "adstream")]
print(json.dumps([sys.path, *found]))
"""
"""What a Python environment has: its path, PyFlink, adstream."""


def without_adstream_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ADSTREAM_")}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`adstream package`, once, for the stack the template tests deploy."""
    output = tmp_path_factory.mktemp("package") / "dist"
    result = adstream(
        "package",
        "--output",
        str(output),
        "--warehouse",
        f"s3://{BUCKET}/{PREFIX}/warehouse",
        "--aws-region",
        REGION,
        "--stream-prefix",
        STREAM_PREFIX,
        env=without_adstream_variables(),
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    return output


def job_arguments(dist: Path) -> dict[str, str]:
    arguments: dict[str, str] = json.loads((dist / "glue" / "job-arguments.json").read_text())
    return arguments


def clean_flink_python(folder: Path) -> Path:
    """A Python with PyFlink (.venv-flink's packages) but without the project's source tree.

    .venv-flink has adstream installed in editable mode (a .pth naming src/); this environment
    reads .venv-flink's packages as a plain path, so that .pth is not processed.
    """
    probe = "import sys, sysconfig; print(sys._base_executable, sysconfig.get_path('purelib'))"
    base, packages = subprocess.run(
        [str(FLINK_PYTHON), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(own, "pyflink-only.pth").write_text(packages + "\n")
    return python


def test_the_msf_zip_holds_the_entry_the_jar_and_the_joins_python(dist: Path) -> None:
    with zipfile.ZipFile(dist / "adstream-msf.zip") as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {"adstream_msf", "lib"}
    assert "adstream_msf/main.py" in names
    assert "lib/adstream-msf.jar" in names
    adstream_files = {n.removeprefix("lib/python/") for n in names if "python/adstream/" in n}
    assert {
        "adstream/join/msf.py",
        "adstream/join/job.py",
        "adstream/settings.py",
    } <= adstream_files
    assert not [n for n in adstream_files if n.startswith(("adstream/enrich/", "adstream/deploy/"))]
    # pydantic-core for MSF's Python (3.12) and for this project's PyFlink (3.11).
    assert {n.rsplit("/", 1)[1] for n in names if n.endswith(".so")} == {
        "_pydantic_core.cpython-311-x86_64-linux-gnu.so",
        "_pydantic_core.cpython-312-x86_64-linux-gnu.so",
    }


def test_the_msf_zip_runs_self_contained_and_joins_like_the_reference(
    dist: Path, aws_settings: Settings, tmp_path: Path
) -> None:
    settings = aws_settings.model_copy(
        update={
            "data_dir": tmp_path / "data",
            "seed": 7,
            "rate": 0.0,
            "events": 3_000,
            "start_time": datetime(2026, 11, 1, tzinfo=UTC),
            "duplicate_impression_fraction": 0.02,
            "duplicate_click_fraction": 0.05,
            "invalid_fraction": 0.01,
        }
    )
    ensure_streams(settings)
    generate(settings, event_sink(settings, INPUT_TOPICS))
    expected = expected_outputs(settings)
    assert expected.total() == 3_000

    app = tmp_path / "app"
    app.mkdir()
    with zipfile.ZipFile(dist / "adstream-msf.zip") as archive:
        archive.extractall(app)
    python = clean_flink_python(tmp_path / "flink-env")
    environment = {
        key: value
        for key, value in without_adstream_variables().items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    } | {"FLINK_LOG_DIR": str(tmp_path / "flink-log"), "JVM_ARGS": "-Xmx1g"}
    # This environment has PyFlink and cannot import the project's source tree.
    probe = subprocess.run(
        [str(python), "-c", PROBE],
        cwd=app,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    path, has_pyflink, has_adstream = json.loads(probe.stdout)
    assert (has_pyflink, has_adstream) == (True, False)
    assert not [entry for entry in path if entry.startswith(str(PROJECT_ROOT / "src"))]

    properties = tmp_path / "application_properties.json"
    properties.write_text(
        json.dumps(
            [
                {
                    "PropertyGroupId": "kinesis.analytics.flink.run.options",
                    "PropertyMap": {
                        "python": "adstream_msf/main.py",
                        "jarfile": "lib/adstream-msf.jar",
                    },
                },
                {
                    "PropertyGroupId": "adstream",
                    "PropertyMap": {
                        "platform": "aws",
                        "aws_region": settings.aws_region,
                        "stream_prefix": settings.stream_prefix,
                        "attribution_window": "PT10M",
                        "aws_emulator": "true",
                        "aws_emulator_port": str(settings.aws_emulator_port),
                        "data_dir": str(tmp_path / "msf-data"),
                    },
                },
            ]
        )
    )
    run = subprocess.run(
        [str(python), "adstream_msf/main.py", "--local", "--bounded", "--properties", properties],
        cwd=app,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    assert f"adstream 0.1.0 from {app / 'lib' / 'python' / 'adstream'}" in output
    assert "job finished" in output

    assert_same_outputs(read_outputs(settings), expected)


def test_the_glue_script_writes_the_tables_once_with_what_the_job_arguments_install(
    dist: Path, lake_emulator: Settings, tmp_path: Path
) -> None:
    settings = lake(lake_emulator, tmp_path / "data")
    sent = on_kinesis(batch_a())
    put(settings, sent)

    # pip takes the wheel: installed on its own, as Glue does (its name is a valid wheel's).
    (wheel,) = (dist / "glue").glob("*.whl")
    assert parse_wheel_filename(wheel.name)[0] == "adstream"
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, wheel],
        check=True,
    )
    job_settings = {
        "platform": "aws",
        "aws_emulator": True,
        "aws_emulator_port": settings.aws_emulator_port,
        "data_dir": str(settings.data_dir),
        "spark_master": settings.spark_master,
        "spark_driver_memory": settings.spark_driver_memory,
        "lib_dir": str(PROJECT_ROOT / "lib"),  # the Spark jars Glue has (make setup's)
    }
    record = tmp_path / "imports.json"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            RECORD_IMPORTS,
            str(record),
            str(dist / "glue" / "adstream_enrich.py"),
            "--JOB_NAME",
            "adstream-enrich",
            "--adstream-settings",
            json.dumps(job_settings),
            "--checkpoint-location",
            str(tmp_path / "checkpoint"),
            "--bounded",
        ],
        cwd=tmp_path,
        env=without_adstream_variables() | {"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    assert_tables(settings, sent)

    imported = json.loads(record.read_text())
    assert imported["adstream"].startswith(str(site))  # the wheel's adstream, not the tree's
    installed = {
        canonicalize_name(Requirement(module).name)
        for module in job_arguments(dist)["--additional-python-modules"].split(",")[1:]
    }
    distributions = _distributions(imported["modules"])
    assert distributions - installed - GLUE_SPARK == set()


def _distributions(modules: list[str]) -> set[str]:
    """The installed distributions (other than adstream) that provide these modules."""
    import importlib.metadata

    providers = importlib.metadata.packages_distributions()
    found = {canonicalize_name(d) for m in modules for d in providers.get(m, [])}
    return found - {"adstream"}


def _comparable(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments with the Spark confs and the settings as dicts (their order is no matter)."""
    values = dict(arguments)
    values["--conf"] = dict(c.split("=", 1) for c in values["--conf"].split(" --conf "))
    values["--adstream-settings"] = json.loads(values["--adstream-settings"])
    return values


def test_the_template_gives_the_job_exactly_the_built_job_arguments(dist: Path) -> None:
    built = job_arguments(dist)
    modules = built["--additional-python-modules"]
    template = resolved_properties("EnrichJob", STREAM_PREFIX, python_modules=modules)
    assert _comparable(built) == _comparable(template["DefaultArguments"])

    wheel, *pinned = modules.split(",")
    (built_wheel,) = (dist / "glue").glob("*.whl")
    assert wheel == f"s3://{BUCKET}/{PREFIX}/glue/{built_wheel.name}"
    names = {canonicalize_name(Requirement(module).name) for module in pinned}
    assert names >= {"pydantic-settings", "pyiceberg", "boto3", "pyarrow"}
    assert not {"pyspark", "py4j"} & names  # Glue's Spark stays
    assert all("==" in module for module in pinned)


def test_the_athena_sql_of_every_shipped_query_is_in_the_package(dist: Path) -> None:
    files = {path.stem: path.read_text() for path in (dist / "athena").glob("*.sql")}
    assert files.keys() == SHIPPED_QUERIES.keys()
    for name, text in files.items():
        athena = athena_sql(name)
        lines = text.splitlines(keepends=True)
        header = [line.rstrip("\n") for line in lines if line.startswith("-- ")]
        expected = [f"-- {name}: {SHIPPED_QUERIES[name].doc}"]
        if athena.parameters:
            expected.append(f"-- parameters, in order: {', '.join(athena.parameters)}")
        assert header == expected
        assert "".join(lines[len(header) :]) == f"{athena.sql};\n"
        sqlglot.parse_one(athena.sql, read="trino")  # Trino's parser takes it
