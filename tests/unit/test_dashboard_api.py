"""The dashboard's data API over a known dataset in real Iceberg tables (pyiceberg-written).

The dataset: campaign_metrics_minute rows in and around the hour 09:00-10:00 UTC and their sums
in dashboard_metrics_minute (which the dashboard reads), attributed clicks for the freshness
lag, and rejected events; every number below is worked out by hand.
"""

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from adstream.dashboard.app import create_app
from adstream.dashboard.server import DashboardServer
from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import ensure_tables, load_table, open_catalog
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    REJECTED_EVENTS,
    TABLES,
)
from adstream.settings import Settings, load_settings
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import free_ports

UNTIL = "2026-11-01T10:00:00Z"
"""The end of the hour the dataset is about: minutes 09:00 to 09:59 are in its window."""


def utc(hour: int, minute: int, second: int = 0, millisecond: int = 0) -> datetime:
    return datetime(2026, 11, 1, hour, minute, second, millisecond * 1000, tzinfo=UTC)


METRICS = [
    # minute, campaign, publisher, platform, impressions, premium, spend, clicks, revenue, ctr
    (utc(9, 10), "cmp-a", "pub-1", "Mobile", 1000, 10, "2.5", 20, "24", 0.02),
    (utc(9, 10), "cmp-b", "pub-1", "Desktop", 500, 0, "1.25", 5, "6.6", 0.01),
    (utc(9, 11), "cmp-a", "pub-2", "Mobile", 300, 3, "0.9", 9, "10.800001", 0.03),
    (utc(9, 30), "cmp-b", "pub-3", "Other", 0, 0, "0", 2, "2.4", None),
    (utc(9, 59), "cmp-c", "pub-2", "CTV", 200, 200, "12", 0, "0", 0.0),
    # Outside the hour: the minute before it, and the minute at its end (exclusive).
    (utc(8, 59), "cmp-a", "pub-1", "Mobile", 777, 0, "7.77", 7, "8.4", 7 / 777),
    (utc(10, 0), "cmp-c", "pub-1", "Mobile", 888, 0, "8.88", 8, "9.6", 8 / 888),
]
CLICK_TIMES = [utc(9, 20), utc(9, 58, 59, 500), utc(10, 0, 5)]
REJECTED = [
    (utc(9, 5), "impressions", "invalid_price"),
    (utc(9, 6), "impressions", "invalid_price"),
    (utc(9, 7), "clicks", "invalid_price"),
    (utc(9, 40), "clicks", "duplicate_click"),
    (utc(9, 50), "impressions", "late_event"),
    (utc(9, 50), "clicks", "late_event"),
    (utc(8, 0), "impressions", "malformed_json"),
    (utc(10, 0), "clicks", "malformed_json"),
]


def _append(settings: Settings, name: str, columns: dict[str, list[Any]]) -> None:
    table = load_table(open_catalog(settings), name)
    schema = table.schema().as_arrow()
    rows = len(next(iter(columns.values())))
    full = {field.name: columns.get(field.name, [None] * rows) for field in schema}
    table.append(pa.Table.from_pydict(full, schema=schema))


def rolled_up() -> dict[str, list[Any]]:
    """METRICS summed per minute and campaign, publisher, platform category, and in all."""
    sums: dict[tuple[datetime, str, str | None], list[Any]] = {}
    for minute, campaign, publisher, category, shown, _, spend, clicks, revenue, _ in METRICS:
        for dimension, key in (
            ("campaign", campaign),
            ("publisher", publisher),
            ("platform_category", category),
            ("total", None),
        ):
            total = sums.setdefault((minute, dimension, key), [0, Decimal(0), 0, Decimal(0)])
            total[0] += shown
            total[1] += Decimal(spend)
            total[2] += clicks
            total[3] += Decimal(revenue)
    keys, values = list(sums), list(sums.values())
    return {
        "minute": [k[0] for k in keys],
        "dimension": [k[1] for k in keys],
        "id": [k[2] for k in keys],
        "impressions": [v[0] for v in values],
        "spend": [v[1] for v in values],
        "clicks": [v[2] for v in values],
        "click_revenue": [v[3] for v in values],
    }


def write_known_dataset(settings: Settings) -> None:
    """Create the tables and commit the dataset above."""
    ensure_tables(settings)
    _append(
        settings,
        CAMPAIGN_METRICS_MINUTE,
        {
            "minute": [row[0] for row in METRICS],
            "campaign_id": [row[1] for row in METRICS],
            "publisher_id": [row[2] for row in METRICS],
            "platform_category": [row[3] for row in METRICS],
            "impressions": [row[4] for row in METRICS],
            "premium_impressions": [row[5] for row in METRICS],
            "spend": [Decimal(row[6]) for row in METRICS],
            "clicks": [row[7] for row in METRICS],
            "click_revenue": [Decimal(row[8]) for row in METRICS],
            "ctr": [row[9] for row in METRICS],
        },
    )
    _append(settings, DASHBOARD_METRICS_MINUTE, rolled_up())
    _append(
        settings,
        ENRICHED_AD_DATA,
        {
            "impression_id": [f"imp-{n}" for n in range(len(CLICK_TIMES))],
            "click_time": CLICK_TIMES,
        },
    )
    _append(
        settings,
        REJECTED_EVENTS,
        {
            "rejected_at": [row[0] for row in REJECTED],
            "stream": [row[1] for row in REJECTED],
            "reason": [row[2] for row in REJECTED],
            "detail": ["crafted"] * len(REJECTED),
        },
    )


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("dashboard"))
    write_known_dataset(settings)
    return settings


@pytest.fixture(scope="module")
def client(lakehouse: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(lakehouse), base_url="http://127.0.0.1") as test_client:
        yield test_client


def get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params={"until": UNTIL, **params})
    assert response.status_code == 200, response.text
    return response.json()


HOUR = {"minutes": 60, "since": "2026-11-01T09:00:00Z", "until": UNTIL}


def test_summary_totals_the_hour(client: TestClient) -> None:
    assert get(client, "/api/summary") == {
        "window": HOUR,
        "impressions": 2000,
        "clicks": 36,
        "ctr": 0.018,  # 36 / 2000, not the mean of the rows' CTRs (0.015)
        "revenue": "43.800001",
        "spend": "16.650000000",
        "newest_click_time": "2026-11-01T09:58:59.500000Z",
        "freshness_lag_seconds": 60.5,
    }


def test_summary_of_a_window_that_does_not_end_on_a_minute(client: TestClient) -> None:
    # 09:00:30 to 10:00:30: minutes 09:01 to 10:00 (one row more, one less).
    summary = get(client, "/api/summary", until="2026-11-01T10:00:30Z")
    assert (summary["impressions"], summary["clicks"]) == (2000 + 888, 36 + 8)
    assert (summary["revenue"], summary["spend"]) == ("53.400001", "25.530000000")
    assert summary["newest_click_time"] == "2026-11-01T10:00:05Z"
    assert summary["freshness_lag_seconds"] == 25.0


def test_summary_of_an_empty_window(client: TestClient) -> None:
    summary = get(client, "/api/summary", until="2026-11-02T00:00:00Z", minutes=15)
    assert {key: value for key, value in summary.items() if key != "window"} == {
        "impressions": 0,
        "clicks": 0,
        "ctr": None,
        "revenue": "0.000000",
        "spend": "0.000000000",
        "newest_click_time": None,
        "freshness_lag_seconds": None,
    }


def zero(minute: str) -> dict[str, Any]:
    return {
        "minute": minute,
        "impressions": 0,
        "clicks": 0,
        "ctr": None,
        "revenue": "0.000000",
        "spend": "0.000000000",
    }


def test_time_series_has_every_minute(client: TestClient) -> None:
    series = get(client, "/api/timeseries")
    assert series["window"] == HOUR
    points = {point["minute"]: point for point in series["points"]}
    assert list(points) == [f"2026-11-01T09:{minute:02}:00Z" for minute in range(60)]
    assert points["2026-11-01T09:10:00Z"] == {
        "minute": "2026-11-01T09:10:00Z",
        "impressions": 1500,
        "clicks": 25,
        "ctr": 25 / 1500,
        "revenue": "30.600000",
        "spend": "3.750000000",
    }
    assert points["2026-11-01T09:11:00Z"]["revenue"] == "10.800001"
    assert points["2026-11-01T09:30:00Z"] == {
        **zero("2026-11-01T09:30:00Z"),
        "clicks": 2,
        "revenue": "2.400000",
    }
    assert points["2026-11-01T09:59:00Z"]["ctr"] == 0.0
    assert points["2026-11-01T09:00:00Z"] == zero("2026-11-01T09:00:00Z")
    assert sum(point["impressions"] for point in points.values()) == 2000


def test_time_series_of_fifteen_minutes(client: TestClient) -> None:
    series = get(client, "/api/timeseries", minutes=15)
    assert [point["minute"][11:16] for point in series["points"]] == [
        f"09:{minute}" for minute in range(45, 60)
    ]
    assert [point["impressions"] for point in series["points"]] == [0] * 14 + [200]


def test_top_campaigns_by_revenue(client: TestClient) -> None:
    top = get(client, "/api/top", dimension="campaign")
    assert top["dimension"] == "campaign"
    assert top["rows"] == [
        {
            "id": "cmp-a",
            "impressions": 1300,
            "clicks": 29,
            "ctr": 29 / 1300,
            "revenue": "34.800001",
            "spend": "3.400000000",
        },
        {
            "id": "cmp-b",
            "impressions": 500,
            "clicks": 7,
            "ctr": 7 / 500,
            "revenue": "9.000000",
            "spend": "1.250000000",
        },
        {
            "id": "cmp-c",
            "impressions": 200,
            "clicks": 0,
            "ctr": 0.0,
            "revenue": "0.000000",
            "spend": "12.000000000",
        },
    ]


def test_top_publishers_limited(client: TestClient) -> None:
    top = get(client, "/api/top", dimension="publisher", limit=2)
    assert [
        (row["id"], row["impressions"], row["clicks"], row["revenue"]) for row in top["rows"]
    ] == [
        ("pub-1", 1500, 25, "30.600000"),
        ("pub-2", 500, 9, "10.800001"),
    ]
    assert get(client, "/api/top", dimension="publisher")["rows"][2] == {
        "id": "pub-3",
        "impressions": 0,
        "clicks": 2,
        "ctr": None,
        "revenue": "2.400000",
        "spend": "0.000000000",
    }


def test_platform_mix(client: TestClient) -> None:
    mix = get(client, "/api/platforms")
    assert [
        (row["platform_category"], row["impressions"], row["clicks"], row["revenue"])
        for row in mix["rows"]
    ] == [
        ("Mobile", 1300, 29, "34.800001"),
        ("Desktop", 500, 5, "6.600000"),
        ("CTV", 200, 0, "0.000000"),
        ("Other", 0, 2, "2.400000"),
    ]


def test_rejected_events_by_reason(client: TestClient) -> None:
    assert get(client, "/api/rejected") == {
        "window": HOUR,
        "total": 6,
        "rows": [
            {"stream": "impressions", "reason": "invalid_price", "events": 2},
            {"stream": "clicks", "reason": "duplicate_click", "events": 1},
            {"stream": "clicks", "reason": "invalid_price", "events": 1},
            {"stream": "clicks", "reason": "late_event", "events": 1},
            {"stream": "impressions", "reason": "late_event", "events": 1},
        ],
    }
    assert get(client, "/api/rejected", minutes=15)["total"] == 2


def test_window_defaults_to_the_last_hour(client: TestClient) -> None:
    response = client.get("/api/summary")
    assert response.status_code == 200
    window = response.json()["window"]
    until = datetime.fromisoformat(window["until"])
    assert window["minutes"] == 60
    assert abs((datetime.now(UTC) - until).total_seconds()) < 60


def test_naive_until_is_utc(client: TestClient) -> None:
    assert get(client, "/api/summary", until="2026-11-01T10:00:00")["window"] == HOUR
    assert get(client, "/api/summary", until="2026-11-01T11:00:00+01:00")["window"] == HOUR


def test_config(client: TestClient) -> None:
    assert client.get("/api/config").json() == {
        "refresh_seconds": 5.0,
        "default_window": 60,
    }


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/summary", {"minutes": "4"}, "minutes: Input should be greater than or equal to 5"),
        ("/api/summary", {"minutes": "1441"}, "minutes: Input should be less than or equal to"),
        ("/api/timeseries", {"minutes": "an hour"}, "minutes: Input should be a valid integer"),
        ("/api/platforms", {"until": "yesterday"}, "until: Input should be a valid datetime"),
        (
            "/api/summary",
            {"until": "0001-01-01T00:30:00+01:00"},
            "until: Value error, must lie between 0001-01-03 and 9999-12-30",
        ),
        ("/api/timeseries", {"until": "9999-12-31T23:59:00Z"}, "until: Value error, must lie"),
        ("/api/top", {"dimension": "advertiser"}, "dimension: Input should be 'campaign' or"),
        ("/api/top", {"limit": "0"}, "limit: Input should be greater than or equal to 1"),
        ("/api/top", {"limit": "51"}, "limit: Input should be less than or equal to 50"),
        # SQL in a parameter is only ever a bad value.
        (
            "/api/top",
            {"dimension": "campaign_id FROM impressions; DROP TABLE impressions; --"},
            "dimension: Input should be 'campaign' or 'publisher'",
        ),
        ("/api/top", {"limit": "1; DROP TABLE impressions"}, "limit: Input should be a valid"),
        ("/api/rejected", {"minutes": "60 OR 1=1"}, "minutes: Input should be a valid integer"),
        (
            "/api/summary",
            {"until": "2026-11-01T10:00:00Z'; DROP TABLE rejected_events; --"},
            "until: Input should be a valid datetime",
        ),
    ],
)
def test_bad_parameters_get_422_naming_them(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    details = [
        f"{'.'.join(map(str, error['loc'][1:]))}: {error['msg']}"
        for error in response.json()["detail"]
    ]
    assert len(details) == 1
    assert details[0].startswith(message), details


def snapshots(settings: Settings) -> dict[str, int | None]:
    catalog = open_catalog(settings)
    return {
        table.name: getattr(load_table(catalog, table.name).current_snapshot(), "snapshot_id", None)
        for table in TABLES
    }


def test_sql_in_parameters_changes_nothing(client: TestClient, lakehouse: Settings) -> None:
    before = snapshots(lakehouse)
    for params in (
        {"dimension": "campaign'; DROP TABLE campaign_metrics_minute; --"},
        {"minutes": "60; DELETE FROM rejected_events"},
        {"sql": "DROP TABLE impressions", "query": "SELECT * FROM read_csv('/etc/passwd')"},
    ):
        client.get("/api/top", params={"until": UNTIL, **params})
    # Parameters the API does not know are ignored: the numbers stay those of the dataset.
    ignored = get(client, "/api/summary", sql="DELETE FROM campaign_metrics_minute")
    assert ignored["impressions"] == 2000
    assert snapshots(lakehouse) == before
    assert get(client, "/api/rejected")["total"] == 6


def test_missing_tables_give_503_with_the_reason(tmp_path: Path) -> None:
    app = create_app(load_settings(data_dir=tmp_path / "empty"))
    with TestClient(app, base_url="http://127.0.0.1") as empty:
        response = empty.get("/api/summary")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "table ad_analytics.dashboard_metrics_minute does not exist; "
        "run `adstream enrich` or `adstream run` first"
    }


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/plotly.min.js" defer></script>' in page.text
    assert "http" not in page.text  # no CDN, no other site
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200
    assert plotly.text.startswith("/**\n* plotly.js v")
    script = client.get("/static/dashboard.js")
    assert script.status_code == 200
    assert "http" not in script.text
    assert client.get("/static/dashboard.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/app.py").json() == {"detail": "no asset 'app.py'"}


def test_answers_only_to_loopback_names_without_a_password(client: TestClient) -> None:
    # A page on another site reaching 127.0.0.1 through a DNS name it controls is refused.
    response = client.get("/api/summary", headers={"Host": "attacker.example:8765"})
    assert response.status_code == 400
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200


def test_refuses_other_addresses_without_a_password(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, dashboard_host="0.0.0.0", dashboard_port=0)
    with pytest.raises(AdstreamError) as error:
        DashboardServer(settings)
    assert str(error.value) == (
        "the dashboard would be reachable from other machines at 0.0.0.0: set a password "
        "(ADSTREAM_DASHBOARD_PASSWORD or dashboard_password in adstream.toml) or bind to 127.0.0.1"
    )


def test_cli_refuses_other_addresses_without_a_password(tmp_path: Path) -> None:
    result = adstream("dashboard", "--data-dir", str(tmp_path), "--dashboard-host", "0.0.0.0")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "adstream: error: the dashboard would be reachable from other machines at 0.0.0.0"
    )
    assert len(result.stderr.splitlines()) == 1


def test_a_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = load_settings(data_dir=tmp_path, dashboard_port=port)
        with pytest.raises(AdstreamError) as error:
            DashboardServer(settings)
    assert str(error.value) == (
        f"cannot serve the dashboard at 127.0.0.1:{port}: Address already in use; "
        "choose another with --dashboard-host/--dashboard-port (or ADSTREAM_DASHBOARD_*)"
    )


def test_run_with_a_taken_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = adstream(
            "run", "--data-dir", str(tmp_path / "run"), "--dashboard-port", str(port), timeout=60
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"adstream: error: cannot serve the dashboard at 127.0.0.1:{port}: Address already in "
        "use; choose another with --dashboard-host/--dashboard-port (or ADSTREAM_DASHBOARD_*)\n"
    )


def test_cli_help_names_the_settings() -> None:
    result = adstream("dashboard", "--help")
    assert result.returncode == 0
    for variable in ("ADSTREAM_DATA_DIR", "ADSTREAM_DASHBOARD_HOST", "ADSTREAM_DASHBOARD_PORT"):
        assert variable in result.stdout
    assert "ADSTREAM_DASHBOARD_PASSWORD" in result.stdout  # named, but not a flag
    assert "--dashboard-password" not in result.stdout


def test_cli_serves_until_ctrl_c(lakehouse: Settings) -> None:
    process = subprocess.Popen(
        [ADSTREAM, "dashboard", "--dashboard-port", "0"],
        env={**os.environ, "ADSTREAM_DATA_DIR": str(lakehouse.data_dir)},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert process.stderr is not None
        started = re.fullmatch(
            r"adstream: dashboard: (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)\n",
            process.stderr.readline(),
        )
        assert started is not None
        summary = httpx.get(f"{started[1]}api/summary", params={"until": UNTIL})
        assert summary.json()["clicks"] == 36
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert stderr == "adstream: dashboard stopped\n"


def test_with_a_password_every_path_needs_it(
    lakehouse: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADSTREAM_DASHBOARD_PASSWORD", "correct horse")
    (port,) = free_ports(1)
    settings = load_settings(
        data_dir=lakehouse.data_dir, dashboard_host="0.0.0.0", dashboard_port=port
    )
    server = DashboardServer(settings)
    server.start()
    try:
        assert server.url == f"http://0.0.0.0:{port}/"
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/static/plotly.min.js", "/api/config", "/api/summary"):
            response = httpx.get(base + path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == 'Basic realm="adstream dashboard"'
        wrong = httpx.get(f"{base}/api/summary", auth=("adstream", "battery staple"))
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "wrong user or password"}
        assert httpx.get(f"{base}/api/summary", auth=("admin", "correct horse")).status_code == 401
        right = httpx.get(
            f"{base}/api/summary", params={"until": UNTIL}, auth=("adstream", "correct horse")
        )
        assert right.status_code == 200
        assert right.json()["revenue"] == "43.800001"
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/config")


def test_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSTREAM_DASHBOARD_PASSWORD", "correct horse")
    settings = load_settings()
    assert "correct horse" not in repr(settings)
    assert "correct horse" not in str(settings.model_dump())
