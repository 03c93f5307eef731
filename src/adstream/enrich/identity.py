"""Exactly once by identity (SPEC section 9): a table skips an outcome it already holds.

On Kinesis the join's sink is at-least-once: after a join restart the same outcome can appear
again in an outcome stream, at a new sequence number, so positions alone cannot tell it is a
copy. Each table therefore knows its outcomes by what they are about:

| rows | identity |
|---|---|
| enriched_ad_data | impression_id (one attributed click per impression) |
| impressions | impression_id |
| unmatched_clicks | source_partition, source_sequence_number of the input click |
| rejected_events from the join | stream, source_partition, source_sequence_number |
| rejected_events, invalid joined rows | the row's impression_id (without one: its raw payload) |

A batch keeps the first row of each identity (copies within a batch count too) and drops those
the table holds. Where a held copy can be is bounded, so the check reads a few files rather
than the table: a copy of an impression, an attributed or an unmatched click has the same event
time (it comes from the same input record), so only rows between the batch's earliest and
latest time are read, which Iceberg prunes to the day partitions and the files whose time
range overlaps. A rejection's `rejected_at` is a wall-clock time and differs between copies,
but by a bounded amount (`rejection_lookback`). Rows without an identity (e.g. from Kafka,
whose transactional sinks need none) are kept; positions deduplicate them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from adstream.enrich.offsets import SEQUENCE_DIGITS
from adstream.events.outcomes import JOINED_STREAM, Reason
from adstream.lakehouse.tables import ENRICHED_AD_DATA, IMPRESSIONS, UNMATCHED_CLICKS

IDENTITY: Final = "_identity"
_SEPARATOR: Final = "\x1f"
CLOCK_MARGIN: Final = timedelta(hours=1)
"""Allowance for clocks that disagree (the join's, the enrichment's, Kinesis')."""


def _key(*parts: Column) -> Column:
    """One string per identity; null when a part is null (such a row has no identity)."""
    pieces: list[Column] = []
    for index, part in enumerate(parts):
        if index:
            pieces.append(F.lit(_SEPARATOR))
        pieces.append(part.cast("string"))
    return F.concat(*pieces)


@dataclass(frozen=True)
class Identity:
    """What makes two rows of a table the same outcome, and where an earlier copy can lie."""

    key: Callable[[], Column]
    """The identity of a row (a string over the table's columns), null when it has none."""
    time: str
    """The column that bounds where a held copy can be."""
    same_time: bool
    """A copy has the same `time` (an event time); otherwise it lies within a lookback before."""
    held: Callable[[], Column] = lambda: F.lit(True)
    """Which held rows can be copies at all (a filter Iceberg can prune files with)."""


def _impression_id() -> Column:
    return _key(F.col("impression_id"))


def _input_click() -> Column:
    return _key(F.col("source_partition"), F.col("source_sequence_number"))


def _join_rejection() -> Column:
    return _key(F.col("stream"), F.col("source_partition"), F.col("source_sequence_number"))


def _invalid_joined_row() -> Column:
    payload = F.col("raw_payload")
    return F.coalesce(
        _key(F.lit("impression"), F.get_json_object(payload, "$.impression_id")),
        _key(F.lit("payload"), F.sha2(payload, 256)),
    )


IDENTITIES: Final[dict[str, Identity]] = {
    ENRICHED_AD_DATA: Identity(_impression_id, "click_time", same_time=True),
    IMPRESSIONS: Identity(_impression_id, "event_time", same_time=True),
    UNMATCHED_CLICKS: Identity(_input_click, "event_time", same_time=True),
}
"""The base tables other than rejected_events, whose rows come in two kinds (below)."""

JOIN_REJECTION: Final = Identity(
    _join_rejection,
    "rejected_at",
    same_time=False,
    held=lambda: F.col("source_sequence_number").isNotNull(),
)
"""A record the join rejected, known by the input record it came from."""

INVALID_JOINED_ROW: Final = Identity(
    _invalid_joined_row,
    "rejected_at",
    same_time=False,
    held=lambda: (F.col("stream") == JOINED_STREAM)
    & (F.col("reason") == Reason.INVALID_JOINED_ROW.value),
)
"""A joined row the enrichment rejected: one per impression, like an attributed click."""


def rejection_lookback(input_retention: timedelta, outcome_retention: timedelta) -> timedelta:
    """How long before a rejection's `rejected_at` an earlier copy of it can have been written.

    The join re-emits an outcome only for input it can still read, within the input streams'
    retention of the input's arrival, and never before that arrival; the enrichment reads the
    copy only while the outcome stream still holds it. So two copies of a rejection lie at
    most one input plus one outcome retention apart (the input retention alone for the join's
    own rejections), plus what clocks may disagree.
    """
    return input_retention + outcome_retention + CLOCK_MARGIN


def _first_of_each(keyed: DataFrame, time: str) -> DataFrame:
    """One row per identity (rows without one are all kept): the earliest copy.

    Copies of an outcome differ at most in where they were read (an invalid joined row keeps
    its joined_output position) and in a wall-clock `rejected_at`; taking the earliest of
    each makes the choice deterministic.
    """
    order = [F.col(time)]
    if "source_sequence_number" in keyed.columns:
        order = [
            F.col("source_partition"),
            F.lpad(F.col("source_sequence_number"), SEQUENCE_DIGITS, "0"),
            *order,
        ]
    numbered = keyed.withColumn(
        "_copy", F.row_number().over(Window.partitionBy(IDENTITY).orderBy(*order))
    )
    return numbered.where(F.col(IDENTITY).isNull() | (F.col("_copy") == 1)).drop("_copy")


def unseen(rows: DataFrame, identity: Identity, table: str, lookback: timedelta) -> DataFrame:
    """`rows` (of `table`, Spark's name) less those the table holds, each identity once.

    Args:
        rows: new rows of the table, in its columns.
        identity: how its rows are known.
        table: the table, as Spark names it.
        lookback: how far before the rows' `time` a held copy can be when it is not the same.
    """
    keyed = rows.withColumn(IDENTITY, identity.key())
    first = _first_of_each(keyed, identity.time)
    time = F.col(identity.time)
    earliest, latest = keyed.where(F.col(IDENTITY).isNotNull()).agg(
        F.min(F.unix_micros(time)), F.max(F.unix_micros(time))
    ).first() or (None, None)
    if earliest is None or latest is None:
        return first.drop(IDENTITY)  # nothing to look up: no row has an identity and a time
    if identity.same_time:
        reach = time.between(F.timestamp_micros(F.lit(earliest)), F.timestamp_micros(F.lit(latest)))
    else:
        since = earliest - lookback // timedelta(microseconds=1)
        reach = time >= F.timestamp_micros(F.lit(since))
    held = (
        rows.sparkSession.table(table)
        .where(reach & identity.held())
        .select(identity.key().alias(IDENTITY))
        .where(F.col(IDENTITY).isNotNull())
    )
    return first.join(held, IDENTITY, "left_anti").drop(IDENTITY)
