"""The local broker: real Kafka in KRaft mode, managed by `adstream up | down | status`."""

import json
import os
import signal
import socket
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from adstream.events.outcomes import ALL_TOPICS, INPUT_TOPICS
from adstream.generator.runner import generate, records
from adstream.generator.sinks import KafkaSink
from adstream.services.kafka import KafkaBroker
from adstream.services.kafka_client import consumer_config, ensure_topics, topic_partitions
from adstream.services.process import wait_until
from adstream.settings import Settings
from tests.cli import adstream
from tests.conftest import instance_env, instance_settings
from tests.join_harness import delete_topics, recreate_topics

pytestmark = pytest.mark.integration


def consume_all(
    settings: Settings, topics: tuple[str, ...], expected: int
) -> list[tuple[str, str | None, str]]:
    """Read (topic, key, value) until `expected` records arrived or 120 s of silence."""
    consumer = Consumer(consumer_config(settings, group_id=f"test-{datetime.now(UTC).timestamp()}"))
    consumer.subscribe(list(topics))
    received: list[tuple[str, str | None, str]] = []
    idle_polls = 0
    try:
        while len(received) < expected and idle_polls < 120:
            messages = consumer.consume(num_messages=10_000, timeout=1.0)
            idle_polls = 0 if messages else idle_polls + 1
            for message in messages:
                assert message.error() is None, message.error()
                key = message.key()
                received.append(
                    (message.topic(), key.decode() if key else None, message.value().decode())
                )
    finally:
        consumer.close()
    return received


def test_topics_exist_with_configured_partitions(kafka: Settings) -> None:
    delete_topics(kafka)  # other tests recreate them with other partition counts
    assert set(ensure_topics(kafka)) == set(ALL_TOPICS)  # what `adstream up` does
    partitions = topic_partitions(kafka)
    assert {topic: partitions[topic] for topic in ALL_TOPICS} == {topic: 2 for topic in ALL_TOPICS}


def test_generated_events_arrive_intact_and_keyed_by_impression_id(kafka: Settings) -> None:
    settings = kafka.model_copy(
        update={
            "seed": 21,
            "rate": 0.0,
            "events": 50_000,
            "invalid_fraction": 0.0,
            "start_time": datetime(2026, 11, 1, tzinfo=UTC),
        }
    )
    recreate_topics(settings, partitions=2)
    report = generate(settings, KafkaSink(settings, INPUT_TOPICS))
    assert report.events == 50_000

    received = consume_all(settings, INPUT_TOPICS, expected=50_000)

    sent = [
        (t, k, v)
        for b in records(settings)
        for t, k, v in zip(b.topics, b.keys, b.values, strict=True)
    ]
    assert len(received) == 50_000
    assert Counter(received) == Counter(sent)
    for _, key, value in received[:1000]:
        assert json.loads(value)["impression_id"] == key


def test_up_twice_is_a_no_op_and_status_reports(kafka: Settings) -> None:
    env = instance_env(kafka)
    again = adstream("up", env=env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    status = adstream("status", env=env)
    assert status.returncode == 0
    assert f"at 127.0.0.1:{kafka.kafka_port}" in status.stdout
    assert "topic ad_clicks: 2 partitions" in status.stdout


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    settings = instance_settings(tmp_path / "busy")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka_port))
        squatter.listen()
        result = adstream("up", env=instance_env(settings))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"adstream: error: port {settings.kafka_port} on 127.0.0.1 is already in use; stop what "
        "uses it or choose other ports (ADSTREAM_KAFKA_PORT, ADSTREAM_KAFKA_CONTROLLER_PORT)"
    )


def test_second_instance_side_by_side_then_down(kafka: Settings, tmp_path: Path) -> None:
    other = instance_settings(tmp_path / "second", topic_partitions=3)
    env = instance_env(other) | {"ADSTREAM_TOPIC_PARTITIONS": "3"}
    (other.data_dir / "kafka").mkdir(parents=True)
    (other.data_dir / "kafka" / "kafka.pid").write_text("999999\n")  # stale, from a crash

    up = adstream("up", env=env)
    assert up.returncode == 0, up.stderr
    assert "removed stale PID file" in up.stderr
    try:
        assert topic_partitions(other)["ad_clicks"] == 3
        assert topic_partitions(kafka)["ad_clicks"] == 2  # the first instance is untouched

        sent = adstream("generate", "--rate", "0", "--events", "2000", env=env)
        assert sent.returncode == 0, sent.stderr
        assert len(consume_all(other, INPUT_TOPICS, expected=2000)) == 2000
    finally:
        down = adstream("down", env=env)
    assert down.returncode == 0, down.stderr
    assert "Kafka stopped" in down.stderr
    stopped = adstream("status", env=env)
    assert stopped.returncode == 3
    assert "stopped" in stopped.stdout
    assert adstream("down", env=env).stdout.startswith("Kafka is not running")
    assert topic_partitions(kafka)["ad_clicks"] == 2


def test_produce_replays_a_file_keyed_by_impression_id(kafka: Settings, tmp_path: Path) -> None:
    topic = "unmatched_clicks"
    recreate_topics(kafka, partitions=2)
    lines = [
        json.dumps({"impression_id": "imp-a", "click_price": 1.5}),
        "",
        '{"impression_id": "imp-b", broken',
        json.dumps({"ad_id": "no-impression-id"}),
    ]
    (tmp_path / "replay.jsonl").write_text("\n".join(lines) + "\n")

    result = adstream(
        "produce", "--topic", topic, str(tmp_path / "replay.jsonl"), env=instance_env(kafka)
    )
    assert result.returncode == 0, result.stderr
    assert "sent 3 records to unmatched_clicks (1 blank lines skipped)" in result.stderr

    received = consume_all(kafka, (topic,), expected=3)
    assert sorted(received, key=lambda r: r[2]) == sorted(
        [(topic, "imp-a", lines[0]), (topic, None, lines[2]), (topic, None, lines[3])],
        key=lambda r: r[2],
    )


def test_produce_from_stdin_to_unknown_topic_fails_clearly(kafka: Settings) -> None:
    result = adstream("produce", "--topic", "nope", "-", env=instance_env(kafka), input="{}\n")
    assert result.returncode == 1
    assert "topic nope does not exist" in result.stderr


def test_the_generator_holds_its_records_while_the_broker_restarts(tmp_path: Path) -> None:
    """The sink waits for a broker killed mid-flush, calling `waiting` (where `adstream run`
    restarts it) meanwhile; then every record arrives, once."""
    settings = instance_settings(
        tmp_path / "restarted",
        seed=5,
        rate=0.0,
        events=20_000,
        start_time=datetime(2026, 11, 1, tzinfo=UTC),
    )
    broker = KafkaBroker(settings)
    broker.start()
    try:
        waited: list[float] = []

        def restart_the_broker() -> None:
            waited.append(time.monotonic())
            if broker.process.pid() is None and len(waited) >= 3:  # held a few seconds first
                broker.start()

        sink = KafkaSink(settings, INPUT_TOPICS, waiting=restart_the_broker)
        pid = broker.process.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: broker.process.pid() is None, timeout=60, what="Kafka to die")
        report = generate(settings, sink)  # its close flushes into the dead broker

        assert len(waited) >= 3
        sent = Counter(
            (t, k, v)
            for b in records(settings)
            for t, k, v in zip(b.topics, b.keys, b.values, strict=True)
        )
        assert report.events == 20_000
        assert Counter(consume_all(settings, INPUT_TOPICS, expected=20_000)) == sent
    finally:
        broker.stop()
