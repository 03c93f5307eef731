package io.adstream.flink;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.StreamReadConstraints;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * Parses one raw input record, once, and returns the values of the top-level fields it is asked
 * for: {@code adstream_json_fields(payload, 'ad_id', 'bid_price', ...)}.
 *
 * <p>The result is an array in the order of the names asked for (an array rather than a map, so
 * that SQL reads a field by position instead of by a search through the keys). Each value is
 * prefixed with one character naming its JSON kind: {@code s} a string (the text after it is the
 * unescaped string), {@code n} a number (its exact original text), {@code b} a boolean ({@code
 * btrue}, {@code bfalse}), {@code o} an object, {@code a} an array. An absent field and a field
 * whose value is {@code null} are NULL. Of duplicate names the last wins.
 *
 * <p>Returns NULL when the record is not exactly one JSON object in strict UTF-8: the records
 * {@code adstream.events.validation} rejects as malformed JSON, with Python's {@code json.loads}
 * (a leading UTF-8 byte order mark is skipped, NaN and Infinity are not JSON, an integer of more
 * than 4300 digits is refused). docs/join.md lists the few exotic inputs where they differ.
 */
public final class JsonFields extends ScalarFunction {

    private static final JsonFactory JSON =
            JsonFactory.builder()
                    .streamReadConstraints(
                            StreamReadConstraints.builder()
                                    .maxNumberLength(Integer.MAX_VALUE)
                                    .maxStringLength(Integer.MAX_VALUE)
                                    .maxNameLength(Integer.MAX_VALUE)
                                    .build())
                    .build();

    /** Python's default limit on the digits of an integer it converts from text. */
    private static final int MAX_INTEGER_DIGITS = 4300;

    private static final char BYTE_ORDER_MARK = '\uFEFF';

    private transient CharsetDecoder utf8;
    private transient String[] positionsOf;
    private transient Map<String, Integer> positions;

    /** The named fields of {@code payload}, or NULL when it is not one JSON object. */
    public @DataTypeHint("ARRAY<STRING>") String[] eval(byte[] payload, String... names) {
        if (payload == null) {
            return null;
        }
        try {
            return fields(decode(payload), positions(names), names.length);
        } catch (IOException notUtf8OrNotJson) { // CharacterCodingException is an IOException
            return null;
        }
    }

    /**
     * Deterministic in truth, declared otherwise so that the planner computes the fields once and
     * passes them on, rather than inlining this call (a whole parse) into every expression that
     * reads one of them.
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    private String decode(byte[] payload) throws CharacterCodingException {
        if (utf8 == null) {
            utf8 =
                    StandardCharsets.UTF_8
                            .newDecoder()
                            .onMalformedInput(CodingErrorAction.REPORT)
                            .onUnmappableCharacter(CodingErrorAction.REPORT);
        }
        String text = utf8.reset().decode(ByteBuffer.wrap(payload)).toString();
        return !text.isEmpty() && text.charAt(0) == BYTE_ORDER_MARK ? text.substring(1) : text;
    }

    /** Name to position; the names are literals in the SQL, so this is built once per call. */
    private Map<String, Integer> positions(String[] names) {
        if (!Arrays.equals(names, positionsOf)) {
            positions = new HashMap<>();
            for (int position = 0; position < names.length; position++) {
                positions.put(names[position], position);
            }
            positionsOf = names.clone();
        }
        return positions;
    }

    private static String[] fields(String text, Map<String, Integer> positions, int count)
            throws IOException {
        try (JsonParser parser = JSON.createParser(text)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            String[] fields = new String[count];
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                Integer position = positions.get(parser.currentName());
                JsonToken token = parser.nextToken();
                if (position != null) {
                    fields[position] = value(parser, token);
                } else {
                    skip(parser, token);
                }
            }
            // The loop ends at the object's closing brace; anything after it but white space is
            // a second value or garbage (Jackson itself would read on into the next root value).
            return parser.nextToken() == null ? fields : null;
        }
    }

    /** The tagged value the parser is at (NULL for JSON null), nested values read through. */
    private static String value(JsonParser parser, JsonToken token) throws IOException {
        switch (token) {
            case VALUE_STRING:
                return "s" + parser.getText();
            case VALUE_NUMBER_INT:
                checkDigits(parser);
                return "n" + parser.getText();
            case VALUE_NUMBER_FLOAT:
                return "n" + parser.getText();
            case VALUE_TRUE:
                return "btrue";
            case VALUE_FALSE:
                return "bfalse";
            case VALUE_NULL:
                return null;
            case START_OBJECT:
            case START_ARRAY:
                String kind = token == JsonToken.START_OBJECT ? "o" : "a";
                readNested(parser);
                return kind;
            default:
                throw new IOException("unexpected " + token);
        }
    }

    /**
     * Checks the value the parser is at as {@link #value} does, without making its text: the
     * parser checks a string as it skips it (an invalid one fails the record all the same), an
     * integer's digits are counted.
     */
    private static void skip(JsonParser parser, JsonToken token) throws IOException {
        switch (token) {
            case VALUE_NUMBER_INT:
                checkDigits(parser);
                return;
            case START_OBJECT:
            case START_ARRAY:
                readNested(parser);
                return;
            case VALUE_STRING:
            case VALUE_NUMBER_FLOAT:
            case VALUE_TRUE:
            case VALUE_FALSE:
            case VALUE_NULL:
                return;
            default:
                throw new IOException("unexpected " + token);
        }
    }

    /** Reads to the end of the object or array just started, checking every integer in it. */
    private static void readNested(JsonParser parser) throws IOException {
        int depth = 1;
        while (depth > 0) {
            JsonToken token = parser.nextToken();
            if (token == null) {
                throw new IOException("unexpected end of input");
            } else if (token.isStructStart()) {
                depth++;
            } else if (token.isStructEnd()) {
                depth--;
            } else if (token == JsonToken.VALUE_NUMBER_INT) {
                checkDigits(parser);
            }
        }
    }

    private static void checkDigits(JsonParser parser) throws IOException {
        int length = parser.getTextLength();
        int digits = parser.getTextCharacters()[parser.getTextOffset()] == '-' ? length - 1 : length;
        if (digits > MAX_INTEGER_DIGITS) {
            throw new IOException("integer of more than " + MAX_INTEGER_DIGITS + " digits");
        }
    }
}
