"""The deployment artefacts of SPEC section 9, built by `adstream package` (docs/aws.md)."""

from collections.abc import Callable
from pathlib import Path

from adstream.deploy.athena import build_athena_queries
from adstream.deploy.glue import build_glue_job, stack_location
from adstream.deploy.msf import build_msf_zip
from adstream.settings import Settings


def package(settings: Settings, output: Path, progress: Callable[[str], None]) -> list[Path]:
    """Build the MSF zip, the Glue job and the Athena SQL into `output`; return what was written.

    Raises:
        AdstreamError: the warehouse is not the stack's, or a build step fails.
    """
    stack_location(settings)  # the one setting it needs, checked before the minutes of building
    return [
        build_msf_zip(settings, output, progress),
        *build_glue_job(settings, output, progress),
        *build_athena_queries(output),
    ]
