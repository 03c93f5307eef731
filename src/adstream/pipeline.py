"""`adstream run`: the whole pipeline on this machine, one command.

Kafka, topics and tables first; then the join and the enrichment, each a process of its own
(in its own session, so Ctrl-C reaches only this one, which stops them in order); the dashboard,
in a thread of this process; then the generator, in this process, with a progress line every
2 s. When the generator stops (its bound, or Ctrl-C) the pipeline finishes what it was given:
the join reads the input to its end and drains (every pending result out), the enrichment
writes the last outcomes, and the final accounting is printed from the tables. A second Ctrl-C
abandons that wait; nothing is lost, the next run resumes from the checkpoints.
"""

import logging
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from adstream.dashboard.server import DashboardServer
from adstream.enrich.launcher import run_enrich, start_enrich
from adstream.errors import AdstreamError
from adstream.events.outcomes import INPUT_TOPICS
from adstream.generator.runner import GenerateReport, generate
from adstream.generator.sinks import KafkaSink
from adstream.join.launcher import run_join, start_join
from adstream.lakehouse.catalog import ensure_tables, load_table, open_catalog, row_counts
from adstream.lakehouse.tables import ENRICHED_AD_DATA
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import offset_span
from adstream.settings import Settings
from adstream.verify import stored_tally

log = logging.getLogger(__name__)

_FRESHNESS_HORIZON: Final = timedelta(minutes=30)


class Pipeline:
    """The join and enrichment processes of one run, watched and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.join: subprocess.Popen[bytes] | None = None
        self.enrich: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Tables, then both jobs (topics exist: the broker created them)."""
        ensure_tables(self.settings)
        self.join = start_join(self.settings, bounded=False, detached=True)
        self.enrich = start_enrich(self.settings, bounded=False, detached=True)

    def check(self) -> None:
        """Raise if a job has died."""
        for name, process in (("join", self.join), ("enrichment", self.enrich)):
            if process is not None and process.poll() is not None:
                raise AdstreamError(
                    f"the {name} job stopped unexpectedly (exit {process.returncode}); "
                    f"its log is under {self.settings.data_dir}"
                )

    def progress(self, generated: GenerateReport | None) -> str:
        """One status line: events produced, rows per table, freshness lag."""
        counts = row_counts(self.settings)
        rows = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        produced = f"produced {generated.events:,} events; " if generated is not None else ""
        lag = freshness_lag(self.settings)
        shown = f"{lag.total_seconds():.1f} s" if lag is not None else "-"
        return f"{produced}tables: {rows}; freshness lag {shown}"

    def finish(self, report: Callable[[str], None]) -> None:
        """Stop the endless jobs with savepoints, then finish both with bounded runs.

        The bounded join restores the savepoint, reads the input to its end and drains. The
        endless join is not drained itself: its sources call a quiet partition idle, and an
        idle source drops the drain's final watermark (FLINK-40499), so results pending within
        D would stay pending.
        """
        self.check()
        assert self.join is not None and self.enrich is not None
        report("finishing: the join reads the input to its end and drains")
        self.join.send_signal(signal.SIGTERM)  # a savepoint, pending results kept
        # Killed by it while still importing PyFlink, it had started nothing: fine as well.
        if self.join.wait() not in (0, -signal.SIGTERM):
            raise AdstreamError(
                f"the join job failed to stop; see {self.settings.data_dir}/flink/join.log"
            )
        run_join(self.settings, bounded=True)
        report("finishing: the enrichment writes the last outcomes")
        self.enrich.send_signal(signal.SIGTERM)
        self.enrich.wait()
        run_enrich(self.settings, bounded=True)

    def abandon(self) -> None:
        """Stop both jobs now: the join with a savepoint, the enrichment after its batch."""
        for process in (self.join, self.enrich):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.join, self.enrich):
            if process is not None:
                try:
                    process.wait(timeout=300)
                except subprocess.TimeoutExpired:
                    process.kill()


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
    """Run everything until the generator stops; return the final accounting."""
    broker = KafkaBroker(settings)
    started = broker.process.pid() is None  # stop on exit only what this run started
    dashboard = DashboardServer(settings)  # binds its port now: a taken one fails before all else
    pipeline = Pipeline(settings)
    try:
        broker.start()
        pipeline.start()
        dashboard.start()
        report(f"dashboard: {dashboard.url}")
        rate = f"{settings.rate:,.0f} events/s" if settings.rate else "full speed"
        report(f"generating traffic at {rate}; Ctrl-C stops and finishes the pipeline")

        def on_progress(generated: GenerateReport) -> None:
            pipeline.check()
            report(pipeline.progress(generated))

        generated = generate(settings, KafkaSink(settings, INPUT_TOPICS), on_progress)
        report(f"generator done ({generated.stopped_by}): {generated.line()}")
        pipeline.finish(report)
        report(pipeline.progress(None))
        impressions_in, clicks_in = (offset_span(settings, topic) for topic in INPUT_TOPICS)
        return stored_tally(settings).accounting(impressions_in, clicks_in)
    except KeyboardInterrupt:
        report("interrupted: stopping the jobs; the next run resumes from their checkpoints")
        raise
    finally:
        dashboard.stop()
        pipeline.abandon()
        if started:
            broker.stop()
