"""A record as stored in a stream, Kafka topic or Kinesis stream alike.

Apart from the clients that read them, so that reading Kinesis needs no Kafka client library
(the join on Managed Service for Apache Flink ships without one).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StoredRecord:
    """A committed record of a topic.

    On Kinesis `partition` is the number of the record's shard, `offset` its sequence number.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None  # None: a record without a value (a Kafka tombstone)
