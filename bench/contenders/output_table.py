"""What every contender writing attributed clicks writes: one Iceberg table, defined once.

`bench.attributed_clicks` in the SQL catalog of the contender's data directory (the catalog
`adstream.lakehouse.catalog.open_catalog` opens), with the columns of adstream's
`enriched_ad_data` that the harness compares, in the same types.
"""

from typing import Final

from pyiceberg.schema import Schema
from pyiceberg.types import NestedField

from adstream.lakehouse.catalog import CATALOG_NAME, open_catalog
from adstream.lakehouse.tables import ENRICHED_AD_DATA_TABLE, TABLE_PROPERTIES
from adstream.settings import Settings

NAMESPACE: Final = "bench"
TABLE: Final = f"{NAMESPACE}.attributed_clicks"
"""The pyiceberg identifier; Spark names it `SPARK_TABLE`."""
SPARK_TABLE: Final = f"{CATALOG_NAME}.{TABLE}"
OUTPUT_COLUMNS: Final = (
    "impression_id",
    "ad_id",
    "campaign_id",
    "publisher_id",
    "impression_time",
    "click_time",
    "bid_price",
    "click_price",
    "click_revenue",
)


def output_schema() -> Schema:
    """The table's schema: those columns, typed as in enriched_ad_data."""
    type_of = {column.name: column.type for column in ENRICHED_AD_DATA_TABLE.columns}
    return Schema(
        *(
            NestedField(field_id, name, type_of[name], required=False)
            for field_id, name in enumerate(OUTPUT_COLUMNS, start=1)
        )
    )


def create_output_table(settings: Settings, *, replace: bool) -> None:
    """Create the table (format v2) if missing; with `replace`, drop an existing one first."""
    catalog = open_catalog(settings)
    catalog.create_namespace_if_not_exists(NAMESPACE)
    if replace and catalog.table_exists(TABLE):
        catalog.drop_table(TABLE)
    catalog.create_table_if_not_exists(TABLE, schema=output_schema(), properties=TABLE_PROPERTIES)
