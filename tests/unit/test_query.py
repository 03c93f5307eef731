"""`adstream query`: DuckDB over the current snapshot of real Iceberg tables (pyiceberg-written)."""

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.expressions import EqualTo

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import ensure_tables, load_table
from adstream.lakehouse.tables import IMPRESSIONS
from adstream.query import Scan, render, run_fixed_query, run_query
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
        "source_sequence_number": [None, None],
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
            "unknown table 'clicks'; the tables are: campaign_metrics_minute, "
            "dashboard_metrics_minute, enriched_ad_data, ",
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


def test_fixed_query_binds_values_as_parameters(lakehouse: Settings) -> None:
    sql = "SELECT count(*) AS n FROM impressions WHERE campaign_id = $campaign"
    scans = {IMPRESSIONS: Scan()}
    assert run_fixed_query(lakehouse, sql, {"campaign": "cmp-1"}, scans).rows == [(2,)]
    injected = {"campaign": "cmp-2' OR '1'='1"}  # only ever a value: no campaign has this id
    assert run_fixed_query(lakehouse, sql, injected, scans).rows == [(0,)]


def test_fixed_query_reads_only_what_its_scan_names(lakehouse: Settings) -> None:
    scan = Scan(EqualTo("publisher_id", "pub-2"), ("impression_id", "publisher_id"))
    result = run_fixed_query(
        lakehouse, "SELECT impression_id FROM impressions", {}, {IMPRESSIONS: scan}
    )
    assert result.rows == [("imp-2",)]
    with pytest.raises(AdstreamError, match=r'^query failed: Binder Error: .*"bid_price"'):
        run_fixed_query(lakehouse, "SELECT bid_price FROM impressions", {}, {IMPRESSIONS: scan})


@pytest.mark.parametrize(
    ("sql", "scans", "message"),
    [
        ("SELECT * FROM clicks", {"clicks": Scan()}, "unknown table 'clicks'"),
        ("DELETE FROM impressions WHERE 1 = $one", {}, "only read-only SELECT queries"),
        ("SELECT * FROM impressions", {}, "query failed: Catalog Error"),
    ],
)
def test_fixed_query_refuses_with_one_clear_line(
    lakehouse: Settings, sql: str, scans: dict[str, Scan], message: str
) -> None:
    with pytest.raises(AdstreamError) as error:
        run_fixed_query(lakehouse, sql, {"one": 1}, scans)
    assert str(error.value).startswith(message)


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
