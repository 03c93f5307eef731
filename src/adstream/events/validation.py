"""Validation of raw input records (SPEC section 2): the reference every engine is tested on."""

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adstream.events.outcomes import Reason, Stream
from adstream.events.schema import INPUT_STREAMS, MAX_PRICE, MIN_PRICE_EXCLUSIVE, Field
from adstream.events.timestamps import parse_event_time


@dataclass(frozen=True)
class ValidEvent:
    """A record that passed validation, its fields normalised.

    `event_time` is epoch milliseconds; prices are exact `Decimal`s; optional strings may be None.
    """

    fields: dict[str, Any]

    @property
    def event_time(self) -> int:
        """Event time in epoch milliseconds."""
        value: int = self.fields["event_time"]
        return value


@dataclass(frozen=True)
class Rejection:
    """Why a record is invalid: a reason code and a human-readable detail."""

    reason: Reason
    detail: str


class _NotStrictJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not valid JSON")


def parse_json(raw: bytes | str | None) -> Any:
    """The one JSON value of a raw record, numbers with a fraction or exponent as `Decimal`.

    Strict (SPEC section 2: one JSON value, UTF-8): raises ValueError for a record without a
    value (a Kafka tombstone), bytes that are not UTF-8 (`json.loads` would also guess UTF-16
    and UTF-32, and let UTF-8-encoded surrogates through), NaN and Infinity, an integer of more
    than 4300 digits, and nesting deeper than Python's recursion limit. One leading UTF-8 byte
    order mark is skipped.
    """
    if raw is None:
        raise ValueError("the record has no value")
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


def validate(
    raw: bytes | str | None, stream: Stream, *, now_ms: int, future_bound_ms: int
) -> ValidEvent | Rejection:
    """Validate one raw record of `stream` against SPEC section 2.

    Checks run in this order and the first failure wins: JSON object (`parse_json`), required
    fields present, types, timestamp syntax, price range, then the future bound (`event_time`
    more than `future_bound_ms` ahead of `now_ms`).
    """
    try:
        record = parse_json(raw)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return Rejection(Reason.MALFORMED_JSON, f"not valid JSON: {error}")
    if not isinstance(record, dict):
        return Rejection(Reason.MALFORMED_JSON, f"not a JSON object but {type(record).__name__}")

    fields = INPUT_STREAMS[stream].fields
    for field in fields:
        if field.required and record.get(field.name) is None:
            return Rejection(Reason.MISSING_FIELD, f"{field.name} is missing")

    normalised: dict[str, Any] = {}
    for field in fields:
        value = record.get(field.name)
        problem = _type_problem(field, value)
        if problem is not None:
            return problem
        normalised[field.name] = value

    event_time = parse_event_time(normalised["event_time"])
    if event_time is None:
        return Rejection(
            Reason.INVALID_TIMESTAMP, f"event_time {normalised['event_time']!r} is not ISO-8601"
        )
    normalised["event_time"] = event_time

    for field in fields:
        if field.kind == "price":
            price = Decimal(normalised[field.name])
            if not MIN_PRICE_EXCLUSIVE < price <= MAX_PRICE:
                return Rejection(
                    Reason.INVALID_PRICE, f"{field.name} {price} is outside (0, 10000]"
                )
            normalised[field.name] = price

    if event_time > now_ms + future_bound_ms:
        return Rejection(
            Reason.FUTURE_TIMESTAMP,
            f"event_time is {(event_time - now_ms) / 1000:.0f} s ahead of the clock",
        )
    return ValidEvent(normalised)


def _type_problem(field: Field, value: Any) -> Rejection | None:
    if field.kind == "id":
        if not isinstance(value, str):
            return Rejection(Reason.INVALID_TYPE, f"{field.name} is not a string")
        if not value:
            return Rejection(Reason.MISSING_FIELD, f"{field.name} is empty")
    elif field.kind in ("string", "timestamp"):
        if value is not None and not isinstance(value, str):
            return Rejection(Reason.INVALID_TYPE, f"{field.name} is not a string")
    elif field.kind == "price" and (
        isinstance(value, bool) or not isinstance(value, int | Decimal)
    ):
        return Rejection(Reason.INVALID_TYPE, f"{field.name} is not a JSON number")
    return None
