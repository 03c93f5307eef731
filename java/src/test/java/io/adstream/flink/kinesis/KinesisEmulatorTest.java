package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.math.BigInteger;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.TableResult;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;

/**
 * The connector end to end against moto's server, the local AWS emulator adstream uses: records put
 * into a stream, read by the table source, written by the table sink keyed by a column, and read
 * back with the SDK.
 *
 * <p>Resharding in moto differs from AWS: a split shard keeps its records and, as moto ignores that
 * it is closed, keeps receiving the records of its key range, while its children stay empty. So
 * records are put after a split only while no reader has finished the parent yet; what the split
 * shows here is a closed shard read to its end and its children handed out after it.
 *
 * <p>The emulator runs from the app's venv ({@code adstream.python}, set by the pom); without it
 * these tests are skipped with a message. The SDK must speak JSON to moto ({@code
 * aws.cborEnabled=false}, also set by the pom).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KinesisEmulatorTest {

    private static final String REGION = "us-east-1";
    private static final String KEY_ID = "adstream-test";
    private static final Duration STARTUP = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();

    private Process emulator;
    private Path emulatorLog;
    private String endpoint;
    private KinesisAsyncClient kinesis;

    @BeforeAll
    void startEmulator() throws Exception {
        Path python = Path.of(System.getProperty("adstream.python", "../.venv/bin/python"));
        assumeTrue(
                Files.isRegularFile(python),
                "Skipping the Kinesis emulator tests: "
                        + python
                        + " does not exist (the app's venv with moto[server]; `make setup` creates"
                        + " it)");
        int port;
        try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = free.getLocalPort();
        }
        emulatorLog = Files.createTempFile(Path.of("target"), "moto-", ".log");
        emulator =
                new ProcessBuilder(
                                python.toString(),
                                "-m",
                                "moto.server",
                                "-H",
                                "127.0.0.1",
                                "-p",
                                String.valueOf(port))
                        .redirectErrorStream(true)
                        .redirectOutput(emulatorLog.toFile())
                        .start();
        endpoint = "http://127.0.0.1:" + port;
        kinesis =
                KinesisAsyncClient.builder()
                        .region(Region.of(REGION))
                        .credentialsProvider(
                                StaticCredentialsProvider.create(
                                        AwsBasicCredentials.create(KEY_ID, KEY_ID)))
                        .endpointOverride(URI.create(endpoint))
                        .httpClientBuilder(
                                NettyNioAsyncHttpClient.builder().protocol(Protocol.HTTP1_1))
                        .build();
        Instant deadline = Instant.now().plus(STARTUP);
        while (!answers()) {
            assertThat(emulator.isAlive())
                    .as("moto's server exited; its log: %s", emulatorLog)
                    .isTrue();
            assertThat(Instant.now())
                    .as("moto's server did not answer in %s; its log: %s", STARTUP, emulatorLog)
                    .isBefore(deadline);
            Thread.sleep(50);
        }
    }

    private boolean answers() {
        try {
            kinesis.listStreams().join();
            return true;
        } catch (CompletionException notYet) {
            return false;
        }
    }

    @AfterAll
    void stopEmulator() throws Exception {
        if (kinesis != null) {
            kinesis.close();
        }
        if (emulator != null) {
            emulator.destroy();
            if (!emulator.waitFor(10, TimeUnit.SECONDS)) {
                emulator.destroyForcibly();
            }
        }
    }

    @Test
    void everyRecordOnceAndInOrderPerKeyThroughSourceAndSink() throws Exception {
        String input = createStream("clicks-in", 2);
        String output = createStream("clicks-out", 2);
        Map<String, List<String>> expected = new LinkedHashMap<>();
        List<String[]> first = new ArrayList<>();
        List<String[]> second = new ArrayList<>();
        for (int n = 0; n < 25; n++) {
            for (int k = 0; k < 20; k++) {
                String key = String.format("key-%02d", k);
                String payload = key + ":" + n;
                expected.computeIfAbsent(key, any -> new ArrayList<>()).add(payload);
                (n < 12 ? first : second).add(new String[] {key, payload});
            }
        }
        put("clicks-in", first);
        splitShard("clicks-in", "shardId-000000000000");
        put("clicks-in", second);

        TableEnvironment tables = tableEnvironment(null);
        tables.executeSql(
                "CREATE TABLE clicks_in ("
                        + " payload STRING,"
                        + " arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',"
                        + " shard STRING METADATA FROM 'shard-id',"
                        + " seq STRING METADATA FROM 'sequence-number',"
                        + " WATERMARK FOR arrival AS arrival - INTERVAL '5' SECOND"
                        + ") WITH ("
                        + connection(input)
                        + ", 'source.init.position' = 'TRIM_HORIZON', 'scan.bounded.mode' ="
                        + " 'latest', 'format' = 'raw')");
        tables.executeSql(
                "CREATE TABLE clicks_out (k STRING, payload STRING, shard STRING, seq STRING,"
                        + " arrival TIMESTAMP_LTZ(3)) PARTITIONED BY (k) WITH ("
                        + connection(output)
                        + ", 'sink.requests.max-inflight' = '1', 'sink.flush-buffer.timeout' ="
                        + " '200', 'format' = 'json')");
        TableResult job =
                tables.executeSql(
                        "INSERT INTO clicks_out SELECT SPLIT_INDEX(payload, ':', 0), payload,"
                                + " shard, seq, arrival FROM clicks_in");
        // Put after the job was planned: past the bound of 'latest', never read.
        put(
                "clicks-in",
                List.of(
                        new String[] {"key-00", "key-00:late"},
                        new String[] {"key-01", "key-01:late"}));
        job.await(3, TimeUnit.MINUTES);

        Map<String, List<String>> written = new LinkedHashMap<>();
        Map<String, String> lastSequencePerShard = new LinkedHashMap<>();
        for (Record record : readAll("clicks-out")) {
            JsonNode row = JSON.readTree(record.data().asByteArrayUnsafe());
            String key = row.get("k").asText();
            assertThat(record.partitionKey()).isEqualTo(key);
            written.computeIfAbsent(key, any -> new ArrayList<>()).add(row.get("payload").asText());
            // Per input shard, in the output of one key, sequence numbers only grow.
            String shardOfKey = key + "@" + row.get("shard").asText();
            BigInteger sequence = new BigInteger(row.get("seq").asText());
            String previous = lastSequencePerShard.put(shardOfKey, sequence.toString());
            if (previous != null) {
                assertThat(sequence).isGreaterThan(new BigInteger(previous));
            }
            assertThat(row.get("shard").asText()).matches("shardId-00000000000[0-3]");
            assertThat(row.get("arrival").isNull()).isFalse();
        }
        assertThat(written).isEqualTo(expected);
    }

    @Test
    void resumesFromASavepointAfterTheLastRecordItEmitted(@TempDir Path savepoints)
            throws Exception {
        String input = createStream("resume-in", 2);
        String output = createStream("resume-out", 1);
        List<String[]> before = keyed("before", 20);
        List<String[]> after = keyed("after", 10);
        put("resume-in", before);

        // Endless, until everything put so far is out; then stopped with a savepoint.
        TableResult endless = copy(tableEnvironment(null), input, output, "unbounded");
        Instant deadline = Instant.now().plus(Duration.ofMinutes(2));
        int copied;
        while ((copied = readAll("resume-out").size()) < before.size()) {
            assertThat(Instant.now())
                    .as("the endless job copied %d of %d records in time", copied, before.size())
                    .isBefore(deadline);
            Thread.sleep(200);
        }
        String savepoint =
                endless.getJobClient()
                        .orElseThrow()
                        .stopWithSavepoint(
                                false, savepoints.toUri().toString(), SavepointFormatType.CANONICAL)
                        .get(2, TimeUnit.MINUTES);

        // More records, then a bounded run restored from the savepoint.
        put("resume-in", after);
        copy(tableEnvironment(savepoint), input, output, "latest").await(3, TimeUnit.MINUTES);

        Map<String, List<String>> expected = new LinkedHashMap<>();
        for (List<String[]> records : List.of(before, after)) {
            records.forEach(
                    record ->
                            expected.computeIfAbsent(record[0], any -> new ArrayList<>())
                                    .add(record[1]));
        }
        Map<String, List<String>> written = new LinkedHashMap<>();
        for (Record record : readAll("resume-out")) {
            JsonNode row = JSON.readTree(record.data().asByteArrayUnsafe());
            assertThat(record.partitionKey()).isEqualTo(row.get("k").asText());
            written.computeIfAbsent(row.get("k").asText(), any -> new ArrayList<>())
                    .add(row.get("payload").asText());
        }
        assertThat(written).isEqualTo(expected);
    }

    /** {@code rounds} records for each of 10 keys, round by round: (key, "key:label-round"). */
    private static List<String[]> keyed(String label, int rounds) {
        List<String[]> records = new ArrayList<>();
        for (int n = 0; n < rounds; n++) {
            for (int k = 0; k < 10; k++) {
                String key = "key-" + k;
                records.add(new String[] {key, key + ":" + label + "-" + n});
            }
        }
        return records;
    }

    /** Starts copying every payload of one stream into another, keyed by the payload's key. */
    private TableResult copy(
            TableEnvironment tables, String input, String output, String boundedMode) {
        tables.executeSql(
                "CREATE TABLE copy_in (payload STRING) WITH ("
                        + connection(input)
                        + ", 'source.init.position' = 'TRIM_HORIZON', 'scan.bounded.mode' = '"
                        + boundedMode
                        + "', 'format' = 'raw')");
        tables.executeSql(
                "CREATE TABLE copy_out (k STRING, payload STRING) PARTITIONED BY (k) WITH ("
                        + connection(output)
                        + ", 'sink.requests.max-inflight' = '1', 'sink.flush-buffer.timeout' ="
                        + " '100', 'format' = 'json')");
        return tables.executeSql(
                "INSERT INTO copy_out SELECT SPLIT_INDEX(payload, ':', 0), payload FROM copy_in");
    }

    /**
     * Streaming, a checkpoint every 500 ms; restored from a savepoint if given. One parallel
     * instance: moto stores the records of concurrent PutRecords calls to one shard under the same
     * sequence numbers, losing some (seen: 19,842 of 20,000 from 4 writers), so the tests write
     * with one sink writer. (Two readers are {@link ShardEnumeratorTest}'s.)
     */
    private TableEnvironment tableEnvironment(String savepoint) {
        Configuration config = new Configuration();
        config.setString("parallelism.default", "1");
        config.setString("execution.checkpointing.interval", "500 ms");
        if (savepoint != null) {
            config.setString("execution.state-recovery.path", savepoint);
        }
        return TableEnvironment.create(
                EnvironmentSettings.newInstance()
                        .inStreamingMode()
                        .withConfiguration(config)
                        .build());
    }

    private String connection(String arn) {
        return String.format(
                "'connector' = 'kinesis', 'stream.arn' = '%s', 'aws.endpoint' = '%s',"
                    + " 'aws.credentials.provider' = 'BASIC', 'aws.credentials.basic.accesskeyid' ="
                    + " '%s', 'aws.credentials.basic.secretkey' = '%s'",
                arn, endpoint, KEY_ID, KEY_ID);
    }

    /** Creates a stream, waits until it is active, returns its ARN. */
    private String createStream(String name, int shards) throws InterruptedException {
        kinesis.createStream(request -> request.streamName(name).shardCount(shards)).join();
        return awaitActive(name);
    }

    private String awaitActive(String name) throws InterruptedException {
        Instant deadline = Instant.now().plus(STARTUP);
        while (true) {
            var summary =
                    kinesis.describeStreamSummary(request -> request.streamName(name))
                            .join()
                            .streamDescriptionSummary();
            if (summary.streamStatus() == StreamStatus.ACTIVE) {
                return summary.streamARN();
            }
            assertThat(Instant.now())
                    .as("stream %s did not become active", name)
                    .isBefore(deadline);
            Thread.sleep(50);
        }
    }

    private void splitShard(String stream, String shardId) throws InterruptedException {
        Shard shard =
                kinesis.listShards(request -> request.streamName(stream)).join().shards().stream()
                        .filter(each -> each.shardId().equals(shardId))
                        .findFirst()
                        .orElseThrow();
        BigInteger start = new BigInteger(shard.hashKeyRange().startingHashKey());
        BigInteger end = new BigInteger(shard.hashKeyRange().endingHashKey());
        String middle = start.add(end).shiftRight(1).toString();
        kinesis.splitShard(
                        request ->
                                request.streamName(stream)
                                        .shardToSplit(shardId)
                                        .newStartingHashKey(middle))
                .join();
        awaitActive(stream);
    }

    /** Puts (partition key, payload) pairs in order, 500 a call. */
    private void put(String stream, List<String[]> records) {
        for (int from = 0; from < records.size(); from += 500) {
            List<PutRecordsRequestEntry> entries = new ArrayList<>();
            for (String[] record : records.subList(from, Math.min(from + 500, records.size()))) {
                entries.add(
                        PutRecordsRequestEntry.builder()
                                .partitionKey(record[0])
                                .data(SdkBytes.fromUtf8String(record[1]))
                                .build());
            }
            PutRecordsResponse response =
                    kinesis.putRecords(request -> request.streamName(stream).records(entries))
                            .join();
            assertThat(response.failedRecordCount()).isZero();
        }
    }

    /** Every record of every shard, shard by shard, each in order. */
    private List<Record> readAll(String stream) {
        List<Record> records = new ArrayList<>();
        for (Shard shard :
                kinesis.listShards(request -> request.streamName(stream)).join().shards()) {
            String iterator =
                    kinesis.getShardIterator(
                                    request ->
                                            request.streamName(stream)
                                                    .shardId(shard.shardId())
                                                    .shardIteratorType(
                                                            ShardIteratorType.TRIM_HORIZON))
                            .join()
                            .shardIterator();
            while (iterator != null) {
                String current = iterator;
                GetRecordsResponse page =
                        kinesis.getRecords(request -> request.shardIterator(current)).join();
                records.addAll(page.records());
                boolean atTheEnd = page.records().isEmpty() && page.millisBehindLatest() == 0;
                iterator = atTheEnd ? null : page.nextShardIterator();
            }
        }
        return records;
    }
}
