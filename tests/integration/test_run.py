"""`adstream run`: the whole pipeline, live progress, a clean finish, accounting that verifies.

One run (module fixture) serves every test: it generates until rows show, live, in the tables
and on the dashboard (conditions, not a span of traffic, so a slow machine only takes longer),
then Ctrl-C stops the generator and the pipeline finishes. The tests check its accounting and
verification, the enriched rows, the dashboard in a real browser, while the run wrote and
after it, and that nothing of the run is left behind.
"""

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException

from adstream.events.timestamps import parse_event_time
from adstream.query import run_query
from adstream.services.kafka_client import broker_reachable
from adstream.settings import Settings
from adstream.verify import expected_outcomes, read_source_records
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import free_ports, instance_env, instance_settings
from tests.integration.test_dashboard_browser import headless_chromium, wait_for

pytestmark = pytest.mark.integration

FAULTS = (
    *("--out-of-order-fraction", "0.05", "--late-fraction", "0.01"),
    *("--duplicate-impression-fraction", "0.03", "--duplicate-click-fraction", "0.05"),
    *("--orphan-click-fraction", "0.05", "--invalid-fraction", "0.02"),
)
IDENTITY = re.compile(r"^(impressions|clicks) in ([\d,]+) = (.*)$", re.MULTILINE)


def start_run(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ADSTREAM, "run", *args],
        env=instance_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    """stderr lines up to the first one matching `pattern` (fails if the run ends first)."""
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    process.kill()
    pytest.fail(f"no line matching {pattern!r}: {lines[-8:]}")


def accounting(stdout: str) -> dict[str, int]:
    """The printed identities as {'impressions in': n, 'impressions unique': n, ...}."""
    counts = {}
    for stream, total, parts in IDENTITY.findall(stdout):
        counts[f"{stream} in"] = int(total.replace(",", ""))
        for part in parts.split(" + "):
            name, number = part.rsplit(" ", 1)
            counts[f"{stream} {name}"] = int(number.replace(",", ""))
    return counts


@dataclass(frozen=True)
class FinishedRun:
    """An `adstream run` stopped by Ctrl-C, and what its dashboard showed while it wrote."""

    settings: Settings
    returncode: int
    stdout: str
    stderr: str
    dashboard_port: int
    live_page: dict[str, Any] | None
    """The dashboard page once it showed rows, None if it never did."""


@pytest.fixture(scope="module")
def chrome() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, chrome: webdriver.Chrome) -> FinishedRun:
    settings = instance_settings(tmp_path_factory.mktemp("run") / "run")
    (dashboard_port,) = free_ports(1)
    process = start_run(
        settings,
        *("--rate", "1000", "--seed", "5", *FAULTS),
        *("--dashboard-port", str(dashboard_port)),
    )
    try:
        started = read_until(process, r"dashboard: http://", timeout=300)
        # Live: rows reach the tables, and the dashboard, while the generator runs.
        live = read_until(process, r"produced [\d,]+ events; tables: enriched_ad_data [1-9]", 300)
        chrome.get(f"http://127.0.0.1:{dashboard_port}/")  # the last hour until now
        try:
            page = wait_for(chrome, lambda page: page if shows_rows(page) else None, timeout=240)
        except TimeoutException:
            page = None
        # A job killed mid-run is restarted, from its checkpoint: kill -9 each, one after the other.
        restarts = []
        for module, name in (("adstream.join.job", "join"), ("adstream.enrich.job", "enrichment")):
            kill_job(settings, module)
            restarts += read_until(process, rf"the {name} job stopped unexpectedly", 120)
            restarts += read_until(process, rf"restarts: .*{name} 1", 600)
        # Enough traffic for every kind of outcome, however fast the rows showed.
        more = read_until(process, r"produced ([2-9]\d|\d{3,}|\d+,\d{3}),\d{3} events", 300)
        process.send_signal(signal.SIGINT)  # Ctrl-C: the generator stops, the pipeline finishes
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    return FinishedRun(
        settings,
        process.returncode,
        stdout,
        "".join(started + live + restarts + more) + stderr,
        dashboard_port,
        page,
    )


def kill_job(settings: Settings, module: str) -> None:
    """kill -9 the process group of the run's job `module` (the job process and its JVM)."""
    home = str(settings.data_dir.resolve())
    (job,) = (
        process
        for process in psutil.process_iter(["cmdline"])
        if module in (process.info["cmdline"] or ())
        and any(home in part for part in process.info["cmdline"])
    )
    os.killpg(os.getpgid(job.pid), signal.SIGKILL)


def shows_rows(page: dict[str, Any]) -> bool:
    """Impressions and clicks (from campaign_metrics_minute), and a click's freshness."""
    kpis = page["kpis"]
    counts = (int(kpis[name]["value"] or 0) for name in ("impressions", "clicks"))
    return all(count > 0 for count in counts) and bool(kpis["freshness"]["value"])


def test_ctrl_c_finishes_the_run_and_its_accounting_verifies(finished_run: FinishedRun) -> None:
    settings, stdout, stderr = finished_run.settings, finished_run.stdout, finished_run.stderr
    assert finished_run.returncode == 0, stderr[-3000:]
    generated = re.search(r"generator done \(interrupt\): ([\d,]+) events", stderr)
    assert generated is not None, stderr[-3000:]
    assert "pipeline ready after" in stderr
    assert re.search(r"finished [\d.]+ s after the generator", stderr)
    printed = accounting(stdout)
    assert printed["impressions in"] + printed["clicks in"] == int(generated[1].replace(",", ""))
    for stream in ("impressions", "clicks"):  # SPEC section 4's identities
        parts = sum(
            n for key, n in printed.items() if key.startswith(stream) and key != f"{stream} in"
        )
        assert parts == printed[f"{stream} in"]

    env = instance_env(settings)
    assert adstream("up", env=env).returncode == 0
    try:
        verify = adstream("verify", env=env)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert verify.stdout.endswith("verify: OK\n")
        expected = {
            line.rsplit(maxsplit=2)[0]: int(line.rsplit(maxsplit=2)[1].replace(",", ""))
            for line in verify.stdout.splitlines()[2:-2]
        }
        assert printed["clicks attributed"] == expected["attributed click"]
        assert printed["impressions unique"] == expected["unique impression"]
        assert printed["clicks unmatched"] == expected["unmatched click"]
        assert printed["impressions late"] == expected.get("impressions late_event", 0)
        assert_enriched_rows_are_exact(settings)
    finally:
        adstream("down", env=env)


def test_a_job_killed_mid_run_is_restarted_and_the_run_still_verifies(
    finished_run: FinishedRun,
) -> None:
    """Both jobs were killed (-9) while the generator ran; the accounting above still verifies."""
    stderr = finished_run.stderr
    for name in ("join", "enrichment"):
        stopped = rf"the {name} job stopped unexpectedly \(killed by SIGKILL\)"
        assert re.search(stopped + r"; restarting it in 1 s \(1 of 3\)", stderr), stderr[-3000:]
    assert re.search(r"; restarts: join 1, enrichment 1\n", stderr), stderr[-3000:]


def test_dashboard_shows_rows_while_the_pipeline_writes(finished_run: FinishedRun) -> None:
    url = f"http://127.0.0.1:{finished_run.dashboard_port}/"
    assert f"adstream: dashboard: {url}\n" in finished_run.stderr
    page = finished_run.live_page
    assert page is not None, "the run's dashboard never showed impressions and clicks"
    assert page["error"] is None
    impressions = int(page["kpis"]["impressions"]["value"])
    assert sum(page["charts"]["impressions"]["traces"][0]["y"]) == impressions
    assert float(page["kpis"]["freshness"]["value"]) < 600  # a click committed minutes ago
    assert len(page["campaigns"]) == 10


def test_dashboard_numbers_equal_the_tables(
    finished_run: FinishedRun, chrome: webdriver.Chrome
) -> None:
    """After the run: `adstream dashboard` on its data shows what the tables hold, exactly."""
    settings = finished_run.settings
    # The window: the hour up to the next whole minute, which holds the whole run.
    until = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    since = until - timedelta(hours=1)
    (port,) = free_ports(1)
    server = subprocess.Popen(
        [ADSTREAM, "dashboard", "--dashboard-port", str(port)],
        env=instance_env(settings),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert server.stderr is not None
        url = f"http://127.0.0.1:{port}/"
        assert server.stderr.readline() == f"adstream: dashboard: {url} (Ctrl-C stops)\n"
        chrome.get(f"{url}?minutes=60&until={until.isoformat().replace('+00:00', 'Z')}")
        page = wait_for(chrome, lambda page: page if page["refreshes"] >= 1 else None)
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)
    assert server.returncode == 0
    assert page["error"] is None

    window = f"TIMESTAMPTZ '{since.isoformat()}' AND {{column}} < TIMESTAMPTZ '{until.isoformat()}'"

    def between(column: str) -> str:
        return f"{column} >= {window.format(column=column)}"

    impressions, spend_cpm = run_query(
        settings, f"SELECT count(*), sum(bid_price) FROM impressions WHERE {between('event_time')}"
    ).rows[0]
    clicks, revenue, newest = run_query(
        settings,
        "SELECT count(*), sum(click_revenue), max(click_time) FROM enriched_ad_data "
        f"WHERE {between('click_time')}",
    ).rows[0]
    (all_impressions,) = run_query(settings, "SELECT count(*) FROM impressions").rows[0]
    assert impressions == all_impressions > 10_000  # the window holds the whole run
    kpis = {name: tile["value"] for name, tile in page["kpis"].items()}
    assert int(kpis["impressions"]) == impressions
    assert int(kpis["clicks"]) == clicks > 100
    assert float(kpis["ctr"]) == clicks / impressions
    assert Decimal(kpis["revenue"]) == revenue
    assert Decimal(kpis["spend"]) == spend_cpm / 1000
    assert float(kpis["freshness"]) == (until - newest).total_seconds()

    metrics = run_query(
        settings,
        "SELECT sum(impressions), sum(clicks), sum(click_revenue), sum(spend) "
        f"FROM campaign_metrics_minute WHERE {between('minute')}",
    ).rows[0]
    assert metrics == (impressions, clicks, revenue, spend_cpm / 1000)

    per_minute = dict(
        run_query(
            settings,
            "SELECT strftime(date_trunc('minute', event_time), '%Y-%m-%dT%H:%M:%S'), count(*) "
            f"FROM impressions WHERE {between('event_time')} GROUP BY 1",
        ).rows
    )
    series = page["charts"]["impressions"]["traces"][0]
    assert len(series["x"]) == 60
    assert {x: y for x, y in zip(series["x"], series["y"], strict=True) if y} == per_minute

    top = run_query(
        settings,
        "SELECT campaign_id, sum(impressions), sum(clicks), sum(click_revenue) "
        f"FROM campaign_metrics_minute WHERE {between('minute')} "
        "GROUP BY 1 ORDER BY 4 DESC, 2 DESC, 1 LIMIT 10",
    ).rows
    shown = [
        (row[0]["value"], int(row[1]["value"]), int(row[2]["value"]), Decimal(row[4]["value"]))
        for row in page["campaigns"]
    ]
    assert shown == top
    clicked = run_query(
        settings,
        "SELECT campaign_id, count(*), sum(click_revenue) FROM enriched_ad_data "
        f"WHERE {between('click_time')} GROUP BY 1",
    ).rows
    by_campaign = {campaign: (count, total) for campaign, count, total in clicked}
    assert [by_campaign[campaign] for campaign, _, _, _ in top] == [row[2:] for row in top]

    platforms = run_query(
        settings,
        "SELECT platform_category, sum(impressions) FROM campaign_metrics_minute "
        f"WHERE {between('minute')} GROUP BY 1 ORDER BY 2 DESC, 1",
    ).rows
    mix = page["charts"]["platforms"]["traces"][0]
    assert list(zip(mix["labels"], mix["values"], strict=True)) == platforms
    assert sum(mix["values"]) == impressions

    rejected = run_query(
        settings,
        "SELECT stream, reason, count(*) FROM rejected_events "
        f"WHERE {between('rejected_at')} GROUP BY 1, 2",
    ).rows
    bars = {
        (trace["name"], reason, count)
        for trace in page["charts"]["rejected"]["traces"]
        for reason, count in zip(trace["y"], trace["x"], strict=True)
        if count
    }
    assert bars == set(rejected)
    assert len(rejected) >= 5  # the fault knobs produce every kind of rejection


def assert_enriched_rows_are_exact(settings: Settings) -> None:
    """enriched_ad_data equals SPEC sections 3 and 5 recomputed here, row by row."""
    joined = expected_outcomes(settings, read_source_records(settings)).joined
    expected = sorted(_enriched(row) for row in joined)
    result = run_query(
        settings,
        "SELECT impression_id, ad_id, campaign_id, publisher_id, impression_time, click_time, "
        "geo_location, platform, device_type, ad_type, bid_price, click_price, is_premium_ad, "
        "engagement_duration, platform_category, click_revenue, processed_time "
        "FROM enriched_ad_data ORDER BY impression_id",
    )
    stored = [row[:-1] for row in result.rows]
    assert all(row[-1] is not None for row in result.rows)  # processed_time
    assert len(expected) > 100
    assert stored == expected


def _enriched(row: dict[str, Any]) -> tuple[Any, ...]:
    impression_ms = parse_event_time(row["impression_time"])
    click_ms = parse_event_time(row["click_time"])
    assert impression_ms is not None and click_ms is not None
    platform = (row["platform"] or "").strip().lower()
    category = next((name for names, name in _CATEGORIES if platform in names), "Other")
    return (
        row["impression_id"],
        row["ad_id"],
        row["campaign_id"],
        row["publisher_id"],
        _utc(impression_ms),
        _utc(click_ms),
        row["geo_location"],
        row["platform"],
        row["device_type"],
        row["ad_type"],
        row["bid_price"],
        row["click_price"],
        row["bid_price"] > Decimal("50.00"),
        (click_ms - impression_ms) / 1000,
        category,
        (row["click_price"] * Decimal("1.2")).quantize(Decimal("0.000001"), ROUND_HALF_UP),
    )


_CATEGORIES = (
    ({"mobile", "smartphone", "ios", "android"}, "Mobile"),
    ({"tablet"}, "Tablet"),
    ({"desktop", "web", "laptop"}, "Desktop"),
    ({"ctv", "tv", "connected_tv"}, "CTV"),
)


def _utc(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def test_nothing_of_the_run_is_left_running(finished_run: FinishedRun) -> None:
    settings = finished_run.settings
    assert "Kafka stopped" in finished_run.stderr
    assert not broker_reachable(settings, timeout=1.0)
    with pytest.raises(ConnectionRefusedError):  # the dashboard stopped with the run
        socket.create_connection(("127.0.0.1", finished_run.dashboard_port), timeout=5).close()
    jobs = subprocess.run(["pgrep", "-f", str(settings.data_dir)], capture_output=True, text=True)
    assert jobs.stdout == ""  # no job process left behind


def test_killed_while_starting_it_stops_everything_it_started(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "killed")
    (dashboard_port,) = free_ports(1)
    process = start_run(settings, "--dashboard-port", str(dashboard_port))
    try:
        read_until(process, r"starting the enrichment", 300)  # both jobs are starting
        process.send_signal(signal.SIGTERM)  # `kill`, as a service manager stops it
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "interrupted: stopping the jobs" in stderr
    assert "Kafka stopped" in stderr
    assert not broker_reachable(settings, timeout=1.0)
    jobs = subprocess.run(["pgrep", "-f", str(settings.data_dir)], capture_output=True, text=True)
    assert jobs.stdout == ""  # no job process left behind
