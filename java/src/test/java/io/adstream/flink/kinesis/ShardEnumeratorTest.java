package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import org.apache.flink.api.connector.source.ReaderInfo;
import org.apache.flink.api.connector.source.SplitsAssignment;
import org.apache.flink.api.connector.source.mocks.MockSplitEnumeratorContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.services.kinesis.model.HashKeyRange;
import software.amazon.awssdk.services.kinesis.model.ListShardsRequest;
import software.amazon.awssdk.services.kinesis.model.ListShardsResponse;
import software.amazon.awssdk.services.kinesis.model.SequenceNumberRange;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * {@link ShardEnumerator} with two readers, over a stream whose shard 0 was split into 2 and 3: the
 * children are handed out only once their parent is read.
 */
class ShardEnumeratorTest {

    private static final String ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks";

    private final MockSplitEnumeratorContext<ShardSplit> context =
            new MockSplitEnumeratorContext<>(2);

    /** Answers ListShards from {@link #shards}, one shard a page (to follow NextToken). */
    private static final class Listing extends FakeKinesisClient {
        final List<Shard> shards = new ArrayList<>();

        @Override
        public CompletableFuture<ListShardsResponse> listShards(ListShardsRequest request) {
            int index = request.nextToken() == null ? 0 : Integer.parseInt(request.nextToken());
            assertThat(request.streamARN()).isEqualTo(index == 0 ? ARN : null);
            return CompletableFuture.completedFuture(
                    ListShardsResponse.builder()
                            .shards(shards.get(index))
                            .nextToken(index + 1 < shards.size() ? String.valueOf(index + 1) : null)
                            .build());
        }

        void add(int number, boolean closed, Integer parent) {
            shards.add(
                    Shard.builder()
                            .shardId(id(number))
                            .parentShardId(parent == null ? null : id(parent))
                            .hashKeyRange(
                                    HashKeyRange.builder()
                                            .startingHashKey("0")
                                            .endingHashKey("1")
                                            .build())
                            .sequenceNumberRange(
                                    SequenceNumberRange.builder()
                                            .startingSequenceNumber("1")
                                            .endingSequenceNumber(closed ? "9" : null)
                                            .build())
                            .build());
        }
    }

    private static String id(int number) {
        return String.format("shardId-%012d", number);
    }

    private static KinesisSource.ReadSettings settings(
            KinesisOptions.InitialPosition position, boolean bounded) {
        return new KinesisSource.ReadSettings(
                position,
                null,
                Duration.ofSeconds(10),
                10_000,
                Duration.ofMillis(250),
                bounded ? Instant.now() : null);
    }

    private static Listing splitStream() {
        Listing listing = new Listing();
        listing.add(0, true, null);
        listing.add(1, false, null);
        listing.add(2, false, 0);
        listing.add(3, false, 0);
        return listing;
    }

    private ShardEnumerator started(Listing listing, KinesisSource.ReadSettings settings)
            throws Throwable {
        ShardEnumerator enumerator =
                new ShardEnumerator(context, listing, ARN, settings, EnumeratorState.empty());
        enumerator.start();
        for (int reader = 0; reader < 2; reader++) {
            context.registerReader(new ReaderInfo(reader, "localhost"));
            enumerator.addReader(reader);
        }
        context.runNextOneTimeCallable(); // the first listing
        return enumerator;
    }

    /** Every assignment so far: shard id to reader. */
    private Map<String, Integer> assigned() {
        Map<String, Integer> owners = new HashMap<>();
        for (SplitsAssignment<ShardSplit> assignment : context.getSplitsAssignmentSequence()) {
            assignment
                    .assignment()
                    .forEach(
                            (reader, splits) ->
                                    splits.forEach(s -> owners.put(s.shardId(), reader)));
        }
        return owners;
    }

    private List<ShardSplit> assignedSplits() {
        return context.getSplitsAssignmentSequence().stream()
                .flatMap(assignment -> assignment.assignment().values().stream())
                .flatMap(List::stream)
                .collect(Collectors.toList());
    }

    @AfterEach
    void closeContext() throws Exception {
        context.close();
    }

    @Test
    void childrenAreHandedOutOnlyAfterTheirParentIsRead() throws Throwable {
        ShardEnumerator enumerator =
                started(
                        splitStream(),
                        settings(KinesisOptions.InitialPosition.TRIM_HORIZON, false));
        assertThat(assigned()).containsOnlyKeys(id(0), id(1));
        assertThat(assigned().get(id(0))).isNotEqualTo(assigned().get(id(1))); // one each

        enumerator.handleSourceEvent(1, new ShardsFinishedEvent(Set.of(id(1))));
        assertThat(assigned()).containsOnlyKeys(id(0), id(1)); // 1 has no children

        enumerator.handleSourceEvent(0, new ShardsFinishedEvent(Set.of(id(0))));
        assertThat(assigned()).containsOnlyKeys(id(0), id(1), id(2), id(3));
        assertThat(assignedSplits())
                .extracting(split -> split.position().type())
                .containsOnly(ShardIteratorType.TRIM_HORIZON);
    }

    @Test
    void shardsFoundLaterAreReadFromTheirStart() throws Throwable {
        Listing listing = new Listing();
        listing.add(0, false, null);
        ShardEnumerator enumerator =
                started(listing, settings(KinesisOptions.InitialPosition.LATEST, false));
        // LATEST is fixed as the instant of the first listing.
        assertThat(assignedSplits().get(0).position().type())
                .isEqualTo(ShardIteratorType.AT_TIMESTAMP);

        listing.shards.set(0, splitStream().shards.get(0)); // 0 was split into 2 and 3
        listing.add(2, false, 0);
        listing.add(3, false, 0);
        context.runPeriodicCallable(0);
        assertThat(assigned()).containsOnlyKeys(id(0));
        enumerator.handleSourceEvent(0, new ShardsFinishedEvent(Set.of(id(0))));
        assertThat(assignedSplits())
                .filteredOn(split -> !split.shardId().equals(id(0)))
                .extracting(split -> split.position().type())
                .containsExactly(ShardIteratorType.TRIM_HORIZON, ShardIteratorType.TRIM_HORIZON);
    }

    @Test
    void boundedEndsTheReadersOnceEveryShardIsRead() throws Throwable {
        ShardEnumerator enumerator =
                started(splitStream(), settings(KinesisOptions.InitialPosition.TRIM_HORIZON, true));
        assertThat(context.getPeriodicCallables()).isEmpty(); // listed once
        enumerator.handleSourceEvent(0, new ShardsFinishedEvent(Set.of(id(0), id(1))));
        enumerator.handleSourceEvent(1, new ShardsFinishedEvent(Set.of(id(2))));
        assertThat(context.hasNoMoreSplits(0)).isFalse();
        enumerator.handleSourceEvent(0, new ShardsFinishedEvent(Set.of(id(3))));
        assertThat(context.hasNoMoreSplits(0)).isTrue();
        assertThat(context.hasNoMoreSplits(1)).isTrue();
    }

    @Test
    void aRestoredEnumeratorHandsOutOnlyWhatNoReaderHas() throws Throwable {
        ShardEnumerator first =
                started(
                        splitStream(),
                        settings(KinesisOptions.InitialPosition.TRIM_HORIZON, false));
        EnumeratorState state = first.snapshotState(1);
        assertThat(state.assigned()).containsExactlyInAnyOrder(id(0), id(1));
        assertThat(state.unassigned())
                .extracting(ShardSplit::shardId)
                .containsExactly(id(2), id(3));

        MockSplitEnumeratorContext<ShardSplit> restoredContext =
                new MockSplitEnumeratorContext<>(1);
        ShardEnumerator restored =
                new ShardEnumerator(
                        restoredContext,
                        splitStream(),
                        ARN,
                        settings(KinesisOptions.InitialPosition.TRIM_HORIZON, false),
                        state);
        restored.start();
        restoredContext.registerReader(new ReaderInfo(0, "localhost"));
        restored.addReader(0);
        assertThat(restoredContext.getOneTimeCallables()).isEmpty(); // no new first listing
        assertThat(restoredContext.getSplitsAssignmentSequence()).isEmpty();
        restored.handleSourceEvent(0, new ShardsFinishedEvent(Set.of(id(0))));
        assertThat(restoredContext.getSplitsAssignmentSequence().get(0).assignment().get(0))
                .extracting(ShardSplit::shardId)
                .containsExactly(id(2), id(3));
        restoredContext.close();
    }
}
