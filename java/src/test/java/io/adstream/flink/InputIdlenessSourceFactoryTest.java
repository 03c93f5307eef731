package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The planner finds 'adstream-source', and the source it wraps gets the idleness strategy. */
class InputIdlenessSourceFactoryTest {

    private static final String KINESIS =
            "'connector' = 'adstream-source', 'adstream.connector' = 'kinesis',"
                    + " 'adstream.idle-timeout' = '10000 ms', 'stream.arn' ="
                    + " 'arn:aws:kinesis:us-east-1:123456789012:stream/clicks', 'format' = 'raw'";

    private static TableEnvironment tables;

    @BeforeAll
    static void createTables() {
        tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tables.executeSql(
                "CREATE TABLE clicks ("
                        + " payload BYTES,"
                        + " arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',"
                        + " seq STRING METADATA FROM 'sequence-number' VIRTUAL,"
                        + " WATERMARK FOR arrival AS arrival - INTERVAL '5' SECOND"
                        + ") WITH ("
                        + KINESIS
                        + ")");
    }

    @Test
    void theWrappedSourceGeneratesTheWatermarkAndReadsTheMetadata() {
        String explained = tables.explainSql("SELECT payload, seq FROM clicks");
        String plan = explained.substring(explained.indexOf("== Optimized Execution Plan =="));
        assertThat(plan)
                .containsPattern("TableSourceScan\\(table=\\[\\[.*clicks, .*watermark=\\[")
                .contains("metadata=[timestamp, sequence-number]")
                .doesNotContain("WatermarkAssigner")
                .doesNotContain("idletimeout"); // Flink's own idleness is not there
    }

    @Test
    void theWrappedConnectorStillRefusesWhatItDoesNotKnow() {
        tables.executeSql(
                "CREATE TABLE typo (payload BYTES) WITH ("
                        + KINESIS
                        + ", 'source.init.positon' = 'LATEST')");
        assertThatThrownBy(() -> tables.explainSql("SELECT * FROM typo"))
                .rootCause()
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining("source.init.positon");
    }

    @Test
    void withoutItsTimeoutTheTableIsRefused() {
        tables.executeSql(
                "CREATE TABLE untimed (payload BYTES) WITH ('connector' = 'adstream-source',"
                        + " 'adstream.connector' = 'kinesis', 'stream.arn' ="
                        + " 'arn:aws:kinesis:us-east-1:123456789012:stream/clicks',"
                        + " 'format' = 'raw')");
        assertThatThrownBy(() -> tables.explainSql("SELECT * FROM untimed"))
                .rootCause()
                .hasMessageContaining("'adstream-source' needs the options 'adstream.connector'"
                        + " and 'adstream.idle-timeout'");
    }

    @Test
    void thePushedWatermarkStrategyGetsTheIdleness() {
        Recording wrapped = new Recording();
        var source = new InputIdlenessSourceFactory.Source(wrapped, Duration.ofSeconds(10));
        WatermarkStrategy<RowData> planned = WatermarkStrategy.forMonotonousTimestamps();
        source.applyWatermark(planned);
        assertThat(wrapped.applied).isInstanceOf(InputIdleness.class);
        var copy = (InputIdlenessSourceFactory.Source) source.copy();
        wrapped.applied = null;
        copy.applyWatermark(planned);
        assertThat(wrapped.copies).isEqualTo(1);
        assertThat(wrapped.applied).isInstanceOf(InputIdleness.class); // the copy's too
    }

    /** A scan source that records the watermark strategy it is given. */
    private static final class Recording
            implements ScanTableSource, SupportsReadingMetadata, SupportsWatermarkPushDown {
        WatermarkStrategy<RowData> applied;
        int copies;

        @Override
        public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
            applied = watermarkStrategy;
        }

        @Override
        public Map<String, DataType> listReadableMetadata() {
            return Map.of();
        }

        @Override
        public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {}

        @Override
        public ChangelogMode getChangelogMode() {
            return ChangelogMode.insertOnly();
        }

        @Override
        public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
            throw new UnsupportedOperationException();
        }

        @Override
        public DynamicTableSource copy() {
            copies++;
            return this;
        }

        @Override
        public String asSummaryString() {
            return "recording";
        }
    }
}
