package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** {@link RawPayload}: the rejected record's text, cut to a number of bytes of UTF-8. */
class RawPayloadTest {

    private final RawPayload raw = new RawPayload();

    private static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void keepsAPayloadThatFits() {
        assertThat(raw.eval(utf8("{\"a\":\"é\"}"), 11)).isEqualTo("{\"a\":\"é\"}");
        assertThat(raw.eval(new byte[0], 4)).isEmpty();
        assertThat(raw.eval(null, 4)).isNull();
    }

    @Test
    void cutsBytesNotCharacters() {
        assertThat(raw.eval(utf8("abcdef"), 4)).isEqualTo("abcd");
        assertThat(raw.eval(utf8("éééé"), 4)).isEqualTo("éé"); // 4 bytes, not 4 characters
    }

    @Test
    void neverSplitsACharacter() {
        assertThat(raw.eval(utf8("aéé"), 4)).isEqualTo("aé"); // the second é would need 5 bytes
        assertThat(raw.eval(utf8("a€"), 3)).isEqualTo("a"); // € is 3 bytes
        assertThat(raw.eval(utf8("a😀b"), 4)).isEqualTo("a"); // 😀 is 4 bytes (2 chars in Java)
        assertThat(raw.eval(utf8("a😀b"), 5)).isEqualTo("a😀");
    }

    @Test
    void replacesBytesThatAreNotUtf8AndStillFits() {
        byte[] invalid = {'a', (byte) 0xff, 'b'};
        assertThat(raw.eval(invalid, 10)).isEqualTo("a\uFFFDb");
        assertThat(raw.eval(invalid, 3)).isEqualTo("a"); // U+FFFD takes 3 bytes, not 1
        byte[] allInvalid = {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff};
        assertThat(utf8(raw.eval(allInvalid, 4))).hasSizeLessThanOrEqualTo(4);
    }
}
