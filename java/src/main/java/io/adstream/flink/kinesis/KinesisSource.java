package io.adstream.flink.kinesis;

import java.io.Serializable;
import java.time.Duration;
import java.time.Instant;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.util.UserCodeClassLoader;

/**
 * A Kinesis Data Streams source (Flink's Source API): one split per shard, read by polling
 * GetRecords; see {@link ShardEnumerator} for how shards are found and handed out, {@link
 * ShardReader} for how one is read, and {@link KinesisSourceReader} for what is checkpointed.
 *
 * @param <T> the elements the records become
 */
final class KinesisSource<T>
        implements Source<T, ShardSplit, EnumeratorState>, ResultTypeQueryable<T> {

    private final KinesisConnection connection;
    private final ReadSettings settings;
    private final RecordDeserializer<T> deserializer;

    KinesisSource(
            KinesisConnection connection,
            ReadSettings settings,
            RecordDeserializer<T> deserializer) {
        this.connection = connection;
        this.settings = settings;
        this.deserializer = deserializer;
    }

    @Override
    public Boundedness getBoundedness() {
        return settings.bounded() ? Boundedness.BOUNDED : Boundedness.CONTINUOUS_UNBOUNDED;
    }

    @Override
    public SourceReader<T, ShardSplit> createReader(SourceReaderContext context) throws Exception {
        deserializer.open(
                new DeserializationSchema.InitializationContext() {
                    @Override
                    public MetricGroup getMetricGroup() {
                        return context.metricGroup().addGroup("deserializer");
                    }

                    @Override
                    public UserCodeClassLoader getUserCodeClassLoader() {
                        return context.getUserCodeClassLoader();
                    }
                });
        return new KinesisSourceReader<>(
                () -> new ShardReader(connection, settings),
                new KinesisSourceReader.Emitter<>(deserializer),
                new Configuration(),
                context,
                connection.streamName());
    }

    @Override
    public SplitEnumerator<ShardSplit, EnumeratorState> createEnumerator(
            SplitEnumeratorContext<ShardSplit> context) {
        return restoreEnumerator(context, EnumeratorState.empty());
    }

    @Override
    public SplitEnumerator<ShardSplit, EnumeratorState> restoreEnumerator(
            SplitEnumeratorContext<ShardSplit> context, EnumeratorState state) {
        return new ShardEnumerator(
                context, connection.createClient(), connection.streamArn(), settings, state);
    }

    @Override
    public SimpleVersionedSerializer<ShardSplit> getSplitSerializer() {
        return new ShardSplitSerializer();
    }

    @Override
    public SimpleVersionedSerializer<EnumeratorState> getEnumeratorCheckpointSerializer() {
        return new EnumeratorState.Serializer();
    }

    @Override
    public TypeInformation<T> getProducedType() {
        return deserializer.getProducedType();
    }

    /**
     * How the stream is read.
     *
     * @param initialPosition where shards listed as the job first starts are read from
     * @param initialTimestamp the start for AT_TIMESTAMP, else null
     * @param discoveryInterval how often the shards are listed (unbounded)
     * @param maxRecordsPerCall the Limit of each GetRecords call
     * @param emptyShardPause how long a shard rests after a call that returned nothing
     * @param boundedUntil bounded: records that arrived after this instant are not read (the
     *     instant the job was planned); unbounded: null
     */
    record ReadSettings(
            KinesisOptions.InitialPosition initialPosition,
            Instant initialTimestamp,
            Duration discoveryInterval,
            int maxRecordsPerCall,
            Duration emptyShardPause,
            Instant boundedUntil)
            implements Serializable {

        boolean bounded() {
            return boundedUntil != null;
        }

        /** The position of the shards of the first listing, made at {@code now}. */
        ShardSplit.Position firstPosition(Instant now) {
            switch (initialPosition) {
                case TRIM_HORIZON:
                    return ShardSplit.Position.trimHorizon();
                case AT_TIMESTAMP:
                    return ShardSplit.Position.atTimestamp(initialTimestamp);
                default:
                    return ShardSplit.Position.atTimestamp(now);
            }
        }
    }
}
