"""`adstream query`: read-only SQL over the current snapshot of the Iceberg tables, in DuckDB.

DuckDB cannot load its iceberg extension without the internet, so each table the query names
is read with pyiceberg (the current snapshot, as Arrow) and registered in an in-memory DuckDB
under its short name. The connection has no file access and its configuration is locked, and
only one SELECT statement runs: nothing a query says can change the lakehouse.
"""

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import duckdb

from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import load_table, open_catalog
from adstream.lakehouse.tables import TABLE_BY_NAME
from adstream.settings import Settings

Format = Literal["table", "csv", "json"]
FORMATS: Final[tuple[Format, ...]] = ("table", "csv", "json")


@dataclass(frozen=True)
class Result:
    """The columns and rows a query returned."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(settings: Settings, sql: str) -> Result:
    """Run one read-only SELECT over the tables it names.

    Raises:
        AdstreamError: bad SQL, not a SELECT, or a table that does not exist (one clear line).
    """
    _check_read_only(sql)
    names = duckdb.get_table_names(sql)
    unknown = sorted(names - TABLE_BY_NAME.keys())
    if unknown:
        raise AdstreamError(
            f"unknown table {unknown[0]!r}; the tables are: {', '.join(sorted(TABLE_BY_NAME))}"
        )
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        if names:
            catalog = open_catalog(settings)
            for name in sorted(names):
                connection.register(name, load_table(catalog, name).scan().to_arrow())
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        try:
            relation = connection.execute(sql)
            columns = [column[0] for column in relation.description or []]
            return Result(columns, relation.fetchall())
        except duckdb.Error as error:
            raise AdstreamError(f"query failed: {_first_line(error)}") from error
    finally:
        connection.close()


def _check_read_only(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise AdstreamError(f"bad SQL: {_first_line(error)}") from error
    if len(statements) != 1:
        raise AdstreamError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise AdstreamError(f"only read-only SELECT queries are allowed (got {kind.name})")


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split("\n")[:1]).strip()


def render(result: Result, output_format: Format) -> str:
    """The result as an aligned text table, CSV with a header, or JSON lines."""
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([[_text(value) for value in row] for row in result.rows])
        return buffer.getvalue()
    if output_format == "json":
        return "".join(_json_line(result.columns, row) + "\n" for row in result.rows)
    return _table(result.columns, [[_text(value) for value in row] for row in result.rows])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _json_value(value: Any) -> str:
    # Decimals stay exact JSON numbers (money is never a float); times are ISO-8601 strings.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return json.dumps(_text(value))
    return json.dumps(value, default=str)


def _json_line(columns: Sequence[str], row: Sequence[Any]) -> str:
    fields = (
        f"{json.dumps(name)}: {_json_value(value)}"
        for name, value in zip(columns, row, strict=True)
    )
    return "{" + ", ".join(fields) + "}"


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(columns)]
    lines = [
        "  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)).rstrip(),
        "  ".join("-" * width for width in widths),
        *("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows),
    ]
    lines.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(lines) + "\n"
