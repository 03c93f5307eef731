package io.adstream.flink;

import static org.apache.flink.table.annotation.ArgumentTrait.REQUIRE_ON_TIME;
import static org.apache.flink.table.annotation.ArgumentTrait.SET_SEMANTIC_TABLE;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.memory.MemorySegmentFactory;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.api.dataview.ListView;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.data.binary.BinaryRowData;
import org.apache.flink.table.data.binary.BinarySegmentUtils;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.table.functions.SpecializedFunction;
import org.apache.flink.table.functions.TableSemantics;
import org.apache.flink.table.functions.UserDefinedFunction;
import org.apache.flink.table.runtime.typeutils.RowDataSerializer;
import org.apache.flink.table.types.logical.RowType;

/**
 * The join's core (SPEC section 3): one keyed operator that decides, per impression_id, which
 * impression is unique, which click is attributed, and what every other on-time event is.
 *
 * <pre>
 * SELECT * FROM adstream_join(
 *   impressions => TABLE impressions_on_time PARTITION BY impression_id,
 *   clicks => TABLE clicks_on_time PARTITION BY impression_id,
 *   on_time => DESCRIPTOR(rt), uid => 'adstream-join')
 * </pre>
 *
 * <p>Both tables have the columns {@code rt} (the event time), {@code payload}, {@code fields}
 * (the tagged values of {@link JsonFields}), {@code source_partition}, {@code source_offset} and
 * {@code source_sequence_number}. Each output row is one event's outcome ({@link #OUTPUT}). W,
 * the dedup horizon and the impression fields a joined row needs are options of the job ({@link
 * #ATTRIBUTION_WINDOW}, {@link #DEDUP_HORIZON}, {@link #JOINED_FIELDS}).
 *
 * <p>The order is event time, ties broken by arrival (within one id, its Kafka offset order): the
 * earliest impression is unique, the others are duplicates; a click matches when the unique
 * impression is at most W before it, both ends inclusive; the earliest matching click is
 * attributed, later matching ones are duplicates, other clicks are unmatched. An event whose
 * outcome could still change when an earlier event arrives waits in state for the watermark to
 * pass its time (an event-time timer at its time); an outcome that no earlier event can change
 * any more is emitted on arrival: a copy of an impression already seen, a click on an impression
 * already attributed or more than W before it.
 *
 * <p>State per id, on the heap of the hashmap backend: the events waiting for the watermark (the
 * input row's bytes, a few seconds each, in one list with their number in the entry, so that a
 * timer of an id with none reads only the entry); the earliest impression time seen; from the
 * watermark passing the unique impression until W after it, the impression's fields the joined
 * row needs ({@link #JOINED_FIELDS}, a compact byte array) and whether a click was attributed;
 * then only a marker (an empty array) until the dedup horizon, when an event-time timer clears
 * the id. One event-time timer per id at a time for these steps, plus one per distinct waiting
 * event time. None of this has a processing-time TTL: each access of a state with one also
 * cleans a few entries of it, which cost a quarter of the operator's time; the timers clear it
 * all.
 *
 * <p>The final watermark of a drain or of the end of the input emits every waiting result and
 * fires every timer, and no timer can be set after it. What an id knows then moves to {@code
 * drained} (its time, whether clicked, its kept fields: a few bytes), so a run restored from
 * that savepoint still knows the id: the id's next event takes it back (with a timer for its
 * next step), and the TTL of {@code table.exec.state.ttl} (processing time) ends the ids that
 * see no event again. Only an event of an id with nothing in {@code impression} reads {@code
 * drained}, and only until {@link #DRAINED_UNTIL} (after that the TTL has ended them all).
 */
@FunctionHint(output = @DataTypeHint(value = AdJoin.OUTPUT, bridgedTo = RowData.class))
public final class AdJoin extends ProcessTableFunction<RowData> implements SpecializedFunction {

    /**
     * The rows of both tables, taken as they are (RowData: Flink 2.2.1 passes an untyped table
     * argument as Row whatever the parameter's class, converting every field of every row).
     */
    public static final String INPUT =
            "ROW<impression_id STRING, rt TIMESTAMP_LTZ(3), payload BYTES, fields ARRAY<STRING>,"
                    + " source_partition INT, source_offset BIGINT, source_sequence_number STRING>";

    /**
     * Events waiting for the watermark: each a tag ({@link #IMPRESSION} or {@link #CLICK}) and
     * the bytes of its input row.
     */
    private static final String WAITING = "ARRAY<BYTES>";

    /** One row per input event: its outcome and what the sinks need of it. */
    public static final String OUTPUT =
            "ROW<outcome STRING, event_time TIMESTAMP_LTZ(3), fields ARRAY<STRING>,"
                    + " impression_fields ARRAY<STRING>, impression_time TIMESTAMP_LTZ(3),"
                    + " payload BYTES, source_partition INT, source_offset BIGINT,"
                    + " source_sequence_number STRING>";

    /** The values of {@code outcome}. */
    public static final String UNIQUE_IMPRESSION = "unique_impression";

    public static final String DUPLICATE_IMPRESSION = "duplicate_impression";
    public static final String ATTRIBUTED_CLICK = "attributed_click";
    public static final String DUPLICATE_CLICK = "duplicate_click";
    public static final String UNMATCHED_CLICK = "unmatched_click";

    private static final StringData UNIQUE = StringData.fromString(UNIQUE_IMPRESSION);
    private static final StringData DUPLICATE = StringData.fromString(DUPLICATE_IMPRESSION);
    private static final StringData ATTRIBUTED = StringData.fromString(ATTRIBUTED_CLICK);
    private static final StringData CLICKED_AGAIN = StringData.fromString(DUPLICATE_CLICK);
    private static final StringData UNMATCHED = StringData.fromString(UNMATCHED_CLICK);

    /** W: a click matches an impression at most this long before it. */
    public static final ConfigOption<Duration> ATTRIBUTION_WINDOW =
            ConfigOptions.key("adstream.join.attribution-window").durationType().noDefaultValue();

    /** How long (in event time, after the unique impression) an id is remembered. */
    public static final ConfigOption<Duration> DEDUP_HORIZON =
            ConfigOptions.key("adstream.join.dedup-horizon").durationType().noDefaultValue();

    /** Positions (from 0) in an impression's {@code fields} of those a joined row needs. */
    public static final ConfigOption<String> JOINED_FIELDS =
            ConfigOptions.key("adstream.join.joined-fields").stringType().noDefaultValue();

    /**
     * Until when (epoch ms, processing time) the state may hold ids a drained run left: the
     * launcher's bound (the newest savepoint plus the TTL); by default always.
     */
    public static final ConfigOption<Long> DRAINED_UNTIL =
            ConfigOptions.key("adstream.join.drained-until").longType().defaultValue(Long.MAX_VALUE);

    private static final byte[] MARKER = new byte[0];

    /** The first byte of a waiting event: which table it came from. */
    private static final byte IMPRESSION = 0;

    private static final byte CLICK = 1;

    /** What the id remembers of its impressions (the per-id state entry). */
    public static class Impression {
        /** The earliest impression time seen, waiting or decided; null before any. */
        public Long time;

        /**
         * The unique impression's joined fields ({@link #keep}) from its decision until W after
         * it; then empty (a marker: the id had its impression); null until it is decided.
         */
        public byte[] fields;

        /** Whether a click has been attributed to it (kept until W after it). */
        public Boolean clicked;

        /** How many events of the id wait in {@code waiting}; null when none. */
        public Integer waiting;
    }

    private final long attributionWindowMs;
    private final long dedupHorizonMs;
    private final int[] joinedFields;
    private final long drainedUntilMs;

    private transient Layout impressionsLayout;
    private transient Layout clicksLayout;

    public AdJoin() {
        this(-1, -1, new int[0], Long.MAX_VALUE);
    }

    private AdJoin(
            long attributionWindowMs, long dedupHorizonMs, int[] joinedFields, long drainedUntilMs) {
        this.attributionWindowMs = attributionWindowMs;
        this.dedupHorizonMs = Math.max(dedupHorizonMs, attributionWindowMs);
        this.joinedFields = joinedFields;
        this.drainedUntilMs = drainedUntilMs;
    }

    /**
     * W, the horizon and the joined fields become constants of the function, read from the
     * job's configuration when it is planned, so that its timers have them too.
     *
     * <p>Not scalar arguments of the call: Flink 2.2.1 refuses any argument that is not a set
     * semantic table once a function has two tables (SystemTypeInference.checkMultipleTableArgs
     * checks every argument, not only the tables: "All table arguments must use set semantics
     * if multiple table arguments are declared").
     */
    @Override
    public UserDefinedFunction specialize(SpecializedContext context) {
        ReadableConfig config = context.getConfiguration();
        return new AdJoin(
                required(config, ATTRIBUTION_WINDOW).toMillis(),
                required(config, DEDUP_HORIZON).toMillis(),
                parsePositions(required(config, JOINED_FIELDS)),
                config.get(DRAINED_UNTIL));
    }

    private static <T> T required(ReadableConfig config, ConfigOption<T> option) {
        return config.getOptional(option)
                .orElseThrow(
                        () ->
                                new ValidationException(
                                        "adstream_join needs the option " + option.key()));
    }

    static int[] parsePositions(String positions) {
        if (positions.isBlank()) {
            return new int[0];
        }
        return Arrays.stream(positions.split(","))
                .mapToInt(position -> Integer.parseInt(position.trim()))
                .toArray();
    }

    @Override
    public void open(FunctionContext context) {
        if (attributionWindowMs < 0) {
            throw new IllegalStateException("adstream_join was not specialized for its call");
        }
    }

    public void eval(
            Context ctx,
            @StateHint(name = "impression", ttl = "0") Impression impression,
            @StateHint(name = "waiting", type = @DataTypeHint(WAITING), ttl = "0")
                    ListView<byte[]> waiting,
            @StateHint(name = "drained", type = @DataTypeHint(WAITING)) ListView<byte[]> drained,
            @ArgumentHint(
                            value = {SET_SEMANTIC_TABLE, REQUIRE_ON_TIME},
                            name = "impressions",
                            type = @DataTypeHint(value = INPUT, bridgedTo = RowData.class))
                    RowData impressions,
            @ArgumentHint(
                            value = {SET_SEMANTIC_TABLE, REQUIRE_ON_TIME},
                            name = "clicks",
                            type = @DataTypeHint(value = INPUT, bridgedTo = RowData.class))
                    RowData clicks)
            throws Exception {
        initLayouts(ctx);
        TimeContext<Long> time = ctx.timeContext(Long.class);
        long eventTime = time.time();
        if (impression.time == null && System.currentTimeMillis() < drainedUntilMs) {
            // Only then: reading a state with a TTL also cleans a few of its entries, which
            // costs about a tenth of the operator's time even when it is empty.
            undrain(impression, drained, time);
        }
        if (impressions != null) {
            if (impression.time != null && impression.time <= eventTime) {
                // An impression at or before it was seen first: nothing can make this one unique.
                collect(outcome(DUPLICATE, impressionsLayout, impressions, eventTime, null, null));
                return;
            }
            impression.time = eventTime;
            waiting.add(impressionsLayout.bytes(IMPRESSION, impressions));
        } else {
            if (impression.fields != null) {
                // The unique impression is decided: the watermark passed it, so no earlier one
                // can come, and a click on it that is already decided stays so.
                if (impression.fields.length == 0
                        || eventTime > impression.time + attributionWindowMs) {
                    collect(outcome(UNMATCHED, clicksLayout, clicks, eventTime, null, null));
                    return;
                }
                if (Boolean.TRUE.equals(impression.clicked)) {
                    collect(outcome(CLICKED_AGAIN, clicksLayout, clicks, eventTime, null, null));
                    return;
                }
            }
            waiting.add(clicksLayout.bytes(CLICK, clicks));
        }
        impression.waiting = impression.waiting == null ? 1 : impression.waiting + 1;
        time.registerOnTime(eventTime);
    }

    public void onTimer(
            OnTimerContext ctx,
            Impression impression,
            ListView<byte[]> waiting,
            ListView<byte[]> drained)
            throws Exception {
        initLayouts(ctx);
        TimeContext<Long> timeContext = ctx.timeContext(Long.class);
        long now = timeContext.time();
        List<Waiting> due = new ArrayList<>();
        if (impression.waiting != null) { // a step of the id's own has none waiting, mostly
            int left = takeDue(waiting, now, due);
            impression.waiting = left == 0 ? null : left;
        }
        boolean waitingLeft = impression.waiting != null;
        // Event time, then impressions before clicks (a click matches an impression of the same
        // time), then arrival (the sort is stable, the list in arrival order).
        due.sort(Comparator.comparingLong((Waiting w) -> w.time).thenComparing(w -> !w.impression));
        for (Waiting event : due) {
            if (event.impression) {
                decideImpression(impression, event);
            } else {
                decideClick(impression, event);
            }
        }
        long watermark = timeContext.currentWatermark();
        if (watermark == Long.MAX_VALUE) {
            // The end of the input or a drain: once nothing of the id waits, what it knows moves
            // to `drained`, for a run restored from this point. No timer can be set any more, so
            // there the processing-time TTL ends it, unless an event of the id comes first.
            if (!waitingLeft && impression.fields != null) {
                drained.add(drainedBytes(impression));
                impression.time = null;
                impression.fields = null;
                impression.clicked = null;
            }
            return;
        }
        // Steps of the id's state due by now; once nothing waits, due by the watermark (any event
        // still to come is after it).
        long settledUntil = waitingLeft ? now : watermark;
        if (impression.fields != null && impression.fields.length > 0
                && impression.time + attributionWindowMs <= settledUntil) {
            impression.fields = MARKER;
            impression.clicked = null;
        }
        if (impression.fields != null && impression.fields.length == 0
                && impression.time + dedupHorizonMs <= settledUntil) {
            impression.time = null;
            impression.fields = null;
            impression.clicked = null;
        }
        if (impression.fields != null) {
            long step = impression.fields.length > 0 ? attributionWindowMs : dedupHorizonMs;
            timeContext.registerOnTime(impression.time + step);
        }
    }

    /** What an id knows, as `drained` keeps it: its time, whether clicked, its kept fields. */
    private static byte[] drainedBytes(Impression impression) {
        byte[] bytes = new byte[9 + impression.fields.length];
        long time = impression.time;
        for (int i = 0; i < 8; i++) {
            bytes[i] = (byte) (time >>> (56 - 8 * i));
        }
        bytes[8] = (byte) (Boolean.TRUE.equals(impression.clicked) ? 1 : 0);
        System.arraycopy(impression.fields, 0, bytes, 9, impression.fields.length);
        return bytes;
    }

    /**
     * Takes back what a drained run left of the id, if anything, and sets a timer for its next
     * step (at the watermark's next move, when that step is already due).
     */
    private void undrain(Impression impression, ListView<byte[]> drained, TimeContext<Long> time)
            throws Exception {
        Iterator<byte[]> kept = drained.get().iterator();
        if (!kept.hasNext()) {
            return;
        }
        byte[] bytes = kept.next();
        long restored = 0;
        for (int i = 0; i < 8; i++) {
            restored = (restored << 8) | (bytes[i] & 0xFF);
        }
        impression.time = restored;
        impression.clicked = bytes[8] == 1 ? Boolean.TRUE : null;
        impression.fields = Arrays.copyOfRange(bytes, 9, bytes.length);
        drained.clear();
        long step = impression.fields.length > 0 ? attributionWindowMs : dedupHorizonMs;
        Long watermark = time.currentWatermark(); // null before the run's first watermark
        time.registerOnTime(
                watermark == null ? restored + step : Math.max(restored + step, watermark + 1));
    }

    private void decideImpression(Impression impression, Waiting event) {
        if (impression.fields == null) {
            impression.time = event.time;
            impression.fields = keep(event.row.getArray(impressionsLayout.fields));
            impression.clicked = null;
            collect(outcome(UNIQUE, impressionsLayout, event.row, event.time, null, null));
        } else {
            collect(outcome(DUPLICATE, impressionsLayout, event.row, event.time, null, null));
        }
    }

    private void decideClick(Impression impression, Waiting event) {
        if (impression.fields == null
                || impression.fields.length == 0
                || event.time > impression.time + attributionWindowMs) {
            collect(outcome(UNMATCHED, clicksLayout, event.row, event.time, null, null));
        } else if (Boolean.TRUE.equals(impression.clicked)) {
            collect(outcome(CLICKED_AGAIN, clicksLayout, event.row, event.time, null, null));
        } else {
            impression.clicked = true;
            collect(
                    outcome(
                            ATTRIBUTED,
                            clicksLayout,
                            event.row,
                            event.time,
                            restore(impression.fields),
                            TimestampData.fromEpochMillis(impression.time)));
        }
    }

    /** Moves the waiting events at or before {@code now} to {@code due}; returns how many left. */
    private int takeDue(ListView<byte[]> waiting, long now, List<Waiting> due) throws Exception {
        List<byte[]> left = new ArrayList<>();
        for (byte[] bytes : waiting.get()) {
            boolean impression = bytes[0] == IMPRESSION;
            Layout layout = impression ? impressionsLayout : clicksLayout;
            BinaryRowData row = layout.row(bytes);
            long time = row.getTimestamp(layout.time, 3).getMillisecond();
            if (time <= now) {
                due.add(new Waiting(time, impression, row));
            } else {
                left.add(bytes);
            }
        }
        if (!due.isEmpty()) {
            waiting.clear();
            if (!left.isEmpty()) {
                waiting.addAll(left);
            }
        }
        return left.size();
    }

    private RowData outcome(
            StringData outcome,
            Layout layout,
            RowData event,
            long eventTime,
            ArrayData impressionFields,
            TimestampData impressionTime) {
        GenericRowData row = new GenericRowData(9);
        row.setField(0, outcome);
        row.setField(1, TimestampData.fromEpochMillis(eventTime));
        row.setField(2, event.getArray(layout.fields));
        row.setField(3, impressionFields);
        row.setField(4, impressionTime);
        // The raw record only where a sink keeps it: the rejected duplicates.
        if (outcome == DUPLICATE || outcome == CLICKED_AGAIN) {
            row.setField(5, event.getBinary(layout.payload));
        }
        row.setField(6, event.isNullAt(layout.partition) ? null : event.getInt(layout.partition));
        row.setField(7, event.isNullAt(layout.offset) ? null : event.getLong(layout.offset));
        row.setField(8, event.isNullAt(layout.sequence) ? null : event.getString(layout.sequence));
        return row;
    }

    /** The joined fields of an impression's {@code fields}, as length-prefixed UTF-8. */
    byte[] keep(ArrayData fields) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128);
        for (int position : joinedFields) {
            if (position >= fields.size() || fields.isNullAt(position)) {
                writeLength(out, 0);
            } else {
                byte[] value = fields.getString(position).toBytes();
                writeLength(out, value.length + 1);
                out.write(value, 0, value.length);
            }
        }
        return out.toByteArray();
    }

    /** The array {@link #keep} kept, at the positions of {@code fields}, NULL elsewhere. */
    ArrayData restore(byte[] kept) {
        int size = Arrays.stream(joinedFields).max().orElse(-1) + 1;
        StringData[] values = new StringData[size];
        int[] at = {0};
        for (int position : joinedFields) {
            int length = readLength(kept, at) - 1;
            if (length >= 0) {
                values[position] =
                        StringData.fromString(
                                new String(kept, at[0], length, StandardCharsets.UTF_8));
                at[0] += length;
            }
        }
        return new GenericArrayData(values);
    }

    private static void writeLength(ByteArrayOutputStream out, int length) {
        while (length >= 0x80) {
            out.write((length & 0x7F) | 0x80);
            length >>>= 7;
        }
        out.write(length);
    }

    private static int readLength(byte[] bytes, int[] at) {
        int length = 0;
        for (int shift = 0; ; shift += 7) {
            byte b = bytes[at[0]++];
            length |= (b & 0x7F) << shift;
            if (b >= 0) {
                return length;
            }
        }
    }

    private void initLayouts(Context ctx) {
        if (impressionsLayout == null) {
            impressionsLayout = new Layout(ctx.tableSemanticsFor("impressions"));
            clicksLayout = new Layout(ctx.tableSemanticsFor("clicks"));
        }
    }

    /** An event waiting for the watermark, read back from state. */
    private static final class Waiting {
        final long time;
        final boolean impression;
        final BinaryRowData row;

        Waiting(long time, boolean impression, BinaryRowData row) {
            this.time = time;
            this.impression = impression;
            this.row = row;
        }
    }

    /** Where the columns are in one table argument's rows, and their bytes for state. */
    private static final class Layout {
        final int arity;
        final int time;
        final int payload;
        final int fields;
        final int partition;
        final int offset;
        final int sequence;
        final RowDataSerializer serializer;

        Layout(TableSemantics semantics) {
            RowType type = (RowType) semantics.dataType().getLogicalType();
            List<String> names = type.getFieldNames();
            arity = names.size();
            time = semantics.timeColumn();
            payload = position(names, "payload");
            fields = position(names, "fields");
            partition = position(names, "source_partition");
            offset = position(names, "source_offset");
            sequence = position(names, "source_sequence_number");
            serializer = new RowDataSerializer(type);
        }

        private static int position(List<String> names, String name) {
            int position = names.indexOf(name);
            if (position < 0) {
                throw new IllegalStateException(
                        "adstream_join: no column " + name + " in " + names);
            }
            return position;
        }

        /** {@code tag}, then the row's bytes. */
        byte[] bytes(byte tag, RowData row) {
            BinaryRowData binary = serializer.toBinaryRow(row);
            byte[] bytes = new byte[1 + binary.getSizeInBytes()];
            bytes[0] = tag;
            BinarySegmentUtils.copyToBytes(
                    binary.getSegments(), binary.getOffset(), bytes, 1, binary.getSizeInBytes());
            return bytes;
        }

        /** The row of {@link #bytes}. */
        BinaryRowData row(byte[] bytes) {
            BinaryRowData row = new BinaryRowData(arity);
            row.pointTo(MemorySegmentFactory.wrap(bytes), 1, bytes.length - 1);
            return row;
        }
    }
}
