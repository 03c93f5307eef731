package io.adstream.flink.kinesis;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.connector.base.sink.AsyncSinkBase;
import org.apache.flink.connector.base.sink.writer.AsyncSinkWriterStateSerializer;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.connector.base.sink.writer.config.AsyncSinkWriterConfiguration;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/**
 * A Kinesis Data Streams sink on Flink's async sink: records are buffered and written with
 * PutRecords by {@link KinesisSinkWriter}, in batches within Kinesis' limits; every checkpoint
 * waits until all buffered records are written (at least once).
 *
 * @param <T> the elements written
 */
final class KinesisSink<T> extends AsyncSinkBase<T, PutRecordsRequestEntry> {

    /** Kinesis' limits: records per PutRecords, bytes per call, bytes per record (key included). */
    static final int MAX_RECORDS_PER_CALL = 500;

    static final long MAX_BYTES_PER_CALL = 5L * 1024 * 1024;
    static final long MAX_RECORD_BYTES = 1024 * 1024;

    private final KinesisConnection connection;
    private final boolean failOnError;

    /**
     * @param maxBatchSize records per PutRecords call, at most {@link #MAX_RECORDS_PER_CALL}
     * @param maxInFlightRequests calls under way at once
     * @param maxBufferedRequests records buffered before the sink applies back pressure
     * @param maxBatchSizeInBytes bytes per call, at most {@link #MAX_BYTES_PER_CALL}
     * @param maxTimeInBufferMs how long a record waits for its batch to fill
     * @param failOnError fail on any failed write rather than retrying what failed
     */
    KinesisSink(
            ElementConverter<T, PutRecordsRequestEntry> elementConverter,
            int maxBatchSize,
            int maxInFlightRequests,
            int maxBufferedRequests,
            long maxBatchSizeInBytes,
            long maxTimeInBufferMs,
            KinesisConnection connection,
            boolean failOnError) {
        super(
                elementConverter,
                maxBatchSize,
                maxInFlightRequests,
                maxBufferedRequests,
                maxBatchSizeInBytes,
                maxTimeInBufferMs,
                Math.min(MAX_RECORD_BYTES, maxBatchSizeInBytes));
        this.connection = connection;
        this.failOnError = failOnError;
    }

    @Override
    public StatefulSinkWriter<T, BufferedRequestState<PutRecordsRequestEntry>> createWriter(
            WriterInitContext context) {
        return restoreWriter(context, List.of());
    }

    @Override
    public StatefulSinkWriter<T, BufferedRequestState<PutRecordsRequestEntry>> restoreWriter(
            WriterInitContext context,
            Collection<BufferedRequestState<PutRecordsRequestEntry>> recoveredState) {
        return new KinesisSinkWriter<>(
                getElementConverter(),
                context,
                AsyncSinkWriterConfiguration.builder()
                        .setMaxBatchSize(getMaxBatchSize())
                        .setMaxBatchSizeInBytes(getMaxBatchSizeInBytes())
                        .setMaxInFlightRequests(getMaxInFlightRequests())
                        .setMaxBufferedRequests(getMaxBufferedRequests())
                        .setMaxTimeInBufferMS(getMaxTimeInBufferMS())
                        .setMaxRecordSizeInBytes(getMaxRecordSizeInBytes())
                        .build(),
                recoveredState,
                connection.createClient(),
                connection.streamArn(),
                failOnError);
    }

    @Override
    public SimpleVersionedSerializer<BufferedRequestState<PutRecordsRequestEntry>>
            getWriterStateSerializer() {
        return new EntrySerializer();
    }

    /**
     * Buffered records in a checkpoint (usually none: a checkpoint first writes them all). Version
     * 1: per record its data (length, bytes), then its partition key (UTF-8, length first).
     */
    static final class EntrySerializer
            extends AsyncSinkWriterStateSerializer<PutRecordsRequestEntry> {

        @Override
        protected void serializeRequestToStream(PutRecordsRequestEntry entry, DataOutputStream out)
                throws IOException {
            byte[] data = entry.data().asByteArrayUnsafe();
            out.writeInt(data.length);
            out.write(data);
            byte[] key = entry.partitionKey().getBytes(StandardCharsets.UTF_8);
            out.writeInt(key.length);
            out.write(key);
        }

        @Override
        protected PutRecordsRequestEntry deserializeRequestFromStream(
                long requestSize, DataInputStream in) throws IOException {
            byte[] data = new byte[in.readInt()];
            in.readFully(data);
            byte[] key = new byte[in.readInt()];
            in.readFully(key);
            return PutRecordsRequestEntry.builder()
                    .data(SdkBytes.fromByteArrayUnsafe(data))
                    .partitionKey(new String(key, StandardCharsets.UTF_8))
                    .build();
        }

        @Override
        public int getVersion() {
            return 1;
        }
    }
}
