package io.adstream.flink.kinesis;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.source.reader.RecordEmitter;
import org.apache.flink.connector.base.source.reader.SingleThreadMultiplexSourceReaderBase;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.util.Collector;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * Reads the shards given to one parallel instance of the source, on one fetcher thread ({@link
 * ShardReader}), and checkpoints for each shard the sequence number of the last record emitted.
 *
 * <p>Flink's per-split outputs give every shard its own watermark, as Kafka's partitions have (and
 * idleness, when the watermark strategy has it, per shard too).
 *
 * <p>When a shard is read to its end, the enumerator is told ({@link ShardsFinishedEvent}) so it
 * can hand out the shard's children. That message is not part of any checkpoint: if the job
 * restored a checkpoint taken after the shard left this reader's state but before the enumerator
 * heard, the children would wait forever. So the finished shard stays in this reader's checkpoints,
 * marked finished, until a checkpoint that includes it completes (by then the enumerator has the
 * message, which was sent before this reader acknowledged that checkpoint); a restored finished
 * shard is announced again.
 */
final class KinesisSourceReader<T>
        extends SingleThreadMultiplexSourceReaderBase<
                Record, T, ShardSplit, KinesisSourceReader.ShardState> {

    private final List<ShardSplit> finishedSinceSnapshot = new ArrayList<>();

    /** Finished shards by the checkpoint that first holds them. */
    private final NavigableMap<Long, List<ShardSplit>> finishedByCheckpoint = new TreeMap<>();

    private final String streamName;

    KinesisSourceReader(
            Supplier<SplitReader<Record, ShardSplit>> shardReaders,
            RecordEmitter<Record, T, ShardState> emitter,
            Configuration config,
            SourceReaderContext context,
            String streamName) {
        super(shardReaders, emitter, config, context);
        this.streamName = streamName;
    }

    @Override
    public void addSplits(List<ShardSplit> splits) {
        List<ShardSplit> finished =
                splits.stream().filter(ShardSplit::finished).collect(Collectors.toList());
        if (!finished.isEmpty()) {
            announce(finished);
        }
        super.addSplits(
                splits.stream().filter(split -> !split.finished()).collect(Collectors.toList()));
    }

    @Override
    protected void onSplitFinished(Map<String, ShardState> finishedSplits) {
        finishedSplits.values().forEach(state -> state.tipReachedAt = Long.MAX_VALUE);
        announce(
                finishedSplits.values().stream()
                        .map(state -> state.toSplit().asFinished())
                        .collect(Collectors.toList()));
    }

    private void announce(List<ShardSplit> finished) {
        finishedSinceSnapshot.addAll(finished);
        Set<String> ids = finished.stream().map(ShardSplit::shardId).collect(Collectors.toSet());
        context.sendSourceEventToCoordinator(new ShardsFinishedEvent(ids));
    }

    @Override
    public List<ShardSplit> snapshotState(long checkpointId) {
        if (!finishedSinceSnapshot.isEmpty()) {
            finishedByCheckpoint.put(checkpointId, new ArrayList<>(finishedSinceSnapshot));
            finishedSinceSnapshot.clear();
        }
        List<ShardSplit> state = new ArrayList<>(super.snapshotState(checkpointId));
        finishedByCheckpoint.values().forEach(state::addAll);
        return state;
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) throws Exception {
        finishedByCheckpoint.headMap(checkpointId, true).clear();
        super.notifyCheckpointComplete(checkpointId);
    }

    /**
     * A shard's state, and its metric {@code KinesisSource.stream.<name>.shard.<id>.tipReachedAt}:
     * the latest moment (epoch milliseconds) by which every record the shard held then has been
     * handed downstream; 0 until then, the largest long once the shard is finished. A bounded run
     * of adstream's join drains once every input shard shows a moment after the input's end.
     */
    @Override
    protected ShardState initializedState(ShardSplit split) {
        ShardState state = new ShardState(split);
        context.metricGroup()
                .addGroup("KinesisSource")
                .addGroup("stream", streamName)
                .addGroup("shard", split.shardId())
                .gauge("tipReachedAt", () -> state.tipReachedAt);
        return state;
    }

    @Override
    protected ShardSplit toSplitType(String splitId, ShardState state) {
        return state.toSplit();
    }

    /** A shard being read: the split it came as, and the last record emitted from it since. */
    static final class ShardState {
        private final ShardSplit split;
        private String lastSequenceNumber;
        private volatile long tipReachedAt;

        ShardState(ShardSplit split) {
            this.split = split;
        }

        long tipReachedAt() {
            return tipReachedAt;
        }

        ShardSplit toSplit() {
            return lastSequenceNumber == null ? split : split.resumingAfter(lastSequenceNumber);
        }
    }

    /**
     * Emits a record's elements with the record's arrival time as their timestamp, then moves the
     * shard's position past it.
     */
    static final class Emitter<T> implements RecordEmitter<Record, T, ShardState> {
        private final RecordDeserializer<T> deserializer;
        private final OutputCollector<T> collector = new OutputCollector<>();

        Emitter(RecordDeserializer<T> deserializer) {
            this.deserializer = deserializer;
        }

        @Override
        public void emitRecord(Record record, SourceOutput<T> output, ShardState state)
                throws Exception {
            if (ShardReader.isTip(record)) {
                state.tipReachedAt = record.approximateArrivalTimestamp().toEpochMilli();
                return;
            }
            collector.output = output;
            collector.timestamp = record.approximateArrivalTimestamp().toEpochMilli();
            deserializer.deserialize(record, state.split.shardId(), collector);
            state.lastSequenceNumber = record.sequenceNumber();
        }
    }

    private static final class OutputCollector<T> implements Collector<T> {
        private SourceOutput<T> output;
        private long timestamp;

        @Override
        public void collect(T element) {
            output.collect(element, timestamp);
        }

        @Override
        public void close() {}
    }
}
