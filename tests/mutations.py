"""Seeded hostile variants of generated records: the generator's traffic, part of it mangled.

Each mangling is one of the kinds of docs/join.md ("Hostile input"), drawn with its parameters
from one seeded random generator, so a seed always gives the same records. Only kinds where the
job and the reference agree exactly are drawn (not, e.g., nesting between Jackson's 1,000 levels
and Python's recursion limit, or prices below 1e-18).
"""

import json
import random
from collections.abc import Callable, Iterator
from typing import Any, Final

from adstream.events.outcomes import Stream
from adstream.events.schema import STREAM_OF_TOPIC
from adstream.generator.runner import records
from adstream.settings import Settings

Produced = tuple[Stream, bytes, str | None]
"""(stream, raw value, Kafka key), as tests.join_harness.produce sends them."""

_PRICES: Final = ("bid_price", "click_price")
_BAD_TIMES: Final = (
    "2026-11-01T10:00:00+02:00",
    "2026-11-01T10:00:00+00:00",
    "2026-11-01T24:00:00Z",
    "2026-11-01T23:59:60Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2026-11-01t10:00:00z",
    "٢٠٢٦-11-01T10:00:00Z",
    "",
)
_BAD_NUMBERS: Final = (
    *("NaN", "Infinity", "-Infinity", "-0", "-0.0", "1e5", "1.25E1", "012", "0x1"),
    str(10**40),
)


def _set_raw(record: dict[str, Any], name: str, raw: str) -> str:
    """The record as JSON with field `name` written as the raw text `raw`."""
    marker = "\u0000adstream-raw\u0000"
    return json.dumps({**record, name: marker}).replace(json.dumps(marker), raw)


def _field(rng: random.Random, record: dict[str, Any]) -> str:
    return rng.choice(sorted(record))


def _wrong_type(rng: random.Random, record: dict[str, Any]) -> str:
    value = rng.choice([None, 42, "12.5", True, [], {"nested": 1}])
    return json.dumps({**record, _field(rng, record): value})


def _missing(rng: random.Random, record: dict[str, Any]) -> str:
    name = _field(rng, record)
    return json.dumps({key: value for key, value in record.items() if key != name})


def _price(rng: random.Random, record: dict[str, Any]) -> str:
    name = next((price for price in _PRICES if price in record), "bid_price")
    return _set_raw(record, name, rng.choice(_BAD_NUMBERS))


def _time(rng: random.Random, record: dict[str, Any]) -> str:
    return json.dumps({**record, "event_time": rng.choice(_BAD_TIMES)})


def _duplicate_key(rng: random.Random, record: dict[str, Any]) -> str:
    name = _field(rng, record)
    text = json.dumps(record)
    return text[:-1] + f", {json.dumps(name)}: {json.dumps(rng.choice([None, 1, 'x']))}}}"


def _nested(rng: random.Random, record: dict[str, Any]) -> str:
    depth = rng.choice([5, 200, 100_000])
    return _set_raw(record, "extra", "[" * depth + "]" * depth)


def _not_an_object(rng: random.Random, record: dict[str, Any]) -> str:
    return rng.choice(["[]", '"text"', "1", "null", "", "   ", "{", json.dumps(record)[:-1]])


def _unknown_field(rng: random.Random, record: dict[str, Any]) -> str:
    return json.dumps({**record, rng.choice(["x", "ünïcödé", "🙂"]): "🙂" * rng.randint(1, 50)})


_TEXT_KINDS: Final[tuple[Callable[[random.Random, dict[str, Any]], str], ...]] = (
    _wrong_type,
    _missing,
    _price,
    _time,
    _duplicate_key,
    _nested,
    _not_an_object,
    _unknown_field,
)


def _mangle(rng: random.Random, value: str) -> bytes:
    """One hostile variant of a generated record's text."""
    try:
        record = json.loads(value)
    except ValueError:
        record = None
    kind = rng.randrange(len(_TEXT_KINDS) + 4)
    if isinstance(record, dict) and kind < len(_TEXT_KINDS):
        return _TEXT_KINDS[kind](rng, record).encode()
    raw = value.encode()
    if kind % 4 == 0:
        return b"\xef\xbb\xbf" + raw  # a byte order mark: still the same record
    if kind % 4 == 1:
        at = rng.randrange(len(raw) + 1)
        return raw[:at] + bytes([rng.choice([0xFF, 0xC0, 0x80, 0xED])]) + raw[at:]
    if kind % 4 == 2:
        return raw[: rng.randrange(len(raw) + 1)]  # truncated
    return rng.randbytes(rng.randint(0, 64))


def hostile_traffic(settings: Settings, share: float) -> Iterator[Produced]:
    """The generator's records for `settings`, a `share` of them mangled (seeded by its seed).

    A mangled record keeps the key the generator gave it, or now and then another one.
    """
    rng = random.Random(settings.seed)
    for batch in records(settings):
        for topic, key, value in zip(batch.topics, batch.keys, batch.values, strict=True):
            stream = STREAM_OF_TOPIC[topic].name
            if rng.random() >= share:
                yield stream, value.encode(), key
                continue
            key = key if rng.random() < 0.9 else f"wrong-{rng.randrange(1000)}"
            yield stream, _mangle(rng, value), key
