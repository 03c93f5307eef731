"""The join on Kinesis (the emulator): the same outcomes as on Kafka, through the project's
connector (java/), for every crafted case; for a generated dataset through a kill -9, every
outcome at least once (the sink writes at least once; the enrichment drops the repeats by
identity, which test_enrich_kinesis.py checks)."""

import json
import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adstream.events.outcomes import INPUT_TOPICS, JOINED_TOPIC, Stream
from adstream.events.schema import INPUT_STREAMS
from adstream.generator.runner import generate
from adstream.join.launcher import latest_checkpoint
from adstream.platform import event_sink, read_records
from adstream.services.kinesis import ensure_streams
from adstream.services.process import wait_until
from adstream.settings import Settings
from tests.cli import ADSTREAM, adstream, interruptible
from tests.conftest import aws_env
from tests.integration.test_join import Case, Record, assert_outcomes, cases
from tests.integration.test_join_recovery import alive
from tests.join_harness import (
    JoinOutputs,
    assert_same_outputs,
    expected_outputs,
    join_settings,
    produce,
    read_outputs,
    run_bounded_join,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kinesis_case_outputs(
    aws_emulator: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Record], JoinOutputs, Settings]:
    settings = join_settings(
        aws_emulator,
        tmp_path_factory.mktemp("join-kinesis-cases"),
        stream_prefix="join-cases-",
        stream_shards=1,  # arrival order is the order of the cases
    )
    ensure_streams(settings)
    records = [record for case in cases() for record in case.records]
    produce(settings, [(r.stream, r.raw, None) for r in records])
    return records, run_bounded_join(settings), settings


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
def test_every_record_gets_the_outcome_it_gets_on_kafka(
    case: Case, kinesis_case_outputs: tuple[list[Record], JoinOutputs, Settings]
) -> None:
    records, outputs, settings = kinesis_case_outputs
    sequence_numbers = {
        stream: [r.offset for r in read_records(settings, INPUT_STREAMS[stream].topic)]
        for stream in INPUT_STREAMS
    }

    def offset_of(stream: Stream, number: int) -> int:
        return sequence_numbers[stream][number]

    assert_outcomes(case, records, outputs, offset_of)


def test_outcomes_carry_the_input_records_shard_and_sequence_number(
    kinesis_case_outputs: tuple[list[Record], JoinOutputs, Settings],
) -> None:
    records, outputs, settings = kinesis_case_outputs
    assert outputs.total() == len(records)
    assert_same_outputs(outputs, expected_outputs(settings))


def distinct(outputs: JoinOutputs) -> JoinOutputs:
    """The outcomes with repeats dropped (what the enrichment's identity check keeps)."""
    joined = {json.dumps(row, sort_keys=True, default=str): row for row in outputs.joined}
    return JoinOutputs(
        joined=sorted(joined.values(), key=lambda row: (row["impression_id"], row["click_time"])),
        unique_impressions=sorted(set(outputs.unique_impressions)),
        unmatched_clicks=sorted(set(outputs.unmatched_clicks)),
        rejected=sorted(set(outputs.rejected)),
    )


def test_kill_minus_nine_mid_stream_then_a_restart_loses_no_outcome(
    lake_emulator: Settings, tmp_path: Path
) -> None:
    settings = join_settings(
        lake_emulator,
        tmp_path / "join-kinesis-recovery",
        stream_prefix="join-recovery-",
        stream_shards=2,
        seed=12,
        rate=0.0,
        events=30_000,
        start_time=datetime(2026, 11, 1, tzinfo=UTC),
        duplicate_impression_fraction=0.02,
        duplicate_click_fraction=0.05,
        invalid_fraction=0.01,
    )
    ensure_streams(settings)
    generate(settings, event_sink(settings, INPUT_TOPICS))
    expected = expected_outputs(settings)
    assert expected.total() == 30_000  # every generated event is in Kinesis
    env = aws_env(settings) | {"ADSTREAM_CHECKPOINT_INTERVAL": "1", "ADSTREAM_IDLE_TIMEOUT": "3600"}
    log = tmp_path / "join.log"
    with log.open("ab") as output:
        first = subprocess.Popen(
            [ADSTREAM, "join"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=interruptible,
        )
    try:
        # Mid-stream: a checkpoint is complete and some results are out, far from all.
        wait_until(
            lambda: alive(first, log)
            and latest_checkpoint(settings.data_dir / "flink") is not None
            and len(read_records(settings, JOINED_TOPIC)) > 0,
            timeout=600,
            interval=1.0,
            what="the first results",
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = read_outputs(settings).total()
    assert 0 < before < expected.total()  # the kill really was mid-stream

    result = adstream("join", "--bounded", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "restoring" in result.stderr

    outputs = read_outputs(settings)
    assert_same_outputs(distinct(outputs), expected)
    reasons = Counter(reason for _, reason, _, _ in expected.rejected)
    wanted = ("duplicate_impression", "duplicate_click", "malformed_json", "future_timestamp")
    assert all(reasons[r] > 0 for r in wanted), reasons
    assert {partition for partition, _ in expected.unique_impressions} == {0, 1}
    # What was written twice is what the killed run wrote after its last checkpoint. The
    # enrichment writes such repeats to the tables once (tests/integration/test_enrich_kinesis.py).
    assert outputs.total() - expected.total() <= before
