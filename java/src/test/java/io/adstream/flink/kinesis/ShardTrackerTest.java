package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** {@link ShardTracker}: a shard is handed out only after its parents are read. */
class ShardTrackerTest {

    private static ShardSplit shard(int number, int... parents) {
        return ShardSplit.unread(
                id(number),
                Arrays.stream(parents).mapToObj(ShardTrackerTest::id).collect(Collectors.toList()),
                false,
                ShardSplit.Position.trimHorizon());
    }

    private static String id(int number) {
        return String.format("shardId-%012d", number);
    }

    private static List<String> ids(List<ShardSplit> splits) {
        return splits.stream().map(ShardSplit::shardId).collect(Collectors.toList());
    }

    private static void assignAll(ShardTracker tracker) {
        tracker.ready().forEach(tracker::assigned);
    }

    @Test
    void childrenOfASplitWaitForTheirParent() {
        // 0 and 1 open; 0 split into 2 and 3.
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        tracker.listed(List.of(shard(0), shard(1), shard(2, 0), shard(3, 0)));
        assertThat(ids(tracker.ready())).containsExactly(id(0), id(1));
        assignAll(tracker);
        assertThat(tracker.ready()).isEmpty();

        tracker.finished(List.of(id(1)));
        assertThat(tracker.ready()).isEmpty();
        tracker.finished(List.of(id(0)));
        assertThat(ids(tracker.ready())).containsExactly(id(2), id(3));
    }

    @Test
    void aMergedShardWaitsForBothParents() {
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        tracker.listed(List.of(shard(0), shard(1), shard(2, 0, 1)));
        assignAll(tracker);
        tracker.finished(List.of(id(0)));
        assertThat(tracker.ready()).isEmpty();
        tracker.finished(List.of(id(1)));
        assertThat(ids(tracker.ready())).containsExactly(id(2));
    }

    @Test
    void aParentNoLongerListedIsDone() {
        // Past the retention period a closed parent is neither listed nor readable.
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        tracker.listed(List.of(shard(5, 4), shard(6, 4)));
        assertThat(ids(tracker.ready())).containsExactly(id(5), id(6));
    }

    @Test
    void laterListingsAddOnlyNewShardsAndForgetExpiredFinishedOnes() {
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        tracker.listed(List.of(shard(0), shard(1)));
        assignAll(tracker);
        tracker.finished(List.of(id(0)));

        tracker.listed(List.of(shard(0), shard(1), shard(2, 0), shard(3, 0)));
        assertThat(ids(tracker.ready())).containsExactly(id(2), id(3)); // 0 is not read again
        assertThat(tracker.snapshot().finished()).containsExactly(id(0));

        tracker.listed(List.of(shard(1), shard(2, 0), shard(3, 0))); // 0 expired
        assertThat(tracker.snapshot().finished()).isEmpty();
        assertThat(ids(tracker.ready())).containsExactly(id(2), id(3));
    }

    @Test
    void finishedOnlyWhenEveryListedShardIs() {
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        assertThat(tracker.isEmpty()).isTrue();
        tracker.listed(List.of(shard(0), shard(1, 0)));
        assignAll(tracker);
        assertThat(tracker.allFinished()).isFalse();
        tracker.finished(List.of(id(0)));
        assertThat(tracker.allFinished()).isFalse(); // 1 is waiting
        assignAll(tracker);
        tracker.finished(List.of(id(1)));
        assertThat(tracker.allFinished()).isTrue();
    }

    @Test
    void restoresFromItsSnapshotAndTakesBackAFailedReadersShards() {
        ShardTracker tracker = new ShardTracker(EnumeratorState.empty());
        tracker.listed(List.of(shard(0), shard(1), shard(2, 0)));
        assignAll(tracker);

        ShardTracker restored = new ShardTracker(tracker.snapshot());
        assertThat(restored.snapshot()).isEqualTo(tracker.snapshot());
        assertThat(restored.ready()).isEmpty(); // 0 and 1 are with readers, 2 waits for 0

        ShardSplit resumed = shard(1).resumingAfter("42");
        restored.returned(List.of(resumed));
        assertThat(restored.ready()).containsExactly(resumed);

        restored.finished(Set.of(id(0)));
        restored.finished(Set.of(id(0))); // told again after a restore: no harm
        assertThat(ids(restored.ready())).containsExactly(id(1), id(2));
    }
}
