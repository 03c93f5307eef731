"""campaign_metrics_minute: the base tables summed per event-time minute, exact at every batch.

A row per minute x campaign_id x publisher_id x platform_category (docs/enrich.md):
impressions count in the minute of their `event_time`, attributed clicks in the minute of their
`click_time`. Each micro-batch adds its new impressions and enriched clicks (`summarize`, a
summary of one event each) to the rows the table already holds for the minutes they touch
(`combine`, one aggregation for both), and rewrites those minutes. Sums are exact decimals,
and the table keeps every click's engagement duration in milliseconds, so the median stays
exact however the clicks arrive.

dashboard_metrics_minute sums those rows again at the dashboard's grain (`roll_up`): per minute
and campaign, publisher or platform category, and the minute's total. A batch recomputes the
minutes its records touch from campaign_metrics_minute as it stands (written just before), so
however often it runs for a minute the result is the same, and rewrites their hours.
"""

from decimal import Decimal
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

from adstream.enrich.decode import spark_type
from adstream.enrich.rules import EnrichRules, decimal_literal, is_premium_ad, platform_category
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE_TABLE,
    DASHBOARD_METRICS_MINUTE_TABLE,
    MONEY,
    SPEND,
)

KEY: Final = ("minute", "campaign_id", "publisher_id", "platform_category")
DURATIONS: Final = "engagement_durations_ms"
ADDITIVE: Final = ("impressions", "premium_impressions", "spend", "clicks", "click_revenue")
"""The columns a minute's rows are summed over; the rest is derived from them."""
ROLLED_UP: Final = ("impressions", "spend", "clicks", "click_revenue")
"""The sums dashboard_metrics_minute keeps."""
DIMENSION_COLUMNS: Final = {
    "campaign": "campaign_id",
    "publisher": "publisher_id",
    "platform_category": "platform_category",
    "total": None,
}
"""The column of campaign_metrics_minute each dimension of dashboard_metrics_minute sums by."""
_HOUR_MS: Final = 3_600_000

_SPEND_TYPE: Final = spark_type(SPEND)
_MONEY_TYPE: Final = spark_type(MONEY)


def _minute(time_column: str) -> Column:
    return F.date_trunc("minute", F.col(time_column)).alias("minute")


def summarize(impressions: DataFrame, clicks: DataFrame, rules: EnrichRules) -> DataFrame:
    """The new impressions and clicks (rows of `impressions`, `enriched_ad_data`) as summaries.

    Each is the summary of itself, for `combine` to add up: a click's engagement duration a
    one-element array, an impression's null.

    Spend is bid_price / 1000 (a CPM), exact: the sum of decimal(18, 6) bids times 0.001 has
    nine places, and decimal(38, 9) holds it.
    """
    zero = F.lit(0).cast(LongType())
    duration = F.unix_millis(F.col("click_time")) - F.unix_millis(F.col("impression_time"))
    shown = impressions.select(
        _minute("event_time"),
        "campaign_id",
        "publisher_id",
        platform_category().alias("platform_category"),
        F.lit(1).cast(LongType()).alias("impressions"),
        is_premium_ad(rules).cast(LongType()).alias("premium_impressions"),
        (F.col("bid_price") * decimal_literal(Decimal("0.001"))).alias("spend"),
        zero.alias("clicks"),
        F.lit(None).cast(_MONEY_TYPE).alias("click_revenue"),
        F.lit(None).cast("array<bigint>").alias(DURATIONS),
    )
    clicked = clicks.select(
        _minute("click_time"),
        "campaign_id",
        "publisher_id",
        "platform_category",
        zero.alias("impressions"),
        zero.alias("premium_impressions"),
        F.lit(None).cast(_SPEND_TYPE).alias("spend"),
        F.lit(1).cast(LongType()).alias("clicks"),
        "click_revenue",
        F.when(duration.isNotNull(), F.array(duration)).alias(DURATIONS),
    )
    return shown.unionByName(clicked, allowMissingColumns=False)


def _median_seconds(durations: Column) -> Column:
    """The median of a sorted array of milliseconds, in seconds (mean of the middle two)."""
    n = F.size(durations)
    middle = F.element_at(durations, ((n + 1) / 2).cast("int"))
    upper = F.element_at(durations, (n / 2 + 1).cast("int"))
    return (
        F.when(n == 0, F.lit(None).cast("double"))
        .when(n % 2 == 1, middle / F.lit(1000.0))
        .otherwise((middle + upper) / F.lit(2000.0))
    )


def combine(*summaries: DataFrame) -> DataFrame:
    """Add up summaries (from `summarize`, or rows of the table) into rows of the table.

    Null durations count as none (`collect_list` skips them).
    """
    stacked = summaries[0].select(*KEY, *ADDITIVE, DURATIONS)
    for summary in summaries[1:]:
        stacked = stacked.unionByName(summary.select(*KEY, *ADDITIVE, DURATIONS))
    totals = stacked.groupBy(*KEY).agg(
        *(F.sum(name).alias(name) for name in ADDITIVE),
        F.array_sort(F.flatten(F.collect_list(DURATIONS))).alias(DURATIONS),
    )
    types = {"spend": _SPEND_TYPE, "click_revenue": _MONEY_TYPE}
    summed = totals.select(
        *KEY,
        *(
            F.coalesce(F.col(name), F.lit(0)).cast(types.get(name, LongType())).alias(name)
            for name in ADDITIVE
        ),
        DURATIONS,
    )
    impressions = F.col("impressions")
    derived = {
        "ctr": F.when(impressions > 0, F.col("clicks") / impressions),
        "premium_share": F.when(impressions > 0, F.col("premium_impressions") / impressions),
        "median_engagement_duration": _median_seconds(F.col(DURATIONS)),
    }
    return summed.select(
        *(
            derived[name].alias(name) if name in derived else F.col(name)
            for name in CAMPAIGN_METRICS_MINUTE_TABLE.column_names
        )
    )


def touched_minutes(summary: DataFrame) -> list[int]:
    """The minutes a summary has rows for, as epoch milliseconds."""
    rows = summary.select(F.unix_millis(F.col("minute")).alias("m")).distinct().collect()
    return sorted(row[0] for row in rows)


def in_minutes(minutes: list[int]) -> Column:
    """Rows of those minutes (literals, so Iceberg prunes the other minutes' partitions)."""
    return F.col("minute").isin([F.timestamp_millis(F.lit(m)) for m in minutes])


def roll_up(minute_rows: DataFrame) -> DataFrame:
    """Rows of campaign_metrics_minute summed per minute and each dimension's value."""
    types = {"spend": _SPEND_TYPE, "click_revenue": _MONEY_TYPE}
    sums = [F.sum(name).cast(types.get(name, LongType())).alias(name) for name in ROLLED_UP]
    parts = [
        minute_rows.groupBy(
            "minute",
            F.lit(dimension).alias("dimension"),
            (F.col(column) if column else F.lit(None).cast("string")).alias("id"),
        ).agg(*sums)
        for dimension, column in DIMENSION_COLUMNS.items()
    ]
    rolled = parts[0]
    for part in parts[1:]:
        rolled = rolled.unionByName(part)
    return rolled.select(*DASHBOARD_METRICS_MINUTE_TABLE.column_names)


def in_hours(minutes: list[int]) -> Column:
    """Rows of the hours those minutes lie in (ranges of `minute`, which Iceberg prunes by)."""
    hours = sorted({minute - minute % _HOUR_MS for minute in minutes})
    condition = F.lit(False)
    for hour in hours:
        condition = condition | (
            (F.col("minute") >= F.timestamp_millis(F.lit(hour)))
            & (F.col("minute") < F.timestamp_millis(F.lit(hour + _HOUR_MS)))
        )
    return condition
