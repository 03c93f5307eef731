"""`adstream run` holds an interrupt while it starts a job, so no job is left behind."""

import os
import signal

import pytest

from adstream.services.process import interrupts_held


def test_an_interrupt_while_a_job_starts_is_raised_once_it_is_held() -> None:
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # as `adstream run`
    held = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            held.append("the job")  # reached: the block is not cut short
        assert held == ["the job"]
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_without_an_interrupt_nothing_is_raised_and_the_handlers_are_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with interrupts_held():
        pass
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
