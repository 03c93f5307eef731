"""The Iceberg tables (SPEC section 6), defined once for every engine that reads or writes them.

Columns are derived from the event schemas in `adstream.events.schema`: ids and strings are
`string`, event times `timestamptz`, prices `decimal(18, 6)`.
"""

from dataclasses import dataclass
from typing import Final

from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IcebergType,
    IntegerType,
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

MONEY: Final = DecimalType(18, PRICE_SCALE)
TABLE_PROPERTIES: Final = {
    "format-version": "2",
    "write.format.default": "parquet",
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


@dataclass(frozen=True)
class TableDefinition:
    """One table: its columns, in order, and the timestamp column it is partitioned by day of."""

    name: str
    columns: tuple[Column, ...]
    partitioned_by_day_of: str
    doc: str

    @property
    def identifier(self) -> str:
        """`ad_analytics.<name>`, as pyiceberg names it (Spark prefixes the catalog name)."""
        return f"{NAMESPACE}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(column.name for column in self.columns)

    def schema(self) -> Schema:
        """The Iceberg schema (every column optional: engines write nullable columns)."""
        return Schema(
            *(
                NestedField(field_id, column.name, column.type, required=False, doc=column.doc)
                for field_id, column in enumerate(self.columns, start=1)
            )
        )

    def partition_spec(self) -> PartitionSpec:
        """Partitioned by day of one timestamp column."""
        source_id = self.schema().find_field(self.partitioned_by_day_of).field_id
        return PartitionSpec(
            PartitionField(
                source_id=source_id,
                field_id=1000,
                transform=DayTransform(),
                name=f"{self.partitioned_by_day_of}_day",
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
    Column("source_partition", IntegerType(), "Kafka partition of the input record"),
    Column("source_offset", LongType(), "Kafka offset of the input record"),
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
    partitioned_by_day_of="click_time",
    doc="One row per attributed click, with the derived columns of SPEC section 5.",
)
IMPRESSIONS_TABLE: Final = TableDefinition(
    IMPRESSIONS,
    (*_columns(IMPRESSION_FIELDS), *_SOURCE_POSITION),
    partitioned_by_day_of="event_time",
    doc="One row per unique valid impression.",
)
UNMATCHED_CLICKS_TABLE: Final = TableDefinition(
    UNMATCHED_CLICKS,
    (*_columns(CLICK_FIELDS), *_SOURCE_POSITION),
    partitioned_by_day_of="event_time",
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
    ),
    partitioned_by_day_of="rejected_at",
    doc="One row per rejected record: invalid, late, duplicate, or an invalid joined row.",
)

TABLES: Final = (
    ENRICHED_AD_DATA_TABLE,
    IMPRESSIONS_TABLE,
    UNMATCHED_CLICKS_TABLE,
    REJECTED_EVENTS_TABLE,
)
TABLE_BY_NAME: Final = {table.name: table for table in TABLES}
