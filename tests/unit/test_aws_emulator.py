"""The emulator's faster Kinesis shards answer exactly as moto's own."""

from collections.abc import Callable
from typing import Any

import pytest
from moto.kinesis.models import Shard

from adstream.services.aws_emulator import speed_up_moto_shards

Answer = tuple[list[int], int, int]


@pytest.fixture
def moto_get_records(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """moto's own GetRecords; the fast one is installed until the test ends."""
    original = Shard.get_records
    for name in ("get_records", "get_max_sequence_number", "get_min_sequence_number"):
        monkeypatch.setattr(Shard, name, getattr(Shard, name))
    speed_up_moto_shards()
    return original


def answer(result: tuple[list[Any], int, int]) -> Answer:
    records, last, behind = result
    return [r.sequence_number for r in records], last, behind


def shard_with(count: int) -> Shard:
    shard = Shard(0, starting_hash=0, ending_hash=2**128 - 1)
    for number in range(count):
        shard.put_record(f"key-{number}", b"data", str(number))
    return shard


@pytest.mark.parametrize("count", [0, 1, 50])
def test_every_position_and_limit_gets_moto_s_answer(
    count: int, moto_get_records: Callable[..., Any]
) -> None:
    shard = shard_with(count)
    assert shard.get_max_sequence_number() == count
    assert shard.get_min_sequence_number() == (1 if count else 0)
    for after in (0, 1, 10, 49, 50, 60):
        for limit in (None, 1, 7, 100):
            fast = answer(shard.get_records(str(after), limit))
            assert fast == answer(moto_get_records(shard, str(after), limit)), (after, limit)


def test_a_shard_with_gaps_in_its_keys_is_walked_as_moto_does(
    moto_get_records: Callable[..., Any],
) -> None:
    shard = shard_with(10)
    del shard.records[5]
    assert answer(shard.get_records("3", 4)) == ([4, 6, 7, 8], 8, 0)
    assert answer(shard.get_records("3", 4)) == answer(moto_get_records(shard, "3", 4))
