package io.adstream.flink.kinesis;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.connector.source.SourceEvent;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.connector.source.SplitsAssignment;
import org.apache.flink.util.FlinkRuntimeException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.ListShardsRequest;
import software.amazon.awssdk.services.kinesis.model.ListShardsResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;

/**
 * Lists the stream's shards (ListShards) and hands each to a reader once its parents are read
 * ({@link ShardTracker}).
 *
 * <p>The first listing gives every shard the configured initial position; shards found later come
 * from resharding and are read from their start. Unbounded, the shards are listed again every
 * {@code source.shard.discovery.interval}. Bounded, they are listed once as the job starts (a shard
 * created later holds only later records), and the readers are told that no more shards will come
 * once every listed shard is finished.
 */
final class ShardEnumerator implements SplitEnumerator<ShardSplit, EnumeratorState> {

    private static final Logger LOG = LoggerFactory.getLogger(ShardEnumerator.class);

    private final SplitEnumeratorContext<ShardSplit> context;
    private final KinesisAsyncClient kinesis;
    private final String streamArn;
    private final KinesisSource.ReadSettings settings;
    private final ShardTracker tracker;

    /** Which reader has which unfinished shard, for balancing; empty after a restore. */
    private final Map<String, Integer> owners = new HashMap<>();

    private final Set<Integer> toldNoMoreShards = new HashSet<>();
    private boolean listedOnce;

    /** Lists the shards with {@code kinesis}, which it closes when it closes. */
    ShardEnumerator(
            SplitEnumeratorContext<ShardSplit> context,
            KinesisAsyncClient kinesis,
            String streamArn,
            KinesisSource.ReadSettings settings,
            EnumeratorState state) {
        this.context = context;
        this.kinesis = kinesis;
        this.streamArn = streamArn;
        this.settings = settings;
        this.tracker = new ShardTracker(state);
    }

    @Override
    public void start() {
        ShardSplit.Position later = ShardSplit.Position.trimHorizon();
        if (tracker.isEmpty()) {
            context.callAsync(
                    () -> listShards(settings.firstPosition(Instant.now())), this::listed);
        } else if (settings.bounded()) {
            context.callAsync(() -> listShards(later), this::listed);
        }
        if (!settings.bounded()) {
            long interval = settings.discoveryInterval().toMillis();
            context.callAsync(() -> listShards(later), this::listedAgain, interval, interval);
        }
    }

    /**
     * Every shard of the stream, as splits starting at {@code position}; not on the enumerator
     * thread.
     */
    private List<ShardSplit> listShards(ShardSplit.Position position) {
        List<ShardSplit> splits = new ArrayList<>();
        ListShardsRequest request = ListShardsRequest.builder().streamARN(streamArn).build();
        while (true) {
            ListShardsResponse page = KinesisConnection.await(kinesis.listShards(request));
            for (Shard shard : page.shards()) {
                List<String> parents = new ArrayList<>(2);
                if (shard.parentShardId() != null) {
                    parents.add(shard.parentShardId());
                }
                if (shard.adjacentParentShardId() != null) {
                    parents.add(shard.adjacentParentShardId());
                }
                boolean closed = shard.sequenceNumberRange().endingSequenceNumber() != null;
                splits.add(ShardSplit.unread(shard.shardId(), parents, closed, position));
            }
            if (page.nextToken() == null) {
                return splits;
            }
            request = ListShardsRequest.builder().nextToken(page.nextToken()).build();
        }
    }

    /** The listing as the job starts: without it there is nothing to read, so it must work. */
    private void listed(List<ShardSplit> shards, Throwable failure) {
        if (failure != null) {
            throw new FlinkRuntimeException(
                    "Cannot list the shards of Kinesis stream " + streamArn, failure);
        }
        tracker.listed(shards);
        listedOnce = true;
        assign();
    }

    /** A periodic listing: one that fails is tried again at the next interval. */
    private void listedAgain(List<ShardSplit> shards, Throwable failure) {
        if (failure != null) {
            LOG.warn(
                    "Cannot list the shards of Kinesis stream {}; trying again in {}",
                    streamArn,
                    settings.discoveryInterval(),
                    failure);
            return;
        }
        listed(shards, null);
    }

    @Override
    public void addReader(int subtaskId) {
        toldNoMoreShards.remove(subtaskId); // a reader that failed over must be told again
        assign();
    }

    @Override
    public void handleSourceEvent(int subtaskId, SourceEvent event) {
        if (event instanceof ShardsFinishedEvent) {
            Set<String> shardIds = ((ShardsFinishedEvent) event).shardIds();
            tracker.finished(shardIds);
            owners.keySet().removeAll(shardIds);
            assign();
        }
    }

    @Override
    public void addSplitsBack(List<ShardSplit> splits, int subtaskId) {
        tracker.returned(splits);
        splits.forEach(split -> owners.remove(split.shardId()));
        // The reader gets them back when it registers again (addReader).
    }

    @Override
    public void handleSplitRequest(int subtaskId, String requesterHostname) {
        // Shards are pushed to the readers as they become ready.
    }

    /**
     * Hands each ready shard to the reader with the fewest, once every reader has registered (so
     * the first shards spread over all of them); bounded, ends the readers when all is read.
     */
    private void assign() {
        Set<Integer> readers = context.registeredReaders().keySet();
        if (readers.size() < context.currentParallelism()) {
            return;
        }
        Map<Integer, List<ShardSplit>> assignment = new HashMap<>();
        for (ShardSplit split : tracker.ready()) {
            int reader = leastLoaded(readers);
            assignment.computeIfAbsent(reader, r -> new ArrayList<>()).add(split);
            owners.put(split.shardId(), reader);
            tracker.assigned(split);
            LOG.info("Assigning shard {} of {} to reader {}", split.shardId(), streamArn, reader);
        }
        if (!assignment.isEmpty()) {
            context.assignSplits(new SplitsAssignment<>(assignment));
        }
        if (settings.bounded() && listedOnce && tracker.allFinished()) {
            for (int reader : readers) {
                if (toldNoMoreShards.add(reader)) {
                    context.signalNoMoreSplits(reader);
                }
            }
        }
    }

    private int leastLoaded(Set<Integer> readers) {
        Map<Integer, Integer> load = new HashMap<>();
        readers.forEach(reader -> load.put(reader, 0));
        owners.values().forEach(reader -> load.computeIfPresent(reader, (r, count) -> count + 1));
        return load.entrySet().stream()
                .min(
                        Map.Entry.<Integer, Integer>comparingByValue()
                                .thenComparing(Map.Entry.comparingByKey()))
                .orElseThrow()
                .getKey();
    }

    @Override
    public EnumeratorState snapshotState(long checkpointId) {
        return tracker.snapshot();
    }

    @Override
    public void close() {
        kinesis.close();
    }
}
