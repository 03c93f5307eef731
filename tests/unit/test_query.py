"""`adstream query`: DuckDB over the current snapshot of real Iceberg tables (pyiceberg-written)."""

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import ensure_tables, load_table
from adstream.lakehouse.tables import IMPRESSIONS
from adstream.query import render, run_query
from adstream.settings import Settings, load_settings
from tests.cli import adstream


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Tables in a local SQLite catalog, with two impressions committed."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("query"))
    catalog = ensure_tables(settings)
    table = load_table(catalog, IMPRESSIONS)
    time = datetime(2026, 11, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    rows = {
        "ad_id": ["ad-1", "ad-2"],
        "impression_id": ["imp-1", "imp-2"],
        "campaign_id": ["cmp-1", "cmp-1"],
        "publisher_id": ["pub-1", "pub-2"],
        "event_time": [time, time],
        "geo_location": ["US", None],
        "platform": ["iOS", "web"],
        "device_type": ["phone", "desktop"],
        "ad_type": ["video", "banner"],
        "bid_price": [Decimal("12.500000"), Decimal("0.000001")],
        "source_partition": [0, 1],
        "source_offset": [7, 9],
    }
    table.append(pa.Table.from_pydict(rows, schema=table.schema().as_arrow()))
    return settings


def test_sums_money_exactly_and_prints_utc_times(lakehouse: Settings) -> None:
    result = run_query(
        lakehouse,
        "SELECT campaign_id, count(*) AS n, sum(bid_price) AS spend, min(event_time) AS first "
        "FROM impressions GROUP BY campaign_id",
    )
    assert result.columns == ["campaign_id", "n", "spend", "first"]
    assert result.rows[0][:3] == ("cmp-1", 2, Decimal("12.500001"))
    assert render(result, "json") == (
        '{"campaign_id": "cmp-1", "n": 2, "spend": 12.500001, '
        '"first": "2026-11-01T08:00:00.250Z"}\n'
    )
    assert (
        render(result, "csv")
        == "campaign_id,n,spend,first\ncmp-1,2,12.500001,2026-11-01T08:00:00.250Z\n"
    )
    assert render(result, "table").splitlines()[-1] == "(1 row)"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT * FROM clicks",
            "unknown table 'clicks'; the tables are: campaign_metrics_minute, enriched_ad_data, ",
        ),
        ("SELEC 1", 'bad SQL: Parser Error: syntax error at or near "SELEC"'),
        ("DROP TABLE impressions", "only read-only SELECT queries are allowed (got DROP)"),
        ("SELECT 1; SELECT 2", "give exactly one SQL statement (got 2)"),
        ("SELECT * FROM read_csv('/etc/passwd')", "query failed: Permission Error"),
        ("SELECT nope FROM impressions", "query failed: Binder Error"),
    ],
)
def test_refuses_with_one_clear_line(lakehouse: Settings, sql: str, message: str) -> None:
    with pytest.raises(AdstreamError) as error:
        run_query(lakehouse, sql)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_cli_prints_json_lines(lakehouse: Settings, tmp_path: Path) -> None:
    result = adstream(
        "query",
        "--format",
        "json",
        "SELECT impression_id, bid_price FROM impressions ORDER BY impression_id",
        env={**os.environ, "ADSTREAM_DATA_DIR": str(lakehouse.data_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"impression_id": "imp-1", "bid_price": 12.5},
        {"impression_id": "imp-2", "bid_price": 1e-06},
    ]
