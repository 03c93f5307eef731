"""The traffic model: a virtual timeline of impressions, clicks and faults, in emission order.

Everything random comes from one generator seeded by `settings.seed` and is drawn in fixed-size
blocks, so a seed always yields the same records in the same order, however fast they are sent.
Event times follow a Poisson process at `rate` events per second of event time (or
`event_time_rate` when unthrottled), starting at `start_ms`.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from adstream.events.outcomes import CLICKS_TOPIC, IMPRESSIONS_TOPIC, INVALID_REASONS, Reason
from adstream.events.schema import STREAM_OF_TOPIC
from adstream.generator.catalog import (
    AD_TYPES,
    BID_PRICE_BY_AD_TYPE,
    GEO_FRAGMENTS,
    N_CAMPAIGNS,
    N_PUBLISHERS,
    PLATFORM_FRAGMENTS,
    Catalog,
    Ints,
    Strings,
    build_catalog,
)
from adstream.settings import Settings

BLOCK_IMPRESSIONS: Final = 8192

# Click delays (seconds after the impression): most within seconds, a tail to minutes, and a
# small share beyond the attribution window (drawn between 1x and 3x the window).
SHORT_DELAY: Final = (4.0, 0.9)  # log-normal (median, sigma)
LONG_DELAY: Final = (60.0, 0.9)
SHORT_DELAY_SHARE: Final = 0.85
BEYOND_WINDOW_SHARE: Final = 0.03
CLICK_PRICE: Final = (0.40, 0.8)  # CPC in USD, log-normal (median, sigma)
DUPLICATE_IMPRESSION_DELAY_MS: Final = (1, 2000)
DUPLICATE_CLICK_DELAY_MS: Final = (50, 3000)
LATE_BEYOND_WATERMARK_MS: Final = (30_000, 120_000)
OUT_OF_ORDER_SHARE_OF_D: Final = 0.8

_IMPRESSION: Final = (
    '{"ad_id":"%s","impression_id":"%s","campaign_id":"%s","publisher_id":"%s",'
    '"event_time":"%sZ"%s%s,"ad_type":"%s","bid_price":%.4f}'
)
_CLICK: Final = (
    '{"ad_id":"%s","impression_id":"%s","campaign_id":"%s","publisher_id":"%s",'
    '"event_time":"%sZ"%s%s,"click_price":%.6f}'
)
_BAD_TIMESTAMPS: Final = ("2026-02-30T10:00:00Z", "27/11/2026 10:00", "", "2026-11-27 10:00:00")
_BAD_PRICES: Final = (0, -1.5, 10000.01, 250000)


class Kind(IntEnum):
    """What a generated record was meant to be (its intended outcome, before validation)."""

    IMPRESSION = 0
    CLICK = 1
    DUPLICATE_IMPRESSION = 2
    DUPLICATE_CLICK = 3
    ORPHAN_CLICK = 4


class Timing(IntEnum):
    """How a record was delayed between its event time and its emission."""

    ON_TIME = 0
    OUT_OF_ORDER = 1
    LATE = 2


@dataclass(frozen=True)
class Batch:
    """Records in emission order, with the generator's own labels for tests and reports."""

    topics: list[str]
    keys: list[str]
    values: list[str]
    emit_ms: Ints
    """When the record is due, on the event-time clock (event time plus any injected delay)."""
    event_ms: Ints
    kinds: npt.NDArray[np.int8]
    timings: npt.NDArray[np.int8]
    invalid: npt.NDArray[np.int8]
    """Index into `INVALID_REASONS` of the fault injected, or -1 for a valid record."""

    def __len__(self) -> int:
        return len(self.values)

    def slice(self, start: int, stop: int) -> "Batch":
        """Records `start` to `stop` (exclusive)."""
        return Batch(
            self.topics[start:stop],
            self.keys[start:stop],
            self.values[start:stop],
            self.emit_ms[start:stop],
            self.event_ms[start:stop],
            self.kinds[start:stop],
            self.timings[start:stop],
            self.invalid[start:stop],
        )


_COLUMNS: Final = ("emit_ms", "event_ms", "topics", "keys", "values", "kinds", "timings", "invalid")


class Traffic:
    """An endless, deterministic stream of ad traffic; iterate `batches()`."""

    def __init__(self, settings: Settings, start_ms: int) -> None:
        self.settings = settings
        self.rng = np.random.default_rng(settings.seed)
        self.catalog: Catalog = build_catalog(self.rng)
        events_per_second = settings.rate or settings.event_time_rate
        self.mean_gap_ms = 1000.0 * self.events_per_impression() / events_per_second
        self.start_ms = start_ms
        self.clock_ms = float(start_ms)
        self.pending: dict[str, npt.NDArray[Any]] = {
            "emit_ms": np.empty(0, np.int64),
            "event_ms": np.empty(0, np.int64),
            "topics": np.empty(0, object),
            "keys": np.empty(0, object),
            "values": np.empty(0, object),
            "kinds": np.empty(0, np.int8),
            "timings": np.empty(0, np.int8),
            "invalid": np.empty(0, np.int8),
        }

    def events_per_impression(self) -> float:
        """Records emitted per impression on average, so that `rate` counts every record."""
        s = self.settings
        clicks = self.catalog.mean_ctr / (1.0 - min(s.orphan_click_fraction, 0.99))
        return 1.0 + s.duplicate_impression_fraction + clicks * (1.0 + s.duplicate_click_fraction)

    def batches(self) -> Iterator[Batch]:
        """Blocks of records in emission order, forever."""
        while True:
            yield self._next_block()

    def _next_block(self) -> Batch:
        rng, cat, s = self.rng, self.catalog, self.settings
        n = BLOCK_IMPRESSIONS

        times = self.clock_ms + np.cumsum(rng.exponential(self.mean_gap_ms, n))
        self.clock_ms = float(times[-1])
        imp_ms = times.astype(np.int64)
        dims = self._dimensions(n)
        ad_type = cat.ad_type[dims["ad"]]
        medians = np.log([median for median, _ in BID_PRICE_BY_AD_TYPE])[ad_type]
        sigmas = np.array([sigma for _, sigma in BID_PRICE_BY_AD_TYPE])[ad_type]
        bid = np.clip(np.round(rng.lognormal(medians, sigmas), 4), 0.01, 9999.0)
        imp_ids = _hex_ids(rng, n)
        ad_type_names = np.array(AD_TYPES, dtype=object)[ad_type]

        clicked = np.flatnonzero(rng.random(n) < cat.campaign_ctr[dims["campaign"]])
        click_ms = imp_ms[clicked] + self._click_delays_ms(len(clicked))
        click_price = self._click_prices(len(clicked))

        dup_imp = np.flatnonzero(rng.random(n) < s.duplicate_impression_fraction)
        dup_imp_ms = imp_ms[dup_imp] + rng.integers(*DUPLICATE_IMPRESSION_DELAY_MS, len(dup_imp))
        dup_click = np.flatnonzero(rng.random(len(clicked)) < s.duplicate_click_fraction)
        dup_click_ms = click_ms[dup_click] + rng.integers(*DUPLICATE_CLICK_DELAY_MS, len(dup_click))

        orphan_share = min(s.orphan_click_fraction, 0.99)
        n_orphans = int(rng.poisson(len(clicked) * orphan_share / (1.0 - orphan_share)))
        orphan_ms = np.sort(rng.integers(imp_ms[0], imp_ms[-1] + 1, n_orphans))
        orphan_dims = self._dimensions(n_orphans)
        orphan_ids = _hex_ids(rng, n_orphans)
        orphan_price = self._click_prices(n_orphans)

        imp_rows = np.concatenate((np.arange(n), dup_imp))
        imp_times = np.concatenate((imp_ms, dup_imp_ms))
        click_rows = clicked[np.concatenate((np.arange(len(clicked)), dup_click))]
        click_rows_price = np.concatenate((click_price, click_price[dup_click]))
        click_times = np.concatenate((click_ms, dup_click_ms))

        impressions = _render(
            _IMPRESSION,
            cat.ad_ids[dims["ad"][imp_rows]],
            imp_ids[imp_rows],
            cat.campaign_ids[dims["campaign"][imp_rows]],
            cat.publisher_ids[dims["publisher"][imp_rows]],
            _time_strings(imp_times),
            dims["platform"][imp_rows],
            dims["geo"][imp_rows],
            ad_type_names[imp_rows],
            bid[imp_rows],
        )
        clicks = _render(
            _CLICK,
            cat.ad_ids[dims["ad"][click_rows]],
            imp_ids[click_rows],
            cat.campaign_ids[dims["campaign"][click_rows]],
            cat.publisher_ids[dims["publisher"][click_rows]],
            _time_strings(click_times),
            dims["platform"][click_rows],
            dims["geo"][click_rows],
            click_rows_price,
        )
        orphans = _render(
            _CLICK,
            cat.ad_ids[orphan_dims["ad"]],
            orphan_ids,
            cat.campaign_ids[orphan_dims["campaign"]],
            cat.publisher_ids[orphan_dims["publisher"]],
            _time_strings(orphan_ms),
            orphan_dims["platform"],
            orphan_dims["geo"],
            orphan_price,
        )

        kinds = np.concatenate(
            (
                np.full(n, Kind.IMPRESSION, np.int8),
                np.full(len(dup_imp), Kind.DUPLICATE_IMPRESSION, np.int8),
                np.full(len(clicked), Kind.CLICK, np.int8),
                np.full(len(dup_click), Kind.DUPLICATE_CLICK, np.int8),
                np.full(n_orphans, Kind.ORPHAN_CLICK, np.int8),
            )
        )
        event_ms = np.concatenate((imp_times, click_times, orphan_ms))
        n_records = len(kinds)
        topics = np.empty(n_records, object)
        topics[: len(imp_rows)] = IMPRESSIONS_TOPIC
        topics[len(imp_rows) :] = CLICKS_TOPIC
        keys = np.concatenate((imp_ids[imp_rows], imp_ids[click_rows], orphan_ids))
        values = np.empty(n_records, object)
        values[:] = impressions + clicks + orphans

        invalid = self._inject_invalid(values, topics, event_ms)
        timings, emit_ms = self._emission_times(event_ms)
        new = {
            "emit_ms": emit_ms,
            "event_ms": event_ms,
            "topics": topics,
            "keys": keys,
            "values": values,
            "kinds": kinds,
            "timings": timings,
            "invalid": invalid,
        }
        return self._release(new, horizon_ms=int(imp_ms[-1]))

    def _dimensions(self, count: int) -> dict[str, npt.NDArray[Any]]:
        rng, cat = self.rng, self.catalog
        campaign = rng.choice(N_CAMPAIGNS, count, p=cat.campaign_share)
        offset = (rng.random(count) * cat.campaign_ad_count[campaign]).astype(np.int64)
        return {
            "campaign": campaign,
            "ad": cat.campaign_first_ad[campaign] + offset,
            "publisher": rng.choice(N_PUBLISHERS, count, p=cat.publisher_share),
            "platform": _choose(rng, PLATFORM_FRAGMENTS, count),
            "geo": _choose(rng, GEO_FRAGMENTS, count),
        }

    def _click_delays_ms(self, count: int) -> Ints:
        rng = self.rng
        window_s = self.settings.attribution_window.total_seconds()
        short = rng.lognormal(np.log(SHORT_DELAY[0]), SHORT_DELAY[1], count)
        long = np.minimum(rng.lognormal(np.log(LONG_DELAY[0]), LONG_DELAY[1], count), window_s)
        beyond = rng.uniform(window_s, 3 * window_s, count) + 0.001
        pick = rng.random(count)
        delay_s = np.where(
            pick < SHORT_DELAY_SHARE,
            short,
            np.where(pick < 1.0 - BEYOND_WINDOW_SHARE, long, beyond),
        )
        return (delay_s * 1000.0).astype(np.int64)

    def _click_prices(self, count: int) -> npt.NDArray[np.float64]:
        price = self.rng.lognormal(np.log(CLICK_PRICE[0]), CLICK_PRICE[1], count)
        return np.clip(np.round(price, 6), 0.01, 100.0)

    def _inject_invalid(
        self, values: Strings, topics: Strings, event_ms: Ints
    ) -> npt.NDArray[np.int8]:
        rng = self.rng
        invalid = np.full(len(values), -1, np.int8)
        chosen = np.flatnonzero(rng.random(len(values)) < self.settings.invalid_fraction)
        reasons = rng.integers(0, len(INVALID_REASONS), len(chosen))
        for row, reason in zip(chosen.tolist(), reasons.tolist(), strict=True):
            values[row] = self._corrupt(values[row], topics[row], INVALID_REASONS[reason])
            invalid[row] = reason
        return invalid

    def _corrupt(self, value: str, topic: str, reason: Reason) -> str:
        rng = self.rng
        if reason is Reason.MALFORMED_JSON:
            return value[: len(value) // 2]
        record = json.loads(value)
        fields = STREAM_OF_TOPIC[topic].fields
        price = fields[-1].name
        if reason is Reason.MISSING_FIELD:
            required = [field.name for field in fields if field.required]
            del record[required[int(rng.integers(len(required)))]]
        elif reason is Reason.INVALID_TYPE:
            record[price] = str(record[price])
        elif reason is Reason.INVALID_TIMESTAMP:
            record["event_time"] = _BAD_TIMESTAMPS[int(rng.integers(len(_BAD_TIMESTAMPS)))]
        elif reason is Reason.INVALID_PRICE:
            record[price] = _BAD_PRICES[int(rng.integers(len(_BAD_PRICES)))]
        elif reason is Reason.FUTURE_TIMESTAMP:
            # A device clock decades ahead: in the future whatever the wall clock says.
            record["event_time"] = "2099" + record["event_time"][4:]
        return json.dumps(record, separators=(",", ":"))

    def _emission_times(self, event_ms: Ints) -> tuple[npt.NDArray[np.int8], Ints]:
        rng, s = self.rng, self.settings
        out_of_orderness_ms = s.out_of_orderness.total_seconds() * 1000.0
        pick = rng.random(len(event_ms))
        late = pick < s.late_fraction
        out_of_order = ~late & (pick < s.late_fraction + s.out_of_order_fraction)
        ooo_delay = rng.uniform(
            1.0, max(1.0, OUT_OF_ORDER_SHARE_OF_D * out_of_orderness_ms), len(event_ms)
        )
        late_delay = out_of_orderness_ms + rng.uniform(*LATE_BEYOND_WATERMARK_MS, len(event_ms))
        delay = np.where(late, late_delay, np.where(out_of_order, ooo_delay, 0.0))
        timings = np.where(
            late, Timing.LATE, np.where(out_of_order, Timing.OUT_OF_ORDER, Timing.ON_TIME)
        )
        return timings.astype(np.int8), event_ms + delay.astype(np.int64)

    def _release(self, new: dict[str, npt.NDArray[Any]], horizon_ms: int) -> Batch:
        """Merge new records with pending ones; emit those due by `horizon_ms`, keep the rest.

        Every record generated later has an emission time after this block's last impression,
        so what is due now can be released in its final order.
        """
        merged = {name: np.concatenate((self.pending[name], new[name])) for name in _COLUMNS}
        order = np.argsort(merged["emit_ms"], kind="stable")
        due = int(np.searchsorted(merged["emit_ms"][order], horizon_ms, side="right"))
        released = {name: column[order[:due]] for name, column in merged.items()}
        self.pending = {name: column[order[due:]] for name, column in merged.items()}
        return Batch(
            topics=released["topics"].tolist(),
            keys=released["keys"].tolist(),
            values=released["values"].tolist(),
            emit_ms=released["emit_ms"],
            event_ms=released["event_ms"],
            kinds=released["kinds"],
            timings=released["timings"],
            invalid=released["invalid"],
        )


def _choose(
    rng: np.random.Generator, fragments: tuple[tuple[str, float], ...], count: int
) -> Strings:
    texts = np.array([text for text, _ in fragments], dtype=object)
    shares = np.array([share for _, share in fragments])
    return texts[rng.choice(len(fragments), count, p=shares / shares.sum())]


def _hex_ids(rng: np.random.Generator, count: int) -> Strings:
    text = rng.bytes(16 * count).hex()
    return np.array([text[i : i + 32] for i in range(0, 32 * count, 32)], dtype=object)


def _time_strings(epoch_ms: Ints) -> list[str]:
    strings: list[str] = np.datetime_as_string(
        epoch_ms.astype("datetime64[ms]"), unit="ms"
    ).tolist()
    return strings


def _render(template: str, *columns: npt.NDArray[Any] | list[Any]) -> list[str]:
    lists = [column if isinstance(column, list) else column.tolist() for column in columns]
    return [template % row for row in zip(*lists, strict=True)]
