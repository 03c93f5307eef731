package io.adstream.flink.kinesis;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.time.Instant;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The versioned serializers of what the source checkpoints. */
class SerializersTest {

    private static final ShardSplit TRIM_HORIZON =
            ShardSplit.unread(
                    "shardId-000000000000", List.of(), false, ShardSplit.Position.trimHorizon());
    private static final ShardSplit AT_TIMESTAMP =
            ShardSplit.unread(
                    "shardId-000000000003",
                    List.of("shardId-000000000001", "shardId-000000000002"),
                    true,
                    ShardSplit.Position.atTimestamp(
                            Instant.parse("2026-11-01T03:34:08.123456789Z")));
    // A sequence number as AWS makes them: far beyond a long.
    private static final ShardSplit AFTER =
            ShardSplit.unread(
                            "shardId-000000000002",
                            List.of("shardId-000000000000"),
                            false,
                            ShardSplit.Position.trimHorizon())
                    .resumingAfter("49590338271490256608559692538361571095921575989136588898");

    @Test
    void splitsRoundTripWithEveryKindOfPosition() throws IOException {
        ShardSplitSerializer serializer = new ShardSplitSerializer();
        for (ShardSplit split : List.of(TRIM_HORIZON, AT_TIMESTAMP, AFTER, AFTER.asFinished())) {
            byte[] bytes = serializer.serialize(split);
            assertThat(serializer.deserialize(serializer.getVersion(), bytes)).isEqualTo(split);
        }
    }

    @Test
    void enumeratorStateRoundTrips() throws IOException {
        EnumeratorState.Serializer serializer = new EnumeratorState.Serializer();
        EnumeratorState state =
                new EnumeratorState(
                        List.of(TRIM_HORIZON, AT_TIMESTAMP),
                        Set.of("shardId-000000000002", "shardId-000000000004"),
                        Set.of("shardId-000000000001"));
        EnumeratorState restored =
                serializer.deserialize(serializer.getVersion(), serializer.serialize(state));
        assertThat(restored).isEqualTo(state);
        assertThat(serializer.deserialize(1, serializer.serialize(EnumeratorState.empty())))
                .isEqualTo(EnumeratorState.empty());
    }

    @Test
    void unknownVersionsAreRefused() throws IOException {
        ShardSplitSerializer splits = new ShardSplitSerializer();
        EnumeratorState.Serializer states = new EnumeratorState.Serializer();
        assertThatThrownBy(() -> splits.deserialize(2, splits.serialize(TRIM_HORIZON)))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("version 2");
        assertThatThrownBy(() -> states.deserialize(0, states.serialize(EnumeratorState.empty())))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("version 0");
    }
}
