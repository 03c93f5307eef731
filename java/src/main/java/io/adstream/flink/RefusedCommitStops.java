package io.adstream.flink;

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.StatefulSinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.SupportsWriterState;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.connector.kafka.sink.KafkaCommittable;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.KafkaWriterState;
import org.apache.flink.connector.kafka.sink.TwoPhaseCommittingStatefulSink.PrecommittingStatefulSinkWriter;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.Admin;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.TransactionState;
import org.apache.flink.streaming.api.connector.sink2.CommittableMessage;
import org.apache.flink.streaming.api.connector.sink2.SupportsPostCommitTopology;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.sink.DynamicTableSink.SinkRuntimeProvider;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.data.RowData;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Kafka's exactly-once sink whose committer fails the job on the first transaction it cannot
 * commit because the broker aborted it.
 *
 * <p>Kafka's own committer logs such a refusal (the broker aborted the transaction: it stayed
 * open past {@code transaction.timeout.ms}, as when the process was paused) and goes on: the
 * transaction's records are lost, and the checkpoints after it commit, so that no checkpoint
 * can replay them without also repeating what those committed. Here the refusal is thrown
 * instead, so nothing after it commits: every later attempt restores a checkpoint that holds
 * the refused transaction and fails on it again, and the one way on is to restore the
 * checkpoint before it, whose replay writes the refused records again. The log line ({@link
 * #REFUSED}, with the checkpoint) is what {@code adstream run} acts on.
 *
 * <p>Its writer is Kafka's, except that closing it never fails ({@link QuietClose}).
 */
public final class RefusedCommitStops {

    /** Logged, then the checkpoint's id, when the broker refuses to commit a transaction. */
    public static final String REFUSED = "Kafka refused to commit the transaction of checkpoint ";

    private static final Logger LOG = LoggerFactory.getLogger(RefusedCommitStops.class);

    private RefusedCommitStops() {}

    /**
     * The provider of Kafka's table sink, its sink wrapped; refused for any other.
     *
     * @param kafkaProperties how to reach the broker (the table's {@code properties.*})
     */
    @SuppressWarnings("unchecked")
    static SinkRuntimeProvider provider(SinkRuntimeProvider provider, Properties kafkaProperties) {
        if (provider instanceof SinkV2Provider sinkV2
                && sinkV2.createSink() instanceof KafkaSink<?> kafka) {
            return SinkV2Provider.of(
                    new StrictSink((KafkaSink<RowData>) kafka, new Transactions(kafkaProperties)),
                    sinkV2.getParallelism().orElse(null));
        }
        throw new ValidationException(
                "'" + RefusedCommitStopsSinkFactory.IDENTIFIER + "' wraps only Kafka's sink.");
    }

    /** The checkpoint a transaction holds the records of: the last part of its id. */
    static long checkpointOf(String transactionalId) {
        return Long.parseLong(transactionalId.substring(transactionalId.lastIndexOf('-') + 1));
    }

    /** Thrown on a refused commit: it fails the job. */
    public static final class RefusedCommitException extends IOException {
        RefusedCommitException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Whether the broker aborted a transaction (rather than committed it, or forgot it). */
    interface Aborted extends Serializable {
        boolean aborted(String transactionalId) throws Exception;
    }

    /** What the broker says of a transaction: its transactional id's last state. */
    static final class Transactions implements Aborted {
        private final Properties properties;

        Transactions(Properties properties) {
            this.properties = properties;
        }

        @Override
        public boolean aborted(String transactionalId) throws Exception {
            try (Admin admin = Admin.create(properties)) {
                TransactionState state =
                        admin.describeTransactions(List.of(transactionalId))
                                .description(transactionalId)
                                .get(30, TimeUnit.SECONDS)
                                .state();
                return state == TransactionState.COMPLETE_ABORT
                        || state == TransactionState.PREPARE_ABORT;
            }
        }
    }

    /** Kafka's sink, every part delegated; the committer made strict, the writer quiet. */
    static final class StrictSink
            implements Sink<RowData>,
                    SupportsWriterState<RowData, KafkaWriterState>,
                    SupportsCommitter<KafkaCommittable>,
                    SupportsPostCommitTopology<KafkaCommittable> {
        private final KafkaSink<RowData> kafka;
        private final Aborted aborted;

        StrictSink(KafkaSink<RowData> kafka, Aborted aborted) {
            this.kafka = kafka;
            this.aborted = aborted;
        }

        @Override
        public SinkWriter<RowData> createWriter(WriterInitContext context) throws IOException {
            return new QuietClose(kafka.createWriter(context));
        }

        @Override
        public StatefulSinkWriter<RowData, KafkaWriterState> restoreWriter(
                WriterInitContext context, Collection<KafkaWriterState> recoveredState)
                throws IOException {
            return new QuietClose(kafka.restoreWriter(context, recoveredState));
        }

        @Override
        public SimpleVersionedSerializer<KafkaWriterState> getWriterStateSerializer() {
            return kafka.getWriterStateSerializer();
        }

        @Override
        public Committer<KafkaCommittable> createCommitter(CommitterInitContext context)
                throws IOException {
            return new StrictCommitter(kafka.createCommitter(context), aborted);
        }

        @Override
        public SimpleVersionedSerializer<KafkaCommittable> getCommittableSerializer() {
            return kafka.getCommittableSerializer();
        }

        @Override
        public void addPostCommitTopology(
                DataStream<CommittableMessage<KafkaCommittable>> committables) {
            kafka.addPostCommitTopology(committables);
        }
    }

    /**
     * Kafka's writer, except that it does not throw from {@code close()}.
     *
     * <p>A writer whose transaction the broker aborted fails the task on its next send, and then
     * throws that error again when the failing task closes it; Flink calls an error while a
     * task handles its failure fatal and stops the task manager, which in a local mini-cluster
     * is the only one: the job's restarts then find no slot. Closing follows the last flush,
     * which has already reported every send that failed, so what close finds is logged instead.
     */
    static final class QuietClose
            implements StatefulSinkWriter<RowData, KafkaWriterState>,
                    CommittingSinkWriter<RowData, KafkaCommittable> {
        private final PrecommittingStatefulSinkWriter<RowData, KafkaWriterState, KafkaCommittable>
                writer;

        QuietClose(
                PrecommittingStatefulSinkWriter<RowData, KafkaWriterState, KafkaCommittable>
                        writer) {
            this.writer = writer;
        }

        @Override
        public void write(RowData row, Context context) throws IOException, InterruptedException {
            writer.write(row, context);
        }

        @Override
        public void flush(boolean endOfInput) throws IOException, InterruptedException {
            writer.flush(endOfInput);
        }

        @Override
        public void writeWatermark(Watermark watermark) throws IOException, InterruptedException {
            writer.writeWatermark(watermark);
        }

        @Override
        public List<KafkaWriterState> snapshotState(long checkpointId) throws IOException {
            return writer.snapshotState(checkpointId);
        }

        @Override
        public Collection<KafkaCommittable> prepareCommit()
                throws IOException, InterruptedException {
            return writer.prepareCommit();
        }

        @Override
        public void close() {
            try {
                writer.close();
            } catch (Exception failed) {
                LOG.warn("Kafka's writer failed as it closed (its task has failed already)", failed);
            }
        }
    }

    /**
     * A committer that throws when the committer it wraps could not commit a transaction that
     * the broker aborted.
     *
     * <p>Kafka's committer cannot tell the two apart: committing a transaction again, as a
     * restored checkpoint does, fails in the same way (its producer is fenced) when it had
     * committed. So the broker is asked which; if it cannot say (it forgot the transactional
     * id, after {@code transactional.id.expiration.ms}), the failure stays Kafka's to handle.
     */
    static final class StrictCommitter implements Committer<KafkaCommittable> {
        private final Committer<KafkaCommittable> committer;
        private final Aborted aborted;

        StrictCommitter(Committer<KafkaCommittable> committer, Aborted aborted) {
            this.committer = committer;
            this.aborted = aborted;
        }

        @Override
        public void commit(Collection<CommitRequest<KafkaCommittable>> requests)
                throws IOException, InterruptedException {
            List<Watched> watched = new ArrayList<>(requests.size());
            List<CommitRequest<KafkaCommittable>> handed = new ArrayList<>(requests.size());
            for (CommitRequest<KafkaCommittable> request : requests) {
                Watched each = new Watched(request);
                watched.add(each);
                handed.add(each);
            }
            committer.commit(handed);
            for (Watched request : watched) {
                String id = request.getCommittable().getTransactionalId();
                if (request.failure != null && wasAborted(id)) {
                    String message =
                            REFUSED
                                    + checkpointOf(id)
                                    + " ("
                                    + id
                                    + "): the broker aborted it, so its records are not"
                                    + " written; the job stops so that no later checkpoint"
                                    + " commits, and must restore the checkpoint before it to"
                                    + " write them again";
                    LOG.error(message, request.failure);
                    throw new RefusedCommitException(message, request.failure);
                }
            }
        }

        private boolean wasAborted(String transactionalId) throws InterruptedException {
            try {
                return aborted.aborted(transactionalId);
            } catch (InterruptedException interrupted) {
                throw interrupted;
            } catch (Exception unknown) {
                LOG.warn("The broker cannot say how transaction {} ended", transactionalId, unknown);
                return false;
            }
        }

        @Override
        public void close() throws Exception {
            committer.close();
        }
    }

    /** A commit request that remembers whether it failed. */
    private static final class Watched implements Committer.CommitRequest<KafkaCommittable> {
        private final Committer.CommitRequest<KafkaCommittable> request;
        private Throwable failure;

        Watched(Committer.CommitRequest<KafkaCommittable> request) {
            this.request = request;
        }

        @Override
        public KafkaCommittable getCommittable() {
            return request.getCommittable();
        }

        @Override
        public int getNumberOfRetries() {
            return request.getNumberOfRetries();
        }

        @Override
        public void signalFailedWithKnownReason(Throwable t) {
            failure = t;
            request.signalFailedWithKnownReason(t);
        }

        @Override
        public void signalFailedWithUnknownReason(Throwable t) {
            failure = t;
            request.signalFailedWithUnknownReason(t);
        }

        @Override
        public void retryLater() {
            request.retryLater();
        }

        @Override
        public void updateAndRetryLater(KafkaCommittable committable) {
            request.updateAndRetryLater(committable);
        }

        @Override
        public void signalAlreadyCommitted() {
            request.signalAlreadyCommitted();
        }

        @Override
        public String toString() {
            return request.toString(); // what Kafka's committer logs
        }
    }
}
