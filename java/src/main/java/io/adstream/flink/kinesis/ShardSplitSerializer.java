package io.adstream.flink.kinesis;

import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.core.memory.DataOutputView;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * Writes a {@link ShardSplit} into checkpoints. Version 1: shard id, parent ids, closed, the
 * position (iterator type, then its sequence number or its timestamp as seconds and nanoseconds),
 * finished. A new layout gets a new version, and this class keeps reading the old ones.
 */
final class ShardSplitSerializer implements SimpleVersionedSerializer<ShardSplit> {

    static final int VERSION = 1;

    @Override
    public int getVersion() {
        return VERSION;
    }

    @Override
    public byte[] serialize(ShardSplit split) throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(64);
        write(split, out);
        return out.getCopyOfBuffer();
    }

    @Override
    public ShardSplit deserialize(int version, byte[] serialized) throws IOException {
        checkVersion(version, "shard split");
        return read(new DataInputDeserializer(serialized));
    }

    static void checkVersion(int version, String what) throws IOException {
        if (version != VERSION) {
            throw new IOException(
                    String.format(
                            "Unknown version %d of a Kinesis %s in a checkpoint (this connector"
                                    + " reads version %d)",
                            version, what, VERSION));
        }
    }

    static void write(ShardSplit split, DataOutputView out) throws IOException {
        out.writeUTF(split.shardId());
        out.writeInt(split.parentShardIds().size());
        for (String parent : split.parentShardIds()) {
            out.writeUTF(parent);
        }
        out.writeBoolean(split.closed());
        ShardSplit.Position position = split.position();
        out.writeUTF(position.type().toString());
        switch (position.type()) {
            case AFTER_SEQUENCE_NUMBER:
                out.writeUTF(position.sequenceNumber());
                break;
            case AT_TIMESTAMP:
                out.writeLong(position.timestamp().getEpochSecond());
                out.writeInt(position.timestamp().getNano());
                break;
            default:
                break;
        }
        out.writeBoolean(split.finished());
    }

    static ShardSplit read(DataInputView in) throws IOException {
        String shardId = in.readUTF();
        int parentCount = in.readInt();
        List<String> parents = new ArrayList<>(parentCount);
        for (int i = 0; i < parentCount; i++) {
            parents.add(in.readUTF());
        }
        boolean closed = in.readBoolean();
        ShardIteratorType type = ShardIteratorType.fromValue(in.readUTF());
        ShardSplit.Position position;
        switch (type) {
            case AFTER_SEQUENCE_NUMBER:
                position = ShardSplit.Position.after(in.readUTF());
                break;
            case AT_TIMESTAMP:
                position =
                        ShardSplit.Position.atTimestamp(
                                Instant.ofEpochSecond(in.readLong(), in.readInt()));
                break;
            case TRIM_HORIZON:
                position = ShardSplit.Position.trimHorizon();
                break;
            default:
                throw new IOException("Unexpected starting position " + type + " in a checkpoint");
        }
        return new ShardSplit(shardId, parents, closed, position, in.readBoolean());
    }
}
