package io.adstream.flink.kinesis;

import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.format.EncodingFormat;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.connector.sink.abilities.SupportsPartitioning;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;

/**
 * The table sink: rows encoded by the table's format, written by a {@link KinesisSink}, keyed by
 * the PARTITIONED BY columns or else at random.
 */
final class KinesisTableSink implements DynamicTableSink, SupportsPartitioning {

    private final DataType physicalType;
    private final EncodingFormat<SerializationSchema<RowData>> format;
    private final KinesisConnection connection;
    private final WriteSettings settings;

    /**
     * How the sink writes; the first five as Flink's async sink takes them.
     *
     * @param keyFields the positions of the PARTITIONED BY columns, none for random keys
     * @param keyDelimiter joins their values
     */
    record WriteSettings(
            int maxBatchSize,
            int maxInFlightRequests,
            int maxBufferedRequests,
            long maxBatchSizeInBytes,
            long maxTimeInBufferMs,
            boolean failOnError,
            List<RowData.FieldGetter> keyFields,
            String keyDelimiter) {}

    KinesisTableSink(
            DataType physicalType,
            EncodingFormat<SerializationSchema<RowData>> format,
            KinesisConnection connection,
            WriteSettings settings) {
        this.physicalType = physicalType;
        this.format = format;
        this.connection = connection;
        this.settings = settings;
    }

    @Override
    public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
        return format.getChangelogMode();
    }

    @Override
    public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
        RowToEntry converter =
                new RowToEntry(
                        format.createRuntimeEncoder(context, physicalType),
                        settings.keyFields(),
                        settings.keyDelimiter());
        return SinkV2Provider.of(
                new KinesisSink<>(
                        converter,
                        settings.maxBatchSize(),
                        settings.maxInFlightRequests(),
                        settings.maxBufferedRequests(),
                        settings.maxBatchSizeInBytes(),
                        settings.maxTimeInBufferMs(),
                        connection,
                        settings.failOnError()));
    }

    /**
     * Nothing to do: for {@code INSERT INTO t PARTITION (k = 'x')} the planner puts the constant
     * into each row, where the partition key reads it.
     */
    @Override
    public void applyStaticPartition(Map<String, String> partition) {}

    @Override
    public DynamicTableSink copy() {
        return new KinesisTableSink(physicalType, format, connection, settings);
    }

    @Override
    public String asSummaryString() {
        return "Kinesis";
    }

    /**
     * A row as a Kinesis record: its bytes from the format, its partition key from the PARTITIONED
     * BY columns, as the official connector makes it: their values as text joined by the delimiter
     * (null as "null"), cut to Kinesis' 256 characters; without such columns a random UUID.
     */
    static final class RowToEntry implements ElementConverter<RowData, PutRecordsRequestEntry> {

        static final int MAX_PARTITION_KEY_LENGTH = 256;

        private final SerializationSchema<RowData> format;
        private final List<RowData.FieldGetter> keyFields;
        private final String keyDelimiter;

        RowToEntry(
                SerializationSchema<RowData> format,
                List<RowData.FieldGetter> keyFields,
                String keyDelimiter) {
            this.format = format;
            this.keyFields = keyFields;
            this.keyDelimiter = keyDelimiter;
        }

        @Override
        public void open(WriterInitContext context) {
            try {
                format.open(context.asSerializationSchemaInitializationContext());
            } catch (Exception failed) {
                throw new IllegalStateException(
                        "Cannot open the format of the Kinesis sink", failed);
            }
        }

        @Override
        public PutRecordsRequestEntry apply(RowData row, SinkWriter.Context context) {
            return PutRecordsRequestEntry.builder()
                    .data(SdkBytes.fromByteArrayUnsafe(format.serialize(row)))
                    .partitionKey(partitionKey(row))
                    .build();
        }

        String partitionKey(RowData row) {
            if (keyFields.isEmpty()) {
                return UUID.randomUUID().toString();
            }
            StringBuilder key = new StringBuilder();
            for (RowData.FieldGetter field : keyFields) {
                if (key.length() > 0) {
                    key.append(keyDelimiter);
                }
                key.append(field.getFieldOrNull(row));
                if (key.length() >= MAX_PARTITION_KEY_LENGTH) {
                    break;
                }
            }
            if (key.length() == 0) {
                throw new IllegalArgumentException(
                        "The partition key of a row is empty (Kinesis needs 1 to 256 characters):"
                                + " the PARTITIONED BY columns hold empty strings");
            }
            return key.substring(0, Math.min(key.length(), MAX_PARTITION_KEY_LENGTH));
        }
    }
}
