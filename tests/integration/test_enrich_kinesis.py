"""The enrichment on Kinesis (SPEC sections 5, 6 and 9): outcome streams to the tables, once.

Outcome records in the JSON the join writes are put on the emulator's outcome streams; the real
job (`run_enrich`, its own process) reads them with its polling reader and writes the tables,
read back with pyiceberg. The join's Kinesis sink is at-least-once, so the same outcomes are
put again at new sequence numbers, as a restarted join would: they must not be written twice.
The reader's own rules (parents before children, limits, throttling) are tested against the
emulator without Spark.
"""

import copy
import os
import signal
import time
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adstream.enrich.launcher import enrich_log, run_enrich, start_enrich
from adstream.enrich.offsets import committed_offsets
from adstream.errors import AdstreamError
from adstream.events.outcomes import (
    IMPRESSIONS_OUT_TOPIC,
    JOINED_TOPIC,
    REJECTED_EVENTS_TOPIC,
    UNMATCHED_CLICKS_TOPIC,
)
from adstream.lakehouse.catalog import ensure_tables, open_catalog, row_counts
from adstream.lakehouse.tables import DASHBOARD_METRICS_MINUTE, ENRICHED_AD_DATA, NAMESPACE, TABLES
from adstream.services import aws
from adstream.services.kinesis import ensure_streams, shard_number
from adstream.services.kinesis_poller import MAX_RECORDS_PER_CALL, ShardPoller
from adstream.services.process import wait_until
from adstream.settings import Settings
from tests.cli import adstream
from tests.conftest import aws_env
from tests.integration.test_enrich import (
    T0,
    Sent,
    _key,
    batch_a,
    click,
    expected_tables,
    impression,
    invalid_joined,
    joined,
    read_tables,
    rejected,
    valid_joined,
)

pytestmark = pytest.mark.integration

SEQUENCE_BASE = 49590338271490256608559692538361571095921575989136588898
"""A sequence number as AWS hands them out (56 digits): the input positions of the outcomes."""
THROTTLED = "ProvisionedThroughputExceededException"


def on_kinesis(sent: list[Sent]) -> list[Sent]:
    """The records as the join writes them to Kinesis: the input's position is a sequence
    number (the Kafka offset of the builders, shifted to AWS's size), the offset null."""
    for item in sent:
        record = item.record
        if isinstance(record, dict) and record.get("source_offset") is not None:
            record["source_sequence_number"] = str(SEQUENCE_BASE + record["source_offset"])
            record["source_offset"] = None
    return sent


def put(settings: Settings, sent: list[Sent]) -> None:
    """Put records on their outcome streams, in order, keyed by impression_id as the join does
    (rejections by a random key); fill in each record's shard and sequence number."""
    client = aws.client(settings, "kinesis")
    for item in sent:  # one call per record keeps the order of `sent` within each stream
        answer = client.put_record(
            StreamName=settings.stream_name(item.topic),
            Data=item.value.encode(),
            PartitionKey=_key(item) or uuid.uuid4().hex,
        )
        item.partition = shard_number(answer["ShardId"])
        item.sequence_number = answer["SequenceNumber"]


def again(sent: list[Sent]) -> list[Sent]:
    """The same outcomes once more, as a restarted at-least-once join writes them."""
    return [Sent(item.topic, copy.copy(item.record)) for item in sent]


def lake(lake_emulator: Settings, data_dir: Path, **overrides: Any) -> Settings:
    """This test's tables (Glue and S3) and Spark, on its own emulator with the streams."""
    settings = lake_emulator.model_copy(
        update={
            "data_dir": data_dir,
            "spark_master": "local[2]",
            "spark_driver_memory": "768m",
            **overrides,
        }
    )
    ensure_streams(settings)
    return settings


def enrich_bounded(settings: Settings) -> None:
    """`adstream enrich --bounded` (what the CLI calls); on failure show the job's log."""
    try:
        run_enrich(settings, bounded=True)
    except AdstreamError as error:
        log = enrich_log(settings).read_text(errors="replace").splitlines()
        pytest.fail(f"{error}\n--- enrich.log ---\n" + "\n".join(log[-60:]))


def assert_tables(settings: Settings, sent: list[Sent]) -> None:
    expected, actual = expected_tables(sent), read_tables(settings)
    for table in TABLES:  # one assert per table, so a failure names it
        assert actual[table.name] == expected[table.name], table.name


def batch_b() -> list[Sent]:
    return [
        valid_joined(joined("j-b1", platform="laptop"), False, 1.5, "Desktop", "0.480000"),
        invalid_joined(
            joined("j-b2", click_price=Decimal("-1.000000")), "click_price -1.000000 is not > 0"
        ),
        Sent(IMPRESSIONS_OUT_TOPIC, impression("i-b1", 0, 20)),
        Sent(UNMATCHED_CLICKS_TOPIC, click("u-b1", 1, 21)),
        Sent(REJECTED_EVENTS_TOPIC, rejected("impressions", "late_event", "{}", 1, 22)),
    ]


def test_outcomes_are_written_exactly_once_by_identity(
    lake_emulator: Settings, tmp_path: Path
) -> None:
    settings = lake(lake_emulator, tmp_path / "data")
    sent_a = on_kinesis(batch_a())
    put(settings, sent_a)
    enrich_bounded(settings)
    assert_tables(settings, sent_a)
    # The positions were committed with the rows: per shard, the last sequence number read.
    table = open_catalog(settings).load_table(f"{NAMESPACE}.{ENRICHED_AD_DATA}")
    last = {}
    for item in sent_a:
        if item.topic == JOINED_TOPIC:
            assert item.sequence_number is not None
            last[item.partition] = max(last.get(item.partition, 0), int(item.sequence_number))
    assert committed_offsets(table, "kinesis") == {JOINED_TOPIC: last}

    # Maintenance on Glue and S3 (retention 0) keeps what the next run reads: the positions, and
    # the base-table snapshots campaign_metrics_minute has summed up to.
    maintain = adstream(
        "maintain", env=aws_env(settings) | {"ADSTREAM_MAINTAIN_SNAPSHOT_RETENTION": "0"}
    )
    assert maintain.returncode == 0, maintain.stderr
    assert "enriched_ad_data: data files" in maintain.stdout
    assert_tables(settings, sent_a)

    # The join restarts and writes batch A again, then new outcomes, each of them twice in a
    # row (copies within one batch): the tables take in the new ones, once.
    sent_b = on_kinesis(batch_b())
    twice = [written for item in sent_b for written in (item, *again([item]))]
    put(settings, again(sent_a) + twice)
    enrich_bounded(settings)
    assert_tables(settings, sent_a + sent_b)


def many_outcomes() -> list[Sent]:
    """A few hundred outcomes over several minutes, campaigns and platforms."""
    categories = {
        "iOS": "Mobile",
        "android": "Mobile",
        "web": "Desktop",
        "tablet": "Tablet",
        "ctv": "CTV",
    }
    platforms = list(categories)
    sent: list[Sent] = []
    for n in range(120):
        platform = platforms[n % 5]
        category = categories[platform]
        clicked = T0 + timedelta(minutes=n % 7, seconds=n % 50, milliseconds=7 * n)
        price = Decimal(n + 1) / 1000
        record = joined(
            f"j-{n}",
            campaign_id=f"cmp-{n % 4}",
            platform=platform,
            click_time=clicked,
            impression_time=clicked - timedelta(milliseconds=250 * n),
            click_price=price.quantize(Decimal("1e-6")),
            bid_price=Decimal("60.000000") if n % 3 == 0 else Decimal("12.500000"),
        )
        revenue = (price * Decimal("1.2")).quantize(Decimal("1e-6"))
        sent.append(valid_joined(record, n % 3 == 0, 0.25 * n, category, str(revenue)))
        shown = T0 + timedelta(minutes=n % 5, milliseconds=11 * n)
        sent.append(
            Sent(
                IMPRESSIONS_OUT_TOPIC,
                impression(f"i-{n}", n % 2, 1000 + n, event_time=shown, campaign_id=f"cmp-{n % 4}"),
            )
        )
        if n % 4 == 0:
            sent.append(Sent(UNMATCHED_CLICKS_TOPIC, click(f"u-{n}", n % 2, 2000 + n)))
            sent.append(
                Sent(REJECTED_EVENTS_TOPIC, rejected("clicks", "late_event", f"{n}", n % 2, n))
            )
        if n % 30 == 0:
            sent.append(invalid_joined(joined(f"bad-{n}", ad_id=None), "ad_id is null"))
    return on_kinesis(sent)


def test_kill_minus_nine_mid_stream_then_restart_writes_every_outcome_once(
    lake_emulator: Settings, tmp_path: Path
) -> None:
    # Small batches twice a second, so that the kill lands between and inside table commits.
    settings = lake(
        lake_emulator,
        tmp_path / "data",
        enrich_trigger_interval=timedelta(seconds=0.5),
        enrich_max_batch_records=60,
    )
    sent = many_outcomes()
    # As an at-least-once join writes them: a third of them twice, the copies further on.
    put(settings, sent[:200] + again(sent[:100]) + sent[200:] + again(sent[250:300]))
    ensure_tables(settings)  # as `adstream enrich` does first: count rows from the start
    expected = expected_tables(sent)
    total = sum(len(rows) for rows in expected.values())

    endless = start_enrich(settings, bounded=False, detached=True)
    try:
        # Once a batch is written to the last table, dashboard_metrics_minute.
        wait_until(
            lambda: endless.poll() is None and row_counts(settings)[DASHBOARD_METRICS_MINUTE] > 0,
            timeout=300,
            interval=0.25,
            what="the first batch committed",
        )
    finally:
        os.killpg(endless.pid, signal.SIGKILL)
        endless.wait()
    assert 0 < sum(row_counts(settings).values()) < total  # killed mid-stream

    enrich_bounded(settings)
    assert_tables(settings, sent)


class CountingKinesis:
    """The emulator's client, refusing each shard's first two GetRecords as throttled, and
    noting every GetRecords call: its shard, when, and how many records it asked for."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[str, float, int]] = []
        self.refused: Counter[str] = Counter()
        self.shard_of: dict[str, str] = {}  # iterator -> its shard

    def list_shards(self, **request: Any) -> Any:
        return self.real.list_shards(**request)

    def get_shard_iterator(self, **request: Any) -> Any:
        answer = self.real.get_shard_iterator(**request)
        self.shard_of[answer["ShardIterator"]] = request["ShardId"]
        return answer

    def get_records(self, ShardIterator: str, Limit: int) -> Any:
        shard = self.shard_of[ShardIterator]
        self.calls.append((shard, time.monotonic(), Limit))
        if self.refused[shard] < 2:
            self.refused[shard] += 1
            raise ClientError({"Error": {"Code": THROTTLED, "Message": "slow down"}}, "GetRecords")
        answer = self.real.get_records(ShardIterator=ShardIterator, Limit=Limit)
        if answer.get("NextShardIterator"):
            self.shard_of[answer["NextShardIterator"]] = shard
        return answer


def test_the_reader_takes_parents_before_children_within_the_limits(
    aws_settings: Settings,
) -> None:
    ensure_streams(aws_settings, (JOINED_TOPIC,))
    stream = aws_settings.stream_name(JOINED_TOPIC)
    client = aws.client(aws_settings, "kinesis")
    before = [f"before-{n}" for n in range(40)]
    for value in before:
        client.put_record(StreamName=stream, Data=value.encode(), PartitionKey=value)
    client.merge_shards(
        StreamName=stream,
        ShardToMerge="shardId-000000000000",
        AdjacentShardToMerge="shardId-000000000001",
    )

    counting = CountingKinesis(client)
    poller = ShardPoller(
        counting, {JOINED_TOPIC: stream}, lambda topic, shard: None, where="the emulator"
    )
    records = []
    while not poller.at_tip:
        polled = poller.poll(25, to_tip=True)
        assert len(polled) <= 25
        records += polled

    parents = [r for r in records if r.shard in (0, 1)]
    child = [r for r in records if r.shard == 2]
    assert Counter(r.data.decode() for r in parents) == Counter(before)
    # The emulator copies the parents' records into the merged shard (and, unlike Kinesis,
    # keeps routing new records to the parents, so the child gets no others here): the
    # child's records are copies, which identity keeps out of the tables.
    assert Counter(r.data.decode() for r in child) == Counter(before)
    assert records[: len(parents)] == parents  # every parent record before any of the child
    for shard in (0, 1, 2):  # each shard in the order of its sequence numbers
        numbers = [r.sequence_number for r in records if r.shard == shard]
        assert numbers == sorted(numbers)
    # Within the limits: throttled calls were made again later, at most 5 calls a second per
    # shard, never more than 10,000 records asked for.
    assert counting.refused == {f"shardId-00000000000{n}": 2 for n in range(3)}
    for shard in counting.refused:
        times = [at for name, at, _ in counting.calls if name == shard]
        assert all(later - earlier >= 0.199 for earlier, later in pairwise(times))
    assert all(0 < limit <= MAX_RECORDS_PER_CALL for _, _, limit in counting.calls)
    assert poller.poll(25, to_tip=True) == []


def test_the_reader_starts_each_shard_after_the_position_given(aws_settings: Settings) -> None:
    ensure_streams(aws_settings, (IMPRESSIONS_OUT_TOPIC,))
    client = aws.client(aws_settings, "kinesis")
    stream = aws_settings.stream_name(IMPRESSIONS_OUT_TOPIC)
    landed = {}
    for n in range(30):
        answer = client.put_record(StreamName=stream, Data=str(n).encode(), PartitionKey=f"k{n}")
        landed[n] = (shard_number(answer["ShardId"]), int(answer["SequenceNumber"]))
    # The tables hold the first five records of shard 0, and nothing of shard 1.
    taken = {0: sorted(number for shard, number in landed.values() if shard == 0)[4]}
    poller = ShardPoller(
        client,
        {IMPRESSIONS_OUT_TOPIC: stream},
        lambda topic, shard: taken.get(shard) if topic == IMPRESSIONS_OUT_TOPIC else None,
        where="the emulator",
    )
    records = poller.poll(1000, to_tip=True)
    expected = [n for n, (shard, number) in landed.items() if number > taken.get(shard, 0)]
    assert sorted(int(r.data) for r in records) == expected
    assert len(expected) == 25
    assert poller.at_tip
