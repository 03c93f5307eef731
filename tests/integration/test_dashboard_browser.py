"""The dashboard page in a real browser: headless Chromium (Debian's) driven by Selenium.

Here over the known dataset of the API tests, served the way `adstream run` serves it; over a
real pipeline run in test_run.py, which uses the helpers below.
"""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from adstream.dashboard.server import DashboardServer
from adstream.settings import load_settings
from tests.unit.test_dashboard_api import UNTIL, write_known_dataset

pytestmark = pytest.mark.integration

T = TypeVar("T")

KPIS = ("impressions", "clicks", "ctr", "revenue", "spend", "freshness")
SERIES = ("impressions", "clicks", "ctr", "revenue")

# Everything the page shows, read in the browser: each KPI tile's text and exact value, the
# data of each Plotly chart with the number of SVG marks drawn, the rows of the top tables,
# the error box, and every resource the page loaded.
READ_PAGE = """
const chart = (id) => {
  const element = document.getElementById(id);
  return {
    traces: (element.data || []).map((trace) => ({
      name: trace.name ?? null,
      x: trace.x ? Array.from(trace.x) : null,
      y: trace.y ? Array.from(trace.y) : null,
      labels: trace.labels ? Array.from(trace.labels) : null,
      values: trace.values ? Array.from(trace.values) : null,
    })),
    drawn: element.querySelectorAll("path.js-line, g.slice, g.point").length,
  };
};
const table = (id) => Array.from(document.querySelectorAll(`#${id} tbody tr`)).map((row) =>
  Array.from(row.cells).map((cell) => ({ text: cell.textContent, value: cell.dataset.value })));
const kpis = {};
for (const name of arguments[0]) {
  const element = document.getElementById(`kpi-${name}`);
  kpis[name] = { text: element.textContent, value: element.dataset.value ?? null };
}
const charts = {};
for (const name of [...arguments[1], "platforms", "rejected"]) {
  charts[name] = chart(`chart-${name}`);
}
const error = document.getElementById("error");
return {
  refreshes: Number(document.body.dataset.refreshes || 0),
  kpis,
  charts,
  campaigns: table("top-campaigns"),
  publishers: table("top-publishers"),
  error: error.hidden ? null : error.textContent,
  resources: performance.getEntriesByType("resource").map((entry) => entry.name),
};
"""


@contextmanager
def headless_chromium() -> Iterator[webdriver.Chrome]:
    """Debian's chromium through its chromium-driver (installed by `make setup`)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("chromium and chromium-driver are not installed: run `make setup`")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def read_page(chrome: webdriver.Chrome) -> dict[str, Any]:
    page: dict[str, Any] = chrome.execute_script(READ_PAGE, list(KPIS), list(SERIES))
    return page


def wait_for(
    chrome: webdriver.Chrome, condition: Callable[[dict[str, Any]], T], timeout: float = 60
) -> T:
    """Poll the page until `condition(read_page(...))` is truthy; return that value."""

    def check(driver: webdriver.Chrome) -> T:
        return condition(read_page(driver))

    return WebDriverWait(chrome, timeout, poll_frequency=0.2).until(
        check, message=f"the page never got there: {read_page(chrome)}"
    )


def console_errors(chrome: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in chrome.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The known dataset's dashboard, served in a thread as `adstream run` does; its address."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("browser"), dashboard_port=0)
    write_known_dataset(settings)
    server = DashboardServer(settings)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chrome() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as browser:
        yield browser


def test_charts_and_tiles_show_the_hour(chrome: webdriver.Chrome, dashboard: str) -> None:
    chrome.get(f"{dashboard}?minutes=60&until={UNTIL}")
    page = wait_for(chrome, lambda page: page if page["refreshes"] >= 1 else None)

    assert page["error"] is None
    assert {name: (tile["text"], tile["value"]) for name, tile in page["kpis"].items()} == {
        "impressions": ("2,000", "2000"),
        "clicks": ("36", "36"),
        "ctr": ("1.80 %", "0.018"),
        "revenue": ("$43.80", "43.800001"),
        "spend": ("$16.65", "16.650000000"),
        "freshness": ("60.5 s", "60.5"),
    }

    charts = page["charts"]
    minutes = [f"2026-11-01T09:{minute:02}:00" for minute in range(60)]
    impressions = charts["impressions"]["traces"][0]
    assert impressions["x"] == minutes
    assert impressions["y"][10:12] == [1500, 300]
    assert impressions["y"][59] == 200
    assert sum(impressions["y"]) == 2000
    clicks = charts["clicks"]["traces"][0]["y"]
    assert (clicks[10], clicks[11], clicks[30], sum(clicks)) == (25, 9, 2, 36)
    ctr = charts["ctr"]["traces"][0]["y"]
    assert (ctr[10], ctr[11], ctr[30], ctr[59]) == (25 / 1500 * 100, 3.0, None, 0)
    revenue = charts["revenue"]["traces"][0]["y"]
    assert (revenue[10], revenue[11], revenue[30]) == (30.6, 10.800001, 2.4)
    for name in SERIES:
        assert charts[name]["drawn"] >= 1, name  # the line is drawn (CTR: broken where null)

    platforms = charts["platforms"]["traces"][0]
    assert platforms["labels"] == ["Mobile", "Desktop", "CTV", "Other"]
    assert platforms["values"] == [1300, 500, 200, 0]
    assert charts["platforms"]["drawn"] >= 3  # a slice per platform with impressions

    rejected = charts["rejected"]["traces"]
    assert [(trace["name"], trace["y"], trace["x"]) for trace in rejected] == [
        ("clicks", ["invalid_price", "duplicate_click", "late_event"], [1, 1, 1]),
        ("impressions", ["invalid_price", "duplicate_click", "late_event"], [2, 0, 1]),
    ]
    assert charts["rejected"]["drawn"] == 6  # a bar per stream and reason

    assert [[cell["text"] for cell in row] for row in page["campaigns"]] == [
        ["cmp-a", "1,300", "29", "2.23 %", "$34.80"],
        ["cmp-b", "500", "7", "1.40 %", "$9.00"],
        ["cmp-c", "200", "0", "0.00 %", "$0.00"],
    ]
    assert [row[4]["value"] for row in page["campaigns"]] == ["34.800001", "9.000000", "0.000000"]
    assert [[cell["text"] for cell in row] for row in page["publishers"]] == [
        ["pub-1", "1,500", "25", "1.67 %", "$30.60"],
        ["pub-2", "500", "9", "1.80 %", "$10.80"],
        ["pub-3", "0", "2", "–", "$2.40"],
    ]

    assert all(url.startswith(dashboard) for url in page["resources"]), page["resources"]
    assert console_errors(chrome) == []


def test_window_selector_and_errors(chrome: webdriver.Chrome, dashboard: str) -> None:
    # A bad window from the address: every panel's error is shown, the page keeps running.
    chrome.get(f"{dashboard}?minutes=3&until={UNTIL}")
    error = wait_for(chrome, lambda page: page["error"])
    assert "/api/summary: 422 minutes: Input should be greater than or equal to 5" in error
    assert read_page(chrome)["kpis"]["impressions"]["text"] == "–"

    chrome.find_element(By.CSS_SELECTOR, "#windows button[data-minutes='15']").click()
    page = wait_for(
        chrome, lambda page: page if page["kpis"]["impressions"]["value"] == "200" else None
    )
    assert page["error"] is None
    address = parse_qs(urlsplit(chrome.current_url).query)
    assert address == {"minutes": ["15"], "until": [UNTIL]}  # a reload keeps the window
    assert page["charts"]["impressions"]["traces"][0]["y"] == [0] * 14 + [200]
    assert page["kpis"]["clicks"]["value"] == "0"
    assert page["kpis"]["ctr"]["text"] == "0.00 %"
    pressed = chrome.find_element(By.CSS_SELECTOR, "#windows button[aria-pressed='true']")
    assert pressed.text == "15 min"


def test_defaults_to_the_last_hour_and_refreshes_itself(
    chrome: webdriver.Chrome, dashboard: str
) -> None:
    chrome.get(f"{dashboard}?until={UNTIL}")
    first = wait_for(chrome, lambda page: page["refreshes"] or None)
    assert read_page(chrome)["kpis"]["impressions"]["value"] == "2000"
    pressed = chrome.find_element(By.CSS_SELECTOR, "#windows button[aria-pressed='true']")
    assert pressed.text == "1 h"
    # The page refreshes every 5 s (dashboard_refresh) without being told.
    assert wait_for(chrome, lambda page: page["refreshes"] > first, timeout=30)
