"""`adstream query`: read-only SQL over the current snapshot of the Iceberg tables, in DuckDB.

DuckDB cannot load its iceberg extension without the internet, so each table the query names
is read with pyiceberg (the current snapshot, as Arrow) and registered in an in-memory DuckDB
under its short name. The connection has no file access and its configuration is locked, and
only one SELECT statement runs: nothing a query says can change the lakehouse. The tables a
query names are listed on that connection too, before any is registered: DuckDB binds a statement
to list them, which on its default connection opens the files and fetches the extensions it names.

`adstream query --engine athena` runs the same SELECT on Athena instead (`adstream.athena`),
and prints its rows through the same `render`.

The dashboard runs its own fixed queries the same way (`run_fixed_query`): values from a
request are bound as DuckDB prepared-statement parameters, never written into the SQL, and
each table is read only as far as the query needs (a row filter and columns pushed down to
pyiceberg).
"""

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import duckdb
from pyiceberg.expressions import AlwaysTrue, BooleanExpression

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


@dataclass(frozen=True)
class Scan:
    """What a query reads of one table: the rows matching `row_filter`, the `columns` named.

    Both are pushed down to pyiceberg, which skips files and partitions outside the filter.
    """

    row_filter: BooleanExpression = field(default_factory=AlwaysTrue)
    columns: tuple[str, ...] = ("*",)


def run_query(settings: Settings, sql: str) -> Result:
    """Run one read-only SELECT over the tables it names.

    Raises:
        AdstreamError: bad SQL, not a SELECT, or a table that does not exist (one clear line).
    """
    check_read_only(sql)
    return _execute(settings, sql, {}, None)


def run_fixed_query(
    settings: Settings, sql: str, parameters: Mapping[str, Any], scans: Mapping[str, Scan]
) -> Result:
    """Run one of adstream's own read-only SELECTs with typed parameters.

    Args:
        settings: where the catalog is.
        sql: a constant SELECT whose values are `$name` parameters.
        parameters: the value of each `$name`, bound by DuckDB (never formatted into SQL).
        scans: the tables the query reads, and how much of each (DuckDB cannot list the
            tables of a statement with parameters, so they are named here).

    Raises:
        AdstreamError: bad SQL, not a SELECT, or a table that does not exist (one clear line).
    """
    check_read_only(sql)
    return _execute(settings, sql, parameters, scans)


def _execute(
    settings: Settings,
    sql: str,
    parameters: Mapping[str, Any],
    scans: Mapping[str, Scan] | None,
) -> Result:
    """Run `sql` in a sandbox over the tables of `scans` (None: every table it names, whole)."""
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET enable_external_access = false")
        # Only the registered tables: no Python object of this process is visible by its name.
        connection.execute("SET python_enable_replacements = false")
        try:
            if scans is None:
                # Not duckdb.get_table_names: it binds on the default connection (module docstring).
                scans = {name: Scan() for name in connection.get_table_names(sql)}
            _register(settings, connection, scans)
            connection.execute("SET lock_configuration = true")
            relation = connection.execute(sql, dict(parameters))
            columns = [column[0] for column in relation.description or []]
            return Result(columns, relation.fetchall())
        except duckdb.Error as error:
            raise AdstreamError(f"query failed: {_first_line(error)}") from error
        except OverflowError as error:
            # An interval longer than Python's timedelta (999999999 days) cannot be fetched.
            raise AdstreamError(
                f"query failed: a value does not fit Python's types ({error}); cast it to VARCHAR"
            ) from error
    finally:
        connection.close()


def _register(
    settings: Settings, connection: duckdb.DuckDBPyConnection, scans: Mapping[str, Scan]
) -> None:
    unknown = sorted(scans.keys() - TABLE_BY_NAME.keys())
    if unknown:
        raise AdstreamError(
            f"unknown table {unknown[0]!r}; the tables are: {', '.join(sorted(TABLE_BY_NAME))}"
        )
    if scans:
        catalog = open_catalog(settings)
        for name, scan in sorted(scans.items()):
            table = load_table(catalog, name)
            rows = table.scan(row_filter=scan.row_filter, selected_fields=scan.columns)
            connection.register(name, rows.to_arrow())


def check_read_only(sql: str) -> None:
    """Accept exactly one SELECT statement (DuckDB parses it); else a one-line AdstreamError."""
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
    # DuckDB's messages quote the SQL: a \r (or another line break) in it becomes a space.
    return " ".join(str(error).split("\n", 1)[0].splitlines()).strip()


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
