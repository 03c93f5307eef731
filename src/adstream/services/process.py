"""Background processes owned by adstream: PID files, liveness, ports, waiting, stopping."""

import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from adstream.errors import AdstreamError

log = logging.getLogger(__name__)

_ERROR_LINE: Final = re.compile(r"Exception|Error|ERROR")
_LONGEST_ERROR: Final = 500


def wait_until(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.25
) -> None:
    """Poll `condition` until it holds; raise a clear error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AdstreamError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (so a service of ours can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS hands out an unused ephemeral one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


class LogTail:
    """What a process appends to its log file from the moment this is made."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.start = log_file.stat().st_size if log_file.exists() else 0

    def text(self) -> str:
        """Everything written since."""
        if not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as file:
            file.seek(self.start)
            return file.read().decode(errors="replace")

    def contains(self, marker: str) -> bool:
        """Whether `marker` has been written since."""
        return marker in self.text()

    def last_error(self) -> str:
        """The line that says what went wrong, among what was written since (`last_error`)."""
        return last_error(self.text())


def last_error(output: str) -> str:
    """The line of a process's output that says what went wrong (at most 500 characters).

    The last line naming an exception or an error (in a stack trace, its innermost cause, with
    `Caused by: ` left out), else the last line; indented lines (stack frames) never count.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line[0].isspace()]
    errors = [line.removeprefix("Caused by: ") for line in lines if _ERROR_LINE.search(line)]
    return (errors or lines or ["no output"])[-1][:_LONGEST_ERROR]


class ManagedProcess:
    """A long-running process started in its own session and tracked by a PID file.

    `marker` is a string unique to this instance's command line (e.g. its config path), so a
    PID reused by an unrelated process is never mistaken for ours.
    """

    def __init__(self, name: str, pid_file: Path, marker: str) -> None:
        self.name = name
        self.pid_file = pid_file
        self.marker = marker

    def pid(self) -> int | None:
        """The PID of our running process, or None (a stale PID file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except FileNotFoundError:
            return None
        except ValueError:
            pid = -1
        if pid > 0 and self._is_ours(pid):
            return pid
        log.warning("removed stale PID file %s (process %s is gone)", self.pid_file, pid)
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, pid: int) -> bool:
        return is_live_process_with(pid, self.marker.encode())

    def start(
        self, command: Sequence[str], log_file: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `command` detached from our terminal, its output appended to `log_file`."""
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def stop(self, timeout: float) -> bool:
        """Stop it: SIGTERM, then SIGKILL after `timeout` s; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not self._is_ours(pid), timeout=timeout, what=f"{self.name} to stop")
        except AdstreamError:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not self._is_ours(pid), timeout=30, what=f"{self.name} to die")
        self.pid_file.unlink(missing_ok=True)
        return True


def is_live_process_with(pid: int, marker: bytes) -> bool:
    """Whether `pid` runs (not a zombie) with `marker` in its command line (NUL-separated)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and marker in cmdline
