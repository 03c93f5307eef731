"""Where the enrichment resumes: the offsets each table has committed, merged per partition."""

import json

from adstream.enrich.offsets import (
    TABLE_SOURCES,
    format_offsets,
    merge,
    missing_tables,
    parse_offsets,
    starting_offsets,
)


def test_offsets_merge_to_the_highest_per_partition() -> None:
    first = {"joined_output": {0: 5, 1: 2}}
    second = {"joined_output": {0: 3, 1: 9}, "rejected_events": {0: 1}}
    merged = merge(first, second)
    assert merged == {"joined_output": {0: 5, 1: 9}, "rejected_events": {0: 1}}
    assert parse_offsets(format_offsets(merged)) == merged
    assert format_offsets(merged) == '{"joined_output":{"0":5,"1":9},"rejected_events":{"0":1}}'


def test_without_checkpoint_each_partition_resumes_after_its_slowest_table() -> None:
    committed = {
        "enriched_ad_data": {"joined_output": {0: 10, 1: 7}},
        "rejected_events": {"joined_output": {0: 4}, "rejected_events": {0: 2, 1: 3}},
        "impressions": {"unique_impressions": {0: 0}},
        "unmatched_clicks": {},
        "campaign_metrics_minute": {"joined_output": {0: 6}, "unique_impressions": {0: 3}},
        "dashboard_metrics_minute": {"joined_output": {0: 6}, "unique_impressions": {0: 3}},
    }
    partitions = {
        "joined_output": 2,
        "unique_impressions": 2,
        "unmatched_clicks": 1,
        "rejected_events": 2,
    }
    assert json.loads(starting_offsets(committed, partitions)) == {
        # rejected_events has taken joined_output up to 4 in partition 0, nothing in 1
        "joined_output": {"0": 5, "1": -2},
        "unique_impressions": {"0": 1, "1": -2},
        "unmatched_clicks": {"0": -2},
        "rejected_events": {"0": 3, "1": 4},
    }


def test_a_table_that_missed_what_the_others_took_in_is_found() -> None:
    base = {
        "enriched_ad_data": {"joined_output": {0: 10}},
        "rejected_events": {"joined_output": {0: 10}},
        "impressions": {"unique_impressions": {0: 3}},
        "unmatched_clicks": {},  # its topic had nothing yet: not missing
    }
    # Added by upgrades.
    assert missing_tables(base) == ["campaign_metrics_minute", "dashboard_metrics_minute"]
    both = base | {
        "campaign_metrics_minute": {"joined_output": {0: 10}},
        "dashboard_metrics_minute": {"joined_output": {0: 10}},
    }
    assert missing_tables(both) == []
    assert missing_tables({}) == list(TABLE_SOURCES)  # the tables are gone
