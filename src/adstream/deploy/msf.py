"""The Managed Service for Apache Flink application zip: `dist/adstream-msf.zip`.

    adstream_msf/main.py    the entry (deploy/adstream_msf/main.py): puts lib/python first on
                            the path and runs `adstream.join.msf`
    lib/adstream-msf.jar    the one jar: the join's SQL functions, the Kinesis connector and the
                            AWS SDK, shaded (java/pom.xml, profile msf); Flink itself, and
                            flink-json, are MSF's
    lib/python/             the adstream modules the join imports, and the Python packages they
                            need beyond PyFlink

MSF installs nothing with pip: every Python package is in the zip. Those of the join are
`MSF_REQUIREMENTS` and what they require, pinned to this environment's versions; all pure
Python but pydantic-core, which is there for two Pythons: MSF's (3.12, Flink 2.2) and that of
this project's PyFlink environment, so the same zip also runs here (`--local`).
"""

import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from adstream.deploy.python import SOURCE_ROOT, adstream_modules, pinned, pip, run
from adstream.errors import AdstreamError
from adstream.settings import PROJECT_ROOT, Settings

ZIP_NAME: Final = "adstream-msf.zip"
ENTRY: Final = "adstream_msf/main.py"
JAR: Final = "lib/adstream-msf.jar"
PYTHON_DIR: Final = "lib/python"
MSF_PYTHON: Final = "3.12"
"""The Python of MSF's Flink 2.2 runtime."""
PLATFORM: Final = "manylinux2014_x86_64"
"""MSF runs on Linux x86-64; manylinux2014 wheels need glibc 2.17."""
MSF_REQUIREMENTS: Final = ("pydantic-settings", "boto3")
"""What the join imports beyond PyFlink: the settings, and boto3 for the streams' ARNs."""
MSF_PROVIDED: Final = ("apache-flink",)


def build_jar(progress: Callable[[str], None]) -> Path:
    """The application's jar, built by Maven (java/, profile msf).

    Raises:
        AdstreamError: Maven is missing or the build fails.
    """
    progress("building the MSF application's jar (Maven: java/, profile msf; about a minute)")
    java = PROJECT_ROOT / "java"
    maven = ["mvn", "--batch-mode", "--quiet", "-Dstyle.color=never", "-f", str(java / "pom.xml")]
    run([*maven, "-P", "msf", "package", "-DskipTests"], "the Maven build of the MSF jar")
    return java / "target" / "msf" / "adstream-msf.jar"


def python_versions(settings: Settings) -> list[str]:
    """MSF's Python, and that of the local PyFlink environment when there is one."""
    versions = [MSF_PYTHON]
    if settings.flink_python.exists():
        local = subprocess.run(
            [str(settings.flink_python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if local not in versions:
            versions.append(local)
    return versions


def install_dependencies(
    target: Path, versions: list[str], progress: Callable[[str], None]
) -> None:
    """The join's Python packages into `target`, as wheels for Linux x86-64 and each Python.

    Raises:
        AdstreamError: pip cannot get a wheel.
    """
    requirements = pinned(MSF_REQUIREMENTS, provided=MSF_PROVIDED)
    progress(
        f"fetching the join's Python packages for Python {' and '.join(versions)} "
        f"(pip, PyPI): {', '.join(requirements)}"
    )
    for version in versions:
        # One folder per Python, merged: the pure files are the same, extension modules differ
        # by name (cpython-312-... and cpython-311-...).
        with tempfile.TemporaryDirectory(prefix="adstream-msf-") as scratch:
            wheels = ["--only-binary=:all:", "--platform", PLATFORM, "--implementation", "cp"]
            run(
                pip(
                    "install",
                    "--quiet",
                    "--no-deps",
                    *wheels,
                    "--python-version",
                    version,
                    "--target",
                    scratch,
                    *requirements,
                ),
                f"pip install of the join's packages for Python {version}",
            )
            shutil.copytree(
                scratch,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("bin", "__pycache__"),
            )


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def build_msf_zip(settings: Settings, output: Path, progress: Callable[[str], None]) -> Path:
    """Build `output/adstream-msf.zip`; return its path.

    Raises:
        AdstreamError: a build step fails.
    """
    entry = PROJECT_ROOT / "deploy" / "adstream_msf" / "main.py"
    if not entry.exists():
        raise AdstreamError(f"{entry} not found: `adstream package` runs in the source tree")
    jar = build_jar(progress)
    output.mkdir(parents=True, exist_ok=True)
    archive = output / ZIP_NAME
    with tempfile.TemporaryDirectory(prefix="adstream-msf-") as scratch:
        vendored = Path(scratch)
        install_dependencies(vendored, python_versions(settings), progress)
        progress(f"writing {archive}")
        partial = archive.with_suffix(".zip.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zip_file:
            zip_file.write(entry, ENTRY)
            zip_file.write(jar, JAR)
            for module in adstream_modules(entry):
                zip_file.write(module, f"{PYTHON_DIR}/{module.relative_to(SOURCE_ROOT)}")
            for path in _files(vendored):
                zip_file.write(path, f"{PYTHON_DIR}/{path.relative_to(vendored)}")
        partial.replace(archive)
    return archive
