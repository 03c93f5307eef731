from dataclasses import dataclass

import pytest

from adstream.events.timestamps import format_event_time, parse_event_time

BASE_MS = 1_795_750_448_000  # 2026-11-27T03:34:08Z


@dataclass(frozen=True)
class Case:
    text: str
    expected_ms: int | None


CASES = [
    Case("2026-11-27T03:34:08.123Z", BASE_MS + 123),
    Case("2026-11-27T03:34:08.123", BASE_MS + 123),  # no Z means UTC
    Case("2026-11-27T03:34:08Z", BASE_MS),
    Case("2026-11-27T03:34:08", BASE_MS),
    Case("2026-11-27T03:34:08.1Z", BASE_MS + 100),
    Case("2026-11-27T03:34:08.12Z", BASE_MS + 120),
    Case("2026-11-27T03:34:08.123999999Z", BASE_MS + 123),  # truncated, not rounded
    Case("2026-11-27T03:34:08.9999Z", BASE_MS + 999),
    Case("2026-11-27T03:34:08.1234567890Z", None),  # ten fraction digits
    Case("2026-11-27T03:34:08.Z", None),
    Case("2026-11-27 03:34:08Z", None),
    Case("2026-11-27T03:34:08+00:00", None),
    Case("2026-02-30T10:00:00Z", None),
    Case("2026-11-27T24:00:00Z", None),
    Case("27/11/2026 03:34", None),
    Case("", None),
    Case("2026-11-27T03:34:08ZZ", None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: repr(case.text))
def test_parse_event_time(case: Case) -> None:
    assert parse_event_time(case.text) == case.expected_ms


def test_format_round_trips_with_millisecond_precision() -> None:
    assert format_event_time(BASE_MS + 7) == "2026-11-27T03:34:08.007Z"
    assert parse_event_time(format_event_time(BASE_MS + 7)) == BASE_MS + 7
