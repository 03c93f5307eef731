package io.adstream.flink.kinesis;

import static org.apache.flink.configuration.ConfigOptions.key;
import static org.apache.flink.configuration.description.TextElement.text;

import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.DescribedEnum;
import org.apache.flink.configuration.description.InlineElement;
import org.apache.flink.connector.base.table.AsyncSinkConnectorOptions;
import org.apache.flink.table.api.ValidationException;

/**
 * The table options of the connector.
 *
 * <p>Every option the official connector (flink-connector-aws-kinesis-streams 6.x) also has keeps
 * its name, type and default, so a job moves to the official jar unchanged (only {@code aws.region}
 * is optional here, taken from the ARN, where the official connector requires it). Official options
 * this connector does not implement are refused by name ({@link #UNSUPPORTED}), never ignored.
 * Options of adstream's own: {@link #SCAN_BOUNDED_MODE}.
 */
public final class KinesisOptions {

    private KinesisOptions() {}

    // Where the stream is, and how to reach it.

    public static final ConfigOption<String> STREAM_ARN =
            key("stream.arn")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "ARN of the stream, e.g."
                                    + " arn:aws:kinesis:us-east-1:123456789012:stream/clicks.");

    public static final ConfigOption<String> AWS_REGION =
            key("aws.region")
                    .stringType()
                    .noDefaultValue()
                    .withDescription("Region of every client; by default the region in the ARN.");

    public static final ConfigOption<String> AWS_ENDPOINT =
            key("aws.endpoint")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Send every request here (e.g. an emulator, http://127.0.0.1:4566)"
                                    + " instead of the region's endpoint.");

    /** How credentials are found; the official connector's names for the kinds supported here. */
    public enum CredentialsProvider {
        /**
         * The SDK's default chain: environment, system properties, profile, container, instance.
         */
        AUTO,
        /** {@link #AWS_ACCESS_KEY_ID} and {@link #AWS_SECRET_KEY}. */
        BASIC,
        /**
         * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) from the environment.
         */
        ENV_VAR,
        /** The aws.accessKeyId and aws.secretAccessKey system properties. */
        SYS_PROP
    }

    /** No default, as in the official connector: BASIC when both keys are given, else AUTO. */
    public static final ConfigOption<CredentialsProvider> AWS_CREDENTIALS_PROVIDER =
            key("aws.credentials.provider")
                    .enumType(CredentialsProvider.class)
                    .noDefaultValue()
                    .withDescription(
                            "AUTO (the default chain), BASIC, ENV_VAR or SYS_PROP; BASIC when both"
                                    + " keys are set, else AUTO.");

    public static final ConfigOption<String> AWS_ACCESS_KEY_ID =
            key("aws.credentials.basic.accesskeyid").stringType().noDefaultValue();

    public static final ConfigOption<String> AWS_SECRET_KEY =
            key("aws.credentials.basic.secretkey").stringType().noDefaultValue();

    // Source.

    /** Where a shard is first read from (a checkpoint's position wins). */
    public enum InitialPosition {
        /**
         * Records that arrive after the job starts (fixed as that instant, see {@link
         * StartingPosition}).
         */
        LATEST,
        /** The oldest record the stream still holds. */
        TRIM_HORIZON,
        /** Records that arrived at or after {@link #SOURCE_INIT_TIMESTAMP}. */
        AT_TIMESTAMP
    }

    public static final ConfigOption<InitialPosition> SOURCE_INIT_POSITION =
            key("source.init.position")
                    .enumType(InitialPosition.class)
                    .defaultValue(InitialPosition.LATEST)
                    .withDescription(
                            "Where to start reading a stream: LATEST, TRIM_HORIZON or"
                                    + " AT_TIMESTAMP.");

    public static final ConfigOption<String> SOURCE_INIT_TIMESTAMP =
            key("source.init.timestamp")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "The start for AT_TIMESTAMP: in source.init.timestamp.format, or"
                                    + " seconds since the epoch (1459799926.480).");

    public static final ConfigOption<String> SOURCE_INIT_TIMESTAMP_FORMAT =
            key("source.init.timestamp.format")
                    .stringType()
                    .defaultValue("yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
                    .withDescription(
                            "java.text.SimpleDateFormat pattern of source.init.timestamp.");

    public static final ConfigOption<Duration> SOURCE_SHARD_DISCOVERY_INTERVAL =
            key("source.shard.discovery.interval")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(10))
                    .withDescription(
                            "How often the shards are listed, to find those resharding creates.");

    public static final ConfigOption<Integer> SOURCE_GET_RECORDS_MAX =
            key("source.shard.get-records.max-record-count")
                    .intType()
                    .defaultValue(10_000)
                    .withDescription(
                            "Most records one GetRecords call returns (Kinesis allows 10,000).");

    public static final ConfigOption<Duration> SOURCE_EMPTY_RECORDS_FETCH_INTERVAL =
            key("source.reader.empty-records-fetch-interval")
                    .durationType()
                    .defaultValue(Duration.ofMillis(250))
                    .withDescription(
                            "Pause before polling a shard again after it returned nothing.");

    public static final ConfigOption<String> SOURCE_READER_TYPE =
            key("source.reader.type")
                    .stringType()
                    .defaultValue("POLLING")
                    .withDescription(
                            "POLLING (GetRecords) only; enhanced fan-out (EFO) needs the official"
                                    + " connector.");

    /** adstream's own: whether the source ends. */
    public enum BoundedMode implements DescribedEnum {
        UNBOUNDED("unbounded", "Read without end, discovering new shards."),
        LATEST(
                "latest",
                "Read each shard up to the last record present when the job starts, then finish.");

        private final String value;
        private final String description;

        BoundedMode(String value, String description) {
            this.value = value;
            this.description = description;
        }

        @Override
        public String toString() {
            return value;
        }

        @Override
        public InlineElement getDescription() {
            return text(description);
        }
    }

    /** adstream's own option (the official connector has no bounded mode). */
    public static final ConfigOption<BoundedMode> SCAN_BOUNDED_MODE =
            key("scan.bounded.mode")
                    .enumType(BoundedMode.class)
                    .defaultValue(BoundedMode.UNBOUNDED)
                    .withDescription(
                            "adstream's own: 'unbounded', or 'latest' to read what each shard holds"
                                    + " when the job starts and finish.");

    // Sink (the sink.batch.*, sink.requests.* and sink.flush-buffer.* options are Flink's own
    // AsyncSinkConnectorOptions; their defaults, Kinesis' limits, are the official connector's).

    public static final int DEFAULT_MAX_BATCH_SIZE = 500;
    public static final int DEFAULT_MAX_IN_FLIGHT_REQUESTS = 50;
    public static final int DEFAULT_MAX_BUFFERED_REQUESTS = 10_000;
    public static final long DEFAULT_FLUSH_BUFFER_SIZE = 5L * 1024 * 1024;
    public static final long DEFAULT_FLUSH_BUFFER_TIMEOUT_MS = 5_000;

    public static final ConfigOption<Integer> SINK_BATCH_MAX_SIZE =
            AsyncSinkConnectorOptions.MAX_BATCH_SIZE;
    public static final ConfigOption<Integer> SINK_REQUESTS_MAX_INFLIGHT =
            AsyncSinkConnectorOptions.MAX_IN_FLIGHT_REQUESTS;
    public static final ConfigOption<Integer> SINK_REQUESTS_MAX_BUFFERED =
            AsyncSinkConnectorOptions.MAX_BUFFERED_REQUESTS;
    public static final ConfigOption<Long> SINK_FLUSH_BUFFER_SIZE =
            AsyncSinkConnectorOptions.FLUSH_BUFFER_SIZE;
    public static final ConfigOption<Long> SINK_FLUSH_BUFFER_TIMEOUT =
            AsyncSinkConnectorOptions.FLUSH_BUFFER_TIMEOUT;

    public static final ConfigOption<String> SINK_PARTITIONER =
            key("sink.partitioner")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "'random' only (a random partition key, the default without PARTITIONED"
                                    + " BY).");

    public static final ConfigOption<String> SINK_PARTITIONER_FIELD_DELIMITER =
            key("sink.partitioner-field-delimiter")
                    .stringType()
                    .defaultValue("|")
                    .withDescription(
                            "Joins the PARTITIONED BY columns' values into the partition key.");

    public static final ConfigOption<Boolean> SINK_FAIL_ON_ERROR =
            key("sink.fail-on-error")
                    .booleanType()
                    .defaultValue(false)
                    .withDescription(
                            "Fail the job on any failed write, rather than retrying the records"
                                    + " that failed.");

    /**
     * Official options (or prefixes of them, ending in a dot) that this connector does not
     * implement, with what to do instead. Refusing them beats a job that silently behaves
     * differently from the one its author wrote.
     */
    static final Map<String, String> UNSUPPORTED =
            Map.ofEntries(
                    Map.entry("stream", "name the stream by 'stream.arn'"),
                    Map.entry(
                            "source.shard-assigner",
                            "shards go to the reader with the fewest; a custom assigner needs the"
                                    + " official connector"),
                    Map.entry("source.efo.", "enhanced fan-out needs the official connector"),
                    Map.entry(
                            "aws.credentials.profile.",
                            "profiles are not supported; use AUTO (the default chain reads the"
                                    + " default profile)"),
                    Map.entry(
                            "aws.credentials.role.",
                            "assuming a role needs the official connector"),
                    Map.entry(
                            "aws.credentials.webIdentityToken.",
                            "web identity tokens need the official connector (or AUTO, whose chain"
                                    + " reads AWS_WEB_IDENTITY_TOKEN_FILE)"),
                    Map.entry(
                            "aws.credentials.custom.",
                            "custom credential providers need the official connector"),
                    Map.entry("aws.trust.all.certificates", "not supported"),
                    Map.entry("aws.http.protocol.version", "not supported (HTTP/1.1)"),
                    Map.entry("aws.http-client.", "not supported (the SDK's defaults)"),
                    Map.entry(
                            "sink.producer.",
                            "the legacy KPL options are gone; use the sink.* options"));

    /**
     * Refuses the official options this connector does not implement, and values of supported ones
     * it cannot honour.
     *
     * @throws ValidationException naming the option and what to do instead
     */
    static void refuseUnsupported(Map<String, String> options) {
        for (String option : options.keySet()) {
            for (Map.Entry<String, String> unsupported : UNSUPPORTED.entrySet()) {
                String name = unsupported.getKey();
                if (name.endsWith(".") ? option.startsWith(name) : option.equals(name)) {
                    throw new ValidationException(
                            String.format(
                                    "Option '%s' is not supported by adstream's Kinesis connector:"
                                            + " %s.",
                                    option, unsupported.getValue()));
                }
            }
        }
        refuseValue(
                options,
                SOURCE_READER_TYPE,
                Set.of("POLLING"),
                "it reads by polling (POLLING) only; enhanced fan-out needs the official"
                        + " connector");
        refuseValue(
                options,
                AWS_CREDENTIALS_PROVIDER,
                Set.of("AUTO", "BASIC", "ENV_VAR", "SYS_PROP"),
                "AUTO, BASIC, ENV_VAR or SYS_PROP only; other providers need the official"
                        + " connector");
        refuseValue(
                options,
                SINK_PARTITIONER,
                Set.of("RANDOM"),
                "only 'random'; for a key from columns use PARTITIONED BY");
    }

    private static void refuseValue(
            Map<String, String> options,
            ConfigOption<?> option,
            Set<String> supported,
            String why) {
        String value = options.get(option.key());
        if (value != null && !supported.contains(value.toUpperCase(Locale.ROOT))) {
            throw new ValidationException(
                    String.format(
                            "Option '%s' = '%s' is not supported by adstream's Kinesis connector:"
                                    + " %s.",
                            option.key(), value, why));
        }
    }
}
