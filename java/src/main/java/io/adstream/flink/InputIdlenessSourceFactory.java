package io.adstream.flink;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.types.DataType;
import org.apache.flink.util.TimeUtils;

/**
 * {@code 'connector' = 'adstream-source'}: another connector's table source (Kafka's, Kinesis's),
 * its watermark made idle by {@link InputIdleness} rather than by Flink's idle timeout.
 *
 * <pre>
 * CREATE TABLE clicks_source (...) WITH (
 *   'connector' = 'adstream-source',
 *   'adstream.connector' = 'kafka',          -- the source it wraps
 *   'adstream.idle-timeout' = '10000 ms',    -- instead of 'scan.watermark.idle-timeout'
 *   'topic' = 'clicks', ...)                 -- that connector's options
 * </pre>
 *
 * <p>The wrapped source must be a scan source that takes its watermark strategy (watermark push
 * down), as Kafka's and adstream's Kinesis source are; metadata columns pass through.
 */
public final class InputIdlenessSourceFactory implements DynamicTableSourceFactory {

    public static final String IDENTIFIER = "adstream-source";

    public static final ConfigOption<String> CONNECTOR =
            ConfigOptions.key("adstream.connector")
                    .stringType()
                    .noDefaultValue()
                    .withDescription("The connector whose source this wraps.");

    public static final ConfigOption<Duration> IDLE_TIMEOUT =
            ConfigOptions.key("adstream.idle-timeout")
                    .durationType()
                    .noDefaultValue()
                    .withDescription(
                            "How long a split delivers nothing while others are read before it"
                                    + " is idle.");

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(CONNECTOR, IDLE_TIMEOUT);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(); // the rest are the wrapped connector's, validated by it
    }

    @Override
    public DynamicTableSource createDynamicTableSource(Context context) {
        ResolvedCatalogTable table = context.getCatalogTable();
        Map<String, String> options = new HashMap<>(table.getOptions());
        String connector = options.remove(CONNECTOR.key());
        String timeout = options.remove(IDLE_TIMEOUT.key());
        if (connector == null || timeout == null) {
            throw new ValidationException(
                    String.format(
                            "'%s' needs the options '%s' and '%s'.",
                            IDENTIFIER, CONNECTOR.key(), IDLE_TIMEOUT.key()));
        }
        options.put(FactoryUtil.CONNECTOR.key(), connector);
        DynamicTableSource wrapped =
                FactoryUtil.createDynamicTableSource(
                        null,
                        context.getObjectIdentifier(),
                        table.copy(options),
                        context.getEnrichmentOptions(),
                        context.getConfiguration(),
                        context.getClassLoader(),
                        context.isTemporary());
        if (!(wrapped instanceof ScanTableSource
                && wrapped instanceof SupportsReadingMetadata
                && wrapped instanceof SupportsWatermarkPushDown)) {
            throw new ValidationException(
                    String.format(
                            "'%s' cannot wrap '%s': its source does not scan with watermark push"
                                    + " down and metadata.",
                            IDENTIFIER, connector));
        }
        Duration idleTimeout;
        try {
            idleTimeout = TimeUtils.parseDuration(timeout);
        } catch (IllegalArgumentException invalid) {
            throw new ValidationException(
                    "Option '" + IDLE_TIMEOUT.key() + "': " + invalid.getMessage());
        }
        if (idleTimeout.isZero() || idleTimeout.isNegative()) {
            throw new ValidationException("Option '" + IDLE_TIMEOUT.key() + "' must be positive.");
        }
        return new Source((ScanTableSource) wrapped, idleTimeout);
    }

    /** The wrapped source, its watermark strategy given {@link InputIdleness}. */
    static final class Source
            implements ScanTableSource, SupportsReadingMetadata, SupportsWatermarkPushDown {
        private final ScanTableSource wrapped;
        private final Duration idleTimeout;

        Source(ScanTableSource wrapped, Duration idleTimeout) {
            this.wrapped = wrapped;
            this.idleTimeout = idleTimeout;
        }

        @Override
        public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
            ((SupportsWatermarkPushDown) wrapped)
                    .applyWatermark(new InputIdleness<>(watermarkStrategy, idleTimeout));
        }

        @Override
        public Map<String, DataType> listReadableMetadata() {
            return ((SupportsReadingMetadata) wrapped).listReadableMetadata();
        }

        @Override
        public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {
            ((SupportsReadingMetadata) wrapped).applyReadableMetadata(metadataKeys, producedDataType);
        }

        @Override
        public boolean supportsMetadataProjection() {
            return ((SupportsReadingMetadata) wrapped).supportsMetadataProjection();
        }

        @Override
        public ChangelogMode getChangelogMode() {
            return wrapped.getChangelogMode();
        }

        @Override
        public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
            return wrapped.getScanRuntimeProvider(context);
        }

        @Override
        public DynamicTableSource copy() {
            return new Source((ScanTableSource) wrapped.copy(), idleTimeout);
        }

        @Override
        public String asSummaryString() {
            return wrapped.asSummaryString() + " (idle after " + idleTimeout + " of other reads)";
        }
    }
}
