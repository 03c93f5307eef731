"""Kafka records of the outcome topics to typed rows, by the table definitions.

The join writes JSON objects whose fields are named like the table columns: prices as JSON
numbers (parsed straight into decimal(18, 6), never through a float) and times as ISO-8601
strings (`2026-11-01T08:00:01.500Z`, UTC).
"""

from collections.abc import Sequence
from typing import Final

from pyiceberg import types as iceberg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from adstream.lakehouse.tables import Column

KAFKA_COLUMNS: Final = ("topic", "partition", "offset", "value")
"""What the job keeps of each Kafka record (the value as a UTF-8 string)."""

_SPARK_TYPE: Final[dict[type[iceberg.IcebergType], DataType]] = {
    iceberg.StringType: StringType(),
    iceberg.TimestamptzType: TimestampType(),
    iceberg.BooleanType: BooleanType(),
    iceberg.DoubleType: DoubleType(),
    iceberg.IntegerType: IntegerType(),
    iceberg.LongType: LongType(),
}


def spark_type(iceberg_type: iceberg.IcebergType) -> DataType:
    """The Spark type of an Iceberg column type used by the tables."""
    if isinstance(iceberg_type, iceberg.DecimalType):
        return DecimalType(iceberg_type.precision, iceberg_type.scale)
    return _SPARK_TYPE[type(iceberg_type)]


def _json_type(column: Column) -> DataType:
    # Times arrive as ISO-8601 strings and are parsed as UTC below.
    if isinstance(column.type, iceberg.TimestamptzType):
        return StringType()
    return spark_type(column.type)


def decode(records: DataFrame, columns: Sequence[Column]) -> DataFrame:
    """Parse each record's JSON value into `columns`; the Kafka columns are kept too.

    A field that is missing, null or of the wrong type becomes null (so a broken joined row
    fails validation rather than stopping the job).
    """
    schema = StructType([StructField(c.name, _json_type(c)) for c in columns])
    parsed = records.withColumn("_parsed", F.from_json(F.col("value"), schema))
    typed = [
        (
            F.to_timestamp(F.col(f"_parsed.{c.name}"))
            if isinstance(c.type, iceberg.TimestamptzType)
            else F.col(f"_parsed.{c.name}")
        ).alias(c.name)
        for c in columns
    ]
    return parsed.select(*KAFKA_COLUMNS, *typed)
