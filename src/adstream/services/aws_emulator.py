"""The local AWS API emulator: moto's server (PyPI), one per data directory, on 127.0.0.1.

It serves Kinesis, S3, Glue, IAM and CloudFormation from memory: its state lives as long as
the process (docs/aws.md says where it differs from AWS). Run as
`python -m adstream.services.aws_emulator HOME PORT`, so that the process's command line names
its data directory.
"""

import logging
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adstream.errors import AdstreamError
from adstream.services.process import ManagedProcess, port_is_free, wait_until
from adstream.settings import Settings

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
_STOP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class EmulatorStatus:
    """What `adstream status` reports about the emulator."""

    pid: int | None
    endpoint: str


class AwsEmulator:
    """The emulator of one data directory: its PID file and log live under `<data_dir>/aws/`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.data_dir.resolve() / "aws"
        self.endpoint = f"http://{HOST}:{settings.aws_emulator_port}"
        self.process = ManagedProcess("AWS emulator", self.home / "emulator.pid", str(self.home))

    @property
    def log_file(self) -> Path:
        """The emulator's request log."""
        return self.home / "emulator.log"

    def start(self) -> bool:
        """Start the emulator and wait until it answers; False when it was already running."""
        if self.process.pid() is not None:
            return False
        port = self.settings.aws_emulator_port
        if not port_is_free(HOST, port):
            raise AdstreamError(
                f"port {port} on {HOST} is already in use; stop what uses it or choose another "
                "port (ADSTREAM_AWS_EMULATOR_PORT)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        log.info("starting the AWS emulator (moto) at %s", self.endpoint)
        began = time.monotonic()
        command = [sys.executable, "-m", __name__, str(self.home), str(port)]
        process = self.process.start(command, self.log_file)

        def ready() -> bool:
            if process.poll() is not None:
                raise AdstreamError(
                    f"the AWS emulator exited during start-up (see {self.log_file})"
                )
            return self.answers()

        wait_until(
            ready,
            timeout=self.settings.startup_timeout.total_seconds(),
            what=f"the AWS emulator to answer (see {self.log_file})",
        )
        log.info("AWS emulator ready in %.1f s (pid %d)", time.monotonic() - began, process.pid)
        return True

    def stop(self) -> bool:
        """Stop the emulator (its state is gone with it); False when it was not running."""
        stopped = self.process.stop(timeout=_STOP_TIMEOUT_S)
        if stopped:
            log.info("AWS emulator stopped")
        return stopped

    def status(self) -> EmulatorStatus:
        """Whether the emulator runs, and where."""
        return EmulatorStatus(self.process.pid(), self.endpoint)

    def answers(self) -> bool:
        """Whether the emulator answers HTTP on its port."""
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False


def _serve(home: str, port: int) -> None:
    """Run moto's server in this process until it is stopped."""
    from moto.server import main

    del home  # only on the command line, to tell this instance's process from others
    main(["--host", HOST, "--port", str(port)])


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
