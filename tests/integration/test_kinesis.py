"""The AWS stream path against the local emulator: `up | status | down`, producers, reading."""

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from adstream.events.outcomes import ALL_TOPICS, CLICKS_TOPIC, IMPRESSIONS_TOPIC, INPUT_TOPICS
from adstream.generator.sinks import KinesisSink
from adstream.platform import read_records
from adstream.services import aws
from adstream.services.kinesis import ensure_streams, stream_shards
from adstream.services.process import port_is_free
from adstream.settings import Settings, load_settings
from adstream.verify import read_source_records
from tests.cli import adstream
from tests.conftest import aws_env, free_ports

pytestmark = pytest.mark.integration

THROTTLED = "ProvisionedThroughputExceededException"
GENERATED = ("--seed", "7", "--events", "4000", "--rate", "0", "--start-time", "2026-11-01T00:00Z")


def test_up_starts_the_emulator_and_streams_status_shows_them_down_stops_it(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    settings = load_settings(
        data_dir=tmp_path / "instance",
        platform="aws",
        aws_emulator=True,
        aws_emulator_port=port,
        stream_prefix="dev-",
        stream_shards=3,
    )
    env = aws_env(settings)

    before = adstream("status", env=env)
    assert before.returncode == 3, before.stdout
    assert "aws emulator: stopped" in before.stdout

    up = adstream("up", env=env)
    assert up.returncode == 0, up.stderr
    assert "AWS emulator ready" in up.stderr
    assert stream_shards(settings) == {f"dev-{topic}": 3 for topic in ALL_TOPICS}

    status = adstream("status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"at http://127.0.0.1:{port}" in status.stdout
    assert "kinesis: 6 of 6 streams" in status.stdout
    assert "stream dev-ad_clicks: 3 open shards" in status.stdout

    again = adstream("up", env=env)  # a no-op
    assert again.returncode == 0 and "already running" in again.stdout

    down = adstream("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "AWS emulator stopped" in down.stdout
    assert port_is_free("127.0.0.1", port)
    assert adstream("status", env=env).returncode == 3


def test_generated_events_arrive_in_kinesis_exactly_once_keyed_by_impression_id(
    aws_settings: Settings, tmp_path: Path
) -> None:
    ensure_streams(aws_settings)
    env = aws_env(aws_settings)
    sent = adstream("generate", *GENERATED, env=env)
    assert sent.returncode == 0, sent.stderr
    written = adstream("generate", *GENERATED, "--to", "file", "--output", str(tmp_path), env=env)
    assert written.returncode == 0, written.stderr

    for topic in INPUT_TOPICS:
        expected = (tmp_path / f"{topic}.jsonl").read_text().splitlines()
        records = read_records(aws_settings, topic)
        assert Counter(r.value.decode() for r in records) == Counter(expected)
        keyed = 0
        for record in records:
            try:
                key = json.loads(record.value)["impression_id"]
            except (ValueError, KeyError, TypeError):
                continue  # an invalid record of the generator's
            if isinstance(key, str) and key:
                assert record.key == key.encode()
                keyed += 1
        assert keyed > 0.99 * len(records)
        assert {r.partition for r in records} == {0, 1}  # both shards receive records
    sources = read_source_records(aws_settings)  # what `adstream verify` recomputes from
    assert Counter(s.stream for s in sources) == {
        "impressions": len(read_records(aws_settings, IMPRESSIONS_TOPIC)),
        "clicks": len(read_records(aws_settings, CLICKS_TOPIC)),
    }


def test_produce_sends_every_line_once_and_refuses_a_record_kinesis_cannot_take(
    aws_settings: Settings, tmp_path: Path
) -> None:
    ensure_streams(aws_settings)
    env = aws_env(aws_settings)
    lines = [
        '{"impression_id": "imp-1", "click_price": 1.5}',
        "not json at all",
        '{"impression_id": "imp-2"}',
        '{"impression_id": 42}',
    ]
    result = adstream(
        "produce", "--topic", CLICKS_TOPIC, "-", input="\n".join(lines) + "\n\n", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "sent 4 records to ad_clicks (1 blank lines skipped)" in result.stderr
    records = read_records(aws_settings, CLICKS_TOPIC)
    assert sorted(r.value.decode() for r in records) == sorted(lines)
    keys = {r.value.decode(): r.key.decode() for r in records if r.key}
    assert keys['{"impression_id": "imp-1", "click_price": 1.5}'] == "imp-1"
    assert keys['{"impression_id": "imp-2"}'] == "imp-2"

    huge = '{"impression_id": "imp-3", "pad": "' + "x" * (1024 * 1024) + '"}\n'
    refused = adstream("produce", "--topic", CLICKS_TOPIC, "-", input=huge, env=env)
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith("adstream: error: a record for ad_clicks is")
    )
    assert "Traceback" not in refused.stderr
    assert len(read_records(aws_settings, CLICKS_TOPIC)) == len(lines)


class FlakyKinesis:
    """The emulator's real client, with the faults it cannot make itself.

    The first PutRecords is throttled as a whole; the next three store every other record and
    report the rest failed, as Kinesis does when a shard is over its limits.
    """

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0
        self.refused: list[bytes] = []

    def put_records(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise ClientError(
                {"Error": {"Code": THROTTLED, "Message": "Rate exceeded"}}, "PutRecords"
            )
        records = request["Records"]
        if self.calls > 4:
            return self.real.put_records(**request)
        accepted = records[::2]
        stored = iter(self.real.put_records(**{**request, "Records": accepted})["Records"])
        results: list[dict[str, Any]] = []
        for index, record in enumerate(records):
            if index % 2 == 0:
                results.append(next(stored))
            else:
                self.refused.append(record["Data"])
                results.append({"ErrorCode": THROTTLED, "ErrorMessage": "slow down"})
        return {"FailedRecordCount": len(records) - len(accepted), "Records": results}


def test_throttled_and_failed_records_are_sent_again_and_only_they(aws_settings: Settings) -> None:
    ensure_streams(aws_settings, (IMPRESSIONS_TOPIC,))
    sink = KinesisSink(aws_settings, (IMPRESSIONS_TOPIC,))
    flaky = FlakyKinesis(aws.client(aws_settings, "kinesis"))
    sink.client = flaky
    values = [json.dumps({"impression_id": f"imp-{i}", "n": i}) for i in range(1200)]
    sink.send([IMPRESSIONS_TOPIC] * len(values), [f"imp-{i}" for i in range(1200)], values)
    sink.close()

    assert flaky.refused  # the faults happened
    stored = [r.value.decode() for r in read_records(aws_settings, IMPRESSIONS_TOPIC)]
    assert Counter(stored) == Counter(values)  # every record once: none lost, none twice
    assert sink.sent == 1200


def test_a_sparse_stream_is_put_once_its_batch_has_lingered_not_when_full(
    aws_settings: Settings,
) -> None:
    """A click waits at most the linger behind the impressions sent after it (not until the
    close or 500 more clicks): it reaches the join with them."""
    ensure_streams(aws_settings, INPUT_TOPICS)
    sink = KinesisSink(aws_settings, INPUT_TOPICS)
    sink.send([CLICKS_TOPIC], ["imp-1"], ['{"impression_id": "imp-1"}'])
    time.sleep(KinesisSink.LINGER_S * 2)  # the generator sends the next slice after a while
    sink.send([IMPRESSIONS_TOPIC], ["imp-2"], ['{"impression_id": "imp-2"}'])

    assert [r.value for r in read_records(aws_settings, CLICKS_TOPIC)] == [
        b'{"impression_id": "imp-1"}'
    ]
    sink.close()
    assert len(read_records(aws_settings, IMPRESSIONS_TOPIC)) == 1
