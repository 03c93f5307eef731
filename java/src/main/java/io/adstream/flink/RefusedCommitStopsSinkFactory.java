package io.adstream.flink;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.sink.DynamicTableSink;
import org.apache.flink.table.factories.DynamicTableSinkFactory;
import org.apache.flink.table.factories.FactoryUtil;

/**
 * {@code 'connector' = 'adstream-sink'}: Kafka's exactly-once table sink, except that a
 * checkpoint's transaction the broker aborted before it could commit fails the job ({@link
 * RefusedCommitStops}) instead of being logged and lost while later checkpoints commit.
 *
 * <pre>
 * CREATE TABLE joined (...) WITH (
 *   'connector' = 'adstream-sink',
 *   'adstream.connector' = 'kafka',                 -- the sink it wraps
 *   'sink.delivery-guarantee' = 'exactly-once', ...) -- that connector's options
 * </pre>
 *
 * <p>Kafka classes are touched only once a job plans such a sink, so the jar also serves jobs
 * without Kafka's connector (the Kinesis package).
 */
public final class RefusedCommitStopsSinkFactory implements DynamicTableSinkFactory {

    public static final String IDENTIFIER = "adstream-sink";

    /** The connector this wraps: the same option as the source wrapper's. */
    public static final ConfigOption<String> CONNECTOR = InputIdlenessSourceFactory.CONNECTOR;

    /** The prefix of the Kafka client's properties among the table's options. */
    private static final String PROPERTIES = "properties.";

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(CONNECTOR);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(); // the rest are the wrapped connector's, validated by it
    }

    @Override
    public DynamicTableSink createDynamicTableSink(Context context) {
        ResolvedCatalogTable table = context.getCatalogTable();
        Map<String, String> options = new HashMap<>(table.getOptions());
        String connector = options.remove(CONNECTOR.key());
        if (connector == null) {
            throw new ValidationException(
                    String.format("'%s' needs the option '%s'.", IDENTIFIER, CONNECTOR.key()));
        }
        if (!"exactly-once".equals(options.get("sink.delivery-guarantee"))) {
            throw new ValidationException(
                    String.format(
                            "'%s' wraps only exactly-once sinks ('sink.delivery-guarantee' ="
                                    + " 'exactly-once'): other sinks commit no transactions.",
                            IDENTIFIER));
        }
        if (options.containsKey("sink.transaction-naming-strategy")) {
            throw new ValidationException(
                    String.format(
                            "'%s' reads the checkpoint off the transaction's id, as Kafka's"
                                    + " default naming strategy makes it: leave"
                                    + " 'sink.transaction-naming-strategy' unset.",
                            IDENTIFIER));
        }
        options.put(FactoryUtil.CONNECTOR.key(), connector);
        DynamicTableSink wrapped =
                FactoryUtil.createDynamicTableSink(
                        null,
                        context.getObjectIdentifier(),
                        table.copy(options),
                        context.getEnrichmentOptions(),
                        context.getConfiguration(),
                        context.getClassLoader(),
                        context.isTemporary());
        Properties kafka = new Properties();
        options.forEach(
                (key, value) -> {
                    if (key.startsWith(PROPERTIES)) {
                        kafka.setProperty(key.substring(PROPERTIES.length()), value);
                    }
                });
        return new Sink(wrapped, kafka);
    }

    /** The wrapped table sink, its runtime sink's commits made strict. */
    static final class Sink implements DynamicTableSink {
        private final DynamicTableSink wrapped;
        private final Properties kafka;

        Sink(DynamicTableSink wrapped, Properties kafka) {
            this.wrapped = wrapped;
            this.kafka = kafka;
        }

        @Override
        public ChangelogMode getChangelogMode(ChangelogMode requestedMode) {
            return wrapped.getChangelogMode(requestedMode);
        }

        @Override
        public SinkRuntimeProvider getSinkRuntimeProvider(Context context) {
            return RefusedCommitStops.provider(wrapped.getSinkRuntimeProvider(context), kafka);
        }

        @Override
        public DynamicTableSink copy() {
            return new Sink(wrapped.copy(), kafka);
        }

        @Override
        public String asSummaryString() {
            return wrapped.asSummaryString() + " (a refused commit stops the job)";
        }
    }
}
