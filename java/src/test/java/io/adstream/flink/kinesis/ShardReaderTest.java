package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsAddition;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.model.ExpiredIteratorException;
import software.amazon.awssdk.services.kinesis.model.GetRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.GetShardIteratorRequest;
import software.amazon.awssdk.services.kinesis.model.GetShardIteratorResponse;
import software.amazon.awssdk.services.kinesis.model.ProvisionedThroughputExceededException;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/** {@link ShardReader} on one shard served by a fake Kinesis that can throttle and expire. */
class ShardReaderTest {

    private static final String SHARD = "shardId-000000000000";
    private static final Instant T0 = Instant.parse("2026-11-01T00:00:00Z");

    /**
     * One shard's records (sequence numbers far beyond a long, as on AWS), one a second from T0.
     */
    private static final class FakeShard extends FakeKinesisClient {
        final List<Record> records = new ArrayList<>();
        final boolean closed;
        final List<String> iteratorsAsked = new ArrayList<>();
        final List<Long> callTimes = new ArrayList<>();
        int throttleNext;
        boolean expireNext;

        FakeShard(int count, boolean closed) {
            for (int i = 0; i < count; i++) {
                records.add(
                        Record.builder()
                                .sequenceNumber(
                                        "4959033827149025660855969253836157109592157598913658"
                                                + (1000 + i))
                                .partitionKey("k")
                                .data(SdkBytes.fromUtf8String("r" + i))
                                .approximateArrivalTimestamp(T0.plusSeconds(i))
                                .build());
            }
            this.closed = closed;
        }

        @Override
        public CompletableFuture<GetShardIteratorResponse> getShardIterator(
                GetShardIteratorRequest request) {
            int start = 0;
            if (request.shardIteratorType() == ShardIteratorType.AFTER_SEQUENCE_NUMBER) {
                iteratorsAsked.add("AFTER " + request.startingSequenceNumber());
                while (!records.get(start)
                        .sequenceNumber()
                        .equals(request.startingSequenceNumber())) {
                    start++;
                }
                start++;
            } else {
                iteratorsAsked.add(request.shardIteratorTypeAsString());
            }
            return CompletableFuture.completedFuture(
                    GetShardIteratorResponse.builder()
                            .shardIterator(String.valueOf(start))
                            .build());
        }

        @Override
        public CompletableFuture<GetRecordsResponse> getRecords(GetRecordsRequest request) {
            callTimes.add(System.currentTimeMillis());
            if (throttleNext > 0) {
                throttleNext--;
                return CompletableFuture.failedFuture(
                        ProvisionedThroughputExceededException.builder()
                                .message("Rate exceeded")
                                .build());
            }
            if (expireNext) {
                expireNext = false;
                return CompletableFuture.failedFuture(
                        ExpiredIteratorException.builder().message("Iterator expired").build());
            }
            int from = Integer.parseInt(request.shardIterator());
            int to = Math.min(records.size(), from + request.limit());
            boolean atEnd = to == records.size();
            return CompletableFuture.completedFuture(
                    GetRecordsResponse.builder()
                            .records(records.subList(from, to))
                            .nextShardIterator(closed && atEnd ? null : String.valueOf(to))
                            .millisBehindLatest(atEnd ? 0L : 1_000L)
                            .build());
        }
    }

    private static KinesisSource.ReadSettings settings(int limit, Instant boundedUntil) {
        return new KinesisSource.ReadSettings(
                KinesisOptions.InitialPosition.TRIM_HORIZON,
                null,
                Duration.ofSeconds(10),
                limit,
                Duration.ofMillis(300),
                boundedUntil);
    }

    private static ShardReader reader(FakeShard shard, KinesisSource.ReadSettings settings) {
        ShardReader reader =
                new ShardReader(shard, "arn:aws:kinesis:us-east-1:123456789012:stream/s", settings);
        reader.handleSplitsChanges(
                new SplitsAddition<>(
                        List.of(
                                ShardSplit.unread(
                                        SHARD,
                                        List.of(),
                                        shard.closed,
                                        ShardSplit.Position.trimHorizon()))));
        return reader;
    }

    /** What fetching gave, until the shard finished or {@code calls} GetRecords were made. */
    private static final class Fetched {
        final List<String> records = new ArrayList<>();
        final Set<String> finished = new HashSet<>();
    }

    private static Fetched fetch(ShardReader reader, FakeShard shard, int calls) throws Exception {
        Fetched fetched = new Fetched();
        while (fetched.finished.isEmpty() && shard.callTimes.size() < calls) {
            RecordsWithSplitIds<Record> batch = reader.fetch();
            while (batch.nextSplit() != null) {
                Record record;
                while ((record = batch.nextRecordFromSplit()) != null) {
                    fetched.records.add(
                            ShardReader.isTip(record) ? "tip" : record.data().asUtf8String());
                }
            }
            fetched.finished.addAll(batch.finishedSplits());
        }
        return fetched;
    }

    private static List<Long> gaps(FakeShard shard) {
        List<Long> gaps = new ArrayList<>();
        for (int i = 1; i < shard.callTimes.size(); i++) {
            gaps.add(shard.callTimes.get(i) - shard.callTimes.get(i - 1));
        }
        return gaps;
    }

    @Test
    void readsInPagesAtMostFiveCallsASecondUntilAClosedShardEnds() throws Exception {
        FakeShard shard = new FakeShard(5, true);
        Fetched fetched = fetch(reader(shard, settings(2, null)), shard, 10);
        assertThat(fetched.records).containsExactly("r0", "r1", "r2", "r3", "r4");
        assertThat(fetched.finished).containsExactly(SHARD);
        assertThat(shard.callTimes).hasSize(3); // the last page has no next iterator
        assertThat(gaps(shard))
                .allSatisfy(
                        gap ->
                                assertThat(gap)
                                        .isGreaterThanOrEqualTo(
                                                ShardReader.MIN_CALL_INTERVAL_MS - 10));
    }

    @Test
    void anOpenShardReadToItsTipRestsAndGoesOn() throws Exception {
        FakeShard shard = new FakeShard(2, false);
        Fetched fetched = fetch(reader(shard, settings(10, null)), shard, 3);
        // Each empty answer at the tip is marked after the records read before it.
        assertThat(fetched.records).containsExactly("r0", "r1", "tip", "tip");
        assertThat(fetched.finished).isEmpty();
        // After the records, then after an empty answer, the pause for an empty shard (300 ms).
        assertThat(gaps(shard).get(1)).isGreaterThanOrEqualTo(290);
    }

    @Test
    void anExpiredIteratorIsReplacedByOneAfterTheLastRecordRead() throws Exception {
        FakeShard shard = new FakeShard(4, true);
        ShardReader reader = reader(shard, settings(2, null));
        Fetched first = fetch(reader, shard, 1);
        shard.expireNext = true;
        Fetched rest = fetch(reader, shard, 10);
        assertThat(first.records).containsExactly("r0", "r1");
        assertThat(rest.records).containsExactly("r2", "r3");
        assertThat(shard.iteratorsAsked)
                .containsExactly("TRIM_HORIZON", "AFTER " + shard.records.get(1).sequenceNumber());
    }

    @Test
    void aThrottledShardBacksOffDoubling() throws Exception {
        FakeShard shard = new FakeShard(1, true);
        shard.throttleNext = 3;
        Fetched fetched = fetch(reader(shard, settings(10, null)), shard, 10);
        assertThat(fetched.records).containsExactly("r0");
        List<Long> gaps = gaps(shard);
        assertThat(gaps).hasSize(3);
        assertThat(gaps.get(0)).isGreaterThanOrEqualTo(190);
        assertThat(gaps.get(1)).isGreaterThanOrEqualTo(390);
        assertThat(gaps.get(2)).isGreaterThanOrEqualTo(790);
    }

    @Test
    void boundedStopsBeforeTheFirstRecordThatArrivedAfterTheBound() throws Exception {
        FakeShard shard = new FakeShard(5, false);
        Fetched fetched = fetch(reader(shard, settings(10, T0.plusSeconds(2))), shard, 10);
        assertThat(fetched.records).containsExactly("r0", "r1", "r2");
        assertThat(fetched.finished).containsExactly(SHARD);
    }

    @Test
    void boundedEndsAnOpenShardOnceCaughtUp() throws Exception {
        FakeShard shard = new FakeShard(3, false);
        Fetched fetched = fetch(reader(shard, settings(2, T0.plusSeconds(60))), shard, 10);
        assertThat(fetched.records).containsExactly("r0", "r1", "r2");
        assertThat(fetched.finished).containsExactly(SHARD);
        assertThat(shard.callTimes).hasSize(3); // two pages, then an empty answer at the tip
    }
}
