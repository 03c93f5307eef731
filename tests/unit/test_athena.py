"""Reading Athena's answers: GetQueryResults pages to typed rows, a failed query to one line.

The pages are shaped as Athena documents them (every value text, a null without VarCharValue,
the column names repeated as the first row of the first page). The calls themselves run against
the emulator in tests/integration/test_query_athena.py.
"""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from adstream.athena import failure_line, result_from_pages
from adstream.query import render

COLUMNS = [
    {"Name": "minute", "Type": "timestamp(6) with time zone"},
    {"Name": "campaign_id", "Type": "varchar"},
    {"Name": "impressions", "Type": "bigint"},
    {"Name": "revenue", "Type": "decimal", "Precision": 38, "Scale": 6},
    {"Name": "ctr", "Type": "double"},
    {"Name": "is_premium_ad", "Type": "boolean"},
    {"Name": "day", "Type": "date"},
    {"Name": "processed", "Type": "timestamp(3)"},
]


def row(*values: str | None) -> dict[str, Any]:
    return {"Data": [{} if value is None else {"VarCharValue": value} for value in values]}


def page(rows: list[dict[str, Any]], first: bool) -> dict[str, Any]:
    result_set: dict[str, Any] = {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": COLUMNS}}
    return {"ResultSet": result_set, **({} if first else {"NextToken": "more"})}


HEADER = row(*(column["Name"] for column in COLUMNS))
FIRST = row(
    "2026-11-01 09:10:00.000000 UTC",
    "cmp-a",
    "1300",
    "34.800001",
    "0.022307692307692306",
    "true",
    "2026-11-01",
    "2026-11-01 09:10:02.500",
)
SECOND = row(
    "2026-11-01 11:11:00.250 Europe/Berlin", "campaign", None, "0.000000", None, "false", None, None
)


def test_pages_become_typed_rows_without_the_header_row() -> None:
    result = result_from_pages([page([HEADER, FIRST], first=True), page([SECOND], first=False)])
    assert result.columns == [column["Name"] for column in COLUMNS]
    assert result.rows == [
        (
            datetime(2026, 11, 1, 9, 10, tzinfo=UTC),
            "cmp-a",
            1300,
            Decimal("34.800001"),
            29 / 1300,
            True,
            date(2026, 11, 1),
            datetime(2026, 11, 1, 9, 10, 2, 500_000),
        ),
        # A data row equal to the names is kept: only the first page starts with them.
        (
            datetime(2026, 11, 1, 10, 11, 0, 250_000, tzinfo=UTC),
            "campaign",
            None,
            Decimal("0.000000"),
            None,
            False,
            None,
            None,
        ),
    ]
    assert render(result, "json").splitlines()[0] == (
        '{"minute": "2026-11-01T09:10:00.000Z", "campaign_id": "cmp-a", "impressions": 1300, '
        '"revenue": 34.800001, "ctr": 0.022307692307692306, "is_premium_ad": true, '
        '"day": "2026-11-01", "processed": "2026-11-01T09:10:02.500"}'
    )


def test_a_result_without_rows_has_its_columns() -> None:
    result = result_from_pages([page([HEADER], first=True)])
    assert (len(result.columns), result.rows) == (len(COLUMNS), [])


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (
            {
                "State": "FAILED",
                "StateChangeReason": "TABLE_NOT_FOUND: line 1:15: Table\n"
                "'awsdatacatalog.ad_analytics.clicks' does not exist",
                "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006},
            },
            "Athena query q-1 FAILED: TABLE_NOT_FOUND: line 1:15: Table "
            "'awsdatacatalog.ad_analytics.clicks' does not exist",
        ),
        (
            {"State": "FAILED", "AthenaError": {"ErrorMessage": "Query exhausted resources"}},
            "Athena query q-1 FAILED: Query exhausted resources",
        ),
        ({"State": "CANCELLED"}, "Athena query q-1 CANCELLED: Athena gave no reason"),
    ],
)
def test_a_failed_query_is_one_line_with_athenas_reason(status: dict[str, Any], line: str) -> None:
    assert failure_line({"QueryExecutionId": "q-1", "Status": status}) == line
