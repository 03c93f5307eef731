"""The enrichment rules (SPEC section 5) on small DataFrames, one row per case (a local Spark
session: integration)."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from adstream.enrich.decode import spark_type
from adstream.enrich.rules import (
    REJECTION_DETAIL,
    EnrichRules,
    enrich,
    invalid,
)
from adstream.events.schema import money
from adstream.lakehouse.tables import ENRICHED_AD_DATA_TABLE, JOINED_COLUMNS

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
DEFAULT_RULES = EnrichRules()


def joined_row(**changes: Any) -> dict[str, Any]:
    row = {
        "ad_id": "ad-1",
        "impression_id": "imp-1",
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "impression_time": T0,
        "click_time": T0 + timedelta(seconds=2),
        "geo_location": "US",
        "platform": "iOS",
        "device_type": "phone",
        "ad_type": "video",
        "bid_price": Decimal("12.500000"),
        "click_price": Decimal("0.400000"),
    }
    return {**row, **changes}


def joined_frame(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    schema = StructType([StructField(c.name, spark_type(c.type)) for c in JOINED_COLUMNS])
    return spark.createDataFrame(
        [tuple(row[c.name] for c in JOINED_COLUMNS) for row in rows], schema
    )


def enriched(
    spark: SparkSession, rows: list[dict[str, Any]], rules: EnrichRules = DEFAULT_RULES
) -> list[dict[str, Any]]:
    """Enrich rows keyed by their impression_id; return the output rows in input order."""
    result = enrich(joined_frame(spark, rows), rules)
    by_id = {row["impression_id"]: row.asDict() for row in result.collect()}
    return [by_id[row["impression_id"]] for row in rows]


PLATFORMS = [
    ("mobile", "Mobile"),
    ("smartphone", "Mobile"),
    ("ios", "Mobile"),
    ("android", "Mobile"),
    ("tablet", "Tablet"),
    ("desktop", "Desktop"),
    ("web", "Desktop"),
    ("laptop", "Desktop"),
    ("ctv", "CTV"),
    ("tv", "CTV"),
    ("connected_tv", "CTV"),
    ("iOS", "Mobile"),
    ("  Android ", "Mobile"),
    ("\tSmartPhone\n", "Mobile"),
    ("TABLET", "Tablet"),
    (" Web", "Desktop"),
    ("Connected_TV  ", "CTV"),
    ("cTv", "CTV"),
    (None, "Other"),
    ("", "Other"),
    ("   ", "Other"),
    ("phone", "Other"),
    ("connected tv", "Other"),
    ("mobile web", "Other"),
    ("watch", "Other"),
]


def test_platform_category(spark: SparkSession) -> None:
    rows = [joined_row(impression_id=f"i{n}", platform=p) for n, (p, _) in enumerate(PLATFORMS)]
    actual = [(row["platform"], row["platform_category"]) for row in enriched(spark, rows)]
    assert actual == PLATFORMS


PREMIUM = [
    (DEFAULT_RULES, "50.000000", False),
    (DEFAULT_RULES, "50.000001", True),
    (DEFAULT_RULES, "49.999999", False),
    (DEFAULT_RULES, "0.000001", False),
    (DEFAULT_RULES, "10000.000000", True),
    (EnrichRules(premium_threshold=Decimal("10")), "10.000001", True),
    (EnrichRules(premium_threshold=Decimal("10")), "10.000000", False),
]


def test_is_premium_ad_above_the_threshold_only(spark: SparkSession) -> None:
    for rules in dict.fromkeys(rules for rules, _, _ in PREMIUM):
        cases = [(bid, premium) for r, bid, premium in PREMIUM if r == rules]
        rows = [
            joined_row(impression_id=f"i{n}", bid_price=Decimal(b))
            for n, (b, _) in enumerate(cases)
        ]
        actual = [(str(r["bid_price"]), r["is_premium_ad"]) for r in enriched(spark, rows, rules)]
        assert actual == cases, rules


REVENUE = [
    # click_price, multiplier, click_revenue
    ("0.400000", "1.2", "0.480000"),
    ("9999.999999", "1.2", "11999.999999"),  # 11999.9999988
    ("0.000004", "1.2", "0.000005"),  # 0.0000048
    ("0.000001", "1.2", "0.000001"),  # 0.0000012
    ("0.000003", "1.5", "0.000005"),  # 0.0000045: half-up, not half-even (0.000004)
    ("0.000002", "1.25", "0.000003"),  # 0.0000025
    ("0.000001", "1.25", "0.000001"),  # 0.00000125
    ("1.000000", "1.0000005", "1.000001"),  # a float product would be 1.0000004999...
    ("9999.999999", "1.000000000001", "9999.999999"),  # 9999.999999009999999999
    ("0.333333", "3", "0.999999"),
]


def test_click_revenue_is_exact_and_rounded_half_up(spark: SparkSession) -> None:
    for multiplier in dict.fromkeys(multiplier for _, multiplier, _ in REVENUE):
        cases = [(price, revenue) for price, m, revenue in REVENUE if m == multiplier]
        rows = [
            joined_row(impression_id=f"i{n}", click_price=Decimal(price))
            for n, (price, _) in enumerate(cases)
        ]
        result = enriched(spark, rows, EnrichRules(revenue_multiplier=Decimal(multiplier)))
        actual = [(str(row["click_price"]), str(row["click_revenue"])) for row in result]
        assert actual == cases, multiplier
        # The same as the Python reference (events.schema.money).
        for price, revenue in cases:
            assert Decimal(revenue) == money(Decimal(price) * Decimal(multiplier))


DURATIONS = [
    (T0, T0, 0.0),
    (T0, T0 + timedelta(milliseconds=1), 0.001),
    (T0, T0 + timedelta(seconds=1, milliseconds=500), 1.5),
    (T0 + timedelta(milliseconds=123), T0 + timedelta(minutes=9, seconds=59.987), 599.864),
    (T0, T0 + timedelta(minutes=10), 600.0),
    (
        datetime(2026, 11, 1, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(2026, 11, 2, 0, 0, 0, 0, tzinfo=UTC),
        0.001,
    ),
]


def test_engagement_duration_in_seconds_to_the_millisecond(spark: SparkSession) -> None:
    rows = [
        joined_row(impression_id=f"i{n}", impression_time=shown, click_time=clicked)
        for n, (shown, clicked, _) in enumerate(DURATIONS)
    ]
    actual = [row["engagement_duration"] for row in enriched(spark, rows)]
    assert actual == [seconds for _, _, seconds in DURATIONS]


def test_enriched_rows_have_the_table_columns_and_types(spark: SparkSession) -> None:
    result = enrich(joined_frame(spark, [joined_row()]), DEFAULT_RULES)
    assert [(f.name, f.dataType) for f in result.schema.fields] == [
        (c.name, spark_type(c.type)) for c in ENRICHED_AD_DATA_TABLE.columns
    ]
    [row] = result.collect()
    assert row["bid_price"] == Decimal("12.500000")
    assert row["click_price"] == Decimal("0.400000")
    assert row["click_revenue"] == Decimal("0.480000")
    assert row["is_premium_ad"] is False
    assert row["engagement_duration"] == 2.0
    assert row["platform_category"] == "Mobile"


def test_processed_time_is_now_to_the_millisecond(spark: SparkSession) -> None:
    before = time.time_ns() // 1_000_000
    result = enrich(joined_frame(spark, [joined_row()]), DEFAULT_RULES)
    [row] = result.select(
        F.unix_micros("processed_time").alias("micros"), F.col("processed_time").isNull()
    ).collect()
    after = time.time_ns() // 1_000_000
    assert row["micros"] % 1000 == 0
    assert before <= row["micros"] // 1000 <= after


INVALID = [
    # changes to a valid row, the rule it breaks (the first one, in order)
    ({"ad_id": None}, "ad_id is null"),
    ({"impression_id": None}, "impression_id is null"),
    ({"bid_price": Decimal("0")}, "bid_price 0.000000 is not > 0"),
    ({"bid_price": Decimal("-1.5")}, "bid_price -1.500000 is not > 0"),
    ({"bid_price": None}, "bid_price null is not > 0"),
    ({"click_price": Decimal("0")}, "click_price 0.000000 is not > 0"),
    ({"click_price": Decimal("-0.000001")}, "click_price -0.000001 is not > 0"),
    ({"click_price": None}, "click_price null is not > 0"),
    (
        {"click_time": T0 - timedelta(milliseconds=1)},
        "click_time 2026-11-01T07:59:59.999Z is not >= impression_time 2026-11-01T08:00:00.000Z",
    ),
    (
        {"click_time": None},
        "click_time null is not >= impression_time 2026-11-01T08:00:00.000Z",
    ),
    (
        {"impression_time": None},
        "click_time 2026-11-01T08:00:02.000Z is not >= impression_time null",
    ),
    ({"ad_id": None, "bid_price": Decimal("0")}, "ad_id is null"),
    ({"bid_price": Decimal("0"), "click_price": Decimal("0")}, "bid_price 0.000000 is not > 0"),
]


def test_each_invalid_row_is_rejected_with_the_rule_it_breaks(spark: SparkSession) -> None:
    valid = [
        joined_row(impression_id="valid"),
        joined_row(impression_id="click-at-impression-time", click_time=T0),
    ]
    broken = [joined_row(**{"campaign_id": f"case-{n}", **c}) for n, (c, _) in enumerate(INVALID)]
    frame = joined_frame(spark, valid + broken)

    kept = sorted(row["impression_id"] for row in enrich(frame, DEFAULT_RULES).collect())
    rejected = {row["campaign_id"]: row[REJECTION_DETAIL] for row in invalid(frame).collect()}

    assert kept == ["click-at-impression-time", "valid"]
    assert rejected == {f"case-{n}": detail for n, (_, detail) in enumerate(INVALID)}
