package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.types.logical.RowType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The table options: official names and defaults, ours, and what is refused and why. */
class KinesisOptionsTest {

    private static final String ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/clicks";

    private static Configuration options(String... keysAndValues) {
        Map<String, String> map = new HashMap<>();
        map.put("stream.arn", ARN);
        for (int i = 0; i < keysAndValues.length; i += 2) {
            map.put(keysAndValues[i], keysAndValues[i + 1]);
        }
        return Configuration.fromMap(map);
    }

    private static final RowType ROW =
            (RowType)
                    DataTypes.ROW(
                                    DataTypes.FIELD("k", DataTypes.STRING()),
                                    DataTypes.FIELD("n", DataTypes.INT()),
                                    DataTypes.FIELD("b", DataTypes.BYTES()))
                            .getLogicalType();

    @Test
    void sourceDefaultsAreTheOfficialOnes() {
        KinesisSource.ReadSettings settings = KinesisDynamicTableFactory.readSettings(options());
        assertThat(settings.initialPosition()).isEqualTo(KinesisOptions.InitialPosition.LATEST);
        assertThat(settings.discoveryInterval()).isEqualTo(Duration.ofSeconds(10));
        assertThat(settings.maxRecordsPerCall()).isEqualTo(10_000);
        assertThat(settings.emptyShardPause()).isEqualTo(Duration.ofMillis(250));
        assertThat(settings.bounded()).isFalse();
    }

    @Test
    void boundedLatestIsBoundedByThePlanningInstant() {
        Instant before = Instant.now();
        KinesisSource.ReadSettings settings =
                KinesisDynamicTableFactory.readSettings(options("scan.bounded.mode", "latest"));
        assertThat(settings.bounded()).isTrue();
        assertThat(settings.boundedUntil()).isBetween(before, Instant.now());
    }

    @ParameterizedTest
    @CsvSource({
        "2016-04-04T19:58:46.480-00:00, 2016-04-04T19:58:46.480Z",
        "1459799926.480,                2016-04-04T19:58:46.480Z",
    })
    void atTimestampReadsTheOfficialFormats(String value, String expected) {
        KinesisSource.ReadSettings settings =
                KinesisDynamicTableFactory.readSettings(
                        options(
                                "source.init.position",
                                "AT_TIMESTAMP",
                                "source.init.timestamp",
                                value));
        assertThat(settings.firstPosition(Instant.now()))
                .isEqualTo(ShardSplit.Position.atTimestamp(Instant.parse(expected)));
    }

    @Test
    void latestStartsAtTheFirstListing() {
        Instant now = Instant.parse("2026-11-01T00:00:00Z");
        assertThat(KinesisDynamicTableFactory.readSettings(options()).firstPosition(now))
                .isEqualTo(ShardSplit.Position.atTimestamp(now));
        assertThat(
                        KinesisDynamicTableFactory.readSettings(
                                        options("source.init.position", "TRIM_HORIZON"))
                                .firstPosition(now))
                .isEqualTo(ShardSplit.Position.trimHorizon());
    }

    @Test
    void connectionTakesTheRegionFromTheArnUnlessGiven() {
        KinesisConnection connection = KinesisDynamicTableFactory.connection(options());
        assertThat(connection.region()).isEqualTo("eu-west-1");
        assertThat(connection.credentials()).isEqualTo(KinesisOptions.CredentialsProvider.AUTO);
        assertThat(connection.endpoint()).isNull();

        connection =
                KinesisDynamicTableFactory.connection(
                        options(
                                "aws.region", "us-east-1",
                                "aws.endpoint", "http://127.0.0.1:4566",
                                "aws.credentials.basic.accesskeyid", "key",
                                "aws.credentials.basic.secretkey", "secret"));
        assertThat(connection.region()).isEqualTo("us-east-1");
        assertThat(connection.endpoint()).isEqualTo("http://127.0.0.1:4566");
        assertThat(connection.credentials()).isEqualTo(KinesisOptions.CredentialsProvider.BASIC);
        assertThat(connection.toString()).doesNotContain("secret");
    }

    @Test
    void sinkDefaultsAreTheOfficialOnes() {
        KinesisTableSink.WriteSettings settings =
                KinesisDynamicTableFactory.writeSettings(options(), ROW, List.of());
        assertThat(settings.maxBatchSize()).isEqualTo(500);
        assertThat(settings.maxInFlightRequests()).isEqualTo(50);
        assertThat(settings.maxBufferedRequests()).isEqualTo(10_000);
        assertThat(settings.maxBatchSizeInBytes()).isEqualTo(5 * 1024 * 1024);
        assertThat(settings.maxTimeInBufferMs()).isEqualTo(5_000);
        assertThat(settings.failOnError()).isFalse();
        assertThat(settings.keyDelimiter()).isEqualTo("|");
        assertThat(settings.keyFields()).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(
            delimiter = ';',
            quoteCharacter = '"',
            value = {
                "stream; x; 'stream' is not supported by adstream's Kinesis connector: name the"
                        + " stream by 'stream.arn'",
                "source.efo.consumer.name; c; 'source.efo.consumer.name' is not supported",
                "source.reader.type; EFO; it reads by polling (POLLING) only",
                "source.shard-assigner; uniform; 'source.shard-assigner' is not supported",
                "aws.credentials.role.arn; r; assuming a role needs the official connector",
                "aws.credentials.profile.name; p; profiles are not supported",
                "aws.http-client.max-concurrency; 10; 'aws.http-client.max-concurrency' is not"
                        + " supported",
                "sink.producer.collection-max-count; 10; the legacy KPL options are gone",
                "sink.partitioner; fixed; only 'random'",
                "aws.credentials.provider; ASSUME_ROLE; other providers need the official"
                        + " connector",
            })
    void officialOptionsNotImplementedAreRefusedByName(String key, String value, String message) {
        Map<String, String> given = Map.of("stream.arn", ARN, key, value);
        assertThatThrownBy(() -> KinesisOptions.refuseUnsupported(given))
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining(message);
    }

    @Test
    void supportedValuesPass() {
        KinesisOptions.refuseUnsupported(
                Map.of("source.reader.type", "POLLING", "sink.partitioner", "random"));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(
            delimiter = ';',
            quoteCharacter = '"',
            value = {
                "stream.arn; arn:aws:s3:::bucket; is not the ARN of a Kinesis stream",
                "aws.credentials.provider; BASIC; are needed with 'aws.credentials.provider' ="
                        + " 'BASIC'",
                "source.init.position; AT_TIMESTAMP; Option 'source.init.timestamp' is needed",
                "source.shard.get-records.max-record-count; 10001; out of range: 1 to 10000",
            })
    void invalidSourceValuesAreRefused(String key, String value, String message) {
        assertThatThrownBy(
                        () -> {
                            Configuration options = options(key, value);
                            KinesisDynamicTableFactory.connection(options);
                            KinesisDynamicTableFactory.readSettings(options);
                        })
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining(message);
    }

    @Test
    void anInitialTimestampInNeitherFormatIsRefused() {
        assertThatThrownBy(
                        () ->
                                KinesisDynamicTableFactory.readSettings(
                                        options(
                                                "source.init.position",
                                                "AT_TIMESTAMP",
                                                "source.init.timestamp",
                                                "yesterday")))
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining("'yesterday' is neither in the format");
    }

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource({
        "sink.batch.max-size, 501, out of range: 1 to 500",
        "sink.flush-buffer.size, 5242881, out of range: 1 to 5242880",
    })
    void sinkLimitsBeyondKinesisAreRefused(String key, String value, String message) {
        assertThatThrownBy(
                        () ->
                                KinesisDynamicTableFactory.writeSettings(
                                        options(key, value), ROW, List.of()))
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining(message);
    }

    @Test
    void partitionColumnsMustHaveATextForm() {
        assertThat(
                        KinesisDynamicTableFactory.writeSettings(options(), ROW, List.of("k", "n"))
                                .keyFields())
                .hasSize(2);
        assertThatThrownBy(
                        () ->
                                KinesisDynamicTableFactory.writeSettings(
                                        options(), ROW, List.of("b")))
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining(
                        "PARTITIONED BY column 'b' of type BYTES cannot make a partition key");
    }
}
