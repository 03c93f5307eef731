"""`adstream run`: the whole pipeline on this machine, one command.

Kafka and its topics (or, on aws, the emulator if asked and the Kinesis streams) and the tables
first; then the join and the enrichment, each a process of its own
(in its own session, so Ctrl-C reaches only this one, which stops them in order), started
together; the pipeline is ready once both run (the join has completed its first checkpoint,
the enrichment its first trigger), and only then does the generator start, in this process,
with a progress line every 2 s (it holds its records while a broker that stopped is
restarted), and the dashboard, in a thread. When the generator stops (its bound, or Ctrl-C) the
pipeline finishes what it was given with the jobs already running: the join reads the input to
its end and drains (every pending result out), the enrichment writes what remains, and the
final accounting is printed from the tables. A second Ctrl-C abandons that wait; nothing is
lost, the next run resumes from the checkpoints.
"""

import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from adstream.dashboard.server import DashboardServer
from adstream.enrich import params as enrich_params
from adstream.enrich.launcher import enrich_log, start_enrich
from adstream.errors import AdstreamError
from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import GenerateReport, generate
from adstream.join import params as join_params
from adstream.join.launcher import (
    RefusedCommits,
    has_read_to,
    job_failure,
    join_log,
    start_join,
)
from adstream.lakehouse.catalog import ensure_tables, load_table, open_catalog, row_counts
from adstream.lakehouse.tables import ENRICHED_AD_DATA
from adstream.platform import event_sink, input_counts, join_streams, local_service, start_services
from adstream.services.kafka import KafkaBroker
from adstream.services.process import (
    JOB_STOP_TIMEOUT_S,
    LogTail,
    end_group,
    interrupts_held,
    kill_group,
    last_error,
    stop,
)
from adstream.settings import Settings
from adstream.verify import Tally, stored_tally

log = logging.getLogger(__name__)

_FRESHNESS_HORIZON: Final = timedelta(minutes=30)
_POLL_S: Final = 0.25
_DISK_POLL_S: Final = 1.0
_RESTART_BACKOFF_S: Final = 1.0
RESTARTS_RENEWED_S: Final = 600.0
"""A service that has run this long since its last restart has all its restarts again: the
faults an endless run meets days apart do not add up to its end."""
RESTART_FREE_BYTES: Final = 256 * 2**20
"""Free space the data disk needs before a restart: less, and what stopped fails again at once."""
BROKER: Final = "broker"
JOIN: Final = "join"


@dataclass(frozen=True)
class _Job:
    """How `adstream run` starts one of its jobs, sees it running, and reads why it stopped."""

    start: Callable[[Settings], "subprocess.Popen[bytes]"]
    log: Callable[[Settings], Path]
    running: str
    """What its log says once it runs."""
    failure: Callable[[Settings, str], str]
    """What went wrong, from what it wrote to its log."""


_JOBS: Final = {
    JOIN: _Job(
        lambda settings: start_join(settings, bounded=False, detached=True),
        join_log,
        join_params.logged(join_params.RUNNING),
        job_failure,
    ),
    "enrichment": _Job(
        lambda settings: start_enrich(settings, bounded=False, detached=True),
        enrich_log,
        enrich_params.logged(enrich_params.RUNNING),
        lambda _settings, output: last_error(output),
    ),
}


class Pipeline:
    """The join and enrichment processes of one run, watched and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processes: dict[str, subprocess.Popen[bytes] | None] = dict.fromkeys(_JOBS)
        self.output = {name: LogTail(_JOBS[name].log(settings)) for name in _JOBS}
        """What each job writes to its log, since it was last started."""
        self.restarts = dict.fromkeys((BROKER, *_JOBS), 0)
        """Each service's restarts in this run (the progress line shows them)."""
        self.in_a_row = dict.fromkeys((BROKER, *_JOBS), 0)
        """Its restarts since it last ran `RESTARTS_RENEWED_S`: these count against the limit."""
        self.restarted_at: dict[str, float] = {}
        self.broker: KafkaBroker | None = None
        """The broker this run started (and so restarts), if it did."""
        self.report: Callable[[str], None] = log.info
        self.supervising = False
        """Whether a job that stops is restarted: once both have started."""
        self.finishing: str | None = None
        """The job asked to finish: its exit is `_finish_job`'s to judge, not `check`'s."""
        self.refused_commits = RefusedCommits(settings)

    def start(self, report: Callable[[str], None]) -> None:
        """Tables, then both jobs at once; return when both run (topics exist already)."""
        began = time.monotonic()
        self.report = report
        ensure_tables(self.settings)
        waiting = {name: self.output[name] for name in _JOBS}
        with interrupts_held():  # each job is started and held, or not started
            for name in _JOBS:
                self.processes[name] = _JOBS[name].start(self.settings)
        timeout = self.settings.startup_timeout.total_seconds()
        while waiting:
            self.check()
            for name, tail in list(waiting.items()):
                if tail.contains(_JOBS[name].running):
                    del waiting[name]
                    report(f"{name} running after {time.monotonic() - began:.1f} s")
            if waiting and time.monotonic() - began > timeout:
                raise AdstreamError(
                    f"the {' and the '.join(waiting)} did not start within {timeout:.0f} s; "
                    f"see the logs under {self.settings.data_dir}"
                )
            time.sleep(_POLL_S)
        self.supervising = True

    def check(self) -> None:
        """Restart what has stopped, or raise with what its log says went wrong.

        Once both jobs run, each of them, and the broker when this run started it, is restarted
        up to `restarts` times in a row, after a wait that doubles each time (1 s, 2 s, 4 s,
        ...): the broker from its log, the jobs from their checkpoints, so nothing is lost or
        counted twice. One that then runs `RESTARTS_RENEWED_S` has all its restarts again.
        Before both run, or past its restarts, the run fails.
        """
        if self.broker is not None and self.broker.process.pid() is None:
            self._restart_broker(self.broker)
        refused = self.refused_commits.new()
        if refused:
            self._replay_refused(min(refused))
        for name, process in self.processes.items():
            if process is None or name == self.finishing or process.poll() is None:
                continue
            output = self.output[name]
            code = process.returncode
            stopped = f"the {name} job stopped unexpectedly " + (
                f"(killed by {signal.Signals(-code).name})"  # a log line from before would mislead
                if code < 0
                else f"(exit {code}): {_JOBS[name].failure(self.settings, output.text())}"
            )
            end_group(process)
            self._wait_to_restart(name, stopped, output.log_file)
            self._start(name)

    def _replay_refused(self, checkpoint: int) -> None:
        """Restart the join, which restores the checkpoint before the refused `checkpoint`.

        The broker refused to commit that checkpoint's Kafka transaction. The join stops at
        the refusal by itself (its sink fails the job), but Flink's own restarts restore the
        refused checkpoint again, so it is killed; started again, it restores the checkpoint
        before (`restore_point`), whose replay writes the refused outcomes again.
        """
        join = self.processes[JOIN]
        if join is not None and join.poll() is None:
            kill_group(join)
        timeout = self.settings.join_transaction_timeout.total_seconds()
        refused = (
            f"Kafka refused to commit the join's checkpoint {checkpoint} (its transaction was "
            f"open longer than --join-transaction-timeout, {timeout:.0f} s: the join was paused "
            "or the broker failed meanwhile); the join restarts from the checkpoint before it, "
            "which writes its outcomes again"
        )
        self._wait_to_restart(JOIN, refused, self.output[JOIN].log_file)
        self._start(JOIN)

    def _restart_broker(self, broker: KafkaBroker) -> None:
        """Restart the broker this run started, and a running join with it.

        A join that lives through the outage finds some of its checkpoints' Kafka
        transactions refused when it commits them after the broker is back, and their outcomes
        lost. So the join is killed as soon as the broker is found stopped (it resumes from its
        checkpoint, as after any kill) and started again once the broker runs: the restored job
        commits the transactions of its checkpoint that the outage kept from committing.
        """
        join = self.processes[JOIN]
        held = join is not None and join.poll() is None
        if held:
            assert join is not None
            kill_group(join)
        stopped = "Kafka stopped unexpectedly" + (
            " (the join stopped with it, to restart after it)" if held else ""
        )
        self._wait_to_restart(BROKER, stopped, broker.log_file)
        broker.start()
        if held:
            self._start(JOIN)

    def _start(self, name: str) -> None:
        """Start a job again: its log is read from here on."""
        self.output[name] = LogTail(self.output[name].log_file)
        with interrupts_held():
            self.processes[name] = _JOBS[name].start(self.settings)

    def _wait_to_restart(self, name: str, stopped: str, log_file: Path) -> None:
        """Report `stopped` and wait before restarting `name`; raise if it may not restart."""
        last = self.restarted_at.get(name)
        if last is not None and time.monotonic() - last >= RESTARTS_RENEWED_S:
            self.in_a_row[name] = 0
        used, limit = self.in_a_row[name], self.settings.restarts
        if not self.supervising or used >= limit:
            total = self.restarts[name]
            restarted = f" (restarted {total} times)" if total else ""
            raise AdstreamError(f"{stopped}; see {log_file}{restarted}")
        delay = _RESTART_BACKOFF_S * 2**used
        self.report(f"{stopped}; restarting it in {delay:.0f} s ({used + 1} of {limit})")
        time.sleep(delay)
        self._wait_for_space(name)
        self.in_a_row[name] = used + 1
        self.restarts[name] += 1
        self.restarted_at[name] = time.monotonic()

    def _wait_for_space(self, name: str) -> None:
        """Wait until the data disk has `RESTART_FREE_BYTES` free (a full one stops Kafka)."""
        folder = self.settings.data_dir
        free = shutil.disk_usage(folder).free
        if free >= RESTART_FREE_BYTES:
            return
        self.report(
            f"the disk of {folder} has {free / 2**20:.0f} MiB free: waiting until it has "
            f"{RESTART_FREE_BYTES / 2**20:.0f} MiB before restarting the {name} "
            "(free some, or Ctrl-C)"
        )
        while shutil.disk_usage(folder).free < RESTART_FREE_BYTES:
            time.sleep(_DISK_POLL_S)
        self.report(f"the disk of {folder} has space again: restarting the {name}")

    def progress(self, generated: GenerateReport | None) -> str:
        """One status line: events produced, rows per table, freshness lag."""
        counts = row_counts(self.settings)
        rows = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        produced = f"produced {generated.events:,} events; " if generated is not None else ""
        lag = freshness_lag(self.settings)
        shown = f"{lag.total_seconds():.1f} s" if lag is not None else "-"
        restarts = ", ".join(f"{name} {n}" for name, n in self.restarts.items() if n)
        restarted = f"; restarts: {restarts}" if restarts else ""
        return f"{produced}tables: {rows}; freshness lag {shown}{restarted}"

    def finish(self, report: Callable[[str], None]) -> Tally:
        """Finish the running jobs; return the tables' tally.

        The join is drained once it has read the input to its end: its sources stop, the
        watermark jumps to the end of time, every pending result is committed, and it stops
        with a savepoint. The enrichment then writes what the outcome topics hold and exits.
        Both stay supervised meanwhile: a job that fails to finish (or the broker) is restarted
        like any other, from its checkpoint, and asked to finish again once it runs.
        """
        end = join_streams(self.settings).end()
        report("finishing: the join reads the input to its end")
        self._finish_job(JOIN, lambda: has_read_to(self.settings, end), report)
        report("finishing: the enrichment writes what remains")
        self._finish_job("enrichment", lambda: True, report)
        self.supervising = False
        return stored_tally(self.settings)

    def _finish_job(
        self, name: str, ready: Callable[[], bool], report: Callable[[str], None]
    ) -> None:
        """Once `ready()` holds and the job runs, ask it to finish (SIGUSR1); wait until it has.

        A job that stops otherwise (killed, or failing) is restarted by `check` and asked again.
        """
        while True:
            while not (ready() and self.output[name].contains(_JOBS[name].running)):
                self.check()
                time.sleep(_POLL_S)
            if name == JOIN:
                report("finishing: the join drains and stops with a savepoint")
            process = self.processes[name]
            assert process is not None
            process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + JOB_STOP_TIMEOUT_S
            self.finishing = name
            try:
                while process.poll() is None:
                    if time.monotonic() > deadline:
                        raise AdstreamError(
                            f"the {name} job did not finish within {JOB_STOP_TIMEOUT_S} s; "
                            f"its log is under {self.settings.data_dir}"
                        )
                    self.check()  # the broker, and the other job
                    time.sleep(_POLL_S)
            finally:
                self.finishing = None
            if process.returncode == 0:
                end_group(process)
                self.processes[name] = None  # finished: no longer watched
                return
            self.check()  # restarts it, or raises past its restarts

    def abandon(self) -> None:
        """Stop both jobs now: the join with a savepoint, the enrichment after its batch."""
        jobs = [process for process in self.processes.values() if process is not None]
        stop(jobs, name="the jobs")


def freshness_lag(settings: Settings) -> timedelta | None:
    """Now minus the newest click time in enriched_ad_data (None before the first row)."""
    now = datetime.now(UTC)
    table = load_table(open_catalog(settings), ENRICHED_AD_DATA)
    recent = table.scan(
        row_filter=f"click_time >= '{(now - _FRESHNESS_HORIZON).isoformat()}'",
        selected_fields=("click_time",),
    ).to_arrow()
    if recent.num_rows == 0:
        return None
    newest: datetime = max(recent.column("click_time").to_pylist())
    return now - newest


def run_pipeline(settings: Settings, report: Callable[[str], None]) -> str:
    """Run everything until the generator stops; return the final accounting.

    SIGTERM (`kill`, a service manager stopping it) counts as Ctrl-C: the first stops the
    generator and the pipeline finishes, a second stops the jobs at once; either way nothing
    the run started is left running.
    """
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run_pipeline(settings, report)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_pipeline(settings: Settings, report: Callable[[str], None]) -> str:
    began = time.monotonic()
    service = local_service(settings)  # the broker, the AWS emulator, or none
    # Stop on exit only what this run started.
    started = service is not None and service.process.pid() is None
    dashboard = DashboardServer(settings)  # binds its port now: a taken one fails before all else
    pipeline = Pipeline(settings)
    try:
        for line in start_services(settings):
            report(line)
        if started and isinstance(service, KafkaBroker):
            pipeline.broker = service
        pipeline.start(report)
        dashboard.start()
        report(f"pipeline ready after {time.monotonic() - began:.1f} s")
        report(f"dashboard: {dashboard.url}")
        rate = f"{settings.rate:,.0f} events/s" if settings.rate else "full speed"
        report(f"generating traffic at {rate}; Ctrl-C stops and finishes the pipeline")

        def on_progress(generated: GenerateReport) -> None:
            pipeline.check()
            report(pipeline.progress(generated))

        sink = event_sink(settings, INPUT_TOPICS, waiting=pipeline.check)
        generated = generate(settings, sink, on_progress)
        report(f"generator done ({generated.stopped_by}): {generated.line()}")
        finishing = time.monotonic()
        impressions_in, clicks_in = input_counts(settings)
        tally = pipeline.finish(report)
        report(pipeline.progress(None))
        report(f"finished {time.monotonic() - finishing:.1f} s after the generator")
        accounting = tally.accounting(impressions_in, clicks_in)
        missing = impressions_in + clicks_in - tally.input_records()
        if missing > 0:
            for line in accounting.splitlines():
                report(line)
            raise AdstreamError(
                f"{missing:,} of the {impressions_in + clicks_in:,} input records have no "
                "outcome in the tables; `adstream verify` shows which outcomes are short"
            )
        return accounting
    except KeyboardInterrupt:
        report("interrupted: stopping the jobs; the next run resumes from their checkpoints")
        raise
    finally:
        try:
            dashboard.stop()
            pipeline.abandon()  # a second interrupt kills the jobs instead of waiting
        finally:
            if started and service is not None:
                with interrupts_held():  # a third one cannot leave the broker running
                    service.stop()
