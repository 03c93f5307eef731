"""`adstream verify`: the reconciliation a billing team runs (SPEC section 4).

Every outcome is recomputed in batch from the raw input topics by `adstream.events.reference`
(plain Python, independent of the Flink and Spark code) and compared with what the tables
hold: a count per outcome, and the revenue of the attributed clicks. campaign_metrics_minute
is recomputed from the base tables in DuckDB SQL and compared with the table row by row, and
dashboard_metrics_minute from campaign_metrics_minute.
"""

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from adstream.enrich.rules import OTHER_PLATFORM, PLATFORM_CATEGORIES
from adstream.events.outcomes import INVALID_REASONS
from adstream.events.reference import Outcomes, SourceRecord, recompute
from adstream.events.schema import INPUT_STREAMS, PRICE_SCALE, STREAM_OF_TOPIC
from adstream.lakehouse.catalog import row_counts
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    CAMPAIGN_METRICS_MINUTE_TABLE,
    DASHBOARD_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE_TABLE,
    DIMENSIONS,
    IMPRESSIONS,
    UNMATCHED_CLICKS,
)
from adstream.platform import read_records
from adstream.query import run_query
from adstream.settings import Settings

ATTRIBUTED: Final = "attributed click"
UNIQUE: Final = "unique impression"
UNMATCHED: Final = "unmatched click"
CENT_FRACTION: Final = Decimal(1).scaleb(-PRICE_SCALE)


@dataclass(frozen=True)
class Tally:
    """Records per outcome (`attributed click`, `clicks late_event`, ...) and click revenue."""

    counts: Counter[str]
    revenue: Decimal

    def input_records(self) -> int:
        """Input records with an outcome: every count but the enrichment's own rejections."""
        return sum(
            count
            for outcome, count in self.counts.items()
            if outcome in (ATTRIBUTED, UNIQUE, UNMATCHED)
            or outcome.split(" ", 1)[0] in INPUT_STREAMS
        )

    def accounting(self, impressions_in: int, clicks_in: int) -> str:
        """SPEC section 4's two identities, with these counts."""
        invalid = {
            stream: sum(self.counts[f"{stream} {reason}"] for reason in INVALID_REASONS)
            for stream in INPUT_STREAMS
        }

        def n(key: str) -> str:
            return f"{self.counts[key]:,}"

        return (
            f"impressions in {impressions_in:,} = unique {n(UNIQUE)}"
            f" + duplicate {n('impressions duplicate_impression')}"
            f" + invalid {invalid['impressions']:,} + late {n('impressions late_event')}\n"
            f"clicks in {clicks_in:,} = attributed {n(ATTRIBUTED)}"
            f" + duplicate {n('clicks duplicate_click')} + unmatched {n(UNMATCHED)}"
            f" + invalid {invalid['clicks']:,} + late {n('clicks late_event')}\n"
            f"attributed click revenue {self.revenue} USD\n"
        )


@dataclass(frozen=True)
class MetricsCheck:
    """A table of sums against its recomputation from the tables it sums."""

    table: str
    expected_rows: int
    stored_rows: int
    differing_rows: int  # rows of either side without an identical row on the other

    @property
    def ok(self) -> bool:
        """Row for row the same."""
        return self.differing_rows == 0 and self.expected_rows == self.stored_rows


@dataclass(frozen=True)
class Reconciliation:
    """Expected against stored, and the input it was computed from."""

    impressions_in: int
    clicks_in: int
    expected: Tally
    stored: Tally
    metrics: tuple[MetricsCheck, ...]

    @property
    def ok(self) -> bool:
        """Every outcome and the revenue agree, and so do the per-minute metrics."""
        return self.expected == self.stored and all(check.ok for check in self.metrics)

    def render(self) -> str:
        """A fixed-width report, one outcome per line, differences marked, then the verdict."""
        rows = [
            f"input: {self.impressions_in:,} impressions, {self.clicks_in:,} clicks",
            f"{'outcome':<38}{'expected':>14}{'stored':>14}",
        ]
        for outcome in sorted(self.expected.counts.keys() | self.stored.counts.keys()):
            expected, stored = self.expected.counts[outcome], self.stored.counts[outcome]
            mark = "" if expected == stored else "  <-- differs"
            rows.append(f"{outcome:<38}{expected:>14,}{stored:>14,}{mark}")
        for check in self.metrics:
            mark = "" if check.ok else f"  <-- {check.differing_rows:,} rows differ"
            rows.append(
                f"{check.table + ' rows':<38}"
                f"{check.expected_rows:>14,}{check.stored_rows:>14,}{mark}"
            )
        mark = "" if self.expected.revenue == self.stored.revenue else "  <-- differs"
        rows.append(
            f"{'attributed click revenue (USD)':<38}"
            f"{self.expected.revenue:>14}{self.stored.revenue:>14}{mark}"
        )
        rows.append("verify: OK" if self.ok else "verify: DIFFERENCES FOUND")
        return "\n".join(rows) + "\n"


def read_source_records(settings: Settings) -> list[SourceRecord]:
    """The raw input records (read_committed), as the batch recomputation takes them."""
    return [
        SourceRecord(STREAM_OF_TOPIC[r.topic].name, r.partition, r.offset, r.timestamp_ms, r.value)
        for topic in STREAM_OF_TOPIC
        for r in read_records(settings, topic)
    ]


def expected_outcomes(settings: Settings, records: list[SourceRecord]) -> Outcomes:
    """SPEC section 3 over the records, with this instance's W, D and future bound."""
    return recompute(
        records,
        attribution_window_ms=_ms(settings.attribution_window.total_seconds()),
        out_of_orderness_ms=_ms(settings.out_of_orderness.total_seconds()),
        future_bound_ms=_ms(settings.future_bound.total_seconds()),
    )


def click_revenue(click_price: Decimal, multiplier: Decimal) -> Decimal:
    """SPEC section 5: click_price times the multiplier, rounded half-up to 6 places."""
    return (click_price * multiplier).quantize(CENT_FRACTION, ROUND_HALF_UP)


def expected_tally(settings: Settings, outcomes: Outcomes) -> Tally:
    """What the tables should hold for these outcomes.

    A joined row failing SPEC section 5's checks cannot come out of a correct join (its prices
    were validated, its click is not before its impression), so every one is expected enriched.
    """
    counts: Counter[str] = Counter(
        {
            ATTRIBUTED: len(outcomes.joined),
            UNIQUE: len(outcomes.unique_impressions),
            UNMATCHED: len(outcomes.unmatched_clicks),
        }
    )
    counts.update(f"{record.stream} {reason.value}" for record, reason in outcomes.rejected)
    revenue = sum(
        (click_revenue(row["click_price"], settings.revenue_multiplier) for row in outcomes.joined),
        Decimal(0).quantize(CENT_FRACTION),
    )
    return Tally(counts, revenue)


def stored_tally(settings: Settings) -> Tally:
    """What the tables hold now."""
    attributed, revenue = run_query(
        settings, "SELECT count(*), coalesce(sum(click_revenue), 0) FROM enriched_ad_data"
    ).rows[0]
    rows = row_counts(settings)  # from snapshot summaries: no table read just to count
    counts: Counter[str] = Counter(
        {ATTRIBUTED: attributed, UNIQUE: rows[IMPRESSIONS], UNMATCHED: rows[UNMATCHED_CLICKS]}
    )
    rejected = run_query(
        settings, "SELECT stream, reason, count(*) FROM rejected_events GROUP BY stream, reason"
    ).rows
    counts.update({f"{stream} {reason}": count for stream, reason, count in rejected})
    return Tally(+counts, Decimal(revenue).quantize(CENT_FRACTION))


def _metrics_sql(settings: Settings) -> str:
    """SQL recomputing campaign_metrics_minute from the base tables (docs/enrich.md), compared.

    Everything in it is a constant or a number from the settings: no user text.
    """
    categories = ", ".join(f"('{raw}', '{name}')" for raw, name in PLATFORM_CATEGORIES.items())
    threshold = format(Decimal(settings.premium_threshold), "f")
    columns = ", ".join(CAMPAIGN_METRICS_MINUTE_TABLE.column_names)
    return f"""
    WITH categories(platform, category) AS (VALUES {categories}),
    facts AS (
        SELECT date_trunc('minute', i.event_time) AS minute, i.campaign_id, i.publisher_id,
            coalesce(c.category, '{OTHER_PLATFORM}') AS platform_category,
            1 AS impressions, CASE WHEN i.bid_price > {threshold} THEN 1 ELSE 0 END AS premium,
            i.bid_price, 0 AS clicks, NULL AS click_revenue, NULL::BIGINT AS duration_ms
        FROM impressions i LEFT JOIN categories c
            ON c.platform = lower(regexp_replace(i.platform, '^\\s+|\\s+$', '', 'g'))
        UNION ALL
        SELECT date_trunc('minute', click_time), campaign_id, publisher_id, platform_category,
            0, 0, NULL, 1, click_revenue, epoch_ms(click_time) - epoch_ms(impression_time)
        FROM enriched_ad_data
    ),
    expected AS (
        SELECT minute, campaign_id, publisher_id, platform_category,
            sum(impressions)::BIGINT AS impressions,
            sum(premium)::BIGINT AS premium_impressions,
            (coalesce(sum(bid_price), 0) * 0.001)::DECIMAL(38, 9) AS spend,
            sum(clicks)::BIGINT AS clicks,
            coalesce(sum(click_revenue), 0)::DECIMAL(18, 6) AS click_revenue,
            CASE WHEN sum(impressions) > 0 THEN sum(clicks) / sum(impressions) END AS ctr,
            CASE WHEN sum(impressions) > 0 THEN sum(premium) / sum(impressions) END
                AS premium_share,
            median(duration_ms) / 1000.0 AS median_engagement_duration,
            coalesce(list_sort(list(duration_ms) FILTER (duration_ms IS NOT NULL)), [])
                AS engagement_durations_ms
        FROM facts GROUP BY ALL
    ),
    stored AS (SELECT {columns} FROM campaign_metrics_minute)
    {_COMPARED}"""


_COMPARED: Final = """SELECT
        (SELECT count(*) FROM expected),
        (SELECT count(*) FROM stored),
        (SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM stored))
        + (SELECT count(*) FROM (SELECT * FROM stored EXCEPT ALL SELECT * FROM expected))"""
"""Rows expected, rows stored, and rows of either without an identical row in the other."""


def _dashboard_metrics_sql() -> str:
    """SQL summing campaign_metrics_minute per minute and dimension, compared."""
    keys = {"campaign": "campaign_id", "publisher": "publisher_id", "total": "NULL"}
    sums = """sum(impressions)::BIGINT, sum(spend)::DECIMAL(38, 9), sum(clicks)::BIGINT,
            sum(click_revenue)::DECIMAL(18, 6)"""
    parts = "\n        UNION ALL\n        ".join(
        f"SELECT minute, '{dimension}', {keys.get(dimension, dimension)}::VARCHAR, {sums} "
        "FROM campaign_metrics_minute GROUP BY ALL"
        for dimension in DIMENSIONS
    )
    columns = ", ".join(DASHBOARD_METRICS_MINUTE_TABLE.column_names)
    return f"""
    WITH expected AS (
        {parts}
    ),
    stored AS (SELECT {columns} FROM dashboard_metrics_minute)
    {_COMPARED}"""


def check_metrics(settings: Settings) -> tuple[MetricsCheck, ...]:
    """Recompute the tables of sums from what they sum, and compare row by row."""
    return tuple(
        MetricsCheck(table, *run_query(settings, sql).rows[0])
        for table, sql in (
            (CAMPAIGN_METRICS_MINUTE, _metrics_sql(settings)),
            (DASHBOARD_METRICS_MINUTE, _dashboard_metrics_sql()),
        )
    )


def reconcile(settings: Settings) -> Reconciliation:
    """Recompute from the input topics and compare with the tables."""
    records = read_source_records(settings)
    inputs = Counter(record.stream for record in records)
    expected = expected_tally(settings, expected_outcomes(settings, records))
    return Reconciliation(
        inputs["impressions"],
        inputs["clicks"],
        Tally(+expected.counts, expected.revenue),
        stored_tally(settings),
        check_metrics(settings),
    )


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
