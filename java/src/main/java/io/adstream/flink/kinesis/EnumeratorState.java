package io.adstream.flink.kinesis;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;

/**
 * What the enumerator checkpoints: the shards it knows of, by state.
 *
 * @param unassigned shards not read yet, waiting for a reader (or for their parents)
 * @param assigned ids of shards given to a reader and not finished; the reader checkpoints their
 *     positions
 * @param finished ids of shards read to their end, as long as the stream still lists them (so that
 *     they are not read again, and their children know they may start)
 */
record EnumeratorState(List<ShardSplit> unassigned, Set<String> assigned, Set<String> finished) {

    EnumeratorState {
        unassigned = List.copyOf(unassigned);
        assigned = Set.copyOf(assigned);
        finished = Set.copyOf(finished);
    }

    /** The state before the first listing of the shards. */
    static EnumeratorState empty() {
        return new EnumeratorState(List.of(), Set.of(), Set.of());
    }

    /**
     * Version 1: the unassigned splits (as {@link ShardSplitSerializer} writes them), then the
     * assigned and the finished ids, each set in sorted order. The version is the split
     * serializer's: a new layout of a split is a new layout of this state too.
     */
    static final class Serializer implements SimpleVersionedSerializer<EnumeratorState> {

        @Override
        public int getVersion() {
            return ShardSplitSerializer.VERSION;
        }

        @Override
        public byte[] serialize(EnumeratorState state) throws IOException {
            DataOutputSerializer out = new DataOutputSerializer(256);
            out.writeInt(state.unassigned().size());
            for (ShardSplit split : state.unassigned()) {
                ShardSplitSerializer.write(split, out);
            }
            for (Set<String> ids : List.of(state.assigned(), state.finished())) {
                out.writeInt(ids.size());
                for (String id : new TreeSet<>(ids)) {
                    out.writeUTF(id);
                }
            }
            return out.getCopyOfBuffer();
        }

        @Override
        public EnumeratorState deserialize(int version, byte[] serialized) throws IOException {
            ShardSplitSerializer.checkVersion(version, "enumerator state");
            DataInputDeserializer in = new DataInputDeserializer(serialized);
            int unassignedCount = in.readInt();
            List<ShardSplit> unassigned = new ArrayList<>(unassignedCount);
            for (int i = 0; i < unassignedCount; i++) {
                unassigned.add(ShardSplitSerializer.read(in));
            }
            List<Set<String>> idSets = new ArrayList<>(2);
            for (int set = 0; set < 2; set++) {
                int count = in.readInt();
                Set<String> ids = new TreeSet<>();
                for (int i = 0; i < count; i++) {
                    ids.add(in.readUTF());
                }
                idSets.add(ids);
            }
            return new EnumeratorState(unassigned, idSets.get(0), idSets.get(1));
        }
    }
}
