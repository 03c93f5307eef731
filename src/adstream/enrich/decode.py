"""Kafka records of the outcome topics to typed rows, by the table definitions.

The join writes JSON objects whose fields are named like the table columns: prices as JSON
numbers (parsed straight into decimal(18, 6), never through a float) and times as ISO-8601
strings (`2026-11-01T08:00:01.500Z`, UTC).
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from pyiceberg import types as iceberg
from pyspark.sql import Column as PySparkColumn
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


_JOIN_TIME: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
"""The form the join writes every time in (`adstream.join.sql.iso_time`)."""


def _timestamp(text: PySparkColumn) -> PySparkColumn:
    """An ISO-8601 string as a timestamp; null when it is not one.

    Spark resolves the zone a string names anew for every row (two regular expressions
    compiled each time), so the join's own form, which names UTC as `Z`, is parsed without it,
    in the session's zone: UTC, which every session of the job is set to
    (`adstream.enrich.session.UTC`).
    """
    return F.when(text.rlike(_JOIN_TIME), F.to_timestamp(F.substring(text, 1, 23))).otherwise(
        F.to_timestamp(text)
    )


def _typed(parsed: str, columns: Sequence[Column]) -> list[PySparkColumn]:
    """The columns, typed, from the struct column `parsed` that `from_json` made."""
    return [
        (
            _timestamp(F.col(f"{parsed}.{c.name}"))
            if isinstance(c.type, iceberg.TimestamptzType)
            else F.col(f"{parsed}.{c.name}")
        ).alias(c.name)
        for c in columns
    ]


def _schema(columns: Sequence[Column]) -> StructType:
    return StructType([StructField(c.name, _json_type(c)) for c in columns])


def decode(records: DataFrame, columns: Sequence[Column]) -> DataFrame:
    """Parse each record's JSON value into `columns`; the Kafka columns are kept too.

    A field that is missing, null or of the wrong type becomes null (so a broken joined row
    fails validation rather than stopping the job).
    """
    parsed = records.withColumn("_parsed", F.from_json(F.col("value"), _schema(columns)))
    return parsed.select(*KAFKA_COLUMNS, *_typed("_parsed", columns))


def decode_by_topic(
    records: DataFrame, topics: Mapping[str, Sequence[Column]], raw: Collection[str]
) -> DataFrame:
    """Each record decoded once, by the columns of its topic in `topics` (as `decode` does).

    The Kafka columns, and per topic a struct column named after it that holds the decoded
    columns of that topic's records (null on the others'); `of_topic` reads it back. Only the
    records of the topics in `raw` keep their `value`: the others' is null, so that a persisted
    batch holds no text nothing reads. Parsing JSON is most of a batch's work and several
    tables read each topic: decoded once and persisted, a batch is parsed once however many
    tables it feeds.
    """
    topic = F.col("topic")
    parsed = records.select(
        *KAFKA_COLUMNS,
        *(
            F.when(topic == name, F.from_json(F.col("value"), _schema(columns))).alias(name)
            for name, columns in topics.items()
        ),
    )
    return parsed.select(
        *(name for name in KAFKA_COLUMNS if name != "value"),
        F.when(topic.isin(list(raw)), F.col("value")).alias("value"),
        *(
            F.when(topic == name, F.struct(*_typed(name, columns))).alias(name)
            for name, columns in topics.items()
        ),
    )


def of_topic(decoded: DataFrame, topic: str) -> DataFrame:
    """The records of `topic` in `decoded` (from `decode_by_topic`), as `decode` returns them."""
    return decoded.where(F.col("topic") == topic).select(*KAFKA_COLUMNS, f"{topic}.*")
