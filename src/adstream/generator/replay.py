"""`adstream produce`: replay a JSON-lines file into a topic, one record per line."""

import json
from collections.abc import Iterable
from typing import Final

from adstream.platform import event_sink
from adstream.settings import Settings

_CHUNK: Final = 10_000


def record_key(line: str) -> str | None:
    """The record's impression_id when the line is a JSON object carrying one as a string."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    key = record.get("impression_id") if isinstance(record, dict) else None
    return key if isinstance(key, str) else None


def replay(settings: Settings, topic: str, lines: Iterable[str]) -> tuple[int, int]:
    """Send every non-blank line to `topic`; return (records sent, blank lines skipped)."""
    sink = event_sink(settings, (topic,))
    sent = blank = 0
    keys: list[str | None] = []
    values: list[str] = []
    try:
        for raw in lines:
            value = raw.rstrip("\r\n")
            if not value.strip():
                blank += 1
                continue
            keys.append(record_key(value))
            values.append(value)
            if len(values) >= _CHUNK:
                sink.send([topic] * len(values), keys, values)
                sent += len(values)
                keys, values = [], []
        sink.send([topic] * len(values), keys, values)
        sent += len(values)
    finally:
        sink.close()
    return sent, blank
