package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.connector.base.sink.writer.config.AsyncSinkWriterConfiguration;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.awscore.exception.AwsErrorDetails;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.KinesisException;
import software.amazon.awssdk.services.kinesis.model.ProvisionedThroughputExceededException;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;
import software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException;

/**
 * {@link KinesisSinkWriter} over a Kinesis client that answers PutRecords itself: how records are
 * batched, and what is retried when a call fails in part or in whole.
 */
class KinesisSinkWriterTest {

    private static final String ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/out";

    /** Answers PutRecords by {@code answer}; keeps every call, and every record accepted. */
    private static final class FakeKinesis extends FakeKinesisClient {
        final List<List<String>> calls = new ArrayList<>();
        final List<Long> callBytes = new ArrayList<>();
        final List<String> accepted = new ArrayList<>();
        final Function<List<String>, Set<String>> failing; // the records of a call that fail

        FakeKinesis(Function<List<String>, Set<String>> failing) {
            this.failing = failing;
        }

        @Override
        public CompletableFuture<PutRecordsResponse> putRecords(PutRecordsRequest request) {
            assertThat(request.streamARN()).isEqualTo(ARN);
            List<String> records =
                    request.records().stream()
                            .map(entry -> entry.data().asUtf8String())
                            .collect(Collectors.toList());
            calls.add(records);
            callBytes.add(
                    request.records().stream()
                            .mapToLong(
                                    e ->
                                            e.data().asByteArrayUnsafe().length
                                                    + e.partitionKey().length())
                            .sum());
            Set<String> failed = failing.apply(records);
            List<PutRecordsResultEntry> results = new ArrayList<>();
            for (String record : records) {
                if (failed.contains(record)) {
                    results.add(
                            PutRecordsResultEntry.builder()
                                    .errorCode("ProvisionedThroughputExceededException")
                                    .errorMessage("Rate exceeded for shard shardId-000000000000")
                                    .build());
                } else {
                    accepted.add(record);
                    results.add(
                            PutRecordsResultEntry.builder()
                                    .sequenceNumber(String.valueOf(accepted.size()))
                                    .shardId("shardId-000000000000")
                                    .build());
                }
            }
            return CompletableFuture.completedFuture(
                    PutRecordsResponse.builder()
                            .failedRecordCount(failed.size())
                            .records(results)
                            .build());
        }
    }

    private static final ElementConverter<String, PutRecordsRequestEntry> AS_ENTRY =
            (record, context) ->
                    PutRecordsRequestEntry.builder()
                            .data(SdkBytes.fromUtf8String(record))
                            .partitionKey(record.substring(0, 2))
                            .build();

    private static KinesisSinkWriter<String> writer(
            KinesisAsyncClient kinesis, boolean failOnError) {
        return new KinesisSinkWriter<>(
                AS_ENTRY,
                new TestWriterContext(),
                AsyncSinkWriterConfiguration.builder()
                        .setMaxBatchSize(KinesisSink.MAX_RECORDS_PER_CALL)
                        .setMaxBatchSizeInBytes(KinesisSink.MAX_BYTES_PER_CALL)
                        .setMaxInFlightRequests(1)
                        .setMaxBufferedRequests(10_000)
                        .setMaxTimeInBufferMS(60_000)
                        .setMaxRecordSizeInBytes(KinesisSink.MAX_RECORD_BYTES)
                        .build(),
                List.of(),
                kinesis,
                ARN,
                failOnError);
    }

    private static List<String> records(int count, int size) {
        List<String> records = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String prefix = String.format("k%d-%06d-", i % 10, i);
            records.add(prefix + "x".repeat(Math.max(0, size - prefix.length())));
        }
        return records;
    }

    private static void writeAll(KinesisSinkWriter<String> writer, List<String> records)
            throws Exception {
        for (String record : records) {
            writer.write(record, null);
        }
        writer.flush(true);
    }

    @Test
    void batchesHoldAtMost500RecordsAnd5MiB() throws Exception {
        FakeKinesis kinesis = new FakeKinesis(call -> Set.of());
        List<String> small = records(1_234, 100);
        writeAll(writer(kinesis, false), small);
        assertThat(kinesis.calls)
                .extracting(List::size)
                .allSatisfy(size -> assertThat(size).isLessThanOrEqualTo(500));
        assertThat(kinesis.accepted).isEqualTo(small);

        FakeKinesis bigRecords = new FakeKinesis(call -> Set.of());
        List<String> big = records(40, 300 * 1024);
        writeAll(writer(bigRecords, false), big);
        assertThat(bigRecords.callBytes)
                .allSatisfy(
                        bytes ->
                                assertThat(bytes)
                                        .isLessThanOrEqualTo(KinesisSink.MAX_BYTES_PER_CALL));
        assertThat(bigRecords.calls.get(0))
                .hasSize(17); // 17 x (300 KiB + key) fit in 5 MiB, 18 do not
        assertThat(bigRecords.accepted).isEqualTo(big);
    }

    @Test
    void aPartlyFailedCallRetriesOnlyTheRecordsThatFailed() throws Exception {
        Set<String> failedOnce = new HashSet<>();
        FakeKinesis kinesis =
                new FakeKinesis(
                        call ->
                                call.stream()
                                        .filter(
                                                record ->
                                                        record.startsWith("k3")
                                                                && failedOnce.add(record))
                                        .collect(Collectors.toSet()));
        List<String> written = records(100, 20);
        writeAll(writer(kinesis, false), written);

        List<String> failed =
                written.stream()
                        .filter(record -> record.startsWith("k3"))
                        .collect(Collectors.toList());
        assertThat(kinesis.calls).hasSize(2);
        assertThat(kinesis.calls.get(0)).isEqualTo(written);
        assertThat(kinesis.calls.get(1)).isEqualTo(failed); // only those, in their order
        assertThat(kinesis.accepted)
                .hasSize(100)
                .containsExactlyInAnyOrderElementsOf(written); // each once
    }

    @Test
    void failOnErrorFailsOnAPartlyFailedCall() throws Exception {
        FakeKinesis kinesis = new FakeKinesis(call -> Set.of(call.get(0)));
        KinesisSinkWriter<String> writer = writer(kinesis, true);
        assertThatThrownBy(() -> writeAll(writer, records(3, 20)))
                .hasStackTraceContaining("1 of 3 records were not written to Kinesis stream " + ARN)
                .hasStackTraceContaining("ProvisionedThroughputExceededException");
    }

    @Test
    void aMissingStreamFailsTheJobWithTheReason() {
        KinesisAsyncClient missing =
                new FakeKinesisClient() {
                    @Override
                    public CompletableFuture<PutRecordsResponse> putRecords(
                            PutRecordsRequest request) {
                        return CompletableFuture.failedFuture(
                                ResourceNotFoundException.builder()
                                        .message("Stream out under account 123456789012 not found.")
                                        .build());
                    }
                };
        assertThatThrownBy(() -> writeAll(writer(missing, false), records(3, 20)))
                .hasStackTraceContaining(
                        "Cannot write to Kinesis stream "
                                + ARN
                                + ": Stream out under account 123456789012 not found.");
    }

    @Test
    void aFatalCallIsToldFromAPassingOne() {
        assertThat(KinesisSinkWriter.isFatal(ResourceNotFoundException.builder().build())).isTrue();
        assertThat(
                        KinesisSinkWriter.isFatal(
                                ProvisionedThroughputExceededException.builder().build()))
                .isFalse();
        assertThat(
                        KinesisSinkWriter.isFatal(
                                KinesisException.builder()
                                        .awsErrorDetails(
                                                AwsErrorDetails.builder()
                                                        .errorCode("UnrecognizedClientException")
                                                        .build())
                                        .build()))
                .isTrue();
        assertThat(
                        KinesisSinkWriter.isFatal(
                                SdkClientException.create(
                                        "Unable to execute HTTP request: Connection refused")))
                .isFalse();
        assertThat(
                        KinesisSinkWriter.isFatal(
                                SdkClientException.create(
                                        "Unable to load credentials from any of the providers in"
                                                + " the chain")))
                .isTrue();
    }

    @Test
    void sizesCountThePartitionKey() {
        KinesisSinkWriter<String> writer = writer(new FakeKinesis(call -> Set.of()), false);
        PutRecordsRequestEntry entry =
                PutRecordsRequestEntry.builder()
                        .data(SdkBytes.fromString("héllo", StandardCharsets.UTF_8))
                        .partitionKey("clé")
                        .build();
        assertThat(writer.getSizeInBytes(entry)).isEqualTo(6 + 4);
    }
}
