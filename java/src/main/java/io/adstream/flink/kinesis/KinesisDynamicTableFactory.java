package io.adstream.flink.kinesis;

import static io.adstream.flink.kinesis.KinesisOptions.*;

import java.text.ParseException;
import java.text.SimpleDateFormat;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.serialization.SerializationSchema;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.format.DecodingFormat;
import org.apache.flink.table.connector.format.EncodingFormat;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DeserializationFormatFactory;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.SerializationFormatFactory;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeChecks;

/**
 * {@code 'connector' = 'kinesis'}: adstream's Kinesis Data Streams table source and sink, with the
 * official connector's identifier and options ({@link KinesisOptions}).
 */
public final class KinesisDynamicTableFactory
        implements DynamicTableSourceFactory, DynamicTableSinkFactory {

    public static final String IDENTIFIER = "kinesis";

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(STREAM_ARN, FactoryUtil.FORMAT);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(
                AWS_REGION,
                AWS_ENDPOINT,
                AWS_CREDENTIALS_PROVIDER,
                AWS_ACCESS_KEY_ID,
                AWS_SECRET_KEY,
                SOURCE_INIT_POSITION,
                SOURCE_INIT_TIMESTAMP,
                SOURCE_INIT_TIMESTAMP_FORMAT,
                SOURCE_SHARD_DISCOVERY_INTERVAL,
                SOURCE_GET_RECORDS_MAX,
                SOURCE_EMPTY_RECORDS_FETCH_INTERVAL,
                SOURCE_READER_TYPE,
                SCAN_BOUNDED_MODE,
                SINK_BATCH_MAX_SIZE,
                SINK_REQUESTS_MAX_INFLIGHT,
                SINK_REQUESTS_MAX_BUFFERED,
                SINK_FLUSH_BUFFER_SIZE,
                SINK_FLUSH_BUFFER_TIMEOUT,
                SINK_PARTITIONER,
                SINK_PARTITIONER_FIELD_DELIMITER,
                SINK_FAIL_ON_ERROR);
    }

    @Override
    public DynamicTableSource createDynamicTableSource(Context context) {
        refuseUnsupported(context.getCatalogTable().getOptions());
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        DecodingFormat<DeserializationSchema<RowData>> format =
                helper.discoverDecodingFormat(
                        DeserializationFormatFactory.class, FactoryUtil.FORMAT);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        return new KinesisTableSource(
                context.getPhysicalRowDataType(),
                format,
                connection(options),
                readSettings(options));
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        refuseUnsupported(context.getCatalogTable().getOptions());
        FactoryUtil.TableFactoryHelper helper = FactoryUtil.createTableFactoryHelper(this, context);
        EncodingFormat<SerializationSchema<RowData>> format =
                helper.discoverEncodingFormat(SerializationFormatFactory.class, FactoryUtil.FORMAT);
        helper.validate();
        ReadableConfig options = helper.getOptions();
        RowType rowType = (RowType) context.getPhysicalRowDataType().getLogicalType();
        List<String> partitionKeys = context.getCatalogTable().getPartitionKeys();
        if (!partitionKeys.isEmpty() && options.getOptional(SINK_PARTITIONER).isPresent()) {
            throw new ValidationException(
                    String.format(
                            "Option '%s' cannot be set on a table with PARTITIONED BY: its columns"
                                    + " make the partition key.",
                            SINK_PARTITIONER.key()));
        }
        return new KinesisTableSink(
                context.getPhysicalRowDataType(),
                format,
                connection(options),
                writeSettings(options, rowType, partitionKeys));
    }

    static KinesisConnection connection(ReadableConfig options) {
        String arn = options.get(STREAM_ARN);
        String arnRegion;
        try {
            arnRegion = KinesisConnection.regionOf(arn);
        } catch (IllegalArgumentException notAnArn) {
            throw new ValidationException(
                    "Option '" + STREAM_ARN.key() + "': " + notAnArn.getMessage());
        }
        String accessKeyId = options.get(AWS_ACCESS_KEY_ID);
        String secretKey = options.get(AWS_SECRET_KEY);
        CredentialsProvider credentials =
                options.getOptional(AWS_CREDENTIALS_PROVIDER)
                        .orElse(
                                accessKeyId != null && secretKey != null
                                        ? CredentialsProvider.BASIC
                                        : CredentialsProvider.AUTO);
        if (credentials == CredentialsProvider.BASIC
                && (accessKeyId == null || secretKey == null)) {
            throw new ValidationException(
                    String.format(
                            "Options '%s' and '%s' are needed with '%s' = 'BASIC'.",
                            AWS_ACCESS_KEY_ID.key(),
                            AWS_SECRET_KEY.key(),
                            AWS_CREDENTIALS_PROVIDER.key()));
        }
        return new KinesisConnection(
                arn,
                options.getOptional(AWS_REGION).orElse(arnRegion),
                options.get(AWS_ENDPOINT),
                credentials,
                credentials == CredentialsProvider.BASIC ? accessKeyId : null,
                credentials == CredentialsProvider.BASIC ? secretKey : null);
    }

    static KinesisSource.ReadSettings readSettings(ReadableConfig options) {
        InitialPosition position = options.get(SOURCE_INIT_POSITION);
        Instant timestamp = null;
        if (position == InitialPosition.AT_TIMESTAMP) {
            timestamp =
                    initialTimestamp(
                            options.getOptional(SOURCE_INIT_TIMESTAMP)
                                    .orElseThrow(
                                            () ->
                                                    new ValidationException(
                                                            String.format(
                                                                    "Option '%s' is needed with"
                                                                        + " '%s' = 'AT_TIMESTAMP'.",
                                                                    SOURCE_INIT_TIMESTAMP.key(),
                                                                    SOURCE_INIT_POSITION.key()))),
                            options.get(SOURCE_INIT_TIMESTAMP_FORMAT));
        }
        int maxRecords = options.get(SOURCE_GET_RECORDS_MAX);
        checkRange(SOURCE_GET_RECORDS_MAX, maxRecords, 1, 10_000);
        Duration discovery = options.get(SOURCE_SHARD_DISCOVERY_INTERVAL);
        if (discovery.isZero() || discovery.isNegative()) {
            throw new ValidationException(
                    "Option '" + SOURCE_SHARD_DISCOVERY_INTERVAL.key() + "' must be positive.");
        }
        Duration emptyPause = options.get(SOURCE_EMPTY_RECORDS_FETCH_INTERVAL);
        if (emptyPause.isNegative()) {
            throw new ValidationException(
                    "Option '"
                            + SOURCE_EMPTY_RECORDS_FETCH_INTERVAL.key()
                            + "' must not be negative.");
        }
        // Bounded: "the records present when the job starts" are those that arrived before now,
        // the moment the job is planned; the bound travels with the job, through restarts.
        Instant boundedUntil =
                options.get(SCAN_BOUNDED_MODE) == BoundedMode.LATEST ? Instant.now() : null;
        return new KinesisSource.ReadSettings(
                position, timestamp, discovery, maxRecords, emptyPause, boundedUntil);
    }

    /** As the official connector reads it: in the given format, or else seconds since the epoch. */
    private static Instant initialTimestamp(String value, String format) {
        try {
            return new SimpleDateFormat(format).parse(value).toInstant();
        } catch (ParseException notInFormat) {
            try {
                double seconds = Double.parseDouble(value);
                if (seconds >= 0) {
                    return Instant.ofEpochMilli((long) (seconds * 1000));
                }
            } catch (NumberFormatException notANumber) {
                // Reported below.
            }
            throw new ValidationException(
                    String.format(
                            "Option '%s' = '%s' is neither in the format '%s' nor seconds since the"
                                + " epoch (e.g. 2016-04-04T19:58:46.480-00:00 or 1459799926.480).",
                            SOURCE_INIT_TIMESTAMP.key(), value, format));
        } catch (IllegalArgumentException badFormat) {
            throw new ValidationException(
                    "Option '"
                            + SOURCE_INIT_TIMESTAMP_FORMAT.key()
                            + "' is not a date format: "
                            + badFormat.getMessage());
        }
    }

    static KinesisTableSink.WriteSettings writeSettings(
            ReadableConfig options, RowType rowType, List<String> partitionKeys) {
        int maxBatchSize = options.getOptional(SINK_BATCH_MAX_SIZE).orElse(DEFAULT_MAX_BATCH_SIZE);
        checkRange(SINK_BATCH_MAX_SIZE, maxBatchSize, 1, KinesisSink.MAX_RECORDS_PER_CALL);
        long maxBatchBytes =
                options.getOptional(SINK_FLUSH_BUFFER_SIZE).orElse(DEFAULT_FLUSH_BUFFER_SIZE);
        checkRange(SINK_FLUSH_BUFFER_SIZE, maxBatchBytes, 1, KinesisSink.MAX_BYTES_PER_CALL);
        int maxInFlight =
                options.getOptional(SINK_REQUESTS_MAX_INFLIGHT)
                        .orElse(DEFAULT_MAX_IN_FLIGHT_REQUESTS);
        checkRange(SINK_REQUESTS_MAX_INFLIGHT, maxInFlight, 1, Integer.MAX_VALUE);
        int maxBuffered =
                options.getOptional(SINK_REQUESTS_MAX_BUFFERED)
                        .orElse(DEFAULT_MAX_BUFFERED_REQUESTS);
        checkRange(SINK_REQUESTS_MAX_BUFFERED, maxBuffered, maxBatchSize + 1L, Integer.MAX_VALUE);
        long maxTime =
                options.getOptional(SINK_FLUSH_BUFFER_TIMEOUT)
                        .orElse(DEFAULT_FLUSH_BUFFER_TIMEOUT_MS);
        checkRange(SINK_FLUSH_BUFFER_TIMEOUT, maxTime, 1, Long.MAX_VALUE);

        List<RowData.FieldGetter> keyFields = new ArrayList<>();
        for (String column : partitionKeys) {
            int index = rowType.getFieldIndex(column);
            if (index < 0) {
                throw new ValidationException(
                        "PARTITIONED BY column '"
                                + column
                                + "' is not a physical column of the table.");
            }
            LogicalType type = rowType.getTypeAt(index);
            if (!LogicalTypeChecks.hasWellDefinedString(type)) {
                throw new ValidationException(
                        String.format(
                                "PARTITIONED BY column '%s' of type %s cannot make a partition key"
                                        + " (its text form is not well defined).",
                                column, type));
            }
            keyFields.add(RowData.createFieldGetter(type, index));
        }
        return new KinesisTableSink.WriteSettings(
                maxBatchSize,
                maxInFlight,
                maxBuffered,
                maxBatchBytes,
                maxTime,
                options.get(SINK_FAIL_ON_ERROR),
                List.copyOf(keyFields),
                options.get(SINK_PARTITIONER_FIELD_DELIMITER));
    }

    /** Refuses a value outside min..max; a max of Integer.MAX_VALUE or more means no limit. */
    private static void checkRange(ConfigOption<?> option, long value, long min, long max) {
        if (value < min || value > max) {
            String range =
                    max >= Integer.MAX_VALUE
                            ? "at least " + min
                            : min + " to " + max + " (Kinesis' limits)";
            throw new ValidationException(
                    String.format(
                            "Option '%s' = %d is out of range: %s.", option.key(), value, range));
        }
    }
}
