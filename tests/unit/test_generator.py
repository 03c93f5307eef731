"""The generator: deterministic, realistic in shape, and honest about the faults it injects."""

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from adstream.events.outcomes import CLICKS_TOPIC, IMPRESSIONS_TOPIC, INVALID_REASONS
from adstream.events.validation import Rejection, ValidEvent, validate
from adstream.generator.runner import records
from adstream.generator.traffic import Kind, Timing
from adstream.settings import Settings, load_settings

START = datetime(2026, 11, 1, tzinfo=UTC)
FAULTS = {
    "out_of_order_fraction": 0.05,
    "late_fraction": 0.01,
    "duplicate_impression_fraction": 0.03,
    "duplicate_click_fraction": 0.05,
    "orphan_click_fraction": 0.05,
    "invalid_fraction": 0.02,
}


@dataclass(frozen=True)
class Sample:
    topics: list[str]
    keys: list[str]
    values: list[str]
    emit_ms: np.ndarray
    event_ms: np.ndarray
    kinds: np.ndarray
    timings: np.ndarray
    invalid: np.ndarray


def sample(settings: Settings) -> Sample:
    batches = list(records(settings))
    return Sample(
        topics=[t for b in batches for t in b.topics],
        keys=[k for b in batches for k in b.keys],
        values=[v for b in batches for v in b.values],
        emit_ms=np.concatenate([b.emit_ms for b in batches]),
        event_ms=np.concatenate([b.event_ms for b in batches]),
        kinds=np.concatenate([b.kinds for b in batches]),
        timings=np.concatenate([b.timings for b in batches]),
        invalid=np.concatenate([b.invalid for b in batches]),
    )


@pytest.fixture(scope="module")
def faulty() -> Sample:
    return sample(load_settings(seed=11, rate=0, events=400_000, start_time=START, **FAULTS))


def test_same_seed_same_events() -> None:
    settings = load_settings(seed=3, rate=0, events=30_000, start_time=START, **FAULTS)
    assert sample(settings).values == sample(settings).values


def test_different_seed_different_events() -> None:
    first = sample(load_settings(seed=3, rate=0, events=5_000, start_time=START))
    second = sample(load_settings(seed=4, rate=0, events=5_000, start_time=START))
    assert len(set(first.values) & set(second.values)) == 0


def test_event_count_bound_is_exact_and_a_prefix() -> None:
    long = sample(load_settings(seed=3, rate=0, events=20_000, start_time=START))
    short = sample(load_settings(seed=3, rate=0, events=12_345, start_time=START))
    assert len(long.values) == 20_000
    assert short.values == long.values[:12_345]


def test_records_are_in_emission_order_and_keyed_by_impression_id(faulty: Sample) -> None:
    assert np.all(np.diff(faulty.emit_ms) >= 0)
    assert np.all(faulty.emit_ms >= faulty.event_ms)
    valid = faulty.invalid < 0
    for key, value, ok in zip(faulty.keys[:5000], faulty.values[:5000], valid[:5000], strict=True):
        if ok:
            assert json.loads(value)["impression_id"] == key


def test_event_time_starts_at_start_time(faulty: Sample) -> None:
    first = int(faulty.event_ms.min())
    assert abs(first - int(START.timestamp() * 1000)) < 1000


def test_click_through_rate_is_a_few_percent_and_varies_by_campaign(faulty: Sample) -> None:
    impressions = faulty.kinds == Kind.IMPRESSION
    clicks = faulty.kinds == Kind.CLICK
    ctr = clicks.sum() / impressions.sum()
    assert 0.015 <= ctr <= 0.05

    by_campaign: dict[str, Counter[str]] = {}
    for value, kind, bad in zip(faulty.values, faulty.kinds, faulty.invalid, strict=True):
        if bad < 0 and kind in (Kind.IMPRESSION, Kind.CLICK):
            campaign = json.loads(value)["campaign_id"]
            by_campaign.setdefault(campaign, Counter())[int(kind)] += 1
    rates = [
        c[Kind.CLICK] / c[Kind.IMPRESSION]
        for c in by_campaign.values()
        if c[Kind.IMPRESSION] >= 5000
    ]
    assert len(rates) >= 5
    assert max(rates) / min(rates) > 1.5  # campaigns differ


def test_popularity_is_skewed(faulty: Sample) -> None:
    impressions = [
        json.loads(v)
        for v, k, bad in zip(faulty.values[:100_000], faulty.kinds, faulty.invalid, strict=False)
        if k == Kind.IMPRESSION and bad < 0
    ]
    campaigns = Counter(i["campaign_id"] for i in impressions)
    top_ten = sum(count for _, count in campaigns.most_common(10))
    assert len(campaigns) > 100
    assert 0.3 <= top_ten / len(impressions) <= 0.7


def test_premium_share_and_bid_prices_by_ad_type(faulty: Sample) -> None:
    impressions = [
        json.loads(v)
        for v, k, bad in zip(faulty.values, faulty.kinds, faulty.invalid, strict=True)
        if k == Kind.IMPRESSION and bad < 0
    ]
    bids = np.array([i["bid_price"] for i in impressions])
    assert 0.01 <= (bids > 50).mean() <= 0.05
    assert np.all((bids > 0) & (bids <= 10000))
    median = {
        t: np.median([i["bid_price"] for i in impressions if i["ad_type"] == t])
        for t in ("banner", "video")
    }
    assert median["video"] > 4 * median["banner"]


def test_click_delays_mostly_seconds_with_a_tail_beyond_the_window() -> None:
    window_ms = 600_000
    # A slow event-time rate, so the sample spans many windows of event time.
    traffic = sample(
        load_settings(
            seed=5,
            rate=0,
            events=200_000,
            event_time_rate=50.0,
            start_time=START,
            **{k: 0.0 for k in FAULTS},
        )
    )
    # Only impressions old enough that every click they get (up to 3 W later) was emitted.
    settled = int(traffic.emit_ms.max()) - 3 * window_ms
    impression_ms = {
        key: ms
        for key, ms, kind in zip(traffic.keys, traffic.event_ms, traffic.kinds, strict=True)
        if kind == Kind.IMPRESSION and ms < settled
    }
    delays = (
        np.array(
            [
                ms - impression_ms[key]
                for key, ms, kind in zip(traffic.keys, traffic.event_ms, traffic.kinds, strict=True)
                if kind == Kind.CLICK and key in impression_ms
            ]
        )
        / 1000.0
    )
    assert len(delays) > 1000
    assert np.all(delays >= 0)
    assert 2.0 <= np.median(delays) <= 10.0
    assert (delays <= 60).mean() >= 0.8
    assert 0.015 <= (delays > window_ms / 1000).mean() <= 0.05


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        ("duplicate_impression", FAULTS["duplicate_impression_fraction"]),
        ("duplicate_click", FAULTS["duplicate_click_fraction"]),
        ("orphan_click", FAULTS["orphan_click_fraction"]),
        ("out_of_order", FAULTS["out_of_order_fraction"]),
        ("late", FAULTS["late_fraction"]),
        ("invalid", FAULTS["invalid_fraction"]),
    ],
)
def test_every_fault_fraction_within_fifteen_percent(
    faulty: Sample, share: str, expected: float
) -> None:
    kinds, n = faulty.kinds, len(faulty.kinds)
    # Delayed records generated near the end of the sample are not due yet; count timing
    # faults only over event times whose every record was certainly emitted.
    settled = faulty.event_ms < faulty.emit_ms.max() - 5_000 - 120_000
    all_clicks = np.isin(kinds, (Kind.CLICK, Kind.ORPHAN_CLICK)).sum()
    observed = {
        "duplicate_impression": (kinds == Kind.DUPLICATE_IMPRESSION).sum()
        / (kinds == Kind.IMPRESSION).sum(),
        "duplicate_click": (kinds == Kind.DUPLICATE_CLICK).sum() / (kinds == Kind.CLICK).sum(),
        "orphan_click": (kinds == Kind.ORPHAN_CLICK).sum() / all_clicks,
        "out_of_order": (faulty.timings[settled] == Timing.OUT_OF_ORDER).mean(),
        "late": (faulty.timings[settled] == Timing.LATE).mean(),
        "invalid": (faulty.invalid >= 0).sum() / n,
    }[share]
    assert expected * 0.85 <= observed <= expected * 1.15


def test_injected_delays_respect_the_out_of_orderness(faulty: Sample) -> None:
    delay = faulty.emit_ms - faulty.event_ms
    assert np.all(delay[faulty.timings == Timing.ON_TIME] == 0)
    out_of_order = delay[faulty.timings == Timing.OUT_OF_ORDER]
    assert out_of_order.min() >= 1 and out_of_order.max() < 5000  # within D: never late
    assert delay[faulty.timings == Timing.LATE].min() >= 5000 + 30_000


def test_valid_records_pass_validation_and_invalid_ones_fail_with_their_reason(
    faulty: Sample,
) -> None:
    now_ms = int(datetime.now(tz=UTC).timestamp() * 1000)
    reasons: Counter[str] = Counter()
    for topic, value, bad in zip(faulty.topics, faulty.values, faulty.invalid, strict=True):
        stream = "impressions" if topic == IMPRESSIONS_TOPIC else "clicks"
        assert topic in (IMPRESSIONS_TOPIC, CLICKS_TOPIC)
        result = validate(value, stream, now_ms=now_ms, future_bound_ms=3_600_000)
        if bad < 0:
            assert isinstance(result, ValidEvent), (value, result)
        else:
            assert isinstance(result, Rejection), value
            assert result.reason == INVALID_REASONS[bad], (value, result)
            reasons[result.reason] += 1
    assert set(reasons) == set(INVALID_REASONS)  # every kind of invalid record occurs
