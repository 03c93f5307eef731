"""Stopping what adstream started: a signal, a bounded wait, then SIGKILL; nothing left over."""

import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adstream.services.process import (
    ManagedProcess,
    group_states,
    is_live_process_with,
    spawn,
    stop,
    stop_pids,
    wait_until,
)

# A process that ignores SIGTERM, with a child of its own (a JVM outliving its launcher).
_STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_DFL); time.sleep(600)"
    subprocess.Popen([sys.executable, "-c", child])
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _ready(log: Path) -> None:
    wait_until(lambda: "ready" in log.read_text(), timeout=60, what="the process to start")


def test_a_child_that_ignores_the_signal_is_killed_after_the_timeout_with_its_group(
    tmp_path: Path,
) -> None:
    log = tmp_path / "stubborn.log"
    process = spawn([sys.executable, "-c", _STUBBORN], log)
    _ready(log)
    assert len(group_states(process.pid)) == 2  # it and its child

    began = time.monotonic()
    stop([process], name="the stubborn one", timeout=1)

    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - began < 30
    assert all(state == "Z" for state in group_states(process.pid).values())  # none runs


def test_children_that_stop_on_the_signal_stop_side_by_side(tmp_path: Path) -> None:
    # Python's own SIGINT handler, even when started with SIGINT ignored (a background job).
    sleeper = (
        "import signal, time; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "print('ready', flush=True); time.sleep(600)"
    )
    sleepers = [spawn([sys.executable, "-c", sleeper], tmp_path / f"{n}.log") for n in range(3)]
    for n in range(3):
        _ready(tmp_path / f"{n}.log")  # a SIGINT while Python starts ends it otherwise

    began = time.monotonic()
    stop(sleepers, name="the sleepers", signum=signal.SIGINT, timeout=60)

    assert [p.returncode for p in sleepers] == [-signal.SIGINT] * 3  # not killed
    assert time.monotonic() - began < 30


def test_a_daemon_known_by_its_pid_is_killed_when_it_ignores_sigterm(tmp_path: Path) -> None:
    marker = str(tmp_path / "daemon-marker")
    log = tmp_path / "daemon.log"
    daemon = spawn([sys.executable, "-c", _STUBBORN, marker], log)
    _ready(log)

    def is_ours(pid: int) -> bool:
        return is_live_process_with(pid, marker.encode())

    stop_pids([daemon.pid], is_ours, name="the daemon", timeout=1)

    assert not is_ours(daemon.pid)
    assert daemon.wait(timeout=10) == -signal.SIGKILL


def test_an_interrupt_while_waiting_kills_them_at_once(tmp_path: Path) -> None:
    """A second Ctrl-C while `adstream run` waits for its jobs to stop leaves none running."""
    log = tmp_path / "stubborn.log"
    process = spawn([sys.executable, "-c", _STUBBORN], log)
    _ready(log)

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            stop([process], name="the stubborn one", timeout=300)
    finally:
        signal.signal(signal.SIGALRM, previous)

    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - began < 30  # not the 300 s it was given
    assert all(state == "Z" for state in group_states(process.pid).values())


def test_a_service_started_here_is_known_without_its_pid_file(tmp_path: Path) -> None:
    """A full disk can leave the PID file empty: the run must not lose track of its broker."""
    marker = str(tmp_path / "service-marker")
    service = ManagedProcess("the service", tmp_path / "service.pid", marker)
    process = service.start([sys.executable, "-c", _STUBBORN, marker], tmp_path / "service.log")
    _ready(tmp_path / "service.log")

    service.pid_file.write_text("")  # as a write on a full disk leaves it
    assert service.pid() == process.pid

    assert service.stop(timeout=1)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert service.pid() is None
