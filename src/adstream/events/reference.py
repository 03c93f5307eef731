"""A batch recomputation of the join's outcomes (SPEC sections 2-4), independent of Flink.

Plain Python over the raw input records, used by tests and by `adstream verify`. It follows the
contract, not the streaming code: validate each record; a valid record is *late* when its event
time is more than D behind the largest valid-looking event time seen before it in its own Kafka
partition; per impression_id the earliest on-time impression is unique and the others are
duplicates; a click matches when the earliest impression is at most W before it (both ends
inclusive); the earliest matching click is attributed and later ones are duplicates; other
valid on-time clicks are unmatched. Ties in event time break by Kafka offset.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adstream.events.outcomes import Reason, Stream
from adstream.events.schema import money
from adstream.events.timestamps import format_event_time, parse_event_time
from adstream.events.validation import Rejection, ValidEvent, parse_json, validate


@dataclass(frozen=True)
class SourceRecord:
    """One raw input record as Kafka holds it."""

    stream: Stream
    partition: int
    offset: int
    produced_ms: int
    value: bytes | None  # None: a record without a value (a Kafka tombstone)


@dataclass
class Outcomes:
    """Where every input record ends up."""

    joined: list[dict[str, Any]] = field(default_factory=list)
    unique_impressions: list[SourceRecord] = field(default_factory=list)
    unmatched_clicks: list[SourceRecord] = field(default_factory=list)
    rejected: list[tuple[SourceRecord, Reason]] = field(default_factory=list)


def watermark_time(record: SourceRecord, future_bound_ms: int) -> int | None:
    """The event time a record contributes to its partition's watermark, if any.

    Any JSON object (as strict as `validate`: `parse_json`) whose event_time parses and is not
    beyond the future bound counts, even when another field makes the record invalid (as in the
    Flink source).
    """
    try:
        parsed = parse_json(record.value)
    except ValueError:
        return None
    text = parsed.get("event_time") if isinstance(parsed, dict) else None
    moment = parse_event_time(text) if isinstance(text, str) else None
    if moment is None or moment > record.produced_ms + future_bound_ms:
        return None
    return moment


def recompute(
    records: Iterable[SourceRecord],
    *,
    attribution_window_ms: int,
    out_of_orderness_ms: int,
    future_bound_ms: int,
) -> Outcomes:
    """Every outcome of the join over `records` (any order; each partition is replayed)."""
    outcomes = Outcomes()
    on_time: dict[str, list[tuple[int, int, SourceRecord, ValidEvent]]] = defaultdict(list)
    by_partition: dict[tuple[Stream, int], list[SourceRecord]] = defaultdict(list)
    for record in records:
        by_partition[(record.stream, record.partition)].append(record)

    for (stream, _), partition_records in sorted(by_partition.items()):
        partition_max: int | None = None
        for record in sorted(partition_records, key=lambda r: r.offset):
            moment = watermark_time(record, future_bound_ms)
            if moment is not None:
                partition_max = moment if partition_max is None else max(partition_max, moment)
            result = validate(
                record.value, stream, now_ms=record.produced_ms, future_bound_ms=future_bound_ms
            )
            if isinstance(result, Rejection):
                outcomes.rejected.append((record, result.reason))
            elif (
                partition_max is not None
                and result.event_time < partition_max - out_of_orderness_ms
            ):
                outcomes.rejected.append((record, Reason.LATE_EVENT))
            else:
                kind = 0 if stream == "impressions" else 1
                key = result.fields["impression_id"]
                on_time[key].append((result.event_time, kind, record, result))

    for rows in on_time.values():
        rows.sort(key=lambda row: (row[0], row[2].offset))
        impressions = [row for row in rows if row[1] == 0]
        first = impressions[0] if impressions else None
        for row in impressions:
            if row is first:
                outcomes.unique_impressions.append(row[2])
            else:
                outcomes.rejected.append((row[2], Reason.DUPLICATE_IMPRESSION))
        attributed = False
        for click_time, kind, record, click in rows:
            if kind == 0:
                continue
            matched = (
                first is not None and first[0] <= click_time <= first[0] + attribution_window_ms
            )
            if not matched:
                outcomes.unmatched_clicks.append(record)
            elif attributed:
                outcomes.rejected.append((record, Reason.DUPLICATE_CLICK))
            else:
                attributed = True
                assert first is not None
                outcomes.joined.append(joined_row(first[3], click))
    return outcomes


def joined_row(impression: ValidEvent, click: ValidEvent) -> dict[str, Any]:
    """The `joined_output` record (SPEC section 3), times as ISO strings, money as Decimal."""
    i, c = impression.fields, click.fields
    return {
        "ad_id": i["ad_id"],
        "impression_id": i["impression_id"],
        "campaign_id": i["campaign_id"],
        "publisher_id": i["publisher_id"],
        "impression_time": format_event_time(impression.event_time),
        "click_time": format_event_time(click.event_time),
        "geo_location": i["geo_location"],
        "platform": i["platform"],
        "device_type": i["device_type"],
        "ad_type": i["ad_type"],
        "bid_price": money(i["bid_price"]),
        "click_price": money(c["click_price"]),
    }
