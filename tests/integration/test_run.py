"""`adstream run`: the whole pipeline, live progress, a clean finish, accounting that verifies."""

import re
import signal
import subprocess
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from adstream.events.timestamps import parse_event_time
from adstream.query import run_query
from adstream.services.kafka_client import broker_reachable
from adstream.settings import Settings
from adstream.verify import expected_outcomes, read_source_records
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import instance_env, instance_settings

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


def test_run_events_finishes_and_its_accounting_verifies(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "run")
    process = start_run(settings, "--events", "60000", "--rate", "1000", "--seed", "5", *FAULTS)
    # Live: rows reach the tables while the generator still runs.
    read_until(process, r"produced [\d,]+ events; tables: enriched_ad_data [1-9]", timeout=300)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]
    assert "generator done (limit): 60,000 events" in stderr
    assert "Kafka stopped" in stderr
    printed = accounting(stdout)
    assert printed["impressions in"] + printed["clicks in"] == 60_000
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


def test_run_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "run")
    process = start_run(settings, "--rate", "3000")
    read_until(process, r"produced [\d,]+ events", timeout=300)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=600)

    assert process.returncode == 0, stderr[-3000:]
    assert "generator done (interrupt)" in stderr
    assert "Kafka stopped" in stderr
    assert accounting(stdout)["impressions in"] > 0
    assert not broker_reachable(settings, timeout=1.0)
    jobs = subprocess.run(["pgrep", "-f", str(settings.data_dir)], capture_output=True, text=True)
    assert jobs.stdout == ""  # no job process left behind
