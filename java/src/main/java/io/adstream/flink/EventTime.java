package io.adstream.flink;

import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The event time of a field value as {@link JsonFields} tags it, or NULL when it is not a valid
 * event-time string.
 *
 * <p>Mirrors {@code adstream.events.timestamps.parse_event_time}: {@code YYYY-MM-DDTHH:MM:SS}, an
 * optional fraction of 1 to 9 digits truncated to milliseconds, an optional {@code Z}, always UTC,
 * and a real date and time of Python's calendar (years 1 to 9999, no leap second).
 */
public final class EventTime extends ScalarFunction {

    private static final Pattern TIME =
            Pattern.compile(
                    "(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2}):(\\d{2}):(\\d{2})(?:\\.(\\d{1,9}))?Z?");

    /** The time in {@code value} (a string field, tag {@code s}), or NULL. */
    public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(String value) {
        return parse(value);
    }

    /** The time in {@code value}, or NULL also when it is not at or before {@code notAfter}. */
    public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(
            String value, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant notAfter) {
        Instant eventTime = parse(value);
        return eventTime != null && notAfter != null && !eventTime.isAfter(notAfter)
                ? eventTime
                : null;
    }

    private static Instant parse(String value) {
        if (value == null || !value.startsWith("s")) {
            return null;
        }
        Matcher time = TIME.matcher(value).region(1, value.length());
        if (!time.matches()) {
            return null;
        }
        int year = Integer.parseInt(time.group(1));
        if (year < 1) {
            return null;
        }
        LocalDateTime moment;
        try {
            moment =
                    LocalDateTime.of(
                            year,
                            Integer.parseInt(time.group(2)),
                            Integer.parseInt(time.group(3)),
                            Integer.parseInt(time.group(4)),
                            Integer.parseInt(time.group(5)),
                            Integer.parseInt(time.group(6)));
        } catch (DateTimeException notACalendarTime) {
            return null;
        }
        String fraction = time.group(7) == null ? "" : time.group(7);
        int millis = Integer.parseInt((fraction + "000").substring(0, 3));
        return Instant.ofEpochMilli(moment.toEpochSecond(ZoneOffset.UTC) * 1000 + millis);
    }
}
