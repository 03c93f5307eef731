"""Stream names and outcome reason codes (SPEC section 4)."""

from enum import StrEnum
from typing import Final, Literal

IMPRESSIONS_TOPIC: Final = "ad_impressions"
CLICKS_TOPIC: Final = "ad_clicks"
JOINED_TOPIC: Final = "joined_output"
UNMATCHED_CLICKS_TOPIC: Final = "unmatched_clicks"
REJECTED_EVENTS_TOPIC: Final = "rejected_events"
IMPRESSIONS_OUT_TOPIC: Final = "unique_impressions"

INPUT_TOPICS: Final = (IMPRESSIONS_TOPIC, CLICKS_TOPIC)
OUTCOME_TOPICS: Final = (
    JOINED_TOPIC,
    IMPRESSIONS_OUT_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
    REJECTED_EVENTS_TOPIC,
)
ALL_TOPICS: Final = INPUT_TOPICS + OUTCOME_TOPICS
KEYED_BY_IMPRESSION: Final = (JOINED_TOPIC, IMPRESSIONS_OUT_TOPIC, UNMATCHED_CLICKS_TOPIC)
"""Outcome topics whose records are keyed (Kafka) or partitioned (Kinesis) by impression_id;
rejected_events records have no key."""

Stream = Literal["impressions", "clicks"]
JOINED_STREAM: Final = "joined"
"""`rejected_events.stream` of a joined row the enrichment rejected (invalid_joined_row)."""


class Reason(StrEnum):
    """Why a record was rejected; stored verbatim in `rejected_events.reason`."""

    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    INVALID_TYPE = "invalid_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    INVALID_PRICE = "invalid_price"
    LATE_EVENT = "late_event"
    DUPLICATE_IMPRESSION = "duplicate_impression"
    DUPLICATE_CLICK = "duplicate_click"
    INVALID_JOINED_ROW = "invalid_joined_row"


INVALID_REASONS: Final = (
    Reason.MALFORMED_JSON,
    Reason.MISSING_FIELD,
    Reason.INVALID_TYPE,
    Reason.INVALID_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP,
    Reason.INVALID_PRICE,
)
"""Reasons that make a record *invalid* (as opposed to late or duplicate)."""
