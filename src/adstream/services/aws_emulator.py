"""The local AWS API emulator: moto's server (PyPI), one per data directory, on 127.0.0.1.

It serves Kinesis, S3, Glue, Athena, IAM and CloudFormation from memory: its state lives as long as
the process (docs/aws.md says where it differs from AWS). Run as
`python -m adstream.services.aws_emulator HOME PORT`, so that the process's command line names
its data directory.
"""

import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from adstream.errors import AdstreamError
from adstream.services.process import LogTail, ManagedProcess, port_is_free, wait_until
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
        output = LogTail(self.log_file)
        process = self.process.start(command, self.log_file)

        def ready() -> bool:
            if process.poll() is not None:
                raise AdstreamError(
                    f"the AWS emulator exited during start-up: {output.last_error()}; "
                    f"see {self.log_file}"
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


def speed_up_moto_shards() -> None:
    """Make moto's Kinesis shards answer in time independent of how many records they hold.

    moto 5.2 finds a shard's last sequence number by copying all its keys (each PutRecord) and
    answers GetRecords by walking the shard from its first record: both grow with the shard, so a
    pipeline slows to a crawl as its streams fill (200,000 events: under 1,000 events/s). A
    shard's keys are consecutive integers (each record gets the last one plus one), so the record
    after a sequence number is found by arithmetic. Same answers as moto's own methods
    (tests/unit/test_aws_emulator.py); a shard whose keys are not consecutive keeps moto's walk.
    """
    from moto.kinesis.models import Shard

    walk: Callable[..., tuple[list[Any], int, int]] = Shard.get_records

    def last_key(shard: Shard) -> int:
        return next(reversed(shard.records)) if shard.records else 0

    def first_key(shard: Shard) -> int:
        return next(iter(shard.records)) if shard.records else 0

    def get_records(
        shard: Shard, last_sequence_id: str, limit: int | None
    ) -> tuple[list[Any], int, int]:
        first, last = first_key(shard), last_key(shard)
        if not shard.records or last - first + 1 != len(shard.records):
            return walk(shard, last_sequence_id, limit)
        after = max(int(last_sequence_id) + 1, first)
        stop = last + 1 if limit is None else min(last + 1, after + limit)
        records = [shard.records[key] for key in range(after, stop)]
        if not records:
            return [], int(last_sequence_id), 0
        behind = shard.records[last].created_at - records[-1].created_at
        return records, records[-1].sequence_number, int(behind.total_seconds() * 1000)

    Shard.get_records = get_records
    Shard.get_max_sequence_number = last_key
    Shard.get_min_sequence_number = first_key


def route_athena_rest_paths() -> None:
    """Let moto's Athena answer requests on every path, as botocore now sends them.

    botocore 1.44 speaks Athena's REST-JSON protocol (`POST /query-executions`, `GET
    /query-executions/{id}/results`, ...). moto 5.2 finds the operation of a request from
    botocore's model, so it understands those, but its Athena URL table still routes only `/`
    (the older JSON protocol's one path), and its web server refuses every other path with 404.
    """
    from moto.athena import urls
    from moto.athena.responses import AthenaResponse

    urls.url_paths["{0}/(?P<path>.+)$"] = AthenaResponse.dispatch


class _OneRequestAtATime:
    """A WSGI app serving the wrapped one's requests one at a time.

    moto's backends are not thread-safe: a GetRecords iterating a shard while a PutRecords
    appends to it fails with HTTP 500 ("OrderedDict mutated during iteration"), as soon as a
    pipeline reads and writes the same streams at full speed. Connections are still accepted
    concurrently; only the backend work is serialised.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def _serve(home: str, port: int) -> None:
    """Run moto's server in this process until it is stopped."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    del home  # only on the command line, to tell this instance's process from others
    os.environ.setdefault("MOTO_PORT", str(port))  # where moto's own URLs point
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    speed_up_moto_shards()
    route_athena_rest_paths()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        HOST,
        port,
        _OneRequestAtATime(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
