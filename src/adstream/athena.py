"""Queries on Amazon Athena (engine v3, Trino SQL): translated from DuckDB, run through its API.

Translation (`to_athena`, `athena_sql`): a query is written once, in DuckDB's dialect (the shipped
queries of `adstream.shipped_queries`, and whatever a user gives `adstream query`), and sqlglot
translates it to Trino: DuckDB's float division, intervals, casts and functions become their
Trino spellings, any construct sqlglot cannot translate is an error rather than a guess, and
adstream's tables are qualified with their Glue database (`ad_analytics.impressions`). Named
parameters (`$since`) become Athena's positional execution parameters (`?`), listed by name in
the order they appear; `execution_parameters` gives their values as Trino literals.

Execution (`run_query`, `run_athena`): StartQueryExecution in the configured workgroup (and
output location, when one is set), GetQueryExecution until the query ends (short exponential
backoff, up to `athena_timeout`; on timeout or Ctrl-C the query is stopped, so it does not keep
scanning), then GetQueryResults page by page. The values, text in Athena's answer, are converted
by each column's type (bigint -> int, decimal -> Decimal, timestamp -> datetime, ...) into the
same `Result` the DuckDB path returns, so `adstream.query.render` prints both alike.
"""

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlglot
from botocore.exceptions import BotoCoreError, ClientError
from sqlglot import TokenType, exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError

from adstream.errors import AdstreamError
from adstream.lakehouse.tables import NAMESPACE, TABLE_BY_NAME
from adstream.query import Result, check_read_only
from adstream.services import aws
from adstream.settings import Settings
from adstream.shipped_queries import SHIPPED_QUERIES

log = logging.getLogger(__name__)

SOURCE_DIALECT: Final = "duckdb"
ATHENA_DIALECT: Final = "trino"
"""Athena engine version 3 is built on Trino, and speaks its SQL."""
DATA_CATALOG: Final = "AwsDataCatalog"
"""The Glue Data Catalog, as Athena names it."""
ENDED: Final = ("SUCCEEDED", "FAILED", "CANCELLED")
FIRST_POLL_DELAY_S: Final = 0.1
MAX_POLL_DELAY_S: Final = 1.0


@dataclass(frozen=True)
class AthenaSql:
    """A query in Athena's dialect.

    Attributes:
        sql: the Trino SQL, a `?` for each parameter.
        parameters: the name of each `?`, in the order they appear (a name used twice is
            listed twice: Athena binds its values by position).
    """

    sql: str
    parameters: tuple[str, ...] = ()


def athena_sql(name: str) -> AthenaSql:
    """The Athena form of the shipped query `name`."""
    return to_athena(SHIPPED_QUERIES[name].sql)


def to_athena(duckdb_sql: str) -> AthenaSql:
    """Translate one query from DuckDB's dialect to Athena's (Trino).

    Raises:
        AdstreamError: sqlglot cannot parse the SQL or cannot translate part of it, or it has
            an unnamed parameter (`?`, which would leave the order of values to chance).
    """
    try:
        tree = sqlglot.parse_one(duckdb_sql, read=SOURCE_DIALECT)
    except (ParseError, TokenError) as error:
        raise AdstreamError(f"cannot translate to Athena SQL: {_first_line(error)}") from error
    for placeholder in tree.find_all(exp.Placeholder):
        if placeholder.this is None:
            raise AdstreamError("give every parameter a name ($name) to translate it for Athena")
    _qualify_tables(tree)
    try:
        named = tree.sql(dialect=ATHENA_DIALECT, pretty=True, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as error:
        raise AdstreamError(f"cannot translate to Athena SQL: {_first_line(error)}") from error
    return _positional(named)


def _qualify_tables(tree: exp.Expr) -> None:
    """Name adstream's tables by their Glue database, as Athena finds them."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not table.db and table.name in TABLE_BY_NAME and table.name not in ctes:
            table.set("db", exp.to_identifier(NAMESPACE))


def _positional(named_sql: str) -> AthenaSql:
    """Replace each `:name` sqlglot wrote for a parameter by `?`, noting the names in order.

    Found by Trino's tokenizer, not a pattern, so text inside a string literal is never taken
    for a parameter.
    """
    tokens = sqlglot.tokenize(named_sql, read=ATHENA_DIALECT)
    pieces, names, copied_to = [], [], 0
    for colon, name in pairwise(tokens):
        if colon.token_type == TokenType.COLON and name.start == colon.end + 1:
            pieces += [named_sql[copied_to : colon.start], "?"]
            names.append(name.text)
            copied_to = name.end + 1
    pieces.append(named_sql[copied_to:])
    return AthenaSql("".join(pieces), tuple(names))


def execution_parameters(query: AthenaSql, values: Mapping[str, Any]) -> list[str]:
    """The ExecutionParameters of a run: each `?`'s value as a Trino literal, in order.

    Athena substitutes each as one constant (strings quoted, quotes doubled).

    Raises:
        ValueError: a parameter has no value.
    """
    missing = [name for name in query.parameters if name not in values]
    if missing:
        raise ValueError(f"no value for the parameter ${missing[0]}")
    return [_literal(values[name]) for name in query.parameters]


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a time without a time zone cannot be a parameter: {value}")
        return f"TIMESTAMP '{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f} UTC'"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no Athena literal for a {type(value).__name__} parameter")


def run_query(settings: Settings, sql: str) -> Result:
    """`adstream query --engine athena`: one read-only SELECT, in DuckDB's dialect, on Athena.

    The same check as the DuckDB path (one SELECT statement), then the translation, then
    `run_athena`.

    Raises:
        AdstreamError: bad SQL, not a SELECT, untranslatable, or Athena refused or failed it.
    """
    check_read_only(sql)
    query = to_athena(sql)
    if query.parameters:
        raise AdstreamError(
            f"adstream query takes no parameters (got ${query.parameters[0]}); "
            "write the values into the SQL"
        )
    return run_athena(settings, query)


def run_athena(
    settings: Settings, query: AthenaSql, values: Mapping[str, Any] | None = None
) -> Result:
    """Run a query on Athena, wait for it, and read all its rows.

    Args:
        settings: the AWS endpoint and region, `athena_workgroup`, `athena_output_location`
            (None: the workgroup's own), `athena_timeout`.
        query: the Athena SQL (from `to_athena` or `athena_sql`).
        values: the value of each named parameter of the query.

    Raises:
        AdstreamError: Athena refused the query, it failed or was cancelled (with Athena's
            reason), it did not finish within `athena_timeout`, or AWS did not answer.
    """
    athena = aws.client(settings, "athena")
    request: dict[str, Any] = {
        "QueryString": query.sql,
        "WorkGroup": settings.athena_workgroup,
        "QueryExecutionContext": {"Catalog": DATA_CATALOG, "Database": NAMESPACE},
    }
    if settings.athena_output_location is not None:
        request["ResultConfiguration"] = {"OutputLocation": settings.athena_output_location}
    if query.parameters:
        request["ExecutionParameters"] = execution_parameters(query, values or {})
    started = _call(
        settings,
        f"start the query in workgroup {settings.athena_workgroup}",
        lambda: athena.start_query_execution(**request),
    )
    execution_id = str(started["QueryExecutionId"])
    try:
        _wait(settings, athena, execution_id)
    except KeyboardInterrupt:
        _stop(athena, execution_id)
        raise
    pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=execution_id)
    result: Result = _call(
        settings, f"read the results of query {execution_id}", lambda: result_from_pages(pages)
    )
    return result


def _wait(settings: Settings, athena: Any, execution_id: str) -> None:
    timeout = settings.athena_timeout.total_seconds()
    deadline = time.monotonic() + timeout
    delay = FIRST_POLL_DELAY_S
    while True:
        answer = _call(
            settings,
            f"describe query {execution_id}",
            lambda: athena.get_query_execution(QueryExecutionId=execution_id),
        )
        execution = answer["QueryExecution"]
        state = execution["Status"]["State"]
        if state == "SUCCEEDED":
            return
        if state in ENDED:
            raise AdstreamError(failure_line(execution))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _stop(athena, execution_id)
            raise AdstreamError(
                f"Athena query {execution_id} did not finish within {timeout:g} s (it was "
                f"{state}) and was stopped; give it longer with --athena-timeout"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_POLL_DELAY_S)


def failure_line(execution: Mapping[str, Any]) -> str:
    """One line for a query that ended FAILED or CANCELLED, with Athena's reason."""
    status = execution["Status"]
    reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage")
    because = " ".join(str(reason).split()) if reason else "Athena gave no reason"
    return f"Athena query {execution['QueryExecutionId']} {status['State']}: {because}"


def _stop(athena: Any, execution_id: str) -> None:
    try:
        athena.stop_query_execution(QueryExecutionId=execution_id)
    except (BotoCoreError, ClientError) as error:
        log.warning("could not stop Athena query %s: %s", execution_id, aws.describe(error))


def _call(settings: Settings, what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as error:
        raise AdstreamError(f"Athena could not {what}: {aws.describe(error)}") from error
    except BotoCoreError as error:
        raise aws.unreachable(settings, error) from error


def result_from_pages(pages: Iterable[Mapping[str, Any]]) -> Result:
    """The rows of GetQueryResults pages, each value converted by its column's type.

    Athena repeats the column names as the first row of the first page of a SELECT's results;
    that row is dropped (as PyAthena does: when it equals the names).
    """
    columns: list[str] = []
    converters: list[Callable[[str], Any]] = []
    rows: list[tuple[Any, ...]] = []
    for number, page in enumerate(pages):
        result_set = page["ResultSet"]
        if number == 0:
            info = result_set["ResultSetMetadata"]["ColumnInfo"]
            columns = [column["Name"] for column in info]
            converters = [_converter(column) for column in info]
        texts = [[cell.get("VarCharValue") for cell in row["Data"]] for row in result_set["Rows"]]
        if number == 0 and texts and texts[0] == columns:
            texts = texts[1:]
        rows.extend(
            tuple(
                None if text is None else convert(text)
                for convert, text in zip(converters, row, strict=True)
            )
            for row in texts
        )
    return Result(columns, rows)


_INTEGER_TYPES: Final = ("tinyint", "smallint", "integer", "int", "bigint")
_FLOAT_TYPES: Final = ("double", "real", "float")


def _converter(column: Mapping[str, Any]) -> Callable[[str], Any]:
    """How to read a value of this column from Athena's text (varchar and the rest: as is)."""
    kind = str(column["Type"]).lower()
    base = re.split(r"[( ]", kind, maxsplit=1)[0]
    if base in _INTEGER_TYPES:
        return int
    if base in _FLOAT_TYPES:
        return float
    if base == "decimal":
        return Decimal
    if base == "boolean":
        return lambda text: text == "true"
    if base == "date":
        return date.fromisoformat
    if base == "timestamp":
        return _zoned_timestamp if kind.endswith("with time zone") else datetime.fromisoformat
    return str


def _zoned_timestamp(text: str) -> datetime:
    """`2026-11-01 09:10:00.000 UTC` (or a zone name, or an offset) as an aware UTC time."""
    local, _, zone = text.rpartition(" ")
    if zone[:1] in ("+", "-"):
        return datetime.fromisoformat(local + zone).astimezone(UTC)
    tz = UTC if zone in ("UTC", "Z") else ZoneInfo(zone)
    return datetime.fromisoformat(local).replace(tzinfo=tz).astimezone(UTC)


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split("\n")[:1]).strip()
