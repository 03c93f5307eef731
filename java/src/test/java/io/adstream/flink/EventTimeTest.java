package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Instant;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.NullSource;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link EventTime}: adstream.events.timestamps.parse_event_time on a tagged field value. */
class EventTimeTest {

    private final EventTime eventTime = new EventTime();

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "s2026-11-01T03:34:08Z,           2026-11-01T03:34:08Z",
        "s2026-11-01T03:34:08,            2026-11-01T03:34:08Z", // no Z: UTC all the same
        "s2026-11-01T03:34:08.1Z,         2026-11-01T03:34:08.100Z",
        "s2026-11-01T03:34:08.12Z,        2026-11-01T03:34:08.120Z",
        "s2026-11-01T03:34:08.123Z,       2026-11-01T03:34:08.123Z",
        "s2026-11-01T03:34:08.999999999Z, 2026-11-01T03:34:08.999Z", // truncated, not rounded
        "s2024-02-29T23:59:59.5,          2024-02-29T23:59:59.500Z", // a leap day
        "s0001-01-01T00:00:00Z,           0001-01-01T00:00:00Z", // Python's first year
        "s9999-12-31T23:59:59.999Z,       9999-12-31T23:59:59.999Z",
    })
    void parsesValidTimes(String value, String expected) {
        assertThat(eventTime.eval(value)).isEqualTo(Instant.parse(expected));
    }

    @ParameterizedTest
    @NullSource
    @ValueSource(
            strings = {
                "2026-11-01T03:34:08Z", // no tag
                "n2026-11-01T03:34:08Z", // a number, not a string
                "s",
                "s2026-11-01",
                "s2026-11-01 03:34:08Z", // space for T
                "s2026-11-01t03:34:08Z",
                "s2026-11-01T03:34:08z",
                "s2026-11-01T03:34:08+00:00", // offsets are not accepted
                "s2026-11-01T03:34:08.Z",
                "s2026-11-01T03:34:08.1234567890Z", // 10 fraction digits
                "s2026-11-01T03:34:08Z ",
                "s 2026-11-01T03:34:08Z",
                "s2026-11-1T03:34:08Z",
                "s2026-02-29T00:00:00Z", // not a leap year
                "s2026-04-31T00:00:00Z",
                "s2026-13-01T00:00:00Z",
                "s2026-11-01T24:00:00Z",
                "s2026-11-01T23:60:00Z",
                "s2026-12-31T23:59:60Z", // no leap seconds
                "s0000-01-01T00:00:00Z", // no year 0
                "s\u0662026-11-01T03:34:08Z", // digits are ASCII only
            })
    void refusesInvalidTimes(String value) {
        assertThat(eventTime.eval(value)).isNull();
    }

    @Test
    void boundedByNotAfterInclusive() {
        Instant time = Instant.parse("2026-11-01T03:34:08.123Z");
        String value = "s2026-11-01T03:34:08.123Z";
        assertThat(eventTime.eval(value, time)).isEqualTo(time);
        assertThat(eventTime.eval(value, time.plusMillis(1))).isEqualTo(time);
        assertThat(eventTime.eval(value, time.minusMillis(1))).isNull();
        assertThat(eventTime.eval(value, null)).isNull();
        assertThat(eventTime.eval("snot a time", time)).isNull();
    }
}
