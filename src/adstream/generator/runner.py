"""Drive the traffic model into a sink: rate control, bounds, progress, clean stop."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from adstream.events.outcomes import CLICKS_TOPIC, IMPRESSIONS_TOPIC
from adstream.generator.sinks import Sink
from adstream.generator.traffic import Batch, Traffic
from adstream.services.process import interrupts_held
from adstream.settings import Settings

PROGRESS_EVERY_S: Final = 2.0
PACING_SLICE: Final = 512


@dataclass
class GenerateReport:
    """What was sent, for progress lines and the final summary."""

    events: int = 0
    impressions: int = 0
    clicks: int = 0
    invalid: int = 0
    seconds: float = 0.0
    stopped_by: str = "limit"
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def rate(self) -> float:
        """Events per second so far."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """One human-readable progress line."""
        return (
            f"{self.events:,} events ({self.impressions:,} impressions, {self.clicks:,} clicks, "
            f"{self.invalid:,} invalid) in {self.seconds:.1f} s, {self.rate:,.0f} events/s"
        )


def start_ms(settings: Settings) -> int:
    """Event time of the first record: the configured start, or now."""
    moment = settings.start_time or datetime.now(tz=UTC)
    return int(moment.timestamp() * 1000)


def records(settings: Settings) -> Iterator[Batch]:
    """The generated records in batches, cut at `settings.events` when it is set."""
    remaining = settings.events
    for batch in Traffic(settings, start_ms(settings)).batches():
        if remaining is not None:
            if remaining <= 0:
                return
            if len(batch) > remaining:
                batch = batch.slice(0, remaining)
            remaining -= len(batch)
        yield batch


def generate(
    settings: Settings,
    sink: Sink,
    progress: Callable[[GenerateReport], None] | None = None,
) -> GenerateReport:
    """Send generated records to `sink` until a bound is reached or the user interrupts.

    With `rate` > 0, records are released when their emission time comes due on the wall clock
    (event time tracks the clock); with `rate` 0 they are sent as fast as the sink takes them.
    Ctrl-C stops after the current slice (a second one at once); everything sent is flushed
    before returning, and counted.
    """
    report = GenerateReport()
    first_ms = start_ms(settings)
    began = time.monotonic()
    deadline = began + settings.duration.total_seconds() if settings.duration else None
    last_progress = began
    try:
        for batch in records(settings):
            slice_size = PACING_SLICE if settings.rate else max(len(batch), 1)
            for start in range(0, len(batch), slice_size):
                piece = batch.slice(start, start + slice_size)
                if settings.rate:
                    due = began + (int(piece.emit_ms[-1]) - first_ms) / 1000.0
                    _sleep_until(due, deadline)
                if deadline is not None and time.monotonic() >= deadline:
                    report.stopped_by = "duration"
                    return report
                # Interrupted midway, a send would have handed records to the producer that
                # it delivers as the sink closes: they would reach the topics uncounted.
                with interrupts_held(second_at_once=True):
                    sink.send(piece.topics, piece.keys, piece.values)
                    _count(report, piece)
                # Per slice, not per batch: a batch holds many seconds of traffic at low rates.
                now = time.monotonic()
                report.seconds = now - began
                if progress is not None and now - last_progress >= PROGRESS_EVERY_S:
                    progress(report)
                    last_progress = now
    except KeyboardInterrupt:
        report.stopped_by = "interrupt"
    finally:
        sink.close()
        report.seconds = time.monotonic() - began
    return report


def _sleep_until(due: float, deadline: float | None) -> None:
    wake = min(due, deadline) if deadline is not None else due
    delay = wake - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _count(report: GenerateReport, batch: Batch) -> None:
    report.events += len(batch)
    report.impressions += batch.topics.count(IMPRESSIONS_TOPIC)
    report.clicks += batch.topics.count(CLICKS_TOPIC)
    report.invalid += int((batch.invalid >= 0).sum())
