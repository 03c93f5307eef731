"""Run the `adstream` console script the way a user does."""

import os
import signal
import subprocess
import sys
from pathlib import Path

ADSTREAM = str(Path(sys.executable).with_name("adstream"))


def adstream(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `adstream ARGS` to completion and capture its output."""
    return subprocess.run(
        [ADSTREAM, *args],
        env=env or dict(os.environ),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def interruptible() -> None:
    """Popen's preexec_fn: Ctrl-C (SIGINT) works in the child as in a terminal.

    A shell starts background jobs with SIGINT ignored and children inherit that, so a test
    run started that way would otherwise send its interrupts into the void.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
