"""The benchmark harness's own arithmetic and verification (bench/harness.py, bench/compare.py).

Benchmarks are reports, not tests: nothing here is timed. What is tested is that the figures
they publish are computed right and that a wrong contender is caught.
"""

import json
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from adstream.events.reference import SourceRecord
from adstream.services.process import wait_until
from adstream.settings import load_settings
from compare import (
    QUICK,
    latency_summary,
    merge,
    render,
    summarize_freshness,
    summarize_runs,
    with_ratios,
)
from harness import Usage, check, expected_rows, measure, percentile, ratio, spread

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 4.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == pytest.approx(99.01)
    assert percentile([7.0], 0.95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_spread_and_ratios() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
    assert ratio(50.0, 200.0) == 0.25
    assert ratio(1.0, 0.0) is None


def row(iid: str, ms: int, revenue: str) -> tuple[str, int, Decimal]:
    return (iid, ms, Decimal(revenue))


def test_check_compares_rows_as_multisets() -> None:
    expected = [row("a", 1, "0.480000"), row("b", 2, "1.200000"), row("c", 3, "0.120000")]
    assert check(expected, list(reversed(expected))).correct

    produced = [row("a", 1, "0.480000"), row("a", 1, "0.480000"), row("b", 9, "1.200000")]
    verdict = check(expected, produced)
    assert not verdict.correct
    # a once too often, b at the wrong click time, c never
    assert (verdict.matching, verdict.missing, verdict.extra) == (1, 2, 2)
    assert verdict.expected_revenue == Decimal("1.800000")
    assert verdict.produced_revenue == Decimal("2.160000")


def record(stream: Any, offset: int, fields: dict[str, Any]) -> SourceRecord:
    return SourceRecord(stream, 0, offset, T0_MS + offset, json.dumps(fields).encode())


def event(iid: str, seconds: float, **price: float) -> dict[str, Any]:
    moment = T0 + timedelta(seconds=seconds)
    return {
        "ad_id": "ad-1",
        "impression_id": iid,
        "campaign_id": "cmp-1",
        "publisher_id": "pub-1",
        "event_time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "platform": "iOS",
        **price,
    }


def test_expected_rows_follow_the_contenders_window() -> None:
    records = [
        record("impressions", 0, event("i-1", 0, bid_price=2.0)),
        record("clicks", 1, event("i-1", 20, click_price=0.5)),
        record("clicks", 2, event("i-1", 25, click_price=0.7)),  # a later click: duplicate
        record("impressions", 3, event("i-2", 1, bid_price=2.0)),
        record("clicks", 4, event("i-2", 45, click_price=1.0)),
        record("impressions", 5, event("i-3", 600, bid_price=2.0)),  # moves the watermark on
    ]
    settings = load_settings(data_dir="/nonexistent")
    i1 = ("i-1", T0_MS + 20_000, Decimal("0.600000"))
    i2 = ("i-2", T0_MS + 45_000, Decimal("1.200000"))
    assert sorted(expected_rows(settings, records, timedelta(minutes=10))) == [i1, i2]
    assert expected_rows(settings, records, timedelta(seconds=30)) == [i1]


def test_latency_summary_reports_percentiles_and_whether_it_kept_up() -> None:
    steady = [(float(at), 2.0 + (at % 3)) for at in range(100)]
    summary = latency_summary(steady, 10.0, 91.0)
    assert summary["clicks"] == 81
    assert summary["p50_s"] == 3.0
    assert summary["max_s"] == 4.0
    assert summary["kept_up"] is True

    falling_behind = [(float(at), 2.0 + at) for at in range(100)]
    behind = latency_summary(falling_behind, 10.0, 91.0)
    assert behind["first_third_p50_s"] == 25.0
    assert behind["last_third_p50_s"] == 79.0
    assert behind["kept_up"] is False
    # Nothing visible until the run's finish: decreasing latencies, but far too late.
    at_the_end = [(float(at), 300.0 - at) for at in range(100)]
    assert latency_summary(at_the_end, 10.0, 91.0)["kept_up"] is False
    with pytest.raises(RuntimeError):
        latency_summary(steady, 200.0, 300.0)


def test_freshness_takes_medians_over_runs_and_keeps_up_only_if_every_run_did() -> None:
    def run(produced: str, clicks: int, p50: float, kept_up: bool) -> dict[str, Any]:
        generator = f"100 events in 120.0 s, {produced} events/s"
        return {"generator": generator, "clicks": clicks, "p50_s": p50, "p95_s": p50 + 4,
                "p99_s": p50 + 6, "kept_up": kept_up}  # fmt: skip

    runs = [run("4,970", 100, 16.0, True), run("4,990", 110, 17.0, True)]
    runs.append(run("4,950", 90, 15.0, False))
    row = summarize_freshness(5000, replace(QUICK, runs=3), runs)
    assert row["p50_s"] == {"median": 16.0, "min": 15.0, "max": 17.0}
    assert row["produced_events_per_s"]["median"] == 4970.0
    assert (row["kept_up"], row["kept_up_runs"]) == (False, 2)
    text = render({"freshness": [row]})
    assert "| 5,000 | 4,970 (4,950–4,990) | 100 (90–110) | 16.0 (15.0–17.0) | 20.0 (19.0–" in text
    assert text.rstrip().endswith("| **no** (2 of 3 runs) |")


def test_merge_keeps_the_sections_a_partial_run_did_not_measure() -> None:
    earlier = {"measured_at": "A", "throughput": [1], "freshness": [2], "scaling": [3]}
    merged = merge(earlier, {"measured_at": "B", "freshness": [4]})
    assert (merged["throughput"], merged["freshness"], merged["scaling"]) == ([1], [4], [3])
    assert merged["section_measured_at"] == {"throughput": "A", "freshness": "B", "scaling": "A"}


def test_report_has_ratios_to_adstream_and_names_a_wrong_contender() -> None:
    class Named:
        def __init__(self, name: str) -> None:
            self.name, self.what = name, name

    usages = [Usage(100.0, 150.0, 2 * 2**30), Usage(80.0, 140.0, 2**30), Usage(90.0, 160.0, 2**30)]
    wrong = check([row("a", 1, "1.000000")], [row("a", 2, "1.000000")])
    rows = [
        summarize_runs(Named("adstream"), timedelta(minutes=10), 1000, usages, []),  # type: ignore[arg-type]
        summarize_runs(Named("other"), timedelta(seconds=30), 1000, usages[:1], [wrong]),  # type: ignore[arg-type]
    ]
    rows = with_ratios(rows, rows[0])
    assert rows[0]["events_per_s"]["median"] == pytest.approx(1000 / 90)
    assert rows[1]["ratio_to_adstream"]["wall_s"] == pytest.approx(100 / 90)
    assert rows[1]["ratio_to_adstream"]["peak_rss_mib"] == 2.0
    text = render({"throughput": rows, "freshness": [], "scaling": []})
    assert "| other | 30 s | **no** |" in text
    assert "other: 1 rows for 1 expected; 0 match, 1 missing, 1 extra" in text
    assert "| 1,000 | 30 s | **no** |" in render({"scaling": rows})  # wrong is said everywhere


def test_a_contender_over_its_time_is_stopped_with_every_process_it_started(
    tmp_path: Path,
) -> None:
    started = tmp_path / "grandchild.pid"
    argv = ["sh", "-c", f"sleep 600 & echo $! > {started}; wait"]
    with pytest.raises(RuntimeError, match="took longer than 1 s"):
        measure(argv, dict(os.environ), tmp_path / "run.log", set(), timeout_s=1.0)
    grandchild = int(started.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, timeout=30, interval=0.1, what="the contender's own child to end")
