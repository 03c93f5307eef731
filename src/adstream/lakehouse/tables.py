"""The Iceberg tables (SPEC section 6), defined once for every engine that reads or writes them.

Columns are derived from the event schemas in `adstream.events.schema`: ids and strings are
`string`, event times `timestamptz`, prices `decimal(18, 6)`.
"""

from dataclasses import dataclass
from typing import Any, Final, Literal

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, HourTransform, IdentityTransform, Transform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from adstream.events.schema import CLICK_FIELDS, IMPRESSION_FIELDS, PRICE_SCALE, Field, FieldKind

NAMESPACE: Final = "ad_analytics"

ENRICHED_AD_DATA: Final = "enriched_ad_data"
IMPRESSIONS: Final = "impressions"
UNMATCHED_CLICKS: Final = "unmatched_clicks"
REJECTED_EVENTS: Final = "rejected_events"
CAMPAIGN_METRICS_MINUTE: Final = "campaign_metrics_minute"
DASHBOARD_METRICS_MINUTE: Final = "dashboard_metrics_minute"

MONEY: Final = DecimalType(18, PRICE_SCALE)
SPEND: Final = DecimalType(38, PRICE_SCALE + 3)
"""Sums of CPM bids divided by 1000: exact, so three more places than a price."""
TABLE_PROPERTIES: Final = {
    "format-version": "2",
    "write.format.default": "parquet",
    # Iceberg's default, stated for Athena's sake: it reads ZSTD Parquet (engine v3).
    "write.parquet.compression-codec": "zstd",
    # A streaming writer commits every few seconds: keep the last 100 metadata files only.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
}

_TYPE_OF_KIND: Final[dict[FieldKind, IcebergType]] = {
    "id": StringType(),
    "string": StringType(),
    "timestamp": TimestamptzType(),
    "price": MONEY,
}


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    name: str
    type: IcebergType
    doc: str | None = None


Grain = Literal["day", "hour", "value"]
_TRANSFORMS: Final[dict[Grain, Transform[Any, Any]]] = {
    "day": DayTransform(),
    "hour": HourTransform(),
    "value": IdentityTransform(),
}


@dataclass(frozen=True)
class TableDefinition:
    """One table: its columns, in order, and the timestamp column it is partitioned by.

    Partitioned by day of that column, by its hour, or by its value (one partition per minute
    of campaign_metrics_minute, so a micro-batch rewrites only the minutes it touches).
    """

    name: str
    columns: tuple[Column, ...]
    partitioned_by: str
    doc: str
    grain: Grain = "day"

    @property
    def identifier(self) -> str:
        """`ad_analytics.<name>`, as pyiceberg names it (Spark prefixes the catalog name)."""
        return f"{NAMESPACE}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(column.name for column in self.columns)

    def schema(self) -> Schema:
        """The Iceberg schema (every column optional: engines write nullable columns).

        Top-level columns have ids 1..n; the element of a list column gets the next free id.
        """
        next_id = len(self.columns) + 1
        fields = []
        for field_id, column in enumerate(self.columns, start=1):
            column_type = column.type
            if isinstance(column_type, ListType):
                column_type = ListType(next_id, column_type.element_type, element_required=False)
                next_id += 1
            fields.append(
                NestedField(field_id, column.name, column_type, required=False, doc=column.doc)
            )
        return Schema(*fields)

    def partition_spec(self) -> PartitionSpec:
        """Partitioned by day or hour of one timestamp column, or by its value."""
        source_id = self.schema().find_field(self.partitioned_by).field_id
        name = self.partitioned_by
        if self.grain != "value":
            name = f"{name}_{self.grain}"
        return PartitionSpec(
            PartitionField(
                source_id=source_id, field_id=1000, transform=_TRANSFORMS[self.grain], name=name
            )
        )


def _columns(fields: tuple[Field, ...]) -> tuple[Column, ...]:
    return tuple(Column(field.name, _TYPE_OF_KIND[field.kind]) for field in fields)


_FIELD_OF: Final = {field.name: field for field in (*IMPRESSION_FIELDS, *CLICK_FIELDS)}

JOINED_FIELDS: Final = (
    *(_FIELD_OF[name] for name in ("ad_id", "impression_id", "campaign_id", "publisher_id")),
    Field("impression_time", "timestamp"),
    Field("click_time", "timestamp"),
    *(_FIELD_OF[name] for name in ("geo_location", "platform", "device_type", "ad_type")),
    _FIELD_OF["bid_price"],
    _FIELD_OF["click_price"],
)
"""A `joined_output` record (SPEC section 3): dimensions and bid from the impression, time and
price of the attributed click."""

JOINED_COLUMNS: Final = _columns(JOINED_FIELDS)

_SOURCE_POSITION: Final = (
    Column(
        "source_partition", IntegerType(), "Kafka partition or Kinesis shard number of the input"
    ),
    Column("source_offset", LongType(), "Kafka offset of the input record (null on Kinesis)"),
)
_SOURCE_SEQUENCE_NUMBER: Final = Column(
    "source_sequence_number",
    StringType(),
    "Kinesis sequence number of the input record (null on Kafka); added after the first release, "
    "so it comes last",
)

ENRICHED_AD_DATA_TABLE: Final = TableDefinition(
    ENRICHED_AD_DATA,
    (
        *JOINED_COLUMNS,
        Column("is_premium_ad", BooleanType(), "bid_price above the premium threshold"),
        Column("engagement_duration", DoubleType(), "seconds from impression to click"),
        Column("platform_category", StringType(), "Mobile, Tablet, Desktop, CTV or Other"),
        Column("click_revenue", MONEY, "click_price times the revenue multiplier"),
        Column("processed_time", TimestamptzType(), "when the row was enriched"),
    ),
    partitioned_by="click_time",
    doc="One row per attributed click, with the derived columns of SPEC section 5.",
)
IMPRESSIONS_TABLE: Final = TableDefinition(
    IMPRESSIONS,
    (*_columns(IMPRESSION_FIELDS), *_SOURCE_POSITION, _SOURCE_SEQUENCE_NUMBER),
    partitioned_by="event_time",
    doc="One row per unique valid impression.",
)
UNMATCHED_CLICKS_TABLE: Final = TableDefinition(
    UNMATCHED_CLICKS,
    (*_columns(CLICK_FIELDS), *_SOURCE_POSITION, _SOURCE_SEQUENCE_NUMBER),
    partitioned_by="event_time",
    doc="One row per valid, on-time click that matched no impression.",
)
REJECTED_EVENTS_TABLE: Final = TableDefinition(
    REJECTED_EVENTS,
    (
        Column("stream", StringType(), "impressions, clicks, or joined (from the enrichment)"),
        Column("reason", StringType(), "reason code (SPEC section 4)"),
        Column("detail", StringType()),
        Column("raw_payload", StringType(), "the record as received, truncated to 64 KiB"),
        *_SOURCE_POSITION,
        Column("rejected_at", TimestamptzType()),
        _SOURCE_SEQUENCE_NUMBER,
    ),
    partitioned_by="rejected_at",
    doc="One row per rejected record: invalid, late, duplicate, or an invalid joined row.",
)

CAMPAIGN_METRICS_MINUTE_TABLE: Final = TableDefinition(
    CAMPAIGN_METRICS_MINUTE,
    (
        Column("minute", TimestamptzType(), "start of the event-time minute (UTC)"),
        Column("campaign_id", StringType()),
        Column("publisher_id", StringType()),
        Column("platform_category", StringType(), "Mobile, Tablet, Desktop, CTV or Other"),
        Column("impressions", LongType(), "unique valid impressions with event_time in the minute"),
        Column("premium_impressions", LongType(), "of them, bid above the premium threshold"),
        Column("spend", SPEND, "sum of their bid_price / 1000 (bid_price is a CPM)"),
        Column("clicks", LongType(), "attributed clicks with click_time in the minute"),
        Column("click_revenue", MONEY, "sum of their click_revenue"),
        Column("ctr", DoubleType(), "clicks / impressions; null without impressions"),
        Column("premium_share", DoubleType(), "premium_impressions / impressions"),
        Column(
            "median_engagement_duration",
            DoubleType(),
            "median engagement_duration of the clicks, seconds; null without clicks",
        ),
        Column(
            "engagement_durations_ms",
            ListType(0, LongType()),
            "every click's engagement_duration in milliseconds, sorted: keeps the median exact",
        ),
    ),
    partitioned_by="minute",
    grain="value",
    doc="Per event-time minute x campaign x publisher x platform_category: the base tables summed.",
)

DIMENSIONS: Final = ("campaign", "publisher", "platform_category", "total")
"""What a row of dashboard_metrics_minute totals, in its `dimension` column."""

DASHBOARD_METRICS_MINUTE_TABLE: Final = TableDefinition(
    DASHBOARD_METRICS_MINUTE,
    (
        Column("minute", TimestamptzType(), "start of the event-time minute (UTC)"),
        Column("dimension", StringType(), "campaign, publisher, platform_category or total"),
        Column("id", StringType(), "the campaign, publisher or platform category; null in total"),
        Column("impressions", LongType()),
        Column("spend", SPEND),
        Column("clicks", LongType()),
        Column("click_revenue", MONEY),
    ),
    partitioned_by="minute",
    grain="hour",
    doc="campaign_metrics_minute summed per minute and campaign, publisher, platform category, "
    "and in all: the dashboard's grain, a few hundred rows a minute.",
)

TABLES: Final = (  # the order each micro-batch writes them in: the attributed clicks first
    ENRICHED_AD_DATA_TABLE,
    IMPRESSIONS_TABLE,
    UNMATCHED_CLICKS_TABLE,
    REJECTED_EVENTS_TABLE,
    CAMPAIGN_METRICS_MINUTE_TABLE,
    DASHBOARD_METRICS_MINUTE_TABLE,  # from campaign_metrics_minute's rows: after it
)
TABLE_BY_NAME: Final = {table.name: table for table in TABLES}
