"""The shipped queries: each defined once, run by DuckDB, translated for Athena, quoted by the docs.

Athena itself is not here (no AWS on this machine): its form of each query is checked by
sqlglot's Trino parser and by Athena's documented rules for parameters, not by Athena.
"""

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from adstream.athena import AthenaSql, athena_sql, execution_parameters, to_athena
from adstream.cli import cli
from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import ensure_tables
from adstream.lakehouse.tables import NAMESPACE, TABLE_BY_NAME
from adstream.query import Scan, check_read_only, run_fixed_query
from adstream.settings import PROJECT_ROOT, Settings, load_settings
from adstream.shipped_queries import SHIPPED_QUERIES, ShippedQuery

QUERIES = list(SHIPPED_QUERIES.values())
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
VALUES = {datetime: datetime(2026, 11, 1, 9, 0, tzinfo=UTC), int: 10}
"""A value of each parameter type."""


def tables_read(sql: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {table.name for table in tree.find_all(exp.Table)} - ctes


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.name)
def test_each_query_is_one_select_declaring_exactly_its_parameters(query: ShippedQuery) -> None:
    check_read_only(query.sql)
    tree = sqlglot.parse_one(query.sql, read="duckdb")
    used = {placeholder.name for placeholder in tree.find_all(exp.Placeholder)}
    assert used == set(query.parameters)
    assert tables_read(query.sql) <= TABLE_BY_NAME.keys()


@pytest.fixture(scope="module")
def empty_tables(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("shipped"))
    ensure_tables(settings)
    return settings


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.name)
def test_duckdb_runs_each_query_over_the_real_tables(
    empty_tables: Settings, query: ShippedQuery
) -> None:
    """Every column and function a query names exists (the dashboard tests check the numbers)."""
    values = {name: VALUES[kind] for name, kind in query.parameters.items()}
    scans = {name: Scan() for name in tables_read(query.sql)}
    result = run_fixed_query(empty_tables, query.sql, values, scans)
    assert result.columns


def athena_tree(athena: AthenaSql) -> exp.Expr:
    return sqlglot.parse_one(athena.sql, read="trino", error_level=ErrorLevel.RAISE)


@pytest.mark.parametrize("query", QUERIES, ids=lambda query: query.name)
def test_each_query_translates_to_sql_trino_parses(query: ShippedQuery) -> None:
    athena = athena_sql(query.name)
    tree = athena_tree(athena)
    placeholders = list(tree.find_all(exp.Placeholder))
    assert len(placeholders) == len(athena.parameters)
    assert set(athena.parameters) == set(query.parameters)
    # Athena accepts execution parameters in WHERE clauses only.
    assert all(placeholder.find_ancestor(exp.Where) for placeholder in placeholders)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        assert table.name in ctes or (table.db, table.name in TABLE_BY_NAME) == (NAMESPACE, True)


@pytest.mark.parametrize(
    ("duckdb_sql", "trino_sql"),
    [
        # DuckDB's / divides as floats; Trino's truncates integers.
        (
            "SELECT sum(clicks) / sum(impressions) AS ctr FROM campaign_metrics_minute",
            "SELECT CAST(SUM(clicks) AS DOUBLE) / SUM(impressions) AS ctr "
            "FROM ad_analytics.campaign_metrics_minute",
        ),
        (
            "SELECT click_time - INTERVAL 10 MINUTE AS shown FROM enriched_ad_data",
            "SELECT click_time - INTERVAL '10' MINUTE AS shown FROM ad_analytics.enriched_ad_data",
        ),
        (
            "SELECT date_trunc('minute', click_time) AS minute FROM enriched_ad_data",
            "SELECT DATE_TRUNC('MINUTE', click_time) AS minute FROM ad_analytics.enriched_ad_data",
        ),
        (
            "SELECT bid_price::DECIMAL(38, 9) AS bid FROM impressions",
            "SELECT CAST(bid_price AS DECIMAL(38, 9)) AS bid FROM ad_analytics.impressions",
        ),
        # %M is the minute in DuckDB's strftime, the month's name in Trino's date_format.
        (
            "SELECT strftime(minute, '%H:%M') AS hhmm FROM campaign_metrics_minute",
            "SELECT DATE_FORMAT(minute, '%H:%i') AS hhmm FROM ad_analytics.campaign_metrics_minute",
        ),
        # Trino has no ILIKE.
        (
            "SELECT count(*) AS n FROM impressions WHERE platform ILIKE 'ios%'",
            "SELECT COUNT(*) AS n FROM ad_analytics.impressions "
            "WHERE LOWER(platform) LIKE LOWER('ios%')",
        ),
        (
            "SELECT count(*) AS n FROM impressions WHERE event_time >= $since "
            "AND campaign_id = $campaign",
            "SELECT COUNT(*) AS n FROM ad_analytics.impressions WHERE event_time >= ? "
            "AND campaign_id = ?",
        ),
        # A CTE named like a table is not qualified; a parameter-like string is not one.
        (
            "WITH impressions AS (SELECT ':since' AS label) SELECT label FROM impressions",
            "WITH impressions AS ( SELECT ':since' AS label ) SELECT label FROM impressions",
        ),
        ("SELECT * FROM ad_analytics.impressions", "SELECT * FROM ad_analytics.impressions"),
    ],
)
def test_translations_where_duckdb_and_trino_differ(duckdb_sql: str, trino_sql: str) -> None:
    athena = to_athena(duckdb_sql)
    assert " ".join(athena.sql.split()) == trino_sql
    athena_tree(athena)


def test_parameters_are_listed_in_the_order_athena_binds_them() -> None:
    summary = athena_sql("dashboard_summary")  # the subquery's window comes first
    assert summary.parameters == ("since", "until", "since", "until")
    top = athena_sql("dashboard_top_campaigns")
    values = {
        "since": datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
        "until": datetime(2026, 11, 1, 10, 0, 0, 250_000, tzinfo=UTC),
        "limit": 10,
    }
    assert execution_parameters(top, values) == [
        "TIMESTAMP '2026-11-01 09:00:00.000000 UTC'",
        "TIMESTAMP '2026-11-01 10:00:00.250000 UTC'",
        "10",
    ]
    quoted = to_athena("SELECT * FROM impressions WHERE campaign_id = $campaign")
    assert execution_parameters(quoted, {"campaign": "it's"}) == ["'it''s'"]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM impressions WHERE campaign_id = ?", "give every parameter a name"),
        ("SELECT FROM WHERE", "cannot translate to Athena SQL: "),
        ("SELECT 'unterminated", "cannot translate to Athena SQL: "),
    ],
)
def test_refuses_what_it_cannot_translate(sql: str, message: str) -> None:
    with pytest.raises(AdstreamError, match=f"^{re.escape(message)}"):
        to_athena(sql)


def documented_queries(path: Path) -> list[str]:
    """The SQL of every ```sql block and every `adstream query "SQL"` example in a markdown file.

    Commands are read from code blocks and inline code; the command's own parser reads each, so
    an example with a wrong flag fails too.
    """
    query_command = cli.commands["query"]
    found, block, language = [], None, ""
    commands = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if block is not None and language == "sql":
                found.append("\n".join(block))
            block, language = (None, "") if block is not None else ([], line[3:].strip())
        elif block is not None:
            block.append(line)
            if "adstream query " in line:
                commands.append(line)
        else:
            commands += re.findall(r"`([^`]*adstream query [^`]*)`", line)
    for command in commands:
        words = shlex.split(command, comments=True)
        try:
            context = query_command.make_context("query", words[words.index("adstream") + 2 :])
        except click.MissingParameter:  # the command named, without SQL: not an example
            continue
        found.append(context.params["sql"])
    return found


def test_every_query_in_the_docs_is_a_shipped_query() -> None:
    def normalised(sql: str) -> str:
        return " ".join(sql.split())

    shipped = {normalised(query.sql): query.name for query in QUERIES} | {
        normalised(athena_sql(name).sql): name for name in SHIPPED_QUERIES
    }
    documented = {str(path.relative_to(PROJECT_ROOT)): documented_queries(path) for path in DOCS}
    assert sum(map(len, documented.values())) >= 3  # the extraction finds the README's
    unknown = [
        (path, sql)
        for path, queries in documented.items()
        for sql in queries
        if normalised(sql) not in shipped
    ]
    assert not unknown, "define these in adstream/shipped_queries.py, or quote a definition"
