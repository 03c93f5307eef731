"""`adstream run --platform aws --emulator`: the whole pipeline on Kinesis into Iceberg on S3 in
the Glue Data Catalog, as exact as on Kafka.

The emulator is started first with `adstream up`, so the run leaves it (and its streams)
running for `adstream verify`, as a user keeping the emulator between runs would.
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adstream.dashboard import queries
from adstream.lakehouse.tables import NAMESPACE, TABLES
from adstream.services import aws
from adstream.settings import Settings, load_settings
from tests.cli import adstream
from tests.conftest import aws_env, free_ports
from tests.integration.test_run import FAULTS, accounting, assert_enriched_rows_are_exact

pytestmark = pytest.mark.integration


def test_a_run_on_kinesis_accounts_for_every_event_and_verifies(tmp_path: Path) -> None:
    emulator_port, dashboard_port = free_ports(2)
    settings = load_settings(
        data_dir=tmp_path / "run-aws",
        platform="aws",
        aws_emulator=True,
        aws_emulator_port=emulator_port,
    )
    env = aws_env(settings)
    up = adstream("up", env=env)
    assert up.returncode == 0, up.stderr
    assert "warehouse s3://adstream-lakehouse/warehouse: bucket adstream-lakehouse created" in (
        up.stdout
    )
    try:
        run = adstream(
            "run",
            *("--events", "20000", "--rate", "2000", "--seed", "9", *FAULTS),
            *("--dashboard-port", str(dashboard_port)),
            env=env,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "pipeline ready after" in run.stderr
        assert "AWS emulator already running" in run.stderr
        assert re.search(r"finished [\d.]+ s after the generator", run.stderr)
        printed = accounting(run.stdout)
        assert printed["impressions in"] + printed["clicks in"] == 20_000

        verify = adstream("verify", env=env)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert verify.stdout.endswith("verify: OK\n")
        expected = {
            line.rsplit(maxsplit=2)[0]: int(line.rsplit(maxsplit=2)[1].replace(",", ""))
            for line in verify.stdout.splitlines()[2:-2]
        }
        assert printed["clicks attributed"] == expected["attributed click"] > 100
        assert printed["impressions unique"] == expected["unique impression"]
        assert printed["clicks unmatched"] == expected["unmatched click"] > 0
        assert printed["impressions duplicate"] == expected["impressions duplicate_impression"] > 0
        assert_enriched_rows_are_exact(settings)
        (revenue_line,) = [
            line
            for line in verify.stdout.splitlines()
            if line.startswith("attributed click revenue")
        ]
        verified_revenue = Decimal(revenue_line.split()[-2])  # expected, stored: equal
        assert_readers_see_the_glue_tables(settings, env, expected, verified_revenue)
        glue_tables = aws.client(settings, "glue").get_tables(DatabaseName=NAMESPACE)["TableList"]
        assert sorted(t["Name"] for t in glue_tables) == sorted(t.name for t in TABLES)
        for table in glue_tables:
            assert table["Parameters"]["table_type"] == "ICEBERG"
            location = f"s3://adstream-lakehouse/warehouse/{NAMESPACE}.db/{table['Name']}/metadata/"
            assert table["Parameters"]["metadata_location"].startswith(location)
    finally:
        down = adstream("down", env=env)
    assert down.returncode == 0
    assert "AWS emulator stopped" in down.stderr


def assert_readers_see_the_glue_tables(
    settings: Settings, env: dict[str, str], verified: dict[str, int], revenue: Decimal
) -> None:
    """`adstream query` and the dashboard's numbers, over the Glue tables, are verify's."""
    query = adstream(
        "query",
        "--format",
        "csv",
        "SELECT count(*), sum(click_revenue) FROM enriched_ad_data",
        env=env,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == f"{verified['attributed click']},{revenue}"

    # The dashboard's summary of the hour up to now holds the whole run.
    until = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    summary = queries.summary(settings, queries.Window(minutes=60, until=until))
    assert summary.clicks == verified["attributed click"]
    assert summary.impressions == verified["unique impression"]
    assert summary.revenue == revenue > 0
