package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.ReaderOutput;
import org.apache.flink.api.connector.source.SourceEvent;
import org.apache.flink.api.connector.source.SourceOutput;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.source.reader.RecordsBySplits;
import org.apache.flink.connector.base.source.reader.RecordsWithSplitIds;
import org.apache.flink.connector.base.source.reader.splitreader.SplitReader;
import org.apache.flink.connector.base.source.reader.splitreader.SplitsChange;
import org.apache.flink.metrics.groups.SourceReaderMetricGroup;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.util.Collector;
import org.apache.flink.util.SimpleUserCodeClassLoader;
import org.apache.flink.util.UserCodeClassLoader;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * {@link KinesisSourceReader}: positions in checkpoints, and finished shards announced to the
 * enumerator and kept in checkpoints until one that holds them completes.
 */
class KinesisSourceReaderTest {

    private static final Duration PATIENCE = Duration.ofSeconds(30);

    /** Reads one record from each shard it gets ("shardId-...:42"), then finishes the shard. */
    private static final class OneRecordAShard implements SplitReader<Record, ShardSplit> {
        private final Queue<String> shards = new ArrayDeque<>();

        @Override
        public RecordsWithSplitIds<Record> fetch() {
            RecordsBySplits.Builder<Record> batch = new RecordsBySplits.Builder<>();
            String shard = shards.poll();
            if (shard == null) {
                LockSupport.parkNanos(5_000_000); // nothing to read: do not spin
                return batch.build();
            }
            batch.add(
                    shard,
                    Record.builder()
                            .sequenceNumber("42")
                            .partitionKey("k")
                            .data(SdkBytes.fromUtf8String(shard + ":42"))
                            .approximateArrivalTimestamp(Instant.EPOCH)
                            .build());
            batch.addFinishedSplit(shard);
            return batch.build();
        }

        @Override
        public void handleSplitsChanges(SplitsChange<ShardSplit> change) {
            change.splits().forEach(split -> shards.add(split.shardId()));
        }

        @Override
        public void wakeUp() {}

        @Override
        public void close() {}
    }

    private static final class AsText implements RecordDeserializer<String> {
        @Override
        public void open(DeserializationSchema.InitializationContext context) {}

        @Override
        public void deserialize(Record record, String shardId, Collector<String> out) {
            out.collect(record.data().asUtf8String());
        }

        @Override
        public TypeInformation<String> getProducedType() {
            return Types.STRING;
        }
    }

    /** The events the reader sends to the enumerator. */
    private static final class Context implements SourceReaderContext {
        final List<SourceEvent> sent = new CopyOnWriteArrayList<>();

        @Override
        public void sendSourceEventToCoordinator(SourceEvent event) {
            sent.add(event);
        }

        Set<String> announced() {
            Set<String> shards = new HashSet<>();
            sent.forEach(event -> shards.addAll(((ShardsFinishedEvent) event).shardIds()));
            return shards;
        }

        @Override
        public SourceReaderMetricGroup metricGroup() {
            return UnregisteredMetricsGroup.createSourceReaderMetricGroup();
        }

        @Override
        public Configuration getConfiguration() {
            return new Configuration();
        }

        @Override
        public String getLocalHostName() {
            return "localhost";
        }

        @Override
        public int getIndexOfSubtask() {
            return 0;
        }

        @Override
        public void sendSplitRequest() {}

        @Override
        public UserCodeClassLoader getUserCodeClassLoader() {
            return SimpleUserCodeClassLoader.create(getClass().getClassLoader());
        }
    }

    /** Collects what the reader emits. */
    private static final class Output implements ReaderOutput<String> {
        final List<String> records = new ArrayList<>();

        @Override
        public void collect(String record) {
            records.add(record);
        }

        @Override
        public void collect(String record, long timestamp) {
            records.add(record);
        }

        @Override
        public void emitWatermark(Watermark watermark) {}

        @Override
        public void markIdle() {}

        @Override
        public void markActive() {}

        @Override
        public SourceOutput<String> createOutputForSplit(String splitId) {
            return this;
        }

        @Override
        public void releaseOutputForSplit(String splitId) {}
    }

    private static ShardSplit shard(int number) {
        return ShardSplit.unread(
                String.format("shardId-%012d", number),
                List.of(),
                false,
                ShardSplit.Position.trimHorizon());
    }

    private static KinesisSourceReader<String> reader(Context context) {
        return new KinesisSourceReader<>(
                OneRecordAShard::new,
                new KinesisSourceReader.Emitter<>(new AsText()),
                new Configuration(),
                context,
                "s");
    }

    /** Polls the reader until {@code shards} were announced finished. */
    private static void pollUntilAnnounced(
            KinesisSourceReader<String> reader, Context context, Output output, Set<String> shards)
            throws Exception {
        Instant deadline = Instant.now().plus(PATIENCE);
        while (!context.announced().containsAll(shards)) {
            assertThat(Instant.now()).as("shards %s not finished", shards).isBefore(deadline);
            reader.pollNext(output);
            try {
                reader.isAvailable().get(100, TimeUnit.MILLISECONDS);
            } catch (TimeoutException nothingYet) {
                // Poll again.
            }
        }
    }

    @Test
    void finishedShardsStayInCheckpointsUntilOneThatHoldsThemCompletes() throws Exception {
        Context context = new Context();
        Output output = new Output();
        try (KinesisSourceReader<String> reader = reader(context)) {
            reader.start();
            reader.addSplits(List.of(shard(0), shard(1)));
            pollUntilAnnounced(
                    reader, context, output, Set.of(shard(0).shardId(), shard(1).shardId()));
            assertThat(output.records)
                    .containsExactlyInAnyOrder(
                            "shardId-000000000000:42", "shardId-000000000001:42");

            List<ShardSplit> finished =
                    List.of(
                            shard(0).resumingAfter("42").asFinished(),
                            shard(1).resumingAfter("42").asFinished());
            assertThat(reader.snapshotState(1)).containsExactlyInAnyOrderElementsOf(finished);
            assertThat(reader.snapshotState(2)).containsExactlyInAnyOrderElementsOf(finished);
            reader.notifyCheckpointComplete(1);
            assertThat(reader.snapshotState(3)).isEmpty();
        }
    }

    @Test
    void aRestoredFinishedShardIsAnnouncedAgainAndNotRead() throws Exception {
        Context context = new Context();
        Output output = new Output();
        ShardSplit finished = shard(0).resumingAfter("42").asFinished();
        try (KinesisSourceReader<String> reader = reader(context)) {
            reader.start();
            reader.addSplits(List.of(finished, shard(1).resumingAfter("7")));
            assertThat(context.announced()).containsExactly(finished.shardId());
            pollUntilAnnounced(reader, context, output, Set.of(shard(1).shardId()));
            assertThat(output.records).containsExactly("shardId-000000000001:42");
            assertThat(reader.snapshotState(5)).contains(finished);
        }
    }

    @Test
    void aTipMarkerEmitsNothingAndMovesTheShardsTipMomentNotItsPosition() throws Exception {
        KinesisSourceReader.ShardState state = new KinesisSourceReader.ShardState(shard(0));
        KinesisSourceReader.Emitter<String> emitter =
                new KinesisSourceReader.Emitter<>(new AsText());
        Output output = new Output();
        emitter.emitRecord(
                Record.builder()
                        .sequenceNumber("7")
                        .partitionKey("k")
                        .data(SdkBytes.fromUtf8String("r7"))
                        .approximateArrivalTimestamp(Instant.EPOCH)
                        .build(),
                output,
                state);
        emitter.emitRecord(ShardReader.tip(1_234), output, state);

        assertThat(output.records).containsExactly("r7");
        assertThat(state.tipReachedAt()).isEqualTo(1_234);
        assertThat(state.toSplit().position().sequenceNumber()).isEqualTo("7");
    }
}
