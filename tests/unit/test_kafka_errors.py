"""Which Kafka client errors the launchers wait out instead of failing on."""

import pytest
from confluent_kafka import KafkaError, KafkaException

from adstream.services.kafka_client import transient


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.NOT_COORDINATOR,  # a new broker moving its group coordinator: seen in CI
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
        KafkaError.LEADER_NOT_AVAILABLE,
    ],
)
def test_a_broker_still_settling_is_waited_out(code: int) -> None:
    assert transient(KafkaException(KafkaError(code)))


@pytest.mark.parametrize(
    "code",
    [KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._FATAL],
)
def test_other_errors_are_not(code: int) -> None:
    assert not transient(KafkaException(KafkaError(code)))
