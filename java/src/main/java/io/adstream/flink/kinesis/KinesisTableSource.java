package io.adstream.flink.kinesis;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.ProviderContext;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.connector.source.DataStreamScanProvider;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.types.DataType;
import org.apache.flink.util.Collector;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * The table source: a {@link KinesisSource} whose records are decoded by the table's format ('raw',
 * 'json', ...), with the official connector's metadata columns, and the table's watermark generated
 * inside the source, per shard.
 */
final class KinesisTableSource
        implements ScanTableSource, SupportsReadingMetadata, SupportsWatermarkPushDown {

    /** The metadata a table can read, by the official connector's keys and types. */
    enum Metadata {
        TIMESTAMP("timestamp", DataTypes.TIMESTAMP_WITH_LOCAL_TIME_ZONE(3).notNull()),
        SHARD_ID("shard-id", DataTypes.VARCHAR(128).notNull()),
        SEQUENCE_NUMBER("sequence-number", DataTypes.VARCHAR(128).notNull());

        final String key;
        final DataType type;

        Metadata(String key, DataType type) {
            this.key = key;
            this.type = type;
        }

        Object value(Record record, String shardId) {
            switch (this) {
                case TIMESTAMP:
                    return TimestampData.fromInstant(record.approximateArrivalTimestamp());
                case SHARD_ID:
                    return StringData.fromString(shardId);
                default:
                    return StringData.fromString(record.sequenceNumber());
            }
        }

        static Metadata of(String key) {
            for (Metadata metadata : values()) {
                if (metadata.key.equals(key)) {
                    return metadata;
                }
            }
            throw new IllegalArgumentException("No Kinesis metadata '" + key + "'");
        }
    }

    private final DataType physicalType;
    private final DecodingFormat<DeserializationSchema<RowData>> format;
    private final KinesisConnection connection;
    private final KinesisSource.ReadSettings settings;

    private List<Metadata> metadata = List.of();
    private DataType producedType;
    private WatermarkStrategy<RowData> watermarks = WatermarkStrategy.noWatermarks();

    KinesisTableSource(
            DataType physicalType,
            DecodingFormat<DeserializationSchema<RowData>> format,
            KinesisConnection connection,
            KinesisSource.ReadSettings settings) {
        this.physicalType = physicalType;
        this.format = format;
        this.connection = connection;
        this.settings = settings;
        this.producedType = physicalType;
    }

    @Override
    public ChangelogMode getChangelogMode() {
        return format.getChangelogMode();
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
        TypeInformation<RowData> producedTypeInfo = context.createTypeInformation(producedType);
        RowDeserializer deserializer =
                new RowDeserializer(
                        format.createRuntimeDecoder(context, physicalType),
                        metadata,
                        producedTypeInfo);
        KinesisSource<RowData> source = new KinesisSource<>(connection, settings, deserializer);
        return new DataStreamScanProvider() {
            @Override
            public DataStream<RowData> produceDataStream(
                    ProviderContext provider, StreamExecutionEnvironment env) {
                DataStreamSource<RowData> stream =
                        env.fromSource(source, watermarks, "Kinesis " + connection.streamArn());
                provider.generateUid("kinesis-source").ifPresent(stream::uid);
                return stream;
            }

            @Override
            public boolean isBounded() {
                return settings.bounded();
            }
        };
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
        Map<String, DataType> readable = new LinkedHashMap<>();
        for (Metadata each : Metadata.values()) {
            readable.put(each.key, each.type);
        }
        return readable;
    }

    @Override
    public void applyReadableMetadata(List<String> keys, DataType producedDataType) {
        List<Metadata> requested = new ArrayList<>(keys.size());
        keys.forEach(key -> requested.add(Metadata.of(key)));
        this.metadata = List.copyOf(requested);
        this.producedType = producedDataType;
    }

    @Override
    public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
        this.watermarks = watermarkStrategy;
    }

    @Override
    public DynamicTableSource copy() {
        KinesisTableSource copy =
                new KinesisTableSource(physicalType, format, connection, settings);
        copy.metadata = metadata;
        copy.producedType = producedType;
        copy.watermarks = watermarks;
        return copy;
    }

    @Override
    public String asSummaryString() {
        return "Kinesis";
    }

    /** The format's rows, each followed by the metadata columns asked for. */
    static final class RowDeserializer implements RecordDeserializer<RowData> {
        private final DeserializationSchema<RowData> format;
        private final List<Metadata> metadata;
        private final TypeInformation<RowData> producedType;

        RowDeserializer(
                DeserializationSchema<RowData> format,
                List<Metadata> metadata,
                TypeInformation<RowData> producedType) {
            this.format = format;
            this.metadata = metadata;
            this.producedType = producedType;
        }

        @Override
        public void open(DeserializationSchema.InitializationContext context) throws Exception {
            format.open(context);
        }

        @Override
        public void deserialize(Record record, String shardId, Collector<RowData> out)
                throws IOException {
            byte[] data = record.data().asByteArrayUnsafe(); // each record has its own array
            if (metadata.isEmpty()) {
                format.deserialize(data, out);
                return;
            }
            GenericRowData values = new GenericRowData(metadata.size());
            for (int i = 0; i < metadata.size(); i++) {
                values.setField(i, metadata.get(i).value(record, shardId));
            }
            format.deserialize(
                    data,
                    new Collector<>() {
                        @Override
                        public void collect(RowData row) {
                            out.collect(new JoinedRowData(row.getRowKind(), row, values));
                        }

                        @Override
                        public void close() {}
                    });
        }

        @Override
        public TypeInformation<RowData> getProducedType() {
            return producedType;
        }
    }
}
