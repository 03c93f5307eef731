package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;

import static org.apache.flink.table.api.Expressions.$;
import static org.apache.flink.table.api.Expressions.nullOf;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.Schema;
import org.apache.flink.table.api.TableResult;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;
import org.apache.flink.types.Row;
import org.apache.flink.util.CloseableIterator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link AdJoin} in a local Flink, one impression id per rule of SPEC section 3 (W = 10 s here).
 *
 * <p>Each stream is read in the order of {@link #EVENTS}, its arrival order (at most D = 5 s out of
 * order, as late events never reach the join); times are seconds after the epoch. Every event's
 * outcome is checked, with its time and offset.
 */
class AdJoinTest {

    private static final long W = 10_000;

    /** (stream, id, time in s, offset): the arrival order of each stream. */
    private static final Object[][] EVENTS = {
        // The earliest impression is unique, even when it arrives after a later copy.
        {"i", "copies", 20.0, 1}, {"i", "copies", 17.0, 2}, {"i", "copies", 17.0, 3},
        {"i", "copies", 30.0, 4},
        // Clicks on the window's ends: both inclusive.
        {"i", "ends", 100.0, 10}, {"c", "ends", 99.999, 11}, {"c", "ends", 100.0, 12},
        {"c", "ends", 110.0, 13}, {"c", "ends", 110.001, 14},
        // The first matching click in event time is attributed, whatever the arrival order.
        {"i", "order", 200.0, 20}, {"c", "order", 205.0, 21}, {"c", "order", 203.0, 22},
        {"c", "order", 203.0, 23}, {"c", "order", 230.0, 24},
        // A click that arrives before its impression still joins it.
        {"c", "early", 301.0, 30}, {"i", "early", 300.0, 31},
        // No impression: unmatched.
        {"c", "lonely", 400.0, 40},
        // A click matches the earliest impression only: 12 s after it is too late, although a
        // copy is 2 s before it.
        {"i", "earliest", 500.0, 50}, {"i", "earliest", 510.0, 51}, {"c", "earliest", 512.0, 52},
        // A click at the impression's time joins it, whichever arrives first.
        {"c", "tie", 600.0, 60}, {"i", "tie", 600.0, 61},
    };

    private static List<String> outcomes;

    @BeforeAll
    static void runJoin() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        StreamTableEnvironment tables = StreamTableEnvironment.create(env);
        tables.getConfig().set("table.local-time-zone", "UTC");
        tables.getConfig().set(AdJoin.ATTRIBUTION_WINDOW, Duration.ofMillis(W));
        tables.getConfig().set(AdJoin.DEDUP_HORIZON, Duration.ofHours(1));
        tables.getConfig().set(AdJoin.JOINED_FIELDS, "1,2");
        tables.createTemporarySystemFunction("adstream_join", AdJoin.class);
        for (String stream : List.of("impressions", "clicks")) {
            List<Row> rows = new ArrayList<>();
            for (Object[] event : EVENTS) {
                if (event[0].equals(stream.substring(0, 1))) {
                    String id = (String) event[1];
                    rows.add(
                            Row.of(
                                    id,
                                    Math.round((double) event[2] * 1000),
                                    id.getBytes(StandardCharsets.UTF_8),
                                    new String[] {"s" + id, "sad-" + id, "n1.5"},
                                    0,
                                    (long) (int) event[3]));
                }
            }
            DataStream<Row> events =
                    env.fromData(
                                    Types.ROW_NAMED(
                                            new String[] {
                                                "impression_id", "ms", "payload", "fields",
                                                "source_partition", "source_offset"
                                            },
                                            Types.STRING,
                                            Types.LONG,
                                            Types.PRIMITIVE_ARRAY(Types.BYTE),
                                            Types.OBJECT_ARRAY(Types.STRING),
                                            Types.INT,
                                            Types.LONG),
                                    rows.toArray(new Row[0]))
                            .assignTimestampsAndWatermarks(
                                    WatermarkStrategy.<Row>forBoundedOutOfOrderness(
                                                    Duration.ofSeconds(5))
                                            .withTimestampAssigner(
                                                    (row, previous) -> row.getFieldAs("ms")));
            tables.createTemporaryView(
                    stream,
                    tables.fromDataStream(
                                    events,
                                    Schema.newBuilder()
                                            .columnByMetadata(
                                                    "rt", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
                                            .watermark("rt", "SOURCE_WATERMARK()")
                                            .build())
                            .select(
                                    $("impression_id"),
                                    $("rt"),
                                    $("payload"),
                                    $("fields"),
                                    $("source_partition"),
                                    $("source_offset"),
                                    nullOf(DataTypes.STRING()).as("source_sequence_number")));
        }
        TableResult result =
                tables.executeSql(
                        "SELECT impression_id, outcome, event_time, source_offset,"
                                + " impression_fields, impression_time, payload IS NOT NULL"
                                + " FROM adstream_join("
                                + " impressions => TABLE impressions PARTITION BY impression_id,"
                                + " clicks => TABLE clicks PARTITION BY impression_id,"
                                + " on_time => DESCRIPTOR(rt))");
        outcomes = new ArrayList<>();
        try (CloseableIterator<Row> rows = result.collect()) {
            rows.forEachRemaining(row -> outcomes.add(describe(row)));
        }
    }

    private static String describe(Row row) {
        String text = row.getField(0) + " " + row.getField(3) + " " + row.getField(1);
        if (row.getField(4) != null) {
            text += " to " + Arrays.asList((String[]) row.getField(4)) + " at " + row.getField(5);
        }
        return text + ((Boolean) row.getField(6) ? " with payload" : "");
    }

    private static List<String> of(String id) {
        return outcomes.stream()
                .filter(outcome -> outcome.startsWith(id + " "))
                .sorted()
                .collect(Collectors.toList());
    }

    @Test
    void everyEventHasOneOutcome() {
        assertThat(outcomes).hasSize(EVENTS.length);
    }

    @Test
    void theEarliestImpressionIsUniqueTiesByArrival() {
        assertThat(of("copies"))
                .containsExactly(
                        "copies 1 duplicate_impression with payload",
                        "copies 2 unique_impression",
                        "copies 3 duplicate_impression with payload",
                        "copies 4 duplicate_impression with payload");
    }

    @Test
    void clicksMatchFromTheImpressionToWAfterItBothInclusive() {
        assertThat(of("ends"))
                .containsExactly(
                        "ends 10 unique_impression",
                        "ends 11 unmatched_click",
                        "ends 12 attributed_click to [null, sad-ends, n1.5] at"
                                + " 1970-01-01T00:01:40Z",
                        "ends 13 duplicate_click with payload",
                        "ends 14 unmatched_click");
    }

    @Test
    void theEarliestMatchingClickIsAttributedTiesByArrival() {
        assertThat(of("order"))
                .containsExactly(
                        "order 20 unique_impression",
                        "order 21 duplicate_click with payload",
                        "order 22 attributed_click to [null, sad-order, n1.5] at"
                                + " 1970-01-01T00:03:20Z",
                        "order 23 duplicate_click with payload",
                        "order 24 unmatched_click");
    }

    @Test
    void aClickBeforeItsImpressionInArrivalJoinsIt() {
        assertThat(of("early"))
                .containsExactly(
                        "early 30 attributed_click to [null, sad-early, n1.5] at"
                                + " 1970-01-01T00:05:00Z",
                        "early 31 unique_impression");
    }

    @Test
    void aClickWithoutImpressionIsUnmatched() {
        assertThat(of("lonely")).containsExactly("lonely 40 unmatched_click");
    }

    @Test
    void onlyTheEarliestImpressionCounts() {
        assertThat(of("earliest"))
                .containsExactly(
                        "earliest 50 unique_impression",
                        "earliest 51 duplicate_impression with payload",
                        "earliest 52 unmatched_click");
    }

    @Test
    void aClickAtTheImpressionsTimeJoinsIt() {
        assertThat(of("tie"))
                .containsExactly(
                        "tie 60 attributed_click to [null, sad-tie, n1.5] at 1970-01-01T00:10:00Z",
                        "tie 61 unique_impression");
    }
}
