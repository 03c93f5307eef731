package io.adstream.flink.kinesis;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.connector.base.sink.writer.AsyncSinkWriter;
import org.apache.flink.connector.base.sink.writer.BufferedRequestState;
import org.apache.flink.connector.base.sink.writer.ElementConverter;
import org.apache.flink.connector.base.sink.writer.ResultHandler;
import org.apache.flink.connector.base.sink.writer.config.AsyncSinkWriterConfiguration;
import org.apache.flink.util.ExceptionUtils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.model.AccessDeniedException;
import software.amazon.awssdk.services.kinesis.model.InvalidArgumentException;
import software.amazon.awssdk.services.kinesis.model.KinesisException;
import software.amazon.awssdk.services.kinesis.model.KmsAccessDeniedException;
import software.amazon.awssdk.services.kinesis.model.KmsDisabledException;
import software.amazon.awssdk.services.kinesis.model.KmsInvalidStateException;
import software.amazon.awssdk.services.kinesis.model.KmsNotFoundException;
import software.amazon.awssdk.services.kinesis.model.KmsOptInRequiredException;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequest;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;
import software.amazon.awssdk.services.kinesis.model.ResourceNotFoundException;
import software.amazon.awssdk.services.kinesis.model.ValidationException;

/**
 * Writes batches of records with PutRecords (the async sink base forms the batches within the
 * sink's limits, and retries what this writer hands back).
 *
 * <ul>
 *   <li>A call that partly failed (throttled records, an internal error) hands back only the
 *       records that failed: a record Kinesis accepted is never written twice by a retry.
 *   <li>A call refused as a whole for a reason that passes (throttling, a network error) hands back
 *       the whole batch.
 *   <li>Records handed back are written again after a pause, 0.1 s doubling to 5 s while calls keep
 *       failing.
 *   <li>A call refused for a reason no retry cures (no such stream, access denied, bad credentials,
 *       an invalid request) fails the job, naming the reason.
 *   <li>With {@code sink.fail-on-error}, any failure fails the job.
 * </ul>
 */
final class KinesisSinkWriter<T> extends AsyncSinkWriter<T, PutRecordsRequestEntry> {

    private static final Logger LOG = LoggerFactory.getLogger(KinesisSinkWriter.class);

    /** Failures of a call that no retry cures. */
    private static final List<Class<? extends KinesisException>> FATAL_TYPES =
            List.of(
                    ResourceNotFoundException.class,
                    AccessDeniedException.class,
                    InvalidArgumentException.class,
                    ValidationException.class,
                    KmsAccessDeniedException.class,
                    KmsDisabledException.class,
                    KmsInvalidStateException.class,
                    KmsNotFoundException.class,
                    KmsOptInRequiredException.class);

    /** The same, for errors of AWS as a whole (bad credentials) that Kinesis' model lacks. */
    private static final Set<String> FATAL_ERROR_CODES =
            Set.of(
                    "UnrecognizedClientException",
                    "InvalidSignatureException",
                    "IncompleteSignatureException",
                    "MissingAuthenticationTokenException",
                    "ExpiredTokenException");

    static final long FIRST_RETRY_PAUSE_MS = 100;
    static final long MAX_RETRY_PAUSE_MS = 5_000;

    private final KinesisAsyncClient kinesis;
    private final String streamArn;
    private final boolean failOnError;
    private final AtomicInteger failuresInARow = new AtomicInteger();

    KinesisSinkWriter(
            ElementConverter<T, PutRecordsRequestEntry> elementConverter,
            WriterInitContext context,
            AsyncSinkWriterConfiguration configuration,
            Collection<BufferedRequestState<PutRecordsRequestEntry>> recoveredState,
            KinesisAsyncClient kinesis,
            String streamArn,
            boolean failOnError) {
        super(elementConverter, context, configuration, recoveredState);
        this.kinesis = kinesis;
        this.streamArn = streamArn;
        this.failOnError = failOnError;
    }

    @Override
    protected void submitRequestEntries(
            List<PutRecordsRequestEntry> entries, ResultHandler<PutRecordsRequestEntry> result) {
        PutRecordsRequest request =
                PutRecordsRequest.builder().streamARN(streamArn).records(entries).build();
        kinesis.putRecords(request)
                .whenComplete(
                        (response, failure) -> {
                            if (failure != null) {
                                callFailed(
                                        entries,
                                        ExceptionUtils.stripCompletionException(failure),
                                        result);
                            } else if (response.failedRecordCount() != null
                                    && response.failedRecordCount() > 0) {
                                recordsFailed(entries, response, result);
                            } else {
                                failuresInARow.set(0);
                                result.complete();
                            }
                        });
    }

    private void callFailed(
            List<PutRecordsRequestEntry> entries,
            Throwable failure,
            ResultHandler<PutRecordsRequestEntry> result) {
        if (isFatal(failure) || failOnError) {
            result.completeExceptionally(
                    new KinesisSinkException(
                            String.format(
                                    "Cannot write to Kinesis stream %s: %s",
                                    streamArn, failure.getMessage()),
                            failure));
            return;
        }
        LOG.warn(
                "PutRecords of {} records to {} failed, retrying them: {}",
                entries.size(),
                streamArn,
                failure.toString());
        retryLater(entries, result);
    }

    private void recordsFailed(
            List<PutRecordsRequestEntry> entries,
            PutRecordsResponse response,
            ResultHandler<PutRecordsRequestEntry> result) {
        List<PutRecordsRequestEntry> failed = new ArrayList<>(response.failedRecordCount());
        PutRecordsResultEntry firstFailure = null;
        List<PutRecordsResultEntry> outcomes = response.records();
        for (int i = 0; i < outcomes.size(); i++) {
            if (outcomes.get(i).errorCode() != null) {
                failed.add(entries.get(i));
                firstFailure = firstFailure == null ? outcomes.get(i) : firstFailure;
            }
        }
        String firstError = firstFailure.errorCode() + ": " + firstFailure.errorMessage();
        if (failOnError) {
            result.completeExceptionally(
                    new KinesisSinkException(
                            String.format(
                                    "%d of %d records were not written to Kinesis stream %s"
                                            + " (sink.fail-on-error is set), the first: %s",
                                    failed.size(), entries.size(), streamArn, firstError),
                            null));
            return;
        }
        LOG.debug(
                "{} of {} records not written to {}, retrying them; the first: {}",
                failed.size(),
                entries.size(),
                streamArn,
                firstError);
        retryLater(failed, result);
    }

    /**
     * Hands records back to be written again, after a pause that doubles with each failure in a row
     * (0.1 s up to 5 s): a throttled stream gets time to recover. Meanwhile the call still counts
     * as in flight, which holds back new calls too.
     */
    private void retryLater(
            List<PutRecordsRequestEntry> entries, ResultHandler<PutRecordsRequestEntry> result) {
        int failures = Math.min(failuresInARow.incrementAndGet(), 16);
        long pause = Math.min(MAX_RETRY_PAUSE_MS, FIRST_RETRY_PAUSE_MS << (failures - 1));
        CompletableFuture.delayedExecutor(pause, TimeUnit.MILLISECONDS)
                .execute(() -> result.retryForEntries(entries));
    }

    /** Whether no retry can cure this failure of a whole call. */
    static boolean isFatal(Throwable failure) {
        if (FATAL_TYPES.stream().anyMatch(type -> type.isInstance(failure))) {
            return true;
        }
        if (failure instanceof AwsServiceException) {
            AwsServiceException service = (AwsServiceException) failure;
            return service.awsErrorDetails() != null
                    && FATAL_ERROR_CODES.contains(service.awsErrorDetails().errorCode());
        }
        // The SDK says so when no credentials were found (a network error is not fatal).
        return failure instanceof SdkClientException
                && String.valueOf(failure.getMessage()).contains("Unable to load credentials");
    }

    @Override
    protected long getSizeInBytes(PutRecordsRequestEntry entry) {
        // Kinesis counts the partition key towards a record's size and a call's.
        return entry.data().asByteArrayUnsafe().length
                + entry.partitionKey().getBytes(StandardCharsets.UTF_8).length;
    }

    @Override
    public void close() {
        kinesis.close();
    }

    /** A write no retry will cure. */
    static final class KinesisSinkException extends RuntimeException {
        KinesisSinkException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
