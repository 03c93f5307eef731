package io.adstream.flink.kinesis;

import java.time.Instant;
import java.util.List;
import org.apache.flink.api.connector.source.SourceSplit;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * One shard of the stream: the source's unit of work, and what a reader checkpoints for it.
 *
 * @param shardId the shard, also the split's id
 * @param parentShardIds the shards it was split or merged from: it is read only after they are
 *     (resharding keeps the order of a partition key's records across its shards)
 * @param closed whether the shard was already closed when it was listed (it has an ending sequence
 *     number and takes no more records)
 * @param position where reading starts next: an initial position, or just after the sequence number
 *     of the last record emitted
 * @param finished read to its end; a reader keeps finished splits in its checkpoints until the
 *     enumerator surely knows (see {@link KinesisSourceReader})
 */
record ShardSplit(
        String shardId,
        List<String> parentShardIds,
        boolean closed,
        Position position,
        boolean finished)
        implements SourceSplit {

    ShardSplit {
        parentShardIds = List.copyOf(parentShardIds);
    }

    /** A shard not read yet. */
    static ShardSplit unread(
            String shardId, List<String> parentShardIds, boolean closed, Position position) {
        return new ShardSplit(shardId, parentShardIds, closed, position, false);
    }

    @Override
    public String splitId() {
        return shardId;
    }

    /** This shard, to be read on after the record with this sequence number. */
    ShardSplit resumingAfter(String sequenceNumber) {
        return new ShardSplit(
                shardId, parentShardIds, closed, Position.after(sequenceNumber), finished);
    }

    /** This shard, read to its end. */
    ShardSplit asFinished() {
        return new ShardSplit(shardId, parentShardIds, closed, position, true);
    }

    /**
     * Where reading (re)starts, in the terms of GetShardIterator: TRIM_HORIZON, AT_TIMESTAMP with
     * its timestamp, or AFTER_SEQUENCE_NUMBER with its sequence number. The initial position LATEST
     * is stored as AT_TIMESTAMP of the moment the shards were first listed, so a job that restarts
     * before its first checkpoint still starts from the same records. The field a type does not use
     * is null.
     */
    record Position(ShardIteratorType type, String sequenceNumber, Instant timestamp) {

        static Position trimHorizon() {
            return new Position(ShardIteratorType.TRIM_HORIZON, null, null);
        }

        static Position atTimestamp(Instant timestamp) {
            return new Position(ShardIteratorType.AT_TIMESTAMP, null, timestamp);
        }

        static Position after(String sequenceNumber) {
            return new Position(ShardIteratorType.AFTER_SEQUENCE_NUMBER, sequenceNumber, null);
        }
    }
}
