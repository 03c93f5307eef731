"""The dashboard's data: fixed SELECTs over the tables, each over one time window.

The SQL is the `dashboard_*` shipped queries (`adstream.shipped_queries`, where each is defined
once, for DuckDB here and translated for Athena); request values reach DuckDB only as typed
prepared-statement parameters (`$since`, `$until`, `$limit`) through
`adstream.query.run_fixed_query`, and the row filter that limits what pyiceberg reads is built
from the same typed values.

Campaign numbers come from `dashboard_metrics_minute` (per event-time minute, the sums of
`campaign_metrics_minute` by campaign, by publisher, by platform category and in all): a window
holds the minutes whose start lies in [until - minutes, until). Totals are sums over its rows,
and CTR is total clicks over total impressions (never an average of the rows' CTRs). Freshness
comes from `enriched_ad_data`, rejected events from `rejected_events` (by `rejected_at`, the
wall-clock time of rejection).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, PlainSerializer
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan, Reference
from pyiceberg.expressions.literals import literal

from adstream import shipped_queries as shipped
from adstream.lakehouse.tables import (
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    MONEY,
    REJECTED_EVENTS,
    SPEND,
)
from adstream.query import Result, Scan, run_fixed_query
from adstream.settings import Settings

Dimension = Literal["campaign", "publisher"]
MIN_WINDOW_MINUTES: Final = 5
MAX_WINDOW_MINUTES: Final = 1440
DEFAULT_WINDOW_MINUTES: Final = 60

Money = Annotated[Decimal, PlainSerializer(lambda value: format(value, "f"), return_type=str)]
"""An exact amount, written to JSON as a fixed-point string (never a float, never `0E-9`)."""


@dataclass(frozen=True)
class Window:
    """The `minutes` before `until` (an aware UTC time)."""

    minutes: int
    until: datetime

    @property
    def since(self) -> datetime:
        """Where the window starts (inclusive)."""
        return self.until - timedelta(minutes=self.minutes)

    @property
    def first_minute(self) -> datetime:
        """The start of the first whole minute in the window."""
        start = self.since.replace(second=0, microsecond=0)
        return start if start == self.since else start + timedelta(minutes=1)

    @property
    def every_minute(self) -> list[datetime]:
        """The start of each minute in the window: first_minute, then each minute before until."""
        minutes, minute = [], self.first_minute
        while minute < self.until:
            minutes.append(minute)
            minute += timedelta(minutes=1)
        return minutes

    def parameters(self) -> dict[str, Any]:
        """The window's bounds as query parameters."""
        return {"since": self.since, "until": self.until}

    def rows_in(self, column: str) -> BooleanExpression:
        """The pyiceberg row filter `since <= column < until`."""
        term = Reference(column)
        return And(
            GreaterThanOrEqual(term=term, value=literal(self.since)),
            LessThan(term=term, value=literal(self.until)),
        )


class WindowInfo(BaseModel):
    """The window a response covers."""

    minutes: int
    since: datetime
    until: datetime


class Totals(BaseModel):
    """Campaign numbers summed over some rows of dashboard_metrics_minute."""

    impressions: int
    clicks: int
    ctr: float | None
    """clicks / impressions; null without impressions."""
    revenue: Money
    """Sum of click_revenue (USD)."""
    spend: Money
    """Sum of the impressions' bid_price / 1000 (USD; a bid is a CPM)."""


class Summary(Totals):
    """The window's totals and how fresh the data is."""

    window: WindowInfo
    newest_click_time: datetime | None
    """click_time of the newest attributed click in the window, null without one."""
    freshness_lag_seconds: float | None
    """until - newest_click_time: how far behind the tables are."""


class MinuteTotals(Totals):
    """One minute of the time series."""

    minute: datetime


class TimeSeries(BaseModel):
    """Totals per minute, every minute of the window (zero where nothing happened)."""

    window: WindowInfo
    points: list[MinuteTotals]


class RankedTotals(Totals):
    """One campaign or publisher of a top list."""

    id: str


class Top(BaseModel):
    """The campaigns or publishers with the most revenue in the window."""

    window: WindowInfo
    dimension: Dimension
    rows: list[RankedTotals]


class PlatformTotals(Totals):
    """One platform category."""

    platform_category: str


class PlatformMix(BaseModel):
    """Totals per platform category, most impressions first."""

    window: WindowInfo
    rows: list[PlatformTotals]


class RejectedCount(BaseModel):
    """Rejected records of one stream and reason."""

    stream: str
    reason: str
    events: int


class Rejected(BaseModel):
    """Rejected records by stream and reason, rejected within the window."""

    window: WindowInfo
    total: int
    rows: list[RejectedCount]


TOP_QUERIES: Final[dict[Dimension, shipped.ShippedQuery]] = {
    "campaign": shipped.DASHBOARD_TOP_CAMPAIGNS,
    "publisher": shipped.DASHBOARD_TOP_PUBLISHERS,
}
"""The query of each dimension's top list."""
_ZERO_REVENUE: Final = Decimal(0).scaleb(-MONEY.scale)
_ZERO_SPEND: Final = Decimal(0).scaleb(-SPEND.scale)
"""Zero amounts at the scale of the columns' sums, as SQL's coalesce(sum(...), 0) gives them."""

_METRICS_COLUMNS: Final = (
    "minute",
    "dimension",
    "id",
    "impressions",
    "clicks",
    "click_revenue",
    "spend",
)


def _metrics(window: Window) -> dict[str, Scan]:
    return {DASHBOARD_METRICS_MINUTE: Scan(window.rows_in("minute"), _METRICS_COLUMNS)}


ModelT = TypeVar("ModelT", bound=BaseModel)


def _record(columns: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


def _records(result: Result, model: type[ModelT]) -> list[ModelT]:
    return [model.model_validate(_record(result.columns, row)) for row in result.rows]


def _info(window: Window) -> WindowInfo:
    return WindowInfo(minutes=window.minutes, since=window.since, until=window.until)


def summary(settings: Settings, window: Window) -> Summary:
    """The window's totals, and the freshness lag: until minus the newest click's time."""
    scans = {
        **_metrics(window),
        ENRICHED_AD_DATA: Scan(window.rows_in("click_time"), ("click_time",)),
    }
    result = run_fixed_query(settings, shipped.DASHBOARD_SUMMARY.sql, window.parameters(), scans)
    values = _record(result.columns, result.rows[0])
    newest: datetime | None = values["newest_click_time"]
    lag = None if newest is None else (window.until - newest).total_seconds()
    return Summary.model_validate({**values, "window": _info(window), "freshness_lag_seconds": lag})


def time_series(settings: Settings, window: Window) -> TimeSeries:
    """Totals for each minute of the window, zero where the table has no rows."""
    result = run_fixed_query(
        settings, shipped.DASHBOARD_TIME_SERIES.sql, window.parameters(), _metrics(window)
    )
    found = {point.minute: point for point in _records(result, MinuteTotals)}
    points = [found.get(minute) or _no_rows(minute) for minute in window.every_minute]
    return TimeSeries(window=_info(window), points=points)


def _no_rows(minute: datetime) -> MinuteTotals:
    return MinuteTotals(
        minute=minute, impressions=0, clicks=0, ctr=None, revenue=_ZERO_REVENUE, spend=_ZERO_SPEND
    )


def top(settings: Settings, window: Window, dimension: Dimension, limit: int) -> Top:
    """The `limit` campaigns or publishers with the most revenue (then impressions, then id)."""
    parameters = {**window.parameters(), "limit": limit}
    result = run_fixed_query(settings, TOP_QUERIES[dimension].sql, parameters, _metrics(window))
    return Top(window=_info(window), dimension=dimension, rows=_records(result, RankedTotals))


def platform_mix(settings: Settings, window: Window) -> PlatformMix:
    """Totals per platform category."""
    result = run_fixed_query(
        settings, shipped.DASHBOARD_PLATFORM_MIX.sql, window.parameters(), _metrics(window)
    )
    return PlatformMix(window=_info(window), rows=_records(result, PlatformTotals))


def rejected(settings: Settings, window: Window) -> Rejected:
    """Rejected records per stream and reason, by the time they were rejected."""
    scans = {
        REJECTED_EVENTS: Scan(window.rows_in("rejected_at"), ("stream", "reason", "rejected_at"))
    }
    result = run_fixed_query(settings, shipped.DASHBOARD_REJECTED.sql, window.parameters(), scans)
    rows = _records(result, RejectedCount)
    return Rejected(window=_info(window), total=sum(row.events for row in rows), rows=rows)
