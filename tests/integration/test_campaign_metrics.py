"""campaign_metrics_minute's arithmetic on small DataFrames: sums, ratios, the exact median,
adding a batch to rows the table already holds, and dashboard_metrics_minute's sums of them (a
local Spark session: integration)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructField, StructType

from adstream.enrich.decode import spark_type
from adstream.enrich.metrics import combine, in_hours, roll_up, summarize, touched_minutes
from adstream.enrich.rules import EnrichRules, enrich
from adstream.lakehouse.tables import IMPRESSIONS_TABLE, JOINED_COLUMNS, Column

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
RULES = EnrichRules()


def frame(
    spark: SparkSession, columns: tuple[Column, ...], rows: list[dict[str, Any]]
) -> DataFrame:
    schema = StructType([StructField(c.name, spark_type(c.type)) for c in columns])
    return spark.createDataFrame([tuple(row.get(c.name) for c in columns) for row in rows], schema)


def impression(seconds: float, bid: str, platform: str = "iOS", **changes: Any) -> dict[str, Any]:
    row = {
        "impression_id": f"i-{seconds}-{bid}",
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "event_time": T0 + timedelta(seconds=seconds),
        "platform": platform,
        "bid_price": Decimal(bid),
    }
    return row | changes


def click(seconds: float, duration_ms: int, price: str, **changes: Any) -> dict[str, Any]:
    clicked = T0 + timedelta(seconds=seconds)
    row = {
        "ad_id": "ad-1",
        "impression_id": f"c-{seconds}-{duration_ms}",
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "impression_time": clicked - timedelta(milliseconds=duration_ms),
        "click_time": clicked,
        "platform": "android",
        "bid_price": Decimal("1.000000"),
        "click_price": Decimal(price),
    }
    return row | changes


def metrics(
    spark: SparkSession, impressions: list[dict[str, Any]], clicks: list[dict[str, Any]]
) -> DataFrame:
    enriched = enrich(frame(spark, JOINED_COLUMNS, clicks), RULES)
    return summarize(frame(spark, IMPRESSIONS_TABLE.columns, impressions), enriched, RULES)


def rows_by_key(table: DataFrame) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = [row.asDict() for row in table.collect()]
    return {
        (r["minute"], r["campaign_id"], r["publisher_id"], r["platform_category"]): r for r in rows
    }


def naive(moment: datetime) -> datetime:
    """A time as Spark collects it in a UTC session."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def test_one_minute_summed_exactly(spark: SparkSession) -> None:
    summary = metrics(
        spark,
        [
            impression(1, "50.000001"),
            impression(2, "50.000000", platform=" Mobile "),
            impression(59.999, "0.000003"),
            impression(60, "7.000000"),  # the next minute
        ],
        [click(10, 1500, "0.100000"), click(20, 250, "0.300000"), click(30, 1001, "0.000001")],
    )
    rows = rows_by_key(combine(summary))
    first = rows[(naive(T0), "cmp-1", "pub-1", "Mobile")]
    assert {k: v for k, v in first.items() if k != "minute"} == {
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "platform_category": "Mobile",
        "impressions": 3,
        "premium_impressions": 1,  # above 50.00 only
        "spend": Decimal("0.100000004"),  # (50.000001 + 50 + 0.000003) / 1000, exact
        "clicks": 3,
        "click_revenue": Decimal("0.480001"),  # 0.12 + 0.36 + 0.0000012 rounded half-up
        "ctr": 1.0,
        "premium_share": 1 / 3,
        "median_engagement_duration": 1.001,
        "engagement_durations_ms": [250, 1001, 1500],
    }
    second = rows[(naive(T0 + timedelta(minutes=1)), "cmp-1", "pub-1", "Mobile")]
    assert (second["impressions"], second["clicks"], second["ctr"]) == (1, 0, 0.0)
    assert second["median_engagement_duration"] is None
    assert second["engagement_durations_ms"] == []
    assert touched_minutes(summary) == [
        int(T0.timestamp() * 1000),
        int((T0 + timedelta(minutes=1)).timestamp() * 1000),
    ]


def test_clicks_without_impressions_have_no_ratios(spark: SparkSession) -> None:
    rows = rows_by_key(combine(metrics(spark, [], [click(5, 1000, "1.000000", platform="tv")])))
    [row] = rows.values()
    assert row["platform_category"] == "CTV"
    assert (row["impressions"], row["spend"], row["clicks"]) == (0, Decimal("0E-9"), 1)
    assert (row["ctr"], row["premium_share"]) == (None, None)


def test_a_batch_added_to_held_rows_gives_the_same_as_all_at_once(spark: SparkSession) -> None:
    early = ([impression(1, "2.500000")], [click(3, 1000, "1.000000"), click(4, 4000, "1.0")])
    late = (
        [impression(2, "2.500001"), impression(3, "1.000000", campaign_id="cmp-2")],
        [click(50, 2000, "0.500000"), click(55, 3000, "0.250000")],
    )
    held = combine(metrics(spark, *early))
    added = rows_by_key(combine(held, metrics(spark, *late)))
    at_once = rows_by_key(combine(metrics(spark, early[0] + late[0], early[1] + late[1])))
    assert added == at_once
    mobile = added[(naive(T0), "cmp-1", "pub-1", "Mobile")]
    assert mobile["engagement_durations_ms"] == [1000, 2000, 3000, 4000]
    assert mobile["median_engagement_duration"] == 2.5  # mean of the middle two
    assert mobile["spend"] == Decimal("0.005000001")
    assert (mobile["impressions"], mobile["clicks"], mobile["ctr"]) == (2, 4, 2.0)


def test_the_dashboard_grain_sums_each_dimension_and_the_total(spark: SparkSession) -> None:
    minute_rows = combine(
        metrics(
            spark,
            [
                impression(1, "2.000000"),
                impression(2, "4.000000", publisher_id="pub-2", platform="tablet"),
                impression(3, "8.000000", campaign_id="cmp-2", publisher_id="pub-2"),
                impression(61, "1.000000"),  # the next minute
            ],
            [click(10, 1000, "1.000000"), click(20, 1000, "0.500000", campaign_id="cmp-2")],
        )
    )
    rolled = {
        (r["minute"], r["dimension"], r["id"]): (
            r["impressions"],
            r["spend"],
            r["clicks"],
            r["click_revenue"],
        )
        for r in (row.asDict() for row in roll_up(minute_rows).collect())
    }
    first, second = naive(T0), naive(T0 + timedelta(minutes=1))
    assert rolled == {
        (first, "campaign", "cmp-1"): (2, Decimal("0.006000000"), 1, Decimal("1.200000")),
        (first, "campaign", "cmp-2"): (1, Decimal("0.008000000"), 1, Decimal("0.600000")),
        (first, "publisher", "pub-1"): (1, Decimal("0.002000000"), 2, Decimal("1.800000")),
        (first, "publisher", "pub-2"): (2, Decimal("0.012000000"), 0, Decimal("0E-6")),
        (first, "platform_category", "Mobile"): (2, Decimal("0.010000000"), 2, Decimal("1.800000")),
        (first, "platform_category", "Tablet"): (1, Decimal("0.004000000"), 0, Decimal("0E-6")),
        (first, "total", None): (3, Decimal("0.014000000"), 2, Decimal("1.800000")),
        (second, "campaign", "cmp-1"): (1, Decimal("0.001000000"), 0, Decimal("0E-6")),
        (second, "publisher", "pub-1"): (1, Decimal("0.001000000"), 0, Decimal("0E-6")),
        (second, "platform_category", "Mobile"): (1, Decimal("0.001000000"), 0, Decimal("0E-6")),
        (second, "total", None): (1, Decimal("0.001000000"), 0, Decimal("0E-6")),
    }
    hour = int(T0.timestamp() * 1000)
    in_hour = minute_rows.where(in_hours([hour + 59 * 60_000])).count()
    assert (in_hour, minute_rows.where(in_hours([hour - 1])).count()) == (minute_rows.count(), 0)
