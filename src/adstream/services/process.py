"""The one place adstream starts, watches and stops its processes.

`spawn` starts one with its output appended to a log, `LogTail` and `last_error` read what it
wrote since (the line that says what went wrong), `wait_until` waits for it to be ready, and
`stop` (a child) or `stop_pids` (a daemon known by its PID file, `ManagedProcess`) stops it:
a signal, a wait, then SIGKILL. The broker, the AWS emulator, the Flink cluster, both job
launchers, `adstream run` and the benchmarks all go through here.
"""

import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from adstream.errors import AdstreamError

log = logging.getLogger(__name__)

_ERROR_LINE: Final = re.compile(r"Exception|Error|ERROR")
_LONGEST_ERROR: Final = 500
_KILLED_TIMEOUT_S: Final = 30
JOB_STOP_TIMEOUT_S: Final = 300
"""How long a job has to stop on its own (the join's savepoint, the enrichment's batch)."""
_PROC: Final = Path("/proc")


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
    """What a process appends to its log file from the moment this is made (`whole`: all of it).

    A file rewritten from its start (a new JVM recreates its log; its first line differs, or
    the file is shorter than what was read) is read from its start again.
    """

    def __init__(self, log_file: Path, *, whole: bool = False) -> None:
        self.log_file = log_file
        self._head, self.start = _head_and_size(log_file)
        if whole:
            self.start = 0
        self._read = self.start
        """Where `new_lines` goes on."""

    def text(self) -> str:
        """Everything written since."""
        return self._since(self.start).decode(errors="replace")

    def new_lines(self) -> bytes:
        """The whole lines written since the last call (the first: since this was made)."""
        written = self._since(self._read)
        lines = written[: written.rfind(b"\n") + 1]  # a partial last line comes next time
        self._read += len(lines)
        return lines

    def contains(self, marker: str) -> bool:
        """Whether `marker` has been written since."""
        return marker in self.text()

    def last_error(self) -> str:
        """The line that says what went wrong, among what was written since (`last_error`)."""
        return last_error(self.text())

    def _since(self, offset: int) -> bytes:
        try:
            file = self.log_file.open("rb")
        except FileNotFoundError:
            return b""
        with file:
            first = file.readline()
            if not first.startswith(self._head) or file.seek(0, os.SEEK_END) < offset:
                self.start, self._read, offset = 0, 0, 0  # rewritten: all of it is new
            self._head = first
            file.seek(offset)
            return file.read()


def _head_and_size(path: Path) -> tuple[bytes, int]:
    """A file's first line and its size; nothing for a file not there yet."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return b"", 0
    with file:
        return file.readline(), file.seek(0, os.SEEK_END)


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
        self.child: subprocess.Popen[bytes] | None = None
        """The process `start` started, if this did: known without its PID file."""

    def pid(self) -> int | None:
        """The PID of our running process, or None (a stale PID file is removed).

        The one this started is known without the file, which a full disk may have left empty.
        """
        if self.child is not None and self.child.poll() is None:
            return self.child.pid
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
        process = spawn(command, log_file, env=env)
        self.child = process
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def stop(self, timeout: float) -> bool:
        """Stop it: SIGTERM, then SIGKILL after `timeout` s; False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        stop_pids([pid], self._is_ours, name=self.name, timeout=timeout)
        self.pid_file.unlink(missing_ok=True)
        return True


def spawn(
    command: Sequence[str],
    log_file: Path,
    *,
    env: dict[str, str] | None = None,
    detached: bool = True,
) -> subprocess.Popen[bytes]:
    """Start `command` with no input, its output and errors appended to `log_file`.

    `detached` starts it in a session of its own, leading its own process group: a terminal's
    Ctrl-C does not reach it, and `stop` ends whatever it started too.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as output:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=detached,
        )


def stop(
    processes: Iterable["subprocess.Popen[Any]"],
    *,
    name: str,
    timeout: float = JOB_STOP_TIMEOUT_S,
    signum: int = signal.SIGTERM,
) -> None:
    """Stop child processes, side by side; `name` names them in the log.

    `signum` goes to each that runs, at once; then each has up to `timeout` s to exit before
    SIGKILL; then what is left of the process group each leads is ended (`end_group`). An
    interrupt while waiting (a second Ctrl-C) kills what still runs at once, then goes on.
    """
    children = list(processes)
    for process in children:
        if process.poll() is None:
            process.send_signal(signum)
    try:
        for process in children:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", name, timeout)
                process.kill()
                process.wait()
            end_group(process)
    except KeyboardInterrupt:
        log.warning("interrupted while %s stop: killing them", name)
        for process in children:
            if process.poll() is None:
                process.kill()
            process.wait()
            end_group(process)
        raise


def stop_pids(
    pids: Collection[int], is_ours: Callable[[int], bool], *, name: str, timeout: float
) -> None:
    """Stop daemons known by their PID files (not our children), side by side.

    SIGTERM to each, then SIGKILL to those still `is_ours` after `timeout` s; returns once none
    is.
    """
    _signal_each([pid for pid in pids if is_ours(pid)], signal.SIGTERM)
    try:
        wait_until(
            lambda: not any(is_ours(pid) for pid in pids), timeout=timeout, what=f"{name} to stop"
        )
    except AdstreamError:
        log.warning("%s did not stop within %.0f s; killing it", name, timeout)
        _signal_each([pid for pid in pids if is_ours(pid)], signal.SIGKILL)
        wait_until(
            lambda: not any(is_ours(pid) for pid in pids),
            timeout=_KILLED_TIMEOUT_S,
            what=f"{name} to die",
        )


def _signal_each(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):  # it has stopped meanwhile
            os.kill(pid, signum)


@contextmanager
def interrupts_held(*, second_at_once: bool = False) -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then raise KeyboardInterrupt for them.

    For work that an interrupt must not cut in two: a process started but not yet held (an
    interrupt inside `subprocess.Popen`, between its fork and its return, leaves the child
    running with no one holding it), records handed on but not yet counted. With
    `second_at_once`, a second one raises at once (for a block that may wait long). Outside
    the main thread, where Python delivers no signals, nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        if received and second_at_once:
            raise KeyboardInterrupt
        received.append(signum)

    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in signums}
    for signum in signums:
        signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt


def kill_group(process: "subprocess.Popen[Any]") -> None:
    """Kill a child and the process group it leads at once (SIGKILL); wait until none of it runs."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    end_group(process)


def end_group(process: "subprocess.Popen[Any]") -> None:
    """End what is left of the process group an exited child led, and wait until none of it runs.

    A job leads a group of its own (`spawn(detached=True)`); its JVM outlives it when the job
    process was stopped before it could stop the JVM (e.g. a SIGTERM while it starts). A child
    that led no group has none left: nothing to do.
    """
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + _KILLED_TIMEOUT_S
    while group_runs(process.pid):
        time.sleep(0.1)
        if time.monotonic() > deadline:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def group_runs(group: int) -> bool:
    """Whether a process of `group` still runs.

    One that has exited but waits for its parent to reap it (a zombie) does not: an orphaned
    JVM's parent may be a subreaper that reaps only later, as the benchmarks' harness does.
    """
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    if not _PROC.is_dir():
        return True  # no /proc (macOS): zombies count
    return any(state != "Z" for state in group_states(group).values())


def group_states(group: int) -> dict[int, str]:
    """The processes of `group` by pid, each with its state letter (`Z` for a zombie)."""
    states = {}
    for stat in _PROC.glob("[0-9]*/stat"):
        try:
            state, _, member_of = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue  # it ended meanwhile
        if int(member_of) == group:
            states[int(stat.parent.name)] = state
    return states


def is_live_process_with(pid: int, marker: bytes) -> bool:
    """Whether `pid` runs (not a zombie) with `marker` in its command line (NUL-separated)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and marker in cmdline
