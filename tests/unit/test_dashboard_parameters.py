"""Every parameter of the dashboard's API, with any value, over the dataset of test_dashboard_api.

Whatever a request carries (text, unicode, huge or negative numbers, floats, nothing, a
parameter twice, parameters the API does not know), the answer is 200 with a body of the
endpoint's model whose numbers are those of its window, or a 4xx whose JSON names what was
wrong: never a 500, never a traceback. The only SQL that runs is the shipped dashboard queries,
with typed values bound. Hypothesis is seeded, so every run tries the same requests.

That the dashboard binds 127.0.0.1 by default is tested in test_dashboard_api (the address of
a taken port, and the URL `adstream dashboard` prints).
"""

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter

from adstream.dashboard import queries
from adstream.dashboard.app import ASSETS, Config, create_app
from adstream.dashboard.queries import (
    MAX_WINDOW_MINUTES,
    MIN_WINDOW_MINUTES,
    PlatformMix,
    Rejected,
    Summary,
    TimeSeries,
    Top,
)
from adstream.query import Result, Scan
from adstream.settings import Settings, load_settings
from adstream.shipped_queries import SHIPPED_QUERIES, ShippedQuery
from tests.unit.test_dashboard_api import METRICS, REJECTED, UNTIL, write_known_dataset

PROPERTY: Final = settings(derandomize=True, database=None, deadline=None, max_examples=200)
"""Seeded and bounded: the same requests on every run, within the unit tests' time."""

WINDOW: Final = ("minutes", "until")
ENDPOINTS: Final[dict[str, tuple[type[BaseModel], tuple[str, ...]]]] = {
    "/api/config": (Config, ()),
    "/api/summary": (Summary, WINDOW),
    "/api/timeseries": (TimeSeries, WINDOW),
    "/api/top": (Top, (*WINDOW, "dimension", "limit")),
    "/api/platforms": (PlatformMix, WINDOW),
    "/api/rejected": (Rejected, WINDOW),
}
"""Each endpoint of the data API: the model of its body, the parameters it takes."""
DASHBOARD_QUERIES: Final = {
    query.sql: query for query in SHIPPED_QUERIES.values() if query.name.startswith("dashboard_")
}


@pytest.fixture(scope="module")
def executed() -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
    """Every SQL statement the dashboard runs, with its parameters (the real query runs)."""
    statements: list[tuple[str, Mapping[str, Any]]] = []
    run = queries.run_fixed_query

    def recorded(
        settings: Settings, sql: str, parameters: Mapping[str, Any], scans: Mapping[str, Scan]
    ) -> Result:
        statements.append((sql, parameters))
        return run(settings, sql, parameters, scans)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(queries, "run_fixed_query", recorded)
        yield statements


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, executed: list[tuple[str, Mapping[str, Any]]]
) -> Iterator[TestClient]:
    lakehouse = load_settings(data_dir=tmp_path_factory.mktemp("parameters"))
    write_known_dataset(lakehouse)
    app = create_app(lakehouse)
    # What a browser gets: a 500 is a response here, not an exception in the test.
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as test:
        yield test


offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
zones = st.none() | st.just(UTC) | offsets
near_the_data = st.one_of(
    st.just(UNTIL),
    # Some time around the dataset's hour, as a local time somewhere, or naive.
    st.datetimes(datetime(2026, 11, 1, 8), datetime(2026, 11, 1, 11), timezones=zones).map(
        datetime.isoformat
    ),
)
untils = st.one_of(
    near_the_data,
    st.datetimes(timezones=zones).map(datetime.isoformat),  # years 1 to 9999
    st.dates().map(date.isoformat),
    st.integers(-(10**14), 10**14).map(str),  # Unix seconds or milliseconds
)
numbers = st.one_of(
    st.integers().map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(str),  # nan, inf, -0.0, 1e+300
    st.decimals(allow_nan=False).map(str),
)
SQL: Final = (
    "1; DROP TABLE campaign_metrics_minute",
    "campaign' OR '1'='1",
    "campaign_id FROM impressions; --",
    "60) UNION SELECT * FROM read_csv('/etc/passwd') --",
    "$since",
    "?",
    "2026-11-01T10:00:00Z'; DELETE FROM rejected_events; --",
)
anything = st.one_of(
    st.text(max_size=40),
    numbers,
    untils,
    st.sampled_from(("", " ", "campaign", "publisher", "CAMPAIGN", "true", "null", *SQL)),
)
VALID: Final[dict[str, st.SearchStrategy[str]]] = {
    "minutes": st.integers(5, 1440).map(str),
    "until": near_the_data,
    "dimension": st.sampled_from(("campaign", "publisher")),
    "limit": st.integers(1, 50).map(str),
}
ALL_PARAMETERS: Final = tuple(VALID)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """An endpoint and its query: each parameter absent, once or twice, plus unknown ones.

    Half the queries are well formed (around the data), so that many answers have numbers.
    """
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    well_formed = draw(st.booleans())
    query: list[tuple[str, str]] = []
    for name in ALL_PARAMETERS:  # also those the endpoint does not take: unknown to it
        values = VALID[name] if well_formed else st.one_of(VALID[name], anything)
        query += [(name, value) for value in draw(st.lists(values, max_size=2))]
    if not well_formed:
        unknown = st.text(min_size=1, max_size=10).filter(lambda name: name not in VALID)
        query += draw(st.lists(st.tuples(unknown, anything), max_size=2))
    return path, draw(st.permutations(query))


def last(query: list[tuple[str, str]], name: str) -> str | None:
    """The value of a parameter given more than once is its last one."""
    values = [value for key, value in query if key == name]
    return values[-1] if values else None


def parsed(value: str, kind: type[Any]) -> Any:
    """A valid value as FastAPI parses it (pydantic, from a string, not strict)."""
    return TypeAdapter(kind).validate_python(value)


def expected_until(value: str) -> datetime:
    """Where the window of a valid `until` ends: UTC unless the value says otherwise."""
    moment: datetime = parsed(value, datetime)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def in_window(moment: datetime, window: Mapping[str, Any]) -> bool:
    since, until = (datetime.fromisoformat(window[end]) for end in ("since", "until"))
    return since <= moment < until


def assert_answers_the_request(
    path: str, query: list[tuple[str, str]], body: dict[str, Any]
) -> None:
    """A 200 body: the endpoint's model, the window asked for, the numbers of that window."""
    model, _ = ENDPOINTS[path]
    model.model_validate(body)
    if path == "/api/config":
        assert body == {"refresh_seconds": 5.0, "default_window": 60}
        return
    window = body["window"]
    minutes, until = last(query, "minutes"), last(query, "until")
    assert window["minutes"] == (60 if minutes is None else parsed(minutes, int))
    ends = (datetime.fromisoformat(window[end]) for end in ("until", "since"))
    assert next(ends) - next(ends) == timedelta(minutes=window["minutes"])
    if until is not None:
        assert datetime.fromisoformat(window["until"]) == expected_until(until)
    impressions = sum(row[4] for row in METRICS if in_window(row[0], window))
    if path == "/api/summary":
        assert body["impressions"] == impressions
    elif path == "/api/timeseries":
        assert len(body["points"]) == window["minutes"]
        assert sum(point["impressions"] for point in body["points"]) == impressions
    elif path == "/api/platforms":
        assert sum(row["impressions"] for row in body["rows"]) == impressions
    elif path == "/api/top":
        assert body["dimension"] == (last(query, "dimension") or "campaign")
        assert len(body["rows"]) <= parsed(last(query, "limit") or "10", int)
    else:
        assert body["total"] == sum(1 for row in REJECTED if in_window(row[0], window))


def assert_names_the_bad_parameter(path: str, query: list[tuple[str, str]], body: Any) -> None:
    """A 422 body: FastAPI's list of errors, each naming a parameter of the request."""
    _, taken = ENDPOINTS[path]
    assert isinstance(body["detail"], list) and body["detail"]
    for error in body["detail"]:
        assert error["loc"][0] == "query"
        assert error["loc"][1] in taken
        assert error["loc"][1] in {name for name, _ in query}
        assert isinstance(error["msg"], str) and error["msg"]


def assert_only_shipped_sql(statements: list[tuple[str, Mapping[str, Any]]]) -> None:
    """Each statement is a shipped dashboard query, its values bound with the declared types."""
    for sql, parameters in statements:
        assert sql in DASHBOARD_QUERIES, f"not a shipped query: {sql}"
        shipped: ShippedQuery = DASHBOARD_QUERIES[sql]
        assert parameters.keys() == shipped.parameters.keys()
        for name, value in parameters.items():
            assert isinstance(value, shipped.parameters[name]), (name, value)


def assert_answers(
    client: TestClient,
    executed: list[tuple[str, Mapping[str, Any]]],
    path: str,
    query: list[tuple[str, str]],
) -> None:
    """200 with the window's numbers, or a JSON 422 naming the parameter; only shipped SQL."""
    executed.clear()
    response = client.get(path, params=query)
    assert response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    if response.status_code == 200:
        assert_answers_the_request(path, query, response.json())
        assert bool(executed) == (path != "/api/config")  # the numbers came from the tables
    else:
        assert response.status_code == 422, response.text
        assert_names_the_bad_parameter(path, query, response.json())
        assert executed == []  # a bad value stops the request before any query
    assert_only_shipped_sql(executed)


@PROPERTY
@given(requests())
def test_any_parameters_get_a_valid_body_or_a_clear_4xx(
    client: TestClient,
    executed: list[tuple[str, Mapping[str, Any]]],
    call: tuple[str, list[tuple[str, str]]],
) -> None:
    """200 with the window's numbers, or a JSON 4xx naming the parameter; no 500, no traceback.

    And whatever the values, only the shipped queries run, with typed values.
    """
    path, query = call
    assert_answers(client, executed, path, query)


WINDOWED: Final = sorted(path for path, (_, taken) in ENDPOINTS.items() if "until" in taken)


@settings(PROPERTY, max_examples=60)
@given(
    st.sampled_from(WINDOWED),
    st.integers(MIN_WINDOW_MINUTES, MAX_WINDOW_MINUTES),
    st.one_of(
        st.datetimes(max_value=datetime(1, 1, 2, 2), timezones=zones),
        st.datetimes(min_value=datetime(9999, 12, 29, 22), timezones=zones),
    ),
)
def test_windows_at_the_ends_of_the_calendar(
    client: TestClient,
    executed: list[tuple[str, Mapping[str, Any]]],
    path: str,
    minutes: int,
    until: datetime,
) -> None:
    """Windows on the first and last days of Python's calendar: numbers or a 422, never a 500.

    A window that would leave the calendar (years 1 to 9999) is refused, naming `until`.
    """
    assert_answers(
        client, executed, path, [("minutes", str(minutes)), ("until", until.isoformat())]
    )


@PROPERTY
@given(
    st.sampled_from(sorted(ASSETS)) | st.text(min_size=1, max_size=30),
    st.lists(st.tuples(st.text(), anything), max_size=3),
)
def test_any_asset_name_is_the_asset_or_a_json_404(
    client: TestClient, name: str, query: list[tuple[str, str]]
) -> None:
    """`/static/{name}` serves one of the page's assets, or says in JSON that there is none."""
    # Dots escaped too: the client would resolve a name `..` before sending it.
    response = client.get("/static/" + quote(name, safe="").replace(".", "%2E"), params=query)
    if name in ASSETS:
        assert response.status_code == 200
        assert response.content == ASSETS[name].read_bytes()
    else:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"] in (f"no asset {name!r}", "Not Found")


@settings(PROPERTY, max_examples=30)
@given(st.lists(st.tuples(st.text(), anything), max_size=3))
def test_the_page_ignores_any_parameters(client: TestClient, query: list[tuple[str, str]]) -> None:
    """The page is the same page whatever its query string says."""
    response = client.get("/", params=query)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!doctype html>")
