"""Ctrl-C stops the generator with every record it handed on counted, none more."""

import os
import signal
from collections.abc import Sequence

from adstream.generator.runner import PACING_SLICE, generate
from adstream.settings import load_settings


class InterruptedMidway:
    """A sink that takes records one by one and is interrupted (Ctrl-C) in its second send."""

    def __init__(self, interrupts: int = 1) -> None:
        self.sends = 0
        self.taken: list[str] = []
        self.interrupts = interrupts

    def send(
        self, topics: Sequence[str], keys: Sequence[str | None], values: Sequence[str]
    ) -> None:
        self.sends += 1
        for number, value in enumerate(values):
            if self.sends == 2 and number in (100, 200)[: self.interrupts]:
                os.kill(os.getpid(), signal.SIGINT)
            self.taken.append(value)

    def close(self) -> None:
        pass


def test_ctrl_c_in_a_send_stops_after_it_with_everything_taken_counted() -> None:
    sink = InterruptedMidway()
    before = signal.getsignal(signal.SIGINT)
    report = generate(load_settings(events=100_000, rate=1_000_000, seed=3), sink)

    assert report.stopped_by == "interrupt"
    assert sink.sends == 2  # the send was finished, no other begun
    assert report.events == len(sink.taken) < 100_000
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C is handled as before again


def test_a_second_ctrl_c_stops_at_once() -> None:
    sink = InterruptedMidway(interrupts=2)  # as a send that waits for a broker that is away
    report = generate(load_settings(events=100_000, rate=1_000_000, seed=3), sink)

    assert report.stopped_by == "interrupt"
    assert len(sink.taken) == PACING_SLICE + 200  # the second send cut short
