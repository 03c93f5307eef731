package io.adstream.flink.kinesis;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * The enumerator's book of shards: which are waiting, which a reader has, which are done, and so
 * which may be handed out now. Not thread-safe; the enumerator uses it from its own thread.
 *
 * <p>A shard is ready once each of its parents is done: finished here, or no longer known at all (a
 * parent past the stream's retention period is neither listed nor readable). So within one
 * partition key, records are read in the order they were written, across splits and merges.
 */
final class ShardTracker {

    /** Shards waiting, by id (sorted, so shards are handed out in a stable order). */
    private final Map<String, ShardSplit> unassigned = new TreeMap<>();

    private final Set<String> assigned = new HashSet<>();
    private final Set<String> finished = new HashSet<>();

    ShardTracker(EnumeratorState state) {
        state.unassigned().forEach(split -> unassigned.put(split.shardId(), split));
        assigned.addAll(state.assigned());
        finished.addAll(state.finished());
    }

    /** Whether no shard was ever listed (a stream always has at least one). */
    boolean isEmpty() {
        return unassigned.isEmpty() && assigned.isEmpty() && finished.isEmpty();
    }

    /**
     * Takes in a listing of every shard of the stream: shards not seen before join the waiting
     * ones, and finished shards the stream no longer lists are forgotten.
     */
    void listed(List<ShardSplit> shards) {
        Set<String> listedIds = new HashSet<>();
        for (ShardSplit shard : shards) {
            String id = shard.shardId();
            listedIds.add(id);
            if (!unassigned.containsKey(id) && !assigned.contains(id) && !finished.contains(id)) {
                unassigned.put(id, shard);
            }
        }
        finished.retainAll(listedIds);
    }

    /** The waiting shards whose parents are all done, in shard id order. */
    List<ShardSplit> ready() {
        List<ShardSplit> ready = new ArrayList<>();
        for (ShardSplit split : unassigned.values()) {
            if (split.parentShardIds().stream().allMatch(this::isDone)) {
                ready.add(split);
            }
        }
        return ready;
    }

    /** A reader now has this shard. */
    void assigned(ShardSplit split) {
        unassigned.remove(split.shardId());
        assigned.add(split.shardId());
    }

    /** These shards were read to their end (told again after a restore: no harm). */
    void finished(Collection<String> shardIds) {
        for (String id : shardIds) {
            unassigned.remove(id);
            assigned.remove(id);
            finished.add(id);
        }
    }

    /** A failed reader's shards, assigned since the last checkpoint, are waiting again. */
    void returned(Collection<ShardSplit> splits) {
        for (ShardSplit split : splits) {
            assigned.remove(split.shardId());
            unassigned.put(split.shardId(), split);
        }
    }

    /** Whether every shard listed so far was read to its end. */
    boolean allFinished() {
        return unassigned.isEmpty() && assigned.isEmpty();
    }

    EnumeratorState snapshot() {
        return new EnumeratorState(new ArrayList<>(unassigned.values()), assigned, finished);
    }

    private boolean isDone(String shardId) {
        return finished.contains(shardId)
                || !(unassigned.containsKey(shardId) || assigned.contains(shardId));
    }
}
