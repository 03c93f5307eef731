"""Hostile input through the real join job (SPEC sections 2 and 4), one row per kind of record.

Every kind is produced into one fresh set of topics (one partition each, so every record's
offset is known), one bounded join runs over all of them, and each kind's record must end in
exactly its expected outcome, with the rejected-event record SPEC section 4 asks for, and the
reference recomputation (what `adstream verify` runs) must agree with the job on every record.
Where SPEC is silent the expected outcome is the choice written down in docs/join.md
("Hostile input").
"""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pytest
from confluent_kafka import Producer

from adstream.events.outcomes import REJECTED_EVENTS_TOPIC, Stream
from adstream.events.schema import INPUT_STREAMS, MAX_RAW_PAYLOAD_BYTES
from adstream.platform import read_records
from adstream.services.kafka_client import producer_config
from adstream.settings import Settings
from tests.join_harness import (
    JoinOutputs,
    assert_same_outputs,
    click,
    expected_outputs,
    impression,
    join_settings,
    recreate_topics,
    run_bounded_join,
)

pytestmark = pytest.mark.integration

START: Final = datetime(2026, 11, 1, 1, tzinfo=UTC)
ONE_MIB: Final = 1024 * 1024
FROM_PAYLOAD: Final = "from the payload"
"""The default Kafka key: the record's impression_id, as SPEC section 2 says producers key."""


def at(seconds: float) -> str:
    """An event time `seconds` after START, as the generator writes it."""
    moment = START + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != name}


def text(record: dict[str, Any]) -> str:
    """The record as compact JSON text, non-ASCII characters as themselves (UTF-8 once encoded)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def with_raw(record: dict[str, Any], name: str, raw_value: str) -> str:
    """The record's JSON with `name`'s value replaced by `raw_value`, verbatim JSON text."""
    placeholder = "\u0000placeholder\u0000"
    return text({**record, name: placeholder}).replace(json.dumps(placeholder), raw_value)


def padded(record: dict[str, Any], size: int, filler: str) -> bytes:
    """The record with a `padding` field of `filler` characters (and as many x as it takes to
    fill the rest), exactly `size` bytes of UTF-8."""
    room = size - len(text({**record, "padding": ""}).encode())
    count, rest = divmod(room, len(filler.encode()))
    payload = text({**record, "padding": filler * count + "x" * rest}).encode()
    assert len(payload) == size
    return payload


@dataclass(frozen=True)
class Sent:
    """One record as produced: its stream, raw value (None: no value at all), Kafka key, and the
    outcome it must get (unique, attributed, unmatched, or a rejection reason)."""

    stream: Stream
    value: bytes | None
    key: str | None
    expected: str
    impression_id: str | None = None  # of an attributed click: the joined row it makes


def sent(
    stream: Stream,
    value: dict[str, Any] | str | bytes | None,
    expected: str,
    key: str | None = FROM_PAYLOAD,
) -> Sent:
    raw = text(value) if isinstance(value, dict) else value
    payload = raw.encode() if isinstance(raw, str) else raw
    payload_id = _impression_id(payload)
    return Sent(
        stream,
        payload,
        payload_id if key == FROM_PAYLOAD else key,
        expected,
        payload_id if expected == "attributed" else None,
    )


def _impression_id(payload: bytes | None) -> str | None:
    """The payload's impression_id, if it is a JSON object with one."""
    try:
        record = json.loads(payload.decode("utf-8-sig")) if payload is not None else None
    except (ValueError, RecursionError):
        return None
    iid = record.get("impression_id") if isinstance(record, dict) else None
    return iid if isinstance(iid, str) else None


def I(  # noqa: E743
    value: dict[str, Any] | str | bytes | None, expected: str, key: str | None = FROM_PAYLOAD
) -> Sent:
    return sent("impressions", value, expected, key)


def C(
    value: dict[str, Any] | str | bytes | None, expected: str, key: str | None = FROM_PAYLOAD
) -> Sent:
    return sent("clicks", value, expected, key)


@dataclass(frozen=True)
class Kind:
    """A named kind of hostile record: the record, then any records that show what it did
    (a click on an impression that had a byte order mark), each with its expected outcome."""

    name: str
    records: tuple[Sent, ...] = field(default_factory=tuple)


def kinds() -> list[Kind]:
    rows: list[Kind] = []
    tick = 0

    def t() -> str:
        """The next event time: every record of the table within one second (no lateness)."""
        nonlocal tick
        tick += 1
        return at(tick / 100)

    def kind(name: str, *records: Sent) -> None:
        rows.append(Kind(name, records))

    # Encodings and framing.
    kind(
        "invalid_utf8",
        I(
            text(impression("utf8-bad", t())).encode().replace(b"phone", b"ph\xc3\x28one"),
            "malformed_json",
        ),
    )
    kind(
        "utf8_encoded_surrogate",
        C(
            text(click("utf8-surrogate", t())).encode().replace(b"phone", b"ph\xed\xa0\x80one"),
            "malformed_json",
        ),
    )
    kind("utf16_payload", I(text(impression("utf16", t())).encode("utf-16"), "malformed_json"))
    kind(
        "byte_order_mark",
        I(b"\xef\xbb\xbf" + text(impression("bom", t())).encode(), "unique", key="bom"),
        C(click("bom", t()), "attributed"),
    )
    kind(
        "byte_order_mark_twice",
        I(b"\xef\xbb\xbf\xef\xbb\xbf" + text(impression("bom2", t())).encode(), "malformed_json"),
    )
    kind("empty_record", C(b"", "malformed_json", key="empty"))
    kind("no_value_tombstone", I(None, "malformed_json", key="tombstone"))
    kind("white_space_only", I(" \n\t ", "malformed_json"))
    kind("json_null", C("null", "malformed_json"))
    kind("json_string", I('"an impression"', "malformed_json"))
    kind("trailing_comma", C(text(click("comma", t()))[:-1] + ",}", "malformed_json"))
    kind("truncated_object", I(text(impression("cut", t()))[:-1], "malformed_json"))
    kind(
        "raw_control_character",
        C(text(click("ctrl", t())).replace("phone", "ph\none"), "malformed_json"),
    )
    kind("single_quotes", I(text(impression("quotes", t())).replace('"', "'"), "malformed_json"))
    kind("comment", C("/* a click */" + text(click("comment", t())), "malformed_json"))
    # Numbers.
    kind("nan_literal", I(with_raw(impression("nan", t()), "bid_price", "NaN"), "malformed_json"))
    kind(
        "infinity_literal",
        C(with_raw(click("inf", t()), "click_price", "Infinity"), "malformed_json"),
    )
    kind(
        "nan_in_an_ignored_field",
        I(with_raw(impression("nan-extra", t()), "score", "-Infinity"), "malformed_json"),
    )
    kind(
        "exponent_price",
        I(with_raw(impression("exp", t()), "bid_price", "1.25E1"), "unique"),
        C(with_raw(click("exp", t()), "click_price", "4e-1"), "attributed"),
    )
    kind(
        "exponent_price_out_of_range",
        C(with_raw(click("exp-big", t()), "click_price", "1e5"), "invalid_price"),
    )
    kind(
        "negative_zero_price",
        I(with_raw(impression("neg0", t()), "bid_price", "-0.0"), "invalid_price"),
    )
    kind(
        "negative_zero_integer_price",
        C(with_raw(click("neg0i", t()), "click_price", "-0"), "invalid_price"),
    )
    kind(
        "leading_zero_number",
        I(with_raw(impression("lead0", t()), "bid_price", "012"), "malformed_json"),
    )
    kind(
        "plus_sign_number",
        I(with_raw(impression("plus", t()), "bid_price", "+1"), "malformed_json"),
    )
    kind("hex_number", C(with_raw(click("hex", t()), "click_price", "0x1"), "malformed_json"))
    kind("price_as_string", I(impression("str-price", t(), bid_price="12.5"), "invalid_type"))
    kind(
        "event_time_as_epoch_number",
        C(click("epoch", t(), event_time=1_793_494_800_000), "invalid_type"),
    )
    kind(
        "impression_id_as_number",
        I(impression("num-id", t(), impression_id=7), "invalid_type", key="7"),
    )
    kind(
        "huge_integer_price",
        C(with_raw(click("huge", t()), "click_price", "9" * 40), "invalid_price"),
    )
    kind(
        "integer_beyond_4300_digits",
        I(with_raw(impression("giant", t()), "score", "1" * 4301), "malformed_json"),
    )
    kind("price_at_the_maximum", C(click("max-price", t(), click_price=10000), "unmatched"))
    kind(
        "price_just_over_the_maximum",
        I(with_raw(impression("over-max", t()), "bid_price", "10000.000001"), "invalid_price"),
    )
    # Structure.
    kind(
        "duplicate_keys_last_valid",
        I(text(impression("dup-key", t()))[:-1] + ',"bid_price":-3,"bid_price":2.5}', "unique"),
    )
    kind(
        "duplicate_keys_last_invalid",
        C(text(click("dup-key-bad", t()))[:-1] + ',"click_price":-1}', "invalid_price"),
    )
    kind(
        "deep_nesting",
        I(
            with_raw(impression("deep", t()), "extra", "[" * 100_000 + "]" * 100_000),
            "malformed_json",
        ),
    )
    kind(
        "moderate_nesting",
        C(with_raw(click("nested", t()), "extra", '{"a":' * 200 + "1" + "}" * 200), "unmatched"),
    )
    kind("price_as_object", I(impression("obj-price", t(), bid_price={"usd": 1}), "invalid_type"))
    kind("optional_field_wrong_type", C(click("opt-type", t(), platform=["iOS"]), "invalid_type"))
    kind("unknown_fields_ignored", I(impression("extra-fields", t(), color="blue"), "unique"))
    kind("missing_required_field", C(without(click("no-ad", t()), "ad_id"), "missing_field"))
    kind("null_required_field", I(impression("null-ad", t(), publisher_id=None), "missing_field"))
    # Big payloads (SPEC section 4: the raw payload is kept to 64 KiB).
    kind(
        "payload_of_1_mib_rejected",
        I(padded(without(impression("big", t()), "bid_price"), ONE_MIB, "x"), "missing_field"),
    )
    kind(
        "payload_of_1_mib_multibyte_rejected",
        C(
            padded(without(click("big-utf8-splits", t()), "click_price"), ONE_MIB, "\u00e9"),
            "missing_field",
        ),
    )
    kind("payload_of_1_mib_valid", I(padded(impression("big-ok", t()), ONE_MIB, "x"), "unique"))
    # Kafka keys.
    kind("no_kafka_key", I(impression("keyless", t()), "unique", key=None))
    kind(
        "mismatched_kafka_key",
        I(impression("key-imp", t()), "unique", key="someone-else"),
        C(click("key-imp", t()), "attributed", key="another-one"),
    )
    # Times.
    kind("utc_offset_zero", C(click("tz0", t()[:-1] + "+00:00"), "invalid_timestamp"))
    kind("utc_offset_other", I(impression("tz2", t()[:-1] + "+02:00"), "invalid_timestamp"))
    kind("lowercase_t", I(impression("lower-t", t().replace("T", "t")), "invalid_timestamp"))
    kind("lowercase_z", C(click("lower-z", t()[:-1] + "z"), "invalid_timestamp"))
    kind("hour_24", I(impression("h24", "2026-11-01T24:00:00Z"), "invalid_timestamp"))
    kind("leap_second", C(click("leap", "2026-06-30T23:59:60Z"), "invalid_timestamp"))
    kind("february_30", I(impression("feb30", "2026-02-30T01:00:00Z"), "invalid_timestamp"))
    kind("fraction_of_10_digits", C(click("frac10", t()[:-1] + "0000001Z"), "invalid_timestamp"))
    kind(
        "non_ascii_digits", I(impression("digits", "２０２６-11-01T01:00:00Z"), "invalid_timestamp")
    )
    kind("year_0000", C(click("y0", "0000-01-01T00:00:00Z"), "invalid_timestamp"))
    kind("year_0001", I(impression("y1", "0001-01-01T00:00:00Z"), "late_event"))
    kind("epoch_zero", C(click("epoch0", "1970-01-01T00:00:00.000Z"), "late_event"))
    kind("year_9999", I(impression("y9999", "9999-12-31T23:59:59.999Z"), "future_timestamp"))
    kind("nine_fraction_digits", C(click("frac9", t()[:-1] + "999999Z"), "unmatched"))
    return rows


OPENING: Final = (
    I(impression("opening", at(0)), "unique"),
    C(click("opening", at(0)), "attributed"),
)
"""Gives each input partition a largest event time before the hostile records arrive."""

CLOSING: Final = (
    I(impression("closing", at(3600)), "unique"),
    C(click("closing", at(3600)), "attributed"),
)
"""An hour later (more than W + D): moves every watermark past everything before it."""


def all_sent() -> list[Sent]:
    return [*OPENING, *(record for k in kinds() for record in k.records), *CLOSING]


def offsets(records: list[Sent]) -> Iterator[tuple[Sent, int]]:
    """Each record with its offset in its stream's one partition."""
    numbers: Counter[Stream] = Counter()
    for record in records:
        yield record, numbers[record.stream]
        numbers[record.stream] += 1


def produce_raw(settings: Settings, records: list[Sent]) -> None:
    """Send the records in order, as they are: no value for None, up to 1 MiB each.

    librdkafka refuses a message over 1,000,000 bytes by default; the broker's limit (1 MiB and
    12 bytes, Kafka's default `message.max.bytes`) is on the compressed batch, which the 1 MiB
    payloads stay under with the producer's lz4.
    """
    producer = Producer({**producer_config(settings), "message.max.bytes": 2 * ONE_MIB})
    for record in records:
        producer.produce(INPUT_STREAMS[record.stream].topic, record.value, record.key)
    assert producer.flush(60) == 0


@dataclass(frozen=True)
class Run:
    outputs: JoinOutputs
    rejected_rows: dict[tuple[str, int, int], list[dict[str, Any]]]  # (stream, partition, offset)
    offset_of: dict[Sent, int]
    settings: Settings


@pytest.fixture(scope="module")
def run(kafka: Settings, tmp_path_factory: pytest.TempPathFactory) -> Run:
    settings = join_settings(kafka, tmp_path_factory.mktemp("join-hostile"))
    recreate_topics(settings, partitions=1)
    records = all_sent()
    assert len(set(records)) == len(records)  # each found again by its value
    produce_raw(settings, records)
    outputs = run_bounded_join(settings)
    rejected_rows: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for stored in read_records(settings, REJECTED_EVENTS_TOPIC):
        row = json.loads(stored.value)
        position = (row["stream"], row["source_partition"], row["source_offset"])
        rejected_rows.setdefault(position, []).append(row)
    return Run(outputs, rejected_rows, dict(offsets(records)), settings)


@pytest.mark.parametrize("kind", kinds(), ids=lambda kind: kind.name)
def test_each_kind_gets_its_outcome(kind: Kind, run: Run) -> None:
    joined = {(row["impression_id"], row["click_time"]) for row in run.outputs.joined}
    for record in kind.records:
        offset = run.offset_of[record]
        found = run.outputs.outcome_of(record.stream, 0, offset)
        if record.expected == "attributed":
            assert found == [], record
            assert record.impression_id in {iid for iid, _ in joined}, record
        else:
            assert found == [record.expected], record
        if record.expected in ("unique", "attributed", "unmatched"):
            continue
        (row,) = run.rejected_rows[(record.stream, 0, offset)]
        assert row["reason"] == record.expected
        assert row["detail"]
        assert row["rejected_at"]
        assert_raw_payload(row["raw_payload"], record.value)


def assert_raw_payload(stored: str | None, value: bytes | None) -> None:
    """The rejected-event record keeps the record's text, at most 64 KiB of it (SPEC section 4):
    the longest prefix that fits without splitting a character, bytes that are not UTF-8 each
    run of them one U+FFFD (a JSON record holds text, not bytes)."""
    if value is None:
        assert stored is None
        return
    assert stored is not None
    assert len(stored.encode()) <= MAX_RAW_PAYLOAD_BYTES
    kept = value[:MAX_RAW_PAYLOAD_BYTES].decode("utf-8", errors="ignore")
    try:
        value.decode()
    except UnicodeDecodeError:
        assert "\ufffd" in stored
        assert stored.replace("\ufffd", "") == kept
    else:
        assert stored == kept


def test_a_1_mib_payload_is_kept_to_64_kib(run: Run) -> None:
    """Exactly 65,536 bytes of ASCII; of two-byte characters as many as fit whole: 65,535
    bytes, as the cut after 65,536 would split one."""
    for name in ("payload_of_1_mib_rejected", "payload_of_1_mib_multibyte_rejected"):
        (record,) = [record for kind in kinds() if kind.name == name for record in kind.records]
        assert record.value is not None and len(record.value) == ONE_MIB
        (row,) = run.rejected_rows[(record.stream, 0, run.offset_of[record])]
        stored = row["raw_payload"].encode()
        split = (record.value[MAX_RAW_PAYLOAD_BYTES] & 0xC0) == 0x80  # inside a character
        assert split == ("multibyte" in name)
        assert len(stored) == MAX_RAW_PAYLOAD_BYTES - (1 if split else 0), name
        assert record.value.startswith(stored), name


def test_prices_in_exponent_form_are_exact(run: Run) -> None:
    (row,) = [r for r in run.outputs.joined if r["impression_id"] == "exp"]
    assert (row["bid_price"], row["click_price"]) == (Decimal("12.500000"), Decimal("0.400000"))


def test_every_record_has_one_outcome(run: Run) -> None:
    assert run.outputs.total() == len(run.offset_of)


def test_reference_recomputation_agrees(run: Run) -> None:
    assert_same_outputs(run.outputs, expected_outputs(run.settings))
