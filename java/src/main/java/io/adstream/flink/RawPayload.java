package io.adstream.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The raw payload a rejected-event record keeps (SPEC section 4): the record as text, at most
 * {@code maxBytes} bytes of UTF-8: {@code adstream_raw_payload(payload, 65536)}.
 *
 * <p>A cut counts bytes, not characters (a {@code SUBSTR} of the text would keep up to four times
 * the bytes), and never splits a character: the text ends before a character that would not fit
 * whole. Bytes that are not UTF-8 become U+FFFD, as a cast of the bytes to a string makes them;
 * that character takes three bytes, so the text is then shortened until it fits.
 */
public final class RawPayload extends ScalarFunction {

    /** The payload's text in at most {@code maxBytes} bytes of UTF-8, or NULL without payload. */
    public @DataTypeHint("STRING") String eval(byte[] payload, int maxBytes) {
        if (payload == null) {
            return null;
        }
        int end = Math.min(payload.length, maxBytes);
        // The first byte left out continues a character that started before it: leave that out.
        while (end > 0 && end < payload.length && isContinuation(payload[end])) {
            end--;
        }
        String text = new String(payload, 0, end, StandardCharsets.UTF_8);
        int length = utf8Length(text);
        int cut = text.length();
        while (length > maxBytes) { // only when some bytes became U+FFFD
            int last = text.codePointBefore(cut);
            cut -= Character.charCount(last);
            length -= utf8Length(last);
        }
        return text.substring(0, cut);
    }

    private static boolean isContinuation(byte b) {
        return (b & 0xC0) == 0x80;
    }

    private static int utf8Length(String text) {
        int length = 0;
        for (int at = 0; at < text.length(); ) {
            int codePoint = text.codePointAt(at);
            length += utf8Length(codePoint);
            at += Character.charCount(codePoint);
        }
        return length;
    }

    private static int utf8Length(int codePoint) {
        if (codePoint < 0x80) {
            return 1;
        } else if (codePoint < 0x800) {
            return 2;
        } else if (codePoint < 0x10000) {
            return 3;
        }
        return 4;
    }
}
