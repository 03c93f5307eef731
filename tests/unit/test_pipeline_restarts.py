"""`adstream run` restarts a job that stops, a bounded number of times, and says why each time."""

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from adstream import pipeline
from adstream.errors import AdstreamError
from adstream.pipeline import Pipeline
from adstream.settings import Settings
from tests.conftest import instance_settings
from tests.unit.test_refused_commits import flink_log, refused, started

CRASH = "import sys; print('java.lang.OutOfMemoryError: Java heap space'); sys.exit(3)"


def job(log_file: Path, code: str) -> pipeline._Job:
    """A job that runs `code` in Python, its output appended to `log_file`."""

    def start(_settings: Settings) -> "subprocess.Popen[bytes]":
        with log_file.open("ab") as output:
            return subprocess.Popen(
                [sys.executable, "-c", code], stdout=output, start_new_session=True
            )

    return pipeline._Job(start, lambda _s: log_file, "running", lambda _s, out: out.strip())


def supervised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> Pipeline:
    jobs = {"join": job(tmp_path / "join.log", code)}
    monkeypatch.setattr(pipeline, "_JOBS", jobs)
    monkeypatch.setattr(pipeline, "_RESTART_BACKOFF_S", 0.05)
    run = Pipeline(instance_settings(tmp_path / "data", restarts=2))
    run.settings.data_dir.mkdir()  # as a run has it: its services' homes are in it
    run.supervising = True
    run.processes["join"] = jobs["join"].start(run.settings)
    return run


def the_job(run: Pipeline) -> "subprocess.Popen[bytes]":
    process = run.processes["join"]
    assert process is not None
    return process


def test_a_job_that_keeps_stopping_is_restarted_then_the_run_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, CRASH)
    reported: list[str] = []
    run.report = reported.append
    for _ in range(2):  # each check finds it stopped and starts it again
        the_job(run).wait()
        run.check()
    assert reported == [
        "the join job stopped unexpectedly (exit 3): java.lang.OutOfMemoryError: Java heap "
        f"space; restarting it in {0.05 * 2**n:.0f} s ({n + 1} of 2)"
        for n in range(2)
    ]
    assert run.restarts == {"broker": 0, "join": 2}
    the_job(run).wait()
    with pytest.raises(AdstreamError) as failed:
        run.check()
    assert str(failed.value) == (
        "the join job stopped unexpectedly (exit 3): java.lang.OutOfMemoryError: Java heap "
        f"space; see {tmp_path / 'join.log'} (restarted 2 times)"
    )


def test_a_job_that_ran_ten_minutes_since_its_last_restart_has_its_restarts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endless run meets its faults days apart: they do not add up to its end."""
    run = supervised(tmp_path, monkeypatch, CRASH)
    reported: list[str] = []
    run.report = lambda line: reported.append(line[line.index("restarting") :])
    for _ in range(2):
        the_job(run).wait()
        run.check()
    run.restarted_at["join"] -= pipeline.RESTARTS_RENEWED_S  # it ran 10 minutes since
    the_job(run).wait()
    run.check()
    assert reported == [
        "restarting it in 0 s (1 of 2)",
        "restarting it in 0 s (2 of 2)",
        "restarting it in 0 s (1 of 2)",
    ]
    assert run.restarts["join"] == 3
    the_job(run).wait()
    run.check()  # the second in a row
    the_job(run).wait()
    with pytest.raises(AdstreamError, match=r"\(restarted 4 times\)$"):
        run.check()


def test_a_killed_job_is_reported_killed_not_by_a_line_it_logged_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(
        tmp_path,
        monkeypatch,
        "import os, signal; print('WARN the batch is falling behind', flush=True); "
        "os.kill(os.getpid(), signal.SIGKILL)",
    )
    reported: list[str] = []
    run.report = reported.append
    the_job(run).wait()
    run.check()
    assert reported == [
        "the join job stopped unexpectedly (killed by SIGKILL); restarting it in 0 s (1 of 2)"
    ]
    the_job(run).wait()


def test_a_running_job_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = supervised(tmp_path, monkeypatch, "import time; time.sleep(60)")
    try:
        run.check()
        assert run.restarts == {"broker": 0, "join": 0}
    finally:
        the_job(run).kill()
        the_job(run).wait()


def test_before_both_jobs_run_a_stopped_job_fails_the_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, CRASH)
    run.supervising = False  # still starting: a job that stops there is a setup error
    the_job(run).wait()
    with pytest.raises(AdstreamError, match=r"exit 3\): java.lang.OutOfMemoryError"):
        run.check()
    assert run.restarts == {"broker": 0, "join": 0}


class StoppedBroker:
    """A broker whose process is gone until it is started again."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.running = False
        self.process = self

    def pid(self) -> int | None:
        return 1 if self.running else None

    def start(self) -> bool:
        self.running = True
        return True


BROKER_STOPPED = (
    "Kafka stopped unexpectedly (the join stopped with it, to restart after it); "
    "restarting it in 0 s (1 of 2)"
)


def test_the_broker_this_run_started_is_restarted_and_the_join_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, "import time; time.sleep(60)")
    reported: list[str] = []
    run.report = reported.append
    broker = StoppedBroker(tmp_path / "kafka.log")
    run.broker = broker  # type: ignore[assignment]
    before = the_job(run)
    try:
        run.check()
        assert broker.running
        assert reported == [BROKER_STOPPED]
        assert before.returncode == -signal.SIGKILL  # killed, not left to see the broker back
        assert the_job(run) is not before and the_job(run).poll() is None
        assert run.restarts == {"broker": 1, "join": 0}  # the join's own restarts are left
        run.check()  # running again: left alone
        assert run.restarts == {"broker": 1, "join": 0}
    finally:
        the_job(run).kill()
        the_job(run).wait()


def test_a_broker_stopped_by_a_full_disk_is_restarted_once_there_is_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, "import time; time.sleep(60)")
    broker = StoppedBroker(tmp_path / "kafka.log")
    run.broker = broker  # type: ignore[assignment]
    free = iter([1 * 2**20, 100 * 2**20, 300 * 2**20])  # then someone frees space
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: SimpleNamespace(free=next(free)))
    monkeypatch.setattr(pipeline, "_DISK_POLL_S", 0.01)
    reported: list[str] = []
    run.report = reported.append
    try:
        run.check()
    finally:
        the_job(run).kill()
    assert broker.running
    assert reported == [
        BROKER_STOPPED,
        f"the disk of {run.settings.data_dir} has 1 MiB free: waiting until it has 256 MiB "
        "before restarting the broker (free some, or Ctrl-C)",
        f"the disk of {run.settings.data_dir} has space again: restarting the broker",
    ]
    assert run.restarts["broker"] == 1


FAILS_TO_FINISH_ONCE = """
import pathlib, signal, sys, time
mark = pathlib.Path("{mark}")  # there after the first run
first = not mark.exists()
mark.touch()
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(3 if first else 0))
print("running", flush=True)
while True:
    time.sleep(0.05)
"""


def test_a_job_that_fails_while_finishing_is_restarted_and_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, FAILS_TO_FINISH_ONCE.format(mark=tmp_path / "ran"))
    reported: list[str] = []
    run.report = reported.append

    run._finish_job("join", lambda: True, reported.append)

    assert run.processes["join"] is None  # finished, no longer watched
    assert run.restarts == {"broker": 0, "join": 1}
    assert [line.split(":")[0] for line in reported] == [
        "finishing",
        "the join job stopped unexpectedly (exit 3)",
        "finishing",
    ]
    assert reported[1].endswith("restarting it in 0 s (1 of 2)")


def test_a_refused_checkpoint_restarts_the_join_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = supervised(tmp_path, monkeypatch, "import time; time.sleep(60)")
    reported: list[str] = []
    run.report = reported.append
    flink_log(run.settings).write_text(started("15:00:00") + refused(31) + refused(31))
    before = the_job(run)
    try:
        run.check()
        assert reported == [
            "Kafka refused to commit the join's checkpoint 31 (its transaction was open longer "
            "than --join-transaction-timeout, 900 s: the join was paused or the broker failed "
            "meanwhile); the join restarts from the checkpoint before it, which writes its "
            "outcomes again; restarting it in 0 s (1 of 2)"
        ]
        assert before.returncode == -signal.SIGKILL  # not left to Flink's restarts
        assert the_job(run) is not before and the_job(run).poll() is None
        run.check()  # seen once
        assert len(reported) == 1
    finally:
        the_job(run).kill()
        the_job(run).wait()
