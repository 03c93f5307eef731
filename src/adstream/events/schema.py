"""The two input event schemas (SPEC section 2), written once.

Every engine-specific schema (Flink DDL, Spark StructType, Iceberg schema) is derived from
these tuples or tested against them.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from adstream.events.outcomes import CLICKS_TOPIC, IMPRESSIONS_TOPIC, Stream

FieldKind = Literal["id", "string", "timestamp", "price"]
"""`id`: required non-empty string; `string`: optional string (null when absent);
`timestamp`: required event-time string; `price`: required JSON number in (0, 10000]."""

MIN_PRICE_EXCLUSIVE: Final = Decimal(0)
MAX_PRICE: Final = Decimal(10000)
PRICE_SCALE: Final = 6
"""Money is decimal(18, 6) everywhere."""
_MONEY_QUANTUM: Final = Decimal(1).scaleb(-PRICE_SCALE)
MAX_RAW_PAYLOAD_BYTES: Final = 64 * 1024
"""Rejected records keep their raw payload truncated to this size."""


def money(value: Decimal) -> Decimal:
    """A price as stored: decimal(18, 6), rounded half-up."""
    return value.quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Field:
    """One field of an input event."""

    name: str
    kind: FieldKind

    @property
    def required(self) -> bool:
        """Whether a record without this field (or with null) is invalid."""
        return self.kind != "string"


_COMMON: Final = (
    Field("ad_id", "id"),
    Field("impression_id", "id"),
    Field("campaign_id", "id"),
    Field("publisher_id", "id"),
    Field("event_time", "timestamp"),
    Field("device_type", "string"),
    Field("geo_location", "string"),
    Field("platform", "string"),
)

IMPRESSION_FIELDS: Final = (*_COMMON, Field("ad_type", "string"), Field("bid_price", "price"))
CLICK_FIELDS: Final = (*_COMMON, Field("click_price", "price"))


@dataclass(frozen=True)
class InputStream:
    """One input stream: its name in outcomes, its topic (or Kinesis stream), its fields.

    The one place that ties the three together; every engine and tool looks them up here.
    """

    name: Stream
    topic: str
    fields: tuple[Field, ...]


INPUT_STREAMS: Final[dict[Stream, InputStream]] = {
    "impressions": InputStream("impressions", IMPRESSIONS_TOPIC, IMPRESSION_FIELDS),
    "clicks": InputStream("clicks", CLICKS_TOPIC, CLICK_FIELDS),
}
"""The input streams by name, impressions first."""
STREAM_OF_TOPIC: Final[dict[str, InputStream]] = {s.topic: s for s in INPUT_STREAMS.values()}
