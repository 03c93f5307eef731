package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.ValidationException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * How the planner uses the table source and sink: found by 'connector' = 'kinesis', no AWS needed.
 */
class KinesisTablePlanTest {

    private static final String WITH =
            "'connector' = 'kinesis', 'stream.arn' ="
                    + " 'arn:aws:kinesis:us-east-1:123456789012:stream/clicks', 'format' = 'raw'";

    private static TableEnvironment tables;

    @BeforeAll
    static void createTables() {
        tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tables.executeSql(
                "CREATE TABLE clicks ("
                        + " payload BYTES,"
                        + " arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',"
                        + " shard VARCHAR(128) METADATA FROM 'shard-id' VIRTUAL,"
                        + " seq STRING METADATA FROM 'sequence-number' VIRTUAL,"
                        + " WATERMARK FOR arrival AS arrival - INTERVAL '5' SECOND"
                        + ") WITH ("
                        + WITH
                        + ")");
    }

    @Test
    void theWatermarkIsGeneratedInTheSourcePerShard() {
        String explained = tables.explainSql("SELECT payload, shard, seq FROM clicks");
        String plan = explained.substring(explained.indexOf("== Optimized Execution Plan =="));
        assertThat(plan)
                .containsPattern(
                        "TableSourceScan\\(table=\\[\\[default_catalog, default_database, clicks,"
                                + " .*watermark=\\[")
                .doesNotContain("WatermarkAssigner");
    }

    @Test
    void idlenessIsPartOfThePushedWatermark() {
        tables.executeSql(
                "CREATE TABLE quiet (payload BYTES, arrival TIMESTAMP_LTZ(3) METADATA FROM"
                        + " 'timestamp', WATERMARK FOR arrival AS arrival) WITH ("
                        + WITH
                        + ", 'scan.watermark.idle-timeout' = '10 s')");
        String explained = tables.explainSql("SELECT payload FROM quiet");
        assertThat(explained.substring(explained.indexOf("== Optimized Execution Plan ==")))
                .containsPattern("TableSourceScan\\(.*watermark=\\[.*idletimeout=\\[10000\\]");
    }

    @Test
    void metadataColumnsAreReadFromTheSource() {
        String plan = tables.explainSql("SELECT payload, shard, seq FROM clicks");
        assertThat(plan).contains("metadata=[timestamp, shard-id, sequence-number]");
    }

    @Test
    void theSinkWritesAPartitionedTable() {
        tables.executeSql(
                "CREATE TABLE outcomes (payload STRING) PARTITIONED BY (payload) WITH ("
                        + WITH
                        + ")");
        assertThat(
                        tables.explainSql(
                                "INSERT INTO outcomes SELECT CAST(payload AS STRING) FROM clicks"))
                .contains("Sink(table=[default_catalog.default_database.outcomes]");
    }

    @Test
    void unknownOptionsAreRefusedByFlink() {
        tables.executeSql(
                "CREATE TABLE typo (payload BYTES) WITH ("
                        + WITH
                        + ", 'source.init.positon' = 'LATEST')");
        assertThatThrownBy(() -> tables.explainSql("SELECT * FROM typo"))
                .hasRootCauseInstanceOf(ValidationException.class)
                .rootCause()
                .hasMessageContaining("Unsupported options found for 'kinesis'")
                .hasMessageContaining("source.init.positon");
    }

    @Test
    void officialOptionsNotImplementedAreRefusedWithTheReason() {
        tables.executeSql(
                "CREATE TABLE efo (payload BYTES) WITH ("
                        + WITH
                        + ", 'source.reader.type' = 'EFO')");
        assertThatThrownBy(() -> tables.explainSql("SELECT * FROM efo"))
                .rootCause()
                .hasMessageContaining(
                        "'source.reader.type' = 'EFO' is not supported by adstream's Kinesis"
                                + " connector");
    }
}
