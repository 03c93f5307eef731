"""Contender (d), the floor: Kafka's own consumer performance tool reads the input topics raw.

`org.apache.kafka.tools.ConsumerPerformance` (kafka-tools, in lib/kafka) reads each input topic
from the beginning to the number of records it holds, one topic after the other, and prints
what it consumed; this script checks that every record was read. Nothing is parsed, joined or
written: no pipeline can be faster than this on the same broker.

    .venv/bin/python bench/contenders/kafka_floor.py --bootstrap-servers HOST:PORT
"""

import argparse
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from adstream.events.outcomes import INPUT_TOPICS

LIB = Path(__file__).resolve().parents[2] / "lib" / "kafka"


def records_in(bootstrap_servers: str, topic: str) -> int:
    """Records in a topic written without transactions (each offset is one record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "bench-floor"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        spans = [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in partitions
        ]
        return sum(high - low for low, high in spans)
    finally:
        consumer.close()


def consume(bootstrap_servers: str, topic: str, messages: int) -> int:
    """Run the tool on one topic; return the records it reports consumed."""
    output = subprocess.run(
        [
            "java",
            "-Xmx512m",
            "-cp",
            f"{LIB}/*",
            "org.apache.kafka.tools.ConsumerPerformance",
            *("--bootstrap-server", bootstrap_servers, "--topic", topic),
            *("--messages", str(messages), "--group", f"bench-floor-{uuid.uuid4()}"),
            "--hide-header",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # start, end, MB, MB/s, records, records/s, ...: one CSV line per run
    fields = output.strip().splitlines()[-1].split(",")
    return int(fields[4].strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    args = parser.parse_args()
    for topic in INPUT_TOPICS:
        expected = records_in(args.bootstrap_servers, topic)
        read = consume(args.bootstrap_servers, topic, expected)
        print(f"{topic}: read {read:,} of {expected:,} records", file=sys.stderr, flush=True)
        if read != expected:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
