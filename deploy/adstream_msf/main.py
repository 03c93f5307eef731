"""The adstream join on Amazon Managed Service for Apache Flink: the application's entry.

MSF runs this file (property group `kinesis.analytics.flink.run.options`, `python` =
`adstream_msf/main.py`) from the application's zip, which `adstream package` builds:

    adstream_msf/main.py    this file
    lib/python/             adstream (the modules the join imports) and its Python dependencies
    lib/adstream-msf.jar    the join's Java code and dependencies (`jarfile`)

Outside MSF, with PyFlink 2.2: `python adstream_msf/main.py --local [--bounded] --properties
FILE` (docs/aws.md).
"""

import sys
from pathlib import Path


def main() -> int:
    """Put the zip's Python first on the path, then run the join as `adstream.join.msf` does."""
    # Flink links this file into a folder of its own: the zip's folders are where it points.
    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root / "lib" / "python")]
    from adstream.join.msf import main as run_join

    return run_join(sys.argv[1:], jar=root / "lib" / "adstream-msf.jar")


if __name__ == "__main__":
    sys.exit(main())
