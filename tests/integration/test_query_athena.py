"""`adstream query --engine athena` against the emulator (moto): the calls, not Athena's answers.

moto runs no SQL: it records each StartQueryExecution (the query, workgroup, output location and
execution parameters, read back with GetQueryExecution) and answers GetQueryResults with rows
queued beforehand through its own API (`canned`). So these tests prove what adstream sends and
how it reads, waits and prints; that Athena accepts the translated SQL and computes the same
numbers as DuckDB is not proven here (docs/aws.md).
"""

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from adstream.athena import athena_sql, run_athena, to_athena
from adstream.lakehouse.catalog import ensure_tables, load_table
from adstream.lakehouse.tables import CAMPAIGN_METRICS_MINUTE, NAMESPACE
from adstream.services import aws
from adstream.settings import Settings, load_settings
from adstream.shipped_queries import MINUTE_TOTALS
from tests.cli import ADSTREAM, adstream
from tests.conftest import aws_env, instance_env

pytestmark = pytest.mark.integration

RESULTS_BUCKET = "s3://adstream-athena-results/queries/"


def moto_api(settings: Settings, path: str, body: dict[str, Any]) -> None:
    """POST to the emulator's own API (not AWS's)."""
    request = urllib.request.Request(
        f"{settings.aws_endpoint}/moto-api/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201


def canned(settings: Settings, columns: list[dict[str, Any]], rows: list[list[str | None]]) -> None:
    """Queue the answer to the next query, as Athena gives it: the column names first, as text."""
    names = [column["Name"] for column in columns]
    data = [
        {"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in [names, *rows]
    ]
    moto_api(
        settings,
        "static/athena/query-results",
        {"region": settings.aws_region, "results": [{"rows": data, "column_info": columns}]},
    )


@contextmanager
def polls_per_state(settings: Settings, polls: int) -> Iterator[None]:
    """Each query stays QUEUED, then RUNNING, for this many GetQueryExecution calls."""
    model = {"model_name": "athena::execution"}
    moto_api(
        settings,
        "state-manager/set-transition",
        {**model, "transition": {"progression": "manual", "times": polls}},
    )
    try:
        yield
    finally:
        moto_api(settings, "state-manager/unset-transition", model)


def workgroup(settings: Settings, name: str) -> Any:
    """A new workgroup (as the CloudFormation template makes one), and an Athena client."""
    athena = aws.client(settings, "athena")
    athena.create_work_group(
        Name=name, Configuration={"ResultConfiguration": {"OutputLocation": RESULTS_BUCKET}}
    )
    return athena


def executions(athena: Any, name: str) -> list[dict[str, Any]]:
    ids = athena.list_query_executions(WorkGroup=name)["QueryExecutionIds"]
    return [athena.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def utc(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 1, hour, minute, tzinfo=UTC)


METRICS = {  # two minutes of campaign_metrics_minute; no click revenue yet in the second
    "minute": [utc(9, 10), utc(9, 10), utc(9, 11)],
    "campaign_id": ["cmp-a", "cmp-b", "cmp-a"],
    "impressions": [1000, 300, 5],
    "clicks": [20, 9, 0],
    "click_revenue": [Decimal("24.000000"), Decimal("10.800001"), None],
}
ATHENA_COLUMNS = [  # what Athena says of MINUTE_TOTALS' columns over the Glue table
    {"Name": "minute", "Type": "timestamp(6) with time zone"},
    {"Name": "impressions", "Type": "bigint"},
    {"Name": "clicks", "Type": "bigint"},
    {"Name": "revenue", "Type": "decimal", "Precision": 38, "Scale": 6},
]
ATHENA_ROWS = [  # and its answer over the same rows
    ["2026-11-01 09:10:00.000000 UTC", "1300", "29", "34.800001"],
    ["2026-11-01 09:11:00.000000 UTC", "5", "0", None],
]


@pytest.fixture
def local_tables(tmp_path: Path) -> Settings:
    """METRICS in local Iceberg tables, for the DuckDB path."""
    settings = load_settings(data_dir=tmp_path / "local")
    table = load_table(ensure_tables(settings), CAMPAIGN_METRICS_MINUTE)
    schema = table.schema().as_arrow()
    rows = len(METRICS["minute"])
    table.append(
        pa.Table.from_pydict(
            {field.name: METRICS.get(field.name, [None] * rows) for field in schema}, schema=schema
        )
    )
    return settings


@pytest.mark.parametrize("output_format", ["table", "csv", "json"])
def test_prints_athenas_rows_as_the_duckdb_path_prints_the_same_rows(
    aws_emulator: Settings, local_tables: Settings, output_format: str
) -> None:
    duckdb = adstream(
        "query",
        "--format",
        output_format,
        MINUTE_TOTALS.sql,
        env=instance_env(local_tables),
    )
    assert duckdb.returncode == 0, duckdb.stderr

    name = f"minute-totals-{output_format}"
    athena = workgroup(aws_emulator, name)
    canned(aws_emulator, ATHENA_COLUMNS, ATHENA_ROWS)
    with polls_per_state(aws_emulator, 2):  # QUEUED, RUNNING, then SUCCEEDED: the wait loop
        result = adstream(
            "query",
            "--engine",
            "athena",
            "--athena-workgroup",
            name,
            "--athena-output-location",
            RESULTS_BUCKET + "adhoc/",
            "--format",
            output_format,
            MINUTE_TOTALS.sql,
            env=aws_env(aws_emulator),
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == duckdb.stdout
    assert len(duckdb.stdout.splitlines()) > 1

    (execution,) = executions(athena, name)
    assert execution["Query"] == to_athena(MINUTE_TOTALS.sql).sql
    assert "FROM ad_analytics.campaign_metrics_minute" in execution["Query"]
    assert execution["WorkGroup"] == name
    assert execution["QueryExecutionContext"] == {
        "Catalog": "AwsDataCatalog",
        "Database": NAMESPACE,
    }
    # moto, like Athena, writes the result file under the location it was given.
    location = execution["ResultConfiguration"]["OutputLocation"]
    assert location == f"{RESULTS_BUCKET}adhoc/{execution['QueryExecutionId']}.csv"
    assert execution["Status"]["State"] == "SUCCEEDED"


def test_a_shipped_query_is_sent_with_its_parameters_in_order(aws_emulator: Settings) -> None:
    name = "campaign-minute-metrics"
    athena = workgroup(aws_emulator, name)
    settings = aws_emulator.model_copy(update={"athena_workgroup": name})
    columns = [
        {"Name": "minute", "Type": "timestamp(6) with time zone"},
        {"Name": "campaign_id", "Type": "varchar"},
        {"Name": "ctr", "Type": "double"},
    ]
    canned(settings, columns, [["2026-11-01 09:10:00.000000 UTC", "cmp-a", "0.02"]])
    query = athena_sql("campaign_minute_metrics")
    result = run_athena(settings, query, {"since": utc(9, 0), "until": utc(10, 0)})
    assert (result.columns, result.rows) == (
        ["minute", "campaign_id", "ctr"],
        [(utc(9, 10), "cmp-a", 0.02)],
    )

    (execution,) = executions(athena, name)
    assert execution["Query"] == query.sql
    assert execution["ExecutionParameters"] == [
        "TIMESTAMP '2026-11-01 09:00:00.000000 UTC'",
        "TIMESTAMP '2026-11-01 10:00:00.000000 UTC'",
    ]
    assert not execution.get("ResultConfiguration")  # none sent: the workgroup's location


def start_query(settings: Settings, name: str, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ADSTREAM, "query", "--engine", "athena", "--athena-workgroup", name, *flags, "SELECT 1"],
        env=aws_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_cancelled_query_ends_in_one_clear_line(aws_emulator: Settings) -> None:
    name = "cancelled"
    athena = workgroup(aws_emulator, name)
    with polls_per_state(aws_emulator, 10**6):  # stays QUEUED until stopped
        running = start_query(aws_emulator, name)
        deadline = time.monotonic() + 60
        while not (ids := athena.list_query_executions(WorkGroup=name)["QueryExecutionIds"]):
            assert time.monotonic() < deadline, "the query never reached the emulator"
            time.sleep(0.05)
        athena.stop_query_execution(QueryExecutionId=ids[0])
        stdout, stderr = running.communicate(timeout=60)
    assert (running.returncode, stdout) == (1, "")
    assert stderr == f"adstream: error: Athena query {ids[0]} CANCELLED: Athena gave no reason\n"


def test_a_query_that_does_not_finish_in_time_is_stopped(aws_emulator: Settings) -> None:
    name = "too-slow"
    athena = workgroup(aws_emulator, name)
    with polls_per_state(aws_emulator, 10**6):
        running = start_query(aws_emulator, name, "--athena-timeout", "1")
        stdout, stderr = running.communicate(timeout=60)
    (execution,) = executions(athena, name)
    assert (running.returncode, stdout) == (1, "")
    assert stderr == (
        f"adstream: error: Athena query {execution['QueryExecutionId']} did not finish within "
        "1 s (it was QUEUED) and was stopped; give it longer with --athena-timeout\n"
    )
    assert execution["Status"]["State"] == "CANCELLED"


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ("--athena-workgroup", "missing", "SELECT * FROM impressions"),
            "Athena could not start the query in workgroup missing: "
            "InvalidRequestException: WorkGroup does not exist",
        ),
        (
            ("--athena-workgroup", "refused", "DROP TABLE impressions"),
            "only read-only SELECT queries are allowed (got DROP)",
        ),
        (
            ("--athena-workgroup", "refused", "SELECT * FROM impressions WHERE ad_id = $ad"),
            "adstream query takes no parameters (got $ad); write the values into the SQL",
        ),
    ],
)
def test_refusals_are_one_clear_line(
    aws_emulator: Settings, flags: tuple[str, ...], line: str
) -> None:
    result = adstream("query", "--engine", "athena", *flags, env=aws_env(aws_emulator))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"adstream: error: {line}\n"
