"""Enrichment rules (SPEC section 5) as plain PySpark column expressions.

Input: typed joined rows (the columns of `JOINED_FIELDS`: times as timestamps, prices as
decimal(18, 6)). `rejection_detail()` names the first validation rule a row fails (null when it
passes); `enrich` keeps the valid rows and adds the derived columns. Money stays decimal: the
multiplier is an exact decimal literal, the product is exact (precision <= 37, so Spark never
trims its scale), and `round` is half-up.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from adstream.events.schema import PRICE_SCALE
from adstream.lakehouse.tables import ENRICHED_AD_DATA_TABLE

MONEY_TYPE: Final = DecimalType(18, PRICE_SCALE)

PLATFORM_CATEGORIES: Final = {
    "mobile": "Mobile",
    "smartphone": "Mobile",
    "ios": "Mobile",
    "android": "Mobile",
    "tablet": "Tablet",
    "desktop": "Desktop",
    "web": "Desktop",
    "laptop": "Desktop",
    "ctv": "CTV",
    "tv": "CTV",
    "connected_tv": "CTV",
}
"""Platform (trimmed, lower case) to its category; anything else, or null, is `Other`."""
OTHER_PLATFORM: Final = "Other"

REJECTION_DETAIL: Final = "rejection_detail"
"""Column `check` adds: why the row is invalid, or null when it is valid."""


@dataclass(frozen=True)
class EnrichRules:
    """The configurable parts of the rules."""

    premium_threshold: Decimal = Decimal("50.00")
    revenue_multiplier: Decimal = Decimal("1.2")


def decimal_literal(value: Decimal) -> Column:
    """`value` as a decimal literal of exactly its own precision and scale."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite decimal: {value}")
    scale = max(0, -exponent)
    precision = max(len(digits) + max(0, exponent), scale, 1)
    return F.lit(format(value, "f")).cast(DecimalType(precision, scale))


def _shown(column: str) -> Column:
    """A value for a detail message: times as ISO-8601 UTC, null as `null`."""
    value = F.col(column)
    if column.endswith("_time"):
        value = F.date_format(value, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
    return F.coalesce(value.cast("string"), F.lit("null"))


def _positive(column: str) -> tuple[Column, Column]:
    detail = F.concat(F.lit(f"{column} "), _shown(column), F.lit(" is not > 0"))
    return F.col(column) > 0, detail


def _validation_rules() -> list[tuple[Column, Column]]:
    """(condition that must hold, detail when it does not), in the order they are checked.

    A null makes its condition fail: a row missing a price or a time is invalid too.
    """
    return [
        (F.col("ad_id").isNotNull(), F.lit("ad_id is null")),
        (F.col("impression_id").isNotNull(), F.lit("impression_id is null")),
        _positive("bid_price"),
        _positive("click_price"),
        (
            F.col("click_time") >= F.col("impression_time"),
            F.concat(
                F.lit("click_time "),
                _shown("click_time"),
                F.lit(" is not >= impression_time "),
                _shown("impression_time"),
            ),
        ),
    ]


def rejection_detail() -> Column:
    """The detail of the first failed validation rule, or null when the row is valid."""
    rules = _validation_rules()
    first_holds, first_detail = rules[0]
    detail = F.when(~F.coalesce(first_holds, F.lit(False)), first_detail)
    for holds, rule_detail in rules[1:]:
        detail = detail.when(~F.coalesce(holds, F.lit(False)), rule_detail)
    return detail


def is_premium_ad(rules: EnrichRules) -> Column:
    """bid_price above the premium threshold."""
    return F.coalesce(F.col("bid_price") > decimal_literal(rules.premium_threshold), F.lit(False))


def engagement_duration() -> Column:
    """Seconds from impression_time to click_time, to the millisecond."""
    milliseconds = F.unix_millis(F.col("click_time")) - F.unix_millis(F.col("impression_time"))
    return milliseconds / F.lit(1000.0)


def platform_category() -> Column:
    """The platform's category, trimmed (any whitespace) and case-insensitive."""
    mapping = F.create_map(*(F.lit(part) for pair in PLATFORM_CATEGORIES.items() for part in pair))
    platform = F.lower(F.regexp_replace(F.col("platform"), r"^\s+|\s+$", ""))
    return F.coalesce(mapping[platform], F.lit(OTHER_PLATFORM))


def click_revenue(rules: EnrichRules) -> Column:
    """click_price times the multiplier, rounded half-up to 6 places, as decimal(18, 6)."""
    product = F.col("click_price") * decimal_literal(rules.revenue_multiplier)
    return F.round(product, PRICE_SCALE).cast(MONEY_TYPE)


def now_to_the_millisecond() -> Column:
    """The wall-clock time (UTC), at the millisecond precision of every time in the tables."""
    return F.date_trunc("millisecond", F.current_timestamp())


def check(joined: DataFrame) -> DataFrame:
    """The joined rows with `rejection_detail` (null for a valid row)."""
    return joined.withColumn(REJECTION_DETAIL, rejection_detail())


def enrich(joined: DataFrame, rules: EnrichRules) -> DataFrame:
    """The valid joined rows with the derived columns, in the column order of the table."""
    derived = {
        "is_premium_ad": is_premium_ad(rules),
        "engagement_duration": engagement_duration(),
        "platform_category": platform_category(),
        "click_revenue": click_revenue(rules),
        "processed_time": now_to_the_millisecond(),
    }
    valid = check(joined).where(F.col(REJECTION_DETAIL).isNull())
    return valid.select(
        *(
            derived[name].alias(name) if name in derived else F.col(name)
            for name in ENRICHED_AD_DATA_TABLE.column_names
        )
    )


def invalid(joined: DataFrame) -> DataFrame:
    """The joined rows that fail validation, with `rejection_detail`."""
    return check(joined).where(F.col(REJECTION_DETAIL).isNotNull())
