"""Properties of the `adstream query` guard, over the dataset of test_dashboard_api.

Whatever SQL a user types, `run_query` either runs one read-only SELECT over the tables or
refuses with one line (an AdstreamError): no statement writes, reads a file, reaches the network,
installs an extension, changes a setting or sees a Python object of the process, and no other
exception escapes. Statements are built from dangerous fragments dressed up with random
identifiers, case, whitespace and comments, or are random text; Hypothesis is seeded, so every
run tries the same examples.
"""

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Final

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adstream.query
from adstream.errors import AdstreamError
from adstream.lakehouse.catalog import lakehouse_dir
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    IMPRESSIONS,
    REJECTED_EVENTS,
    TABLE_BY_NAME,
    UNMATCHED_CLICKS,
)
from adstream.query import run_query
from adstream.settings import Settings, load_settings
from tests.unit.test_dashboard_api import (
    CLICK_TIMES,
    METRICS,
    REJECTED,
    rolled_up,
    write_known_dataset,
)

PROPERTY: Final = settings(derandomize=True, database=None, deadline=None, max_examples=150)
"""Seeded and bounded: the same examples on every run, within the unit tests' time."""
FEW: Final = settings(PROPERTY, max_examples=40)
"""For the properties whose every example reads the tables (some 100 ms each)."""

LEAKED: Final = "leaked_rows"
"""An Arrow table of the process, put among the query module's globals by `sandbox`."""

ROWS: Final = {
    CAMPAIGN_METRICS_MINUTE: len(METRICS),
    DASHBOARD_METRICS_MINUTE: len(rolled_up()["minute"]),
    ENRICHED_AD_DATA: len(CLICK_TIMES),
    REJECTED_EVENTS: len(REJECTED),
    IMPRESSIONS: 0,
    UNMATCHED_CLICKS: 0,
}
"""How many rows each table of the dataset has."""


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("guard"))
    write_known_dataset(settings)
    return settings


class _Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # answers with data, so a query that reached it would succeed
        self.requests.append(self.path)
        body = b"secret\n42\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """A web server on this machine that records every request: the network a query may reach."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Sandbox:
    """Everything a query must leave alone, and what it could try to reach."""

    roots: tuple[Path, ...]
    """The data directory; the test's folder, with HOME (where DuckDB would install extensions),
    the file outside the data directory, and the working directory (tests/conftest.py)."""
    files: tuple[Path, ...]
    """Real files: the catalog, table metadata and data, a file outside the data directory."""
    url: str

    def fingerprint(self) -> dict[str, str]:
        """Every file and folder under the roots, with a hash of each file's content."""
        return {
            str(path): "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for root in self.roots
            for path in sorted(root.rglob("*"))
        }


@pytest.fixture
def sandbox(
    lakehouse: Settings,
    web_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sandbox]:
    """A HOME, a secret file and a Python object of this test's own; no request on the way out."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("secret\n42\n")
    monkeypatch.setattr(adstream.query, LEAKED, pa.table({"secret": [42]}), raising=False)
    lakehouse_files = sorted(lakehouse_dir(lakehouse).rglob("*.*"))
    files = (
        lakehouse_dir(lakehouse) / "catalog.db",
        *(path for path in lakehouse_files if path.suffix in {".json", ".parquet", ".avro"}),
        secret,
    )
    _Recorder.requests.clear()
    yield Sandbox((lakehouse.data_dir, tmp_path), files, web_server)
    assert _Recorder.requests == [], "a query reached the network"


def refusal(settings: Settings, sql: str) -> str:
    """The one line `run_query` refuses this SQL with (any other exception fails the test)."""
    with pytest.raises(AdstreamError) as error:
        run_query(settings, sql)
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    return message


WRITES: Final = (
    "INSERT INTO {table} SELECT * FROM {table}",
    "INSERT INTO {table} DEFAULT VALUES",
    "UPDATE {table} SET {ident} = NULL",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
    "CREATE TABLE {ident} AS SELECT * FROM {table}",
    "CREATE OR REPLACE TABLE {table} AS SELECT 1 AS x",
    "CREATE VIEW {ident} AS SELECT * FROM {table}",
    "CREATE TEMP TABLE {ident} (x INTEGER)",
    "CREATE MACRO {ident}(x) AS x",
    "CREATE SCHEMA {ident}",
    "CREATE TYPE {ident} AS ENUM ('a')",
    "CREATE PERSISTENT SECRET {ident} (TYPE s3, KEY_ID 'k', SECRET 's')",
    "DROP TABLE {table}",
    "ALTER TABLE {table} ADD COLUMN {ident} INTEGER",
    "ALTER TABLE {table} RENAME TO {ident}",
    "COMMENT ON TABLE {table} IS 'x'",
    "COPY {table} TO '{out}'",
    "COPY (SELECT * FROM {table}) TO '{out}' (FORMAT parquet)",
    "COPY {table} FROM '{file}'",
    "EXPORT DATABASE '{dir}'",
    "IMPORT DATABASE '{dir}'",
    "ATTACH '{file}' AS {ident}",
    "ATTACH '{out}' AS {ident}",
    "DETACH {ident}",
    "USE {ident}",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "BEGIN TRANSACTION",
    "PREPARE {ident} AS SELECT 1",
    "EXECUTE {ident}",
    "CALL checkpoint()",
)
FILES: Final = (
    "SELECT * FROM read_csv('{file}')",
    "SELECT * FROM read_csv_auto('{file}')",
    "SELECT * FROM read_parquet('{file}')",
    "SELECT * FROM read_json('{file}')",
    "SELECT * FROM read_ndjson('{file}')",
    "SELECT * FROM read_text('{file}')",
    "SELECT * FROM read_blob('{file}')",
    "SELECT * FROM parquet_metadata('{file}')",
    "SELECT * FROM sniff_csv('{file}')",
    "SELECT * FROM glob('{dir}/*')",
    "SELECT * FROM '{file}'",
    "FROM '{file}'",
    "SELECT * FROM read_csv(['{file}', '{out}'])",
    "SELECT count(*) FROM {table}, read_text('{file}')",
    "SELECT * FROM {table} WHERE EXISTS (SELECT * FROM read_blob('{file}'))",
    "DESCRIBE SELECT * FROM read_csv('{file}')",
    "SUMMARIZE SELECT * FROM read_csv('{file}')",
    "SELECT * FROM query('SELECT * FROM read_text(''{file}'')')",
    "SELECT * FROM query_table('{file}')",
    "SELECT * FROM iceberg_scan('{dir}')",
    "SELECT * FROM sqlite_scan('{file}', 'iceberg_tables')",
    "SELECT * FROM read_xlsx('{file}')",
)
NETWORK: Final = (
    "SELECT * FROM read_csv('{url}/data.csv')",
    "SELECT * FROM read_parquet('{url}/data.parquet')",
    "SELECT * FROM read_json('{url}/data.json')",
    "SELECT * FROM read_text('{url}/')",
    "SELECT * FROM '{url}/data.csv'",
    "SELECT * FROM read_parquet('s3://adstream-lakehouse/warehouse/{ident}.parquet')",
    "SELECT * FROM iceberg_scan('{url}/warehouse')",
    "ATTACH '{url}/lake.duckdb' AS {ident}",
    "COPY {table} TO '{url}/upload.csv'",
)
EXTENSIONS: Final = (
    "INSTALL httpfs",
    "FORCE INSTALL iceberg",
    "INSTALL '{file}'",
    "LOAD httpfs",
    "LOAD '{file}'",
    "UPDATE EXTENSIONS",
)
SETTINGS: Final = (
    "SET enable_external_access = true",
    "SET GLOBAL enable_external_access = true",
    "SET lock_configuration = false",
    "SET python_enable_replacements = true",
    "SET allowed_directories = ['{dir}']",
    "SET TimeZone = 'Europe/Berlin'",
    "SET VARIABLE {ident} = 1",
    "SET home_directory = '{dir}'",
    "RESET enable_external_access",
    "RESET ALL",
    "PRAGMA enable_external_access",
    "PRAGMA threads = 1",
    "WITH s AS (SET enable_external_access = true) SELECT 1",
    "SELECT * FROM query('SET enable_external_access = true')",
)
PYTHON_OBJECTS: Final = (
    "SELECT * FROM {leaked}",
    "SELECT * FROM query_table('{leaked}')",
    "SELECT * FROM query('SELECT * FROM {leaked}')",
    "SELECT * FROM {table} UNION ALL BY NAME FROM query('FROM {leaked}')",
)
WRAPPERS: Final = (
    "{}",
    "{};",
    "SELECT 1; {}",
    "{}; SELECT 1",
    "SELECT * FROM {{table}}; {}",
    "EXPLAIN {}",
    "EXPLAIN ANALYZE {}",
    "WITH q AS ({}) SELECT * FROM q",
    "SELECT * FROM ({})",
)
"""Ways to smuggle a fragment: a second statement, a CTE, a subquery, EXPLAIN."""

_TOKEN: Final = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\w+|\s+|.""", re.DOTALL)
SEPARATORS: Final = (" ", "  ", "\n", "\t", "\r\n", " /* note */ ", "/**/", " -- note\n")

identifiers = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_$]{0,11}", fullmatch=True),
    st.text(min_size=1, max_size=8).map(lambda text: '"' + text.replace('"', '""') + '"'),
)
"""Plain names and quoted names of any characters (a quote doubled)."""


def dressed(sql: str, vary: Callable[[str], bool]) -> st.SearchStrategy[str]:
    """The same statement with other whitespace and comments, and words in another case.

    Quoted strings and identifiers stay as they are; a word changes case only if `vary` says so.
    """
    tokens = _TOKEN.findall(sql)

    def token(text: str) -> st.SearchStrategy[str]:
        if text.isspace():
            return st.sampled_from(SEPARATORS)
        if re.fullmatch(r"\w+", text) and vary(text):
            return st.sampled_from((text, text.lower(), text.upper(), text.swapcase()))
        return st.just(text)

    ends = st.sampled_from(("", " ", "\n", "/* note */ ", "-- note\n"))
    return st.tuples(ends, *map(token, tokens), st.sampled_from(("", " ", ";", "\n-- note"))).map(
        "".join
    )


def dangerous_statements(sandbox: Sandbox) -> st.SearchStrategy[str]:
    """A fragment of one kind or another, in a wrapper, with random names and dress."""
    fragments = st.sampled_from(
        (*WRITES, *FILES, *NETWORK, *EXTENSIONS, *SETTINGS, *PYTHON_OBJECTS)
    )
    files = st.sampled_from(sandbox.files)
    values = st.fixed_dictionaries(
        {
            "table": st.sampled_from(sorted(TABLE_BY_NAME)),
            "ident": identifiers,
            "file": st.one_of(files.map(str), files.map(lambda path: f"{path}.missing")),
            "dir": st.sampled_from([str(path.parent) for path in sandbox.files]),
            "out": st.sampled_from(
                [
                    "out.csv",  # the working directory
                    str(sandbox.files[0].parent / "out.parquet"),
                    str(sandbox.files[1]),  # over a metadata file
                ]
            ),
            "url": st.just(sandbox.url),
            "leaked": st.just(LEAKED),
        }
    )
    statements = st.builds(
        lambda wrapper, fragment, value: wrapper.format(fragment).format(**value),
        st.sampled_from(WRAPPERS),
        fragments,
        values,
    )
    return statements.flatmap(lambda sql: dressed(sql, vary=lambda word: True))


def test_no_dangerous_statement_runs(lakehouse: Settings, sandbox: Sandbox) -> None:
    """No write, file, network, extension, setting or Python object: each is one clear line.

    And nothing under the data directory, HOME or the working directory changes, and the web
    server sees no request.
    """
    before = sandbox.fingerprint()

    @PROPERTY
    @given(dangerous_statements(sandbox))
    def refused(sql: str) -> None:
        refusal(lakehouse, sql)
        assert sandbox.fingerprint() == before

    refused()


def test_a_refusal_says_nothing_about_the_file_system(
    lakehouse: Settings, sandbox: Sandbox
) -> None:
    """Reading a file that exists is refused with the same line as one that does not.

    Otherwise the message would tell whether (and what kind of) a file is at a path.
    """

    @FEW
    @given(
        st.sampled_from([fragment for fragment in FILES if "{file}" in fragment]),
        st.sampled_from(sandbox.files),
        st.sampled_from(sorted(TABLE_BY_NAME)),
    )
    def same_line(fragment: str, path: Path, table: str) -> None:
        missing = path.with_name(f"missing-{path.name}")
        existing_sql = fragment.format(file=path, out=path, table=table)
        missing_sql = fragment.format(file=missing, out=missing, table=table)
        assert refusal(lakehouse, existing_sql) == refusal(lakehouse, missing_sql).replace(
            str(missing), str(path)
        )

    same_line()


SELECTS: Final = (
    "SELECT campaign_id, sum(clicks) FROM campaign_metrics_minute WHERE impressions > 1 "
    "GROUP BY ALL ORDER BY 2 DESC LIMIT 3",
    "SELECT count(*) AS n FROM rejected_events UNION ALL SELECT 1 FROM enriched_ad_data",
    "SELECT reason, min(rejected_at) FROM rejected_events WHERE stream = 'clicks' GROUP BY reason",
    "SELECT CAST(NULL AS VARCHAR), INTERVAL 1 DAY, [0, -1]::INTEGER[]",
)
VOCABULARY: Final = tuple(
    sorted(
        {
            token
            for sql in (*WRITES, *FILES, *NETWORK, *EXTENSIONS, *SETTINGS, *SELECTS)
            for token in _TOKEN.findall(sql)
            if not token.isspace()
        }
        | {"?", "$1", "1000000000", "2147483647", "-", "YEAR"}
    )
)
"""The words, names, literals and symbols of the statements above, and a few more."""


@st.composite
def mutated_selects(draw: st.DrawFn) -> str:
    """A valid SELECT with a few of its tokens replaced by others of their kind, or dropped."""
    tokens = _TOKEN.findall(draw(st.sampled_from(SELECTS)))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(tokens) - 1))
        kind = _kind(tokens[position])
        others = [token for token in VOCABULARY if _kind(token) == kind]
        tokens[position] = draw(st.sampled_from(["", *others]))
    return "".join(tokens)


def _kind(token: str) -> str:
    """Word, number, string, quoted name, space or symbol."""
    if not token or token.isspace():
        return "space"
    if token[0].isalpha() or token[0] == "_":
        return "word"
    return "number" if token[0].isdigit() else token[0] if token[0] in "'\"" else "other"


def test_random_text_runs_read_only_or_is_refused(lakehouse: Settings, sandbox: Sandbox) -> None:
    """Any text either returns rows or is refused with one line, and changes no file."""
    before = sandbox.fingerprint()

    @PROPERTY
    @given(
        st.one_of(
            st.text(max_size=60),
            st.lists(st.sampled_from(VOCABULARY), max_size=14).map(" ".join),
            mutated_selects(),
        )
    )
    def read_only_or_refused(sql: str) -> None:
        try:
            result = run_query(lakehouse, sql)
        except AdstreamError as error:
            assert len(str(error).splitlines()) == 1, str(error)
        else:
            assert all(len(row) == len(result.columns) for row in result.rows)
        assert sandbox.fingerprint() == before

    read_only_or_refused()
    assert [run_query(lakehouse, f"SELECT count(*) FROM {table}").rows for table in ROWS] == [
        [(rows,)] for rows in ROWS.values()
    ]


COLUMN: Final = {
    "campaign_id": 1,
    "publisher_id": 2,
    "platform_category": 3,
    "impressions": 4,
    "premium_impressions": 5,
    "spend": 6,
    "clicks": 7,
    "click_revenue": 8,
}
"""Where each column of campaign_metrics_minute is in test_dashboard_api.METRICS."""
DIMENSIONS: Final = ("campaign_id", "publisher_id", "platform_category")
MONEY_COLUMNS: Final = ("spend", "click_revenue")
AGGREGATES: Final[dict[str, Callable[[list[Any]], Any]]] = {
    "sum": sum,
    "min": min,
    "max": max,
    "count": len,
}
COMPARISONS: Final[dict[str, Callable[[int, int], bool]]] = {
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
}


def metric_value(row: tuple[Any, ...], column: str) -> Any:
    value = row[COLUMN[column]]
    return Decimal(value) if column in MONEY_COLUMNS else value


@st.composite
def grouped_selects(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    """A GROUP BY over campaign_metrics_minute, and its rows worked out from METRICS."""
    dimension = draw(st.sampled_from(DIMENSIONS))
    aggregate = draw(st.sampled_from(sorted(AGGREGATES)))
    measure = draw(st.sampled_from([column for column in COLUMN if column not in DIMENSIONS]))
    by = draw(st.sampled_from(["impressions", "clicks"]))
    comparison = draw(st.sampled_from(sorted(COMPARISONS)))
    threshold = draw(st.sampled_from([-1, 0, 8, 200, 500, 1000, 1001]))
    quote = draw(st.sampled_from(["", '"']))
    sql = (
        f"SELECT {quote}{dimension}{quote} AS id, {aggregate}({measure}) AS value "
        f"FROM {CAMPAIGN_METRICS_MINUTE} WHERE {by} {comparison} {threshold} "
        f"GROUP BY id ORDER BY id"
    )
    groups: dict[str, list[Any]] = {}
    for row in METRICS:
        if COMPARISONS[comparison](metric_value(row, by), threshold):
            groups.setdefault(row[COLUMN[dimension]], []).append(metric_value(row, measure))
    expected = [(key, AGGREGATES[aggregate](values)) for key, values in sorted(groups.items())]
    # Table names keep their case: `run_query` registers tables under the names as written.
    return draw(dressed(sql, vary=lambda word: word not in TABLE_BY_NAME)), expected


@FEW
@given(grouped_selects())
def test_valid_selects_return_exact_rows(
    lakehouse: Settings, query: tuple[str, list[tuple[Any, ...]]]
) -> None:
    """A SELECT over the tables, however it is spaced and cased, returns the rows of the data.

    Only the table names keep their case (see `grouped_selects`).
    """
    sql, expected = query
    assert run_query(lakehouse, sql).rows == expected


@settings(PROPERTY, max_examples=50)
@given(st.text(alphabet="ab \r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", min_size=1, max_size=6))
def test_a_refusal_is_one_line_whatever_the_sql_quotes(lakehouse: Settings, name: str) -> None:
    """DuckDB quotes the SQL in its messages: a line break there (\\r, \\x85...) is no new line."""
    message = refusal(lakehouse, f'SELECT "{name}"')
    assert message.startswith("query failed: Binder Error: Referenced column ")


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("INTERVAL 1000000000 DAY", "1000000000 days"),
        ("to_months(2147483647)", "178956970 years 7 months"),
        ("[INTERVAL 3000000 YEAR]", "[3000000 years]"),
    ],
)
def test_a_value_python_cannot_hold_is_one_clear_line(
    lakehouse: Settings, expression: str, text: str
) -> None:
    """An interval beyond Python's timedelta is refused (it was an OverflowError traceback).

    The line says what to do, and doing it shows the value.
    """
    message = refusal(lakehouse, f"SELECT {expression}")
    assert message.startswith("query failed: a value does not fit Python's types (")
    assert message.endswith("); cast it to VARCHAR")
    assert run_query(lakehouse, f"SELECT ({expression})::VARCHAR").rows == [(text,)]
