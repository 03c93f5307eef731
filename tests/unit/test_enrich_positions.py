"""Positions on Kinesis (docs/enrich.md): sequence numbers kept exact, wherever they are held."""

import random
from datetime import timedelta

import pytest

from adstream.enrich.identity import CLOCK_MARGIN, rejection_lookback
from adstream.enrich.offsets import (
    SEQUENCE_DIGITS,
    format_offsets,
    lowest_taken,
    merge,
    parse_offsets,
    sequence_key,
)
from adstream.events.outcomes import IMPRESSIONS_OUT_TOPIC, JOINED_TOPIC
from adstream.lakehouse.tables import (
    CAMPAIGN_METRICS_MINUTE,
    DASHBOARD_METRICS_MINUTE,
    ENRICHED_AD_DATA,
    IMPRESSIONS,
    REJECTED_EVENTS,
)

AWS_SEQUENCE_NUMBER = 49590338271490256608559692538361571095921575989136588898
LARGEST = 10**SEQUENCE_DIGITS - 1


def test_sequence_keys_order_like_the_numbers() -> None:
    rng = random.Random(13)
    numbers = [0, 1, 9, 10, AWS_SEQUENCE_NUMBER, AWS_SEQUENCE_NUMBER + 1, 2**128, LARGEST]
    numbers += [rng.randrange(10 ** rng.randrange(1, SEQUENCE_DIGITS)) for _ in range(500)]
    keys = [sequence_key(n) for n in numbers]
    assert {len(key) for key in keys} == {SEQUENCE_DIGITS}
    assert sorted(keys) == [sequence_key(n) for n in sorted(numbers)]
    assert [int(key) for key in keys] == numbers
    assert sequence_key(str(AWS_SEQUENCE_NUMBER)) == sequence_key(AWS_SEQUENCE_NUMBER)


def test_a_number_longer_than_kinesis_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Kinesis sequence number"):
        sequence_key(LARGEST + 1)


def test_the_committed_map_keeps_sequence_numbers_exact() -> None:
    held = {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER, 3: LARGEST}}
    newer = {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 1, 3: 5}}
    merged = merge(held, newer)
    assert merged == {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 1, 3: LARGEST}}
    assert parse_offsets(format_offsets(merged)) == merged
    assert str(AWS_SEQUENCE_NUMBER + 1) in format_offsets(merged)  # a JSON integer, no float


def test_a_shard_resumes_after_the_lowest_position_of_the_tables_it_feeds() -> None:
    committed = {
        ENRICHED_AD_DATA: {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 7}},
        REJECTED_EVENTS: {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 3, 1: 11}},
        CAMPAIGN_METRICS_MINUTE: {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 5, 1: 11}},
        DASHBOARD_METRICS_MINUTE: {JOINED_TOPIC: {0: AWS_SEQUENCE_NUMBER + 5, 1: 11}},
        IMPRESSIONS: {IMPRESSIONS_OUT_TOPIC: {2: 4}},
    }
    assert lowest_taken(committed, JOINED_TOPIC, 0) == AWS_SEQUENCE_NUMBER + 3
    assert lowest_taken(committed, JOINED_TOPIC, 1) is None  # enriched_ad_data has none of it
    assert lowest_taken(committed, IMPRESSIONS_OUT_TOPIC, 2) is None  # nor the metrics


def test_copies_of_a_rejection_are_looked_for_two_retentions_back() -> None:
    day = timedelta(hours=24)
    assert rejection_lookback(day, 7 * day) == 8 * day + CLOCK_MARGIN
