package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.adstream.flink.RefusedCommitStops.RefusedCommitException;
import io.adstream.flink.RefusedCommitStops.StrictCommitter;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaCommittable;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.KafkaWriterState;
import org.apache.flink.connector.kafka.sink.TwoPhaseCommittingStatefulSink.PrecommittingStatefulSinkWriter;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.streaming.api.connector.sink2.SupportsPostCommitTopology;
import org.apache.flink.table.api.EnvironmentSettings;
import org.apache.flink.table.api.ExplainDetail;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.connector.sink.SinkV2Provider;
import org.apache.flink.table.data.RowData;
import org.junit.jupiter.api.Test;

/** A transaction the broker refuses fails the job, naming its checkpoint; others pass. */
class RefusedCommitStopsTest {

    private static final String PREFIX = "adstream-join-1a2b-joined_ad_data";

    /** What Kafka's committer does: commit each request, or signal it failed. */
    private static final class Broker implements Committer<KafkaCommittable> {
        final List<String> committed = new ArrayList<>();
        final List<String> refused;

        Broker(List<String> refused) {
            this.refused = refused;
        }

        @Override
        public void commit(java.util.Collection<CommitRequest<KafkaCommittable>> requests) {
            for (CommitRequest<KafkaCommittable> request : requests) {
                String id = request.getCommittable().getTransactionalId();
                if (refused.contains(id)) {
                    request.signalFailedWithKnownReason(new IllegalStateException("fenced"));
                } else if (id.endsWith("-retry")) {
                    request.retryLater();
                } else {
                    committed.add(id);
                }
            }
        }

        @Override
        public void close() {}
    }

    /** A request as Flink's committer operator hands it over; remembers what it was told. */
    private static final class Request implements Committer.CommitRequest<KafkaCommittable> {
        final KafkaCommittable committable;
        String told = "nothing";

        Request(String transactionalId) {
            committable = new KafkaCommittable(7, (short) 0, transactionalId, null);
        }

        @Override
        public KafkaCommittable getCommittable() {
            return committable;
        }

        @Override
        public int getNumberOfRetries() {
            return 0;
        }

        @Override
        public void signalFailedWithKnownReason(Throwable t) {
            told = "failed: " + t.getMessage();
        }

        @Override
        public void signalFailedWithUnknownReason(Throwable t) {
            told = "failed, unknown: " + t.getMessage();
        }

        @Override
        public void retryLater() {
            told = "retry";
        }

        @Override
        public void updateAndRetryLater(KafkaCommittable committable) {
            told = "update and retry";
        }

        @Override
        public void signalAlreadyCommitted() {
            told = "already committed";
        }
    }

    private static List<Committer.CommitRequest<KafkaCommittable>> requests(Request... each) {
        return new ArrayList<>(List.of(each));
    }

    /** What the broker says of how transactions ended: these were aborted. */
    private static RefusedCommitStops.Aborted abortedAre(String... ids) {
        return id -> List.of(ids).contains(id);
    }

    @Test
    void aTransactionTheBrokerAbortedFailsTheJobNamingItsCheckpoint() {
        Broker broker = new Broker(List.of(PREFIX + "-0-31"));
        Request accepted = new Request(PREFIX + "-1-31");
        Request refused = new Request(PREFIX + "-0-31");
        StrictCommitter committer = new StrictCommitter(broker, abortedAre(PREFIX + "-0-31"));

        assertThatThrownBy(() -> committer.commit(requests(accepted, refused)))
                .isInstanceOf(RefusedCommitException.class)
                .hasMessageStartingWith(RefusedCommitStops.REFUSED + "31 (" + PREFIX + "-0-31)")
                .hasCauseInstanceOf(IllegalStateException.class);
        assertThat(broker.committed).containsExactly(PREFIX + "-1-31");
        assertThat(refused.told).isEqualTo("failed: fenced"); // Kafka's committer's word stands
    }

    @Test
    void committedAndRetriedTransactionsPass() throws Exception {
        Broker broker = new Broker(List.of());
        Request first = new Request(PREFIX + "-0-32");
        Request later = new Request(PREFIX + "-0-retry");

        new StrictCommitter(broker, abortedAre()).commit(requests(first, later));

        assertThat(broker.committed).containsExactly(PREFIX + "-0-32");
        assertThat(later.told).isEqualTo("retry");
    }

    @Test
    void aRestoredTransactionThatHadCommittedPasses() throws Exception {
        // Committed again after a restore, a committed transaction's producer is fenced too.
        Broker broker = new Broker(List.of(PREFIX + "-0-30"));
        Request restored = new Request(PREFIX + "-0-30");

        new StrictCommitter(broker, abortedAre()).commit(requests(restored));

        assertThat(restored.told).isEqualTo("failed: fenced"); // as Kafka's committer has it
    }

    @Test
    void whenTheBrokerCannotSayTheFailureStaysKafkas() throws Exception {
        Broker broker = new Broker(List.of(PREFIX + "-0-30"));
        RefusedCommitStops.Aborted forgotten =
                id -> {
                    throw new IllegalStateException("TransactionalIdNotFoundException");
                };

        new StrictCommitter(broker, forgotten).commit(requests(new Request(PREFIX + "-0-30")));
    }

    /** A writer whose transaction the broker aborted: it fails again as it closes. */
    private static final class AbortedWriter
            implements PrecommittingStatefulSinkWriter<RowData, KafkaWriterState, KafkaCommittable> {
        final List<String> calls = new ArrayList<>();

        @Override
        public void write(RowData row, Context context) {
            calls.add("write");
        }

        @Override
        public void flush(boolean endOfInput) {
            calls.add("flush " + endOfInput);
        }

        @Override
        public List<KafkaWriterState> snapshotState(long checkpointId) {
            calls.add("snapshot " + checkpointId);
            return List.of();
        }

        @Override
        public Collection<KafkaCommittable> prepareCommit() {
            calls.add("prepare");
            return List.of();
        }

        @Override
        public void close() throws IOException {
            calls.add("close");
            throw new IOException("One or more Kafka Producer send requests have encountered");
        }
    }

    @Test
    void theWriterDelegatesAndDoesNotFailAgainAsItCloses() throws Exception {
        AbortedWriter kafka = new AbortedWriter();
        RefusedCommitStops.QuietClose writer = new RefusedCommitStops.QuietClose(kafka);

        writer.write(null, null);
        writer.flush(false);
        writer.prepareCommit();
        writer.snapshotState(31);
        writer.close(); // a task that failed on the writer's send does not fail its clean-up

        assertThat(kafka.calls)
                .containsExactly("write", "flush false", "prepare", "snapshot 31", "close");
    }

    @Test
    void theCheckpointIsTheLastPartOfTheTransactionalId() {
        assertThat(RefusedCommitStops.checkpointOf("adstream-join-1a2b-rejected_events-0-65"))
                .isEqualTo(65);
    }

    private static final String KAFKA =
            "'connector' = 'adstream-sink', 'adstream.connector' = 'kafka',"
                    + " 'topic' = 'joined_ad_data', 'properties.bootstrap.servers' ="
                    + " '127.0.0.1:9', 'value.format' = 'json'";

    @Test
    void thePlannedSinkWritesAndCommitsThroughKafkasSink() {
        TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tables.executeSql(
                "CREATE TABLE joined (impression_id STRING) WITH ("
                        + KAFKA
                        + ", 'sink.delivery-guarantee' = 'exactly-once',"
                        + " 'sink.transactional-id-prefix' = 'adstream-join-x')");
        String plan =
                tables.explainSql(
                        "INSERT INTO joined VALUES ('imp-1')", ExplainDetail.JSON_EXECUTION_PLAN);
        assertThat(plan).contains("joined[2]: Writer").contains("joined[2]: Committer");
    }

    @Test
    void kafkasSinkIsWrappedAndKeepsItsSerializersAndParallelism() throws Exception {
        KafkaSink<RowData> kafka =
                KafkaSink.<RowData>builder()
                        .setBootstrapServers("127.0.0.1:9")
                        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                        .setTransactionalIdPrefix("adstream-join-x")
                        .setRecordSerializer(
                                (row, context, timestamp) ->
                                        new ProducerRecord<>("joined_ad_data", new byte[0]))
                        .build();

        SinkV2Provider provider =
                (SinkV2Provider) RefusedCommitStops.provider(SinkV2Provider.of(kafka, 2), new Properties());

        assertThat(provider.getParallelism()).contains(2);
        RefusedCommitStops.StrictSink strict = (RefusedCommitStops.StrictSink) provider.createSink();
        assertThat(strict.getCommittableSerializer().getClass())
                .isEqualTo(kafka.getCommittableSerializer().getClass());
        assertThat(strict.getWriterStateSerializer().getClass())
                .isEqualTo(kafka.getWriterStateSerializer().getClass());
        assertThat(strict).isInstanceOf(SupportsPostCommitTopology.class); // co-location kept
    }

    @Test
    void aSinkWithoutTransactionsIsRefused() {
        TableEnvironment tables = TableEnvironment.create(EnvironmentSettings.inStreamingMode());
        tables.executeSql(
                "CREATE TABLE loose (impression_id STRING) WITH ("
                        + KAFKA
                        + ", 'sink.delivery-guarantee' = 'at-least-once')");
        assertThatThrownBy(() -> tables.explainSql("INSERT INTO loose VALUES ('imp-1')"))
                .rootCause()
                .isInstanceOf(ValidationException.class)
                .hasMessageContaining("wraps only exactly-once sinks");
    }
}
