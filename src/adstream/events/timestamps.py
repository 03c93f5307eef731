"""Event-time parsing (SPEC section 2): ISO-8601 UTC, millisecond precision, truncated."""

import re
from datetime import UTC, datetime, timedelta
from typing import Final

_PATTERN: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?",
    re.ASCII,
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def parse_event_time(text: str) -> int | None:
    """Parse an event-time string into epoch milliseconds, or None when it is not valid.

    Accepts `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits and an optional `Z`;
    a time without `Z` is UTC. The fraction is truncated to milliseconds.
    """
    match = _PATTERN.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError:
        return None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return (moment - _EPOCH) // _ONE_MS + millis


def format_event_time(epoch_ms: int) -> str:
    """Format epoch milliseconds the way the generator writes them: `...T03:34:08.123Z`."""
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"
