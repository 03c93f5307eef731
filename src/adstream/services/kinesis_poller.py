"""Polling Kinesis streams shard by shard with GetRecords, within the service's limits.

A `ShardPoller` reads a set of streams from given positions onwards: every shard, parents
before their children (a child is read once each of its parents is read to its end), at most
`CALLS_PER_SECOND` GetRecords calls per second per shard and `MAX_RECORDS_PER_CALL` records
per call. Throttled calls are retried with exponential backoff and jitter, on that shard only,
for up to `retry_for` seconds. Shards are listed again at each `poll`, so resharding is
followed: a closed shard read to its end is done, and its children are found and read next.
"""

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from adstream.errors import AdstreamError
from adstream.services import aws
from adstream.services.kinesis import shard_number, shards

log = logging.getLogger(__name__)

CALLS_PER_SECOND: Final = 5
"""GetRecords calls per shard and second that Kinesis allows."""
MAX_RECORDS_PER_CALL: Final = 10_000
"""GetRecords' largest page."""
BACKOFF_FIRST_S: Final = 0.1
BACKOFF_MAX_S: Final = 5.0
THROTTLED: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "ThrottlingException",
        "KMSThrottlingException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
"""Refusals that pass with time: the call is made again later."""


@dataclass(frozen=True)
class ShardRecord:
    """One record read: its topic, shard number, sequence number and data."""

    topic: str
    shard: int
    sequence_number: int
    data: bytes


@dataclass
class _Shard:
    topic: str
    stream: str
    shard_id: str
    parents: frozenset[str]
    closed: bool
    after: int | None
    """The last sequence number read (None: read from the oldest record retained)."""
    iterator: str | None = None
    ended: bool = False
    """A closed shard read to its end."""
    at_tip: bool = False
    """Its last answer was empty and at the tip of the shard."""
    next_call: float = 0.0
    failures: int = 0
    failing_since: float | None = None

    @property
    def number(self) -> int:
        return shard_number(self.shard_id)


class ShardPoller:
    """Reads the shards of some streams from where a caller says, in order, within limits."""

    def __init__(
        self,
        client: Any,
        streams: Mapping[str, str],
        resume: Callable[[str, int], int | None],
        *,
        where: str,
        retry_for: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Poll `streams` (topic -> stream name) with a Kinesis `client`.

        Args:
            client: a boto3 Kinesis client.
            streams: the streams to read, by the topic they stand for.
            resume: where to start a shard the first time it is seen: after this sequence
                number (topic, shard number -> sequence number), or None for its oldest record.
            where: the endpoint, for error messages.
            retry_for: how long a shard may stay throttled before the poll fails.
            clock: monotonic seconds (tests pass their own).
            sleep: waits between calls (tests pass their own).
        """
        self.client = client
        self.streams = dict(streams)
        self.resume = resume
        self.where = where
        self.retry_for = retry_for
        self.clock = clock
        self.sleep = sleep
        self.shards: dict[tuple[str, str], _Shard] = {}
        self.calls = 0
        """GetRecords calls made (for logs and tests)."""

    @property
    def at_tip(self) -> bool:
        """Every shard is read to its end or to its tip (as of its last answer)."""
        return bool(self.shards) and all(s.ended or s.at_tip for s in self.shards.values())

    def finish(self) -> None:
        """From now on `poll(to_tip=True)` reads every shard to its tip once more."""
        for shard in self.shards.values():
            shard.at_tip = False

    def poll(
        self, budget: int, *, to_tip: bool = False, stop: Callable[[], bool] = lambda: False
    ) -> list[ShardRecord]:
        """The next records, at most `budget`, in order per shard.

        Each shard that can be read (its parents are read to their end) is read until it has
        caught up with its tip, or the budget is used. With `to_tip`, each is read until an
        answer is empty at its tip, and then left alone, so that repeated polls end (`at_tip`)
        however fast records arrive.
        """
        for topic in self.streams:
            self._list(topic)
        records: list[ShardRecord] = []
        caught_up: set[tuple[str, str]] = set()
        while len(records) < budget and not stop():
            ready = [
                shard
                for key, shard in self._readable().items()
                if key not in caught_up and not (to_tip and shard.at_tip)
            ]
            if not ready:
                break
            shard = min(ready, key=lambda s: s.next_call)
            wait = shard.next_call - self.clock()
            if wait > 0:
                self.sleep(wait)
            # A share of what is left, so that every shard advances in a batch.
            share = max(1, (budget - len(records)) // len(ready))
            page = self._get_records(shard, min(MAX_RECORDS_PER_CALL, share))
            if page is None:
                continue  # throttled, or a new iterator was needed: the shard is rescheduled
            found = page["Records"]
            records.extend(
                ShardRecord(shard.topic, shard.number, int(r["SequenceNumber"]), bytes(r["Data"]))
                for r in found
            )
            if found:
                shard.after = int(found[-1]["SequenceNumber"])
            shard.iterator = page.get("NextShardIterator")
            behind = int(page.get("MillisBehindLatest", 0))
            shard.at_tip = not found and behind == 0
            if behind == 0 and not to_tip:
                caught_up.add((shard.stream, shard.shard_id))
            if shard.iterator is None or (shard.closed and shard.at_tip):
                shard.ended = True
                log.info("shard %s of %s read to its end", shard.shard_id, shard.stream)
                self._list(shard.topic)  # its children, if they are new
        return records

    def _readable(self) -> dict[tuple[str, str], _Shard]:
        """Shards not done whose parents (those still listed) are read to their end."""
        return {
            key: shard
            for key, shard in self.shards.items()
            if not shard.ended
            and all(
                self.shards[(shard.stream, parent)].ended
                for parent in shard.parents
                if (shard.stream, parent) in self.shards
            )
        }

    def _list(self, topic: str) -> None:
        """Learn a stream's shards: new ones (with where to start) and which are closed."""
        stream = self.streams[topic]
        try:
            listed = shards(self.client, stream)
        except ClientError as error:
            if aws.error_code(error) in THROTTLED:
                log.debug("listing the shards of %s throttled: %s", stream, aws.describe(error))
                return  # the shards known so far do for now
            raise AdstreamError(
                f"cannot list the shards of {stream}: {aws.describe(error)}"
            ) from error
        except BotoCoreError as error:
            raise self._unreachable(error) from error
        for listing in listed:
            key = (stream, listing["ShardId"])
            closed = "EndingSequenceNumber" in listing.get("SequenceNumberRange", {})
            if key in self.shards:
                self.shards[key].closed = closed
                continue
            parents = {listing.get("ParentShardId"), listing.get("AdjacentParentShardId")}
            shard_id = listing["ShardId"]
            self.shards[key] = _Shard(
                topic,
                stream,
                shard_id,
                frozenset(parent for parent in parents if parent),
                closed,
                after=self.resume(topic, shard_number(shard_id)),
            )

    def _get_records(self, shard: _Shard, limit: int) -> dict[str, Any] | None:
        if shard.iterator is None:
            position: dict[str, str] = {"ShardIteratorType": "TRIM_HORIZON"}
            if shard.after is not None:
                position = {
                    "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                    "StartingSequenceNumber": str(shard.after),
                }
            answer = self._call(
                shard,
                lambda: self.client.get_shard_iterator(
                    StreamName=shard.stream, ShardId=shard.shard_id, **position
                ),
            )
            if answer is None:
                return None
            shard.iterator = str(answer["ShardIterator"])
        iterator = shard.iterator
        self.calls += 1
        shard.next_call = self.clock() + 1 / CALLS_PER_SECOND  # later still if throttled
        return self._call(
            shard, lambda: self.client.get_records(ShardIterator=iterator, Limit=limit)
        )

    def _call(self, shard: _Shard, request: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """Make a call for a shard; None when it must be made again later (rescheduled)."""
        try:
            answer = request()
        except ClientError as error:
            code = aws.error_code(error)
            if code == "ExpiredIteratorException":
                shard.iterator = None  # a new one from the last record read
                return None
            if code not in THROTTLED:
                raise AdstreamError(
                    f"cannot read stream {shard.stream}: {aws.describe(error)}"
                ) from error
            now = self.clock()
            if shard.failing_since is None:
                shard.failing_since = now
            elif now - shard.failing_since > self.retry_for:
                raise AdstreamError(
                    f"reading {shard.shard_id} of {shard.stream} was refused for "
                    f"{self.retry_for:.0f} s; last: {aws.describe(error)}"
                ) from error
            shard.failures += 1
            backoff = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**shard.failures)
            # Never sooner than the per-shard rate allows either.
            shard.next_call = max(shard.next_call, now + backoff * random.uniform(0.5, 1.0))
            log.debug("%s of %s: %s", shard.shard_id, shard.stream, aws.describe(error))
            return None
        except BotoCoreError as error:
            raise self._unreachable(error) from error
        shard.failures, shard.failing_since = 0, None
        return answer

    def _unreachable(self, error: Exception) -> AdstreamError:
        return AdstreamError(f"Kinesis is not reachable at {self.where}: {aws.describe(error)}")
