"""Every query adstream ships, defined once, by name, in DuckDB SQL with typed `$name` parameters.

The dashboard runs the `dashboard_*` queries (`adstream.dashboard.queries`), the README and
docs show the others as examples for `adstream query` (`tests/unit/test_shipped_queries.py`
fails when an example in a doc is not one of these, word for word), and their Athena (Trino)
form is translated from this text by `adstream.athena.athena_sql`, never written twice.

Tables are named by their short names, as `adstream query` registers them in DuckDB; the
translation qualifies them with the Glue database (`ad_analytics.<table>`). Parameters appear
only in WHERE clauses, because Athena's execution parameters (`?`) are accepted nowhere else:
the top lists filter on a rank instead of a `LIMIT $limit`, and the time series' empty minutes
are filled in by the dashboard rather than by a generated series of minutes.

The per-minute campaign metrics themselves are computed by the Spark job into
`campaign_metrics_minute` (`adstream.enrich.metrics`); `campaign_minute_metrics` is the query a
user runs over that table. The dashboard's campaign numbers read the same sums at its own grain,
`dashboard_metrics_minute` (a minute's totals per campaign, publisher, platform category and in
all), whose day holds some 24 files rather than 1,440 (docs/maintain.md).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final


@dataclass(frozen=True)
class ShippedQuery:
    """One shipped query: its name, what it answers, its DuckDB SQL and its parameters.

    Attributes:
        name: how the query is known (the key of `SHIPPED_QUERIES`).
        doc: what it answers, in a sentence.
        sql: one SELECT in DuckDB's dialect, the tables by their short names.
        parameters: the type of each `$name` in `sql` (values are bound, never formatted in).
    """

    name: str
    doc: str
    sql: str
    parameters: Mapping[str, type] = field(default_factory=dict)


_WINDOW: Final[Mapping[str, type]] = {"since": datetime, "until": datetime}
_TOTALS: Final = """
    coalesce(sum(impressions), 0) AS impressions,
    coalesce(sum(clicks), 0) AS clicks,
    sum(clicks) / nullif(sum(impressions), 0) AS ctr,
    coalesce(sum(click_revenue), 0) AS revenue,
    coalesce(sum(spend), 0) AS spend"""
"""Totals over some rows of the metrics tables: CTR of the sums, never an average."""
_IN_WINDOW: Final = "minute >= $since AND minute < $until"


def _of(dimension: str) -> str:
    """The window's rows of dashboard_metrics_minute that total one `dimension`."""
    return f"dashboard_metrics_minute WHERE dimension = '{dimension}' AND {_IN_WINDOW}"


DASHBOARD_SUMMARY: Final = ShippedQuery(
    "dashboard_summary",
    "The window's totals, and the click_time of its newest attributed click.",
    f"""
SELECT {_TOTALS},
    (SELECT max(click_time) FROM enriched_ad_data
     WHERE click_time >= $since AND click_time < $until) AS newest_click_time
FROM {_of("total")}""",
    _WINDOW,
)

DASHBOARD_TIME_SERIES: Final = ShippedQuery(
    "dashboard_time_series",
    "Totals per minute of the window, for the minutes that have rows.",
    f"""
SELECT minute, {_TOTALS}
FROM {_of("total")}
GROUP BY minute
ORDER BY minute""",
    _WINDOW,
)


def _top(dimension: str) -> ShippedQuery:
    return ShippedQuery(
        f"dashboard_top_{dimension}s",
        f"The $limit {dimension}s with the most revenue (then impressions, then id).",
        f"""
WITH totals AS (
    SELECT id, {_TOTALS}
    FROM {_of(dimension)}
    GROUP BY id
), ranked AS (
    SELECT *, row_number() OVER (ORDER BY revenue DESC, impressions DESC, id) AS revenue_rank
    FROM totals
)
SELECT id, impressions, clicks, ctr, revenue, spend
FROM ranked
WHERE revenue_rank <= $limit
ORDER BY revenue_rank""",
        {**_WINDOW, "limit": int},
    )


DASHBOARD_TOP_CAMPAIGNS: Final = _top("campaign")
DASHBOARD_TOP_PUBLISHERS: Final = _top("publisher")

DASHBOARD_PLATFORM_MIX: Final = ShippedQuery(
    "dashboard_platform_mix",
    "Totals per platform category, most impressions first.",
    f"""
SELECT id AS platform_category, {_TOTALS}
FROM {_of("platform_category")}
GROUP BY id
ORDER BY impressions DESC, platform_category""",
    _WINDOW,
)

DASHBOARD_REJECTED: Final = ShippedQuery(
    "dashboard_rejected",
    "Rejected records per stream and reason, by the time they were rejected.",
    """
SELECT stream, reason, count(*) AS events
FROM rejected_events
WHERE rejected_at >= $since AND rejected_at < $until
GROUP BY stream, reason
ORDER BY events DESC, reason, stream""",
    _WINDOW,
)

CAMPAIGN_MINUTE_METRICS: Final = ShippedQuery(
    "campaign_minute_metrics",
    "Per event-time minute and campaign: impressions, clicks, CTR, revenue and spend.",
    """
SELECT minute, campaign_id,
    sum(impressions) AS impressions,
    sum(clicks) AS clicks,
    sum(clicks) / nullif(sum(impressions), 0) AS ctr,
    sum(click_revenue) AS revenue,
    sum(spend) AS spend
FROM campaign_metrics_minute
WHERE minute >= $since AND minute < $until
GROUP BY minute, campaign_id
ORDER BY minute, campaign_id""",
    _WINDOW,
)

REVENUE_BY_CAMPAIGN: Final = ShippedQuery(
    "revenue_by_campaign",
    "Attributed click revenue per campaign (README).",
    "SELECT campaign_id, sum(click_revenue) AS revenue FROM enriched_ad_data GROUP BY 1",
)

REJECTED_SAMPLE: Final = ShippedQuery(
    "rejected_sample",
    "Five rejected records, every column (README).",
    "SELECT * FROM rejected_events LIMIT 5",
)

MINUTE_TOTALS: Final = ShippedQuery(
    "minute_totals",
    "Impressions, clicks and revenue per event-time minute (README).",
    "SELECT minute, sum(impressions) AS impressions, sum(clicks) AS clicks, "
    "sum(click_revenue) AS revenue FROM campaign_metrics_minute GROUP BY 1 ORDER BY 1",
)

SHIPPED_QUERIES: Final = {
    query.name: query
    for query in (
        DASHBOARD_SUMMARY,
        DASHBOARD_TIME_SERIES,
        DASHBOARD_TOP_CAMPAIGNS,
        DASHBOARD_TOP_PUBLISHERS,
        DASHBOARD_PLATFORM_MIX,
        DASHBOARD_REJECTED,
        CAMPAIGN_MINUTE_METRICS,
        REVENUE_BY_CAMPAIGN,
        REJECTED_SAMPLE,
        MINUTE_TOTALS,
    )
}
