"""What a job needs of Python, found from the source and this environment.

adstream's own modules are those its entry imports, found without running it (`modulefinder`,
which follows imports inside functions too). The third-party packages a job needs beyond what
its service provides are named by hand, as requirements (the roots: what adstream imports of
them) and pinned, with everything they require in turn, to the versions installed in this
environment: the versions the tests ran with.
"""

import importlib.metadata
import modulefinder
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from adstream.errors import AdstreamError

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the `adstream` package (src/)."""


def adstream_modules(entry: Path) -> list[Path]:
    """The files of the adstream modules the script `entry` imports, directly or not."""
    finder = modulefinder.ModuleFinder(path=[str(SOURCE_ROOT)])
    finder.run_script(str(entry))
    files = set()
    for name, module in finder.modules.items():
        found = getattr(module, "__file__", None)  # modulefinder's Module, not a module
        if name.split(".")[0] == "adstream" and found:
            files.add(Path(found))
    return sorted(files)


def pinned(roots: Iterable[str], *, provided: Sequence[str] = ()) -> list[str]:
    """`name==version` of each root requirement and of all it requires, as installed here.

    Requirements of an extra are followed when a root asks for that extra; environment markers
    are evaluated for this Python (the same major and minor version as the jobs' services,
    except MSF's: its packages are all pure Python but pydantic-core). Distributions in
    `provided`, and what only they require, are left out.

    Raises:
        AdstreamError: a required distribution is not installed here.
    """
    left_out = {canonicalize_name(name) for name in provided}
    extras_of: dict[str, set[str]] = {}
    pending = [Requirement(root) for root in roots]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in left_out or (name in extras_of and extras <= extras_of[name]):
            continue
        extras_of[name] = extras_of.get(name, set()) | extras
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as error:
            raise AdstreamError(
                f"{name} is not installed in this environment; run `make setup`"
            ) from error
        for line in distribution.requires or []:
            dependency = Requirement(line)
            wanted = extras_of[name] or {""}
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in wanted):
                pending.append(dependency)
    return sorted(f"{name}=={importlib.metadata.version(name)}" for name in extras_of)


def run(command: Sequence[str], what: str, *, cwd: Path | None = None) -> None:
    """Run a build step; fail with one line naming it and the tool's last words.

    Raises:
        AdstreamError: the command is missing or fails.
    """
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as error:
        raise AdstreamError(f"{what}: {command[0]} not found; install it") from error
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR" in line or "error" in line.lower()]
        raise AdstreamError(f"{what} failed: {(errors or lines or ['no output'])[-1][:400]}")


def pip(*arguments: str) -> list[str]:
    """The command running this environment's pip."""
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
